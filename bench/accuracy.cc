#include "latpred/bench/accuracy.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "latpred/bench/baselines.h"
#include "latpred/bench/protocol.h"
#include "latpred/core/dataset.h"
#include "latpred/core/reference_archs.h"
#include "latpred/core/search_space.h"
#include "latpred/core/stats.h"
#include "latpred/predictor/interval.h"
#include "latpred/predictor/predictor.h"

namespace latpred::bench {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string Elapsed(Clock::time_point start) {
  const int s = static_cast<int>(SecondsSince(start));
  return absl::StrFormat("%d:%02d", s / 60, s % 60);
}

// A seeded generator per purpose: FNV-1a over the seed and the labels, so that every
// source device (and every target, k and trial) gets its own stable stream.
std::mt19937_64 Rng(uint64_t seed, std::initializer_list<std::string> labels) {
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&h](uint64_t byte) {
    h ^= byte;
    h *= 1099511628211ULL;
  };
  for (int i = 0; i < 8; ++i) mix((seed >> (8 * i)) & 0xff);
  for (const std::string& l : labels) {
    mix(0x1f);
    for (unsigned char c : l) mix(c);
  }
  return std::mt19937_64(h);
}

// The first m of a uniform random permutation of 0..n-1 (partial Fisher-Yates).
std::vector<int> Draw(int n, int m, std::mt19937_64& rng) {
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  m = std::min(m, n);
  for (int i = 0; i < m; ++i) {
    int j = i + static_cast<int>(rng() % static_cast<uint64_t>(n - i));
    std::swap(idx[i], idx[j]);
  }
  idx.resize(m);
  return idx;
}

double ZeroIfNan(double v) { return std::isnan(v) ? 0.0 : v; }

Metrics Score(const std::vector<double>& truth, const std::vector<double>& pred) {
  Metrics m;
  m.spearman = core::Spearman(truth, pred);
  m.kendall = core::KendallTau(truth, pred);
  m.within10 = core::WithinBound(truth, pred, 0.1);
  m.mape = core::Mape(truth, pred);
  return m;
}

// A latency table with what the benchmark needs precomputed.
struct Table {
  core::LatencyTable data;
  std::vector<double> flops;                // per row
  std::vector<std::vector<double>> counts;  // per row: the count fit's operation counts
  // Full column of a device (NaN where not measured).
  std::vector<double> Column(int col) const {
    std::vector<double> out(data.rows());
    for (size_t r = 0; r < data.rows(); ++r) out[r] = data.at(r, col);
    return out;
  }
  std::vector<int> MeasuredRows(int col) const {
    std::vector<int> rows;
    for (size_t r = 0; r < data.rows(); ++r) {
      double v = data.at(r, col);
      if (v > 0 && std::isfinite(v)) rows.push_back(static_cast<int>(r));
    }
    return rows;
  }
};

absl::StatusOr<std::unique_ptr<Table>> Prepare(core::LatencyTable data) {
  auto t = std::make_unique<Table>();
  t->data = std::move(data);
  t->flops.resize(t->data.rows());
  for (size_t r = 0; r < t->data.rows(); ++r) {
    t->flops[r] = t->data.space->AnalyticCosts(t->data.archs[r]).flops;
  }
  t->counts.resize(t->data.rows());
  for (size_t r = 0; r < t->data.rows(); ++r) {
    t->counts[r] = OperationCounts(*t->data.space, t->data.archs[r]);
  }
  return t;
}

// Several files joined on the architecture, each adding its devices (a device may be in
// one file only); file_devices gets each file's devices.
absl::StatusOr<std::unique_ptr<Table>> LoadJoined(
    const std::vector<std::string>& files, const core::SearchSpace& space,
    std::map<std::string, std::vector<std::string>>* file_devices) {
  std::optional<core::LatencyTable> joined;
  for (const std::string& file : files) {
    absl::StatusOr<core::LatencyTable> table = core::ReadLatencyTable(file, space);
    if (!table.ok()) return table.status();
    (*file_devices)[file] = table->devices;
    if (!joined) {
      joined = std::move(*table);
      continue;
    }
    for (const std::string& device : table->devices) {
      if (joined->DeviceColumn(device) >= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--data: device '", device, "' of ", file,
                         " is also in an earlier file; rename one of the two columns"));
      }
    }
    core::MergeLatencyTables(*joined, *table);
  }
  if (!joined) return absl::InvalidArgumentError("--data names no file");
  return Prepare(std::move(*joined));
}

