// The subcommands of the `latpred` CLI.
#ifndef LATPRED_CLIENT_CLI_COMMANDS_H_
#define LATPRED_CLIENT_CLI_COMMANDS_H_

#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/cli/args.h"
#include "latpred/client/client.h"

namespace latpred::cli {

// Everything one run of a command works with.
struct Invocation {
  // The command's name, e.g. "predict".
  std::string command;
  // Its flags (global ones included) and positional arguments.
  ParsedArgs args;
  // Where the server is and the deadline of each call.
  client::ClientOptions client_options;
  // Print JSON instead of tables.
  bool json = false;
  // Standard input (for file arguments "-") and standard output.
  std::istream& in;
  std::ostream& out;
  // Standard error, for notes beside the output (errors go through the returned status).
  std::ostream& err;
};

// A subcommand: its usage text and what it runs. A usage error from run (see
// UsageError()) exits with code 2, any other error with code 1.
struct Command {
  std::string name;
  // The arguments after the name, e.g. "NAME [--label K=V]...".
  std::string synopsis;
  // One line for the command list.
  std::string summary;
  // Paragraph for `latpred COMMAND --help`.
  std::string help;
  // The command's own flags.
  std::vector<FlagSpec> flags;
  // One example command line.
  std::string example;
  absl::Status (*run)(const Invocation& invocation);
};

// Every command, in the order of the usage text.
const std::vector<Command>& Commands();

}  // namespace latpred::cli

#endif  // LATPRED_CLIENT_CLI_COMMANDS_H_
