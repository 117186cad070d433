// What the server predicts with: a base model per search space and a head per (device,
// space), made ready to serve. Shared by the service and the serving benchmark, so the
// benchmark's in-process limit runs exactly the service's prediction code.
#ifndef LATPRED_SERVICE_HEAD_ENTRY_H_
#define LATPRED_SERVICE_HEAD_ENTRY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "latpred/core/search_space.h"
#include "latpred/predictor/predictor.h"
#include "latpred/v1/latpred.pb.h"

namespace latpred::service {

// A base model and the version the store gave it.
struct BaseEntry {
  std::shared_ptr<const predictor::BaseModel> model;
  int64_t version = 0;
};

// The head a device predicts with in one space. Immutable once built.
struct HeadEntry {
  predictor::DeviceHead head;
  int64_t version = 0;       // the device's model version (source devices: the base's)
  int64_t base_version = 0;  // base model the head belongs to
  v1::ModelState state = v1::MODEL_STATE_NONE;
  // The base model the head belongs to.
  std::shared_ptr<const predictor::BaseModel> base;
  // In spaces small enough to enumerate, the head's latency_ms of every architecture
  // (BaseModel::LatencyTable), so that a prediction is a parse and a lookup.
  std::vector<double> table;

  // Predicted latency_ms of each architecture string, written to out (archs.size()
  // values). INVALID_ARGUMENT names the first bad item: "<field>[i]: reason".
  absl::Status Predict(const google::protobuf::RepeatedPtrField<std::string>& archs,
                       double* out, const char* field = "archs") const;
};

// Parses every architecture of a batch; INVALID_ARGUMENT names the first bad item:
// "<field>[i]: reason".
absl::StatusOr<std::vector<core::Architecture>> ParseBatch(
    const core::SearchSpace& space, const google::protobuf::RepeatedPtrField<std::string>& archs,
    const char* field);

// A head entry on `base`, with its latency table filled where the space has one.
std::shared_ptr<HeadEntry> MakeHeadEntry(const BaseEntry& base, predictor::DeviceHead head,
                                         int64_t version, v1::ModelState state);

}  // namespace latpred::service

#endif  // LATPRED_SERVICE_HEAD_ENTRY_H_
