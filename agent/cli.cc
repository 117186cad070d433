#include "agent/cli.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/describe.h"
#include "agent/measure.h"
#include "agent/onboard.h"
#include "latpred/core/search_space.h"

namespace latpred::agent {
namespace {

constexpr char kUsage[] =
    "usage:\n"
    "  latpred-agent measure --space nb201|fbnet [--device cpu|cuda:N] "
    "[--batch-size B]\n"
    "                        [--threads T] [--max-runs N] [--min-seconds S] [--max-seconds S] "
    "(ARCH... | --file F)\n"
    "      prints CSV arch,latency_ms,spread_ms,runs (spread: interquartile "
    "range)\n"
    "  latpred-agent describe [--quick] [--no-references] [--device D] "
    "[--threads T]\n"
    "      prints the device descriptor as JSON\n"
    "  latpred-agent onboard --server HOST:PORT [--name NAME] [--space nb201] "
    "[--samples K]\n"
    "                        [--check N] [--spool FILE] [--quick] [--seed S] "
    "[--max-attempts N]\n"
    "                        [--device D] [--threads T] [--batch-size B] [--ca FILE]\n"
    "      --ca: CA certificate (PEM) of a TLS server; a token for a server that needs one\n"
    "      comes from $LATPRED_TOKEN_FILE or $LATPRED_TOKEN\n";

// --flag VALUE / --flag=VALUE / --switch, and positional arguments.
struct Args {
  std::map<std::string, std::string> flags;
  std::vector<std::string> positional;
};

const char* const kSwitches[] = {"--quick", "--no-references", "--help"};

absl::StatusOr<Args> ParseArgs(int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) {
      a.positional.push_back(s);
      continue;
    }
    const size_t eq = s.find('=');
    if (eq != std::string::npos) {
      a.flags[s.substr(0, eq)] = s.substr(eq + 1);
      continue;
    }
    bool is_switch = false;
    for (const char* sw : kSwitches) is_switch |= s == sw;
    if (is_switch) {
      a.flags[s] = "1";
    } else if (i + 1 < argc) {
      a.flags[s] = argv[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat(s, " needs a value"));
    }
  }
  return a;
}

absl::Status Int(const Args& a, const std::string& flag, int* out) {
  auto it = a.flags.find(flag);
  if (it == a.flags.end()) return absl::OkStatus();
  if (!absl::SimpleAtoi(it->second, out)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": not an integer: '", it->second, "'"));
  }
  return absl::OkStatus();
}

absl::Status Double(const Args& a, const std::string& flag, double* out) {
  auto it = a.flags.find(flag);
  if (it == a.flags.end()) return absl::OkStatus();
  if (!absl::SimpleAtod(it->second, out)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": not a number: '", it->second, "'"));
  }
  return absl::OkStatus();
}

std::string Str(const Args& a, const std::string& flag, const std::string& def) {
  auto it = a.flags.find(flag);
  return it == a.flags.end() ? def : it->second;
}

absl::Status MeasureFlags(const Args& a, MeasureOptions& m) {
  m.device = Str(a, "--device", m.device);
  for (auto s : {Int(a, "--batch-size", &m.batch_size), Int(a, "--threads", &m.threads),
                 Int(a, "--max-runs", &m.max_runs), Int(a, "--min-runs", &m.min_runs),
                 Int(a, "--warmup", &m.warmup), Double(a, "--max-seconds", &m.max_seconds),
                 Double(a, "--min-seconds", &m.min_seconds)}) {
    if (!s.ok()) return s;
  }
  if (m.batch_size < 1 || m.threads < 1 || m.max_runs < 1) {
    return absl::InvalidArgumentError("--batch-size, --threads and --max-runs must be >= 1");
  }
  return absl::OkStatus();
}

