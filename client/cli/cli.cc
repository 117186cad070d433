#include "client/cli/cli.h"

#include <cmath>
#include <cstddef>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "client/cli/args.h"
#include "client/cli/commands.h"
#include "client/cli/output.h"
#include "latpred/client/client.h"

namespace latpred::cli {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// What the global flags set.
struct GlobalOptions {
  client::ClientOptions client;
  bool json = false;
};

// The flags every command accepts; "h" is --help's hidden alias.
const std::vector<FlagSpec>& GlobalFlags() {
  static const auto* const flags = new std::vector<FlagSpec>{
      {"server", "HOST:PORT",
       absl::StrCat("server address (default ", client::ClientOptions().target, ")")},
      {"json", "", "print JSON instead of tables"},
      {"ca", "FILE", "CA certificate (PEM) of a TLS server; the token comes from "
                     "$LATPRED_TOKEN_FILE or $LATPRED_TOKEN"},
      {"timeout", "SECONDS",
       absl::StrCat("deadline of each call (default ",
                    absl::ToDoubleSeconds(client::ClientOptions().timeout), ")")},
      {"help", "", "show help"},
      {"h", "", ""},
  };
  return *flags;
}

// How a flag is written in usage text: "--device NAME", "-k N", "-h, --help".
std::string FlagUsage(const FlagSpec& flag) {
  if (flag.name == "help") return "-h, --help";
  return absl::StrCat(flag.name.size() == 1 ? "-" : "--", flag.name,
                      flag.value.empty() ? "" : " ", flag.value);
}

// The flags with their help, one per line; flags without help are left out.
std::string FlagTable(const std::vector<FlagSpec>& flags) {
  std::vector<std::vector<std::string>> rows;
  for (const FlagSpec& flag : flags) {
    if (!flag.help.empty()) rows.push_back({FlagUsage(flag), flag.help});
  }
  return rows.empty() ? "  (none)\n" : FormatTable(rows, "  ");
}

// "NAME SYNOPSIS" of a command.
std::string CommandLine(const Command& command) {
  return command.synopsis.empty() ? command.name
                                  : absl::StrCat(command.name, " ", command.synopsis);
}

// The usage text of `latpred --help`.
std::string MainUsage() {
  std::string text =
      "latpred: predicts the latency of neural networks on barely-seen devices.\n\n"
      "usage: latpred [--server HOST:PORT] [--ca FILE] [--json] [--timeout SECONDS] COMMAND [ARGS]\n"
      "\ncommands:\n";
  for (const Command& command : Commands()) {
    absl::StrAppend(&text, "  ", CommandLine(command), "\n      ", command.summary, "\n");
  }
  absl::StrAppend(
      &text, "  help [COMMAND]\n      This text, or the details of one command.\n\n",
      "global flags (before or after the command):\n", FlagTable(GlobalFlags()),
      "\nSPACE is nb201 or fbnet; a FILE '-' reads stdin.\n"
      "Exit status: 0 success, 1 the command failed, 2 usage error.\n\n"
      "example: measure a new device, adapt, predict\n"
      "  latpred register orin_nano --label vendor=nvidia --descriptor orin_nano.json\n"
      "  latpred suggest --device orin_nano --space nb201 -k 10 > to_measure.txt\n"
      "  latpred submit --device orin_nano --space nb201 measured.csv\n"
      "  latpred adapt --device orin_nano --space nb201\n"
      "  latpred predict --device orin_nano --space nb201 --file candidates.txt\n\n"
      "Run 'latpred COMMAND --help' for the flags and details of a command.\n");
  return text;
}

// The usage text of `latpred COMMAND --help`.
std::string CommandUsage(const Command& command) {
  return absl::StrCat("usage: latpred [GLOBAL FLAGS] ", CommandLine(command), "\n\n",
                      command.summary, "\n\n", command.help, "\n\nflags:\n",
                      FlagTable(command.flags), "global flags:\n",
                      FlagTable(GlobalFlags()), "\nexample:\n  ", command.example, "\n");
}

// The command called name, or nullptr.
const Command* FindCommandNamed(const std::string& name) {
  for (const Command& command : Commands()) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

// Prints status (when not OK) as "latpred: [COMMAND: ]..." on err; returns the exit code.
int Finish(const absl::Status& status, const Command* command, std::ostream& err) {
  if (status.ok()) return kExitOk;
  const std::string prefix =
      command == nullptr ? "latpred: " : absl::StrCat("latpred: ", command->name, ": ");
  if (!IsUsageError(status)) {
    err << prefix << absl::StatusCodeToString(status.code()) << ": " << status.message()
        << "\n";
    return kExitFailed;
  }
  err << prefix << status.message() << "\n";
  if (command == nullptr) {
    err << "Run 'latpred --help' for usage.\n";
  } else {
    err << "usage: latpred [GLOBAL FLAGS] " << CommandLine(*command) << "\n"
        << "Run 'latpred " << command->name << " --help' for details.\n";
  }
  return kExitUsage;
}

// The options set by --server, --timeout and --json.
absl::StatusOr<GlobalOptions> ParseGlobalOptions(const ParsedArgs& args) {
  GlobalOptions options;
  options.json = args.Has("json");
  if (std::optional<std::string> server = args.Get("server")) {
    if (server->empty()) return UsageError("--server needs HOST:PORT");
    options.client.target = *server;
  }
  if (std::optional<std::string> timeout = args.Get("timeout")) {
    double seconds;
    if (!absl::SimpleAtod(*timeout, &seconds) || !std::isfinite(seconds) ||
        seconds <= 0) {
      return UsageError(absl::StrCat(
          "--timeout wants a positive number of seconds, got '", *timeout, "'"));
    }
    options.client.timeout = absl::Seconds(seconds);
  }
  if (std::optional<std::string> ca = args.Get("ca")) options.client.ca_file = *ca;
  absl::StatusOr<std::string> token = client::TokenFromEnvironment();
  if (!token.ok()) return token.status();
  options.client.token = *token;
  return options;
}

// Runs one command on its arguments (the command name removed).
int RunCommand(const Command& command, const std::vector<std::string>& args,
               std::istream& in, std::ostream& out, std::ostream& err) {
  std::vector<FlagSpec> specs = GlobalFlags();
  specs.insert(specs.end(), command.flags.begin(), command.flags.end());
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, specs);
  if (!parsed.ok()) return Finish(parsed.status(), &command, err);
  if (parsed->Has("help") || parsed->Has("h")) {
    out << CommandUsage(command);
    return kExitOk;
  }
  absl::StatusOr<GlobalOptions> global = ParseGlobalOptions(*parsed);
  if (!global.ok()) return Finish(global.status(), &command, err);
  const Invocation invocation{
      command.name, *std::move(parsed), global->client, global->json, in, out, err};
  return Finish(command.run(invocation), &command, err);
}

// `latpred help [COMMAND]`; args may hold global flags, which are ignored.
int RunHelp(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, GlobalFlags());
  if (!parsed.ok()) return Finish(parsed.status(), nullptr, err);
  const std::vector<std::string>& names = parsed->positional;
  if (names.empty()) {
    out << MainUsage();
    return kExitOk;
  }
  const Command* command = FindCommandNamed(names[0]);
  if (names.size() > 1 || command == nullptr) {
    return Finish(
        UsageError(names.size() > 1 ? "help takes at most one COMMAND"
                                    : absl::StrCat("unknown command '", names[0], "'")),
        nullptr, err);
  }
  out << CommandUsage(*command);
  return kExitOk;
}

