// latpred-bench's command line: `latpred-bench <subcommand> [flags]`.
//
// Subcommands are dispatched on argv[1] (today: accuracy; room for more, e.g. serve).
// Flags are absl flags; --some-flag and --some_flag are the same flag.
#ifndef LATPRED_BENCH_CLI_H_
#define LATPRED_BENCH_CLI_H_

#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace latpred::bench {

// Runs the command line; returns the process exit code.
int BenchMain(int argc, char** argv, std::ostream& out, std::ostream& err);

// "3,5,10" -> {3, 5, 10}; INVALID_ARGUMENT naming the flag on a bad item.
absl::StatusOr<std::vector<int>> ParseIntList(const std::string& flag, const std::string& text);
// "a, b,,c" -> {"a", "b", "c"}.
std::vector<std::string> ParseNameList(const std::string& text);
// "--data-dir=x" -> "--data_dir=x"; only the flag name of --flag arguments changes.
std::string NormalizeFlagSpelling(const std::string& arg);

}  // namespace latpred::bench

#endif  // LATPRED_BENCH_CLI_H_
