// Tests of the closed-form posterior: scored from the samples' side (an n x n
// factorisation) it must equal the posterior from the Gram matrix (q x q), for priors
// dense throughout and for priors dense on a head block and diagonal past it.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "adapt_context.h"
#include "posterior.h"

namespace latpred::predictor {
namespace {

// A prior on q weights: a random SPD block on the first `dense` (all when dense < 0),
// independent variances on the rest, a random mean.
PriorSetting RandomPrior(int q, int dense, double noise, std::mt19937* rng) {
  std::normal_distribution<double> normal;
  std::uniform_real_distribution<double> uniform(0.01, 2.0);
  const int h = dense < 0 ? q : dense;
  PriorSetting s;
  s.mean.resize(q);
  for (double& m : s.mean) m = normal(*rng);
  s.cov = Matrix(q);
  Matrix root(h);
  for (int i = 0; i < h; ++i) {
    for (int j = 0; j < h; ++j) root(i, j) = normal(*rng);
  }
  for (int i = 0; i < h; ++i) {
    for (int j = 0; j < h; ++j) {
      for (int k = 0; k < h; ++k) s.cov(i, j) += root(i, k) * root(j, k) / h;
    }
    s.cov(i, i) += 0.1;
  }
  for (int i = h; i < q; ++i) s.cov(i, i) = uniform(*rng);
  EXPECT_TRUE(Cholesky(s.cov, &s.cov_lower));
  s.cov_inv = CholeskyInverse(s.cov_lower);
  s.noise = noise;
  s.dense = dense;
  return s;
}

void ExpectSamePosterior(int n, int q, int dense, double noise, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> rows(static_cast<size_t>(n) * q), y(n);
  for (double& v : rows) v = normal(rng);
  for (double& v : y) v = normal(rng);
  const PriorSetting prior = RandomPrior(q, dense, noise, &rng);
  std::vector<double> from_gram, from_samples;
  const double e_gram = Posterior(MakeGram(rows, y, q), prior.mean, prior.cov_lower,
                                  prior.cov_inv, prior.noise, &from_gram);
  const double e_samples = PosteriorFromSamples(rows, y, q, prior, &from_samples);
  ASSERT_TRUE(std::isfinite(e_gram));
  EXPECT_NEAR(e_samples, e_gram, 1e-7 * std::max(1.0, std::abs(e_gram)))
      << "n=" << n << " q=" << q << " dense=" << dense;
  ASSERT_EQ(from_samples.size(), from_gram.size());
  for (int i = 0; i < q; ++i) {
    EXPECT_NEAR(from_samples[i], from_gram[i], 1e-7 * std::max(1.0, std::abs(from_gram[i])))
        << "weight " << i;
  }
}

TEST(PosteriorTest, FromSamplesEqualsFromGramWithADensePrior) {
  ExpectSamePosterior(5, 12, -1, 0.05, 1);
  ExpectSamePosterior(12, 12, -1, 0.05, 2);
}

TEST(PosteriorTest, FromSamplesEqualsFromGramWithAHeadBlockAndDiagonalRest) {
  ExpectSamePosterior(20, 120, 17, 0.01, 3);  // Adapt's residual: 20 samples, 17 + 103
  ExpectSamePosterior(3, 40, 0, 0.5, 4);      // diagonal throughout
  ExpectSamePosterior(8, 30, 30, 1e-3, 5);    // dense throughout, said as a size
}

TEST(PosteriorTest, SparseRowsSkipNothingThatCounts) {
  // Rows with exact zeros (the skip in C X^T) against the Gram form.
  std::mt19937 rng(6);
  std::normal_distribution<double> normal;
  const int n = 6, q = 20;
  std::vector<double> rows(n * q, 0.0), y(n);
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < q; k += 3) rows[i * q + k] = normal(rng);
    y[i] = normal(rng);
  }
  const PriorSetting prior = RandomPrior(q, 8, 0.02, &rng);
  std::vector<double> a, b;
  const double ea = Posterior(MakeGram(rows, y, q), prior.mean, prior.cov_lower,
                              prior.cov_inv, prior.noise, &a);
  const double eb = PosteriorFromSamples(rows, y, q, prior, &b);
  EXPECT_NEAR(ea, eb, 1e-7 * std::max(1.0, std::abs(ea)));
  for (int i = 0; i < q; ++i) EXPECT_NEAR(a[i], b[i], 1e-7 * std::max(1.0, std::abs(a[i])));
}

// Leave-one-out in closed form (both the samples' side and the hat values of the Gram
// form) equals refitting without each sample in turn.
void ExpectLeaveOneOutIsARefit(int n, int q, int dense, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> rows(static_cast<size_t>(n) * q), y(n);
  for (double& v : rows) v = normal(rng);
  for (double& v : y) v = normal(rng);
  const PriorSetting prior = RandomPrior(q, dense, 0.1, &rng);
  Design design;
  design.rows = rows;
  design.q = q;
  design.gram = MakeGram(rows, y, q);
  const std::vector<double> loo = LeaveOneOut(design, y, prior, n);
  ASSERT_EQ(static_cast<int>(loo.size()), n);
  for (int i = 0; i < n; ++i) {
    std::vector<double> theta;
    ASSERT_TRUE(std::isfinite(Posterior(MakeGram(rows, y, q, i), prior.mean, prior.cov_lower,
                                        prior.cov_inv, prior.noise, &theta)));
    double refit = 0;
    for (int k = 0; k < q; ++k) refit += rows[static_cast<size_t>(i) * q + k] * theta[k];
    EXPECT_NEAR(loo[i], refit, 1e-7 * std::max(1.0, std::abs(refit))) << "sample " << i;
  }
}

TEST(PosteriorTest, LeaveOneOutEqualsARefitWithoutEachSample) {
  ExpectLeaveOneOutIsARefit(20, 13, -1, 7);   // more samples than weights: hat values
  ExpectLeaveOneOutIsARefit(10, 40, 13, 8);   // fewer: the samples' side
}

}  // namespace
}  // namespace latpred::predictor
