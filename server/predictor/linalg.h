// Small dense linear algebra in double precision for the per-device heads (a dozen
// dimensions): Cholesky factorisation, solves, log-determinants.
#ifndef LATPRED_PREDICTOR_LINALG_H_
#define LATPRED_PREDICTOR_LINALG_H_

#include <cstddef>
#include <vector>

namespace latpred::predictor {

// A square row-major matrix.
struct Matrix {
  int n = 0;
  std::vector<double> a;
  explicit Matrix(int size = 0) : n(size), a(static_cast<size_t>(size) * size, 0.0) {}
  double& operator()(int i, int j) { return a[static_cast<size_t>(i) * n + j]; }
  double operator()(int i, int j) const { return a[static_cast<size_t>(i) * n + j]; }
};

// Lower-triangular Cholesky factor of a symmetric positive definite matrix; false when
// the matrix is not positive definite.
bool Cholesky(const Matrix& m, Matrix* lower);

// Solves (L L^T) x = b given the Cholesky factor L.
std::vector<double> CholeskySolve(const Matrix& lower, const std::vector<double>& b);

// log det(L L^T) from the Cholesky factor L.
double CholeskyLogDet(const Matrix& lower);

// Inverse of L L^T from the Cholesky factor L.
Matrix CholeskyInverse(const Matrix& lower);

// x^T m y.
double Quadratic(const std::vector<double>& x, const Matrix& m, const std::vector<double>& y);

}  // namespace latpred::predictor

#endif  // LATPRED_PREDICTOR_LINALG_H_
