#include "client/cli/input.h"

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "latpred/core/status_macros.h"

namespace latpred::cli {
namespace {

constexpr char kCsvColumns[] = "arch,latency_ms[,repeats,spread_ms]";

// Positions of the known columns in a CSV header (-1: absent).
struct CsvColumns {
  int arch = -1;
  int latency_ms = -1;
  int repeats = -1;
  int spread_ms = -1;
  size_t count = 0;
};

// An error status built from errno, naming what failed.
absl::Status ErrnoError(int error, absl::string_view what) {
  return absl::Status(absl::ErrnoToStatusCode(error),
                      absl::StrCat(what, ": ", std::strerror(error)));
}

// The content of the file at path.
absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (file == nullptr) return ErrnoError(errno, absl::StrCat("cannot open ", path));
  std::string content;
  char buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) {
    content.append(buffer, n);
  }
  if (std::ferror(file.get())) {
    return ErrnoError(errno, absl::StrCat("cannot read ", path));
  }
  return content;
}

// Splits one CSV line into trimmed fields; "..." quotes commas, "" inside is a quote.
absl::StatusOr<std::vector<std::string>> SplitCsvLine(absl::string_view line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
      fields.back() += '"';
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  if (quoted) return absl::InvalidArgumentError("unterminated quote");
  for (std::string& field : fields) absl::StripAsciiWhitespace(&field);
  return fields;
}

// Column positions from the header fields; error on unknown, repeated or missing ones.
absl::StatusOr<CsvColumns> ParseHeader(const std::vector<std::string>& fields,
                                       absl::string_view line) {
  CsvColumns columns;
  columns.count = fields.size();
  for (size_t i = 0; i < fields.size(); ++i) {
    int* slot = fields[i] == "arch"         ? &columns.arch
                : fields[i] == "latency_ms" ? &columns.latency_ms
                : fields[i] == "repeats"    ? &columns.repeats
                : fields[i] == "spread_ms"  ? &columns.spread_ms
                                            : nullptr;
    if (slot == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing or bad header: unknown column '", fields[i], "' in '",
                       line, "'; expected ", kCsvColumns));
    }
    if (*slot >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad header: column '", fields[i], "' repeated"));
    }
    *slot = static_cast<int>(i);
  }
  if (columns.arch < 0 || columns.latency_ms < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("missing header: expected ", kCsvColumns, ", got '", line, "'"));
  }
  return columns;
}

// A finite number, or INVALID_ARGUMENT naming the column and the text.
absl::StatusOr<double> ParseNumber(absl::string_view column, const std::string& text) {
  double value;
  if (!absl::SimpleAtod(text, &value) || !std::isfinite(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(column, " '", text, "' is not a finite number"));
  }
  return value;
}

// One sample from a data row's fields; optional columns may be empty.
absl::StatusOr<latpred::v1::Sample> ParseRow(const std::vector<std::string>& fields,
                                             const CsvColumns& columns) {
  if (fields.size() != columns.count) {
    return absl::InvalidArgumentError(
        absl::StrCat(fields.size(), " fields, the header has ", columns.count));
  }
  latpred::v1::Sample sample;
  if (fields[columns.arch].empty()) return absl::InvalidArgumentError("empty arch");
  sample.set_arch(fields[columns.arch]);
  ASSIGN_OR_RETURN(double latency, ParseNumber("latency_ms", fields[columns.latency_ms]));
  sample.set_latency_ms(latency);
  if (columns.repeats >= 0 && !fields[columns.repeats].empty()) {
    int32_t repeats;
    if (!absl::SimpleAtoi(fields[columns.repeats], &repeats)) {
      return absl::InvalidArgumentError(
          absl::StrCat("repeats '", fields[columns.repeats], "' is not an integer"));
    }
    sample.set_repeats(repeats);
  }
  if (columns.spread_ms >= 0 && !fields[columns.spread_ms].empty()) {
    ASSIGN_OR_RETURN(double spread, ParseNumber("spread_ms", fields[columns.spread_ms]));
    sample.set_spread_ms(spread);
  }
  return sample;
}

}  // namespace

absl::Status WithPrefix(const absl::Status& status, absl::string_view prefix) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(prefix, ": ", status.message()));
}

absl::StatusOr<std::string> ReadInput(const std::string& path, std::istream& in) {
  if (path != "-") return ReadFile(path);
  std::string content(std::istreambuf_iterator<char>(in), {});
  if (in.bad()) return absl::DataLossError("cannot read stdin");
  return content;
}

std::vector<std::string> ParseArchList(absl::string_view text) {
  std::vector<std::string> archs;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty() && line[0] != '#') archs.emplace_back(line);
  }
  return archs;
}

absl::StatusOr<CsvSamples> ParseSamplesCsv(absl::string_view text) {
  absl::ConsumePrefix(&text, "\xEF\xBB\xBF");  // UTF-8 byte order mark
  std::optional<CsvColumns> columns;
  CsvSamples result;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    absl::ConsumeSuffix(&line, "\r");
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const std::string where = absl::StrCat("line ", line_number);
    absl::StatusOr<std::vector<std::string>> fields = SplitCsvLine(line);
    RETURN_IF_ERROR(WithPrefix(fields.status(), where));
    if (!columns.has_value()) {
      absl::StatusOr<CsvColumns> header = ParseHeader(*fields, line);
      RETURN_IF_ERROR(WithPrefix(header.status(), where));
      columns = *header;
      continue;
    }
    absl::StatusOr<latpred::v1::Sample> sample = ParseRow(*fields, *columns);
    RETURN_IF_ERROR(WithPrefix(sample.status(), where));
    result.samples.push_back(*std::move(sample));
    result.lines.push_back(line_number);
  }
  if (!columns.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("empty input: expected a header ", kCsvColumns));
  }
  if (result.samples.empty()) {
    return absl::InvalidArgumentError("no samples after the header");
  }
  return result;
}

}  // namespace latpred::cli
