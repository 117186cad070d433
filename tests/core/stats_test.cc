// Tests of the rank correlations and error bounds against hand-worked examples and an
// O(n^2) Kendall reference.
#include "latpred/core/stats.h"

#include <cmath>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latpred::core {
namespace {

using ::testing::ElementsAre;

// Kendall tau-b by counting every pair.
double KendallReference(const std::vector<double>& a, const std::vector<double>& b) {
  double concordant_minus_discordant = 0;
  double untied_a = 0;
  double untied_b = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = i + 1; j < a.size(); ++j) {
      const double da = a[i] - a[j];
      const double db = b[i] - b[j];
      if (da != 0) ++untied_a;
      if (db != 0) ++untied_b;
      if (da * db > 0) ++concordant_minus_discordant;
      if (da * db < 0) --concordant_minus_discordant;
    }
  }
  return concordant_minus_discordant / std::sqrt(untied_a * untied_b);
}

TEST(Ranks, AveragesTies) {
  EXPECT_THAT(Ranks({10, 20, 20, 5}), ElementsAre(2, 3.5, 3.5, 1));
  EXPECT_THAT(Ranks({7, 7, 7}), ElementsAre(2, 2, 2));
  EXPECT_TRUE(Ranks({}).empty());
}

// x = 1 2 3 4 5, y = 3 1 2 5 4.
// Kendall: discordant pairs (1,2), (1,3), (4,5); the other 7 of 10 are concordant:
//   tau = (7 - 3) / 10 = 0.4.
// Spearman: rank differences -2 1 1 -1 1, sum d^2 = 8: rho = 1 - 6*8 / (5*24) = 0.6.
TEST(RankCorrelation, NoTies) {
  const std::vector<double> x = {1, 2, 3, 4, 5};
  const std::vector<double> y = {3, 1, 2, 5, 4};
  EXPECT_DOUBLE_EQ(KendallTau(x, y), 0.4);
  EXPECT_DOUBLE_EQ(Spearman(x, y), 0.6);
}

// x = 1 2 2 3, y = 1 2 3 3. Of the 6 pairs, (2,3) is tied in x, (3,4) tied in y, the
// other 4 are concordant: tau-b = 4 / sqrt((6-1) * (6-1)) = 0.8.
// Ranks x: 1 2.5 2.5 4, y: 1 2 3.5 3.5; deviations from 2.5: x -1.5 0 0 1.5,
// y -1.5 -0.5 1 1: cov 2.25 + 1.5 = 3.75, var x = var y = 4.5: rho = 3.75/4.5 = 5/6.
TEST(RankCorrelation, TiesOnBothSides) {
  const std::vector<double> x = {1, 2, 2, 3};
  const std::vector<double> y = {1, 2, 3, 3};
  EXPECT_DOUBLE_EQ(KendallTau(x, y), 0.8);
  EXPECT_DOUBLE_EQ(Spearman(x, y), 5.0 / 6.0);
}

TEST(RankCorrelation, PerfectAndReversed) {
  const std::vector<double> x = {0.5, 1, 3, 8, 9};
  const std::vector<double> up = {1, 2, 30, 31, 100};
  const std::vector<double> down = {9, 8, 3, 1, 0.5};
  EXPECT_DOUBLE_EQ(KendallTau(x, up), 1);
  EXPECT_DOUBLE_EQ(Spearman(x, up), 1);
  EXPECT_DOUBLE_EQ(KendallTau(x, down), -1);
  EXPECT_DOUBLE_EQ(Spearman(x, down), -1);
}

TEST(RankCorrelation, UndefinedIsNaN) {
  EXPECT_TRUE(std::isnan(KendallTau({1}, {2})));
  EXPECT_TRUE(std::isnan(Spearman({1}, {2})));
  EXPECT_TRUE(std::isnan(KendallTau({1, 1, 1}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(Spearman({1, 2, 3}, {4, 4, 4})));
  EXPECT_TRUE(std::isnan(KendallTau({1, 2}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(Spearman({1, 2, NAN}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(KendallTau({1, 2, 3}, {1, NAN, 3})));
}

TEST(RankCorrelation, KendallMatchesQuadraticReferenceOnRandomData) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 50; ++trial) {
    const int n = 2 + trial * 7;
    // Few distinct values in early trials: many ties on both sides.
    std::uniform_int_distribution<int> value(0, 2 + trial);
    std::vector<double> a(n);
    std::vector<double> b(n);
    for (int i = 0; i < n; ++i) {
      a[i] = value(rng);
      b[i] = value(rng) + 0.5 * a[i];
    }
    const double reference = KendallReference(a, b);
    if (std::isnan(reference)) {
      EXPECT_TRUE(std::isnan(KendallTau(a, b)));
    } else {
      EXPECT_NEAR(KendallTau(a, b), reference, 1e-12) << "trial " << trial;
    }
  }
}

TEST(RankCorrelation, KendallHandlesLargeInputs) {
  std::mt19937 rng(99);
  std::normal_distribution<double> noise(0, 1);
  std::vector<double> a(200000);
  std::vector<double> b(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<double>(i % 1000);
    b[i] = a[i] + 300 * noise(rng);
  }
  const double tau = KendallTau(a, b);
  EXPECT_GT(tau, 0.4);
  EXPECT_LT(tau, 0.7);
}

TEST(Median, OddEvenAndEmpty) {
  EXPECT_DOUBLE_EQ(Median({5, 1, 3}), 3.0);
  EXPECT_DOUBLE_EQ(Median({4, 1, 3, 2}), 2.5);
  EXPECT_DOUBLE_EQ(Median({-1, 7}), 3.0);
  EXPECT_TRUE(std::isnan(Median({})));
}

// truth 2 4 8, pred 2.25 3.5 8: relative errors 0.125, 0.125, 0.
TEST(ErrorBounds, MapeAndWithinBound) {
  const std::vector<double> truth = {2, 4, 8};
  const std::vector<double> pred = {2.25, 3.5, 8};
  EXPECT_DOUBLE_EQ(Mape(truth, pred), 25.0 / 3.0);
  EXPECT_DOUBLE_EQ(WithinBound(truth, pred, 0.125), 1.0);
  EXPECT_DOUBLE_EQ(WithinBound(truth, pred, 0.1), 1.0 / 3.0);
  EXPECT_TRUE(std::isnan(Mape({}, {})));
  EXPECT_TRUE(std::isnan(WithinBound({1}, {1, 2}, 0.1)));
}

}  // namespace
}  // namespace latpred::core
