// Sample selection: which architectures a new device should measure.
//
// Greedy D-optimal design: each pick is the candidate whose predicted log latency is
// most uncertain under the current posterior of the device head (largest x^T C x with
// x = [h(a), 1]); the posterior covariance C is then updated as if it had been
// measured (rank-one update). This maximises the information the k samples give about
// the head, from architecture strings alone.
#include <set>
#include <string>

#include "latpred/predictor/predictor.h"
#include "prior.h"

namespace latpred::predictor {

std::vector<int> BaseModel::Suggest(const std::vector<core::Architecture>& candidates,
                                    const std::vector<core::Architecture>& measured,
                                    int k) const {
  std::vector<int> picked;
  if (k <= 0 || candidates.empty()) return picked;
  const HeadPrior prior = SourcePrior(*this);
  const int p = prior.dim + 1;
  const double noise = noise_variance();

  Matrix cov = PriorCovariance(prior, 1.0, 0.1);
  // Condition on what was already measured: C <- C - C x x^T C / (noise + x^T C x).
  auto observe = [&](const double* x) {
    std::vector<double> cx(p, 0);
    for (int i = 0; i < p; ++i) {
      for (int j = 0; j < p; ++j) cx[i] += cov(i, j) * x[j];
    }
    double denom = noise;
    for (int i = 0; i < p; ++i) denom += x[i] * cx[i];
    for (int i = 0; i < p; ++i) {
      for (int j = 0; j < p; ++j) cov(i, j) -= cx[i] * cx[j] / denom;
    }
  };
  const std::vector<double> done = DesignRows(*this, measured);
  for (size_t i = 0; i < measured.size(); ++i) observe(&done[i * p]);

  std::set<std::vector<uint8_t>> taken;
  for (const auto& a : measured) taken.insert(a.ops);
  const std::vector<double> rows = DesignRows(*this, candidates);
  std::vector<bool> available(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    available[i] = taken.insert(candidates[i].ops).second;  // also drops duplicates
  }
  while (static_cast<int>(picked.size()) < k) {
    int best = -1;
    double best_var = -1;
    for (size_t i = 0; i < candidates.size(); ++i) {
      if (!available[i]) continue;
      const double* x = &rows[i * p];
      double var = 0;
      for (int a = 0; a < p; ++a) {
        double row = 0;
        for (int b = 0; b < p; ++b) row += cov(a, b) * x[b];
        var += x[a] * row;
      }
      if (var > best_var) {
        best_var = var;
        best = static_cast<int>(i);
      }
    }
    if (best < 0) break;
    available[best] = false;
    observe(&rows[best * p]);
    picked.push_back(best);
  }
  return picked;
}

}  // namespace latpred::predictor
