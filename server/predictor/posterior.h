// Bayesian linear regression in closed form: the posterior mean and the log evidence of
// a Gaussian prior on the weights, from the samples' Gram matrix or from the samples
// themselves. Internal to the predictor (Adapt scores every prior setting with these).
#ifndef LATPRED_PREDICTOR_POSTERIOR_H_
#define LATPRED_PREDICTOR_POSTERIOR_H_

#include <vector>

#include "linalg.h"

namespace latpred::predictor {

// Sufficient statistics of the samples for a linear model in theta.
struct Gram {
  Matrix xtx;
  std::vector<double> xty;
  double yty = 0;
  int n = 0;
};

// The Gram of rows (n x p, row-major) and targets y, leaving out sample `skip` if >= 0.
Gram MakeGram(const std::vector<double>& rows, const std::vector<double>& y, int p,
              int skip = -1);

// Posterior of theta under prior N(mean, cov) and noise variance noise; returns the
// log evidence and writes the posterior mean, and the Cholesky factor of the posterior
// precision when precision_lower is not null.
double Posterior(const Gram& g, const std::vector<double>& mean, const Matrix& cov_lower,
                 const Matrix& cov_inv, double noise, std::vector<double>* post_mean,
                 Matrix* precision_lower = nullptr);

// One prior setting on the grid, factorised once.
struct PriorSetting {
  std::vector<double> mean;
  Matrix cov;
  Matrix cov_lower;
  Matrix cov_inv;
  double noise = 0;
  // cov is dense on its first `dense` parameters and diagonal on the rest (-1: dense
  // throughout).
  int dense = -1;
};

// The same posterior as Posterior, from the samples' side: with n samples and q
// parameters, y ~ N(X m, K), K = X C X^T + noise I, so the evidence is that normal's
// density at y and the posterior mean m + C X^T K^-1 (y - X m). With fewer samples than
// parameters (a residual on 94 features from 20 samples) that factorises an n x n
// matrix where Posterior factorises a q x q one, and a prior that is diagonal past its
// first block (setting.dense) makes C X^T cheap. rows: n x q, row-major.
double PosteriorFromSamples(const std::vector<double>& rows, const std::vector<double>& y,
                            int q, const PriorSetting& setting, std::vector<double>* post_mean);

// Each sample's prediction by the posterior of the other samples (the same prior and
// noise): y_i - [K^-1 r]_i / [K^-1]_ii with K = X C X^T + noise I and r = y - X m, the
// Gaussian process form of leave-one-out. Empty when K does not factorise.
std::vector<double> LeaveOneOutPredictions(const std::vector<double>& rows,
                                           const std::vector<double>& y, int q,
                                           const PriorSetting& setting);

}  // namespace latpred::predictor

#endif  // LATPRED_PREDICTOR_POSTERIOR_H_
