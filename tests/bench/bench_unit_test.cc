// Unit tests of the accuracy benchmark's pieces: the task table against the doc, the
// baselines (the count fit on data drawn from its own model), aggregation, the
// CSV/JSON/SVG writers and the command-line helpers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "checkers.h"
#include "latpred/bench/accuracy.h"
#include "latpred/bench/baselines.h"
#include "latpred/bench/cli.h"
#include "latpred/bench/report.h"
#include "latpred/bench/svg.h"
#include "latpred/bench/tasks.h"
#include "latpred/core/dataset.h"
#include "latpred/core/search_space.h"

namespace latpred::bench {
namespace {

using testing::CheckXml;
using testing::JsonChecker;
using testing::ParseCsv;
using testing::ReadFile;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The cells of the markdown table rows of the doc: {first cell -> cells}, per table kind.
struct DocTables {
  std::map<std::string, std::vector<std::string>> tasks;      // task -> space, sources, targets
  std::map<std::string, std::vector<double>> published;       // task -> HELP, MP, NASFLAT
};

DocTables ReadDoc() {
  DocTables doc;
  const std::string text = ReadFile(LATPRED_DOCS_DIR "/accuracy-benchmark.md");
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, "|")) continue;
    std::vector<std::string> cells;
    for (absl::string_view c : absl::StrSplit(line, '|')) {
      cells.push_back(std::string(absl::StripAsciiWhitespace(c)));
    }
    if (!cells.empty() && cells.back().empty()) cells.pop_back();
    if (cells.size() != 4 || cells[0] == "task" || cells[0].find("---") != std::string::npos) {
      continue;
    }
    if (cells[1] == "nb201" || cells[1] == "fbnet") {
      doc.tasks[cells[0]] = {cells[1], cells[2], cells[3]};
    } else {
      std::vector<double> v;
      for (int i = 1; i < 4; ++i) v.push_back(std::stod(cells[i]));
      doc.published[cells[0]] = v;
    }
  }
  return doc;
}

std::vector<std::string> SplitDevices(const std::string& cell) {
  std::vector<std::string> out;
  for (absl::string_view d : absl::StrSplit(cell, ',')) {
    out.push_back(std::string(absl::StripAsciiWhitespace(d)));
  }
  return out;
}

TEST(BenchTasksTest, TwelveTasksInDocumentedOrder) {
  const std::vector<std::string> names = {"ND", "NA", "N1", "N2", "N3", "N4",
                                          "FD", "FA", "F1", "F2", "F3", "F4"};
  ASSERT_EQ(StandardTasks().size(), 12u);
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(StandardTasks()[i].name, names[i]);
    EXPECT_EQ(StandardTasks()[i].space, i < 6 ? "nb201" : "fbnet");
    ASSERT_TRUE(StandardTasks()[i].published.has_value());
  }
  EXPECT_EQ(FindTask("nd"), &StandardTasks()[0]);
  EXPECT_EQ(FindTask("N5"), nullptr);
  EXPECT_EQ(SourceBudget("nb201"), 512);
  EXPECT_EQ(SourceBudget("fbnet"), 800);
}

TEST(BenchTasksTest, DeviceListsAndFiguresMatchTheDoc) {
  const DocTables doc = ReadDoc();
  ASSERT_EQ(doc.tasks.size(), 12u);
  ASSERT_EQ(doc.published.size(), 12u);
  for (const TaskSpec& t : StandardTasks()) {
    SCOPED_TRACE(t.name);
    ASSERT_TRUE(doc.tasks.count(t.name));
    const auto& row = doc.tasks.at(t.name);
    EXPECT_EQ(t.space, row[0]);
    EXPECT_EQ(t.sources, SplitDevices(row[1]));
    EXPECT_EQ(t.targets, SplitDevices(row[2]));
    ASSERT_TRUE(doc.published.count(t.name));
    const auto& fig = doc.published.at(t.name);
    EXPECT_DOUBLE_EQ(t.published->help, fig[0]);
    EXPECT_DOUBLE_EQ(t.published->multipredict, fig[1]);
    EXPECT_DOUBLE_EQ(t.published->nasflat, fig[2]);
  }
  // The exact lists of two tasks, spelled out.
  EXPECT_EQ(FindTask("ND")->targets,
            (std::vector<std::string>{"titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4",
                                      "eyeriss"}));
  EXPECT_EQ(FindTask("F4")->sources.size(), 15u);
  EXPECT_EQ(FindTask("F3")->targets,
            (std::vector<std::string>{"1080ti_1", "pixel2", "essential_ph_1"}));
}

