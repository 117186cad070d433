// The reference architectures whose latencies describe a device (HELP's hardware
// embedding): the agent measures them, the bundled devices have them in their data, and
// the predictor's descriptor map reads them under one feature name.
#ifndef LATPRED_CORE_REFERENCE_ARCHS_H_
#define LATPRED_CORE_REFERENCE_ARCHS_H_

#include <string>
#include <vector>

#include "latpred/core/search_space.h"

namespace latpred::core {

// The 10 nb201 reference architectures: rows 11982, 431, 55, 9, 14451, 8636, 9881, 13479,
// 6196 and 1462 of data/help/nb201_latency.csv (data/help/nb201_reference_archs.txt).
const std::vector<std::string>& Nb201ReferenceArchs();

// A reference latency's descriptor feature name: "<space>:<canonical architecture>".
std::string ReferenceFeatureName(const SearchSpace& space, const Architecture& arch);

}  // namespace latpred::core

#endif  // LATPRED_CORE_REFERENCE_ARCHS_H_
