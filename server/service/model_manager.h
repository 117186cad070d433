// Builds and keeps the server's models: imports the bundled measurements, trains or
// loads the base model of each space, adapts device heads from stored samples, and
// publishes every result to the ModelRegistry.
#ifndef LATPRED_SERVICE_MODEL_MANAGER_H_
#define LATPRED_SERVICE_MODEL_MANAGER_H_

#include <functional>
#include <optional>
#include <map>
#include <vector>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "latpred/metrics/metrics.h"
#include "latpred/predictor/predictor.h"
#include "latpred/store/store.h"
#include "model_registry.h"

namespace latpred::service {

// Imports the bundled public measurements (help/, eagle/ under dir) as source devices,
// leaving out the devices in exclude. Runs once per store: a setting records it.
absl::Status ImportBundled(store::Store& store, const std::string& dir,
                           const std::set<std::string>& exclude,
                           const std::function<void(const std::string&)>& log);

// The range a reference latency in a descriptor must lie in (ms): RegisterDevice
// refuses others, and a zero-shot fit leaves out any stored from before that check.
// Wide enough for any network from a microcontroller to a datacenter GPU.
inline constexpr double kMinReferenceLatencyMs = 1e-6;
inline constexpr double kMaxReferenceLatencyMs = 1e7;

// The samples a fit uses when a device holds more than max: the max whose architectures
// have the smallest values of a fixed 64-bit hash of their canonical string, in the
// order given. A uniform random subset that is the same on every replica and run, and
// that a new sample changes by at most one; the store keeps no submission times, and
// the most recent samples would all come from the last rounds of SuggestSamples, which
// cluster where the model was least sure. All of them when there are at most max.
std::vector<store::Sample> SelectFitSamples(std::vector<store::Sample> samples, int max);

inline constexpr int kDefaultMaxFitSamples = 2000;

class ModelManager {
 public:
  // metrics may be null. A fit uses at most max_fit_samples of a device's samples
  // (SelectFitSamples).
  ModelManager(store::Store* store, ModelRegistry* registry, metrics::Metrics* metrics,
               std::function<void(const std::string&)> log,
               int max_fit_samples = kDefaultMaxFitSamples,
               predictor::AdaptOptions adapt = predictor::AdaptOptions());

  // Loads the newest stored base model of the space, or trains one on the source
  // devices' samples and stores it.
  absl::Status LoadOrTrainBase(const std::string& space, const predictor::TrainOptions& options);

  // Publishes heads for every device in the space: source heads from the base model,
  // stored adapted heads (refit when they belong to an older base model) and zero-shot
  // heads from descriptors.
  absl::Status LoadHeads(const std::string& space);

  // Fits the device's head from its stored samples (at most max_fit_samples of them;
  // FitStats::samples says how many), stores it as a new model version and publishes
  // it. A failure is kept for LastFitError until a fit succeeds.
  absl::StatusOr<std::shared_ptr<const HeadEntry>> Adapt(const std::string& device,
                                                          const std::string& space);

  // Why the device's last fit in the space failed ("CODE: message"), or "" when it
  // succeeded or none ran. Kept in memory by the server that ran the fit: another
  // replica, or this one after a restart, does not know it.
  std::string LastFitError(const std::string& device, const std::string& space) const;

  // Brings the registry up to date with what other replicas on the same store did: a
  // newer base model, newer adapted heads, registered devices with new descriptors.
  // Cheap when nothing changed (one version query and one device listing).
  absl::Status Sync(const std::string& space);

  // Publishes a zero-shot head for a registered device that has no adapted head: adapted
  // on the reference latencies of this space in its descriptor when it has some (with
  // its descriptor prior), else its descriptor prior's mean where the descriptor map
  // learned something, else the prior mean. Does nothing for a device with neither
  // descriptor nor samples.
  absl::Status RefreshZeroShot(const store::Device& device, const std::string& space);

  // The architectures SuggestSamples chooses from by default: those measured on the
  // source device with the most samples in the space (set by LoadHeads).
  std::shared_ptr<const std::vector<core::Architecture>> Candidates(const std::string& space) const;

 private:
  // Collects the default candidate architectures of a space.
  absl::Status LoadCandidates(const std::string& space);
  // The device's descriptor prior in the space (predictor/descriptor.h), learned from
  // the source devices (their nb201 reference latencies) and the adapted registered
  // devices that have a descriptor; nullopt without a descriptor or where the map
  // learned nothing.
  absl::StatusOr<std::optional<predictor::DescriptorPrior>> DescriptorPriorOf(
      const store::Device& device, const std::string& space, const BaseEntry& base);
  // The source devices' descriptors, read from their stored samples once.
  absl::StatusOr<std::map<std::string, predictor::Descriptor>> SourceDescriptors();
  // Adapt without keeping its outcome.
  absl::StatusOr<std::shared_ptr<const HeadEntry>> Fit(const std::string& device,
                                                        const std::string& space);

  mutable absl::Mutex mu_;
  // updated_unix_ms of each (device, space) zero-shot head when Sync last refreshed it.
  std::map<std::pair<std::string, std::string>, int64_t> synced_updates_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<const std::vector<core::Architecture>>> candidates_
      ABSL_GUARDED_BY(mu_);
  std::optional<std::map<std::string, predictor::Descriptor>> source_descriptors_
      ABSL_GUARDED_BY(mu_);
  // (device, space) -> why its last fit failed; no entry after a success.
  std::map<std::pair<std::string, std::string>, std::string> fit_errors_ ABSL_GUARDED_BY(mu_);
  store::Store* store_;
  ModelRegistry* registry_;
  metrics::Metrics* metrics_;
  std::function<void(const std::string&)> log_;
  const int max_fit_samples_;
  const predictor::AdaptOptions adapt_;
};

}  // namespace latpred::service

#endif  // LATPRED_SERVICE_MODEL_MANAGER_H_
