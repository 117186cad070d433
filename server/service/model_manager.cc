#include "model_manager.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/match.h"
#include "latpred/core/reference_archs.h"
#include "latpred/core/search_space.h"
#include "latpred/core/status_macros.h"

namespace latpred::service {
namespace {

constexpr char kReferenceLatency[] = "reference_latency";

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Parses stored (canonical) sample architectures into observations.
absl::StatusOr<std::vector<predictor::Observation>> ToObservations(
    const core::SearchSpace& space, const std::vector<store::Sample>& samples) {
  std::vector<predictor::Observation> out;
  out.reserve(samples.size());
  for (const store::Sample& s : samples) {
    ASSIGN_OR_RETURN(core::Architecture arch, space.Parse(s.arch));
    out.push_back(predictor::Observation{std::move(arch), s.latency_ms});
  }
  return out;
}

std::string FitJson(const predictor::FitStats& fit) {
  return absl::StrFormat(
      "{\"samples\":%d,\"fit_spearman\":%.6f,\"fit_mape\":%.6f,\"loo_mape\":%.6f,"
      "\"seconds\":%.6f,\"set_aside\":%d}",
      fit.samples, fit.fit_spearman, fit.fit_mape, fit.loo_mape, fit.seconds,
      static_cast<int>(fit.set_aside.size()));
}

// FNV-1a of s, then splitmix64's finaliser: fixed across builds, runs and machines
// (unlike std::hash and absl::Hash), and well mixed in every bit.
uint64_t StableHash(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

// How a fit's outcome counts in latpred_adaptations_total.
metrics::AdaptationResult AdaptationResultOf(const absl::Status& status) {
  if (status.ok()) return metrics::AdaptationResult::kOk;
  switch (status.code()) {
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kInvalidArgument:
      return metrics::AdaptationResult::kRejected;
    default:
      return metrics::AdaptationResult::kFailed;
  }
}

// A stored descriptor as the predictor reads it: reference latencies under their
// canonical feature name ("<space>:<canonical arch>"), in range; every other feature
// under its own name.
predictor::Descriptor PredictorDescriptor(const std::vector<store::DescriptorFeature>& features) {
  predictor::Descriptor out;
  for (const store::DescriptorFeature& f : features) {
    if (f.source != kReferenceLatency) {
      out[f.name] = f.value;
      continue;
    }
    if (f.value < kMinReferenceLatencyMs || f.value > kMaxReferenceLatencyMs) continue;
    const size_t colon = f.name.find(':');
    if (colon == std::string::npos) continue;
    auto space = core::GetSearchSpace(f.name.substr(0, colon));
    if (!space.ok()) continue;
    auto arch = (*space)->Parse(f.name.substr(colon + 1));
    if (arch.ok()) out[core::ReferenceFeatureName(**space, *arch)] = f.value;
  }
  return out;
}

}  // namespace

std::vector<store::Sample> SelectFitSamples(std::vector<store::Sample> samples, int max) {
  if (max < 0 || samples.size() <= static_cast<size_t>(max)) return samples;
  std::vector<std::pair<uint64_t, size_t>> keys;
  keys.reserve(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) keys.emplace_back(StableHash(samples[i].arch), i);
  // Ties (two architectures with one hash) go to the earlier sample: still deterministic.
  std::nth_element(keys.begin(), keys.begin() + max, keys.end());
  std::vector<size_t> chosen;
  chosen.reserve(static_cast<size_t>(max));
  for (int i = 0; i < max; ++i) chosen.push_back(keys[static_cast<size_t>(i)].second);
  std::sort(chosen.begin(), chosen.end());
  std::vector<store::Sample> out;
  out.reserve(chosen.size());
  for (const size_t i : chosen) out.push_back(std::move(samples[i]));
  return out;
}

ModelManager::ModelManager(store::Store* store, ModelRegistry* registry,
                           metrics::Metrics* metrics, std::function<void(const std::string&)> log,
                           int max_fit_samples, predictor::AdaptOptions adapt)
    : store_(store),
      registry_(registry),
      metrics_(metrics),
      log_(std::move(log)),
      max_fit_samples_(max_fit_samples),
      adapt_(std::move(adapt)) {}

absl::Status ModelManager::LoadOrTrainBase(const std::string& space_name,
                                           const predictor::TrainOptions& options) {
  ASSIGN_OR_RETURN(const core::SearchSpace* space, core::GetSearchSpace(space_name));
  ASSIGN_OR_RETURN(std::optional<store::ModelRecord> stored, store_->GetLatestModel("", space_name));
  if (stored.has_value()) {
    auto model = predictor::BaseModel::Deserialize(*space, stored->blob);
    if (model.ok()) {
      registry_->SetBase(space_name, BaseEntry{*model, stored->version});
      log_(absl::StrCat(space_name, ": loaded base model v", stored->version, " (",
                        (*model)->source_devices().size(), " source devices)"));
      return absl::OkStatus();
    }
    log_(absl::StrCat(space_name, ": stored base model v", stored->version,
                      " is unusable (", model.status().message(), "); training a new one"));
  }

  // Training data: every source device's samples in this space.
  auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(std::vector<store::Device> devices, store_->ListDevices());
  predictor::TrainingData data;
  data.space = space;
  std::unordered_map<std::string, size_t> row_of;
  std::vector<std::vector<std::pair<size_t, double>>> columns;
  for (const store::Device& d : devices) {
    if (!d.source) continue;
    ASSIGN_OR_RETURN(std::vector<store::Sample> samples, store_->GetSamples(d.name, space_name));
    if (samples.empty()) continue;
    std::vector<std::pair<size_t, double>> column;
    column.reserve(samples.size());
    for (const store::Sample& s : samples) {
      auto [it, inserted] = row_of.emplace(s.arch, data.archs.size());
      if (inserted) {
        ASSIGN_OR_RETURN(core::Architecture arch, space->Parse(s.arch));
        data.archs.push_back(std::move(arch));
      }
      column.emplace_back(it->second, s.latency_ms);
    }
    data.devices.push_back(d.name);
    columns.push_back(std::move(column));
  }
  const size_t n = data.archs.size(), m = data.devices.size();
  data.latency_ms.assign(n * m, std::numeric_limits<double>::quiet_NaN());
  for (size_t j = 0; j < m; ++j) {
    for (const auto& [row, v] : columns[j]) data.latency_ms[row * m + j] = v;
  }
  log_(absl::StrCat(space_name, ": training the base model on ", m, " source devices, ", n,
                    " architectures"));
  predictor::TrainOptions opts = options;
  opts.progress = [&](int epoch, int epochs, double loss) {
    if (epoch == epochs || epoch % std::max(1, epochs / 10) == 0) {
      log_(absl::StrFormat("%s: epoch %d/%d  loss %.4f  (%.0f s)", space_name, epoch, epochs,
                           loss, SecondsSince(start)));
    }
  };
  ASSIGN_OR_RETURN(std::shared_ptr<const predictor::BaseModel> model,
                   predictor::BaseModel::Train(data, opts));
  store::ModelRecord record;
  record.space = space_name;
  record.blob = model->Serialize();
  record.meta_json = absl::StrFormat(
      "{\"source_devices\":%d,\"architectures\":%d,\"epochs\":%d,\"seconds\":%.1f}",
      static_cast<int>(m), static_cast<int>(n), opts.epochs, SecondsSince(start));
  ASSIGN_OR_RETURN(int64_t version, store_->PutModel(record));
  registry_->SetBase(space_name, BaseEntry{model, version});
  if (metrics_ != nullptr) metrics_->ObserveTraining(space_name, SecondsSince(start));
  log_(absl::StrFormat("%s: base model v%d trained in %.1f s", space_name, version,
                       SecondsSince(start)));
  return absl::OkStatus();
}

absl::Status ModelManager::LoadHeads(const std::string& space) {
  BaseEntry base = registry_->GetBase(space);
  if (base.model == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("no base model for ", space));
  }
  for (const std::string& name : base.model->source_devices()) {
    registry_->SetHead(name, space,
                       MakeHeadEntry(base, *base.model->SourceHead(name), base.version,
                                     v1::MODEL_STATE_SOURCE));
  }
  ASSIGN_OR_RETURN(std::vector<store::ModelRecord> heads, store_->GetLatestDeviceModels(space));
  for (const store::ModelRecord& record : heads) {
    if (record.base_version != base.version) {
      log_(absl::StrCat(record.device, ": refitting ", space, " head for base model v",
                        base.version));
      RETURN_IF_ERROR(Adapt(record.device, space).status());
      continue;
    }
    ASSIGN_OR_RETURN(predictor::DeviceHead head, predictor::DeviceHead::Deserialize(record.blob));
    registry_->SetHead(record.device, space,
                       MakeHeadEntry(base, std::move(head), record.version,
                                     v1::MODEL_STATE_ADAPTED));
  }
  ASSIGN_OR_RETURN(std::vector<store::Device> devices, store_->ListDevices());
  for (const store::Device& d : devices) {
    if (!d.source) RETURN_IF_ERROR(RefreshZeroShot(d, space));
  }
  return LoadCandidates(space);
}

absl::Status ModelManager::LoadCandidates(const std::string& space) {
  BaseEntry base = registry_->GetBase(space);
  ASSIGN_OR_RETURN(auto counts, store_->CountAllSamples());
  std::string richest;
  int64_t most = 0;
  for (const std::string& name : base.model->source_devices()) {
    auto it = counts.find(name);
    if (it == counts.end()) continue;
    auto c = it->second.find(space);
    if (c != it->second.end() && c->second > most) {
      most = c->second;
      richest = name;
    }
  }
  auto pool = std::make_shared<std::vector<core::Architecture>>();
  if (!richest.empty()) {
    ASSIGN_OR_RETURN(std::vector<store::Sample> samples, store_->GetSamples(richest, space));
    pool->reserve(samples.size());
    for (const store::Sample& s : samples) {
      ASSIGN_OR_RETURN(core::Architecture arch, base.model->space().Parse(s.arch));
      pool->push_back(std::move(arch));
    }
  }
  absl::MutexLock lock(&mu_);
  candidates_[space] = std::move(pool);
  return absl::OkStatus();
}

std::shared_ptr<const std::vector<core::Architecture>> ModelManager::Candidates(
    const std::string& space) const {
  absl::MutexLock lock(&mu_);
  auto it = candidates_.find(space);
  return it == candidates_.end() ? nullptr : it->second;
}

absl::StatusOr<std::shared_ptr<const HeadEntry>> ModelManager::Adapt(const std::string& device,
                                                                      const std::string& space) {
  absl::StatusOr<std::shared_ptr<const HeadEntry>> result = Fit(device, space);
  if (metrics_ != nullptr) metrics_->CountAdaptation(AdaptationResultOf(result.status()));
  absl::MutexLock lock(&mu_);
  if (result.ok()) {
    fit_errors_.erase({device, space});
  } else {
    fit_errors_[{device, space}] = absl::StrCat(absl::StatusCodeToString(result.status().code()),
                                                ": ", result.status().message());
  }
  return result;
}

std::string ModelManager::LastFitError(const std::string& device, const std::string& space) const {
  absl::MutexLock lock(&mu_);
  auto it = fit_errors_.find({device, space});
  return it == fit_errors_.end() ? std::string() : it->second;
}

absl::StatusOr<std::shared_ptr<const HeadEntry>> ModelManager::Fit(const std::string& device,
                                                                    const std::string& space) {
  BaseEntry base = registry_->GetBase(space);
  if (base.model == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("no base model for space ", space));
  }
  // One adaptation of a device at a time across replicas, so that the newest version
  // is fit on every sample committed before it started.
  ASSIGN_OR_RETURN(std::unique_ptr<store::StoreLock> lock,
                   store_->Lock(absl::StrCat("adapt:", device, ":", space)));
  ASSIGN_OR_RETURN(store::Device dev, store_->GetDevice(device));
  if (dev.source) {
    return absl::FailedPreconditionError(absl::StrCat(
        "device '", device, "' is a bundled source device: its model comes from training"));
  }
  ASSIGN_OR_RETURN(std::vector<store::Sample> samples, store_->GetSamples(device, space));
  if (samples.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("device '", device, "' has no ", space,
                     " samples to adapt on: submit some first (SuggestSamples says which)"));
  }
  // A fit's time grows faster than its samples: past max_fit_samples_, a subset.
  const size_t stored = samples.size();
  samples = SelectFitSamples(std::move(samples), max_fit_samples_);
  ASSIGN_OR_RETURN(std::vector<predictor::Observation> obs,
                   ToObservations(base.model->space(), samples));
  ASSIGN_OR_RETURN(std::optional<predictor::DescriptorPrior> prior,
                   DescriptorPriorOf(dev, space, base));
  ASSIGN_OR_RETURN(predictor::DeviceHead head,
                   base.model->Adapt(obs, adapt_, prior ? &*prior : nullptr));
  store::ModelRecord record;
  record.device = device;
  record.space = space;
  record.base_version = base.version;
  record.blob = head.Serialize();
  record.meta_json = FitJson(head.fit);
  ASSIGN_OR_RETURN(int64_t version, store_->PutModel(record));
  std::shared_ptr<HeadEntry> entry =
      MakeHeadEntry(base, std::move(head), version, v1::MODEL_STATE_ADAPTED);
  registry_->SetHead(device, space, entry);
  if (metrics_ != nullptr) metrics_->ObserveAdaptation(entry->head.fit.seconds);
  log_(absl::StrFormat(
      "%s: adapted %s head v%d from %d samples%s (fit spearman %.3f, LOO MAPE %.1f%%)", device,
      space, version, entry->head.fit.samples,
      stored > samples.size() ? absl::StrCat(" of ", stored, " (--max-fit-samples)") : "",
      entry->head.fit.fit_spearman, entry->head.fit.loo_mape));
  return std::shared_ptr<const HeadEntry>(entry);
}

