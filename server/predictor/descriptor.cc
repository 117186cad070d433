// The map from a device's descriptor to its head's prior (latpred/predictor/descriptor.h).
#include "latpred/predictor/descriptor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "latpred/predictor/predictor.h"
#include "prior.h"

namespace latpred::predictor {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// A device's usable features in log scale, restricted to the map's features.
using LogFeatures = std::map<std::string, double>;

LogFeatures Logs(const Descriptor& d) {
  LogFeatures out;
  for (const auto& [name, value] : d) {
    if (value > 0 && std::isfinite(value)) out[name] = std::log(value);
  }
  return out;
}

// Mean squared standardised difference over the features both have; infinity for none.
double Distance2(const LogFeatures& a, const LogFeatures& b, const std::map<std::string, double>& sd) {
  double sum = 0;
  int shared = 0;
  for (const auto& [name, scale] : sd) {
    auto ia = a.find(name);
    auto ib = b.find(name);
    if (ia == a.end() || ib == b.end()) continue;
    const double d = (ia->second - ib->second) / scale;
    sum += d * d;
    ++shared;
  }
  return shared == 0 ? kInfinity : sum / shared;
}

// Nadaraya-Watson average of thetas (rows of heads) with squared distances d2 (infinity:
// left out) at length scale l (infinity: the plain average of the finite ones); skip one.
std::vector<double> KernelMean(const std::vector<std::vector<double>>& heads,
                               const std::vector<double>& d2, double l, int skip) {
  const size_t p = heads[0].size();
  double top = -kInfinity;
  std::vector<double> logw(heads.size(), -kInfinity);
  for (size_t j = 0; j < heads.size(); ++j) {
    if (static_cast<int>(j) == skip || !std::isfinite(d2[j])) continue;
    logw[j] = std::isfinite(l) ? -d2[j] / (2 * l * l) : 0.0;
    top = std::max(top, logw[j]);
  }
  std::vector<double> mean(p, 0.0);
  if (top == -kInfinity) return {};
  double total = 0;
  for (size_t j = 0; j < heads.size(); ++j) {
    if (logw[j] == -kInfinity) continue;
    const double w = std::exp(logw[j] - top);
    total += w;
    for (size_t k = 0; k < p; ++k) mean[k] += w * heads[j][k];
  }
  for (double& m : mean) m /= total;
  return mean;
}

double MetricNorm(const std::vector<double>& r, const std::vector<double>& g) {
  const size_t p = r.size();
  double s = 0;
  for (size_t i = 0; i < p; ++i) {
    for (size_t j = 0; j < p; ++j) s += r[i] * g[i * p + j] * r[j];
  }
  return s;
}

}  // namespace

std::optional<DescriptorPrior> FitDescriptorPrior(const Descriptor& target,
                                                  const std::vector<DescribedHead>& population,
                                                  const std::vector<double>& second_moment,
                                                  const AdaptOptions& options) {
  const LogFeatures t = Logs(target);
  if (t.empty() || population.empty()) return std::nullopt;
  const size_t p = population[0].theta.size();
  if (p == 0 || second_moment.size() != p * p) return std::nullopt;
  std::vector<LogFeatures> logs;
  for (const DescribedHead& d : population) logs.push_back(Logs(d.descriptor));

  // Features: the target's that enough devices have, with a spread among them.
  std::map<std::string, double> sd;
  for (const auto& [name, value] : t) {
    std::vector<double> v;
    for (size_t i = 0; i < population.size(); ++i) {
      auto it = logs[i].find(name);
      if (it != logs[i].end() && population[i].theta.size() == p) v.push_back(it->second);
    }
    if (static_cast<int>(v.size()) < options.descriptor_min_devices) continue;
    double mean = 0, var = 0;
    for (double x : v) mean += x;
    mean /= static_cast<double>(v.size());
    for (double x : v) var += (x - mean) * (x - mean);
    var /= static_cast<double>(v.size());
    if (var > 1e-12) sd[name] = std::sqrt(var);
  }
  if (sd.empty()) return std::nullopt;
  // Devices: those with half of those features at least.
  const size_t need = std::max<size_t>(1, (sd.size() + 1) / 2);
  std::vector<std::vector<double>> heads;
  std::vector<const LogFeatures*> members;
  for (size_t i = 0; i < population.size(); ++i) {
    if (population[i].theta.size() != p) continue;
    size_t shared = 0;
    for (const auto& entry : sd) shared += logs[i].count(entry.first);
    if (shared < need) continue;
    heads.push_back(population[i].theta);
    members.push_back(&logs[i]);
  }
  const int n = static_cast<int>(heads.size());
  if (n < options.descriptor_min_devices) return std::nullopt;

  std::vector<std::vector<double>> pair(n, std::vector<double>(n));
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) pair[i][j] = Distance2(*members[i], *members[j], sd);
  }
  // Each device's head predicted from the others at length scale l.
  const auto held_out = [&](double l, std::vector<std::vector<double>>* residuals) {
    double error = 0;
    int counted = 0;
    for (int i = 0; i < n; ++i) {
      const std::vector<double> m = KernelMean(heads, pair[i], l, i);
      if (m.empty()) continue;
      std::vector<double> r(p);
      for (size_t k = 0; k < p; ++k) r[k] = heads[i][k] - m[k];
      error += MetricNorm(r, second_moment);
      ++counted;
      if (residuals != nullptr) residuals->push_back(std::move(r));
    }
    return counted == 0 ? kInfinity : error / counted;
  };
  const double average_error = held_out(kInfinity, nullptr);
  double best_l = kInfinity, best_error = average_error;
  for (double l : options.descriptor_length_scales) {
    const double e = held_out(l, nullptr);
    if (e < best_error) {
      best_error = e;
      best_l = l;
    }
  }
  if (!std::isfinite(best_l) || !(best_error <= options.descriptor_min_gain * average_error)) {
    return std::nullopt;
  }
  std::vector<double> to_target(n);
  for (int j = 0; j < n; ++j) to_target[j] = Distance2(t, *members[j], sd);
  DescriptorPrior prior;
  prior.mean = KernelMean(heads, to_target, best_l, -1);
  if (prior.mean.empty()) return std::nullopt;
  std::vector<std::vector<double>> residuals;
  held_out(best_l, &residuals);
  prior.cov.assign(p * p, 0.0);
  for (const std::vector<double>& r : residuals) {
    for (size_t a = 0; a < p; ++a) {
      for (size_t b = 0; b < p; ++b) prior.cov[a * p + b] += r[a] * r[b] / residuals.size();
    }
  }
  // A ridge of a hundredth of the mean variance keeps the covariance invertible when the
  // devices are fewer than the head's parameters.
  double trace = 0;
  for (size_t a = 0; a < p; ++a) trace += prior.cov[a * p + a];
  for (size_t a = 0; a < p; ++a) prior.cov[a * p + a] += 1e-8 + 0.01 * trace / p;
  prior.length_scale = best_l;
  prior.devices = n;
  for (const auto& entry : sd) prior.features.push_back(entry.first);
  prior.held_out_error = best_error;
  prior.average_error = average_error;
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
