// Adapting a device head from a few samples: every enabled part scores its prior
// settings on the samples (parts.h), Combine averages them by evidence and prior mass
// (combine.h), and a measurement glitch is set aside where the evidence says so.
//
// Glitch model: with probability glitch_rate a sample's log latency is uniform over a
// factor of glitch_range instead of following the head. Adapt weighs the hypothesis
// that the sample the fit misses most is a glitch against none, by the evidence with
// and without it, and sets it aside at posterior odds of glitch_odds.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "combine.h"
#include "parts.h"

namespace latpred::predictor {

const std::vector<std::string>& PartNames() {
  static const std::vector<std::string> names = {
      "embedding", "additive", "additive_costs", "source_additive", "descriptor"};
  return names;
}

bool AdaptOptions::Enabled(const std::string& part) const {
  return std::find(disabled_parts.begin(), disabled_parts.end(), part) == disabled_parts.end();
}

absl::Status DisableParts(const std::string& list, AdaptOptions* options) {
  for (const std::string& name :
       std::vector<std::string>(absl::StrSplit(list, ',', absl::SkipEmpty()))) {
    if (std::find(PartNames().begin(), PartNames().end(), name) == PartNames().end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown adaptation part '", name,
                                                     "'; the parts are ",
                                                     absl::StrJoin(PartNames(), ", ")));
    }
    options->disabled_parts.push_back(name);
  }
  return absl::OkStatus();
}

std::vector<std::unique_ptr<Part>> MakeParts(const AdaptOptions& options) {
  std::vector<std::unique_ptr<Part>> all;
  all.push_back(MakeEmbeddingPart());
  all.push_back(MakeAdditivePart());
  all.push_back(MakeAdditiveCostsPart());
  all.push_back(MakeSourceAdditivePart());
  all.push_back(MakeDescriptorPart());
  std::vector<std::unique_ptr<Part>> enabled;
  for (auto& part : all) {
    if (options.Enabled(part->name())) enabled.push_back(std::move(part));
  }
  return enabled;
}

absl::StatusOr<DeviceHead> BaseModel::FitParts(const std::vector<Observation>& observations,
                                                const AdaptOptions& options,
                                                const DescriptorPrior* descriptor,
                                                double* log_evidence) const {
  const auto start = std::chrono::steady_clock::now();
  const AdaptContext ctx(*this, observations, options, descriptor);
  std::vector<PartCandidates> scored;
  for (const auto& part : MakeParts(options)) {
    PartCandidates entry{part->name(), part->Mass(ctx), {}};
    part->Score(ctx, &entry.candidates);
    scored.push_back(std::move(entry));
  }
  Combined combined = Combine(ctx, scored);
  *log_evidence = combined.log_evidence;
  combined.head.fit.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::move(combined.head);
}

DeviceHead BaseModel::ZeroShot(const DescriptorPrior* descriptor) const {
  const int dim = embedding_dim();
  if (descriptor == nullptr || static_cast<int>(descriptor->mean.size()) != dim + 1 ||
      !(descriptor->expected_error < descriptor->average_error)) {
    return Prior();
  }
  DeviceHead head;
  head.z.assign(descriptor->mean.begin(), descriptor->mean.begin() + dim);
  head.b = descriptor->mean[dim];
  head.fit.descriptor_weight = 1;
  return head;
}

absl::StatusOr<DeviceHead> BaseModel::Adapt(const std::vector<Observation>& observations,
                                            const AdaptOptions& options,
                                            const DescriptorPrior* descriptor) const {
  const auto start = std::chrono::steady_clock::now();
  if (observations.empty()) {
    return absl::FailedPreconditionError("no samples to adapt on: submit samples first");
  }
  for (size_t i = 0; i < observations.size(); ++i) {
    const double v = observations[i].latency_ms;
    if (!(v > 0) || !std::isfinite(v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sample ", i, ": latency_ms must be a positive finite number, got ", v));
    }
  }
  double evidence = 0, evidence_without = 0;
  absl::StatusOr<DeviceHead> head = FitParts(observations, options, descriptor, &evidence);
  const int n = static_cast<int>(observations.size());
  if (!head.ok() || n < options.glitch_min_samples || n > options.glitch_max_samples) return head;
  // The candidate: the sample whose log latency the fit on all of them misses most.
  std::vector<core::Architecture> archs;
  archs.reserve(n);
  for (const Observation& o : observations) archs.push_back(o.arch);
  std::vector<double> fitted(n);
  Predict(*head, archs, fitted.data());
  int worst = 0;
  double worst_miss = -1;
  for (int i = 0; i < n; ++i) {
    const double miss = std::abs(std::log(observations[i].latency_ms / fitted[i]));
    if (miss > worst_miss) {
      worst_miss = miss;
      worst = i;
    }
  }
  std::vector<Observation> rest;
  rest.reserve(n - 1);
  for (int i = 0; i < n; ++i) {
    if (i != worst) rest.push_back(observations[i]);
  }
  absl::StatusOr<DeviceHead> without = FitParts(rest, options, descriptor, &evidence_without);
  // Posterior odds of "the candidate is a glitch" against "no glitch": p(the rest) times
  // the glitch's density at its log latency, over p(all), each with its prior.
  const double log_odds = evidence_without - evidence +
                          std::log(options.glitch_rate / (1 - options.glitch_rate)) -
                          std::log(std::log(options.glitch_range));
  const bool glitch = without.ok() && log_odds >= std::log(options.glitch_odds);
  DeviceHead& chosen = glitch ? *without : *head;
  if (glitch) chosen.fit.set_aside.push_back(space().Canonical(observations[worst].arch));
  // The whole call, both fits included.
  chosen.fit.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::move(chosen);
}

}  // namespace latpred::predictor
