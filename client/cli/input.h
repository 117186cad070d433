// Inputs of the `latpred` CLI: files or stdin, architecture lists and sample CSVs.
#ifndef LATPRED_CLIENT_CLI_INPUT_H_
#define LATPRED_CLIENT_CLI_INPUT_H_

#include <istream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "latpred/v1/latpred.pb.h"

namespace latpred::cli {

// status with "prefix: " put before its message (OK stays OK).
absl::Status WithPrefix(const absl::Status& status, absl::string_view prefix);

// The whole content of the file at path, or of `in` when path is "-". Errors name the
// file and carry the errno's code (NOT_FOUND, PERMISSION_DENIED...).
absl::StatusOr<std::string> ReadInput(const std::string& path, std::istream& in);

// Architectures, one per line; surrounding whitespace, blank lines and lines starting
// with '#' are skipped.
std::vector<std::string> ParseArchList(absl::string_view text);

// Samples read from a CSV, with the 1-based line each came from.
struct CsvSamples {
  std::vector<latpred::v1::Sample> samples;
  std::vector<int> lines;
};

// Parses a CSV of measured latencies. The first non-blank line is the header naming the
// columns arch and latency_ms, optionally repeats and spread_ms, in any order. Fields may
// be double-quoted (for FBNet's comma spelling). INVALID_ARGUMENT naming the line on a
// missing header, a bad field count or a value that is not a number.
absl::StatusOr<CsvSamples> ParseSamplesCsv(absl::string_view text);

}  // namespace latpred::cli

#endif  // LATPRED_CLIENT_CLI_INPUT_H_
