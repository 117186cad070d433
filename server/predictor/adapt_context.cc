// The samples as every part reads them, and the embedding's settings (adapt_context.h).
#include "adapt_context.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace latpred::predictor {
namespace {

// The one-hot blocks of a layout that the samples tell apart. A block whose counts
// differ from an earlier block's by the same amount on every sample fits the samples
// exactly as the earlier block does, so it stands aside and the earlier one speaks for
// both.
std::vector<int> BlocksTheSamplesTellApart(const OpCountLayout& layout,
                                           const std::vector<double>& count_rows, size_t n) {
  const int per_block = layout.per_block;
  const auto same_on_samples = [&](int a, int b) {
    for (int o = 0; o < per_block; ++o) {
      const int ca = a * per_block + o, cb = b * per_block + o;
      const double offset = count_rows[ca] - count_rows[cb];
      for (size_t i = 1; i < n; ++i) {
        // Counts are whole numbers: a difference that varies varies by at least 1.
        const double d = count_rows[i * layout.columns + ca] - count_rows[i * layout.columns + cb];
        if (std::abs(d - offset) > 1e-3) return false;
      }
    }
    return true;
  };
  std::vector<int> told_apart;
  for (int b = 0; b < layout.blocks; ++b) {
    bool seen = false;
    for (int earlier : told_apart) seen = seen || same_on_samples(b, earlier);
    if (!seen) told_apart.push_back(b);
  }
  return told_apart;
}

}  // namespace

// From the samples' side where there are fewer samples than parameters; from the
// posterior precision otherwise: (fit_i - h_i y_i) / (1 - h_i), h_i = x_i' A^-1 x_i / noise.
std::vector<double> LeaveOneOut(const Design& d, const std::vector<double>& y,
                              const PriorSetting& setting, int count) {
  const int n = d.gram.n;
  if (n < d.q) {
    std::vector<double> loo = LeaveOneOutPredictions(d.rows, y, d.q, setting);
    if (loo.size() > static_cast<size_t>(count)) loo.resize(count);
    return loo;
  }
  std::vector<double> phi;
  Matrix lower;
  if (Posterior(d.gram, setting.mean, setting.cov_lower, setting.cov_inv, setting.noise, &phi,
                &lower) == -INFINITY) {
    return {};
  }
  std::vector<double> out(count);
  std::vector<double> v(d.q);
  for (int i = 0; i < count; ++i) {
    const double* x = &d.rows[static_cast<size_t>(i) * d.q];
    double fit = 0;
    for (int k = 0; k < d.q; ++k) fit += x[k] * phi[k];
    // v = L^-1 x; the hat value is |v|^2 / noise.
    double h = 0;
    for (int r = 0; r < d.q; ++r) {
      double s = x[r];
      for (int k = 0; k < r; ++k) s -= lower(r, k) * v[k];
      v[r] = s / lower(r, r);
      h += v[r] * v[r];
    }
    h /= setting.noise;
    out[i] = h < 1 - 1e-9 ? (fit - h * y[i]) / (1 - h) : fit;
  }
  return out;
}

int LooSamples(const AdaptContext& ctx) {
  return std::min<int>(ctx.options.max_loo_samples, static_cast<int>(ctx.archs.size()));
}

AdaptContext::AdaptContext(const BaseModel& m, const std::vector<Observation>& observations,
                           const AdaptOptions& o, const DescriptorPrior* d)
    : model(m), options(o), space(m.space()), descriptor(d) {
  for (const Observation& obs : observations) {
    archs.push_back(obs.arch);
    y.push_back(std::log(obs.latency_ms));
    truth.push_back(obs.latency_ms);
  }
  for (double v : y) log_ybar += v;
  log_ybar /= static_cast<double>(y.size());
  prior = SourcePrior(model);
  dim = prior.dim;
  p = dim + 1;
  f = model.num_features();
  p2 = p + f;
  first_cost = p2 - core::SearchSpace::kCostFeatures;
  exp_costs = core::SearchSpace::kCostFeatures - 1;
  coef_size = 1 + f + exp_costs;
  rows = DesignRows(model, archs);
  x = model.Features(archs);
  layout = CountLayout(space, f);
  const std::vector<double> count_rows =
      OpCountRows(layout, x, archs.size(), [this](int j) { return feature_scale(j); });
  for (int b : BlocksTheSamplesTellApart(layout, count_rows, archs.size())) {
    told_apart.push_back({b * layout.per_block, (b + 1) * layout.per_block});
  }
}

std::vector<double> AdaptContext::NoiseGrid(const std::vector<double>& scales) const {
  std::vector<double> grid;
  for (double s : scales) grid.push_back(s * model.noise_variance());
  const double top = grid.empty() ? 0 : grid.back();
  for (double v : options.device_noise_variances) {
    if (v > top) grid.push_back(v);
  }
  return grid;
}

PriorSetting AdaptContext::BlockPrior(const PriorSetting* head, const std::vector<double>& mean,
                                      const std::vector<double>& var, double noise) {
  const int h = head == nullptr ? 0 : head->cov.n;
  const int q = h + static_cast<int>(var.size());
  PriorSetting setting;
  setting.mean.assign(q, 0.0);
  setting.cov = Matrix(q);
  setting.cov_lower = Matrix(q);
  setting.cov_inv = Matrix(q);
  for (int i = 0; i < h; ++i) {
    setting.mean[i] = head->mean[i];
    for (int j = 0; j < h; ++j) {
      setting.cov(i, j) = head->cov(i, j);
      setting.cov_lower(i, j) = head->cov_lower(i, j);
      setting.cov_inv(i, j) = head->cov_inv(i, j);
    }
  }
  // A zero variance pins a parameter to its mean; a tiny one keeps the factor defined.
  for (int i = h; i < q; ++i) {
    const double v = std::max(1e-10, var[i - h]);
    setting.mean[i] = mean[i - h];
    setting.cov(i, i) = v;
    setting.cov_lower(i, i) = std::sqrt(v);
    setting.cov_inv(i, i) = 1 / v;
  }
  setting.noise = noise;
  setting.dense = h;
  return setting;
}

std::vector<double> AdaptContext::BlockColumns(const std::vector<double>& counts, size_t n,
                                               Columns cc) const {
  const int width = cc.end - cc.begin;
  std::vector<double> out(n * width);
  for (size_t i = 0; i < n; ++i) {
    std::copy(&counts[i * layout.columns + cc.begin], &counts[i * layout.columns + cc.end],
              &out[i * width]);
  }
  return out;
}

}  // namespace latpred::predictor
