// Each part of Adapt on synthetic devices drawn from exactly that part's model: fitted
// with that part alone, it recovers the device (held-out ranking and relative error).
// The base models are trained on synthetic source devices, so nothing here depends on
// the bundled data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "adapt_context.h"
#include "combine.h"
#include "latpred/core/stats.h"
#include "latpred/predictor/interval.h"
#include "latpred/predictor/predictor.h"
#include "parts.h"

namespace latpred::predictor {
namespace {

std::vector<core::Architecture> RandomArchs(const core::SearchSpace& space, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pick(0, space.num_ops() - 1);
  std::vector<core::Architecture> archs(n);
  for (auto& a : archs) {
    a.ops.resize(space.num_positions());
    for (auto& op : a.ops) op = static_cast<uint8_t>(pick(rng));
  }
  return archs;
}

// How many positions of a hold op.
double Count(const core::Architecture& a, int op) {
  return static_cast<double>(std::count(a.ops.begin(), a.ops.end(), op));
}

// A base model trained on synthetic source devices whose latency is a sum of per-op
// costs (nb201) or of analytic costs (fbnet), each device with its own costs.
// weights: each source device's costs, written out when not null.
std::shared_ptr<const BaseModel> TrainSynthetic(const core::SearchSpace& space,
                                                std::vector<std::vector<double>>* costs = nullptr) {
  TrainingData data;
  data.space = &space;
  data.archs = RandomArchs(space, 600, 11);
  std::mt19937_64 rng(5);
  std::lognormal_distribution<double> cost(0, 0.7);
  std::normal_distribution<double> noise(0, 0.02);
  const int devices = 8;
  std::vector<std::vector<double>> weights(devices);
  for (int d = 0; d < devices; ++d) {
    data.devices.push_back("synthetic_" + std::to_string(d));
    for (int k = 0; k < 6; ++k) weights[d].push_back(cost(rng));
  }
  for (const core::Architecture& a : data.archs) {
    const core::Costs c = space.AnalyticCosts(a);
    for (int d = 0; d < devices; ++d) {
      const std::vector<double>& w = weights[d];
      double t = w[0];
      if (space.positions_interchangeable()) {
        for (int op = 1; op < space.num_ops(); ++op) t += w[op] * Count(a, op);
      } else {
        t += w[1] * c.flops / 1e8 + w[2] * c.bytes / 1e7 + w[3] * c.kernels / 50;
      }
      data.latency_ms.push_back(t * std::exp(noise(rng)));
    }
  }
  if (costs != nullptr) *costs = weights;
  TrainOptions options;
  options.epochs = 12;
  options.threads = 2;
  auto model = BaseModel::Train(data, options);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

struct Recovery {
  double spearman = 0;
  double median_error = 1;  // median |predicted / true - 1| on held-out architectures
  DeviceHead head;
};

// Fits `part` alone on k samples of latency(a) and scores 400 held-out architectures.
Recovery FitWithPartAlone(const BaseModel& model, const std::string& part, int k,
                          const std::function<double(const core::Architecture&)>& latency) {
  AdaptOptions options;
  for (const std::string& name : PartNames()) {
    if (name != part) options.disabled_parts.push_back(name);
  }
  std::vector<Observation> obs;
  for (const core::Architecture& a : RandomArchs(model.space(), k, 101)) {
    obs.push_back({a, latency(a)});
  }
  auto head = model.Adapt(obs, options);
  EXPECT_TRUE(head.ok()) << head.status();
  Recovery r;
  if (!head.ok()) return r;
  r.head = *head;
  const std::vector<core::Architecture> held_out = RandomArchs(model.space(), 400, 202);
  std::vector<double> truth, predicted(held_out.size()), errors;
  for (const core::Architecture& a : held_out) truth.push_back(latency(a));
  model.Predict(*head, held_out, predicted.data());
  for (size_t i = 0; i < truth.size(); ++i) errors.push_back(std::abs(predicted[i] / truth[i] - 1));
  r.spearman = core::Spearman(truth, predicted);
  r.median_error = core::Median(errors);
  return r;
}

class PartsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    nb201_costs_ = new std::vector<std::vector<double>>();
    nb201_ = new std::shared_ptr<const BaseModel>(TrainSynthetic(core::Nb201Space(), nb201_costs_));
    fbnet_ = new std::shared_ptr<const BaseModel>(TrainSynthetic(core::FbnetSpace()));
  }
  static void TearDownTestSuite() {
    delete nb201_;
    delete nb201_costs_;
    delete fbnet_;
  }
  static const BaseModel& nb201() { return **nb201_; }
  static const BaseModel& fbnet() { return **fbnet_; }