absl::StatusOr<std::unique_ptr<Table>> LoadStandard(const std::string& data_dir,
                                                    const std::string& space_name) {
  absl::StatusOr<const core::SearchSpace*> space = core::GetSearchSpace(space_name);
  if (!space.ok()) return space.status();
  const std::string help = absl::StrCat(data_dir, "/help/", space_name, "_latency.csv");
  absl::StatusOr<core::LatencyTable> table = core::ReadLatencyTable(help, **space);
  if (!table.ok()) return table.status();
  if (space_name == "nb201") {
    const std::string eagle = absl::StrCat(data_dir, "/eagle/nb201_latency.csv");
    absl::StatusOr<core::LatencyTable> more = core::ReadLatencyTable(eagle, **space);
    if (!more.ok()) return more.status();
    core::MergeLatencyTables(*table, *more);
  }
  return Prepare(std::move(*table));
}

std::vector<std::string> ResolveList(const std::vector<std::string>& names,
                                     const std::vector<std::string>& all,
                                     const std::vector<std::string>& exclude) {
  std::vector<std::string> out;
  const bool every = names.size() == 1 && names[0] == "all";
  for (const std::string& n : every ? all : names) {
    if (std::find(exclude.begin(), exclude.end(), n) != exclude.end()) continue;
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  return out;
}

struct Plan {
  int k;
  Selection selection;
};

class Runner {
 public:
  Runner(const AccuracyOptions& options, std::ostream& log, AccuracyReport* report)
      : options_(options), log_(log), report_(report), start_(Clock::now()) {}

  absl::Status Run();

 private:
  // The general protocol's splits (those of options_.tasks) and their tables.
  absl::Status LoadGeneral();
  absl::Status RunTask(const TaskSpec& task, const Table& table);
  absl::Status RunTrial(const TaskSpec& task, const Table& table, int trial,
                        const std::vector<int>& source_cols,
                        const std::vector<std::vector<double>>& source_columns);

  // Every device's descriptor from the nb201 table (loaded for it where no split needs it).
  absl::Status LoadDescriptors();
  // The descriptor comparison for one target (DescriptorResult), at k=0 and at each k.
  void CompareZeroShot(const TaskSpec& task, int trial, const std::string& target,
                       const predictor::BaseModel& model,
                       const std::optional<predictor::DescriptorPrior>& prior,
                       const std::vector<core::Architecture>& candidates,
                       const std::vector<int>& measured, const std::vector<double>& truth);

  const AccuracyOptions& options_;
  std::ostream& log_;
  AccuracyReport* report_;
  Clock::time_point start_;
  std::vector<Plan> plan_;
  std::map<std::string, std::unique_ptr<Table>> tables_;
  std::map<std::string, predictor::Descriptor> descriptors_;
  std::vector<core::Architecture> references_;  // nb201 reference architectures
};

absl::Status Runner::LoadDescriptors() {
  const core::SearchSpace& nb201 = core::Nb201Space();
  std::unique_ptr<Table> loaded;
  const Table* table = nullptr;
  if (tables_.count("nb201")) {
    table = tables_.at("nb201").get();
  } else {
    std::vector<std::string> files = {absl::StrCat(options_.data_dir, "/help/nb201_latency.csv")};
    if (options_.protocol == Protocol::kGeneral) {
      files.push_back(absl::StrCat(options_.data_dir, "/eagle/nb201_latency.csv"));
    }
    std::map<std::string, std::vector<std::string>> file_devices;
    absl::StatusOr<std::unique_ptr<Table>> t = LoadJoined(files, nb201, &file_devices);
    if (!t.ok()) return t.status();
    loaded = std::move(*t);
    table = loaded.get();
  }
  std::map<std::string, size_t> row_of;
  for (size_t r = 0; r < table->data.rows(); ++r) {
    row_of[nb201.Canonical(table->data.archs[r])] = r;
  }
  for (const std::string& text : core::Nb201ReferenceArchs()) {
    absl::StatusOr<core::Architecture> arch = nb201.Parse(text);
    if (!arch.ok()) return arch.status();
    references_.push_back(*arch);
  }
  for (size_t c = 0; c < table->data.devices.size(); ++c) {
    predictor::Descriptor& d = descriptors_[table->data.devices[c]];
    for (const core::Architecture& arch : references_) {
      const auto it = row_of.find(nb201.Canonical(arch));
      if (it == row_of.end()) continue;
      const double v = table->data.at(it->second, static_cast<int>(c));
      if (v > 0 && std::isfinite(v)) d[core::ReferenceFeatureName(nb201, arch)] = v;
    }
  }
  log_ << absl::StrFormat("descriptors: %d reference latencies on %d devices\n",
                          references_.size(), descriptors_.size());
  return absl::OkStatus();
}

void Runner::CompareZeroShot(const TaskSpec& task, int trial, const std::string& target,
                             const predictor::BaseModel& model,
                             const std::optional<predictor::DescriptorPrior>& prior,
                             const std::vector<core::Architecture>& candidates,
                             const std::vector<int>& measured, const std::vector<double>& truth) {
  const size_t n = candidates.size();
  // The reference architectures are the descriptor's: left out of the scored ones.
  const core::SearchSpace& space = model.space();
  std::set<std::string> reference_names;
  if (space.name() == "nb201") {
    for (const core::Architecture& a : references_) reference_names.insert(space.Canonical(a));
  }
  std::vector<char> scored(n, 1);
  std::vector<predictor::Observation> refs;
  for (size_t i = 0; i < n; ++i) {
    if (reference_names.count(space.Canonical(candidates[i]))) {
      scored[i] = 0;
      refs.push_back({candidates[i], truth[i]});
    }
  }
  const auto score = [&](const predictor::DeviceHead& head) {
    std::vector<double> pred(n), t, p;
    model.Predict(head, candidates, pred.data());
    for (size_t i = 0; i < n; ++i) {
      if (!scored[i]) continue;
      t.push_back(truth[i]);
      p.push_back(pred[i]);
    }
    return Score(t, p);
  };
  DescriptorResult r;
  r.task = task.name;
  r.trial = trial;
  r.target = target;
  r.k = 0;
  r.learned = prior.has_value();
  const Metrics without = score(model.ZeroShot(nullptr));
  const predictor::DeviceHead head = model.ZeroShot(prior ? &*prior : nullptr);
  const Metrics with = score(head);
  r.spearman_without = ZeroIfNan(without.spearman);
  r.spearman_with = ZeroIfNan(with.spearman);
  r.mape_without = without.mape;
  r.mape_with = with.mape;
  r.descriptor_weight = head.fit.descriptor_weight;
  if (refs.size() == references_.size() && !refs.empty()) {
    absl::StatusOr<predictor::DeviceHead> on_refs = model.Adapt(refs, options_.adapt);
    if (on_refs.ok()) r.spearman_refs_as_samples = ZeroIfNan(score(*on_refs).spearman);
  }
  (void)measured;
  report_->descriptor_results.push_back(r);
}

absl::Status Runner::Run() {
  const AccuracyOptions& o = options_;
  if (o.ks.empty()) return absl::InvalidArgumentError("--k: give at least one k");
  for (int k : o.ks) {
    if (k < 1) return absl::InvalidArgumentError(absl::StrCat("--k: k must be >= 1, got ", k));
  }
  if (o.trials < 1) return absl::InvalidArgumentError("--trials must be >= 1");
  if (o.epochs < 0) return absl::InvalidArgumentError("--epochs must be >= 1");
  if (o.threads < 0) return absl::InvalidArgumentError("--threads must be >= 0");
  report_->epochs = o.epochs > 0 ? o.epochs : predictor::TrainOptions().epochs;
  report_->main_selection =
      o.selection == SelectionMode::kRandom ? Selection::kRandom : Selection::kSuggest;
  for (int k : o.ks) plan_.push_back({k, report_->main_selection});
  if (o.selection == SelectionMode::kBoth) {
    for (int k : o.random_ks) {
      if (std::find(o.ks.begin(), o.ks.end(), k) != o.ks.end()) {
        plan_.push_back({k, Selection::kRandom});
      }
    }
  }
  predictor::SetThreads(o.threads);

  // Tasks and their tables.
  if (!o.custom_data.empty()) {
    if (o.custom_space.empty()) return absl::InvalidArgumentError("--data needs --space");
    absl::StatusOr<const core::SearchSpace*> space = core::GetSearchSpace(o.custom_space);
    if (!space.ok()) return space.status();
    // Several files are joined on the architecture, each adding its devices; in --source
    // and --target, a file's path stands for every device of that file.
    if (o.protocol != Protocol::kPublished) {
      return absl::InvalidArgumentError("--data runs the custom task: not with --protocol general");
    }
    const std::vector<std::string> files =
        absl::StrSplit(o.custom_data, ',', absl::SkipEmpty());
    std::map<std::string, std::vector<std::string>> file_devices;
    absl::StatusOr<std::unique_ptr<Table>> prepared = LoadJoined(files, **space, &file_devices);
    if (!prepared.ok()) return prepared.status();
    const std::vector<std::string>& devices = (*prepared)->data.devices;
    if (o.custom_target.empty()) return absl::InvalidArgumentError("--data needs --target");
    if (o.custom_source.empty()) return absl::InvalidArgumentError("--data needs --source");
    const auto expand = [&](const std::vector<std::string>& names) {
      std::vector<std::string> out;
      for (const std::string& name : names) {
        const auto it = file_devices.find(name);
        if (it == file_devices.end()) {
          out.push_back(name);
        } else {
          out.insert(out.end(), it->second.begin(), it->second.end());
        }
      }
      return out;
    };
    const std::vector<std::string> custom_source = expand(o.custom_source);
    const std::vector<std::string> custom_target = expand(o.custom_target);
    TaskSpec task;
    task.name = "custom";
    task.space = o.custom_space;
    task.targets = ResolveList(custom_target, devices, {});
    task.sources = ResolveList(custom_source, devices, task.targets);
    if (task.targets.empty()) return absl::InvalidArgumentError("custom task: no target device");
    if (o.custom_each) {
      // One task per target: its sources are every source device but itself.
      for (const std::string& target : task.targets) {
        TaskSpec one{target, o.custom_space, ResolveList(custom_source, devices, {target}),
                     {target}, std::nullopt};
        if (one.sources.empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat("custom task ", target, ": no source device but the target"));
        }
        report_->tasks.push_back(std::move(one));
      }
    } else if (task.sources.empty()) {
      return absl::InvalidArgumentError(
          "custom task: no source device left (a device in both --source and --target is a "
          "target only)");
    } else {
      report_->tasks.push_back(task);
    }
    tables_[o.custom_space] = std::move(*prepared);
  } else if (o.protocol == Protocol::kGeneral) {
    absl::Status s = LoadGeneral();
    if (!s.ok()) return s;
  } else {
    if (o.tasks.empty()) {
      report_->tasks = StandardTasks();
    } else {
      for (const std::string& name : o.tasks) {
        const TaskSpec* t = FindTask(name);
        if (t == nullptr) {
          const std::vector<std::string> splits = GeneralSplitNames();
          if (std::any_of(splits.begin(), splits.end(), [&name](const std::string& s) {
                return absl::EqualsIgnoreCase(s, name);
              })) {
            return absl::InvalidArgumentError(
                absl::StrCat("'", name, "' is a split of --protocol general"));
          }
          std::vector<std::string> known;
          for (const TaskSpec& s : StandardTasks()) known.push_back(s.name);
          return absl::InvalidArgumentError(absl::StrCat("unknown task '", name,
                                                         "'; known: ", absl::StrJoin(known, ","),
                                                         ", all"));
        }
        report_->tasks.push_back(*t);
      }
    }
    for (const TaskSpec& t : report_->tasks) {
      if (tables_.count(t.space)) continue;
      auto load_start = Clock::now();
      absl::StatusOr<std::unique_ptr<Table>> table = LoadStandard(o.data_dir, t.space);
      if (!table.ok()) return table.status();
      log_ << absl::StrFormat("loaded %s: %d architectures x %d devices in %.1f s\n", t.space,
                              (*table)->data.rows(), (*table)->data.devices.size(),
                              SecondsSince(load_start));
      tables_[t.space] = std::move(*table);
    }
  }
  // Every device of every task must be in its table, and targets need > max k rows.
  for (const TaskSpec& t : report_->tasks) {
    const Table& table = *tables_.at(t.space);
    for (const auto* list : {&t.sources, &t.targets}) {
      for (const std::string& d : *list) {
        if (table.data.DeviceColumn(d) < 0) {
          return absl::NotFoundError(absl::StrCat("task ", t.name, ": device '", d,
                                                  "' is not in the ", t.space, " data"));
        }
      }
    }
  }
  if (o.descriptor) {
    absl::Status s = LoadDescriptors();
    if (!s.ok()) return s;
  }
  for (const TaskSpec& t : report_->tasks) {
    absl::Status s = RunTask(t, *tables_.at(t.space));
    if (!s.ok()) return s;
  }
  report_->wall_seconds = SecondsSince(start_);
  AggregateResults(report_);
  return absl::OkStatus();
}

