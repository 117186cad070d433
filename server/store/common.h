// What both Store implementations share (private to latpred_store): input checks,
// the labels JSON codec, time, and error wording.
#ifndef LATPRED_SERVER_STORE_COMMON_H_
#define LATPRED_SERVER_STORE_COMMON_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "latpred/store/store.h"

namespace latpred::store {

// Debian's Abseil has its own string_view, which StrCat does not take from std.
inline absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// The devices table's columns in the order both stores read a device row.
inline constexpr char kDeviceColumns[] = "name, labels_json, source, created_ms, updated_ms";

// Milliseconds since the Unix epoch.
int64_t NowUnixMs();

// INVALID_ARGUMENT for an empty name, a duplicate descriptor feature or a non-finite
// feature value.
absl::Status ValidateDevice(const Device& device);
// INVALID_ARGUMENT naming the first sample with a non-finite latency or spread.
absl::Status ValidateSamples(const std::vector<Sample>& samples);

// NOT_FOUND naming the device.
absl::Status DeviceNotFound(std::string_view name);

// Labels as a JSON object of strings, keys in map order.
std::string EncodeLabelsJson(const std::map<std::string, std::string>& labels);
// Reads a JSON object whose values are all strings (what EncodeLabelsJson writes, plus
// any valid JSON spelling of it); nullopt when the text is not such an object.
std::optional<std::map<std::string, std::string>> DecodeLabelsJson(std::string_view text);

}  // namespace latpred::store

#endif  // LATPRED_SERVER_STORE_COMMON_H_
