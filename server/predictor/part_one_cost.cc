// one_cost: latency = e^b * cost^s for one analytic cost (FLOPs, params, bytes or
// kernels), s ~ N(1, sd^2): a compute-bound, memory-bound or launch-bound device (a
// desktop GPU at batch 1, where the kernel count alone ranks FBNet at 0.94-0.99). One
// free parameter besides the level, so a handful of samples can back it.
#include <cmath>
#include <memory>

#include "parts.h"

namespace latpred::predictor {
namespace {

class OneCostPart : public Part {
 public:
  const char* name() const override { return "one_cost"; }
  void Score(const AdaptContext& ctx, std::vector<Candidate>* out) const override {
    const AdaptOptions& o = ctx.options;
    const auto design = ctx.MakeDesign(true, Columns{}, 0);
    for (int c = 0; c < core::SearchSpace::kCostFeatures; ++c) {
      const int j = ctx.first_cost - ctx.p + c;
      // FLOPs, params and bytes are encoded as log1p(cost): the weight on the
      // standardised feature is slope * scale. Kernels are encoded as kernels / 100:
      // near its mean the power is a slope of 1 / mean per unit of the raw feature.
      const bool is_kernels = c == core::SearchSpace::kCostFeatures - 1;
      if (is_kernels && !(ctx.feature_mean(j) > 0)) continue;
      const double slope =
          is_kernels ? ctx.feature_scale(j) / ctx.feature_mean(j) : ctx.feature_scale(j);
      auto var = std::make_shared<std::vector<double>>(ctx.p2, 0.0);
      auto mean = std::make_shared<std::vector<double>>(ctx.p2, 0.0);
      (*var)[ctx.dim] = kBiasPriorVariance;
      (*var)[ctx.first_cost + c] = std::pow(o.cost_slope_prior_sd * slope, 2);
      (*mean)[ctx.first_cost + c] = slope;
      for (double noise : ctx.NoiseGrid(o.cost_model_noise_scales)) {
        ctx.ScoreLinear(design, [mean, var, noise] {
          return AdaptContext::BlockPrior(nullptr, *mean, *var, noise);
        }, out);
      }
    }
  }
};

}  // namespace

std::unique_ptr<Part> MakeOneCostPart() { return std::make_unique<OneCostPart>(); }

}  // namespace latpred::predictor
