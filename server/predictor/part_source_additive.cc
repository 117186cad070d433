// source_additive: latency = c0 + s * (a source device's sum) + small deviations, for
// each source device: the sum of the additive parts (count blocks or analytic costs)
// with a source's costs as its prior mean up to a scale s ~ N(1, 1), s >= 0, each
// deviation ~ N(0, (spread * that cost)^2 + floor). A new device often shares a source's
// relative costs (the same kind of processor and kernels) and differs in speed and fixed
// overhead: two parameters near their prior, and deviations where it differs. A
// source's costs are read off its head: least squares of its predicted latency on a fixed
// random set of the space's architectures, negative costs clipped to 0.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

#include "additive.h"
#include "parts.h"

namespace latpred::predictor {
namespace {

// Fixed seed of the reference architectures: every fit reads a source the same way.
constexpr uint64_t kReferenceSeed = 0x6c617470726564;

// Each source's weights [c0; per column] of a sum, relative to its geometric mean over
// the samples (as t is relative to theirs).
std::vector<std::vector<double>> SourceWeights(const AdaptContext& ctx, const SumModel& model,
                                               const std::vector<double>& reference_rows,
                                               const std::vector<double>& reference_x,
                                               size_t references) {
  const int qa = 1 + model.width;
  const std::vector<double> design =
      WithIntercept(model.columns(reference_x, references), references, model.width);
  std::vector<std::vector<double>> weights;
  std::vector<double> t(references);
  for (const std::vector<double>& theta : ctx.prior.sources) {
    double level = 0;
    for (size_t i = 0; i < ctx.archs.size(); ++i) {
      for (int k = 0; k < ctx.p; ++k) level += ctx.rows[i * ctx.p + k] * theta[k];
    }
    level /= static_cast<double>(ctx.archs.size());
    for (size_t r = 0; r < references; ++r) {
      double log_t = -level;
      for (int k = 0; k < ctx.p; ++k) log_t += reference_rows[r * ctx.p + k] * theta[k];
      t[r] = std::exp(log_t);
    }
    Gram g = MakeGram(design, t, qa);
    for (int i = 0; i < qa; ++i) g.xtx(i, i) += 1e-9 * (1 + g.xtx(i, i));
    Matrix lower;
    if (!Cholesky(g.xtx, &lower)) continue;
    std::vector<double> w = CholeskySolve(lower, g.xty);
    bool finite = true;
    for (const double v : w) finite = finite && std::isfinite(v);
    if (!finite) continue;
    for (int c = 1; c < qa; ++c) w[c] = std::max(0.0, w[c]);
    weights.push_back(std::move(w));
  }
  return weights;
}

class SourceAdditivePart : public Part {
 public:
  const char* name() const override { return "source_additive"; }
  void Score(const AdaptContext& ctx, std::vector<Candidate>* out) const override {
    if (ctx.prior.sources.empty()) return;
    const AdaptOptions& o = ctx.options;
    std::mt19937_64 rng(kReferenceSeed);
    std::uniform_int_distribution<int> pick(0, ctx.space.num_ops() - 1);
    std::vector<core::Architecture> reference(o.reference_archs);
    for (core::Architecture& a : reference) {
      a.ops.resize(ctx.space.num_positions());
      for (auto& op : a.ops) op = static_cast<uint8_t>(pick(rng));
    }
    const std::vector<double> reference_rows = DesignRows(ctx.model, reference);
    const std::vector<double> reference_x = ctx.model.Features(reference);
    const size_t n = ctx.archs.size();
    for (const SumModel& model : SumModels(ctx)) {
      const int qa = 1 + model.width;
      const int qs = qa + 1;
      const std::vector<double> columns = model.columns(ctx.x, n);
      for (const std::vector<double>& w :
           SourceWeights(ctx, model, reference_rows, reference_x, reference.size())) {
        std::vector<double> rows(n * qs), mean(qs, 0.0), var(qs);
        for (size_t i = 0; i < n; ++i) {
          const double* col = &columns[i * model.width];
          double shape = 0;
          for (int c = 1; c < qa; ++c) shape += w[c] * col[c - 1];
          rows[i * qs] = 1;
          rows[i * qs + 1] = shape;
          std::copy(col, col + model.width, &rows[i * qs + 2]);
        }
        mean[0] = w[0];
        mean[1] = 1;
        var[0] = kBiasPriorVariance;
        var[1] = o.source_scale_variance;
        const auto collapse = [&w, qa](const std::vector<double>& phi) {
          std::vector<double> add(qa);
          add[0] = phi[0];
          for (int c = 1; c < qa; ++c) add[c] = phi[1] * w[c] + phi[1 + c];
          return add;
        };
        for (double spread : o.source_additive_spreads) {
          for (int c = 1; c < qa; ++c) {
            var[1 + c] = std::pow(spread * w[c], 2) + o.source_additive_floor;
          }
          ScoreSum(ctx, model, rows, qs, mean, var, {1}, collapse, out);
        }
      }
    }
  }
};

}  // namespace

std::unique_ptr<Part> MakeSourceAdditivePart() { return std::make_unique<SourceAdditivePart>(); }

}  // namespace latpred::predictor
