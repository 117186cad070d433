// Sums of costs in latency (additive.h).
#include "additive.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "latpred/core/stats.h"

namespace latpred::predictor {
namespace {

// Column `floor` replaced by the reference op's: a block's centred counts add up to 0,
// so the reference op's count is minus the sum of the columns, and the weights become
// costs relative to the op of column `floor`.
std::vector<double> WithFloorOp(std::vector<double> counts, size_t n, int width, int floor) {
  for (size_t i = 0; i < n; ++i) {
    double* row = &counts[i * width];
    double sum = 0;
    for (int c = 0; c < width; ++c) sum += row[c];
    row[floor] = -sum;
  }
  return counts;
}

// Weights [c0; one per column] of WithFloorOp's columns back to the layout's columns.
std::vector<double> FromFloorOp(std::vector<double> phi, int floor) {
  const double a = phi[1 + floor];
  for (size_t c = 1; c < phi.size(); ++c) phi[c] -= a;
  phi[1 + floor] = -a;
  return phi;
}

SumModel CountSum(const AdaptContext& ctx, Columns cc) {
  SumModel m;
  m.counts = true;
  m.width = cc.end - cc.begin;
  const int identity = ctx.space.identity_op();
  if (cc.begin == 0 && identity >= 0) m.floor = ctx.layout.column_of[identity];
  const AdaptContext* c = &ctx;
  m.columns = [c, cc](const std::vector<double>& xs, size_t n) {
    const std::vector<double> counts =
        OpCountRows(c->layout, xs, n, [c](int j) { return c->feature_scale(j); });
    return c->BlockColumns(counts, n, cc);
  };
  m.to_coef = [c, cc](const std::vector<double>& phi, std::vector<double>* coef) {
    for (int j = 0; j < c->f; ++j) {
      const int col = c->layout.column_of[j];
      if (col >= cc.begin && col < cc.end) (*coef)[1 + j] = phi[1 + col - cc.begin] * c->feature_scale(j);
    }
  };
  return m;
}

// FLOPs, params and bytes are encoded as log1p(cost): exp(scale * x) = (1 + cost) / exp(mean
// of log1p). Kernels are encoded linearly: x * scale / mean is their relative deviation.
SumModel CostSum(const AdaptContext& ctx) {
  auto features = std::make_shared<std::vector<int>>();
  for (int c = 0; c < core::SearchSpace::kCostFeatures; ++c) {
    const int j = ctx.first_cost - ctx.p + c;
    if (c == ctx.exp_costs && !(ctx.feature_mean(j) > 0)) continue;
    features->push_back(j);
  }
  SumModel m;
  m.width = static_cast<int>(features->size());
  const AdaptContext* c = &ctx;
  m.columns = [c, features](const std::vector<double>& xs, size_t n) {
    const int width = static_cast<int>(features->size());
    std::vector<double> columns(n * width);
    for (size_t i = 0; i < n; ++i) {
      for (int k = 0; k < width; ++k) {
        const int j = (*features)[k];
        const double v = xs[i * c->f + j] * c->feature_scale(j);
        columns[i * width + k] = k < c->exp_costs ? std::expm1(v) : v / c->feature_mean(j);
      }
    }
    return columns;
  };
  m.to_coef = [c, features](const std::vector<double>& phi, std::vector<double>* coef) {
    for (size_t k = 0; k < features->size(); ++k) {
      const int j = (*features)[k];
      if (static_cast<int>(k) < c->exp_costs) {
        (*coef)[0] -= phi[1 + k];
        (*coef)[1 + c->f + k] = phi[1 + k];
      } else {
        (*coef)[1 + j] = phi[1 + k] * c->feature_scale(j) / c->feature_mean(j);
      }
    }
  };
  return m;
}

// The plain sum's columns and weights: with a floor column, that column stands for the
// reference op's count, so that a prior truncated at 0 holds the floor op the cheapest.
std::vector<double> PlainSumFloorColumns(const SumModel& model, std::vector<double> columns,
                                         size_t n) {
  return model.floor < 0 ? columns : WithFloorOp(std::move(columns), n, model.width, model.floor);
}

std::vector<double> PlainSumWeights(const SumModel& model, const std::vector<double>& phi) {
  return model.floor < 0 ? phi : FromFloorOp(phi, model.floor);
}

}  // namespace

std::vector<SumModel> SumModels(const AdaptContext& ctx) {
  std::vector<SumModel> models;
  if (ctx.space.positions_interchangeable() && !ctx.told_apart.empty()) {
    for (const Columns& cc : ctx.told_apart) models.push_back(CountSum(ctx, cc));
  } else {
    models.push_back(CostSum(ctx));
  }
  return models;
}

std::vector<double> WithIntercept(const std::vector<double>& columns, size_t n, int width) {
  const int q = 1 + width;
  std::vector<double> rows(n * q);
  for (size_t i = 0; i < n; ++i) {
    rows[i * q] = 1;
    std::copy(&columns[i * width], &columns[(i + 1) * width], &rows[i * q + 1]);
  }
  return rows;
}

void ScoreSum(const AdaptContext& ctx, const SumModel& model, const std::vector<double>& rows,
              int q, const std::vector<double>& mean, const std::vector<double>& var,
              const std::vector<int>& truncated,
              const std::function<std::vector<double>(const std::vector<double>&)>& phi_to_add,
              std::vector<Candidate>* out) {
  const size_t n = ctx.archs.size();
  const double floor = ctx.options.additive_fit_floor;
  auto design = std::make_shared<Design>();
  design->rows.resize(n * q);
  design->q = q;
  for (size_t i = 0; i < n; ++i) {
    const double inv_t = std::exp(ctx.log_ybar - ctx.y[i]);
    for (int k = 0; k < q; ++k) design->rows[i * q + k] = rows[i * q + k] * inv_t;
  }
  const std::vector<double> ones(n, 1.0);
  design->gram = MakeGram(design->rows, ones, q);
  std::vector<double> residual(n);
  for (double noise : ctx.NoiseGrid(ctx.options.additive_noise_scales)) {
    const PriorSetting setting = AdaptContext::BlockPrior(nullptr, mean, var, noise);
    std::vector<double> phi;
    Matrix precision_lower;
    double evidence = Posterior(design->gram, setting.mean, setting.cov_lower, setting.cov_inv,
                                noise, &phi, &precision_lower);
    if (evidence == -INFINITY) continue;
    // Each truncated weight's marginal probability of the region, posterior over prior.
    const Matrix post_cov = CholeskyInverse(precision_lower);
    for (int c : truncated) {
      const double sd = std::sqrt(std::max(post_cov(c, c), 1e-300));
      const double prior_sd = std::sqrt(setting.cov(c, c));
      const double inside = 0.5 * std::erfc(-phi[c] / (sd * M_SQRT2));
      const double prior_inside = 0.5 * std::erfc(-mean[c] / (prior_sd * M_SQRT2));
      evidence += std::log(std::max(inside, 1e-300) / std::max(prior_inside, 1e-300));
    }
    for (size_t i = 0; i < n; ++i) {
      double fit = 0;
      for (int k = 0; k < q; ++k) fit += rows[i * q + k] * phi[k];
      residual[i] = ctx.y[i] - ctx.log_ybar - std::log(std::max(fit, floor));
    }
    const double level = std::exp(core::Median(residual));
    std::vector<double> add_phi = phi_to_add(phi);
    for (double& v : add_phi) v *= level;
    Candidate cand;
    cand.evidence = evidence;
    cand.additive = true;
    cand.theta.assign(ctx.coef_size, 0.0);
    cand.theta[0] = add_phi[0];
    model.to_coef(add_phi, &cand.theta);
    // Leave-one-out under the untruncated posterior, the level kept.
    const AdaptContext* c = &ctx;
    cand.loo = [c, design, mean, var, noise, level, floor] {
      const int count = LooSamples(*c);
      const std::vector<double> ones(c->y.size(), 1.0);
      std::vector<double> loo = LeaveOneOut(
          *design, ones, AdaptContext::BlockPrior(nullptr, mean, var, noise), count);
      for (size_t i = 0; i < loo.size(); ++i) {
        const double fit = loo[i] * std::exp(c->y[i] - c->log_ybar) * level;
        loo[i] = c->log_ybar + std::log(std::max(fit, floor));
      }
      return loo;
    };
    out->push_back(std::move(cand));
  }
}

void ScorePlainSum(const AdaptContext& ctx, const SumModel& model,
                   const std::vector<double>& variances, std::vector<Candidate>* out) {
  const size_t n = ctx.archs.size();
  const int q = 1 + model.width;
  const std::vector<double> rows =
      WithIntercept(PlainSumFloorColumns(model, model.columns(ctx.x, n), n), n, model.width);
  std::vector<int> every_weight;
  for (int c = 1; c < q; ++c) every_weight.push_back(c);
  std::vector<double> mean(q, 0.0), var(q);
  mean[0] = 1;
  for (double v : variances) {
    std::fill(var.begin(), var.end(), v);
    var[0] = kBiasPriorVariance;
    ScoreSum(ctx, model, rows, q, mean, var, every_weight,
             [&model](const std::vector<double>& phi) { return PlainSumWeights(model, phi); }, out);
  }
}

}  // namespace latpred::predictor
