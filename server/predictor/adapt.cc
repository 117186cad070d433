// Adapting a device head from a few samples: Bayesian linear regression on the base
// model's embedding h(a), with an empirical-Bayes choice of the prior.
//
// The prior mean is either the average source head or one source head (the source
// device most like the target, as NASFLAT initialises a new device); its covariance is
// the spread of the source heads, scaled; the noise is the base model's residual
// variance, scaled. Every combination on a small grid is scored by the marginal
// likelihood (evidence) of the samples, and the posterior mean under the best one is
// the head. All of it is closed form in dim + 1 dimensions: milliseconds, not seconds.
#include <chrono>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "latpred/core/stats.h"
#include "latpred/predictor/predictor.h"
#include "prior.h"

namespace latpred::predictor {
namespace {

constexpr double kAlphas[] = {0.25, 1.0, 4.0};
constexpr double kBetas[] = {0.01, 0.1, 1.0};
constexpr double kNoiseScales[] = {0.5, 2.0, 8.0};
// Leave-one-out refits are cheap; cap them so that thousands of samples stay fast.
constexpr int kMaxLooSamples = 200;

// Sufficient statistics of the samples for a linear model in theta.
struct Gram {
  Matrix xtx;
  std::vector<double> xty;
  double yty = 0;
  int n = 0;
};

Gram MakeGram(const std::vector<double>& rows, const std::vector<double>& y, int p,
              int skip = -1) {
  Gram g;
  g.xtx = Matrix(p);
  g.xty.assign(p, 0);
  for (size_t i = 0; i < y.size(); ++i) {
    if (static_cast<int>(i) == skip) continue;
    const double* x = &rows[i * p];
    for (int a = 0; a < p; ++a) {
      g.xty[a] += x[a] * y[i];
      for (int b = 0; b < p; ++b) g.xtx(a, b) += x[a] * x[b];
    }
    g.yty += y[i] * y[i];
    ++g.n;
  }
  return g;
}

// Posterior of theta under prior N(mean, cov) and noise variance noise; returns the
// log evidence and writes the posterior mean.
double Posterior(const Gram& g, const std::vector<double>& mean, const Matrix& cov_lower,
                 const Matrix& cov_inv, double noise, std::vector<double>* post_mean) {
  const int p = cov_inv.n;
  Matrix a(p);
  std::vector<double> rhs(p, 0);
  for (int i = 0; i < p; ++i) {
    for (int j = 0; j < p; ++j) {
      a(i, j) = cov_inv(i, j) + g.xtx(i, j) / noise;
      rhs[i] += cov_inv(i, j) * mean[j];
    }
    rhs[i] += g.xty[i] / noise;
  }
  Matrix a_lower;
  if (!Cholesky(a, &a_lower)) return -INFINITY;
  *post_mean = CholeskySolve(a_lower, rhs);
  double quad = g.yty / noise + Quadratic(mean, cov_inv, mean) - Quadratic(*post_mean, a, *post_mean);
  return -0.5 * (g.n * std::log(2 * M_PI * noise) + CholeskyLogDet(cov_lower) +
                 CholeskyLogDet(a_lower) + quad);
}

// One prior setting on the grid, factorised once.
struct PriorSetting {
  const std::vector<double>* mean;
  Matrix cov_lower;
  Matrix cov_inv;
  double noise;
};

DeviceHead HeadFrom(const std::vector<double>& theta, int dim) {
  DeviceHead head;
  head.z.assign(theta.begin(), theta.begin() + dim);
  head.b = theta[dim];
  return head;
}

}  // namespace

HeadPrior SourcePrior(const BaseModel& model) {
  HeadPrior prior;
  const int dim = model.embedding_dim();
  prior.dim = dim;
  prior.mean.assign(dim + 1, 0);
  for (const std::string& name : model.source_devices()) {
    const DeviceHead* h = model.SourceHead(name);
    std::vector<double> theta(h->z);
    theta.push_back(h->b);
    for (int i = 0; i <= dim; ++i) prior.mean[i] += theta[i];
    prior.sources.push_back(std::move(theta));
  }
  const double count = static_cast<double>(prior.sources.size());
  for (double& m : prior.mean) m /= count;
  prior.z_cov = Matrix(dim);
  for (const auto& theta : prior.sources) {
    for (int i = 0; i < dim; ++i) {
      for (int j = 0; j < dim; ++j) {
        prior.z_cov(i, j) += (theta[i] - prior.mean[i]) * (theta[j] - prior.mean[j]) / count;
      }
    }
  }
  double trace = 0;
  for (int i = 0; i < dim; ++i) trace += prior.z_cov(i, i);
  prior.z_scale = std::max(1e-4, trace / dim);
  return prior;
}

Matrix PriorCovariance(const HeadPrior& prior, double alpha, double beta) {
  const int dim = prior.dim;
  Matrix cov(dim + 1);
  for (int i = 0; i < dim; ++i) {
    for (int j = 0; j < dim; ++j) cov(i, j) = alpha * prior.z_cov(i, j);
    cov(i, i) += alpha * beta * prior.z_scale;
  }
  cov(dim, dim) = kBiasPriorVariance;
  return cov;
}

std::vector<double> DesignRows(const BaseModel& model,
                               const std::vector<core::Architecture>& archs) {
  const int dim = model.embedding_dim();
  std::vector<double> h = model.Embed(archs);
  std::vector<double> rows(archs.size() * (dim + 1));
  for (size_t i = 0; i < archs.size(); ++i) {
    std::copy(&h[i * dim], &h[i * dim] + dim, &rows[i * (dim + 1)]);
    rows[i * (dim + 1) + dim] = 1.0;
  }
  return rows;
}

DeviceHead BaseModel::Prior() const {
  HeadPrior prior = SourcePrior(*this);
  return HeadFrom(prior.mean, prior.dim);
}

absl::StatusOr<DeviceHead> BaseModel::Adapt(const std::vector<Observation>& observations) const {
  auto start = std::chrono::steady_clock::now();
  if (observations.empty()) {
    return absl::FailedPreconditionError("no samples to adapt on: submit samples first");
  }
  std::vector<core::Architecture> archs;
  std::vector<double> y, truth;
  for (size_t i = 0; i < observations.size(); ++i) {
    double v = observations[i].latency_ms;
    if (!(v > 0) || !std::isfinite(v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sample ", i, ": latency_ms must be a positive finite number, got ", v));
    }
    archs.push_back(observations[i].arch);
    y.push_back(std::log(v));
    truth.push_back(v);
  }
  const HeadPrior prior = SourcePrior(*this);
  const int p = prior.dim + 1;
  const std::vector<double> rows = DesignRows(*this, archs);
  const Gram gram = MakeGram(rows, y, p);

  // Prior means: the average source head and every source head.
  std::vector<const std::vector<double>*> means = {&prior.mean};
  for (const auto& s : prior.sources) means.push_back(&s);

  double best = -INFINITY;
  std::vector<double> best_theta = prior.mean;
  PriorSetting best_setting{&prior.mean, Matrix(), Matrix(), noise_variance()};
  for (double alpha : kAlphas) {
    for (double beta : kBetas) {
      Matrix cov = PriorCovariance(prior, alpha, beta);
      Matrix lower;
      if (!Cholesky(cov, &lower)) continue;
      Matrix inv = CholeskyInverse(lower);
      for (double scale : kNoiseScales) {
        const double noise = scale * noise_variance();
        for (const std::vector<double>* mean : means) {
          std::vector<double> theta;
          double evidence = Posterior(gram, *mean, lower, inv, noise, &theta);
          if (evidence > best) {
            best = evidence;
            best_theta = std::move(theta);
            best_setting = PriorSetting{mean, lower, inv, noise};
          }
        }
      }
    }
  }

  DeviceHead head = HeadFrom(best_theta, prior.dim);
  std::vector<double> fitted(archs.size());
  Predict(head, archs, fitted.data());
  head.fit.samples = static_cast<int>(archs.size());
  head.fit.fit_spearman = archs.size() >= 2 ? core::Spearman(truth, fitted) : 0;
  if (!std::isfinite(head.fit.fit_spearman)) head.fit.fit_spearman = 0;
  head.fit.fit_mape = core::Mape(truth, fitted);
  // Leave-one-out under the chosen prior setting.
  if (archs.size() >= 3 && best_setting.cov_inv.n == p) {
    const int loo_n = std::min<int>(kMaxLooSamples, static_cast<int>(archs.size()));
    std::vector<double> loo_truth, loo_pred;
    for (int i = 0; i < loo_n; ++i) {
      Gram g = MakeGram(rows, y, p, i);
      std::vector<double> theta;
      if (Posterior(g, *best_setting.mean, best_setting.cov_lower, best_setting.cov_inv,
                    best_setting.noise, &theta) == -INFINITY) {
        continue;
      }
      double log_pred = theta[prior.dim];
      for (int k = 0; k < prior.dim; ++k) log_pred += theta[k] * rows[i * p + k];
      loo_truth.push_back(truth[i]);
      loo_pred.push_back(std::exp(log_pred));
    }
    head.fit.loo_mape = loo_truth.empty() ? 0 : core::Mape(loo_truth, loo_pred);
  }
  head.fit.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return head;
}

}  // namespace latpred::predictor
