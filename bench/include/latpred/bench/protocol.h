// The generalisation protocol (`latpred-bench accuracy --protocol general`): splits whose
// targets come from another collection or another hardware family than their sources,
// run through the same per-task code as the published tasks, and its summary: per split
// and k, how latpred ranks against the best of the baselines on each target.
//
// Splits, in this order:
//  - across collections, nb201 (HELP's and LatBench's tables joined):
//    xc-help<-lb (every LatBench device -> every HELP device) and xc-lb<-help;
//  - nb201, one hardware family left out of the 42 devices of both tables, its sources
//    every other device: gpu-1080ti, gpu-2080ti, gpu-titanrtx, gpu-titanx, gpu-titanxp,
//    phones, xeons, accel, embedded;
//  - fbnet (HELP's 27 devices), the same families: f-gpu-1080ti ... f-gpu-titanxp,
//    f-phones, f-xeons, f-accel, f-raspi4.
#ifndef LATPRED_BENCH_PROTOCOL_H_
#define LATPRED_BENCH_PROTOCOL_H_

#include <iosfwd>
#include <string>
#include <vector>

#include "latpred/bench/accuracy.h"
#include "latpred/bench/tasks.h"

namespace latpred::bench {

// A hardware family: devices whose name starts with one of the prefixes or is one of the
// names. Each bundled device falls in exactly one family (a unit test checks it).
struct DeviceFamily {
  std::string nb201_split;  // the split that leaves the family out on nb201
  std::string fbnet_split;  // ... and on fbnet
  std::string description;
  std::vector<std::string> prefixes;
  std::vector<std::string> names;
};

// The families, in split order.
const std::vector<DeviceFamily>& DeviceFamilies();

// Indices into DeviceFamilies() of every family whose rule takes device.
std::vector<int> MatchingFamilies(const std::string& device);

// The devices of the bundled tables, in column order.
struct CollectionDevices {
  std::vector<std::string> help_nb201;   // data/help/nb201_latency.csv
  std::vector<std::string> eagle_nb201;  // data/eagle/nb201_latency.csv (LatBench)
  std::vector<std::string> help_fbnet;   // data/help/fbnet_latency.csv
};

// Names of the cross-collection splits.
inline constexpr char kHelpFromLatBench[] = "xc-help<-lb";
inline constexpr char kLatBenchFromHelp[] = "xc-lb<-help";
// Every desktop GPU at once (the families whose split names start with "gpu-"), per
// space: a target whose whole kind of hardware no source shares.
inline constexpr char kAllGpus[] = "gpus";
inline constexpr char kAllGpusFbnet[] = "f-gpus";

// Every split name, in order, whatever the data holds.
std::vector<std::string> GeneralSplitNames();

// The splits over these devices, in order. A family with no device in a space gives no
// split there; a device in no family (none of the bundled ones) is always a source.
std::vector<TaskSpec> GeneralSplits(const CollectionDevices& devices);

// A target ranks below the best baseline when its latpred Spearman (mean over trials) is
// under max(FLOPs fit, nearest source, count fit) - this margin, each baseline's figure
// also a mean over trials.
inline constexpr double kBelowBaselineMargin = 0.01;

// Spearman per method, in the order latpred, then kBaselines.
inline constexpr int kSummaryMethods = 4;

// One split at one k: means over its targets of each target's mean over trials (a NaN
// Spearman counts as 0, as in the task aggregates).
struct SplitSummary {
  std::string split;
  std::string space;
  int k = 0;
  int targets = 0;
  int trials = 0;
  double spearman[kSummaryMethods] = {};  // latpred, FLOPs fit, nearest source, count fit
  double within10 = 0;                    // latpred's share within +-10%
  std::vector<std::string> below;         // targets below the best baseline
};

// Every split at one k: means over every (split, target).
struct OverallSummary {
  int k = 0;
  int targets = 0;
  double spearman[kSummaryMethods] = {};
  double within10 = 0;
  int below = 0;
};

struct GeneralSummary {
  Selection selection = Selection::kSuggest;
  std::vector<SplitSummary> splits;    // split order, then k
  std::vector<OverallSummary> overall;  // by k
};

// The summary of results (of any tasks: each is a split) at the given selection, tasks
// in the order of splits.
GeneralSummary SummarizeGeneral(const std::vector<TargetResult>& results,
                                const std::vector<TaskSpec>& splits, Selection selection);

// The table and the per-k lines over all splits.
void PrintGeneralSummary(const GeneralSummary& summary, std::ostream& out);

// generalization.csv: one row per split and k, then one per k over all splits (split
// "all"); below_targets lists the targets below the best baseline (split:target in the
// "all" rows), separated by ';'.
std::string GeneralizationCsv(const GeneralSummary& summary);

}  // namespace latpred::bench

#endif  // LATPRED_BENCH_PROTOCOL_H_
