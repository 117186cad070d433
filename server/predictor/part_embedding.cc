// embedding: log latency = h(a) . z + b, the base model's embedding h with a head (z, b)
// whose Gaussian prior comes from the source devices: mean the average source head or
// one source head (the device most like the target, as NASFLAT starts a new device),
// covariance alpha times the sources' spread plus beta times its scale, noise a multiple
// of the base model's residual noise or a device's own level. Right when the target is
// like the sources; the additive parts take over where it is not.
#include <memory>

#include "parts.h"

namespace latpred::predictor {
namespace {

// One setting of the grid: the prior mean (-1: the average source head; else that
// source's head), the covariance's alpha and beta, the noise.
struct EmbeddingSetting {
  double alpha = 0, beta = 0, noise = 0;
  int mean = -1;
};

PriorSetting MakeSetting(const HeadPrior& prior, const EmbeddingSetting& s) {
  PriorSetting setting;
  setting.mean = s.mean < 0 ? prior.mean : prior.sources[s.mean];
  setting.cov = PriorCovariance(prior, s.alpha, s.beta);
  if (Cholesky(setting.cov, &setting.cov_lower)) setting.cov_inv = CholeskyInverse(setting.cov_lower);
  setting.noise = s.noise;
  return setting;
}

class EmbeddingPart : public Part {
 public:
  const char* name() const override { return "embedding"; }
  double Mass(const AdaptContext& ctx) const override {
    return CountSumsHold(ctx) ? ctx.options.embedding_prior_mass : 1;
  }
  void Score(const AdaptContext& ctx, std::vector<Candidate>* out) const override {
    const AdaptOptions& o = ctx.options;
    const HeadPrior& prior = ctx.prior;
    const auto design =
        std::make_shared<const Design>(Design{ctx.rows, ctx.p, MakeGram(ctx.rows, ctx.y, ctx.p)});
    for (double alpha : o.alphas) {
      for (double beta : o.betas) {
        const Matrix cov = PriorCovariance(prior, alpha, beta);
        Matrix lower;
        if (!Cholesky(cov, &lower)) continue;
        const Matrix inv = CholeskyInverse(lower);
        for (double noise : ctx.NoiseGrid(o.noise_scales)) {
          for (int mean = -1; mean < static_cast<int>(prior.sources.size()); ++mean) {
            const std::vector<double>& m = mean < 0 ? prior.mean : prior.sources[mean];
            Candidate c;
            c.evidence = Posterior(design->gram, m, lower, inv, noise, &c.theta);
            if (c.evidence == -INFINITY) continue;
            const EmbeddingSetting s{alpha, beta, noise, mean};
            const AdaptContext* context = &ctx;
            c.loo = [context, s, design] {
              return LeaveOneOut(*design, context->y, MakeSetting(context->prior, s),
                                 LooSamples(*context));
            };
            out->push_back(std::move(c));
          }
        }
      }
    }
  }
};

}  // namespace

std::unique_ptr<Part> MakeEmbeddingPart() { return std::make_unique<EmbeddingPart>(); }

}  // namespace latpred::predictor