  // The costs of nb201's synthetic source devices: [c0; a cost per op but none].
  static const std::vector<double>& source_costs(int d) { return (*nb201_costs_)[d]; }

  static std::shared_ptr<const BaseModel>* nb201_;
  static std::vector<std::vector<double>>* nb201_costs_;
  static std::shared_ptr<const BaseModel>* fbnet_;
};
std::vector<std::vector<double>>* PartsTest::nb201_costs_ = nullptr;
std::shared_ptr<const BaseModel>* PartsTest::nb201_ = nullptr;
std::shared_ptr<const BaseModel>* PartsTest::fbnet_ = nullptr;

// A device inside the sources' span: log t = h(a) . z + b with z between two sources.
TEST_F(PartsTest, EmbeddingRecoversAHeadBetweenSources) {
  const BaseModel& m = nb201();
  const DeviceHead* a = m.SourceHead("synthetic_1");
  const DeviceHead* b = m.SourceHead("synthetic_4");
  DeviceHead target = *a;
  for (size_t i = 0; i < target.z.size(); ++i) target.z[i] = 0.5 * (a->z[i] + b->z[i]);
  target.b = 0.5 * (a->b + b->b) + 0.7;
  const auto latency = [&](const core::Architecture& arch) {
    double t = 0;
    m.Predict(target, {arch}, &t);
    return t;
  };
  const Recovery r = FitWithPartAlone(m, "embedding", 10, latency);
  EXPECT_GT(r.spearman, 0.99);
  EXPECT_LT(r.median_error, 0.02);
}

// t = c0 + sum of c_o * count_o, skip_connect the cheapest: a runtime that runs every
// edge one after another.
TEST_F(PartsTest, AdditiveRecoversACostPerOperation) {
  const BaseModel& m = nb201();
  // nb201's ops: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3.
  const double c[] = {0.05, 0.0, 0.3, 1.1, 0.2};
  const auto latency = [&](const core::Architecture& arch) {
    double t = 0.8;
    for (int op = 0; op < 5; ++op) t += c[op] * Count(arch, op);
    return t;
  };
  const Recovery r = FitWithPartAlone(m, "additive", 20, latency);
  EXPECT_GT(r.spearman, 0.99);
  EXPECT_LT(r.median_error, 0.02);
  EXPECT_GT(r.head.add_weight, 0.99);
}

// t = c0 + rates times FLOPs and kernels: a device that adds up its layers' costs.
TEST_F(PartsTest, AdditiveCostsRecoverRatesPerCost) {
  const BaseModel& m = fbnet();
  const auto latency = [&](const core::Architecture& arch) {
    const core::Costs c = m.space().AnalyticCosts(arch);
    return 1.5 + 2e-8 * c.flops + 0.02 * c.kernels;
  };
  const Recovery r = FitWithPartAlone(m, "additive_costs", 20, latency);
  EXPECT_GT(r.spearman, 0.98);
  EXPECT_LT(r.median_error, 0.03);
}

// t = overhead + s * a source's sum of op costs: the source's relative costs, another
// speed and a fixed overhead.
TEST_F(PartsTest, SourceAdditiveRecoversAScaledSourceWithAnOverhead) {
  const BaseModel& m = nb201();
  const std::vector<double>& w = source_costs(3);
  const auto latency = [&](const core::Architecture& arch) {
    double t = w[0];
    for (int op = 1; op < 5; ++op) t += w[op] * Count(arch, op);
    return 0.5 * t + 2.0;
  };
  const Recovery r = FitWithPartAlone(m, "source_additive", 20, latency);
  EXPECT_GT(r.spearman, 0.97);
  EXPECT_LT(r.median_error, 0.05);
}

// The served head's leave-one-out figure is honest: on a noisy device it is about the
// error on architectures the fit never saw, not the error on the samples it fitted.
TEST_F(PartsTest, LeaveOneOutMatchesTheErrorOnUnseenArchitectures) {
  const BaseModel& m = nb201();
  const double c[] = {0.05, 0.0, 0.3, 1.1, 0.2};
  std::mt19937_64 rng(3);
  std::normal_distribution<double> noise(0, 0.1);
  std::vector<Observation> obs;
  for (const core::Architecture& a : RandomArchs(m.space(), 20, 77)) {
    double t = 0.8;
    for (int op = 0; op < 5; ++op) t += c[op] * Count(a, op);
    obs.push_back({a, t * std::exp(noise(rng))});
  }
  auto head = m.Adapt(obs);
  ASSERT_TRUE(head.ok()) << head.status();
  // Log-normal noise of sd 0.1 alone leaves a log RMSE of about 0.1 on unseen samples.
  EXPECT_GT(head->fit.loo_log_sd, 0.05);
  EXPECT_LT(head->fit.loo_log_sd, 0.2);
  EXPECT_GT(head->fit.loo_mape, head->fit.fit_mape);
}

// On a device whose noise is log-normal, the 80% interval holds about 80% of the
// latencies of architectures the fit never saw.
TEST_F(PartsTest, EightyPercentIntervalHoldsAboutEightyPercent) {
  const BaseModel& m = nb201();
  const double c[] = {0.05, 0.0, 0.3, 1.1, 0.2};
  std::mt19937_64 rng(4);
  std::normal_distribution<double> noise(0, 0.1);
  const auto latency = [&](const core::Architecture& a) {
    double t = 0.8;
    for (int op = 0; op < 5; ++op) t += c[op] * Count(a, op);
    return t * std::exp(noise(rng));
  };
  std::vector<Observation> obs;
  for (const core::Architecture& a : RandomArchs(m.space(), 20, 78)) obs.push_back({a, latency(a)});
  auto head = m.Adapt(obs);
  ASSERT_TRUE(head.ok()) << head.status();
  const double f = IntervalFactor(head->fit, 0.8);
  ASSERT_GT(f, 1);
  const std::vector<core::Architecture> held_out = RandomArchs(m.space(), 1000, 303);
  std::vector<double> predicted(held_out.size());
  m.Predict(*head, held_out, predicted.data());
  int inside = 0;
  for (size_t i = 0; i < held_out.size(); ++i) {
    const double t = latency(held_out[i]);
    inside += t >= predicted[i] / f && t <= predicted[i] * f;
  }
  const double coverage = inside / static_cast<double>(held_out.size());
  EXPECT_GT(coverage, 0.7);
  EXPECT_LT(coverage, 0.92);
}

// One candidate per part with known evidence: the weights are mass / settings * e^evidence.
TEST_F(PartsTest, CombineWeighsCandidatesByMassAndEvidence) {
  const BaseModel& m = nb201();
  std::vector<Observation> obs;
  for (const core::Architecture& a : RandomArchs(m.space(), 4, 9)) obs.push_back({a, 2.0});
  AdaptOptions options;
  const AdaptContext ctx(m, obs, options);
  Candidate low, high;
  low.theta.assign(ctx.p2, 0.0);
  high.theta.assign(ctx.p2, 0.0);
  low.theta[ctx.dim] = 0.0;   // b = 0
  high.theta[ctx.dim] = 1.0;  // b = 1
  low.evidence = 0;
  high.evidence = std::log(3.0);
  // Part A: mass 1, one setting of evidence 3 (relative); part B: mass 2, two settings of 1.
  std::vector<PartCandidates> parts = {{"a", 1, {high}}, {"b", 2, {low, low}}};
  const Combined combined = Combine(ctx, parts);
  // Weights 3 for b = 1 and 2 * 1/2 * 2 = 2 for b = 0: the head's b is 3/5.
  EXPECT_NEAR(combined.head.b, 0.6, 1e-12);
  // log p = log(3 + 2) - log(total mass 3), relative to the best candidate's evidence.
  EXPECT_NEAR(combined.log_evidence, std::log(3.0) + std::log(5.0 / 3.0) - std::log(3.0), 1e-12);
}

TEST(AdaptOptionsTest, DisablePartsNamesAnUnknownPart) {
  AdaptOptions options;
  EXPECT_TRUE(DisableParts("embedding,source_additive", &options).ok());
  EXPECT_FALSE(options.Enabled("source_additive"));
  EXPECT_TRUE(options.Enabled("additive"));
  const absl::Status bad = DisableParts("embedding,nonsense", &options);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("nonsense"), std::string::npos);
}

}  // namespace
}  // namespace latpred::predictor
