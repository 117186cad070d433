// What the architecture string fuzzers check for one space: whatever the bytes,
// Parse returns (no crash, no undefined behaviour), and what parses round-trips
// through its canonical spelling, encodes and costs within bounds.
#ifndef LATPRED_FUZZ_ARCH_FUZZ_H_
#define LATPRED_FUZZ_ARCH_FUZZ_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "latpred/core/search_space.h"

namespace latpred::fuzz {

// Reports a broken property and aborts, so libFuzzer keeps the input.
[[noreturn]] inline void Fail(const char* what, std::string_view text) {
  std::fprintf(stderr, "property failed: %s (input '%.*s')\n", what,
               static_cast<int>(text.size()), text.data());
  std::abort();
}

inline void CheckArchText(const core::SearchSpace& space, std::string_view text) {
  const absl::StatusOr<core::Architecture> arch = space.Parse(text);
  const int64_t fast_index = space.ParseIndex(text);
  if (!arch.ok()) {
    // ParseIndex accepts only canonical spellings, which Parse accepts too.
    if (fast_index != -1) Fail("ParseIndex accepts text that Parse rejects", text);
    return;
  }
  if (static_cast<int>(arch->ops.size()) != space.num_positions()) {
    Fail("parsed architecture has the wrong number of positions", text);
  }
  for (const uint8_t op : arch->ops) {
    if (op >= space.num_ops()) Fail("parsed op id out of range", text);
  }

  // parse(canonical(parse(x))) == parse(x), and the canonical spelling is a fixed point.
  const std::string canonical = space.Canonical(*arch);
  const absl::StatusOr<core::Architecture> again = space.Parse(canonical);
  if (!again.ok()) Fail("canonical spelling does not parse", text);
  if (!(*again == *arch)) Fail("canonical spelling parses to another architecture", text);
  if (space.Canonical(*again) != canonical) Fail("canonical spelling is not stable", text);

  // ParseIndex: the fast path agrees with Parse + Index on the canonical spelling, and
  // on any other text either declines (-1) or agrees.
  if (space.enumerable_size() > 0) {
    const int64_t index = space.Index(*arch);
    if (index < 0 || index >= space.enumerable_size()) Fail("Index out of range", text);
    if (space.ParseIndex(canonical) != index) Fail("ParseIndex(canonical) != Index", text);
    if (fast_index != -1 && fast_index != index) Fail("ParseIndex(text) != Index", text);
  } else if (fast_index != -1 || space.ParseIndex(canonical) != -1) {
    Fail("ParseIndex answers in a space that is not enumerable", text);
  }

  // Encode writes exactly encoding_size() values (ASan catches a write past the end).
  std::vector<float> encoding(static_cast<size_t>(space.encoding_size()));
  space.Encode(*arch, encoding.data());
  const core::Costs costs = space.AnalyticCosts(*arch);
  if (!(costs.flops >= 0 && costs.params >= 0 && costs.bytes >= 0 && costs.kernels >= 0)) {
    Fail("negative or NaN analytic cost", text);
  }
  space.output_cut_off(*arch);
}

}  // namespace latpred::fuzz

#endif  // LATPRED_FUZZ_ARCH_FUZZ_H_
