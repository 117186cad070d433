// Sample selection: which architectures a new device should measure.
//
// Greedy D-optimal design: each pick is the candidate whose predicted log latency is
// most uncertain under the current posterior of the device head (largest x^T C x with
// x = [h(a), 1, x(a)], the design of Adapt including its residual stage); C is then
// updated as if it had been measured (rank-one update). This maximises the information
// the k samples give about the head, from architecture strings alone.
#include <set>
#include <string>

#include "latpred/predictor/predictor.h"
#include "prior.h"

namespace latpred::predictor {

namespace {

// Prior variances of the residual features during selection, so that the picks also
// spread over the operations and costs that the residual stage of Adapt can use.
constexpr double kOpVariance = 1e-3;
constexpr double kCostVariance = 1e-1;

// Rows [h(a), 1, x(a)] for each architecture.
std::vector<double> SelectionRows(const BaseModel& model,
                                  const std::vector<core::Architecture>& archs) {
  const int p = model.embedding_dim() + 1, f = model.num_features();
  const std::vector<double> head = DesignRows(model, archs);
  const std::vector<double> x = model.Features(archs);
  std::vector<double> rows(archs.size() * (p + f));
  for (size_t i = 0; i < archs.size(); ++i) {
    std::copy(&head[i * p], &head[i * p] + p, &rows[i * (p + f)]);
    std::copy(&x[i * f], &x[i * f] + f, &rows[i * (p + f) + p]);
  }
  return rows;
}

}  // namespace

std::vector<int> BaseModel::Suggest(const std::vector<core::Architecture>& candidates,
                                    const std::vector<core::Architecture>& measured,
                                    int k) const {
  std::vector<int> picked;
  if (k <= 0 || candidates.empty()) return picked;
  const HeadPrior prior = SourcePrior(*this);
  const int p1 = prior.dim + 1;
  const int p = p1 + num_features();
  const int first_cost = p - core::SearchSpace::kCostFeatures;
  const double noise = noise_variance();

  Matrix cov(p);
  const Matrix head_cov = PriorCovariance(prior, 1.0, 0.1);
  for (int i = 0; i < p1; ++i) {
    for (int j = 0; j < p1; ++j) cov(i, j) = head_cov(i, j);
  }
  for (int i = p1; i < p; ++i) cov(i, i) = i >= first_cost ? kCostVariance : kOpVariance;

  // Conditions the posterior covariance on a measurement at x and returns C x and the
  // predictive variance of that measurement: C <- C - C x x^T C / (noise + x^T C x).
  auto observe = [&](const double* x, std::vector<double>* cx) -> double {
    cx->assign(p, 0);
    for (int i = 0; i < p; ++i) {
      for (int j = 0; j < p; ++j) (*cx)[i] += cov(i, j) * x[j];
    }
    double denom = noise;
    for (int i = 0; i < p; ++i) denom += x[i] * (*cx)[i];
    for (int i = 0; i < p; ++i) {
      for (int j = 0; j < p; ++j) cov(i, j) -= (*cx)[i] * (*cx)[j] / denom;
    }
    return denom;
  };
  std::vector<double> cx;
  const std::vector<double> done = SelectionRows(*this, measured);
  for (size_t i = 0; i < measured.size(); ++i) observe(&done[i * p], &cx);

  std::set<std::vector<uint8_t>> taken;
  for (const auto& a : measured) taken.insert(a.ops);
  const std::vector<double> rows = SelectionRows(*this, candidates);
  const size_t n = candidates.size();
  std::vector<bool> available(n);
  std::vector<double> variance(n, 0);
  for (size_t i = 0; i < n; ++i) {
    available[i] = taken.insert(candidates[i].ops).second;  // also drops duplicates
    if (!available[i]) continue;
    const double* x = &rows[i * p];
    for (int a = 0; a < p; ++a) {
      double row = 0;
      for (int b = 0; b < p; ++b) row += cov(a, b) * x[b];
      variance[i] += x[a] * row;
    }
  }
  // Greedy picks; each pick lowers every candidate's variance by (x_i . C x)^2 / denom.
  while (static_cast<int>(picked.size()) < k) {
    int best = -1;
    for (size_t i = 0; i < n; ++i) {
      if (available[i] && (best < 0 || variance[i] > variance[best])) best = static_cast<int>(i);
    }
    if (best < 0) break;
    available[best] = false;
    picked.push_back(best);
    const double denom = observe(&rows[best * p], &cx);
    for (size_t i = 0; i < n; ++i) {
      if (!available[i]) continue;
      double dot = 0;
      for (int a = 0; a < p; ++a) dot += rows[i * p + a] * cx[a];
      variance[i] -= dot * dot / denom;
    }
  }
  return picked;
}

}  // namespace latpred::predictor
