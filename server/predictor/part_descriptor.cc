// descriptor: log latency = h(a) . z + b as in the embedding part, with the prior that
// the device's descriptor implies (latpred/predictor/descriptor.h): mean the head that the
// map from descriptors to heads gives the target; covariance the spread with which that
// map predicted held-out devices' heads, times each alpha, on the shape z (the speed b as
// flat as the embedding's: samples fix the scale); noise on the embedding's grid. Absent
// where the target has no descriptor or the map learned nothing from the devices'
// descriptors, so a descriptor that carries nothing costs nothing; where it carries
// something its tight prior on the shape z wins on evidence with few samples and yields
// to the other parts as samples add up. With no samples the map's mean, speed included,
// is the zero-shot head (BaseModel::ZeroShot).
#include <memory>

#include "parts.h"

namespace latpred::predictor {
namespace {

PriorSetting MakeSetting(const DescriptorPrior& d, double alpha, double noise) {
  PriorSetting setting;
  const int p = static_cast<int>(d.mean.size());
  setting.mean = d.mean;
  setting.cov = Matrix(p);
  for (int i = 0; i < p * p; ++i) setting.cov.a[i] = alpha * d.cov[i];
  // The speed b: as flat as the embedding's once there are samples (they fix the scale;
  // a tight prior on b would win the evidence on level alone, whatever the shape).
  for (int i = 0; i < p; ++i) setting.cov(i, p - 1) = setting.cov(p - 1, i) = 0;
  setting.cov(p - 1, p - 1) = kBiasPriorVariance;
  if (Cholesky(setting.cov, &setting.cov_lower)) setting.cov_inv = CholeskyInverse(setting.cov_lower);
  setting.noise = noise;
  return setting;
}

class DescriptorPart : public Part {
 public:
  const char* name() const override { return "descriptor"; }
  double Mass(const AdaptContext& ctx) const override {
    const double mass = ctx.options.descriptor_prior_mass;
    return CountSumsHold(ctx) ? mass * ctx.options.embedding_prior_mass : mass;
  }
  void Score(const AdaptContext& ctx, std::vector<Candidate>* out) const override {
    if (ctx.descriptor == nullptr || static_cast<int>(ctx.descriptor->mean.size()) != ctx.p) return;
    const DescriptorPrior& d = *ctx.descriptor;
    const auto design =
        std::make_shared<const Design>(Design{ctx.rows, ctx.p, MakeGram(ctx.rows, ctx.y, ctx.p)});
    for (double alpha : ctx.options.descriptor_alphas) {
      for (double noise : ctx.NoiseGrid(ctx.options.noise_scales)) {
        const PriorSetting setting = MakeSetting(d, alpha, noise);
        if (setting.cov_lower.n != ctx.p) continue;
        Candidate c;
        c.evidence = Posterior(design->gram, setting.mean, setting.cov_lower, setting.cov_inv,
                               noise, &c.theta);
        if (c.evidence == -INFINITY) continue;
        const AdaptContext* context = &ctx;
        c.loo = [context, setting, design] {
          return LeaveOneOut(*design, context->y, setting, LooSamples(*context));
        };
        out->push_back(std::move(c));
      }
    }
  }
};

}  // namespace

std::unique_ptr<Part> MakeDescriptorPart() { return std::make_unique<DescriptorPart>(); }

}  // namespace latpred::predictor
