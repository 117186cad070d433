// Statistics used to judge latency predictions: rank correlation and error bounds.
#ifndef LATPRED_CORE_STATS_H_
#define LATPRED_CORE_STATS_H_

#include <vector>

namespace latpred::core {

// Spearman rank correlation (average ranks for ties). NaN when fewer than 2 items or
// when either side is constant.
double Spearman(const std::vector<double>& a, const std::vector<double>& b);

// Kendall tau-b, O(n log n). NaN when fewer than 2 items or either side is constant.
double KendallTau(const std::vector<double>& a, const std::vector<double>& b);

// Mean absolute percentage error, in percent: mean(|pred - truth| / truth) * 100.
double Mape(const std::vector<double>& truth, const std::vector<double>& pred);

// Share (0..1) of predictions within +-bound (e.g. 0.1) of the truth, relative to truth.
double WithinBound(const std::vector<double>& truth, const std::vector<double>& pred,
                   double bound);

// The median (the mean of the two middle values for an even count); NaN when empty.
double Median(std::vector<double> v);

// Ranks (1-based, ties averaged).
std::vector<double> Ranks(const std::vector<double>& v);

}  // namespace latpred::core

#endif  // LATPRED_CORE_STATS_H_
