// The registry of search spaces: lookup by name.
#include "latpred/core/search_space.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace latpred::core {
namespace {

constexpr size_t kMaxEcho = 40;

// Every built-in space, in the stable order of SearchSpaceNames().
std::vector<const SearchSpace*> AllSpaces() { return {&Nb201Space(), &FbnetSpace()}; }

}  // namespace

int64_t SearchSpace::Index(const Architecture& arch) const {
  int64_t index = 0;
  for (size_t i = arch.ops.size(); i-- > 0;) index = index * num_ops() + arch.ops[i];
  return index;
}

absl::StatusOr<const SearchSpace*> GetSearchSpace(std::string_view name) {
  for (const SearchSpace* space : AllSpaces()) {
    if (space->name() == name) return space;
  }
  const absl::string_view shown(name.data(), std::min(name.size(), kMaxEcho));
  return absl::InvalidArgumentError(
      absl::StrCat("unknown search space '", absl::CEscape(shown),
                   name.size() > kMaxEcho ? "'..." : "'",
                   " (known: ", absl::StrJoin(SearchSpaceNames(), ", "), ")"));
}

std::vector<std::string> SearchSpaceNames() {
  std::vector<std::string> names;
  for (const SearchSpace* space : AllSpaces()) names.emplace_back(space->name());
  return names;
}

}  // namespace latpred::core
