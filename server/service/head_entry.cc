#include "latpred/service/head_entry.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace latpred::service {
namespace {

absl::Status BadItem(const char* field, int i, const absl::Status& status) {
  return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "]: ", status.message()));
}

}  // namespace

absl::Status HeadEntry::Predict(const google::protobuf::RepeatedPtrField<std::string>& archs,
                                double* out, const char* field) const {
  const core::SearchSpace& space = base->space();
  if (!table.empty()) {
    for (int i = 0; i < archs.size(); ++i) {
      int64_t index = space.ParseIndex(archs[i]);
      if (index < 0) {  // not the canonical spelling: the full parser accepts or explains
        auto arch = space.Parse(archs[i]);
        if (!arch.ok()) return BadItem(field, i, arch.status());
        index = space.Index(*arch);
      }
      out[i] = table[index];
    }
    return absl::OkStatus();
  }
  auto parsed = ParseBatch(space, archs, field);
  if (!parsed.ok()) return parsed.status();
  base->Predict(head, *parsed, out);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<core::Architecture>> ParseBatch(
    const core::SearchSpace& space, const google::protobuf::RepeatedPtrField<std::string>& archs,
    const char* field) {
  std::vector<core::Architecture> out;
  out.reserve(archs.size());
  for (int i = 0; i < archs.size(); ++i) {
    auto arch = space.Parse(archs[i]);
    if (!arch.ok()) return BadItem(field, i, arch.status());
    out.push_back(*std::move(arch));
  }
  return out;
}

std::shared_ptr<HeadEntry> MakeHeadEntry(const BaseEntry& base, predictor::DeviceHead head,
                                         int64_t version, v1::ModelState state) {
  auto entry = std::make_shared<HeadEntry>();
  entry->head = std::move(head);
  entry->version = version;
  entry->base_version = base.version;
  entry->state = state;
  entry->base = base.model;
  entry->table = base.model->LatencyTable(entry->head);
  return entry;
}

}  // namespace latpred::service