absl::Status Runner::LoadGeneral() {
  const AccuracyOptions& o = options_;
  std::vector<std::string> wanted;
  const std::vector<std::string> known = GeneralSplitNames();
  for (const std::string& name : o.tasks) {
    const auto it = std::find_if(known.begin(), known.end(), [&name](const std::string& k) {
      return absl::EqualsIgnoreCase(k, name);
    });
    if (it == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown split '", name, "'; known: ", absl::StrJoin(known, ","), ", all"));
    }
    wanted.push_back(*it);
  }
  const bool want_nb201 =
      wanted.empty() || std::any_of(wanted.begin(), wanted.end(), [](const std::string& n) {
        return !absl::StartsWith(n, "f-");
      });
  const bool want_fbnet =
      wanted.empty() || std::any_of(wanted.begin(), wanted.end(), [](const std::string& n) {
        return absl::StartsWith(n, "f-");
      });
  // nb201: HELP's and LatBench's tables joined as --data joins them.
  CollectionDevices devices;
  const struct {
    bool wanted;
    const char* space;
    std::vector<std::pair<std::string, std::vector<std::string>*>> files;
  } loads[] = {
      {want_nb201, "nb201",
       {{absl::StrCat(o.data_dir, "/help/nb201_latency.csv"), &devices.help_nb201},
        {absl::StrCat(o.data_dir, "/eagle/nb201_latency.csv"), &devices.eagle_nb201}}},
      {want_fbnet, "fbnet",
       {{absl::StrCat(o.data_dir, "/help/fbnet_latency.csv"), &devices.help_fbnet}}},
  };
  for (const auto& load : loads) {
    if (!load.wanted) continue;
    absl::StatusOr<const core::SearchSpace*> space = core::GetSearchSpace(load.space);
    if (!space.ok()) return space.status();
    auto load_start = Clock::now();
    std::vector<std::string> files;
    for (const auto& [file, list] : load.files) files.push_back(file);
    std::map<std::string, std::vector<std::string>> file_devices;
    absl::StatusOr<std::unique_ptr<Table>> table = LoadJoined(files, **space, &file_devices);
    if (!table.ok()) return table.status();
    for (const auto& [file, list] : load.files) *list = file_devices[file];
    log_ << absl::StrFormat("loaded %s: %d architectures x %d devices in %.1f s\n", load.space,
                            (*table)->data.rows(), (*table)->data.devices.size(),
                            SecondsSince(load_start));
    tables_[load.space] = std::move(*table);
  }
  for (TaskSpec& split : GeneralSplits(devices)) {
    if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), split.name) == wanted.end()) {
      continue;
    }
    report_->tasks.push_back(std::move(split));
  }
  for (const std::string& name : wanted) {
    if (std::none_of(report_->tasks.begin(), report_->tasks.end(),
                     [&name](const TaskSpec& t) { return t.name == name; })) {
      return absl::NotFoundError(
          absl::StrCat("split ", name, ": no target or no source device in the data"));
    }
  }
  if (report_->tasks.empty()) return absl::NotFoundError("no split has devices in the data");
  return absl::OkStatus();
}

