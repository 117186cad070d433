// The descriptor map (latpred/predictor/descriptor.h) on devices whose heads are a known
// function of their descriptors: it recovers the map; with descriptors that say nothing
// about the heads it learns nothing and the descriptor part carries no weight. The base
// model of the end-to-end cases is trained on synthetic sources, not the bundled data.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "latpred/core/stats.h"
#include "latpred/predictor/descriptor.h"
#include "latpred/predictor/predictor.h"

namespace latpred::predictor {
namespace {

constexpr int kP = 4;  // head size of the plain-vector cases

std::vector<double> Identity(int p) {
  std::vector<double> g(p * p, 0.0);
  for (int i = 0; i < p; ++i) g[i * p + i] = 1;
  return g;
}

// theta = A u + c for a descriptor exp(u), u ~ N(0, I_3).
std::vector<double> Head(const std::vector<double>& u) {
  static const double a[kP][3] = {{1.0, -0.5, 0.2}, {0.3, 0.8, -0.4}, {-0.6, 0.1, 0.9}, {2.0, 1.0, 0.5}};
  std::vector<double> theta(kP);
  for (int i = 0; i < kP; ++i) theta[i] = 0.5 * i + a[i][0] * u[0] + a[i][1] * u[1] + a[i][2] * u[2];
  return theta;
}

Descriptor Describe(const std::vector<double>& u) {
  Descriptor d;
  for (size_t k = 0; k < u.size(); ++k) d["f" + std::to_string(k)] = std::exp(u[k]);
  return d;
}

double Distance(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s);
}

std::vector<DescribedHead> Population(int n, uint64_t seed, bool informative) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0, 1);
  std::vector<DescribedHead> out;
  for (int i = 0; i < n; ++i) {
    std::vector<double> u = {normal(rng), normal(rng), normal(rng)};
    std::vector<double> other = {normal(rng), normal(rng), normal(rng)};
    out.push_back({"d" + std::to_string(i), Describe(informative ? u : other), Head(u)});
  }
  return out;
}

TEST(DescriptorMap, RecoversHeadsThatFollowTheDescriptor) {
  const std::vector<DescribedHead> population = Population(60, 1, true);
  std::vector<double> mean(kP, 0.0);
  for (const auto& d : population) {
    for (int i = 0; i < kP; ++i) mean[i] += d.theta[i] / population.size();
  }
  double near = 0, average = 0;
  std::mt19937_64 rng(2);
  std::normal_distribution<double> normal(0, 0.7);
  for (int t = 0; t < 20; ++t) {
    const std::vector<double> u = {normal(rng), normal(rng), normal(rng)};
    auto prior = FitDescriptorPrior(Describe(u), population, Identity(kP), AdaptOptions());
    ASSERT_TRUE(prior.has_value());
    EXPECT_TRUE(std::isfinite(prior->ridge));
    EXPECT_EQ(prior->devices, 60);
    EXPECT_LT(prior->held_out_error, 0.5 * prior->average_error);
    near += Distance(prior->mean, Head(u));
    average += Distance(mean, Head(u));
  }
  // The descriptor's prior mean is far closer to the true head than the plain average.
  EXPECT_LT(near, 0.5 * average) << near << " vs " << average;
}

TEST(DescriptorMap, LearnsNothingFromDescriptorsThatSayNothing) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const std::vector<DescribedHead> population = Population(40, seed, false);
    auto prior = FitDescriptorPrior(Describe({0.1, -0.2, 0.3}), population, Identity(kP),
                                    AdaptOptions());
    EXPECT_FALSE(prior.has_value()) << "seed " << seed << ": ridge " << prior->ridge
                                    << ", held-out " << prior->held_out_error << " vs "
                                    << prior->average_error;
  }
}

TEST(DescriptorMap, UsesOnlyFeaturesEnoughDevicesShare) {
  std::vector<DescribedHead> population = Population(30, 3, true);
  population[0].descriptor["rare"] = 2.0;  // one device has it: not a feature of the map
  population[1].descriptor["f0"] = -1;      // not positive: absent for that device
  Descriptor target = Describe({0.2, 0.1, -0.3});
  target["rare"] = 3.0;
  target.erase("f2");                       // the target lacks one: the map goes without it
  auto prior = FitDescriptorPrior(target, population, Identity(kP), AdaptOptions());
  ASSERT_TRUE(prior.has_value());
  EXPECT_EQ(prior->features, (std::vector<std::string>{"f0", "f1"}));
  // Too few devices for any feature: nothing learned.
  population.resize(3);
  EXPECT_FALSE(FitDescriptorPrior(target, population, Identity(kP), AdaptOptions()).has_value());
  EXPECT_FALSE(FitDescriptorPrior(Descriptor(), Population(30, 3, true), Identity(kP), AdaptOptions())
                   .has_value());
}

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

// Latency of an nb201 architecture on a device whose hardware is u: a sum of per-op
// costs that scale with u (u[0] a speed, u[1] the convolutions' share).
double Latency(const core::Architecture& a, const std::vector<double>& u) {
  double t = 1.0;
  for (uint8_t op : a.ops) {
    const double conv = op >= 2 ? std::exp(0.8 * u[1]) * (op == 3 ? 3.0 : 1.0) : 0.3;
    t += conv;
  }
  return std::exp(u[0]) * t;
}

class DescriptorModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const core::SearchSpace& space = core::Nb201Space();
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal(0, 1);
    TrainingData data;
    data.space = &space;
    data.archs = RandomArchs(space, 500, 11);
    hardware_ = new std::vector<std::vector<double>>();
    for (int d = 0; d < 24; ++d) {
      data.devices.push_back("synthetic_" + std::to_string(d));
      hardware_->push_back({normal(rng), normal(rng)});
    }
    for (const auto& a : data.archs) {
      for (const auto& u : *hardware_) data.latency_ms.push_back(Latency(a, u));
    }
    TrainOptions options;
    options.epochs = 12;
    options.threads = 2;
    auto model = BaseModel::Train(data, options);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = new std::shared_ptr<const BaseModel>(*model);
  }
  static void TearDownTestSuite() {
    delete model_;
    delete hardware_;
  }
  // The sources with descriptors: u itself, or noise that says nothing about u.
  static std::vector<DescribedHead> Sources(bool informative) {
    std::mt19937_64 rng(9);
    std::normal_distribution<double> normal(0, 1);
    std::vector<DescribedHead> out;
    const BaseModel& m = **model_;
    for (size_t d = 0; d < m.source_devices().size(); ++d) {
      const DeviceHead* h = m.SourceHead(m.source_devices()[d]);
      std::vector<double> theta(h->z);
      theta.push_back(h->b);
      const std::vector<double> noise = {normal(rng), normal(rng)};
      out.push_back({m.source_devices()[d], Describe(informative ? (*hardware_)[d] : noise), theta});
    }
    return out;
  }
  // Median |predicted / true - 1| over held-out architectures of device u.
  static double MedianError(const DeviceHead& head, const std::vector<double>& u) {
    const auto archs = RandomArchs((*model_)->space(), 300, 99);
    std::vector<double> predicted(archs.size()), errors;
    (*model_)->Predict(head, archs, predicted.data());
    for (size_t i = 0; i < archs.size(); ++i) errors.push_back(std::abs(predicted[i] / Latency(archs[i], u) - 1));
    return core::Median(errors);
  }
  static std::shared_ptr<const BaseModel>* model_;
  static std::vector<std::vector<double>>* hardware_;
};
std::shared_ptr<const BaseModel>* DescriptorModelTest::model_ = nullptr;
std::vector<std::vector<double>>* DescriptorModelTest::hardware_ = nullptr;

TEST_F(DescriptorModelTest, ZeroShotFromTheDescriptorBeatsThePriorMean) {
  const BaseModel& m = **model_;
  const std::vector<DescribedHead> sources = Sources(true);
  double with = 0, without = 0;
  for (const std::vector<double>& u : std::vector<std::vector<double>>{{1.2, -0.5}, {-1.0, 0.8}, {0.4, 1.1}}) {
    auto prior = FitDescriptorPrior(m, Describe(u), sources, AdaptOptions());
    ASSERT_TRUE(prior.has_value());
    const DeviceHead head = m.ZeroShot(&*prior);
    EXPECT_EQ(head.fit.descriptor_weight, 1);
    // A target the map would extrapolate to, worse than the plain average: the prior mean.
    DescriptorPrior far = *prior;
    far.expected_error = 2 * far.average_error;
    EXPECT_EQ(m.ZeroShot(&far).fit.descriptor_weight, 0);
    EXPECT_EQ(m.ZeroShot(&far).b, m.Prior().b);
    with += MedianError(head, u);
    without += MedianError(m.ZeroShot(nullptr), u);
  }
  EXPECT_LT(with, 0.5 * without) << with << " vs " << without;
}

TEST_F(DescriptorModelTest, FewSamplesLeanOnAnInformativeDescriptorOnly) {
  const BaseModel& m = **model_;
  const std::vector<double> u = {1.5, -0.7};
  std::vector<Observation> obs;
  for (const auto& a : RandomArchs(m.space(), 3, 5)) obs.push_back({a, Latency(a, u)});
  auto prior = FitDescriptorPrior(m, Describe(u), Sources(true), AdaptOptions());
  ASSERT_TRUE(prior.has_value());
  auto head = m.Adapt(obs, AdaptOptions(), &*prior);
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_GT(head->fit.descriptor_weight, 0.2);
  // Descriptors that say nothing: the map learns nothing, the part has no candidate.
  EXPECT_FALSE(FitDescriptorPrior(m, Describe(u), Sources(false), AdaptOptions()).has_value());
  auto plain = m.Adapt(obs);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->fit.descriptor_weight, 0);
  // The stored head keeps the weight.
  auto restored = DeviceHead::Deserialize(head->Serialize());
  ASSERT_TRUE(restored.ok());
  EXPECT_DOUBLE_EQ(restored->fit.descriptor_weight, head->fit.descriptor_weight);
}

}  // namespace
}  // namespace latpred::predictor