TEST(BenchTasksTest, EveryDeviceIsInTheBundledData) {
  auto nb201 = core::ReadLatencyTable(LATPRED_DATA_DIR "/help/nb201_latency.csv",
                                      core::Nb201Space());
  auto eagle = core::ReadLatencyTable(LATPRED_DATA_DIR "/eagle/nb201_latency.csv",
                                      core::Nb201Space());
  auto fbnet = core::ReadLatencyTable(LATPRED_DATA_DIR "/help/fbnet_latency.csv",
                                      core::FbnetSpace());
  ASSERT_TRUE(nb201.ok() && eagle.ok() && fbnet.ok());
  core::MergeLatencyTables(*nb201, *eagle);
  for (const TaskSpec& t : StandardTasks()) {
    const core::LatencyTable& table = t.space == "nb201" ? *nb201 : *fbnet;
    for (const auto* list : {&t.sources, &t.targets}) {
      for (const std::string& d : *list) {
        EXPECT_GE(table.DeviceColumn(d), 0) << t.name << ": " << d;
      }
    }
    for (const std::string& d : t.targets) {
      EXPECT_EQ(std::count(t.sources.begin(), t.sources.end(), d), 0)
          << t.name << ": target " << d << " is also a source";
    }
  }
}

TEST(BenchBaselinesTest, LeastSquaresOnAHandExample) {
  // Exact line.
  LinearFit fit = FitLeastSquares({1, 2, 3, 4}, {3, 5, 7, 9});
  EXPECT_NEAR(fit.a, 2.0, 1e-12);
  EXPECT_NEAR(fit.b, 1.0, 1e-12);
  // x = 0, 1, 2; y = 1, 2, 4: mean x 1, mean y 7/3, Sxx 2, Sxy 3 -> a 1.5, b 5/6.
  fit = FitLeastSquares({0, 1, 2}, {1, 2, 4});
  EXPECT_NEAR(fit.a, 1.5, 1e-12);
  EXPECT_NEAR(fit.b, 5.0 / 6.0, 1e-12);
  EXPECT_NEAR(fit(4), 6.0 + 5.0 / 6.0, 1e-12);
  // FLOPs-sized x: same answer scaled.
  fit = FitLeastSquares({0, 1e8, 2e8}, {1, 2, 4});
  EXPECT_NEAR(fit.a * 1e8, 1.5, 1e-9);
  EXPECT_NEAR(fit.b, 5.0 / 6.0, 1e-9);
  // Constant x: slope 0, intercept the mean.
  fit = FitLeastSquares({5, 5, 5}, {1, 2, 6});
  EXPECT_EQ(fit.a, 0.0);
  EXPECT_NEAR(fit.b, 3.0, 1e-12);
  fit = FitLeastSquares({}, {});
  EXPECT_EQ(fit.a, 0.0);
  EXPECT_EQ(fit.b, 0.0);
}

