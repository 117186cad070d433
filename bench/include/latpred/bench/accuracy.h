// The accuracy benchmark: few-shot latency prediction on unseen devices, by the
// protocol of docs/accuracy-benchmark.md, through the service's own predictor code
// path (BaseModel::Train, Suggest, Adapt, Predict; no benchmark-only model).
//
// Per task and trial t (seed + t): every source device gets its own random draw of the
// source budget (512 nb201 / 800 fbnet architectures among its measured rows); the
// training data is the union of these rows, NaN where a device was not drawn; one base
// model is trained and reused for every target and k. Per target device and k: k
// architectures are chosen (Suggest over every architecture the target has a
// measurement of, from the architecture strings alone, or uniformly at random), the
// head is adapted on their true latencies, and every other measured architecture of
// the target is predicted. The FLOPs, nearest-source and count-fit baselines use the
// same samples.
// A task's figure is the mean over its targets, reported as mean and std over trials.
#ifndef LATPRED_BENCH_ACCURACY_H_
#define LATPRED_BENCH_ACCURACY_H_

#include <cstdint>
#include <iosfwd>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "latpred/predictor/adapt_options.h"
#include "latpred/bench/tasks.h"

namespace latpred::bench {

// How the k target architectures are chosen.
enum class Selection { kSuggest, kRandom };
// What to run: only one selection at every k, or suggest at every k plus random at
// the comparison ks (the main figures then use suggest).
enum class SelectionMode { kSuggest, kRandom, kBoth };

enum class Method { kLatpred, kFlops, kNearestSource, kCountFit };

// The baselines, in the order the reports show them.
inline constexpr Method kBaselines[] = {Method::kFlops, Method::kNearestSource,
                                        Method::kCountFit};

// Which tasks: the twelve published ones, or the generalisation splits (protocol.h).
enum class Protocol { kPublished, kGeneral };

const char* SelectionName(Selection s);  // "suggest", "random"
// "latpred", "flops_fit", "nearest_source", "count_fit"
const char* MethodName(Method m);
const char* ProtocolName(Protocol p);  // "published", "general"

struct AccuracyOptions {
  Protocol protocol = Protocol::kPublished;
  // Standard task names (split names under the general protocol); empty: all of them.
  std::vector<std::string> tasks;
  std::vector<int> ks = {3, 5, 10, 20};
  int trials = 3;
  uint64_t seed = 1;
  int epochs = 0;   // 0: the predictor's TrainOptions default
  int threads = 2;  // predictor threads (0: all cores)
  SelectionMode selection = SelectionMode::kBoth;
  std::vector<int> random_ks = {5, 10};  // ks where kBoth also runs random selection
  std::string data_dir;                  // holds help/ and eagle/
  std::string out_dir = "bench-out";
  // A custom task instead of the standard ones when custom_data is set.
  std::string custom_data;                  // CSV latency table
  std::string custom_space;                 // "nb201" or "fbnet"
  std::vector<std::string> custom_source;   // {"all"}: every device not a target
  std::vector<std::string> custom_target;   // {"all"}: every device of the file
  // One task per target instead of one for all: each named after its target and
  // learned from every source but itself (with all / all: leave one device out).
  bool custom_each = false;
  // Adapt's settings (--adapt-off switches parts off by name).
  predictor::AdaptOptions adapt;
  // Parts to leave out one at a time (--ablate), each on the same base model and
  // samples as the main figures: what each part adds.
  std::vector<std::string> ablate;
  // Also adapt with each device's descriptor (--descriptor): its latencies on the nb201
  // reference architectures (core::Nb201ReferenceArchs, as the agent measures them),
  // the sources' descriptors and heads teaching the descriptor map; side by side with
  // latpred without it on the same samples, and at k=0 (zero-shot) too.
  bool descriptor = false;
};

struct Metrics {
  double spearman = 0;
  double kendall = 0;
  double within10 = 0;  // share (0..1) of predictions within +-10%
  double mape = 0;      // percent
};

// One evaluation: a (task, trial, target, k, selection, method).
struct TargetResult {
  std::string task;
  int trial = 0;
  std::string target;
  int k = 0;
  Selection selection = Selection::kSuggest;
  Method method = Method::kLatpred;
  Metrics metrics;
  int evaluated = 0;           // architectures predicted and scored
  std::string nearest_source;  // the source device picked (nearest-source only)
  // latpred only (NaN otherwise): the leave-one-out MAPE the head reported (percent;
  // NaN below 3 samples) and the share of the scored architectures inside its 80%
  // predictive interval (NaN where it has none).
  double reported_loo_mape = std::numeric_limits<double>::quiet_NaN();
  double coverage80 = std::numeric_limits<double>::quiet_NaN();
};

struct MeanStd {
  double mean = 0;
  double std = 0;
  std::vector<double> per_trial;  // task mean over targets, per trial
};

// A task's figures for one (k, selection, method): task mean over targets per trial,
// then mean and std over trials. NaN rank correlations (constant predictions) count 0.
struct Aggregate {
  std::string task;
  int k = 0;
  Selection selection = Selection::kSuggest;
  Method method = Method::kLatpred;
  int trials = 0;
  int targets = 0;
  MeanStd spearman, kendall, within10, mape;
};

struct AdaptTiming {
  int k = 0;
  double seconds = 0;
};

struct TrialTiming {
  std::string task;
  int trial = 0;
  int train_archs = 0;
  double train_seconds = 0;
  double eval_seconds = 0;
};

// latpred's Spearman on one (task, trial, target, k) with one part left out.
struct AblationResult {
  std::string task;
  int trial = 0;
  std::string target;
  int k = 0;
  std::string part;
  double spearman = 0;
};

// latpred with and without the target's descriptor on one (task, trial, target, k), the
// same samples; k=0 is zero-shot (the source prior's mean against the descriptor's).
struct DescriptorResult {
  std::string task;
  int trial = 0;
  std::string target;
  int k = 0;
  bool learned = false;            // the map gave the target a prior
  double spearman_without = 0;
  double spearman_with = 0;
  double mape_without = 0;
  double mape_with = 0;
  double descriptor_weight = 0;    // the head's share from the descriptor part
  // The source prior adapted on the reference latencies as samples (the descriptor's
  // latencies spent as k = 10 samples; nb201 targets only, k=0 rows only; NaN otherwise).
  double spearman_refs_as_samples = std::numeric_limits<double>::quiet_NaN();
};

struct AccuracyReport {
  AccuracyOptions options;
  int epochs = 0;  // epochs actually used
  Selection main_selection = Selection::kSuggest;
  std::vector<TaskSpec> tasks;
  std::vector<TargetResult> results;
  std::vector<AblationResult> ablations;
  std::vector<DescriptorResult> descriptor_results;
  std::vector<Aggregate> aggregates;
  std::vector<AdaptTiming> adapt_timings;
  std::vector<TrialTiming> trial_timings;
  double wall_seconds = 0;

  // The aggregate for (task, k, selection, method), or nullptr.
  const Aggregate* Find(const std::string& task, int k, Selection selection,
                        Method method) const;
};

// Runs the benchmark; progress lines go to log.
absl::StatusOr<AccuracyReport> RunAccuracy(const AccuracyOptions& options, std::ostream& log);

// Means and stds of the per-(task, trial, target) results (fills report->aggregates).
void AggregateResults(AccuracyReport* report);

}  // namespace latpred::bench

#endif  // LATPRED_BENCH_ACCURACY_H_
