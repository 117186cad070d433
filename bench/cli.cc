#include "latpred/bench/cli.h"
#include "serve.h"

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "latpred/bench/accuracy.h"
#include "latpred/bench/report.h"
#include "latpred/predictor/predictor.h"

#ifndef LATPRED_BENCH_DATA_DIR
#define LATPRED_BENCH_DATA_DIR "data"
#endif

ABSL_FLAG(std::string, protocol, "published",
          "published (the twelve tasks) or general (splits across collections and families)");
ABSL_FLAG(std::string, tasks, "all",
          "comma-separated task names (ND,NA,N1..N4,FD,FA,F1..F4), split names under "
          "--protocol general, or all");
ABSL_FLAG(std::string, k, "3,5,10,20", "comma-separated numbers of target samples");
ABSL_FLAG(int32_t, trials, 3, "trials per task (seeds seed, seed+1, ...)");
ABSL_FLAG(uint64_t, seed, 1, "first seed");
ABSL_FLAG(int32_t, epochs, 0, "training epochs (0: the predictor's default)");
ABSL_FLAG(int32_t, threads, 2, "predictor threads (0: all cores)");
ABSL_FLAG(std::string, selection, "",
          "suggest, random or both (default: both; suggest under --protocol general)");
ABSL_FLAG(std::string, out, "bench-out", "output directory");
ABSL_FLAG(std::string, data_dir, LATPRED_BENCH_DATA_DIR, "directory holding help/ and eagle/");
ABSL_FLAG(std::string, data, "",
          "custom task: CSV latency tables (index,arch,devices...), comma-separated");
ABSL_FLAG(std::string, space, "", "custom task: search space, nb201 or fbnet");
ABSL_FLAG(std::string, source, "", "custom task: source devices, comma-separated, or all");
ABSL_FLAG(std::string, target, "", "custom task: target devices, comma-separated, or all");
ABSL_FLAG(std::string, adapt_off, "",
          "comma-separated adaptation parts to switch off (embedding, additive, "
          "additive_costs, source_additive)");
ABSL_FLAG(bool, descriptor, false,
          "also adapt with each device's descriptor (its nb201 reference latencies), side by "
          "side with the same samples, and zero-shot");
ABSL_FLAG(std::string, ablate, "",
          "comma-separated adaptation parts to leave out one at a time, or all");
ABSL_FLAG(bool, each, false, "custom task: one task per target, its sources every other one");

namespace latpred::bench {
namespace {

struct Subcommand {
  const char* name;
  const char* summary;
  const char* usage;
  std::function<int(int, char**, std::ostream&, std::ostream&)> run;
};

constexpr char kAccuracyUsage[] = R"(usage: latpred-bench accuracy [flags]

Few-shot accuracy on unseen devices (docs/accuracy-benchmark.md): per task and trial,
trains one base model on the source devices' budget (512 nb201 / 800 fbnet archs per
device), then per target device and k picks k architectures (Suggest or random), adapts
on their latencies and predicts every other measured architecture. Baselines on the
same samples: FLOPs least-squares fit, nearest source device (reads the full source
column, rescaled by least squares), count fit (a cost per operation, least squares with
a small ridge).

flags (--a-b and --a_b are the same flag):
  --protocol published    published: the twelve tasks; general: splits whose targets
                          come from another collection or hardware family than their
                          sources (xc-help<-lb, xc-lb<-help, nb201 gpu-1080ti ...
                          embedded, fbnet f-gpu-1080ti ... f-raspi4; see bench/README.md),
                          summarised per split against the best baseline and written to
                          generalization.csv as well
  --tasks ND,NA,...|all   tasks to run (default all 12), or split names under
                          --protocol general (default all 22)
  --k 3,5,10,20           target samples
  --trials 3              trials (seeds seed .. seed+trials-1)
  --seed 1                first seed
  --epochs N              training epochs (default: the predictor's default)
  --threads 2             predictor threads (0: all cores)
  --selection both        suggest | random | both (both: main figures with suggest,
                          plus random at k=5 and 10 for comparison); the general
                          protocol's default is suggest
  --out bench-out         writes accuracy.csv, accuracy_targets.csv, accuracy.json,
                          accuracy.svg
  --data-dir DIR          bundled data (help/, eagle/)
  --adapt-off a,b         switch adaptation parts off, to measure what each adds:
                          embedding, additive, additive_costs, source_additive,
                          descriptor
  --ablate a,b|all        also adapt without each part in turn (same base model and
                          samples) and print what each part adds per k
  --descriptor            also adapt with each target's descriptor (its latencies on
                          the 10 nb201 reference architectures, the sources' teaching
                          the map), same samples, and zero-shot (k=0); writes
                          descriptor.csv. The descriptor's 10 latencies are extra to k.
custom task (replaces the standard tasks; named "custom"):
  --data FILE.csv[,MORE.csv] --space nb201|fbnet --source a,b|all --target c,d|all
  (all: every device of the files; a device in both lists is a target only; several
  files are joined on the architecture, and a file's path in --source or --target
  stands for every device of that file)
  --each                  one task per target, named after it, learned from every
                          source but itself: --source all --target all --each leaves
                          each device of the file out in turn
)";

