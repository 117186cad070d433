// latpred-bench: benchmarks of latpred. `latpred-bench --help` lists the subcommands.
#include <iostream>

#include "latpred/bench/cli.h"

int main(int argc, char** argv) {
  return latpred::bench::BenchMain(argc, argv, std::cout, std::cerr);
}
