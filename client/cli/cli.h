// Entry point of the `latpred` command-line tool, callable from tests.
#ifndef LATPRED_CLIENT_CLI_CLI_H_
#define LATPRED_CLIENT_CLI_CLI_H_

#include <istream>
#include <ostream>

namespace latpred::cli {

// Runs `latpred` on argv (argv[0] is the program), reading file arguments "-" from `in`.
// Returns the exit code: 0 on success, 1 when the command failed, 2 on a usage error.
int RunCli(int argc, char** argv, std::istream& in, std::ostream& out, std::ostream& err);

// RunCli() reading standard input.
int RunCli(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace latpred::cli

#endif  // LATPRED_CLIENT_CLI_CLI_H_