absl::StatusOr<AccuracyOptions> AccuracyOptionsFromFlags() {
  AccuracyOptions o;
  const std::string protocol = absl::AsciiStrToLower(absl::GetFlag(FLAGS_protocol));
  if (protocol == "published") {
    o.protocol = Protocol::kPublished;
  } else if (protocol == "general") {
    o.protocol = Protocol::kGeneral;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--protocol must be published or general, got '", protocol, "'"));
  }
  const std::string tasks = absl::GetFlag(FLAGS_tasks);
  std::vector<std::string> names = ParseNameList(tasks);
  if (!(names.size() == 1 && absl::AsciiStrToLower(names[0]) == "all")) o.tasks = names;
  auto ks = ParseIntList("--k", absl::GetFlag(FLAGS_k));
  if (!ks.ok()) return ks.status();
  o.ks = *ks;
  o.trials = absl::GetFlag(FLAGS_trials);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.epochs = absl::GetFlag(FLAGS_epochs);
  o.threads = absl::GetFlag(FLAGS_threads);
  std::string sel = absl::AsciiStrToLower(absl::GetFlag(FLAGS_selection));
  if (sel.empty()) sel = o.protocol == Protocol::kGeneral ? "suggest" : "both";
  if (sel == "suggest") {
    o.selection = SelectionMode::kSuggest;
  } else if (sel == "random") {
    o.selection = SelectionMode::kRandom;
  } else if (sel == "both") {
    o.selection = SelectionMode::kBoth;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--selection must be suggest, random or both, got '", sel, "'"));
  }
  o.out_dir = absl::GetFlag(FLAGS_out);
  o.data_dir = absl::GetFlag(FLAGS_data_dir);
  o.custom_data = absl::GetFlag(FLAGS_data);
  o.custom_space = absl::GetFlag(FLAGS_space);
  o.custom_source = ParseNameList(absl::GetFlag(FLAGS_source));
  o.custom_target = ParseNameList(absl::GetFlag(FLAGS_target));
  o.custom_each = absl::GetFlag(FLAGS_each);
  if (o.custom_each && o.custom_data.empty()) {
    return absl::InvalidArgumentError("--each splits the custom task: it needs --data");
  }
  if (o.custom_data.empty() &&
      (!o.custom_space.empty() || !o.custom_source.empty() || !o.custom_target.empty())) {
    return absl::InvalidArgumentError("--space, --source and --target need --data");
  }
  if (!o.custom_data.empty() && o.protocol == Protocol::kGeneral) {
    return absl::InvalidArgumentError("--data runs the custom task: not with --protocol general");
  }
  if (!o.custom_data.empty() && !o.tasks.empty()) {
    return absl::InvalidArgumentError("--data runs the custom task: do not combine with --tasks");
  }
  if (absl::Status s = predictor::DisableParts(absl::GetFlag(FLAGS_adapt_off), &o.adapt); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--adapt-off: ", s.message()));
  }
  o.descriptor = absl::GetFlag(FLAGS_descriptor);
  const std::string ablate = absl::GetFlag(FLAGS_ablate);
  if (absl::AsciiStrToLower(ablate) == "all") {
    o.ablate = predictor::PartNames();
  } else if (!ablate.empty()) {
    predictor::AdaptOptions check;
    if (absl::Status s = predictor::DisableParts(ablate, &check); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--ablate: ", s.message()));
    }
    o.ablate = check.disabled_parts;
  }
  if (o.trials < 1) return absl::InvalidArgumentError("--trials must be >= 1");
  if (o.epochs < 0) return absl::InvalidArgumentError("--epochs must be >= 0");
  if (o.threads < 0) return absl::InvalidArgumentError("--threads must be >= 0");
  return o;
}

