// libFuzzer target: device labels JSON as the stores read it back (DecodeLabelsJson),
// and its round trip: what decodes encodes to JSON that decodes to the same labels.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common.h"

namespace {

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "property failed: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::optional<std::map<std::string, std::string>> labels =
      latpred::store::DecodeLabelsJson(text);
  if (!labels.has_value()) return 0;
  const std::string encoded = latpred::store::EncodeLabelsJson(*labels);
  const std::optional<std::map<std::string, std::string>> again =
      latpred::store::DecodeLabelsJson(encoded);
  if (!again.has_value()) Fail("encoded labels do not decode");
  if (*again != *labels) Fail("encoded labels decode to other labels");
  if (latpred::store::EncodeLabelsJson(*again) != encoded) Fail("encoding is not stable");
  return 0;
}
