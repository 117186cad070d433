// Model averaging over every part's candidates (combine.h).
#include "combine.h"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "latpred/core/stats.h"

namespace latpred::predictor {
namespace {

struct Weighted {
  const Candidate* candidate;
  double weight;
};

// The served head's leave-one-out log predictions: each group's (linear, additive)
// candidates that carry weight, averaged as the head averages them.
std::vector<double> ServedLeaveOneOut(const AdaptContext& ctx, const std::vector<Weighted>& all,
                                      double total, double add_weight) {
  const int count = LooSamples(ctx);
  std::vector<double> lin(count, 0.0), add(count, 0.0);
  double lin_w = 0, add_w = 0;
  for (const Weighted& entry : all) {
    if (entry.weight < ctx.options.loo_min_weight * total || !entry.candidate->loo) continue;
    const std::vector<double> loo = entry.candidate->loo();
    if (static_cast<int>(loo.size()) != count) continue;
    for (int i = 0; i < count; ++i) {
      if (entry.candidate->additive) {
        add[i] += entry.weight * std::exp(loo[i] - ctx.log_ybar);
      } else {
        lin[i] += entry.weight * loo[i];
      }
    }
    (entry.candidate->additive ? add_w : lin_w) += entry.weight;
  }
  if (lin_w == 0 && add_w == 0) return {};
  // A group none of whose candidates could be refitted lends its share to the other.
  double add_share = add_weight;
  if (add_w == 0) add_share = 0;
  if (lin_w == 0) add_share = 1;
  std::vector<double> out(count);
  for (int i = 0; i < count; ++i) {
    double v = 0;
    if (lin_w > 0) v += (1 - add_share) * lin[i] / lin_w;
    if (add_w > 0) v += add_share * (ctx.log_ybar + std::log(std::max(add[i] / add_w, 1e-300)));
    out[i] = v;
  }
  return out;
}

}  // namespace

Combined Combine(const AdaptContext& ctx, const std::vector<PartCandidates>& parts) {
  Combined result;
  double top = -INFINITY, mass = 0;
  for (const PartCandidates& part : parts) {
    if (part.candidates.empty()) continue;
    mass += part.mass;
    for (const Candidate& c : part.candidates) top = std::max(top, c.evidence);
  }
  std::vector<Weighted> all;
  std::vector<double> avg(ctx.p2, 0.0), add(ctx.coef_size, 0.0);
  double total = 0, add_total = 0, descriptor_total = 0;
  for (const PartCandidates& part : parts) {
    const bool descriptor = std::string_view(part.part) == "descriptor";
    for (const Candidate& c : part.candidates) {
      const double w = part.mass * std::exp(c.evidence - top) /
                       static_cast<double>(part.candidates.size());
      all.push_back({&c, w});
      total += w;
      if (descriptor) descriptor_total += w;
      std::vector<double>& sum = c.additive ? add : avg;
      if (c.additive) add_total += w;
      for (size_t k = 0; k < c.theta.size(); ++k) sum[k] += w * c.theta[k];
    }
  }
  DeviceHead& head = result.head;
  head.z = ctx.prior.mean;  // with no candidate at all: the prior mean
  head.z.resize(ctx.dim);
  head.b = ctx.prior.mean[ctx.dim];
  double add_weight = 0;
  if (total > 0) {
    for (double& v : avg) v /= total;
    head.z.assign(avg.begin(), avg.begin() + ctx.dim);
    head.b = avg[ctx.dim];
    bool residual = false;
    for (int k = ctx.p; k < ctx.p2; ++k) residual |= avg[k] != 0;
    if (residual) head.w.assign(avg.begin() + ctx.p, avg.end());
    result.log_evidence = top + std::log(total) - std::log(std::max(1.0, mass));
    if (add_total > 1e-6 * total) {
      add_weight = add_total / total;
      for (double& v : add) v /= add_total;
      head.add_weight = add_weight;
      head.add_log_scale = ctx.log_ybar;
      head.add_bias = add[0];
      head.add_w.assign(add.begin() + 1, add.begin() + 1 + ctx.f);
      for (int k = 0; k < ctx.exp_costs; ++k) {
        const int j = ctx.first_cost - ctx.p + k;
        if (add[1 + ctx.f + k] != 0) {
          head.add_exp.push_back({j, add[1 + ctx.f + k], ctx.feature_scale(j)});
        }
      }
    }
  }
  const size_t n = ctx.archs.size();
  std::vector<double> fitted(n);
  ctx.model.Predict(head, ctx.archs, fitted.data());
  FitStats& fit = head.fit;
  fit.samples = static_cast<int>(n);
  fit.descriptor_weight = total > 0 ? descriptor_total / total : 0;
  fit.fit_spearman = n >= 2 ? core::Spearman(ctx.truth, fitted) : 0;
  if (!std::isfinite(fit.fit_spearman)) fit.fit_spearman = 0;
  fit.fit_mape = core::Mape(ctx.truth, fitted);
  if (n >= 3 && total > 0) {
    const std::vector<double> loo = ServedLeaveOneOut(ctx, all, total, add_weight);
    if (!loo.empty()) {
      std::vector<double> truth(ctx.truth.begin(), ctx.truth.begin() + loo.size());
      std::vector<double> predicted(loo.size());
      std::vector<double> misses(loo.size());
      for (size_t i = 0; i < loo.size(); ++i) {
        predicted[i] = std::exp(loo[i]);
        misses[i] = std::abs(ctx.y[i] - loo[i]);
      }
      fit.loo_mape = core::Mape(truth, predicted);
      fit.loo_log_sd = 1.4826 * core::Median(misses);
    }
  }
  return result;
}

}  // namespace latpred::predictor
