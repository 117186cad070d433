// Regression guard on the predictor's few-shot accuracy: the real latpred-bench binary
// on a reduced run (tasks NA and FD, k=20, one trial, suggest selection, the predictor's
// default training), asserting floors on the task Spearman and within+-10% that a
// regression in the predictor would break, and that the output files exist and parse.
//
// NA (desktop GPUs learned from edge devices) needs the operation-count family of Adapt,
// FD (an FPGA, a Raspberry Pi, Eyeriss) the cost model; about 15 s. A second run, F4 at
// k=5 (phones and a Xeon learned from desktop GPUs alone), needs the analytic costs
// added up in latency and latency as a power of one cost holding its own share of the
// prior; about 8 s. A third, N3 at k=20 (desktop
// GPUs at batch 1 learned from edge and mobile devices), needs latency as a sum of
// per-operation costs; about 6 s. A fourth joins HELP's and LatBench's tables and learns
// HELP's desktop GPUs from LatBench's devices at k=5; about 5 s.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "checkers.h"

namespace latpred::bench {
namespace {

using testing::CheckXml;
using testing::JsonChecker;
using testing::ParseCsv;
using testing::ReadFile;

// Measured (NA / FD) 0.985 / 0.974 and 98.1% / 98.1%. The NA floors catch losing the
// operation counts (without them: 0.822 and 60.3%), the FD floors losing the cost model
// (without it: FD 0.932 and 85.9-89.9%); both measured before nb201's third block.
constexpr double kNaSpearmanFloor = 0.93;
constexpr double kFdSpearmanFloor = 0.93;
constexpr double kNaWithin10Floor = 0.80;
constexpr double kFdWithin10Floor = 0.92;
// F4 at k=5, one trial: measured 0.760; without latency as a sum of the analytic costs
// (Adapt's additive cost family), 0.732; with one cost alone also sharing the cost
// model's prior mass, 0.706.
constexpr double kF4FiveSpearmanFloor = 0.745;
// N3 at k=20, one trial: measured 0.978 and 96.2% within +-10%; without latency as a sum
// of per-operation costs (Adapt's additive family), 0.966 and 86.3% (before nb201's third
// block).
constexpr double kN3SpearmanFloor = 0.972;
constexpr double kN3Within10Floor = 0.92;

struct Row {
  double spearman = -2;
  double within10 = -1;
};

// The suggest row of task, method and k from accuracy.csv.
Row Find(const std::vector<std::vector<std::string>>& csv, const std::string& task,
         const std::string& method, const std::string& k = "20") {
  const auto& h = csv.at(0);
  auto col = [&h](const std::string& name) {
    return static_cast<size_t>(std::find(h.begin(), h.end(), name) - h.begin());
  };
  for (size_t i = 1; i < csv.size(); ++i) {
    const auto& r = csv[i];
    if (r.size() != h.size()) continue;
    if (r[col("task")] == task && r[col("k")] == k && r[col("selection")] == "suggest" &&
        r[col("method")] == method) {
      return Row{std::stod(r[col("spearman_mean")]), std::stod(r[col("within10_mean")])};
    }
  }
  ADD_FAILURE() << "no k=" << k << " suggest " << method << " row for " << task;
  return Row{};
}

// Runs `latpred-bench accuracy` on one trial with suggest selection and the given flags,
// writing into a fresh directory `name` under the test's temporary directory, with
// stdout.txt and stderr.txt beside the outputs; returns that directory, or "" after a
// failure it has reported. Flags are spelled both ways on purpose: `--flag value` and
// `--out=DIR`.
std::string RunAccuracy(const std::string& name, const std::string& flags) {
  const std::string out = ::testing::TempDir() + "/" + name;
  std::filesystem::remove_all(out);
  std::filesystem::create_directories(out);
  const std::string cmd = std::string(LATPRED_BENCH_BIN) + " accuracy " + flags +
                          " --trials 1 --selection suggest --threads 2 --data-dir " +
                          LATPRED_DATA_DIR + " --out=" + out + " > " + out +
                          "/stdout.txt 2> " + out + "/stderr.txt";
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << cmd << " failed: " << ReadFile(out + "/stderr.txt");
    return "";
  }
  return out;
}

TEST(AccuracyBenchTest, ReducedRunMeetsFloorsAndWritesParsableFiles) {
  const std::string out = RunAccuracy("accuracy_bench_out", "--tasks NA,FD --k 20");
  ASSERT_FALSE(out.empty());
  const std::string printed = ReadFile(out + "/stdout.txt");
  EXPECT_NE(printed.find("k=20: beats NASFLAT on "), std::string::npos) << printed;
  EXPECT_NE(printed.find("/2 tasks"), std::string::npos) << printed;
  EXPECT_NE(printed.find("mean within+-10% at k=20: "), std::string::npos);
  EXPECT_NE(printed.find("adapt median: "), std::string::npos);
  std::cout << printed;

  for (const char* f : {"accuracy.csv", "accuracy_targets.csv", "accuracy.json", "accuracy.svg"}) {
    ASSERT_TRUE(std::filesystem::exists(out + "/" + f)) << f;
  }
  const auto csv = ParseCsv(ReadFile(out + "/accuracy.csv"));
  ASSERT_EQ(csv.size(), 1u + 2 * 4);  // header + 2 tasks x 4 methods
  for (const auto& row : csv) EXPECT_EQ(row.size(), csv[0].size());
  const Row na = Find(csv, "NA", "latpred");
  const Row fd = Find(csv, "FD", "latpred");
  EXPECT_GE(na.spearman, kNaSpearmanFloor);
  EXPECT_GE(fd.spearman, kFdSpearmanFloor);
  EXPECT_GE(na.within10, kNaWithin10Floor);
  EXPECT_GE(fd.within10, kFdWithin10Floor);
  // On NA the adapted model ranks far better than a FLOPs fit (measured 0.985 vs 0.697).
  EXPECT_GT(na.spearman, Find(csv, "NA", "flops_fit").spearman + 0.1);

  const auto targets = ParseCsv(ReadFile(out + "/accuracy_targets.csv"));
  EXPECT_EQ(targets.size(), 1u + (5 + 3) * 4);  // header + targets x methods

  EXPECT_EQ(JsonChecker::Check(ReadFile(out + "/accuracy.json")), "");
  const std::string svg = ReadFile(out + "/accuracy.svg");
  EXPECT_EQ(CheckXml(svg), "");
  EXPECT_NE(svg.find("NA (nb201)"), std::string::npos);
  EXPECT_NE(svg.find("FD (fbnet)"), std::string::npos);
  EXPECT_NE(testing::PythonXmlCheck(out + "/accuracy.svg"), 1);
}

TEST(AccuracyBenchTest, LearnsPhonesFromDesktopGpusWithFiveSamples) {
  const std::string out = RunAccuracy("accuracy_bench_f4", "--tasks F4 --k 5");
  ASSERT_FALSE(out.empty());
  const auto csv = ParseCsv(ReadFile(out + "/accuracy.csv"));
  const Row f4 = Find(csv, "F4", "latpred", "5");
  std::cout << "F4 at k=5: Spearman " << f4.spearman << "\n";
  EXPECT_GE(f4.spearman, kF4FiveSpearmanFloor);
}

TEST(AccuracyBenchTest, LearnsDesktopGpusFromEdgeDevicesAsSumsOfOperationCosts) {
  const std::string out = RunAccuracy("accuracy_bench_n3", "--tasks N3 --k 20");
  ASSERT_FALSE(out.empty());
  const auto csv = ParseCsv(ReadFile(out + "/accuracy.csv"));
  const Row n3 = Find(csv, "N3", "latpred");
  std::cout << "N3 at k=20: Spearman " << n3.spearman << ", within +-10% " << n3.within10 << "\n";
  EXPECT_GE(n3.spearman, kN3SpearmanFloor);
  EXPECT_GE(n3.within10, kN3Within10Floor);
}

// Two collections joined on the architecture: HELP's desktop GPUs learned from every
// LatBench device (the eagle file's path stands for its devices), at k=5. Measured
// 0.973 and 93% within +-10%; with none rather than the identity as the floor of the sum
// over every edge (SearchSpace::identity_op), 0.971 and 69%; before nb201's third block
// 0.972 and 73%, and with the additive sum's prior mass equal to every other family's,
// 0.966 and 43%.
TEST(AccuracyBenchTest, JoinsCollectionsAndLearnsAcrossThem) {
  const std::string help = std::string(LATPRED_DATA_DIR) + "/help/nb201_latency.csv";
  const std::string eagle = std::string(LATPRED_DATA_DIR) + "/eagle/nb201_latency.csv";
  const std::string out =
      RunAccuracy("accuracy_bench_join", "--data " + help + "," + eagle + " --space nb201" +
                                             " --source " + eagle +
                                             " --target 1080ti_1,2080ti_1,titan_rtx_1 --k 5");
  ASSERT_FALSE(out.empty());
  const auto csv = ParseCsv(ReadFile(out + "/accuracy.csv"));
  const Row joined = Find(csv, "custom", "latpred", "5");
  std::cout << "HELP's GPUs from LatBench at k=5: Spearman " << joined.spearman
            << ", within +-10% " << joined.within10 << "\n";
  EXPECT_GE(joined.spearman, 0.95);
  EXPECT_GE(joined.within10, 0.85);
  const std::string json = ReadFile(out + "/accuracy.json");
  EXPECT_NE(json.find("mobile_dsp_snapdragon_855_hexagon_690_int8"), std::string::npos)
      << "the eagle file's devices are the sources";
  // A device in two files is ambiguous: the run fails and says which.
  const std::string twice = ::testing::TempDir() + "/accuracy_bench_twice.txt";
  EXPECT_NE(std::system((std::string(LATPRED_BENCH_BIN) + " accuracy --data " + help + "," +
                         help + " --space nb201 --source all --target pixel3 --out " +
                         ::testing::TempDir() + "/never 2> " + twice)
                            .c_str()),
            0);
  EXPECT_NE(ReadFile(twice).find("also in an earlier file"), std::string::npos);
}

// HELP's pixel3 and raspi4, learned from every other HELP device at k=20. Their runtimes
// drop the operations with no path to the cell's output but compute those fed only by
// none edges, which neither the counts of every edge nor those of live edges describe:
// least squares of the sum on the counts of edges with a path to the output ranks both
// at 0.96, on every edge's or the live edges' at 0.91. Measured Spearman 0.961 (within
// +-10% 55% to 71% from one machine to another: the level of the cells these runtimes
// fold away moves it, so it is printed, not checked); without those counts (an encoding
// of every edge and of live edges alone), 0.901 and 45%.
TEST(AccuracyBenchTest, LearnsDevicesThatDropOperationsWithoutAWayOut) {
  const std::string help = std::string(LATPRED_DATA_DIR) + "/help/nb201_latency.csv";
  const std::string out =
      RunAccuracy("accuracy_bench_output_edges",
                  "--data " + help + " --space nb201 --source all --target pixel3,raspi4 --k 20");
  ASSERT_FALSE(out.empty());
  const Row row = Find(ParseCsv(ReadFile(out + "/accuracy.csv")), "custom", "latpred", "20");
  std::cout << "pixel3 and raspi4 at k=20: Spearman " << row.spearman << ", within +-10% "
            << row.within10 << "\n";
  EXPECT_GE(row.spearman, 0.94);
}

TEST(AccuracyBenchTest, HelpListsSubcommandsAndBadFlagsFail) {
  const std::string out = ::testing::TempDir() + "/accuracy_bench_help.txt";
  ASSERT_EQ(std::system((std::string(LATPRED_BENCH_BIN) + " --help > " + out).c_str()), 0);
  EXPECT_NE(ReadFile(out).find("accuracy"), std::string::npos);
  ASSERT_EQ(std::system((std::string(LATPRED_BENCH_BIN) + " accuracy --help > " + out).c_str()), 0);
  EXPECT_NE(ReadFile(out).find("--selection"), std::string::npos);
  EXPECT_NE(std::system((std::string(LATPRED_BENCH_BIN) + " nosuch 2>/dev/null").c_str()), 0);
  EXPECT_NE(std::system((std::string(LATPRED_BENCH_BIN) +
                         " accuracy --tasks XX --out /tmp/never-written >/dev/null 2>&1")
                            .c_str()),
            0);
  EXPECT_NE(std::system((std::string(LATPRED_BENCH_BIN) +
                         " accuracy --selection sometimes >/dev/null 2>&1")
                            .c_str()),
            0);
  EXPECT_NE(std::system((std::string(LATPRED_BENCH_BIN) +
                         " accuracy --protocol sometimes >/dev/null 2>&1")
                            .c_str()),
            0);
  EXPECT_NE(std::system((std::string(LATPRED_BENCH_BIN) +
                         " accuracy --protocol general --tasks xc-nowhere --out /tmp/never-written"
                         " >/dev/null 2>&1")
                            .c_str()),
            0);
}

}  // namespace
}  // namespace latpred::bench
