#include "linalg.h"

#include <cmath>

namespace latpred::predictor {

bool Cholesky(const Matrix& m, Matrix* lower) {
  const int n = m.n;
  *lower = Matrix(n);
  Matrix& l = *lower;
  for (int j = 0; j < n; ++j) {
    double d = m(j, j);
    for (int k = 0; k < j; ++k) d -= l(j, k) * l(j, k);
    if (!(d > 0)) return false;
    l(j, j) = std::sqrt(d);
    for (int i = j + 1; i < n; ++i) {
      double s = m(i, j);
      for (int k = 0; k < j; ++k) s -= l(i, k) * l(j, k);
      l(i, j) = s / l(j, j);
    }
  }
  return true;
}

std::vector<double> CholeskySolve(const Matrix& l, const std::vector<double>& b) {
  const int n = l.n;
  std::vector<double> y(b);
  for (int i = 0; i < n; ++i) {  // L y = b
    for (int k = 0; k < i; ++k) y[i] -= l(i, k) * y[k];
    y[i] /= l(i, i);
  }
  for (int i = n - 1; i >= 0; --i) {  // L^T x = y
    for (int k = i + 1; k < n; ++k) y[i] -= l(k, i) * y[k];
    y[i] /= l(i, i);
  }
  return y;
}

double CholeskyLogDet(const Matrix& l) {
  double s = 0;
  for (int i = 0; i < l.n; ++i) s += std::log(l(i, i));
  return 2 * s;
}

Matrix CholeskyInverse(const Matrix& l) {
  const int n = l.n;
  Matrix inv(n);
  std::vector<double> e(n);
  for (int j = 0; j < n; ++j) {
    std::fill(e.begin(), e.end(), 0.0);
    e[j] = 1;
    std::vector<double> col = CholeskySolve(l, e);
    for (int i = 0; i < n; ++i) inv(i, j) = col[i];
  }
  return inv;
}

double Quadratic(const std::vector<double>& x, const Matrix& m, const std::vector<double>& y) {
  double s = 0;
  for (int i = 0; i < m.n; ++i) {
    double row = 0;
    for (int j = 0; j < m.n; ++j) row += m(i, j) * y[j];
    s += x[i] * row;
  }
  return s;
}

}  // namespace latpred::predictor
