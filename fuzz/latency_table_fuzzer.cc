// libFuzzer target: latency table CSVs (ReadLatencyTable for both spaces, then
// MergeLatencyTables). ReadLatencyTable reads only files, so each input is written to an
// in-memory file (memfd) and read back through /proc/self/fd: no temporary files.
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "latpred/core/dataset.h"
#include "latpred/core/search_space.h"

namespace {

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "property failed: %s\n", what);
  std::abort();
}

// The path of an in-memory file holding the current input.
const std::string& WriteInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("latency_table", 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (fd < 0) Fail("memfd_create failed");
  if (ftruncate(fd, 0) != 0) Fail("ftruncate failed");
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) Fail("pwrite failed");
    done += static_cast<size_t>(n);
  }
  return path;
}

// A table read without error is consistent: one index, arch and canonical string per
// row, one cell per row and device, positive or NaN, and each row findable by arch.
void CheckTable(latpred::core::LatencyTable& table) {
  const size_t rows = table.rows();
  if (table.indices.size() != rows || table.canonical.size() != rows) {
    Fail("row vectors differ in length");
  }
  if (table.latency.size() != rows * table.devices.size()) Fail("latency matrix size");
  for (const double v : table.latency) {
    if (!std::isnan(v) && !(v > 0 && std::isfinite(v))) Fail("non-positive latency kept");
  }
  for (size_t row = 0; row < rows; ++row) {
    const int found = table.RowOf(table.canonical[row]);
    if (found < 0 || static_cast<size_t>(found) > row) Fail("RowOf misses a row");
    if (table.space->Canonical(table.archs[row]) != table.canonical[row]) {
      Fail("canonical column differs from the arch");
    }
  }
  for (size_t col = 0; col < table.devices.size(); ++col) {
    if (table.DeviceColumn(table.devices[col]) != static_cast<int>(col)) {
      Fail("DeviceColumn misses a device");
    }
  }
}

void CheckSpace(const std::string& path, const latpred::core::SearchSpace& space) {
  absl::StatusOr<latpred::core::LatencyTable> table =
      latpred::core::ReadLatencyTable(path, space);
  if (!table.ok()) return;
  CheckTable(*table);
  // Merging a table into a copy of itself joins every row and doubles the columns.
  latpred::core::LatencyTable merged = *table;
  latpred::core::MergeLatencyTables(merged, *table);
  if (merged.devices.size() != 2 * table->devices.size()) Fail("merge lost columns");
  if (merged.latency.size() != merged.rows() * merged.devices.size()) {
    Fail("merged latency matrix size");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = WriteInput(data, size);
  CheckSpace(path, latpred::core::Nb201Space());
  CheckSpace(path, latpred::core::FbnetSpace());
  return 0;
}
