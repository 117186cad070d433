// Unit tests of the generalisation protocol: the family table against the bundled
// devices, the splits built from it, the summary's count of targets below the best
// baseline, and a short run of one split.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "checkers.h"
#include "latpred/bench/accuracy.h"
#include "latpred/bench/protocol.h"
#include "latpred/bench/report.h"

namespace latpred::bench {
namespace {

using testing::ParseCsv;
using testing::ReadFile;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The device columns of a bundled table: its header but index and arch.
std::vector<std::string> HeaderDevices(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  std::vector<std::string> cells = absl::StrSplit(line, ',');
  EXPECT_GE(cells.size(), 3u) << path;
  if (cells.size() < 2) return {};
  EXPECT_EQ(cells[0], "index");
  EXPECT_EQ(cells[1], "arch");
  return {cells.begin() + 2, cells.end()};
}

CollectionDevices BundledDevices() {
  CollectionDevices d;
  d.help_nb201 = HeaderDevices(LATPRED_DATA_DIR "/help/nb201_latency.csv");
  d.eagle_nb201 = HeaderDevices(LATPRED_DATA_DIR "/eagle/nb201_latency.csv");
  d.help_fbnet = HeaderDevices(LATPRED_DATA_DIR "/help/fbnet_latency.csv");
  return d;
}

const TaskSpec* FindSplit(const std::vector<TaskSpec>& splits, const std::string& name) {
  for (const TaskSpec& t : splits) {
    if (t.name == name) return &t;
  }
  ADD_FAILURE() << "no split " << name;
  return nullptr;
}

std::set<std::string> AsSet(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

TEST(BenchProtocolTest, EveryBundledDeviceFallsInExactlyOneFamily) {
  const CollectionDevices d = BundledDevices();
  ASSERT_EQ(d.help_nb201.size(), 27u);
  ASSERT_EQ(d.eagle_nb201.size(), 15u);
  ASSERT_EQ(d.help_fbnet.size(), 27u);
  for (const auto* list : {&d.help_nb201, &d.eagle_nb201, &d.help_fbnet}) {
    for (const std::string& device : *list) {
      const std::vector<int> families = MatchingFamilies(device);
      EXPECT_EQ(families.size(), 1u) << device << " is in " << families.size() << " families";
    }
  }
  // The rules that are easy to get wrong: Titan X is not Titan Xp, the Core i7 is an x86
  // CPU beside the Xeons, both 1080 Ti collections are one family.
  const auto family = [](const std::string& device) {
    const std::vector<int> f = MatchingFamilies(device);
    return f.size() == 1 ? DeviceFamilies()[f[0]].nb201_split : std::string("?");
  };
  EXPECT_EQ(family("titanx_32"), "gpu-titanx");
  EXPECT_EQ(family("titanxp_32"), "gpu-titanxp");
  EXPECT_EQ(family("desktop_cpu_core_i7_7820x_fp32"), "xeons");
  EXPECT_EQ(family("desktop_gpu_gtx_1080ti_large"), "gpu-1080ti");
  EXPECT_EQ(family("embedded_gpu_jetson_nano_fp16"), "embedded");
  EXPECT_EQ(family("mobile_dsp_snapdragon_675_hexagon_685_int8"), "accel");
  EXPECT_EQ(family("mobile_gpu_snapdragon_450_adreno_506_int8"), "phones");
  EXPECT_TRUE(MatchingFamilies("no_such_device").empty());
}

TEST(BenchProtocolTest, SplitsLeaveEachFamilyOutOfEveryOtherDevice) {
  const CollectionDevices d = BundledDevices();
  const std::vector<TaskSpec> splits = GeneralSplits(d);
  std::vector<std::string> names;
  for (const TaskSpec& t : splits) names.push_back(t.name);
  EXPECT_EQ(names, GeneralSplitNames());
  ASSERT_EQ(splits.size(), 22u);

  const TaskSpec* xc = FindSplit(splits, kHelpFromLatBench);
  ASSERT_NE(xc, nullptr);
  EXPECT_EQ(xc->space, "nb201");
  EXPECT_EQ(xc->sources, d.eagle_nb201);
  EXPECT_EQ(xc->targets, d.help_nb201);
  xc = FindSplit(splits, kLatBenchFromHelp);
  ASSERT_NE(xc, nullptr);
  EXPECT_EQ(xc->sources, d.help_nb201);
  EXPECT_EQ(xc->targets, d.eagle_nb201);

  // Per space, the left-out families partition the devices, and each split's sources are
  // every device but its targets.
  std::vector<std::string> nb201 = d.help_nb201;
  nb201.insert(nb201.end(), d.eagle_nb201.begin(), d.eagle_nb201.end());
  for (const auto& [space, all] :
       {std::make_pair(std::string("nb201"), nb201), std::make_pair(std::string("fbnet"),
                                                                    d.help_fbnet)}) {
    std::multiset<std::string> targets;
    int family_splits = 0;
    for (const TaskSpec& t : splits) {
      if (t.space != space || t.name == kHelpFromLatBench || t.name == kLatBenchFromHelp ||
          t.name == kAllGpus || t.name == kAllGpusFbnet) {
        continue;
      }
      SCOPED_TRACE(t.name);
      ++family_splits;
      EXPECT_FALSE(t.targets.empty());
      targets.insert(t.targets.begin(), t.targets.end());
      std::vector<std::string> both = t.sources;
      both.insert(both.end(), t.targets.begin(), t.targets.end());
      EXPECT_EQ(both.size(), all.size());
      EXPECT_EQ(AsSet(both), AsSet(all));
    }
    EXPECT_EQ(family_splits, 9) << space;
    EXPECT_EQ(targets.size(), all.size()) << space;
    EXPECT_EQ(std::multiset<std::string>(all.begin(), all.end()), targets) << space;
  }

  const auto targets = [&splits](const std::string& name) {
    const TaskSpec* t = FindSplit(splits, name);
    return t == nullptr ? std::set<std::string>() : AsSet(t->targets);
  };
  EXPECT_EQ(targets("gpu-1080ti"),
            (std::set<std::string>{"1080ti_1", "1080ti_32", "1080ti_256",
                                   "desktop_gpu_gtx_1080ti_fp32", "desktop_gpu_gtx_1080ti_large"}));
  EXPECT_EQ(targets("gpu-titanx"),
            (std::set<std::string>{"titanx_1", "titanx_32", "titanx_256"}));
  EXPECT_EQ(targets("xeons"),
            (std::set<std::string>{"gold_6226", "gold_6240", "silver_4114", "silver_4210r",
                                   "desktop_cpu_core_i7_7820x_fp32"}));
  EXPECT_EQ(targets("accel"),
            (std::set<std::string>{"eyeriss", "fpga", "embedded_tpu_edge_tpu_int8",
                                   "embedded_tpu_edge_tpu_large",
                                   "mobile_dsp_snapdragon_675_hexagon_685_int8",
                                   "mobile_dsp_snapdragon_855_hexagon_690_int8"}));
  EXPECT_EQ(targets("embedded"),
            (std::set<std::string>{"raspi4", "embedded_gpu_jetson_nano_fp16",
                                   "embedded_gpu_jetson_nano_fp32"}));
  EXPECT_EQ(targets("phones").size(), 11u);
  EXPECT_EQ(targets("f-phones"), (std::set<std::string>{"pixel2", "pixel3", "samsung_a50",
                                                        "samsung_s7", "essential_ph_1"}));
  EXPECT_EQ(targets("f-gpu-titanrtx"),
            (std::set<std::string>{"titan_rtx_1", "titan_rtx_32", "titan_rtx_64"}));
  EXPECT_EQ(targets("f-accel"), (std::set<std::string>{"eyeriss", "fpga"}));
  EXPECT_EQ(targets("f-raspi4"), (std::set<std::string>{"raspi4"}));
  // Every desktop GPU: HELP's 15 configurations and LatBench's two 1080 Ti columns.
  EXPECT_EQ(targets("gpus").size(), 17u);
  EXPECT_EQ(targets("f-gpus").size(), 15u);
  EXPECT_EQ(targets("gpus").count("embedded_gpu_jetson_nano_fp16"), 0u);

  // Without LatBench's table there is no cross-collection split.
  CollectionDevices help_only = d;
  help_only.eagle_nb201.clear();
  const std::vector<TaskSpec> fewer = GeneralSplits(help_only);
  EXPECT_EQ(fewer.size(), 20u);
  EXPECT_EQ(fewer.front().name, "gpu-1080ti");
}

// Hand-made results: per target, each method's Spearman per trial.
struct HandTarget {
  std::string split;
  std::string target;
  int k;
  std::vector<double> latpred, flops, nearest, count;
};

std::vector<TargetResult> HandResults(const std::vector<HandTarget>& targets) {
  std::vector<TargetResult> out;
  for (const HandTarget& t : targets) {
    const std::pair<Method, const std::vector<double>*> methods[] = {
        {Method::kLatpred, &t.latpred},
        {Method::kFlops, &t.flops},
        {Method::kNearestSource, &t.nearest},
        {Method::kCountFit, &t.count}};
    for (const auto& [method, values] : methods) {
      for (size_t trial = 0; trial < values->size(); ++trial) {
        TargetResult r;
        r.task = t.split;
        r.trial = static_cast<int>(trial);
        r.target = t.target;
        r.k = t.k;
        r.method = method;
        r.metrics.spearman = (*values)[trial];
        r.metrics.within10 = method == Method::kLatpred ? 0.5 : 0.1;
        out.push_back(r);
      }
    }
  }
  return out;
}

TEST(BenchProtocolTest, CountsTargetsBelowTheBestBaseline) {
  const std::vector<TaskSpec> splits = {
      {"xc-help<-lb", "nb201", {"s"}, {"a", "b", "c", "d"}, std::nullopt},
      {"f-phones", "fbnet", {"s"}, {"e"}, std::nullopt}};
  std::vector<TargetResult> results = HandResults({
      // Below on the mean over trials (0.80 < 0.82 - 0.01), not in trial 0 alone.
      {"xc-help<-lb", "a", 5, {0.90, 0.70}, {0.85, 0.79}, {0.5, 0.5}, {0.6, 0.6}},
      // Within the margin of the nearest source: not below. NaN counts 0.
      {"xc-help<-lb", "b", 5, {0.95, 0.95}, {0.2, 0.2}, {0.955, 0.955}, {kNaN, kNaN}},
      // A NaN latpred Spearman counts 0: mean 0.25 < 0.30 - 0.01.
      {"xc-help<-lb", "c", 5, {kNaN, 0.5}, {0.1, 0.1}, {0.2, 0.2}, {0.3, 0.3}},
      // The count fit is the best baseline.
      {"xc-help<-lb", "d", 5, {0.6, 0.6}, {0.5, 0.5}, {0.5, 0.5}, {0.9, 0.9}},
      {"xc-help<-lb", "a", 20, {0.99, 0.99}, {0.5, 0.5}, {0.98, 0.99}, {0.9, 0.9}},
      {"xc-help<-lb", "b", 20, {0.99, 0.99}, {0.5, 0.5}, {0.5, 0.5}, {0.995, 0.995}},
      {"f-phones", "e", 5, {0.5, 0.5}, {0.4, 0.4}, {0.9, 0.9}, {0.3, 0.3}},
  });
  // Another selection does not count.
  TargetResult random = results.front();
  random.selection = Selection::kRandom;
  random.metrics.spearman = 0.0;
  results.push_back(random);

  const GeneralSummary s = SummarizeGeneral(results, splits, Selection::kSuggest);
  ASSERT_EQ(s.splits.size(), 3u);
  EXPECT_EQ(s.splits[0].split, "xc-help<-lb");
  EXPECT_EQ(s.splits[0].k, 5);
  EXPECT_EQ(s.splits[1].split, "xc-help<-lb");
  EXPECT_EQ(s.splits[1].k, 20);
  EXPECT_EQ(s.splits[2].split, "f-phones");

  const SplitSummary& xc5 = s.splits[0];
  EXPECT_EQ(xc5.space, "nb201");
  EXPECT_EQ(xc5.targets, 4);
  EXPECT_EQ(xc5.trials, 2);
  EXPECT_EQ(xc5.below, (std::vector<std::string>{"a", "c", "d"}));
  EXPECT_NEAR(xc5.spearman[0], (0.80 + 0.95 + 0.25 + 0.6) / 4, 1e-12);
  EXPECT_NEAR(xc5.spearman[1], (0.82 + 0.2 + 0.1 + 0.5) / 4, 1e-12);
  EXPECT_NEAR(xc5.spearman[2], (0.5 + 0.955 + 0.2 + 0.5) / 4, 1e-12);
  EXPECT_NEAR(xc5.spearman[3], (0.6 + 0 + 0.3 + 0.9) / 4, 1e-12);
  EXPECT_NEAR(xc5.within10, 0.5, 1e-12);
  EXPECT_TRUE(s.splits[1].below.empty());  // b: 0.99 against 0.995, within the margin
  EXPECT_EQ(s.splits[2].below, (std::vector<std::string>{"e"}));

  ASSERT_EQ(s.overall.size(), 2u);
  EXPECT_EQ(s.overall[0].k, 5);
  EXPECT_EQ(s.overall[0].targets, 5);
  EXPECT_EQ(s.overall[0].below, 4);
  EXPECT_NEAR(s.overall[0].spearman[0], (0.80 + 0.95 + 0.25 + 0.6 + 0.5) / 5, 1e-12);
  EXPECT_EQ(s.overall[1].k, 20);
  EXPECT_EQ(s.overall[1].targets, 2);
  EXPECT_EQ(s.overall[1].below, 0);

  const auto csv = ParseCsv(GeneralizationCsv(s));
  ASSERT_EQ(csv.size(), 1u + 3 + 2);
  for (const auto& row : csv) EXPECT_EQ(row.size(), csv[0].size());
  const auto& h = csv[0];
  const auto col = [&h](const std::string& name) {
    const size_t c = std::find(h.begin(), h.end(), name) - h.begin();
    EXPECT_LT(c, h.size()) << name;
    return c;
  };
  EXPECT_EQ(csv[1][col("split")], "xc-help<-lb");
  EXPECT_EQ(csv[1][col("below_best_baseline")], "3");
  EXPECT_EQ(csv[1][col("below_targets")], "a;c;d");
  EXPECT_NEAR(std::stod(csv[1][col("count_fit_spearman")]), xc5.spearman[3], 1e-6);
  EXPECT_EQ(csv[4][col("split")], "all");
  EXPECT_EQ(csv[4][col("k")], "5");
  EXPECT_EQ(csv[4][col("below_best_baseline")], "4");
  EXPECT_EQ(csv[4][col("below_targets")], "xc-help<-lb:a;xc-help<-lb:c;xc-help<-lb:d;f-phones:e");

  std::ostringstream printed;
  PrintGeneralSummary(s, printed);
  EXPECT_NE(printed.str().find("k=5 over all 5 targets"), std::string::npos) << printed.str();
  EXPECT_NE(printed.str().find("latpred below the best baseline on 4"), std::string::npos);
}

// The protocol through RunAccuracy: a split named in any case, with a short training;
// its report has every baseline and generalization.csv.
TEST(BenchRunTest, GeneralProtocolRunsTheNamedSplits) {
  AccuracyOptions o;
  o.protocol = Protocol::kGeneral;
  o.data_dir = LATPRED_DATA_DIR;
  o.tasks = {"F-RASPI4"};
  o.ks = {3};
  o.trials = 1;
  o.epochs = 1;
  o.selection = SelectionMode::kSuggest;
  std::ostringstream log;
  auto report = RunAccuracy(o, log);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->tasks.size(), 1u);
  EXPECT_EQ(report->tasks[0].name, "f-raspi4");
  EXPECT_EQ(report->tasks[0].space, "fbnet");
  EXPECT_EQ(report->tasks[0].targets, std::vector<std::string>{"raspi4"});
  EXPECT_EQ(report->tasks[0].sources.size(), 26u);
  ASSERT_EQ(report->results.size(), 4u);
  for (const TargetResult& r : report->results) {
    EXPECT_TRUE(std::isfinite(r.metrics.spearman)) << MethodName(r.method);
  }
  EXPECT_NE(report->Find("f-raspi4", 3, Selection::kSuggest, Method::kCountFit), nullptr);
  std::ostringstream printed;
  PrintReport(*report, printed);
  EXPECT_NE(printed.str().find("k=3 over all 1 targets"), std::string::npos) << printed.str();
  const std::string dir = ::testing::TempDir() + "/bench_general_out";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WriteReport(*report, dir).ok());
  const auto csv = ParseCsv(ReadFile(dir + "/generalization.csv"));
  ASSERT_EQ(csv.size(), 3u);  // header, f-raspi4 at k=3, all at k=3
  EXPECT_EQ(csv[1][0], "f-raspi4");
  EXPECT_NE(ReadFile(dir + "/accuracy.csv").find("count_fit"), std::string::npos);

  // Names of the other protocol are refused before anything is trained.
  o.tasks = {"ND"};
  EXPECT_EQ(RunAccuracy(o, log).status().code(), absl::StatusCode::kInvalidArgument);
  o.protocol = Protocol::kPublished;
  o.tasks = {"f-raspi4"};
  EXPECT_EQ(RunAccuracy(o, log).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace latpred::bench
