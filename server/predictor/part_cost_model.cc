// cost_model: log latency = b + x(a) . w with no embedding at all: how latency scales
// with the architecture's features (operations at each position; FLOPs, params, bytes,
// kernels), w ~ N(0, diag of a grid of variances), b nearly flat. A device unlike every
// source (a desktop GPU learned from edge accelerators) falls back on it instead of on a
// misleading embedding prior.
#include <memory>

#include "parts.h"

namespace latpred::predictor {
namespace {

class CostModelPart : public Part {
 public:
  const char* name() const override { return "cost_model"; }
  void Score(const AdaptContext& ctx, std::vector<Candidate>* out) const override {
    const AdaptOptions& o = ctx.options;
    const auto design = ctx.MakeDesign(true, Columns{}, 0);
    for (double op_var : o.cost_model_op_variances) {
      for (double cost_var : o.cost_model_cost_variances) {
        auto var = std::make_shared<std::vector<double>>(ctx.p2, 0.0);
        (*var)[ctx.dim] = kBiasPriorVariance;
        for (int i = ctx.p; i < ctx.p2; ++i) (*var)[i] = i >= ctx.first_cost ? cost_var : op_var;
        for (double noise : ctx.NoiseGrid(o.cost_model_noise_scales)) {
          ctx.ScoreLinear(design, [var, noise] {
            return AdaptContext::BlockPrior(nullptr, std::vector<double>(var->size(), 0.0),
                                            *var, noise);
          }, out);
        }
      }
    }
  }
};

}  // namespace

std::unique_ptr<Part> MakeCostModelPart() { return std::make_unique<CostModelPart>(); }

}  // namespace latpred::predictor
