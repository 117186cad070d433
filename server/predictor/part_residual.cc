// residual: the embedding's head plus x(a) . w, a weight per standardised feature (each
// operation at each position, and the analytic costs), w ~ N(0, diag of a grid of
// variances), on top of each of the best embedding settings. Where positions are
// interchangeable (nb201's edges) a weight per operation shared by every position comes
// first and each position deviates from it. It lets a device that the sources do not
// span correct per-operation costs once its samples show it.
#include <memory>

#include "parts.h"

namespace latpred::predictor {
namespace {

class ResidualPart : public Part {
 public:
  const char* name() const override { return "residual"; }
  void Score(const AdaptContext& ctx, std::vector<Candidate>* out) const override {
    const AdaptOptions& o = ctx.options;
    const int counts = ctx.layout.columns;
    const bool shared = counts > 0 && ctx.space.positions_interchangeable();
    const auto design = ctx.MakeDesign(true, shared ? Columns{0, counts} : Columns{}, 0);
    const int shared_params = shared ? counts : 0;
    for (const PriorSetting& base : ctx.top_embedding) {
      for (double op_var : o.op_residual_variances) {
        for (double cost_var : o.cost_residual_variances) {
          if (op_var == 0 && cost_var == 0) continue;  // that is the embedding alone
          auto var = std::make_shared<std::vector<double>>(shared_params + ctx.f,
                                                           o.shared_op_variance);
          for (int j = 0; j < ctx.f; ++j) {
            (*var)[shared_params + j] = ctx.p + j >= ctx.first_cost ? cost_var : op_var;
          }
          const PriorSetting* head = &base;
          ctx.ScoreLinear(design, [head, var] {
            return AdaptContext::BlockPrior(head, std::vector<double>(var->size(), 0.0), *var,
                                            head->noise);
          }, out);
        }
      }
    }
  }
};

}  // namespace

std::unique_ptr<Part> MakeResidualPart() { return std::make_unique<ResidualPart>(); }

}  // namespace latpred::predictor
