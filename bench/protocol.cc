#include "latpred/bench/protocol.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <ostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "latpred/bench/baselines.h"
#include "latpred/bench/report.h"

namespace latpred::bench {
namespace {

double ZeroIfNan(double v) { return std::isnan(v) ? 0.0 : v; }

const Method kSummaryOrder[kSummaryMethods] = {Method::kLatpred, kBaselines[0], kBaselines[1],
                                               kBaselines[2]};

std::string CsvNum(double v) { return std::isfinite(v) ? absl::StrFormat("%.6g", v) : ""; }

}  // namespace

const std::vector<DeviceFamily>& DeviceFamilies() {
  // LatBench's Core i7-7820X goes with the Xeons: an x86 CPU of the same generation, and
  // the only desktop CPU in either collection.
  static const std::vector<DeviceFamily>* families = new std::vector<DeviceFamily>{
      {"gpu-1080ti", "f-gpu-1080ti", "GTX 1080 Ti, every batch size and precision",
       {"1080ti_", "desktop_gpu_gtx_1080ti_"}, {}},
      {"gpu-2080ti", "f-gpu-2080ti", "RTX 2080 Ti, every batch size", {"2080ti_"}, {}},
      {"gpu-titanrtx", "f-gpu-titanrtx", "Titan RTX, every batch size", {"titan_rtx_"}, {}},
      {"gpu-titanx", "f-gpu-titanx", "Titan X (not Xp), every batch size", {"titanx_"}, {}},
      {"gpu-titanxp", "f-gpu-titanxp", "Titan Xp, every batch size", {"titanxp_"}, {}},
      {"phones", "f-phones", "phones: HELP's five, LatBench's Snapdragon CPUs and GPUs",
       {"mobile_cpu_", "mobile_gpu_"},
       {"pixel2", "pixel3", "samsung_a50", "samsung_s7", "essential_ph_1"}},
      {"xeons", "f-xeons", "server and desktop x86 CPUs: the Xeons, LatBench's Core i7-7820X",
       {"desktop_cpu_"}, {"gold_6226", "gold_6240", "silver_4114", "silver_4210r"}},
      {"accel", "f-accel", "accelerators: Eyeriss, the FPGA, the Edge TPUs, Snapdragon DSPs",
       {"embedded_tpu_", "mobile_dsp_"}, {"eyeriss", "fpga"}},
      {"embedded", "f-raspi4", "embedded boards: Raspberry Pi 4, Jetson Nano",
       {"embedded_gpu_"}, {"raspi4"}},
  };
  return *families;
}

std::vector<int> MatchingFamilies(const std::string& device) {
  std::vector<int> out;
  const std::vector<DeviceFamily>& families = DeviceFamilies();
  for (size_t f = 0; f < families.size(); ++f) {
    bool match = std::find(families[f].names.begin(), families[f].names.end(), device) !=
                 families[f].names.end();
    for (const std::string& p : families[f].prefixes) match |= absl::StartsWith(device, p);
    if (match) out.push_back(static_cast<int>(f));
  }
  return out;
}

std::vector<std::string> GeneralSplitNames() {
  std::vector<std::string> names = {kHelpFromLatBench, kLatBenchFromHelp};
  for (const DeviceFamily& f : DeviceFamilies()) names.push_back(f.nb201_split);
  for (const DeviceFamily& f : DeviceFamilies()) names.push_back(f.fbnet_split);
  names.push_back(kAllGpus);
  names.push_back(kAllGpusFbnet);
  return names;
}

std::vector<TaskSpec> GeneralSplits(const CollectionDevices& devices) {
  std::vector<TaskSpec> splits;
  if (!devices.help_nb201.empty() && !devices.eagle_nb201.empty()) {
    splits.push_back({kHelpFromLatBench, "nb201", devices.eagle_nb201, devices.help_nb201,
                      std::nullopt});
    splits.push_back({kLatBenchFromHelp, "nb201", devices.help_nb201, devices.eagle_nb201,
                      std::nullopt});
  }
  std::vector<std::string> nb201 = devices.help_nb201;
  nb201.insert(nb201.end(), devices.eagle_nb201.begin(), devices.eagle_nb201.end());
  const auto leave_out = [&splits](const std::string& name, const std::string& space,
                                   const std::vector<std::string>& all, int family) {
    TaskSpec split{name, space, {}, {}, std::nullopt};
    for (const std::string& d : all) {
      const std::vector<int> f = MatchingFamilies(d);
      const bool in = std::find(f.begin(), f.end(), family) != f.end();
      (in ? split.targets : split.sources).push_back(d);
    }
    if (!split.targets.empty() && !split.sources.empty()) splits.push_back(std::move(split));
  };
  const std::vector<DeviceFamily>& families = DeviceFamilies();
  for (size_t f = 0; f < families.size(); ++f) {
    leave_out(families[f].nb201_split, "nb201", nb201, static_cast<int>(f));
  }
  for (size_t f = 0; f < families.size(); ++f) {
    leave_out(families[f].fbnet_split, "fbnet", devices.help_fbnet, static_cast<int>(f));
  }
  const auto all_gpus = [&splits](const std::string& name, const std::string& space,
                                  const std::vector<std::string>& all) {
    TaskSpec split{name, space, {}, {}, std::nullopt};
    for (const std::string& d : all) {
      bool gpu = false;
      for (int f : MatchingFamilies(d)) {
        gpu |= absl::StartsWith(DeviceFamilies()[f].nb201_split, "gpu-");
      }
      (gpu ? split.targets : split.sources).push_back(d);
    }
    if (!split.targets.empty() && !split.sources.empty()) splits.push_back(std::move(split));
  };
  all_gpus(kAllGpus, "nb201", nb201);
  all_gpus(kAllGpusFbnet, "fbnet", devices.help_fbnet);
  return splits;
}

GeneralSummary SummarizeGeneral(const std::vector<TargetResult>& results,
                                const std::vector<TaskSpec>& splits, Selection selection) {
  GeneralSummary summary;
  summary.selection = selection;
  // (split, k) -> target -> method -> per-trial Spearman (and latpred's within10).
  struct PerTarget {
    std::vector<double> spearman[kSummaryMethods];
    std::vector<double> within10;
  };
  std::map<std::pair<std::string, int>, std::map<std::string, PerTarget>> groups;
  std::map<std::pair<std::string, int>, std::vector<std::string>> target_order;
  std::vector<int> ks;
  for (const TargetResult& r : results) {
    if (r.selection != selection) continue;
    const int m = static_cast<int>(std::find(kSummaryOrder, kSummaryOrder + kSummaryMethods,
                                             r.method) -
                                   kSummaryOrder);
    if (m == kSummaryMethods) continue;
    const auto key = std::make_pair(r.task, r.k);
    auto& targets = groups[key];
    if (!targets.count(r.target)) target_order[key].push_back(r.target);
    PerTarget& t = targets[r.target];
    t.spearman[m].push_back(ZeroIfNan(r.metrics.spearman));
    if (r.method == Method::kLatpred) t.within10.push_back(r.metrics.within10);
    if (std::find(ks.begin(), ks.end(), r.k) == ks.end()) ks.push_back(r.k);
  }
  std::sort(ks.begin(), ks.end());
  for (int k : ks) {
    OverallSummary all;
    all.k = k;
    std::vector<double> all_rho[kSummaryMethods], all_within;
    for (const TaskSpec& split : splits) {
      const auto key = std::make_pair(split.name, k);
      const auto it = groups.find(key);
      if (it == groups.end()) continue;
      SplitSummary s;
      s.split = split.name;
      s.space = split.space;
      s.k = k;
      std::vector<double> rho[kSummaryMethods], within;
      for (const std::string& target : target_order[key]) {
        const PerTarget& t = it->second.at(target);
        double mean[kSummaryMethods];
        for (int m = 0; m < kSummaryMethods; ++m) {
          mean[m] = Mean(t.spearman[m]);
          rho[m].push_back(mean[m]);
          all_rho[m].push_back(mean[m]);
        }
        s.trials = std::max(s.trials, static_cast<int>(t.spearman[0].size()));
        within.push_back(Mean(t.within10));
        all_within.push_back(within.back());
        // NaN (a method without results) is never the best and never below it.
        double best = -INFINITY;
        for (int m = 1; m < kSummaryMethods; ++m) {
          if (std::isfinite(mean[m])) best = std::max(best, mean[m]);
        }
        if (mean[0] < best - kBelowBaselineMargin) {
          s.below.push_back(target);
          ++all.below;
        }
      }
      s.targets = static_cast<int>(target_order[key].size());
      for (int m = 0; m < kSummaryMethods; ++m) s.spearman[m] = Mean(rho[m]);
      s.within10 = Mean(within);
      all.targets += s.targets;
      summary.splits.push_back(std::move(s));
    }
    for (int m = 0; m < kSummaryMethods; ++m) all.spearman[m] = Mean(all_rho[m]);
    all.within10 = Mean(all_within);
    summary.overall.push_back(all);
  }
  // Split order first, then k.
  std::stable_sort(summary.splits.begin(), summary.splits.end(),
                   [&splits](const SplitSummary& p, const SplitSummary& q) {
                     const auto rank = [&splits](const std::string& name) {
                       return std::find_if(splits.begin(), splits.end(),
                                           [&name](const TaskSpec& t) {
                                             return t.name == name;
                                           }) -
                              splits.begin();
                     };
                     return rank(p.split) < rank(q.split);
                   });
  return summary;
}

void PrintGeneralSummary(const GeneralSummary& summary, std::ostream& out) {
  out << absl::StrFormat(
      "Generalisation (selection %s): Spearman, mean over targets of each target's mean over "
      "trials; below = targets where latpred < best baseline - %.2f\n",
      SelectionName(summary.selection), kBelowBaselineMargin);
  const std::string header = absl::StrFormat("%-14s %3s %7s  %7s %9s  %7s %7s %7s  %5s",
                                             "split", "k", "targets", "latpred", "within10%",
                                             "FLOPs", "nearest", "count", "below");
  out << header << "\n" << std::string(header.size(), '-') << "\n";
  for (const SplitSummary& s : summary.splits) {
    out << absl::StrFormat("%-14s %3d %7d  %7.3f %8.1f%%  %7.3f %7.3f %7.3f  %5d\n", s.split,
                           s.k, s.targets, s.spearman[0], 100 * s.within10, s.spearman[1],
                           s.spearman[2], s.spearman[3], s.below.size());
  }
  out << std::string(header.size(), '-') << "\n";
  for (const OverallSummary& a : summary.overall) {
    out << absl::StrFormat("%-14s %3d %7d  %7.3f %8.1f%%  %7.3f %7.3f %7.3f  %5d\n",
                           "all splits", a.k, a.targets, a.spearman[0], 100 * a.within10,
                           a.spearman[1], a.spearman[2], a.spearman[3], a.below);
  }
  for (const OverallSummary& a : summary.overall) {
    out << absl::StrFormat(
        "k=%d over all %d targets: Spearman latpred %.3f, FLOPs fit %.3f, nearest source "
        "%.3f, count fit %.3f; latpred below the best baseline on %d\n",
        a.k, a.targets, a.spearman[0], a.spearman[1], a.spearman[2], a.spearman[3], a.below);
  }
}

std::string GeneralizationCsv(const GeneralSummary& summary) {
  std::string out = "split,space,k,selection,trials,targets";
  for (Method m : kSummaryOrder) absl::StrAppend(&out, ",", MethodName(m), "_spearman");
  absl::StrAppend(&out, ",latpred_within10,below_best_baseline,below_targets\n");
  const std::string sel = SelectionName(summary.selection);
  for (const SplitSummary& s : summary.splits) {
    absl::StrAppend(&out, CsvField(s.split), ",", s.space, ",", s.k, ",", sel, ",", s.trials,
                    ",", s.targets);
    for (double v : s.spearman) absl::StrAppend(&out, ",", CsvNum(v));
    absl::StrAppend(&out, ",", CsvNum(s.within10), ",", s.below.size(), ",",
                    CsvField(absl::StrJoin(s.below, ";")), "\n");
  }
  for (const OverallSummary& a : summary.overall) {
    std::vector<std::string> below;
    for (const SplitSummary& s : summary.splits) {
      if (s.k != a.k) continue;
      for (const std::string& t : s.below) below.push_back(absl::StrCat(s.split, ":", t));
    }
    int trials = 0;
    for (const SplitSummary& s : summary.splits) {
      if (s.k == a.k) trials = std::max(trials, s.trials);
    }
    absl::StrAppend(&out, "all,,", a.k, ",", sel, ",", trials, ",", a.targets);
    for (double v : a.spearman) absl::StrAppend(&out, ",", CsvNum(v));
    absl::StrAppend(&out, ",", CsvNum(a.within10), ",", a.below, ",",
                    CsvField(absl::StrJoin(below, ";")), "\n");
  }
  return out;
}

}  // namespace latpred::bench
