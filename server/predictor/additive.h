// The machinery the additive parts share: latency as a sum t = c0 + sum_k a_k * column_k(a)
// of per-architecture columns (operation counts or analytic costs), relative to the
// samples' geometric mean, scored so that its evidence is that of the log latencies.
#ifndef LATPRED_PREDICTOR_ADDITIVE_H_
#define LATPRED_PREDICTOR_ADDITIVE_H_

#include <functional>
#include <vector>

#include "adapt_context.h"

namespace latpred::predictor {

// One sum: its columns and how its weights become a candidate's coefficients.
struct SumModel {
  int width = 0;
  // The columns (n x width) of n architectures from their standardised features xs.
  std::function<std::vector<double>(const std::vector<double>& xs, size_t n)> columns;
  // Adds phi = [c0; a weight per column] into an additive candidate's coefficients.
  std::function<void(const std::vector<double>& phi, std::vector<double>* coef)> to_coef;
  // The column whose operation the plain sum holds cheapest (-1: the layout's reference
  // op, nb201's none): the identity on the block of every edge as written, where a
  // runtime computes none as a multiplication by zero and skip_connect not at all.
  int floor = -1;
  bool counts = false;  // a block of operation counts (else the analytic costs)
};

// The sums of a space: each count block the samples tell apart where positions are
// interchangeable (nb201), else the analytic costs (fbnet, whose layers differ by stage).
std::vector<SumModel> SumModels(const AdaptContext& ctx);

// Scores the prior N(mean, diag(var)) of a sum on rows (n x q, t = rows . phi), weights
// `truncated` held non-negative; phi_to_add maps phi to [c0; column weights]. One
// candidate per noise level of the cost model's grid. Relative noise (variance noise *
// t^2) makes it a linear regression of 1 on rows / t whose evidence is that of the log
// latencies; the truncation multiplies it by P(posterior inside) / P(prior inside); the
// level is re-centred on the median log residual, which log-normal noise leaves at 0.
void ScoreSum(const AdaptContext& ctx, const SumModel& model, const std::vector<double>& rows,
              int q, const std::vector<double>& mean, const std::vector<double>& var,
              const std::vector<int>& truncated,
              const std::function<std::vector<double>(const std::vector<double>&)>& phi_to_add,
              std::vector<Candidate>* out);

// Scores the plain sum: c0 ~ N(1, kBiasPriorVariance), every other weight ~ N(0, v) held
// non-negative, for each v of variances.
void ScorePlainSum(const AdaptContext& ctx, const SumModel& model,
                   const std::vector<double>& variances, std::vector<Candidate>* out);

// Rows [1, columns] (n x (1 + width)).
std::vector<double> WithIntercept(const std::vector<double>& columns, size_t n, int width);

}  // namespace latpred::predictor

#endif  // LATPRED_PREDICTOR_ADDITIVE_H_
