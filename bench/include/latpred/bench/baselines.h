// The baselines the benchmark runs beside the predictor, on the same target samples.
//
//  - FLOPs fit: latency = a * FLOPs + b, least squares on the k samples.
//  - Nearest source device: the source device whose measured latencies rank the k
//    samples best (Spearman; ties broken by the smaller relative error of its fit), its
//    full latency column rescaled by least squares on the k samples. It reads every
//    source latency of the table (the whole column, not only the per-trial source
//    budget), which favours this baseline.
#ifndef LATPRED_BENCH_BASELINES_H_
#define LATPRED_BENCH_BASELINES_H_

#include <vector>

namespace latpred::bench {

// y = a * x + b.
struct LinearFit {
  double a = 0;
  double b = 0;
  double operator()(double x) const { return a * x + b; }
};

// Ordinary least squares of y on x. With fewer than two distinct x (or no points) the
// slope is 0 and the intercept the mean of y (0 when empty).
LinearFit FitLeastSquares(const std::vector<double>& x, const std::vector<double>& y);

// Nearest-source prediction.
//   sources:      one full latency column per source device (NaN where not measured),
//                 indexed by table row.
//   sample_rows:  the k table rows measured on the target; sample_latency their values.
//   predict_rows: the rows to predict.
// Sources missing a sample row are not candidates. A row the chosen source lacks takes
// the next-best candidate that has it (each with its own fit); with none, the mean of
// the samples. Writes the index of the chosen source (or -1) to *chosen when given.
std::vector<double> NearestSourcePredict(const std::vector<const std::vector<double>*>& sources,
                                         const std::vector<int>& sample_rows,
                                         const std::vector<double>& sample_latency,
                                         const std::vector<int>& predict_rows,
                                         int* chosen = nullptr);

// Small statistics helpers for the report.
double Mean(const std::vector<double>& v);    // NaN when empty
double StdDev(const std::vector<double>& v);  // sample (n - 1) std; 0 with one value

}  // namespace latpred::bench

#endif  // LATPRED_BENCH_BASELINES_H_
