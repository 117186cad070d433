// Quantiles behind the predictive interval, against printed tables.
#include "latpred/predictor/interval.h"

#include <gtest/gtest.h>

#include <cmath>

namespace latpred::predictor {
namespace {

TEST(IntervalTest, NormalQuantileMatchesTables) {
  EXPECT_NEAR(NormalQuantile(0.5), 0.0, 1e-12);
  EXPECT_NEAR(NormalQuantile(0.9), 1.2815516, 1e-6);
  EXPECT_NEAR(NormalQuantile(0.975), 1.9599640, 1e-6);
  EXPECT_NEAR(NormalQuantile(0.001), -3.0902323, 1e-6);
}

TEST(IntervalTest, StudentQuantileMatchesTables) {
  // t_{0.9} and t_{0.975} for nu = 1, 2, 3, 5, 10, 19, 30.
  const double nu[] = {1, 2, 3, 5, 10, 19, 30};
  const double t90[] = {3.0777, 1.8856, 1.6377, 1.4759, 1.3722, 1.3277, 1.3104};
  const double t975[] = {12.7062, 4.3027, 3.1824, 2.5706, 2.2281, 2.0930, 2.0423};
  for (int i = 0; i < 7; ++i) {
    EXPECT_NEAR(StudentQuantile(0.9, nu[i]), t90[i], 0.003 * t90[i]) << "nu=" << nu[i];
    EXPECT_NEAR(StudentQuantile(0.975, nu[i]), t975[i], 0.003 * t975[i]) << "nu=" << nu[i];
  }
}

TEST(IntervalTest, FactorFollowsTheLeaveOneOutError) {
  FitStats fit;
  fit.samples = 20;
  fit.loo_log_sd = 0.1;
  EXPECT_NEAR(IntervalFactor(fit, 0.8), std::exp(0.1 * StudentQuantile(0.9, 19)), 1e-12);
  EXPECT_GT(IntervalFactor(fit, 0.95), IntervalFactor(fit, 0.8));
  fit.samples = 2;  // no leave-one-out figure
  EXPECT_EQ(IntervalFactor(fit, 0.8), 0);
  fit.samples = 20;
  EXPECT_EQ(IntervalFactor(fit, 1.0), 0);
  EXPECT_EQ(IntervalFactor(fit, 0.0), 0);
}

}  // namespace
}  // namespace latpred::predictor
