// Latency tables: CSV files with columns index, arch, then one column per device (ms).
#ifndef LATPRED_CORE_DATASET_H_
#define LATPRED_CORE_DATASET_H_

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "latpred/core/search_space.h"

namespace latpred::core {

// A table of measured latencies: rows are architectures, columns devices.
struct LatencyTable {
  const SearchSpace* space = nullptr;
  std::vector<std::string> devices;
  std::vector<long> indices;               // the "index" column per row (-1 if empty)
  std::vector<Architecture> archs;         // parsed rows
  std::vector<std::string> canonical;      // canonical arch string per row
  // latency[row * devices.size() + col] in ms; NaN where not measured.
  std::vector<double> latency;

  size_t rows() const { return archs.size(); }
  double at(size_t row, size_t col) const { return latency[row * devices.size() + col]; }
  // Column index of a device, or -1.
  int DeviceColumn(std::string_view device) const;
  // Row of a canonical arch string, or -1. Built lazily by BuildIndex().
  int RowOf(std::string_view canonical_arch) const;
  void BuildIndex();
  std::unordered_map<std::string, int> row_of_;
};

// Reads a CSV latency table for a space. Every arch must parse (the error names the
// line); empty cells and non-positive or non-finite values become NaN.
absl::StatusOr<LatencyTable> ReadLatencyTable(const std::string& path,
                                              const SearchSpace& space);

// Merges b into a: rows joined on the canonical arch string, devices appended.
// Rows of b not present in a are appended with NaN for a's devices.
void MergeLatencyTables(LatencyTable& a, const LatencyTable& b);

}  // namespace latpred::core

#endif  // LATPRED_CORE_DATASET_H_
