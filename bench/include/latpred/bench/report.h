// The accuracy benchmark's outputs: the printed table and summary, CSV, JSON and SVG.
#ifndef LATPRED_BENCH_REPORT_H_
#define LATPRED_BENCH_REPORT_H_

#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "latpred/bench/accuracy.h"

namespace latpred::bench {

// Headline numbers; counts are over the tasks run that have published figures.
struct Summary {
  int published_tasks = 0;       // tasks run with published figures
  bool has_k20 = false;          // k = 20 was run
  bool has_k5 = false;
  int k20_beats_nasflat = 0;     // latpred Spearman at k=20 > NASFLAT's (20 samples)
  int k5_at_or_above_nasflat = 0;  // latpred at k=5 >= NASFLAT's 20-sample figure
  double mean_within10_k20 = 0;  // mean over tasks, share 0..1 (NaN without k=20)
  double mean_spearman_k20 = 0;  // mean over tasks
  double mean_nasflat = 0;       // published mean over the same tasks
  double adapt_median_ms = 0;
  double adapt_median_ms_k20 = 0;
  int adapt_calls = 0;
};

Summary Summarize(const AccuracyReport& report);

// The table (main selection) and the summary lines.
void PrintReport(const AccuracyReport& report, std::ostream& out);

// One row per (task, k, selection, method) with every metric (mean and std over trials).
std::string ReportCsv(const AccuracyReport& report);
// One row per (task, trial, target, k, selection, method).
std::string TargetsCsv(const AccuracyReport& report);
std::string ReportJson(const AccuracyReport& report);
// One panel per task: Spearman against k for latpred, FLOPs fit, nearest source and
// count fit, with NASFLAT's published 20-sample figure as a marker.
std::string ReportSvg(const AccuracyReport& report);

// A CSV cell: quoted (quotes doubled) when it holds a comma, a quote or a newline.
std::string CsvField(const std::string& s);

// Writes accuracy.csv, accuracy_targets.csv, accuracy.json and accuracy.svg to dir
// (created if missing), generalization.csv under the general protocol, and ablation.csv
// (latpred's Spearman per target with each part left out) with --ablate.
absl::Status WriteReport(const AccuracyReport& report, const std::string& dir);

}  // namespace latpred::bench

#endif  // LATPRED_BENCH_REPORT_H_
