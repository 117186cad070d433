#include "latpred/bench/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "latpred/bench/baselines.h"
#include "latpred/bench/protocol.h"
#include "latpred/bench/svg.h"
#include "latpred/core/stats.h"

namespace latpred::bench {
namespace {

// Number for CSV: empty when not finite.
std::string CsvNum(double v) { return std::isfinite(v) ? absl::StrFormat("%.6g", v) : ""; }
// Number for JSON: null when not finite.
std::string JsonNum(double v) { return std::isfinite(v) ? absl::StrFormat("%.6g", v) : "null"; }

std::string JsonStr(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string JsonStrList(const std::vector<std::string>& v) {
  std::vector<std::string> q;
  for (const std::string& s : v) q.push_back(JsonStr(s));
  return absl::StrCat("[", absl::StrJoin(q, ","), "]");
}

std::string JsonNumList(const std::vector<double>& v) {
  std::vector<std::string> q;
  for (double x : v) q.push_back(JsonNum(x));
  return absl::StrCat("[", absl::StrJoin(q, ","), "]");
}


const char* SelectionModeName(SelectionMode m) {
  switch (m) {
    case SelectionMode::kSuggest: return "suggest";
    case SelectionMode::kRandom: return "random";
    case SelectionMode::kBoth: return "both";
  }
  return "?";
}

bool HasK(const AccuracyReport& r, int k) {
  return std::find(r.options.ks.begin(), r.options.ks.end(), k) != r.options.ks.end();
}

std::vector<int> SortedKs(const AccuracyReport& r) {
  std::vector<int> ks = r.options.ks;
  std::sort(ks.begin(), ks.end());
  ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
  return ks;
}

double MedianAdaptMs(const AccuracyReport& r, int k) {
  std::vector<double> v;
  for (const AdaptTiming& t : r.adapt_timings) {
    if (k == 0 || t.k == k) v.push_back(t.seconds * 1000);
  }
  return core::Median(v);
}

// The random-selection ks that were run, in ascending order.
std::vector<int> RandomKs(const AccuracyReport& r) {
  std::set<int> ks;
  for (const Aggregate& a : r.aggregates) {
    if (a.selection == Selection::kRandom && r.main_selection == Selection::kSuggest) ks.insert(a.k);
  }
  return {ks.begin(), ks.end()};
}

}  // namespace

Summary Summarize(const AccuracyReport& report) {
  Summary s;
  s.has_k20 = HasK(report, kPublishedK);
  s.has_k5 = HasK(report, 5);
  std::vector<double> within, rho, nasflat;
  for (const TaskSpec& t : report.tasks) {
    const Aggregate* a20 = report.Find(t.name, kPublishedK, report.main_selection, Method::kLatpred);
    if (a20 != nullptr) {
      within.push_back(a20->within10.mean);
      rho.push_back(a20->spearman.mean);
    }
    if (!t.published.has_value()) continue;
    ++s.published_tasks;
    nasflat.push_back(t.published->nasflat);
    if (a20 != nullptr && a20->spearman.mean > t.published->nasflat) ++s.k20_beats_nasflat;
    const Aggregate* a5 = report.Find(t.name, 5, report.main_selection, Method::kLatpred);
    if (a5 != nullptr && a5->spearman.mean >= t.published->nasflat) ++s.k5_at_or_above_nasflat;
  }
  s.mean_within10_k20 = Mean(within);
  s.mean_spearman_k20 = Mean(rho);
  s.mean_nasflat = Mean(nasflat);
  s.adapt_median_ms = MedianAdaptMs(report, 0);
  s.adapt_median_ms_k20 = MedianAdaptMs(report, kPublishedK);
  s.adapt_calls = static_cast<int>(report.adapt_timings.size());
  return s;
}

// Per k over every target of the main selection: how well the head's reported
// leave-one-out MAPE foresees the MAPE measured on the target's other architectures,
// and what share of them its 80% interval holds.
void PrintCalibration(const AccuracyReport& report, std::ostream& out) {
  out << "calibration (latpred, every target): k, reported LOO MAPE / measured MAPE "
         "(means), their Spearman over targets, 80% interval coverage\n";
  for (int k : SortedKs(report)) {
    std::vector<double> reported, measured, coverage;
    for (const TargetResult& r : report.results) {
      if (r.k != k || r.method != Method::kLatpred || r.selection != report.main_selection) {
        continue;
      }
      if (std::isfinite(r.reported_loo_mape)) {
        reported.push_back(r.reported_loo_mape);
        measured.push_back(r.metrics.mape);
      }
      if (std::isfinite(r.coverage80)) coverage.push_back(r.coverage80);
    }
    if (reported.empty()) continue;
    out << absl::StrFormat("  k=%-2d  %6.1f%% / %6.1f%%   rho %.3f   coverage %5.1f%% (%d targets)\n",
                           k, Mean(reported), Mean(measured), core::Spearman(reported, measured),
                           100 * Mean(coverage), static_cast<int>(reported.size()));
  }
}

// Per k and part left out: the mean change of latpred's Spearman over targets (with
// its standard error over targets) and how many targets fall below the best baseline.
void PrintAblation(const AccuracyReport& report, std::ostream& out) {
  if (report.ablations.empty()) return;
  std::map<std::tuple<std::string, int, std::string, int>, double> full, best;
  for (const TargetResult& r : report.results) {
    if (r.selection != report.main_selection) continue;
    const auto key = std::make_tuple(r.task, r.trial, r.target, r.k);
    const double rho = std::isfinite(r.metrics.spearman) ? r.metrics.spearman : 0;
    if (r.method == Method::kLatpred) {
      full[key] = rho;
    } else {
      auto it = best.find(key);
      best[key] = it == best.end() ? rho : std::max(it->second, rho);
    }
  }
  out << "ablation (each part left out in turn; change of latpred's Spearman, mean +- "
         "standard error over targets; targets below the best baseline - 0.01)\n";
  for (int k : SortedKs(report)) {
    int below_full = 0, targets = 0;
    for (const auto& [key, rho] : full) {
      if (std::get<3>(key) != k) continue;
      ++targets;
      below_full += rho < best[key] - 0.01;
    }
    out << absl::StrFormat("  k=%-2d all parts: %d of %d below\n", k, below_full, targets);
    for (const std::string& part : report.options.ablate) {
      std::vector<double> delta;
      int below = 0;
      for (const AblationResult& a : report.ablations) {
        if (a.k != k || a.part != part) continue;
        const auto key = std::make_tuple(a.task, a.trial, a.target, a.k);
        delta.push_back(a.spearman - full[key]);
        below += a.spearman < best[key] - 0.01;
      }
      if (delta.empty()) continue;
      const double se = delta.size() > 1 ? StdDev(delta) / std::sqrt(delta.size()) : 0;
      out << absl::StrFormat("        without %-16s %+.4f +- %.4f   %d below\n", part,
                             Mean(delta), se, below);
    }
  }
}

// With and without the descriptor, same samples: per task and k the mean Spearman over
// targets and trials, then over every target.
void PrintDescriptor(const AccuracyReport& report, std::ostream& out) {
  if (report.descriptor_results.empty()) return;
  struct Sums {
    std::vector<double> without, with, weight, refs;
    int learned = 0, better = 0, worse = 0;
  };
  std::map<std::pair<std::string, int>, Sums> by_task;
  std::map<int, Sums> by_k;
  for (const DescriptorResult& d : report.descriptor_results) {
    for (Sums* s : {&by_task[{d.task, d.k}], &by_k[d.k]}) {
      s->without.push_back(d.spearman_without);
      s->with.push_back(d.spearman_with);
      s->weight.push_back(d.descriptor_weight);
      if (std::isfinite(d.spearman_refs_as_samples)) s->refs.push_back(d.spearman_refs_as_samples);
      s->learned += d.learned;
      s->better += d.spearman_with > d.spearman_without + 0.01;
      s->worse += d.spearman_with < d.spearman_without - 0.01;
    }
  }
  const auto line = [&out](const std::string& label, int k, const Sums& s) {
    out << absl::StrFormat("  %-14s k=%-2d %.3f -> %.3f (%+.3f)  learned %3d/%-3zu weight %.2f  "
                           "better %d worse %d",
                           label, k, Mean(s.without), Mean(s.with), Mean(s.with) - Mean(s.without),
                           s.learned, s.with.size(), Mean(s.weight), s.better, s.worse);
    if (!s.refs.empty()) out << absl::StrFormat("  refs as 10 samples %.3f", Mean(s.refs));
    out << "\n";
  };
  out << "descriptor (each device's nb201 reference latencies; latpred Spearman without -> "
         "with, same samples; k=0 zero-shot; better/worse: targets moved by more than 0.01)\n";
  for (const TaskSpec& t : report.tasks) {
    for (const auto& [key, sums] : by_task) {
      if (key.first == t.name) line(t.name, key.second, sums);
    }
  }
  for (const auto& [k, sums] : by_k) line("all targets", k, sums);
}

void PrintReport(const AccuracyReport& report, std::ostream& out) {
  const Selection main = report.main_selection;
  if (report.options.protocol == Protocol::kGeneral) {
    // The splits have no published figures: the per-split summary replaces the table
    // (accuracy.csv has every metric's mean and std over trials).
    out << "\n"
        << absl::StrFormat("Generalisation protocol: %d splits, %d trials, seed %d, %d epochs\n",
                           report.tasks.size(), report.options.trials, report.options.seed,
                           report.epochs);
    PrintGeneralSummary(SummarizeGeneral(report.results, report.tasks, main), out);
    PrintCalibration(report, out);
    PrintAblation(report, out);
    PrintDescriptor(report, out);
    out << "\n"
        << absl::StrFormat("adapt median: %.2f ms over %d calls\n", MedianAdaptMs(report, 0),
                           static_cast<int>(report.adapt_timings.size()))
        << absl::StrFormat("total wall time: %.1f s\n", report.wall_seconds);
    return;
  }
  out << "\n"
      << absl::StrFormat(
             "Accuracy on unseen devices: %d trials, seed %d, %d epochs, selection %s "
             "(Spearman mean+-std over trials of the mean over targets)\n",
             report.options.trials, report.options.seed, report.epochs, SelectionName(main));
  const std::string header = absl::StrFormat(
      "%-6s %3s  %-13s %7s %9s %7s  %9s %11s %9s  %6s %6s %7s  %s", "task", "k", "latpred rho",
      "Kendall", "within10%", "MAPE%", "FLOPs rho", "nearest rho", "count rho", "HELP", "MultiP",
      "NASFLAT", "beats NASFLAT?");
  out << header << "\n" << std::string(header.size(), '-') << "\n";
  for (const TaskSpec& t : report.tasks) {
    for (int k : SortedKs(report)) {
      const Aggregate* lp = report.Find(t.name, k, main, Method::kLatpred);
      const Aggregate* fl = report.Find(t.name, k, main, Method::kFlops);
      const Aggregate* ns = report.Find(t.name, k, main, Method::kNearestSource);
      const Aggregate* cf = report.Find(t.name, k, main, Method::kCountFit);
      if (lp == nullptr) continue;
      std::string published = absl::StrFormat("%6s %6s %7s", "", "", "");
      std::string beats;
      if (k == kPublishedK && t.published.has_value()) {
        published = absl::StrFormat("%6.3f %6.3f %7.3f", t.published->help,
                                    t.published->multipredict, t.published->nasflat);
        const double d = lp->spearman.mean - t.published->nasflat;
        beats = absl::StrFormat("%s (%+.3f)", d > 0 ? "yes" : "no", d);
      }
      out << absl::StrFormat(
                 "%-6s %3d  %5.3f+-%-6.3f %7.3f %8.1f%% %7.1f  %9.3f %11.3f %9.3f  %s  %s",
                 t.name, k, lp->spearman.mean, lp->spearman.std, lp->kendall.mean,
                 100 * lp->within10.mean, lp->mape.mean, fl ? fl->spearman.mean : NAN,
                 ns ? ns->spearman.mean : NAN, cf ? cf->spearman.mean : NAN, published, beats)
          << "\n";
    }
  }
  const Summary s = Summarize(report);
  out << "\n";
  if (s.published_tasks == 0) {
    out << "no published figures for these tasks\n";
  } else if (s.has_k20) {
    out << absl::StrFormat("k=20: beats NASFLAT on %d/%d tasks\n", s.k20_beats_nasflat,
                           s.published_tasks);
  } else {
    out << "k=20: not run (published figures are at 20 samples)\n";
  }
  if (s.has_k5 && s.published_tasks > 0) {
    out << absl::StrFormat("k=5: at or above NASFLAT's 20-sample figure on %d/%d\n",
                           s.k5_at_or_above_nasflat, s.published_tasks);
  }
  if (s.has_k20) {
    out << absl::StrFormat("mean within+-10%% at k=20: %.1f%%\n", 100 * s.mean_within10_k20);
    if (s.published_tasks > 0) {
      out << absl::StrFormat("mean Spearman at k=20: latpred %.3f, NASFLAT published %.3f\n",
                             s.mean_spearman_k20, s.mean_nasflat);
    }
  }
  PrintCalibration(report, out);
  PrintAblation(report, out);
  PrintDescriptor(report, out);
  out << absl::StrFormat("adapt median: %.2f ms over %d calls", s.adapt_median_ms, s.adapt_calls);
  if (s.has_k20) out << absl::StrFormat(" (k=20: %.2f ms)", s.adapt_median_ms_k20);
  out << "\n";
  const std::vector<int> random_ks = RandomKs(report);
  if (!random_ks.empty()) {
    out << "suggest vs random at k=" << absl::StrJoin(random_ks, "/")
        << ": per task latpred Spearman (suggest / random / difference)\n";
    for (const TaskSpec& t : report.tasks) {
      std::vector<std::string> parts;
      for (int k : random_ks) {
        const Aggregate* sg = report.Find(t.name, k, Selection::kSuggest, Method::kLatpred);
        const Aggregate* rn = report.Find(t.name, k, Selection::kRandom, Method::kLatpred);
        if (sg == nullptr || rn == nullptr) continue;
        parts.push_back(absl::StrFormat("k=%-2d %.3f / %.3f / %+.3f", k, sg->spearman.mean,
                                        rn->spearman.mean, sg->spearman.mean - rn->spearman.mean));
      }
      out << absl::StrFormat("  %-6s %s\n", t.name, absl::StrJoin(parts, "   "));
    }
  }
  out << absl::StrFormat("total wall time: %.1f s\n", report.wall_seconds);
}

std::string ReportCsv(const AccuracyReport& report) {
  std::string out =
      "task,space,k,selection,method,trials,targets,spearman_mean,spearman_std,kendall_mean,"
      "kendall_std,within10_mean,within10_std,mape_mean,mape_std,published_help_k20,"
      "published_multipredict_k20,published_nasflat_k20\n";
  for (const Aggregate& a : report.aggregates) {
    const TaskSpec* task = nullptr;
    for (const TaskSpec& t : report.tasks) {
      if (t.name == a.task) task = &t;
    }
    std::string published = ",,";
    if (task != nullptr && task->published.has_value()) {
      published = absl::StrCat(CsvNum(task->published->help), ",",
                               CsvNum(task->published->multipredict), ",",
                               CsvNum(task->published->nasflat));
    }
    absl::StrAppend(&out, CsvField(a.task), ",", task ? task->space : "", ",", a.k, ",",
                    SelectionName(a.selection), ",", MethodName(a.method), ",", a.trials, ",",
                    a.targets, ",", CsvNum(a.spearman.mean), ",", CsvNum(a.spearman.std), ",",
                    CsvNum(a.kendall.mean), ",", CsvNum(a.kendall.std), ",",
                    CsvNum(a.within10.mean), ",", CsvNum(a.within10.std), ",",
                    CsvNum(a.mape.mean), ",", CsvNum(a.mape.std), ",", published, "\n");
  }
  return out;
}

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string TargetsCsv(const AccuracyReport& report) {
  std::string out =
      "task,trial,target,k,selection,method,spearman,kendall,within10,mape,evaluated,"
      "nearest_source,reported_loo_mape,coverage80\n";
  for (const TargetResult& r : report.results) {
    absl::StrAppend(&out, CsvField(r.task), ",", r.trial, ",", CsvField(r.target), ",", r.k, ",",
                    SelectionName(r.selection), ",", MethodName(r.method), ",",
                    CsvNum(r.metrics.spearman), ",", CsvNum(r.metrics.kendall), ",",
                    CsvNum(r.metrics.within10), ",", CsvNum(r.metrics.mape), ",", r.evaluated,
                    ",", CsvField(r.nearest_source), ",", CsvNum(r.reported_loo_mape), ",",
                    CsvNum(r.coverage80), "\n");
  }
  return out;
}

std::string ReportJson(const AccuracyReport& report) {
  const AccuracyOptions& o = report.options;
  const Summary s = Summarize(report);
  std::vector<std::string> task_names;
  for (const TaskSpec& t : report.tasks) task_names.push_back(t.name);
  std::vector<double> ks(o.ks.begin(), o.ks.end()), rks;
  for (int k : o.random_ks) rks.push_back(k);
  std::string out = "{\n";
  absl::StrAppend(
      &out, "  \"benchmark\": \"accuracy\",\n", "  \"config\": {\"protocol\": ",
      JsonStr(ProtocolName(o.protocol)), ", \"tasks\": ",
      JsonStrList(task_names), ", \"k\": ", JsonNumList(ks), ", \"trials\": ", o.trials,
      ", \"seed\": ", o.seed, ", \"epochs\": ", report.epochs, ", \"threads\": ", o.threads,
      ", \"selection\": ", JsonStr(SelectionModeName(o.selection)),
      ", \"main_selection\": ", JsonStr(SelectionName(report.main_selection)),
      ", \"random_k\": ", JsonNumList(rks), ", \"data_dir\": ", JsonStr(o.data_dir),
      ", \"custom_data\": ", JsonStr(o.custom_data), ", \"published_k\": ", kPublishedK, "},\n");
  absl::StrAppend(&out, "  \"wall_seconds\": ", JsonNum(report.wall_seconds), ",\n");
  absl::StrAppend(&out, "  \"summary\": {\"published_tasks\": ", s.published_tasks,
                  ", \"k20_beats_nasflat\": ", s.has_k20 ? absl::StrCat(s.k20_beats_nasflat) : "null",
                  ", \"k5_at_or_above_nasflat_k20\": ",
                  s.has_k5 ? absl::StrCat(s.k5_at_or_above_nasflat) : "null",
                  ", \"mean_within10_k20\": ", JsonNum(s.mean_within10_k20),
                  ", \"mean_spearman_k20\": ", JsonNum(s.mean_spearman_k20),
                  ", \"mean_nasflat_published\": ", JsonNum(s.mean_nasflat),
                  ", \"adapt_calls\": ", s.adapt_calls,
                  ", \"adapt_median_ms\": ", JsonNum(s.adapt_median_ms),
                  ", \"adapt_median_ms_k20\": ", JsonNum(s.adapt_median_ms_k20), "},\n");
  absl::StrAppend(&out, "  \"tasks\": [");
  for (size_t ti = 0; ti < report.tasks.size(); ++ti) {
    const TaskSpec& t = report.tasks[ti];
    absl::StrAppend(&out, ti ? "," : "", "\n    {\"name\": ", JsonStr(t.name),
                    ", \"space\": ", JsonStr(t.space), ", \"source_budget\": ",
                    SourceBudget(t.space), ",\n     \"sources\": ", JsonStrList(t.sources),
                    ",\n     \"targets\": ", JsonStrList(t.targets), ",\n     \"published\": ");
    if (t.published.has_value()) {
      absl::StrAppend(&out, "{\"k\": ", kPublishedK, ", \"help\": ", JsonNum(t.published->help),
                      ", \"multipredict\": ", JsonNum(t.published->multipredict),
                      ", \"nasflat\": ", JsonNum(t.published->nasflat), "}");
    } else {
      absl::StrAppend(&out, "null");
    }
    absl::StrAppend(&out, ",\n     \"trials\": [");
    bool first = true;
    for (const TrialTiming& tt : report.trial_timings) {
      if (tt.task != t.name) continue;
      absl::StrAppend(&out, first ? "" : ", ", "{\"trial\": ", tt.trial,
                      ", \"train_archs\": ", tt.train_archs,
                      ", \"train_seconds\": ", JsonNum(tt.train_seconds),
                      ", \"eval_seconds\": ", JsonNum(tt.eval_seconds), "}");
      first = false;
    }
    absl::StrAppend(&out, "],\n     \"results\": [");
    first = true;
    for (const Aggregate& a : report.aggregates) {
      if (a.task != t.name) continue;
      auto metric = [](const MeanStd& m) {
        return absl::StrCat("{\"mean\": ", JsonNum(m.mean), ", \"std\": ", JsonNum(m.std),
                            ", \"per_trial\": ", JsonNumList(m.per_trial), "}");
      };
      absl::StrAppend(&out, first ? "" : ",", "\n       {\"k\": ", a.k, ", \"selection\": ",
                      JsonStr(SelectionName(a.selection)), ", \"method\": ",
                      JsonStr(MethodName(a.method)), ", \"trials\": ", a.trials,
                      ", \"targets\": ", a.targets, ", \"spearman\": ", metric(a.spearman),
                      ", \"kendall\": ", metric(a.kendall), ", \"within10\": ",
                      metric(a.within10), ", \"mape_percent\": ", metric(a.mape), "}");
      first = false;
    }
    absl::StrAppend(&out, "],\n     \"per_target\": [");
    first = true;
    for (const TargetResult& r : report.results) {
      if (r.task != t.name) continue;
      absl::StrAppend(&out, first ? "" : ",", "\n       {\"trial\": ", r.trial,
                      ", \"target\": ", JsonStr(r.target), ", \"k\": ", r.k,
                      ", \"selection\": ", JsonStr(SelectionName(r.selection)),
                      ", \"method\": ", JsonStr(MethodName(r.method)),
                      ", \"spearman\": ", JsonNum(r.metrics.spearman),
                      ", \"kendall\": ", JsonNum(r.metrics.kendall),
                      ", \"within10\": ", JsonNum(r.metrics.within10),
                      ", \"mape_percent\": ", JsonNum(r.metrics.mape),
                      ", \"evaluated\": ", r.evaluated);
      if (!r.nearest_source.empty()) {
        absl::StrAppend(&out, ", \"nearest_source\": ", JsonStr(r.nearest_source));
      }
      absl::StrAppend(&out, "}");
      first = false;
    }
    absl::StrAppend(&out, "]}");
  }
  absl::StrAppend(&out, "\n  ]\n}\n");
  return out;
}

std::string ReportSvg(const AccuracyReport& report) {
  SvgChart chart;
  chart.title = absl::StrFormat(
      "latpred few-shot accuracy: Spearman vs target samples (%d trials, selection %s)",
      report.options.trials, SelectionName(report.main_selection));
  chart.x_label = "k (target samples, log scale)";
  chart.y_label = "Spearman rho";
  std::vector<int> ks = SortedKs(report);
  bool any_published = false;
  for (const TaskSpec& t : report.tasks) any_published |= t.published.has_value();
  if (any_published && !HasK(report, kPublishedK)) {
    ks.push_back(kPublishedK);
    std::sort(ks.begin(), ks.end());
  }
  for (int k : ks) chart.x_ticks.push_back(k);
  double lowest = 0;
  const struct {
    Method method;
    const char* label;
    const char* color;
    bool dashed;
  } kSeries[] = {{Method::kLatpred, "latpred", "#1f77b4", false},
                 {Method::kFlops, "FLOPs fit", "#7f7f7f", true},
                 {Method::kNearestSource, "nearest source", "#2ca02c", true},
                 {Method::kCountFit, "count fit", "#ff7f0e", true}};
  for (const TaskSpec& t : report.tasks) {
    SvgPanel panel;
    panel.title = absl::StrCat(t.name, " (", t.space, ")");
    for (const auto& spec : kSeries) {
      SvgSeries s;
      s.label = spec.label;
      s.color = spec.color;
      s.dashed = spec.dashed;
      for (int k : SortedKs(report)) {
        const Aggregate* a = report.Find(t.name, k, report.main_selection, spec.method);
        if (a == nullptr) continue;
        s.x.push_back(k);
        s.y.push_back(a->spearman.mean);
        s.err.push_back(spec.method == Method::kLatpred ? a->spearman.std : 0);
        if (std::isfinite(a->spearman.mean)) lowest = std::min(lowest, a->spearman.mean);
      }
      panel.series.push_back(std::move(s));
    }
    if (t.published.has_value()) {
      panel.markers.push_back(
          {"NASFLAT (published, k=20)", "#d62728", static_cast<double>(kPublishedK),
           t.published->nasflat});
    }
    chart.panels.push_back(std::move(panel));
  }
  chart.y_min = lowest >= 0 ? 0.0 : std::max(-1.0, std::floor(lowest * 5) / 5);
  chart.y_max = 1.0;
  chart.y_step = 0.2;
  chart.columns = std::min<int>(4, std::max<size_t>(1, report.tasks.size()));
  return RenderSvg(chart);
}

absl::Status WriteReport(const AccuracyReport& report, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create output directory ", dir, ": ", ec.message()));
  }
  std::vector<std::pair<const char*, std::string>> files = {
      {"accuracy.csv", ReportCsv(report)},
      {"accuracy_targets.csv", TargetsCsv(report)},
      {"accuracy.json", ReportJson(report)},
      {"accuracy.svg", ReportSvg(report)},
  };
  if (!report.ablations.empty()) {
    std::string csv = "task,trial,target,k,part_left_out,spearman\n";
    for (const AblationResult& a : report.ablations) {
      absl::StrAppend(&csv, CsvField(a.task), ",", a.trial, ",", CsvField(a.target), ",", a.k,
                      ",", a.part, ",", CsvNum(a.spearman), "\n");
    }
    files.emplace_back("ablation.csv", csv);
  }
  if (!report.descriptor_results.empty()) {
    std::string csv =
        "task,trial,target,k,learned,spearman_without,spearman_with,mape_without,mape_with,"
        "descriptor_weight,spearman_refs_as_samples\n";
    for (const DescriptorResult& d : report.descriptor_results) {
      absl::StrAppend(&csv, CsvField(d.task), ",", d.trial, ",", CsvField(d.target), ",", d.k, ",",
                      d.learned ? 1 : 0, ",", CsvNum(d.spearman_without), ",",
                      CsvNum(d.spearman_with), ",", CsvNum(d.mape_without), ",",
                      CsvNum(d.mape_with), ",", CsvNum(d.descriptor_weight), ",",
                      CsvNum(d.spearman_refs_as_samples), "\n");
    }
    files.emplace_back("descriptor.csv", csv);
  }
  if (report.options.protocol == Protocol::kGeneral) {
    files.emplace_back("generalization.csv",
                       GeneralizationCsv(SummarizeGeneral(report.results, report.tasks,
                                                          report.main_selection)));
  }
  for (const auto& [name, text] : files) {
    const std::string path = absl::StrCat(dir, "/", name);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    if (!f) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

}  // namespace latpred::bench
