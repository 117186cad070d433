// The reference architectures (latpred/core/reference_archs.h).
#include "latpred/core/reference_archs.h"

#include "absl/strings/str_cat.h"

namespace latpred::core {

const std::vector<std::string>& Nb201ReferenceArchs() {
  static const auto* archs = new std::vector<std::string>{
      "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|"
      "skip_connect~2|",
      "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|",
      "|skip_connect~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|"
      "none~2|",
      "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
      "|none~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_"
      "conv_1x1~2|",
      "|skip_connect~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|none~1|"
      "nor_conv_3x3~2|",
      "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|nor_conv_1x1~1|"
      "avg_pool_3x3~2|",
      "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_"
      "conv_3x3~1|nor_conv_3x3~2|",
      "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|none~0|nor_conv_1x1~1|avg_"
      "pool_3x3~2|",
      "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_"
      "conv_3x3~1|nor_conv_3x3~2|"};
  return *archs;
}

std::string ReferenceFeatureName(const SearchSpace& space, const Architecture& arch) {
  return absl::StrCat(std::string(space.name()), ":", space.Canonical(arch));
}

}  // namespace latpred::core
