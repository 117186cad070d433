// counts: log latency = b + sum over operations o of u_o * count_o(a), one weight per
// operation shared by every position that holds it, on top of the embedding's best
// settings or with the analytic costs alone (b nearly flat), u_o ~ N(0, a grid of
// variances). What an operation costs is mostly the same wherever it sits, so a handful
// of samples pins down a few u_o where per-position weights need many. Where the
// encoding has several count blocks (nb201: every edge, the live edges, the edges with a
// path to the output) each block the samples tell apart is a member of its own: a
// runtime runs dead edges, prunes them, or prunes those that lead nowhere.
#include <memory>

#include "parts.h"

namespace latpred::predictor {
namespace {

class CountsPart : public Part {
 public:
  const char* name() const override { return "counts"; }
  void Score(const AdaptContext& ctx, std::vector<Candidate>* out) const override {
    const AdaptOptions& o = ctx.options;
    const int counts = ctx.layout.columns;
    std::vector<Columns> sets;
    if (counts > 0) sets.push_back({0, counts});
    if (ctx.layout.blocks > 1) sets.insert(sets.end(), ctx.told_apart.begin(), ctx.told_apart.end());
    for (const Columns& cc : sets) {
      const int n_counts = cc.end - cc.begin;
      const auto with_embedding = ctx.MakeDesign(true, cc, ctx.f);
      const auto alone = ctx.MakeDesign(false, cc, ctx.one_hot);
      const int qc = alone->q;
      for (double v : o.count_variances) {
        for (const PriorSetting& base : ctx.top_embedding) {
          const PriorSetting* head = &base;
          ctx.ScoreLinear(with_embedding, [head, n_counts, v] {
            return AdaptContext::BlockPrior(head, std::vector<double>(n_counts, 0.0),
                                            std::vector<double>(n_counts, v), head->noise);
          }, out);
        }
        for (double cost_var : o.count_cost_variances) {
          auto var = std::make_shared<std::vector<double>>(qc, v);
          (*var)[0] = kBiasPriorVariance;
          for (int k = 1 + n_counts; k < qc; ++k) (*var)[k] = cost_var;
          for (double noise : ctx.NoiseGrid(o.cost_model_noise_scales)) {
            ctx.ScoreLinear(alone, [var, noise] {
              return AdaptContext::BlockPrior(nullptr, std::vector<double>(var->size(), 0.0),
                                              *var, noise);
            }, out);
          }
        }
      }
    }
  }
};

}  // namespace

std::unique_ptr<Part> MakeCountsPart() { return std::make_unique<CountsPart>(); }

}  // namespace latpred::predictor