absl::Status Runner::RunTask(const TaskSpec& task, const Table& table) {
  std::vector<int> source_cols;
  std::vector<std::vector<double>> source_columns;
  for (const std::string& d : task.sources) {
    source_cols.push_back(table.data.DeviceColumn(d));
    source_columns.push_back(table.Column(source_cols.back()));
  }
  for (int trial = 0; trial < options_.trials; ++trial) {
    absl::Status s = RunTrial(task, table, trial, source_cols, source_columns);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Runner::RunTrial(const TaskSpec& task, const Table& table, int trial,
                              const std::vector<int>& source_cols,
                              const std::vector<std::vector<double>>& source_columns) {
  const uint64_t seed = options_.seed + static_cast<uint64_t>(trial);
  const std::string trial_label = absl::StrCat(trial);
  const std::string prefix =
      absl::StrFormat("%s trial %d/%d", task.name, trial + 1, options_.trials);

  // Training data: a separate draw of the source budget per source device.
  const int budget = SourceBudget(task.space);
  const size_t rows = table.data.rows();
  const size_t nd = table.data.devices.size();
  std::vector<std::vector<int>> drawn(task.sources.size());
  std::vector<char> in_union(rows, 0);
  for (size_t s = 0; s < task.sources.size(); ++s) {
    std::vector<int> measured = table.MeasuredRows(source_cols[s]);
    std::mt19937_64 rng = Rng(seed, {task.name, "source", task.sources[s]});
    for (int i : Draw(static_cast<int>(measured.size()), budget, rng)) {
      drawn[s].push_back(measured[i]);
      in_union[measured[i]] = 1;
    }
  }
  predictor::TrainingData data;
  data.space = table.data.space;
  data.devices = task.sources;
  std::vector<int> union_pos(rows, -1);
  for (size_t r = 0; r < rows; ++r) {
    if (!in_union[r]) continue;
    union_pos[r] = static_cast<int>(data.archs.size());
    data.archs.push_back(table.data.archs[r]);
  }
  const size_t nsrc = task.sources.size();
  data.latency_ms.assign(data.archs.size() * nsrc, std::numeric_limits<double>::quiet_NaN());
  for (size_t s = 0; s < nsrc; ++s) {
    for (int r : drawn[s]) data.latency_ms[union_pos[r] * nsrc + s] = table.data.latency[r * nd + source_cols[s]];
  }

  predictor::TrainOptions train;
  if (options_.epochs > 0) train.epochs = options_.epochs;
  train.seed = seed;
  train.threads = options_.threads;
  auto train_start = Clock::now();
  absl::StatusOr<std::shared_ptr<const predictor::BaseModel>> trained =
      predictor::BaseModel::Train(data, train);
  if (!trained.ok()) {
    return absl::Status(trained.status().code(),
                        absl::StrCat(prefix, ": training failed: ", trained.status().message()));
  }
  const predictor::BaseModel& model = **trained;
  TrialTiming timing;
  timing.task = task.name;
  timing.trial = trial;
  timing.train_archs = static_cast<int>(data.archs.size());
  timing.train_seconds = SecondsSince(train_start);
  log_ << absl::StrFormat("%s: trained on %d source devices, %d architectures, %d epochs in %.1f s  [elapsed %s]\n",
                          prefix, nsrc, data.archs.size(), train.epochs, timing.train_seconds,
                          Elapsed(start_));
  log_.flush();

  auto eval_start = Clock::now();
  std::vector<const std::vector<double>*> source_ptrs;
  for (const auto& c : source_columns) source_ptrs.push_back(&c);
  std::vector<double> k20_spearman;
  const int report_k = *std::max_element(options_.ks.begin(), options_.ks.end());
  // The descriptor map's teachers: every source with its descriptor and head.
  std::vector<predictor::DescribedHead> described;
  if (options_.descriptor) {
    for (const std::string& s : task.sources) {
      const predictor::DeviceHead* h = model.SourceHead(s);
      std::vector<double> theta(h->z);
      theta.push_back(h->b);
      described.push_back({s, descriptors_[s], std::move(theta)});
    }
  }
  for (const std::string& target : task.targets) {
    const int col = table.data.DeviceColumn(target);
    const std::vector<int> measured = table.MeasuredRows(col);
    const int n = static_cast<int>(measured.size());
    std::vector<core::Architecture> candidates;
    std::vector<double> truth;
    candidates.reserve(n);
    truth.reserve(n);
    for (int r : measured) {
      candidates.push_back(table.data.archs[r]);
      truth.push_back(table.data.at(r, col));
    }
    std::vector<double> pred(n);
    std::optional<predictor::DescriptorPrior> descriptor_prior;
    if (options_.descriptor) {
      descriptor_prior =
          predictor::FitDescriptorPrior(model, descriptors_[target], described, options_.adapt);
      CompareZeroShot(task, trial, target, model, descriptor_prior, candidates, measured, truth);
    }
    for (const Plan& p : plan_) {
      if (p.k >= n) {
        return absl::FailedPreconditionError(absl::StrCat(
            task.name, ": target ", target, " has ", n, " measurements, too few for k=", p.k));
      }
      // Which k: from architecture strings only (Suggest) or uniformly at random.
      std::vector<int> picked;
      if (p.selection == Selection::kSuggest) {
        picked = model.Suggest(candidates, {}, p.k);
      } else {
        std::mt19937_64 rng = Rng(seed, {task.name, "random", target, absl::StrCat(p.k)});
        picked = Draw(n, p.k, rng);
      }
      if (static_cast<int>(picked.size()) != p.k) {
        return absl::InternalError(absl::StrCat(prefix, ": ", target, ": selection gave ",
                                                picked.size(), " of ", p.k, " samples"));
      }
      std::vector<char> is_sample(n, 0);
      std::vector<predictor::Observation> obs;
      std::vector<int> sample_rows;
      std::vector<double> sample_latency, sample_flops;
      std::vector<std::vector<double>> sample_counts;
      for (int i : picked) {
        is_sample[i] = 1;
        obs.push_back(predictor::Observation{candidates[i], truth[i]});
        sample_rows.push_back(measured[i]);
        sample_latency.push_back(truth[i]);
        sample_flops.push_back(table.flops[measured[i]]);
        sample_counts.push_back(table.counts[measured[i]]);
      }
      // The service's path: Adapt on the samples, Predict the rest.
      auto adapt_start = Clock::now();
      absl::StatusOr<predictor::DeviceHead> head = model.Adapt(obs, options_.adapt);
      const double adapt_seconds = SecondsSince(adapt_start);
      if (!head.ok()) {
        return absl::Status(head.status().code(), absl::StrCat(prefix, ": ", target,
                                                               ": adapt failed: ",
                                                               head.status().message()));
      }
      report_->adapt_timings.push_back({p.k, adapt_seconds});
      model.Predict(*head, candidates, pred.data());

      std::vector<int> eval_rows;
      std::vector<double> eval_truth, eval_latpred, eval_flops, eval_counts;
      eval_rows.reserve(n);
      const LinearFit flops_fit = FitLeastSquares(sample_flops, sample_latency);
      const RidgeFit count_fit = FitRidge(sample_counts, sample_latency);
      for (int i = 0; i < n; ++i) {
        if (is_sample[i]) continue;
        eval_rows.push_back(measured[i]);
        eval_truth.push_back(truth[i]);
        eval_latpred.push_back(pred[i]);
        eval_flops.push_back(flops_fit(table.flops[measured[i]]));
        eval_counts.push_back(count_fit(table.counts[measured[i]]));
      }
      int chosen = -1;
      std::vector<double> eval_nearest =
          NearestSourcePredict(source_ptrs, sample_rows, sample_latency, eval_rows, &chosen);

      TargetResult base;
      base.task = task.name;
      base.trial = trial;
      base.target = target;
      base.k = p.k;
      base.selection = p.selection;
      base.evaluated = static_cast<int>(eval_truth.size());
      TargetResult r = base;
      r.method = Method::kLatpred;
      r.metrics = Score(eval_truth, eval_latpred);
      if (head->fit.samples >= 3) r.reported_loo_mape = head->fit.loo_mape;
      const double factor = predictor::IntervalFactor(head->fit, 0.8);
      if (factor > 0) {
        int inside = 0;
        for (size_t i = 0; i < eval_truth.size(); ++i) {
          inside += eval_truth[i] >= eval_latpred[i] / factor &&
                    eval_truth[i] <= eval_latpred[i] * factor;
        }
        r.coverage80 = inside / static_cast<double>(eval_truth.size());
      }
      report_->results.push_back(r);
      if (p.k == report_k && p.selection == report_->main_selection) {
        k20_spearman.push_back(ZeroIfNan(r.metrics.spearman));
      }
      if (options_.descriptor && p.selection == report_->main_selection) {
        DescriptorResult d;
        d.task = task.name;
        d.trial = trial;
        d.target = target;
        d.k = p.k;
        d.learned = descriptor_prior.has_value();
        d.spearman_without = ZeroIfNan(r.metrics.spearman);
        d.mape_without = r.metrics.mape;
        d.spearman_with = d.spearman_without;
        d.mape_with = d.mape_without;
        if (descriptor_prior) {
          absl::StatusOr<predictor::DeviceHead> with =
              model.Adapt(obs, options_.adapt, &*descriptor_prior);
          if (!with.ok()) return with.status();
          std::vector<double> with_pred(n), with_eval;
          model.Predict(*with, candidates, with_pred.data());
          for (int i = 0; i < n; ++i) {
            if (!is_sample[i]) with_eval.push_back(with_pred[i]);
          }
          const Metrics m = Score(eval_truth, with_eval);
          d.spearman_with = ZeroIfNan(m.spearman);
          d.mape_with = m.mape;
          d.descriptor_weight = with->fit.descriptor_weight;
        }
        report_->descriptor_results.push_back(d);
      }
      if (p.selection == report_->main_selection) {
        for (const std::string& part : options_.ablate) {
          predictor::AdaptOptions without = options_.adapt;
          without.disabled_parts.push_back(part);
          absl::StatusOr<predictor::DeviceHead> ablated = model.Adapt(obs, without);
          if (!ablated.ok()) return ablated.status();
          std::vector<double> ablated_pred(n), ablated_eval;
          model.Predict(*ablated, candidates, ablated_pred.data());
          for (int i = 0; i < n; ++i) {
            if (!is_sample[i]) ablated_eval.push_back(ablated_pred[i]);
          }
          report_->ablations.push_back({task.name, trial, target, p.k, part,
                                        ZeroIfNan(core::Spearman(eval_truth, ablated_eval))});
        }
      }
      r = base;
      r.method = Method::kFlops;
      r.metrics = Score(eval_truth, eval_flops);
      report_->results.push_back(r);
      r = base;
      r.method = Method::kNearestSource;
      r.metrics = Score(eval_truth, eval_nearest);
      if (chosen >= 0) r.nearest_source = task.sources[chosen];
      report_->results.push_back(r);
      r = base;
      r.method = Method::kCountFit;
      r.metrics = Score(eval_truth, eval_counts);
      report_->results.push_back(r);
    }
  }
  timing.eval_seconds = SecondsSince(eval_start);
  report_->trial_timings.push_back(timing);
  log_ << absl::StrFormat(
      "%s: %d targets x %d settings evaluated in %.1f s; latpred Spearman at k=%d: %.3f  "
      "[elapsed %s]\n",
      prefix, task.targets.size(), plan_.size(), timing.eval_seconds, report_k,
      Mean(k20_spearman), Elapsed(start_));
  log_.flush();
  return absl::OkStatus();
}

}  // namespace

const char* SelectionName(Selection s) {
  return s == Selection::kSuggest ? "suggest" : "random";
}

const char* MethodName(Method m) {
  switch (m) {
    case Method::kLatpred:
      return "latpred";
    case Method::kFlops:
      return "flops_fit";
    case Method::kNearestSource:
      return "nearest_source";
    case Method::kCountFit:
      return "count_fit";
  }
  return "?";
}

const char* ProtocolName(Protocol p) {
  return p == Protocol::kGeneral ? "general" : "published";
}

const Aggregate* AccuracyReport::Find(const std::string& task, int k, Selection selection,
                                      Method method) const {
  for (const Aggregate& a : aggregates) {
    if (a.task == task && a.k == k && a.selection == selection && a.method == method) return &a;
  }
  return nullptr;
}

void AggregateResults(AccuracyReport* report) {
  report->aggregates.clear();
  // (task, k, selection, method) -> trial -> metric values over targets.
  struct Key {
    std::string task;
    int k;
    int selection;
    int method;
    bool operator<(const Key& o) const {
      return std::tie(task, k, selection, method) < std::tie(o.task, o.k, o.selection, o.method);
    }
  };
  std::map<Key, std::map<int, std::vector<Metrics>>> groups;
  std::vector<Key> order;
  for (const TargetResult& r : report->results) {
    Key key{r.task, r.k, static_cast<int>(r.selection), static_cast<int>(r.method)};
    if (!groups.count(key)) order.push_back(key);
    groups[key][r.trial].push_back(r.metrics);
  }
  for (const Key& key : order) {
    Aggregate a;
    a.task = key.task;
    a.k = key.k;
    a.selection = static_cast<Selection>(key.selection);
    a.method = static_cast<Method>(key.method);
    const auto& trials = groups[key];
    a.trials = static_cast<int>(trials.size());
    for (const auto& [trial, targets] : trials) {
      a.targets = static_cast<int>(targets.size());
      std::vector<double> rho, tau, within, mape;
      for (const Metrics& m : targets) {
        rho.push_back(ZeroIfNan(m.spearman));
        tau.push_back(ZeroIfNan(m.kendall));
        within.push_back(m.within10);
        mape.push_back(m.mape);
      }
      a.spearman.per_trial.push_back(Mean(rho));
      a.kendall.per_trial.push_back(Mean(tau));
      a.within10.per_trial.push_back(Mean(within));
      a.mape.per_trial.push_back(Mean(mape));
    }
    for (MeanStd* m : {&a.spearman, &a.kendall, &a.within10, &a.mape}) {
      m->mean = Mean(m->per_trial);
      m->std = StdDev(m->per_trial);
    }
    report->aggregates.push_back(std::move(a));
  }
  // Stable order: tasks as run, then k, selection, method.
  std::vector<std::string> task_order;
  for (const TaskSpec& t : report->tasks) task_order.push_back(t.name);
  auto task_rank = [&](const std::string& name) {
    auto it = std::find(task_order.begin(), task_order.end(), name);
    return static_cast<int>(it - task_order.begin());
  };
  std::stable_sort(report->aggregates.begin(), report->aggregates.end(),
                   [&](const Aggregate& p, const Aggregate& q) {
                     return std::make_tuple(task_rank(p.task), p.k, static_cast<int>(p.selection),
                                            static_cast<int>(p.method)) <
                            std::make_tuple(task_rank(q.task), q.k, static_cast<int>(q.selection),
                                            static_cast<int>(q.method));
                   });
}

absl::StatusOr<AccuracyReport> RunAccuracy(const AccuracyOptions& options, std::ostream& log) {
  AccuracyReport report;
  report.options = options;
  Runner runner(options, log, &report);
  absl::Status s = runner.Run();
  if (!s.ok()) return s;
  return report;
}

}  // namespace latpred::bench