// `latpred` with global flags only: --help prints the usage, anything else is an error.
int RunWithoutCommand(const std::vector<std::string>& args, std::ostream& out,
                      std::ostream& err) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, GlobalFlags());
  if (!parsed.ok()) return Finish(parsed.status(), nullptr, err);
  if (parsed->Has("help") || parsed->Has("h")) {
    out << MainUsage();
    return kExitOk;
  }
  err << MainUsage();
  return kExitUsage;
}

}  // namespace

int RunCli(int argc, char** argv, std::istream& in, std::ostream& out,
           std::ostream& err) {
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::StatusOr<size_t> at = FindCommand(args, GlobalFlags());
  if (!at.ok()) return Finish(at.status(), nullptr, err);
  if (*at == args.size()) return RunWithoutCommand(args, out, err);
  const std::string name = args[*at];
  args.erase(args.begin() + static_cast<std::ptrdiff_t>(*at));
  if (name == "help") return RunHelp(args, out, err);
  const Command* command = FindCommandNamed(name);
  if (command == nullptr) {
    return Finish(UsageError(absl::StrCat("unknown command '", name, "'")), nullptr, err);
  }
  return RunCommand(*command, args, in, out, err);
}

int RunCli(int argc, char** argv, std::ostream& out, std::ostream& err) {
  return RunCli(argc, argv, std::cin, out, err);
}

}  // namespace latpred::cli
