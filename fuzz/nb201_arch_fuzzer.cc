// libFuzzer target: nb201 architecture strings (Parse, Canonical round trip, ParseIndex,
// Encode, AnalyticCosts). See arch_fuzz.h for the properties checked.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "arch_fuzz.h"
#include "latpred/core/search_space.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  latpred::fuzz::CheckArchText(latpred::core::Nb201Space(),
                               std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