absl::Status CmdMeasure(const Args& a) {
  MeasureOptions m;
  if (auto s = MeasureFlags(a, m); !s.ok()) return s;
  auto space = core::GetSearchSpace(Str(a, "--space", "nb201"));
  if (!space.ok()) return space.status();
  std::vector<std::string> archs = a.positional;
  if (a.flags.count("--file")) {
    const std::string path = a.flags.at("--file");
    std::ifstream in(path);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
    std::string line;
    while (std::getline(in, line)) {
      std::string t(absl::StripAsciiWhitespace(line));
      if (!t.empty() && t[0] != '#') archs.push_back(t);
    }
  }
  if (archs.empty()) return absl::InvalidArgumentError("no architectures (ARCH... or --file F)");
  std::vector<core::Architecture> parsed;
  for (const auto& t : archs) {  // validate all before measuring any
    auto arch = (*space)->Parse(t);
    if (!arch.ok()) return arch.status();
    parsed.push_back(*arch);
  }
  // Groups of networks timed interleaved, so that the machine's drifts of speed do not
  // reorder them; each group's lines print as soon as it is done.
  bool header = false;
  for (const auto& [begin, end] : MeasureGroups(parsed.size())) {
    const std::vector<core::Architecture> group(parsed.begin() + begin, parsed.begin() + end);
    auto r = MeasureArchs(**space, group, m);
    if (!r.ok()) return r.status();
    if (!header) std::printf("arch,latency_ms,spread_ms,runs\n");
    header = true;
    for (size_t i = 0; i < group.size(); ++i) {
      std::printf("%s,%.4f,%.4f,%d\n", (*space)->Canonical(group[i]).c_str(), (*r)[i].median_ms,
                  (*r)[i].spread_ms, (*r)[i].runs);
    }
    std::fflush(stdout);
  }
  return absl::OkStatus();
}

absl::Status CmdDescribe(const Args& a) {
  DescribeOptions d;
  if (auto s = MeasureFlags(a, d.measure); !s.ok()) return s;
  d.quick = a.flags.count("--quick") > 0;
  d.references = a.flags.count("--no-references") == 0;
  std::fputs(DescriptorToJson(Describe(d)).c_str(), stdout);
  return absl::OkStatus();
}

absl::Status CmdOnboard(const Args& a) {
  OnboardOptions o;
  if (auto s = MeasureFlags(a, o.measure); !s.ok()) return s;
  o.server = Str(a, "--server", "");
  if (o.server.empty()) return absl::InvalidArgumentError("--server HOST:PORT is required");
  o.name = Str(a, "--name", "");
  o.ca_file = Str(a, "--ca", "");
  o.space = Str(a, "--space", "nb201");
  o.spool = Str(a, "--spool", "");
  o.quick = a.flags.count("--quick") > 0;
  int seed = 1;
  for (auto s : {Int(a, "--samples", &o.samples), Int(a, "--check", &o.check),
                 Int(a, "--max-attempts", &o.max_attempts), Int(a, "--seed", &seed),
                 Double(a, "--wait-seconds", &o.wait_seconds)}) {
    if (!s.ok()) return s;
  }
  o.seed = static_cast<uint64_t>(seed);
  return Onboard(o);
}

// INVALID_ARGUMENT naming the first flag that cmd does not take (a typo would otherwise
// be ignored silently).
absl::Status CheckFlags(const std::string& cmd, const Args& a) {
  static const std::set<std::string> kMeasure = {
      "--device", "--batch-size", "--threads", "--max-runs", "--min-runs",
      "--warmup", "--max-seconds", "--min-seconds", "--help"};
  static const std::map<std::string, std::set<std::string>> kOwn = {
      {"measure", {"--space", "--file"}},
      {"describe", {"--quick", "--no-references"}},
      {"onboard",
       {"--server", "--name", "--space", "--samples", "--check", "--spool", "--quick", "--seed",
        "--max-attempts", "--wait-seconds", "--ca"}}};
  const auto own = kOwn.find(cmd);
  for (const auto& [flag, value] : a.flags) {
    if (kMeasure.count(flag) || (own != kOwn.end() && own->second.count(flag))) continue;
    return absl::InvalidArgumentError(
        absl::StrCat("unknown flag ", flag, " for '", cmd, "' (latpred-agent --help lists them)"));
  }
  return absl::OkStatus();
}

}  // namespace

int RunAgent(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "help") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  auto args = ParseArgs(argc, argv, 2);
  absl::Status s;
  if (!args.ok()) {
    s = args.status();
  } else if (args->flags.count("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  } else if (cmd != "measure" && cmd != "describe" && cmd != "onboard") {
    std::fprintf(stderr, "latpred-agent: unknown command '%s'\n%s", cmd.c_str(), kUsage);
    return 2;
  } else if (s = CheckFlags(cmd, *args); !s.ok()) {
  } else if (cmd == "measure") {
    s = CmdMeasure(*args);
  } else if (cmd == "describe") {
    s = CmdDescribe(*args);
  } else if (cmd == "onboard") {
    s = CmdOnboard(*args);
  } else {
    std::fprintf(stderr, "latpred-agent: unknown command '%s'\n%s", cmd.c_str(), kUsage);
    return 2;
  }
  if (!s.ok()) {
    std::fprintf(stderr, "latpred-agent %s: %s\n", cmd.c_str(), s.ToString().c_str());
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return 0;
}

}  // namespace latpred::agent
