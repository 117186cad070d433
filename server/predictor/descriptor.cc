// The map from a device's descriptor to its head's prior (latpred/predictor/descriptor.h).
#include "latpred/predictor/descriptor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "latpred/predictor/predictor.h"
#include "linalg.h"
#include "prior.h"

namespace latpred::predictor {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// A device's usable features in log scale.
std::map<std::string, double> Logs(const Descriptor& d) {
  std::map<std::string, double> out;
  for (const auto& [name, value] : d) {
    if (value > 0 && std::isfinite(value)) out[name] = std::log(value);
  }
  return out;
}

double MetricNorm(const std::vector<double>& r, const std::vector<double>& g) {
  const size_t p = r.size();
  double s = 0;
  for (size_t i = 0; i < p; ++i) {
    for (size_t j = 0; j < p; ++j) s += r[i] * g[i * p + j] * r[j];
  }
  return s;
}

// The ridge fit theta = c + W x on the devices but `skip` (-1: all), ridge lambda per
// device (infinity: W = 0). Predicts theta at x and writes x's leverage x' A^-1 x.
struct Ridge {
  const std::vector<std::vector<double>>& x;      // standardised features per device
  const std::vector<std::vector<double>>& theta;  // heads per device

  std::vector<double> Predict(const std::vector<double>& at, double lambda, int skip,
                              double* leverage) const {
    const size_t n = x.size(), f = at.size(), p = theta[0].size();
    std::vector<double> xm(f, 0.0), tm(p, 0.0);
    double count = 0;
    for (size_t i = 0; i < n; ++i) {
      if (static_cast<int>(i) == skip) continue;
      for (size_t a = 0; a < f; ++a) xm[a] += x[i][a];
      for (size_t k = 0; k < p; ++k) tm[k] += theta[i][k];
      ++count;
    }
    for (double& v : xm) v /= count;
    for (double& v : tm) v /= count;
    if (leverage != nullptr) *leverage = 0;
    if (!std::isfinite(lambda)) return tm;
    Matrix a(static_cast<int>(f));
    for (size_t i = 0; i < n; ++i) {
      if (static_cast<int>(i) == skip) continue;
      for (size_t r = 0; r < f; ++r) {
        for (size_t c = 0; c < f; ++c) a(r, c) += (x[i][r] - xm[r]) * (x[i][c] - xm[c]);
      }
    }
    for (size_t r = 0; r < f; ++r) a(r, r) += lambda * count;
    Matrix lower;
    if (!Cholesky(a, &lower)) return tm;
    std::vector<double> d(f);
    for (size_t r = 0; r < f; ++r) d[r] = at[r] - xm[r];
    // theta(at) = tm + sum_i (d' A^-1 (x_i - xm)) (theta_i - tm)
    const std::vector<double> u = CholeskySolve(lower, d);
    std::vector<double> out = tm;
    for (size_t i = 0; i < n; ++i) {
      if (static_cast<int>(i) == skip) continue;
      double w = 0;
      for (size_t r = 0; r < f; ++r) w += u[r] * (x[i][r] - xm[r]);
      for (size_t k = 0; k < p; ++k) out[k] += w * (theta[i][k] - tm[k]);
    }
    if (leverage != nullptr) {
      double v = 0;
      for (size_t r = 0; r < f; ++r) v += u[r] * d[r];
      *leverage = v;
    }
    return out;
  }
};

}  // namespace