absl::Status ModelManager::Sync(const std::string& space) {
  BaseEntry base = registry_->GetBase(space);
  if (base.model == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto versions, store_->GetLatestModelVersions(space));
  if (auto it = versions.find(""); it != versions.end() && it->second > base.version) {
    log_(absl::StrCat(space, ": base model v", it->second, " stored by another replica"));
    RETURN_IF_ERROR(LoadOrTrainBase(space, predictor::TrainOptions()));
    return LoadHeads(space);
  }
  for (const auto& [device, version] : versions) {
    if (device.empty()) continue;
    auto head = registry_->GetHead(device, space);
    if (head != nullptr && head->state == v1::MODEL_STATE_ADAPTED && head->version >= version) {
      continue;
    }
    ASSIGN_OR_RETURN(std::optional<store::ModelRecord> record,
                     store_->GetLatestModel(device, space));
    // A head fit on another base model waits for this replica's next start-up refit.
    if (!record.has_value() || record->base_version != base.version) continue;
    ASSIGN_OR_RETURN(predictor::DeviceHead fitted,
                     predictor::DeviceHead::Deserialize(record->blob));
    registry_->SetHead(device, space,
                       MakeHeadEntry(base, std::move(fitted), record->version,
                                     v1::MODEL_STATE_ADAPTED));
    log_(absl::StrCat(device, ": ", space, " head v", record->version,
                      " loaded (stored by another replica)"));
  }
  ASSIGN_OR_RETURN(std::vector<store::Device> devices, store_->ListDevices());
  for (const store::Device& d : devices) {
    if (d.source) continue;
    const auto key = std::make_pair(d.name, space);
    auto head = registry_->GetHead(d.name, space);
    bool stale;
    {
      absl::MutexLock lock(&mu_);
      auto seen = synced_updates_.find(key);
      stale = head == nullptr ||
              (head->state == v1::MODEL_STATE_ZERO_SHOT &&
               (seen == synced_updates_.end() || seen->second != d.updated_unix_ms));
    }
    if (!stale) continue;
    RETURN_IF_ERROR(RefreshZeroShot(d, space));
    absl::MutexLock lock(&mu_);
    synced_updates_[key] = d.updated_unix_ms;
  }
  return absl::OkStatus();
}

