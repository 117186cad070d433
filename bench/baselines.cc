#include "latpred/bench/baselines.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>

#include "latpred/core/stats.h"

namespace latpred::bench {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

LinearFit FitLeastSquares(const std::vector<double>& x, const std::vector<double>& y) {
  LinearFit fit;
  const size_t n = std::min(x.size(), y.size());
  if (n == 0) return fit;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
  }
  // Relative test: x may be FLOPs (1e8) or milliseconds.
  if (!(sxx > 1e-24 * std::max(1.0, mx * mx) * n)) {
    fit.b = my;
    return fit;
  }
  fit.a = sxy / sxx;
  fit.b = my - fit.a * mx;
  return fit;
}

std::vector<double> NearestSourcePredict(const std::vector<const std::vector<double>*>& sources,
                                         const std::vector<int>& sample_rows,
                                         const std::vector<double>& sample_latency,
                                         const std::vector<int>& predict_rows, int* chosen) {
  struct Candidate {
    int source;
    double rho;
    double fit_error;  // mean squared relative residual of the fit on the samples
    LinearFit fit;
  };
  std::vector<Candidate> candidates;
  for (size_t s = 0; s < sources.size(); ++s) {
    const std::vector<double>& col = *sources[s];
    std::vector<double> x;
    bool complete = true;
    for (int r : sample_rows) {
      double v = col[r];
      if (!std::isfinite(v)) {
        complete = false;
        break;
      }
      x.push_back(v);
    }
    if (!complete || x.empty()) continue;
    Candidate c;
    c.source = static_cast<int>(s);
    c.rho = core::Spearman(x, sample_latency);
    if (std::isnan(c.rho)) c.rho = -2;  // constant on the samples: ranks nothing
    c.fit = FitLeastSquares(x, sample_latency);
    c.fit_error = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      double rel = (c.fit(x[i]) - sample_latency[i]) / sample_latency[i];
      c.fit_error += rel * rel / x.size();
    }
    candidates.push_back(c);
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& p, const Candidate& q) {
                     if (p.rho != q.rho) return p.rho > q.rho;
                     return p.fit_error < q.fit_error;
                   });
  if (chosen != nullptr) *chosen = candidates.empty() ? -1 : candidates.front().source;
  const double fallback = sample_latency.empty() ? kNaN : Mean(sample_latency);
  std::vector<double> out(predict_rows.size(), fallback);
  for (size_t i = 0; i < predict_rows.size(); ++i) {
    for (const Candidate& c : candidates) {
      double v = (*sources[c.source])[predict_rows[i]];
      if (std::isfinite(v)) {
        out[i] = c.fit(v);
        break;
      }
    }
  }
  return out;
}

double RidgeFit::operator()(const std::vector<double>& x) const {
  double v = c0;
  for (size_t j = 0; j < c.size() && j < x.size(); ++j) v += c[j] * x[j];
  return v;
}

RidgeFit FitRidge(const std::vector<std::vector<double>>& x, const std::vector<double>& y,
                  double relative_ridge) {
  RidgeFit fit;
  const size_t n = std::min(x.size(), y.size());
  const size_t d = n == 0 ? 0 : x[0].size();
  fit.c.assign(d, 0.0);
  if (n == 0) return fit;
  // Centring profiles out the intercept, so that the ridge leaves it alone.
  std::vector<double> mx(d, 0.0);
  double my = 0;
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < d; ++j) mx[j] += x[i][j] / n;
    my += y[i] / n;
  }
  fit.c0 = my;
  // a = Xc'Xc (+ lambda I), b = Xc'yc; a is stored full, d is at most a few dozen.
  std::vector<double> a(d * d, 0.0), b(d, 0.0);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < d; ++j) {
      const double xj = x[i][j] - mx[j];
      b[j] += xj * (y[i] - my);
      for (size_t l = 0; l <= j; ++l) a[j * d + l] += xj * (x[i][l] - mx[l]);
    }
  }
  double trace = 0;
  for (size_t j = 0; j < d; ++j) trace += a[j * d + j];
  if (!(trace > 0)) return fit;
  const double lambda = relative_ridge * trace;
  for (size_t j = 0; j < d; ++j) a[j * d + j] += lambda;
  // Cholesky, lower triangle in place; positive definite since lambda > 0.
  for (size_t j = 0; j < d; ++j) {
    for (size_t l = 0; l <= j; ++l) {
      double s = a[j * d + l];
      for (size_t m = 0; m < l; ++m) s -= a[j * d + m] * a[l * d + m];
      if (l == j) {
        if (!(s > 0)) return fit;  // only from rounding; fall back to the mean
        a[j * d + j] = std::sqrt(s);
      } else {
        a[j * d + l] = s / a[l * d + l];
      }
    }
  }
  std::vector<double> w = b;
  for (size_t j = 0; j < d; ++j) {
    for (size_t m = 0; m < j; ++m) w[j] -= a[j * d + m] * w[m];
    w[j] /= a[j * d + j];
  }
  for (size_t j = d; j-- > 0;) {
    for (size_t m = j + 1; m < d; ++m) w[j] -= a[m * d + j] * w[m];
    w[j] /= a[j * d + j];
  }
  fit.c = w;
  for (size_t j = 0; j < d; ++j) fit.c0 -= w[j] * mx[j];
  return fit;
}

std::vector<double> OperationCounts(const core::SearchSpace& space,
                                    const core::Architecture& arch) {
  std::vector<double> counts(space.num_ops(), 0.0);
  for (uint8_t op : arch.ops) {
    if (op < counts.size()) counts[op] += 1;
  }
  return counts;
}

double Mean(const std::vector<double>& v) {
  if (v.empty()) return kNaN;
  return std::accumulate(v.begin(), v.end(), 0.0) / v.size();
}

double StdDev(const std::vector<double>& v) {
  if (v.size() < 2) return v.empty() ? kNaN : 0.0;
  const double m = Mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / (v.size() - 1));
}

}  // namespace latpred::bench
