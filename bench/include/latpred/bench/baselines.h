// The baselines the benchmark runs beside the predictor, on the same target samples.
//
//  - FLOPs fit: latency = a * FLOPs + b, least squares on the k samples.
//  - Nearest source device: the source device whose measured latencies rank the k
//    samples best (Spearman; ties broken by the smaller relative error of its fit), its
//    full latency column rescaled by least squares on the k samples. It reads every
//    source latency of the table (the whole column, not only the per-trial source
//    budget), which favours this baseline.
//  - Count fit: latency = c0 + sum over operations o of c_o * count_o, count_o the number
//    of positions (nb201 edges, fbnet layers) that hold o as written; least squares with
//    a small ridge so that it is defined below as many samples as weights.
#ifndef LATPRED_BENCH_BASELINES_H_
#define LATPRED_BENCH_BASELINES_H_

#include <vector>

#include "latpred/core/search_space.h"

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

// y = c0 + sum_j c[j] * x[j].
struct RidgeFit {
  double c0 = 0;
  std::vector<double> c;
  double operator()(const std::vector<double>& x) const;
};

// The ridge of the count fit, relative to the trace of the centred Gram matrix.
inline constexpr double kCountFitRidge = 1e-6;

// Least squares of y on the rows of x with an intercept. The weights (not the
// intercept) are penalised by lambda = relative_ridge x trace(Xc'Xc), Xc the rows of x
// centred on their mean: with fewer samples than weights, or with columns that add up to
// a constant (every operation count does), it picks the weights of least norm among
// those that fit, nearly. With no spread in x (or no points) the weights are 0 and the
// intercept the mean of y (0 when empty).
RidgeFit FitRidge(const std::vector<std::vector<double>>& x, const std::vector<double>& y,
                  double relative_ridge = kCountFitRidge);

// The count fit's features: out[o] = the number of positions of arch that hold op o,
// for o in 0..space.num_ops()-1.
std::vector<double> OperationCounts(const core::SearchSpace& space,
                                    const core::Architecture& arch);

// Small statistics helpers for the report.
double Mean(const std::vector<double>& v);    // NaN when empty
double StdDev(const std::vector<double>& v);  // sample (n - 1) std; 0 with one value

}  // namespace latpred::bench

#endif  // LATPRED_BENCH_BASELINES_H_