int RunAccuracyCommand(int argc, char** argv, std::ostream& out, std::ostream& err) {
  std::vector<std::string> args = {"latpred-bench accuracy"};
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h" || a == "--helpfull") {
      out << kAccuracyUsage;
      return 0;
    }
    args.push_back(NormalizeFlagSpelling(a));
  }
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(args.size()), cargs.data());
  if (positional.size() > 1) {
    err << "latpred-bench accuracy: unexpected argument '" << positional[1]
        << "' (see latpred-bench accuracy --help)\n";
    return 2;
  }
  absl::StatusOr<AccuracyOptions> options = AccuracyOptionsFromFlags();
  if (!options.ok()) {
    err << "latpred-bench accuracy: " << options.status().message() << "\n";
    return 2;
  }
  out << "latpred-bench accuracy: data " << options->data_dir << ", output " << options->out_dir
      << "\n";
  out.flush();
  absl::StatusOr<AccuracyReport> report = RunAccuracy(*options, out);
  if (!report.ok()) {
    err << "latpred-bench accuracy: " << report.status() << "\n";
    return 1;
  }
  PrintReport(*report, out);
  absl::Status written = WriteReport(*report, options->out_dir);
  if (!written.ok()) {
    err << "latpred-bench accuracy: " << written.message() << "\n";
    return 1;
  }
  out << "wrote " << options->out_dir << "/{accuracy.csv,accuracy_targets.csv,accuracy.json,"
      << "accuracy.svg" << (options->protocol == Protocol::kGeneral ? ",generalization.csv" : "")
      << "}\n";
  return 0;
}

const std::vector<Subcommand>& Subcommands() {
  static const std::vector<Subcommand>* cmds = new std::vector<Subcommand>{
      {"accuracy", "few-shot latency prediction accuracy on unseen devices (12 tasks, or the "
                   "generalisation splits)",
       kAccuracyUsage, RunAccuracyCommand},
      {"serve", "PredictLatency throughput and latency against a running server, with the "
                "in-process limit", "latpred-bench serve --help",
       [](int argc, char** argv, std::ostream&, std::ostream&) {
         return RunServeBench(argc - 2, argv + 2);
       }},
  };
  return *cmds;
}

void PrintUsage(std::ostream& out) {
  out << "usage: latpred-bench <subcommand> [flags]\n\nsubcommands:\n";
  for (const Subcommand& c : Subcommands()) {
    out << "  " << c.name << std::string(12 - std::min<size_t>(11, std::string(c.name).size()), ' ')
        << c.summary << "\n";
  }
  out << "\n`latpred-bench <subcommand> --help` describes its flags.\n";
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseIntList(const std::string& flag, const std::string& text) {
  std::vector<int> out;
  for (const std::string& item : ParseNameList(text)) {
    int v = 0;
    if (!absl::SimpleAtoi(item, &v) || v < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": '", item, "' is not a positive integer"));
    }
    out.push_back(v);
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, ": empty list"));
  return out;
}

std::vector<std::string> ParseNameList(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::string s(absl::StripAsciiWhitespace(part));
    if (!s.empty()) out.push_back(s);
  }
  return out;
}

std::string NormalizeFlagSpelling(const std::string& arg) {
  if (arg.size() < 3 || arg[0] != '-') return arg;
  size_t start = arg[1] == '-' ? 2 : 1;
  if (start == 2 && arg.size() == 2) return arg;  // "--"
  std::string out = arg;
  const size_t end = std::min(out.find('='), out.size());
  for (size_t i = start; i < end; ++i) {
    if (out[i] == '-') out[i] = '_';
  }
  return out;
}

int BenchMain(int argc, char** argv, std::ostream& out, std::ostream& err) {
  absl::SetProgramUsageMessage("latpred-bench <subcommand> [flags]; latpred-bench --help");
  if (argc < 2) {
    PrintUsage(err);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help" || cmd == "--helpfull") {
    PrintUsage(out);
    return 0;
  }
  for (const Subcommand& c : Subcommands()) {
    if (cmd == c.name) return c.run(argc, argv, out, err);
  }
  err << "latpred-bench: unknown subcommand '" << cmd << "'\n";
  PrintUsage(err);
  return 2;
}

}  // namespace latpred::bench