TEST(BenchBaselinesTest, NearestSourcePicksTheBestRankingSourceAndRescales) {
  // Rows 0..5. The target is 2 * s1 + 1 exactly; s0 ranks the samples backwards; s2 lacks a
  // sample row (not a candidate); s1 lacks row 5, so row 5 comes from the next best (s0).
  const std::vector<double> s0 = {6, 5, 4, 3, 2, 1};
  const std::vector<double> s1 = {1, 2, 3, 4, 5, kNaN};
  const std::vector<double> s2 = {1, kNaN, 3, 4, 5, 6};
  const std::vector<int> sample_rows = {0, 1, 2};
  const std::vector<double> sample_latency = {3, 5, 7};
  int chosen = -2;
  std::vector<double> pred =
      NearestSourcePredict({&s0, &s1, &s2}, sample_rows, sample_latency, {3, 4, 5}, &chosen);
  EXPECT_EQ(chosen, 1);
  ASSERT_EQ(pred.size(), 3u);
  EXPECT_NEAR(pred[0], 9, 1e-12);
  EXPECT_NEAR(pred[1], 11, 1e-12);
  // s0's fit on the samples: x = 6, 5, 4 -> y = 3, 5, 7: a = -2, b = 15; at row 5 (x=1): 13.
  EXPECT_NEAR(pred[2], 13, 1e-12);
  // No candidate at all: the mean of the samples.
  pred = NearestSourcePredict({&s2}, {1}, {4}, {0}, &chosen);
  EXPECT_EQ(chosen, -1);
  EXPECT_NEAR(pred[0], 4, 1e-12);
}

TEST(BenchBaselinesTest, NearestSourceBreaksRankTiesByFitError) {
  // Both sources rank the 3 samples perfectly; s1 is proportional, s0 is not linear.
  const std::vector<double> s0 = {1, 2, 10, 4};
  const std::vector<double> s1 = {1, 2, 3, 4};
  int chosen = -1;
  NearestSourcePredict({&s0, &s1}, {0, 1, 2}, {10, 20, 30}, {3}, &chosen);
  EXPECT_EQ(chosen, 1);
}

// Architectures with uniformly random ops, from a fixed seed.
std::vector<core::Architecture> RandomArchs(const core::SearchSpace& space, int n,
                                            uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<core::Architecture> out(n);
  for (core::Architecture& a : out) {
    for (int p = 0; p < space.num_positions(); ++p) {
      a.ops.push_back(static_cast<uint8_t>(rng() % static_cast<uint64_t>(space.num_ops())));
    }
  }
  return out;
}

TEST(BenchBaselinesTest, OperationCountsAreThePositionsHoldingEachOp) {
  auto arch = core::Nb201Space().Parse(
      "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|nor_conv_3x3~0|none~1|avg_pool_3x3~2|");
  ASSERT_TRUE(arch.ok()) << arch.status();
  // none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3.
  EXPECT_EQ(OperationCounts(core::Nb201Space(), *arch), (std::vector<double>{2, 1, 0, 2, 1}));
  for (const core::Architecture& a : RandomArchs(core::FbnetSpace(), 20, 3)) {
    const std::vector<double> counts = OperationCounts(core::FbnetSpace(), a);
    ASSERT_EQ(counts.size(), static_cast<size_t>(core::FbnetSpace().num_ops()));
    double sum = 0;
    for (double c : counts) sum += c;
    EXPECT_EQ(sum, core::FbnetSpace().num_positions());
  }
}

