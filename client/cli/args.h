// Command-line parsing for the `latpred` CLI: flags in any order among the positional
// arguments, usage errors told apart from failed commands.
#ifndef LATPRED_CLIENT_CLI_ARGS_H_
#define LATPRED_CLIENT_CLI_ARGS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace latpred::cli {

// A usage error (bad flags or arguments): the CLI exits with code 2 on it.
absl::Status UsageError(absl::string_view message);

// Whether status came from UsageError().
bool IsUsageError(const absl::Status& status);

// A flag that a command accepts, written "--name" or "-name".
struct FlagSpec {
  // Name without dashes, e.g. "device" or "k".
  std::string name;
  // Placeholder of the flag's value in usage text ("NAME"); empty for a switch.
  std::string value;
  // One-line help.
  std::string help;
};

// The flags and positional arguments of a command line.
struct ParsedArgs {
  // Every value of every flag given, in order ("" for a switch).
  std::map<std::string, std::vector<std::string>> flags;
  // Arguments that are not flags, in order.
  std::vector<std::string> positional;

  // Whether the flag was given at least once.
  bool Has(const std::string& name) const;
  // The flag's last value, or nullopt when it was not given.
  std::optional<std::string> Get(const std::string& name) const;
  // Every value of the flag (empty when not given).
  std::vector<std::string> GetAll(const std::string& name) const;
};

// Index into args of the first argument that is not a flag (the command), skipping the
// flags in specs and their values; args.size() when there is none. Usage error on a flag
// not in specs or a flag missing its value.
absl::StatusOr<size_t> FindCommand(const std::vector<std::string>& args,
                                   const std::vector<FlagSpec>& specs);

// Parses args against specs: "--name value", "--name=value", one or two dashes, "--"
// ends the flags and "-" alone is a positional argument (stdin). Usage error on an
// unknown flag, a missing value or a value given to a switch.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs);

}  // namespace latpred::cli

#endif  // LATPRED_CLIENT_CLI_ARGS_H_
