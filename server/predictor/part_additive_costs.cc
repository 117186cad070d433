// additive_costs: latency = c0 + sum over the analytic costs k (FLOPs, params, bytes,
// kernels) of a_k * cost_k(a) / its typical value, every rate a_k >= 0: the costs are
// sums over the layers, so a device that runs layers one after another adds them up.
// It runs where positions differ (fbnet's stages); on nb201 every cost is a sum over
// edges of what each operation costs, which the additive part already fits.
#include <memory>

#include "additive.h"
#include "parts.h"

namespace latpred::predictor {
namespace {

class AdditiveCostsPart : public Part {
 public:
  const char* name() const override { return "additive_costs"; }
  void Score(const AdaptContext& ctx, std::vector<Candidate>* out) const override {
    for (const SumModel& model : SumModels(ctx)) {
      if (!model.counts) ScorePlainSum(ctx, model, ctx.options.additive_cost_variances, out);
    }
  }
};

}  // namespace

std::unique_ptr<Part> MakeAdditiveCostsPart() { return std::make_unique<AdditiveCostsPart>(); }

}  // namespace latpred::predictor