std::optional<DescriptorPrior> FitDescriptorPrior(const Descriptor& target,
                                                  const std::vector<DescribedHead>& population,
                                                  const std::vector<double>& second_moment,
                                                  const AdaptOptions& options) {
  const std::map<std::string, double> t = Logs(target);
  if (t.empty() || population.empty()) return std::nullopt;
  const size_t p = population[0].theta.size();
  if (p == 0 || second_moment.size() != p * p) return std::nullopt;
  std::vector<std::map<std::string, double>> logs;
  for (const DescribedHead& d : population) logs.push_back(Logs(d.descriptor));

  // Features: the target's; while fewer than the minimum of devices have all of them,
  // the one the fewest devices have goes.
  std::vector<std::string> features;
  for (const auto& entry : t) features.push_back(entry.first);
  std::vector<int> members;
  while (!features.empty()) {
    members.clear();
    std::map<std::string, int> coverage;
    for (size_t i = 0; i < population.size(); ++i) {
      if (population[i].theta.size() != p) continue;
      bool all = true;
      for (const std::string& f : features) {
        const bool has = logs[i].count(f) > 0;
        coverage[f] += has;
        all = all && has;
      }
      if (all) members.push_back(static_cast<int>(i));
    }
    if (static_cast<int>(members.size()) >= options.descriptor_min_devices) break;
    features.erase(std::min_element(features.begin(), features.end(),
                                    [&coverage](const std::string& a, const std::string& b) {
                                      return coverage[a] < coverage[b];
                                    }));
  }
  const int n = static_cast<int>(members.size());
  if (features.empty() || n < options.descriptor_min_devices) return std::nullopt;
  // Standardised over the members; a feature without spread among them carries nothing.
  std::vector<std::string> used;
  std::vector<double> mean, sd;
  for (const std::string& f : features) {
    double m = 0, v = 0;
    for (int i : members) m += logs[i].at(f) / n;
    for (int i : members) v += (logs[i].at(f) - m) * (logs[i].at(f) - m) / n;
    if (v <= 1e-12) continue;
    used.push_back(f);
    mean.push_back(m);
    sd.push_back(std::sqrt(v));
  }
  if (used.empty()) return std::nullopt;
  const auto standardised = [&](const std::map<std::string, double>& l) {
    std::vector<double> out(used.size());
    for (size_t a = 0; a < used.size(); ++a) out[a] = (l.at(used[a]) - mean[a]) / sd[a];
    return out;
  };
  std::vector<std::vector<double>> x, heads;
  for (int i : members) {
    x.push_back(standardised(logs[i]));
    heads.push_back(population[i].theta);
  }
  const Ridge ridge{x, heads};
  // Each device's head predicted from the others at ridge lambda.
  const auto held_out = [&](double lambda, std::vector<std::vector<double>>* residuals,
                            double* mean_leverage) {
    double error = 0, leverage_sum = 0;
    for (int i = 0; i < n; ++i) {
      double leverage = 0;
      const std::vector<double> m = ridge.Predict(x[i], lambda, i, &leverage);
      std::vector<double> r(p);
      for (size_t k = 0; k < p; ++k) r[k] = heads[i][k] - m[k];
      error += MetricNorm(r, second_moment) / n;
      leverage_sum += leverage / n;
      if (residuals != nullptr) residuals->push_back(std::move(r));
    }
    if (mean_leverage != nullptr) *mean_leverage = leverage_sum;
    return error;
  };
  const double average_error = held_out(kInfinity, nullptr, nullptr);
  double best = kInfinity, best_error = average_error;
  for (double lambda : options.descriptor_ridges) {
    const double e = held_out(lambda, nullptr, nullptr);
    if (e < best_error) {
      best_error = e;
      best = lambda;
    }
  }
  if (!std::isfinite(best) || !(best_error <= options.descriptor_min_gain * average_error)) {
    return std::nullopt;
  }
  DescriptorPrior prior;
  double leverage = 0, mean_leverage = 0;
  prior.mean = ridge.Predict(standardised(t), best, -1, &leverage);
  std::vector<std::vector<double>> residuals;
  held_out(best, &residuals, &mean_leverage);
  // A target farther out than the held-out devices were gets a wider prior.
  const double widen = std::max(1.0, (1 + leverage) / (1 + mean_leverage));
  prior.cov.assign(p * p, 0.0);
  for (const std::vector<double>& r : residuals) {
    for (size_t a = 0; a < p; ++a) {
      for (size_t b = 0; b < p; ++b) prior.cov[a * p + b] += widen * r[a] * r[b] / n;
    }
  }
  // A ridge of a hundredth of the mean variance keeps the covariance invertible when the
  // devices are fewer than the head's parameters.
  double trace = 0;
  for (size_t a = 0; a < p; ++a) trace += prior.cov[a * p + a];
  for (size_t a = 0; a < p; ++a) prior.cov[a * p + a] += 1e-8 + 0.01 * trace / p;
  prior.ridge = best;
  prior.devices = n;
  prior.features = used;
  prior.held_out_error = best_error;
  prior.average_error = average_error;
  prior.expected_error = widen * best_error;
  return prior;
}

std::optional<DescriptorPrior> FitDescriptorPrior(const BaseModel& model,
                                                  const Descriptor& target,
                                                  const std::vector<DescribedHead>& population,
                                                  const AdaptOptions& options) {
  // The metric: E[[h; 1][h; 1]^T] over random architectures of the space (seeded, so a
  // device's prior does not change from one call to the next).
  const core::SearchSpace& space = model.space();
  std::mt19937_64 rng(20261207);
  std::uniform_int_distribution<int> pick(0, space.num_ops() - 1);
  std::vector<core::Architecture> archs(options.reference_archs);
  for (core::Architecture& a : archs) {
    a.ops.resize(space.num_positions());
    for (auto& op : a.ops) op = static_cast<uint8_t>(pick(rng));
  }
  const std::vector<double> rows = DesignRows(model, archs);
  const size_t p = static_cast<size_t>(model.embedding_dim()) + 1;
  std::vector<double> g(p * p, 0.0);
  for (size_t i = 0; i < archs.size(); ++i) {
    const double* r = &rows[i * p];
    for (size_t a = 0; a < p; ++a) {
      for (size_t b = 0; b < p; ++b) g[a * p + b] += r[a] * r[b] / archs.size();
    }
  }
  return FitDescriptorPrior(target, population, g, options);
}

}  // namespace latpred::predictor
