#include "model_registry.h"

namespace latpred::service {

void ModelRegistry::SetBase(const std::string& space, BaseEntry entry) {
  absl::MutexLock lock(&mu_);
  bases_[space] = std::move(entry);
}

BaseEntry ModelRegistry::GetBase(const std::string& space) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = bases_.find(space);
  return it == bases_.end() ? BaseEntry{} : it->second;
}

void ModelRegistry::SetHead(const std::string& device, const std::string& space,
                            std::shared_ptr<const HeadEntry> head) {
  absl::MutexLock lock(&mu_);
  heads_[{device, space}] = std::move(head);
}

std::shared_ptr<const HeadEntry> ModelRegistry::GetHead(const std::string& device,
                                                        const std::string& space) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = heads_.find({device, space});
  return it == heads_.end() ? nullptr : it->second;
}

std::map<std::pair<std::string, std::string>, std::shared_ptr<const HeadEntry>>
ModelRegistry::Heads() const {
  absl::ReaderMutexLock lock(&mu_);
  return heads_;
}

}  // namespace latpred::service
