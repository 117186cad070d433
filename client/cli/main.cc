// latpred: command-line client of the latpred latency prediction service.
#include <iostream>

#include "client/cli/cli.h"

int main(int argc, char** argv) {
  return latpred::cli::RunCli(argc, argv, std::cout, std::cerr);
}