TEST(BenchBaselinesTest, CountFitRecoversTheCountModel) {
  for (const core::SearchSpace* space : {&core::Nb201Space(), &core::FbnetSpace()}) {
    SCOPED_TRACE(std::string(space->name()));
    // latency = 2 + sum_o (0.3 + 0.5 o) count_o, in ms.
    const auto model = [](const std::vector<double>& counts) {
      double y = 2;
      for (size_t o = 0; o < counts.size(); ++o) y += (0.3 + 0.5 * o) * counts[o];
      return y;
    };
    const auto data = [&](const std::vector<core::Architecture>& archs,
                          std::vector<std::vector<double>>* x, std::vector<double>* y) {
      for (const core::Architecture& a : archs) {
        x->push_back(OperationCounts(*space, a));
        y->push_back(model(x->back()));
      }
    };
    std::vector<std::vector<double>> x, x_test;
    std::vector<double> y, y_test;
    data(RandomArchs(*space, 60, 1), &x, &y);
    data(RandomArchs(*space, 200, 2), &x_test, &y_test);

    // Enough samples: every prediction exact up to the ridge's bias (about 1e-6 of a
    // latency, 1e-5 of a weight). The counts add up to the number of positions, so only
    // differences of op costs are identified.
    const RidgeFit fit = FitRidge(x, y);
    ASSERT_EQ(fit.c.size(), static_cast<size_t>(space->num_ops()));
    for (size_t i = 0; i < x_test.size(); ++i) {
      EXPECT_NEAR(fit(x_test[i]), y_test[i], 1e-5 * y_test[i]) << i;
    }
    for (size_t o = 1; o < fit.c.size(); ++o) {
      EXPECT_NEAR(fit.c[o] - fit.c[0], 0.5 * o, 1e-4) << o;
    }

    // k=3: fewer samples than weights. Defined, finite, and through the samples.
    const std::vector<std::vector<double>> x3(x.begin(), x.begin() + 3);
    const std::vector<double> y3(y.begin(), y.begin() + 3);
    const RidgeFit fit3 = FitRidge(x3, y3);
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(fit3(x3[i]), y3[i], 1e-4 * y3[i]);
    for (const std::vector<double>& c : x_test) EXPECT_TRUE(std::isfinite(fit3(c)));
  }
  // No spread in x: the mean of y; no points: 0.
  RidgeFit flat = FitRidge({{1, 2}, {1, 2}}, {3, 5});
  EXPECT_DOUBLE_EQ(flat({1, 2}), 4.0);
  EXPECT_EQ(flat.c, (std::vector<double>{0, 0}));
  flat = FitRidge({{1, 2}}, {7});
  EXPECT_DOUBLE_EQ(flat({5, 5}), 7.0);
  EXPECT_DOUBLE_EQ(FitRidge({}, {})({1}), 0.0);
}

