// latpred-bench: benchmarks of latpred. `latpred-bench --help` lists the subcommands.
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "latpred/bench/cli.h"

int main(int argc, char** argv) {
  // As latpred-server does: no lock-order cycle checks on every Mutex acquisition (gRPC's
  // included), which would otherwise weigh on the clients of `serve`.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return latpred::bench::BenchMain(argc, argv, std::cout, std::cerr);
}
