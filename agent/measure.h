// latpred-agent measurement: builds nb201/fbnet networks (CIFAR settings, see
// docs/search-spaces.md) in LibTorch and times their forward pass.
//
// No LibTorch types in this header: measure.cc is the only translation unit
// that includes torch, so the rest of the agent compiles quickly.
#ifndef LATPRED_AGENT_MEASURE_H_
#define LATPRED_AGENT_MEASURE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "latpred/core/search_space.h"

namespace latpred::agent {

// How to time one network.
struct MeasureOptions {
  std::string device = "cpu";  // "cpu" or "cuda:N" (or "cuda")
  int batch_size = 1;
  int threads = 1;          // intra-op threads (torch::set_num_threads)
  int warmup = 5;           // untimed runs first
  int min_runs = 10;        // at least this many timed runs
  int max_runs = 2000;      // at most this many timed runs
  // At least this long of timed runs (seconds): spreads a small network's runs over
  // enough wall time that a passing burst of other load moves the median little.
  double min_seconds = 0.4;
  int batch_runs = 10;      // runs between two stability checks
  double rel_tol = 0.01;    // stop when the median moved less than this over a batch
  double max_seconds = 20;  // time cap of the timed runs of one network
  // Called during TimeInterleaved with the share of the group's time budget spent so
  // far (0 to 1): for a progress bar.
  std::function<void(double)> progress;
};

// Result of timing one network.
struct Measurement {
  double median_ms = 0;
  double spread_ms = 0;  // interquartile range of the timed runs, ms
  int runs = 0;
};

// A built network, ready to run forward on its device. Opaque (holds torch
// objects).
class Network {
 public:
  virtual ~Network() = default;
  // Runs one forward pass on a fixed random input (synchronised on CUDA).
  virtual void Forward() = 0;
  // Learnable parameters (sum of numel of parameters()).
  virtual int64_t NumParams() const = 0;
  // Shape of the output of one forward pass.
  virtual std::vector<int64_t> OutputShape() = 0;
};

// Builds the network of arch in space ("nb201" or "fbnet") on options.device,
// in eval mode, with options.batch_size inputs of 3x32x32. INVALID_ARGUMENT on
// a bad space or device, UNAVAILABLE when CUDA is asked for but not available.
absl::StatusOr<std::unique_ptr<Network>> BuildNetwork(const core::SearchSpace& space,
                                                      const core::Architecture& arch,
                                                      const MeasureOptions& options);

// Times `run` (one forward pass, synchronised) as MeasureOptions says: warm-up
// runs, then batches of runs until min_runs and min_seconds are reached and the median
// is stable, or max_runs or max_seconds is reached.
Measurement TimeRuns(const std::function<void()>& run, const MeasureOptions& options);

// Times several networks interleaved: after their warm-up, rounds in which each runs
// in turn (one run each when there are batch_runs or more networks), until every one
// has min_runs, the group has min_seconds per network of timed runs and every median
// moved less than rel_tol over the last batch_runs runs; or until any reaches
// max_runs, or the group has run three times its min_seconds budget. A machine whose
// speed drifts (frequency scaling, other tenants, a VM's host) then slows every
// network of the group alike instead of whichever one was being timed: their ratios
// and ranking hold. One network alone is TimeRuns.
std::vector<Measurement> TimeInterleaved(const std::vector<std::function<void()>>& runs,
                                         const MeasureOptions& options);

// Builds and times arch. Sets the torch thread count to options.threads.
absl::StatusOr<Measurement> MeasureArch(const core::SearchSpace& space,
                                        const core::Architecture& arch,
                                        const MeasureOptions& options);

// Builds every arch, then times them interleaved (TimeInterleaved). Callers split long
// lists with MeasureGroups so that the networks of a group fit in memory together.
absl::StatusOr<std::vector<Measurement>> MeasureArchs(
    const core::SearchSpace& space, const std::vector<core::Architecture>& archs,
    const MeasureOptions& options);

// Splits n items into consecutive groups of at most 16, of nearly equal sizes: the
// [begin, end) ranges to measure together.
std::vector<std::pair<size_t, size_t>> MeasureGroups(size_t n);

// FP32 GEMM rate of torch::mm on n x n matrices on the CPU, GFLOP/s (threads as
// given).
double GemmGflops(int n, int threads, double seconds);

// Whether torch sees a CUDA device, and how many.
bool CudaAvailable();
int CudaDeviceCount();

// Sets torch's intra-op thread count.
void SetTorchThreads(int threads);

// Median and interquartile range of values (sorted copy), in the values' unit.
double Median(std::vector<double> values);
double Iqr(std::vector<double> values);

}  // namespace latpred::agent

#endif  // LATPRED_AGENT_MEASURE_H_
