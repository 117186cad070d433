// The models the server predicts with: a base model per search space and a head per
// (device, space). Readers copy a shared_ptr under a reader lock and predict without
// holding it; writers swap a whole entry, so a new model version appears atomically
// and never blocks a prediction in flight.
#ifndef LATPRED_SERVICE_MODEL_REGISTRY_H_
#define LATPRED_SERVICE_MODEL_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "latpred/service/head_entry.h"

namespace latpred::service {

class ModelRegistry {
 public:
  // Installs the base model of a space.
  void SetBase(const std::string& space, BaseEntry entry);
  // The base model of a space, or an empty entry.
  BaseEntry GetBase(const std::string& space) const;

  // Installs a device's head for a space (replacing any older one).
  void SetHead(const std::string& device, const std::string& space,
               std::shared_ptr<const HeadEntry> head);
  // The head of a device in a space, or nullptr.
  std::shared_ptr<const HeadEntry> GetHead(const std::string& device,
                                           const std::string& space) const;
  // Every head, keyed by (device, space).
  std::map<std::pair<std::string, std::string>, std::shared_ptr<const HeadEntry>> Heads() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, BaseEntry> bases_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, std::shared_ptr<const HeadEntry>> heads_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace latpred::service

#endif  // LATPRED_SERVICE_MODEL_REGISTRY_H_
