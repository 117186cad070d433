// additive: latency = c0 + sum over operations o of c_o * count_o(a), a cost per
// operation added up in latency (a runtime that runs a network's operations one after
// another adds their times; counts takes their product), c_o ~ N(0, v) truncated at 0
// relative to the block's floor op, for each count block the samples tell apart (nb201:
// every edge as written, the live edges, the edges with a path to the output). On live
// edges the truncation is exact: a pruned edge costs nothing.
#include <memory>

#include "additive.h"
#include "parts.h"

namespace latpred::predictor {

bool CountSumsHold(const AdaptContext& ctx) {
  return ctx.options.Enabled("additive") && ctx.space.positions_interchangeable() &&
         !ctx.told_apart.empty() && static_cast<int>(ctx.archs.size()) > ctx.layout.per_block;
}

namespace {

class AdditivePart : public Part {
 public:
  const char* name() const override { return "additive"; }
  double Mass(const AdaptContext& ctx) const override {
    return CountSumsHold(ctx) ? ctx.options.additive_prior_mass : 1;
  }
  void Score(const AdaptContext& ctx, std::vector<Candidate>* out) const override {
    for (const SumModel& model : SumModels(ctx)) {
      if (model.counts) ScorePlainSum(ctx, model, ctx.options.additive_count_variances, out);
    }
  }
};

}  // namespace

std::unique_ptr<Part> MakeAdditivePart() { return std::make_unique<AdditivePart>(); }

}  // namespace latpred::predictor
