// Latency tables: reading CSV files of measured latencies and merging them by arch.
//
// Format: a header "index,arch,<device>,..." and one row per architecture. Fields are
// plain (no quoting); lines may end in "\r\n"; blank lines are skipped; a latency cell
// that is empty or blank is not measured. The file is read at once and parsed in place.
#include "latpred/core/dataset.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "latpred/core/status_macros.h"

namespace latpred::core {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr size_t kMaxEcho = 40;

// Quotes a field for an error message, cut to kMaxEcho characters.
std::string Echo(absl::string_view text) {
  return absl::StrCat("'", absl::CEscape(text.substr(0, kMaxEcho)),
                      text.size() > kMaxEcho ? "'..." : "'");
}

// Closes a FILE owned by a unique_ptr.
struct FileCloser {
  void operator()(FILE* file) const { std::fclose(file); }
};

// Reads a whole file; NOT_FOUND naming the path when it cannot be opened.
absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("cannot open latency table '", path, "': ", std::strerror(errno)));
  }
  std::string data;
  char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), file.get())) > 0) data.append(chunk, n);
  if (std::ferror(file.get())) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read latency table '", path, "': ", std::strerror(errno)));
  }
  return data;
}

// An INVALID_ARGUMENT error at path:line.
absl::Status ErrorAt(const std::string& path, int line, absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(path, ":", line, ": ", reason));
}

// Parses the header "index,arch,<device>,..." into the device names.
absl::StatusOr<std::vector<std::string>> ParseHeader(const std::string& path,
                                                     absl::string_view line) {
  const std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
  if (fields.size() < 2 || fields[0] != "index" || fields[1] != "arch") {
    return ErrorAt(
        path, 1,
        absl::StrCat("expected a header 'index,arch,<device>,...', got ", Echo(line)));
  }
  std::vector<std::string> devices;
  for (size_t i = 2; i < fields.size(); ++i) {
    const absl::string_view device = absl::StripAsciiWhitespace(fields[i]);
    if (device.empty()) {
      return ErrorAt(path, 1, absl::StrCat("column ", i + 1, ": empty device name"));
    }
    if (std::find(devices.begin(), devices.end(), device) != devices.end()) {
      return ErrorAt(path, 1, absl::StrCat("duplicate device column ", Echo(device)));
    }
    devices.emplace_back(device);
  }
  return devices;
}

}  // namespace

int LatencyTable::DeviceColumn(std::string_view device) const {
  for (size_t i = 0; i < devices.size(); ++i) {
    if (devices[i] == device) return static_cast<int>(i);
  }
  return -1;
}

int LatencyTable::RowOf(std::string_view canonical_arch) const {
  const auto it = row_of_.find(std::string(canonical_arch));
  return it == row_of_.end() ? -1 : it->second;
}

// Maps each canonical arch string to its first row.
void LatencyTable::BuildIndex() {
  row_of_.clear();
  row_of_.reserve(canonical.size());
  for (size_t row = 0; row < canonical.size(); ++row) {
    row_of_.emplace(canonical[row], static_cast<int>(row));
  }
}

// Parses the header, then every non-blank row; builds the row index at the end.
absl::StatusOr<LatencyTable> ReadLatencyTable(const std::string& path,
                                              const SearchSpace& space) {
  ASSIGN_OR_RETURN(const std::string data, ReadFile(path));
  LatencyTable table;
  table.space = &space;
  const std::vector<absl::string_view> lines = absl::StrSplit(data, '\n');
  std::vector<absl::string_view> fields;
  for (size_t i = 0; i < lines.size(); ++i) {
    const int line_number = static_cast<int>(i) + 1;
    absl::string_view line = lines[i];
    absl::ConsumeSuffix(&line, "\r");
    if (i == 0) {
      ASSIGN_OR_RETURN(table.devices, ParseHeader(path, line));
      // Only lines that hold a row: a row has a comma per device, so rows x devices is
      // bounded by the file's size (blank lines would not be).
      size_t rows = 0;
      for (size_t j = 1; j < lines.size(); ++j) {
        rows += !absl::StripAsciiWhitespace(lines[j]).empty();
      }
      table.archs.reserve(rows);
      table.indices.reserve(rows);
      table.canonical.reserve(rows);
      table.latency.reserve(std::min(rows * table.devices.size(), data.size()));
      continue;
    }
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    fields = absl::StrSplit(line, ',');
    if (fields.size() != table.devices.size() + 2) {
      return ErrorAt(
          path, line_number,
          absl::StrCat("expected ", table.devices.size() + 2,
                       " fields (index, arch and one per device), got ", fields.size()));
    }
    long index = -1;
    if (!fields[0].empty() && !absl::SimpleAtoi(fields[0], &index)) {
      return ErrorAt(path, line_number, absl::StrCat("bad index ", Echo(fields[0])));
    }
    absl::StatusOr<Architecture> arch =
        space.Parse(std::string_view(fields[1].data(), fields[1].size()));
    if (!arch.ok()) return ErrorAt(path, line_number, arch.status().message());
    for (size_t col = 0; col < table.devices.size(); ++col) {
      const absl::string_view cell = absl::StripAsciiWhitespace(fields[col + 2]);
      double value = kNaN;
      if (!cell.empty() && !absl::SimpleAtod(cell, &value)) {
        return ErrorAt(path, line_number,
                       absl::StrCat("bad latency ", Echo(cell), " for device '",
                                    table.devices[col], "'"));
      }
      table.latency.push_back(std::isfinite(value) && value > 0 ? value : kNaN);
    }
    table.indices.push_back(index);
    table.canonical.push_back(space.Canonical(*arch));
    table.archs.push_back(*std::move(arch));
  }
  table.BuildIndex();
  return table;
}

// Rebuilds a's latency matrix with b's columns appended; a's index maps b's rows.
void MergeLatencyTables(LatencyTable& a, const LatencyTable& b) {
  if (a.space == nullptr) a.space = b.space;
  a.BuildIndex();
  const size_t a_cols = a.devices.size();
  const size_t b_cols = b.devices.size();
  const size_t cols = a_cols + b_cols;
  std::vector<double> latency(a.rows() * cols, kNaN);
  for (size_t row = 0; row < a.rows(); ++row) {
    std::copy_n(a.latency.begin() + row * a_cols, a_cols, latency.begin() + row * cols);
  }
  for (size_t b_row = 0; b_row < b.rows(); ++b_row) {
    int row = a.RowOf(b.canonical[b_row]);
    if (row < 0) {
      row = static_cast<int>(a.rows());
      a.indices.push_back(b.indices[b_row]);
      a.archs.push_back(b.archs[b_row]);
      a.canonical.push_back(b.canonical[b_row]);
      a.row_of_.emplace(b.canonical[b_row], row);
      latency.resize(latency.size() + cols, kNaN);
    }
    std::copy_n(b.latency.begin() + b_row * b_cols, b_cols,
                latency.begin() + row * cols + a_cols);
  }
  a.devices.insert(a.devices.end(), b.devices.begin(), b.devices.end());
  a.latency = std::move(latency);
}

}  // namespace latpred::core