TEST(BenchBaselinesTest, MeanStd) {
  EXPECT_DOUBLE_EQ(Mean({1, 2, 3, 6}), 3.0);
  EXPECT_DOUBLE_EQ(StdDev({1, 3}), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(StdDev({4}), 0.0);
}

TEST(BenchSvgTest, WriterProducesWellFormedXml) {
  SvgChart chart;
  chart.title = "Spearman <rho> & \"k\" 'samples'";
  chart.x_label = "k";
  chart.y_label = "Spearman";
  chart.x_ticks = {3, 5, 10, 20};
  chart.y_min = -0.2;
  chart.y_max = 1;
  for (const char* name : {"ND", "A&B <x>"}) {
    SvgPanel p;
    p.title = name;
    p.series.push_back({"latpred", "#1f77b4", {3, 5, 10, 20}, {0.8, kNaN, 0.9, 0.95},
                        {0.01, 0.0, 0.02, 0.01}, false});
    p.series.push_back({"FLOPs fit", "#777", {3, 5, 10, 20}, {-0.5, 0.1, 0.2, 0.3}, {}, true});
    p.markers.push_back({"NASFLAT", "#d62728", 20, 0.959});
    chart.panels.push_back(p);
  }
  const std::string svg = RenderSvg(chart);
  EXPECT_EQ(CheckXml(svg), "") << svg.substr(0, 400);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("A&amp;B &lt;x&gt;"), std::string::npos);
  EXPECT_NE(svg.find(">latpred</text>"), std::string::npos);  // legend
  EXPECT_NE(svg.find(">NASFLAT</text>"), std::string::npos);
  EXPECT_NE(svg.find(">Spearman</text>"), std::string::npos);  // axis label
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  const std::string path = ::testing::TempDir() + "/bench_unit_chart.svg";
  std::ofstream(path) << svg;
  EXPECT_NE(testing::PythonXmlCheck(path), 1);
  // The checker itself rejects broken documents.
  EXPECT_NE(CheckXml("<svg><g></svg>"), "");
  EXPECT_NE(CheckXml("<svg a=1/>"), "");
  EXPECT_NE(CheckXml("<svg>a & b</svg>"), "");
  EXPECT_EQ(XmlEscape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
}

// A hand-made report: two tasks (one custom), two trials, two targets.
AccuracyReport SyntheticReport() {
  AccuracyReport r;
  r.options.ks = {5, 20};
  r.options.trials = 2;
  r.epochs = 40;
  r.tasks = {*FindTask("ND"), TaskSpec{"custom", "fbnet", {"a"}, {"b", "c"}, std::nullopt}};
  auto add = [&r](const std::string& task, int trial, const std::string& target, int k,
                  Selection sel, Method m, double rho) {
    TargetResult t;
    t.task = task;
    t.trial = trial;
    t.target = target;
    t.k = k;
    t.selection = sel;
    t.method = m;
    t.metrics = {rho, rho - 0.1, 0.5, 12.5};
    t.evaluated = 100;
    r.results.push_back(t);
  };
  for (const char* task : {"ND", "custom"}) {
    for (int trial = 0; trial < 2; ++trial) {
      for (const char* target : {"b", "c"}) {
        for (int k : {5, 20}) {
          // latpred: trial 0 targets 0.95 / 0.97 (mean 0.96), trial 1 0.97 / 0.99 (0.98).
          const double rho = 0.95 + 0.02 * trial + (target[0] == 'c' ? 0.02 : 0) -
                             (k == 5 ? 0.1 : 0);
          add(task, trial, target, k, Selection::kSuggest, Method::kLatpred, rho);
          add(task, trial, target, k, Selection::kSuggest, Method::kFlops, kNaN);
          add(task, trial, target, k, Selection::kSuggest, Method::kNearestSource, 0.5);
          if (k == 5) add(task, trial, target, k, Selection::kRandom, Method::kLatpred, 0.8);
        }
      }
    }
  }
  r.adapt_timings = {{5, 0.001}, {20, 0.002}, {20, 0.004}};
  AggregateResults(&r);
  return r;
}

TEST(BenchReportTest, AggregatesOverTargetsThenTrials) {
  const AccuracyReport r = SyntheticReport();
  const Aggregate* a = r.Find("ND", 20, Selection::kSuggest, Method::kLatpred);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->trials, 2);
  EXPECT_EQ(a->targets, 2);
  ASSERT_EQ(a->spearman.per_trial.size(), 2u);
  EXPECT_NEAR(a->spearman.per_trial[0], 0.96, 1e-12);
  EXPECT_NEAR(a->spearman.per_trial[1], 0.98, 1e-12);
  EXPECT_NEAR(a->spearman.mean, 0.97, 1e-12);
  EXPECT_NEAR(a->spearman.std, std::sqrt(2.0) * 0.01, 1e-12);
  EXPECT_NEAR(a->kendall.mean, 0.87, 1e-12);
  EXPECT_NEAR(a->mape.mean, 12.5, 1e-12);
  // NaN rank correlations (constant predictions) count as 0.
  EXPECT_DOUBLE_EQ(r.Find("ND", 20, Selection::kSuggest, Method::kFlops)->spearman.mean, 0.0);
  // 2 tasks x (2 ks x 3 methods + 1 random) = 14 aggregates.
  EXPECT_EQ(r.aggregates.size(), 14u);

  const Summary s = Summarize(r);
  EXPECT_EQ(s.published_tasks, 1);
  EXPECT_EQ(s.k20_beats_nasflat, 1);        // 0.97 > 0.959
  EXPECT_EQ(s.k5_at_or_above_nasflat, 0);   // 0.87 < 0.959
  EXPECT_NEAR(s.mean_within10_k20, 0.5, 1e-12);
  EXPECT_NEAR(s.adapt_median_ms, 2.0, 1e-9);
  EXPECT_NEAR(s.adapt_median_ms_k20, 3.0, 1e-9);
}

