// Device descriptor files of `latpred register --descriptor FILE.json`.
#ifndef LATPRED_CLIENT_CLI_DESCRIPTOR_JSON_H_
#define LATPRED_CLIENT_CLI_DESCRIPTOR_JSON_H_

#include <istream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "latpred/v1/latpred.pb.h"

namespace latpred::cli {

// Parses a descriptor's JSON into the labels and features of a RegisterDeviceRequest
// (name left empty). Two forms are accepted:
//   {"features": [{"name": "dram_gbps", "value": 51.2, "source": "microbenchmark",
//                  "unit": "GB/s"}, ...],
//    "labels": {"kind": "gpu"}}                       (both keys optional)
//   {"dram_gbps": 51.2, "l2_kib": 4096}               (flat: all microbenchmarks)
// A source is counter, microbenchmark or reference_latency (or its FEATURE_SOURCE_*
// name) and defaults to microbenchmark. INVALID_ARGUMENT naming the problem otherwise.
absl::StatusOr<latpred::v1::RegisterDeviceRequest> ParseDescriptorJson(
    absl::string_view json);

// ParseDescriptorJson() of the file at path ("-": of `in`); errors name the file.
absl::StatusOr<latpred::v1::RegisterDeviceRequest> LoadDescriptorFile(
    const std::string& path, std::istream& in);

}  // namespace latpred::cli

#endif  // LATPRED_CLIENT_CLI_DESCRIPTOR_JSON_H_