absl::Status ModelManager::RefreshZeroShot(const store::Device& device, const std::string& space) {
  auto current = registry_->GetHead(device.name, space);
  if (current != nullptr && current->state == v1::MODEL_STATE_ADAPTED) return absl::OkStatus();
  BaseEntry base = registry_->GetBase(space);
  if (base.model == nullptr) return absl::OkStatus();
  if (device.descriptor.empty()) {
    if (current != nullptr) registry_->SetHead(device.name, space, nullptr);
    return absl::OkStatus();
  }
  // Reference latencies of this space in the descriptor ("<space>:<arch>") pin the
  // head down; without them the prior mean is the best guess.
  std::vector<predictor::Observation> refs;
  const std::string prefix = absl::StrCat(space, ":");
  for (const store::DescriptorFeature& f : device.descriptor) {
    if (f.source != kReferenceLatency || !absl::StartsWith(f.name, prefix)) continue;
    auto arch = base.model->space().Parse(f.name.substr(prefix.size()));
    if (arch.ok() && f.value >= kMinReferenceLatencyMs && f.value <= kMaxReferenceLatencyMs) {
      refs.push_back(predictor::Observation{*arch, f.value});
    }
  }
  ASSIGN_OR_RETURN(std::optional<predictor::DescriptorPrior> prior,
                   DescriptorPriorOf(device, space, base));
  predictor::DeviceHead head;
  if (refs.empty()) {
    head = base.model->ZeroShot(prior ? &*prior : nullptr);
  } else {
    ASSIGN_OR_RETURN(head, base.model->Adapt(refs, adapt_, prior ? &*prior : nullptr));
  }
  registry_->SetHead(device.name, space,
                     MakeHeadEntry(base, std::move(head), /*version=*/0,
                                   v1::MODEL_STATE_ZERO_SHOT));
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, predictor::Descriptor>> ModelManager::SourceDescriptors() {
  {
    absl::MutexLock lock(&mu_);
    if (source_descriptors_.has_value()) return *source_descriptors_;
  }
  // Each source device's latencies on the nb201 reference architectures, as an agent
  // measures them on a registered device.
  const core::SearchSpace& nb201 = core::Nb201Space();
  std::map<std::string, std::string> feature_of;  // canonical arch -> feature name
  for (const std::string& text : core::Nb201ReferenceArchs()) {
    ASSIGN_OR_RETURN(core::Architecture arch, nb201.Parse(text));
    feature_of[nb201.Canonical(arch)] = core::ReferenceFeatureName(nb201, arch);
  }
  std::map<std::string, predictor::Descriptor> out;
  ASSIGN_OR_RETURN(std::vector<store::Device> devices, store_->ListDevices());
  for (const store::Device& d : devices) {
    if (!d.source) continue;
    ASSIGN_OR_RETURN(std::vector<store::Sample> samples, store_->GetSamples(d.name, "nb201"));
    predictor::Descriptor& descriptor = out[d.name];
    for (const store::Sample& s : samples) {
      auto it = feature_of.find(s.arch);
      if (it != feature_of.end() && s.latency_ms > 0) descriptor[it->second] = s.latency_ms;
    }
  }
  absl::MutexLock lock(&mu_);
  source_descriptors_ = out;
  return out;
}

absl::StatusOr<std::optional<predictor::DescriptorPrior>> ModelManager::DescriptorPriorOf(
    const store::Device& device, const std::string& space, const BaseEntry& base) {
  const predictor::Descriptor target = PredictorDescriptor(device.descriptor);
  if (target.empty() || base.model == nullptr) return std::optional<predictor::DescriptorPrior>();
  std::vector<predictor::DescribedHead> population;
  const auto add = [&population](const std::string& name, predictor::Descriptor d,
                                 const predictor::DeviceHead& head) {
    if (d.empty()) return;
    std::vector<double> theta(head.z);
    theta.push_back(head.b);
    population.push_back({name, std::move(d), std::move(theta)});
  };
  ASSIGN_OR_RETURN(auto sources, SourceDescriptors());
  for (const std::string& name : base.model->source_devices()) {
    auto it = sources.find(name);
    if (it != sources.end()) add(name, it->second, *base.model->SourceHead(name));
  }
  ASSIGN_OR_RETURN(std::vector<store::Device> devices, store_->ListDevices());
  for (const store::Device& d : devices) {
    if (d.source || d.name == device.name || d.descriptor.empty()) continue;
    auto head = registry_->GetHead(d.name, space);
    if (head == nullptr || head->state != v1::MODEL_STATE_ADAPTED) continue;
    add(d.name, PredictorDescriptor(d.descriptor), head->head);
  }
  return predictor::FitDescriptorPrior(*base.model, target, population, adapt_);
}

}  // namespace latpred::service