TEST(BenchReportTest, CsvJsonSvgAreWellFormed) {
  const AccuracyReport r = SyntheticReport();
  const auto csv = ParseCsv(ReportCsv(r));
  ASSERT_EQ(csv.size(), r.aggregates.size() + 1);
  for (const auto& row : csv) EXPECT_EQ(row.size(), csv[0].size());
  EXPECT_EQ(csv[0][0], "task");
  EXPECT_EQ(csv[0][7], "spearman_mean");
  const auto targets = ParseCsv(TargetsCsv(r));
  EXPECT_EQ(targets.size(), r.results.size() + 1);

  EXPECT_EQ(JsonChecker::Check(ReportJson(r)), "");
  EXPECT_EQ(CheckXml(ReportSvg(r)), "");
  EXPECT_NE(JsonChecker::Check("{\"a\": [1, 2,]}"), "");
  EXPECT_NE(JsonChecker::Check("{\"a\": nan}"), "");

  std::ostringstream printed;
  PrintReport(r, printed);
  EXPECT_NE(printed.str().find("k=20: beats NASFLAT on 1/1 tasks"), std::string::npos)
      << printed.str();
  EXPECT_NE(printed.str().find("k=5: at or above NASFLAT's 20-sample figure on 0/1"),
            std::string::npos);
  EXPECT_NE(printed.str().find("suggest vs random at k=5"), std::string::npos);

  const std::string dir = ::testing::TempDir() + "/bench_unit_out/nested";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WriteReport(r, dir).ok());
  for (const char* f : {"accuracy.csv", "accuracy_targets.csv", "accuracy.json", "accuracy.svg"}) {
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + f)) << f;
  }
}

TEST(BenchCliTest, FlagSpellingsAndLists) {
  EXPECT_EQ(NormalizeFlagSpelling("--data-dir=/a-b"), "--data_dir=/a-b");
  EXPECT_EQ(NormalizeFlagSpelling("--data-dir"), "--data_dir");
  EXPECT_EQ(NormalizeFlagSpelling("--k"), "--k");
  EXPECT_EQ(NormalizeFlagSpelling("nb-201"), "nb-201");
  EXPECT_EQ(NormalizeFlagSpelling("--"), "--");
  auto ks = ParseIntList("--k", "3, 5,10,20");
  ASSERT_TRUE(ks.ok());
  EXPECT_EQ(*ks, (std::vector<int>{3, 5, 10, 20}));
  EXPECT_FALSE(ParseIntList("--k", "3,x").ok());
  EXPECT_FALSE(ParseIntList("--k", "0").ok());
  EXPECT_FALSE(ParseIntList("--k", "").ok());
  EXPECT_EQ(ParseNameList(" a,b ,,c"), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(BenchRunTest, RejectsBadOptionsBeforeTraining) {
  std::ostringstream log;
  AccuracyOptions o;
  o.data_dir = LATPRED_DATA_DIR;
  o.tasks = {"XX"};
  EXPECT_EQ(RunAccuracy(o, log).status().code(), absl::StatusCode::kInvalidArgument);
  o.tasks = {"ND"};
  o.ks = {};
  EXPECT_EQ(RunAccuracy(o, log).status().code(), absl::StatusCode::kInvalidArgument);
  // Custom task: a device that is not in the file.
  AccuracyOptions c;
  c.custom_data = LATPRED_DATA_DIR "/help/fbnet_latency.csv";
  c.custom_space = "fbnet";
  c.custom_source = {"all"};
  c.custom_target = {"no_such_device"};
  EXPECT_EQ(RunAccuracy(c, log).status().code(), absl::StatusCode::kNotFound);
  c.custom_target = {"all"};  // every device a target: no source left
  EXPECT_EQ(RunAccuracy(c, log).status().code(), absl::StatusCode::kInvalidArgument);
}

// A small table: 600 FBNet rows, four devices of the bundled data (1080ti_1, fpga, raspi4,
// samsung_a50); returns its path.
std::string SmallFbnetTable() {
  const std::string path = ::testing::TempDir() + "/bench_custom.csv";
  {
    std::ifstream in(LATPRED_DATA_DIR "/help/fbnet_latency.csv");
    std::ofstream out(path);
    std::string line;
    std::vector<size_t> keep;
    for (int row = 0; row <= 600 && std::getline(in, line); ++row) {
      std::vector<std::string> cells = absl::StrSplit(line, ',');
      if (row == 0) {
        for (size_t c = 0; c < cells.size(); ++c) {
          if (c < 2 || cells[c] == "1080ti_1" || cells[c] == "fpga" || cells[c] == "raspi4" ||
              cells[c] == "samsung_a50") {
            keep.push_back(c);
          }
        }
        EXPECT_EQ(keep.size(), 6u);
      }
      for (size_t i = 0; i < keep.size(); ++i) out << (i ? "," : "") << cells[keep[i]];
      out << "\n";
    }
  }
  return path;
}

TEST(BenchRunTest, CustomTaskEndToEnd) {
  const std::string path = SmallFbnetTable();
  AccuracyOptions o;
  o.custom_data = path;
  o.custom_space = "fbnet";
  o.custom_source = {"all"};
  o.custom_target = {"raspi4", "fpga"};
  o.ks = {3, 5};
  o.trials = 2;
  o.epochs = 3;
  std::ostringstream log;
  auto report = RunAccuracy(o, log);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->tasks.size(), 1u);
  const TaskSpec& task = report->tasks[0];
  EXPECT_EQ(task.name, "custom");
  EXPECT_EQ(task.sources, (std::vector<std::string>{"1080ti_1", "samsung_a50"}));
  EXPECT_EQ(task.targets, (std::vector<std::string>{"raspi4", "fpga"}));
  EXPECT_FALSE(task.published.has_value());
  // 2 trials x 2 targets x (2 ks suggest + k=5 random) x 4 methods.
  EXPECT_EQ(report->results.size(), 2u * 2 * 3 * 4);
  EXPECT_EQ(report->adapt_timings.size(), 2u * 2 * 3);
  for (const TargetResult& r : report->results) {
    EXPECT_EQ(r.evaluated, 600 - r.k);
    EXPECT_TRUE(std::isfinite(r.metrics.spearman)) << MethodName(r.method);
    EXPECT_TRUE(std::isfinite(r.metrics.mape));
  }
  const Aggregate* a = report->Find("custom", 5, Selection::kRandom, Method::kLatpred);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->trials, 2);
  EXPECT_EQ(a->targets, 2);
  EXPECT_NE(log.str().find("custom trial 2/2"), std::string::npos);
  std::ostringstream printed;
  PrintReport(*report, printed);
  EXPECT_NE(printed.str().find("no published figures"), std::string::npos) << printed.str();
}

