// embedding: log latency = h(a) . z + b, the base model's embedding h with a head (z, b)
// whose Gaussian prior comes from the source devices: mean the average source head or
// one source head (the device most like the target, as NASFLAT starts a new device),
// covariance alpha times the sources' spread plus beta times its scale, noise a multiple
// of the base model's residual noise or a device's own level. Right when the target is
// like the sources; the additive parts take over where it is not.
#include "parts.h"

namespace latpred::predictor {
namespace {

class EmbeddingPart : public Part {
 public:
  const char* name() const override { return "embedding"; }
  double Mass(const AdaptContext& ctx) const override {
    return CountSumsHold(ctx) ? ctx.options.embedding_prior_mass : 1;
  }
  // The settings are scored once in AdaptContext.
  void Score(const AdaptContext& ctx, std::vector<Candidate>* out) const override {
    out->insert(out->end(), ctx.embedding_candidates.begin(), ctx.embedding_candidates.end());
  }
};

}  // namespace

std::unique_ptr<Part> MakeEmbeddingPart() { return std::make_unique<EmbeddingPart>(); }

}  // namespace latpred::predictor
