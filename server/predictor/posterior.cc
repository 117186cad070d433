// Closed-form Bayesian linear regression (see posterior.h).
#include "posterior.h"

#include <cmath>
#include <utility>

namespace latpred::predictor {

Gram MakeGram(const std::vector<double>& rows, const std::vector<double>& y, int p,
              int skip) {
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

double Posterior(const Gram& g, const std::vector<double>& mean, const Matrix& cov_lower,
                 const Matrix& cov_inv, double noise, std::vector<double>* post_mean,
                 Matrix* precision_lower) {
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
  const double evidence = -0.5 * (g.n * std::log(2 * M_PI * noise) +
                                  CholeskyLogDet(cov_lower) + CholeskyLogDet(a_lower) + quad);
  if (precision_lower != nullptr) *precision_lower = std::move(a_lower);
  return evidence;
}

namespace {

// K = X C X^T + noise I (n x n), with cx = X C (n x q) and r = y - X m written out.
Matrix SampleCovariance(const std::vector<double>& rows, const std::vector<double>& y, int q,
                        const PriorSetting& setting, std::vector<double>* cx,
                        std::vector<double>* r) {
  const int n = static_cast<int>(y.size());
  const int dense = setting.dense < 0 ? q : setting.dense;
  const Matrix& c = setting.cov;
  cx->assign(static_cast<size_t>(n) * q, 0.0);
  r->assign(n, 0.0);
  for (int i = 0; i < n; ++i) {
    const double* x = &rows[static_cast<size_t>(i) * q];
    double* out = &(*cx)[static_cast<size_t>(i) * q];
    for (int a = 0; a < dense; ++a) {
      if (x[a] == 0) continue;
      for (int b = 0; b < dense; ++b) out[b] += x[a] * c(a, b);
    }
    for (int b = dense; b < q; ++b) out[b] = x[b] * c(b, b);
    double fit = 0;
    for (int a = 0; a < q; ++a) fit += x[a] * setting.mean[a];
    (*r)[i] = y[i] - fit;
  }
  Matrix k(n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j <= i; ++j) {
      double v = 0;
      const double* a = &(*cx)[static_cast<size_t>(i) * q];
      const double* b = &rows[static_cast<size_t>(j) * q];
      for (int t = 0; t < q; ++t) v += a[t] * b[t];
      k(i, j) = k(j, i) = v;
    }
    k(i, i) += setting.noise;
  }
  return k;
}

}  // namespace

double PosteriorFromSamples(const std::vector<double>& rows, const std::vector<double>& y,
                            int q, const PriorSetting& setting, std::vector<double>* post_mean) {
  const int n = static_cast<int>(y.size());
  std::vector<double> cx, r;
  const Matrix k = SampleCovariance(rows, y, q, setting, &cx, &r);
  Matrix k_lower;
  if (!Cholesky(k, &k_lower)) return -INFINITY;
  const std::vector<double> alpha = CholeskySolve(k_lower, r);
  double quad = 0;
  for (int i = 0; i < n; ++i) quad += r[i] * alpha[i];
  post_mean->assign(setting.mean.begin(), setting.mean.end());
  for (int i = 0; i < n; ++i) {
    const double* a = &cx[static_cast<size_t>(i) * q];
    for (int t = 0; t < q; ++t) (*post_mean)[t] += a[t] * alpha[i];
  }
  return -0.5 * (n * std::log(2 * M_PI) + CholeskyLogDet(k_lower) + quad);
}

std::vector<double> LeaveOneOutPredictions(const std::vector<double>& rows,
                                           const std::vector<double>& y, int q,
                                           const PriorSetting& setting) {
  const int n = static_cast<int>(y.size());
  std::vector<double> cx, r;
  const Matrix k = SampleCovariance(rows, y, q, setting, &cx, &r);
  Matrix k_lower;
  if (!Cholesky(k, &k_lower)) return {};
  const std::vector<double> alpha = CholeskySolve(k_lower, r);
  const Matrix k_inv = CholeskyInverse(k_lower);
  std::vector<double> out(n);
  for (int i = 0; i < n; ++i) out[i] = y[i] - alpha[i] / k_inv(i, i);
  return out;
}

}  // namespace latpred::predictor