// --each: every target is a task of its own, learned from every other device.
TEST(BenchRunTest, CustomTaskPerTargetLeavesEachDeviceOut) {
  AccuracyOptions o;
  o.custom_data = SmallFbnetTable();
  o.custom_space = "fbnet";
  o.custom_source = {"all"};
  o.custom_target = {"all"};
  o.custom_each = true;
  o.ks = {3};
  o.trials = 1;
  o.epochs = 2;
  o.selection = SelectionMode::kSuggest;
  std::ostringstream log;
  auto report = RunAccuracy(o, log);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->tasks.size(), 4u);
  const std::vector<std::string> all = {"1080ti_1", "fpga", "raspi4", "samsung_a50"};
  for (size_t t = 0; t < all.size(); ++t) {
    const TaskSpec& task = report->tasks[t];
    EXPECT_EQ(task.name, all[t]);
    EXPECT_EQ(task.targets, std::vector<std::string>{all[t]});
    std::vector<std::string> others = all;
    others.erase(others.begin() + t);
    EXPECT_EQ(task.sources, others);
    const Aggregate* a = report->Find(all[t], 3, Selection::kSuggest, Method::kLatpred);
    ASSERT_NE(a, nullptr) << all[t];
    EXPECT_EQ(a->targets, 1);
  }
  // A single device cannot be left out: nothing would remain to learn from.
  o.custom_source = {"fpga"};
  o.custom_target = {"fpga"};
  EXPECT_EQ(RunAccuracy(o, log).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace latpred::bench
