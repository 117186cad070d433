#include "agent/onboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "agent/describe.h"
#include "latpred/client/client.h"
#include "latpred/core/search_space.h"
#include "latpred/core/stats.h"

namespace latpred::agent {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Calls f until it succeeds or fails with something other than UNAVAILABLE,
// waiting 0.5 s, 1 s, 2 s, ... (at most 30 s) between attempts.
template <typename F>
auto WithRetry(const std::string& what, int max_attempts, F f) -> decltype(f()) {
  double delay = 0.5;
  for (int attempt = 1;; ++attempt) {
    auto r = f();
    if (r.ok() || r.status().code() != absl::StatusCode::kUnavailable || attempt >= max_attempts) {
      return r;
    }
    std::fprintf(stderr, "latpred-agent: %s: %s; retrying in %.1f s (attempt %d/%d)\n",
                 what.c_str(), std::string(r.status().message()).c_str(), delay, attempt,
                 max_attempts);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int>(delay * 1000)));
    delay = std::min(delay * 2, 30.0);
  }
}

latpred::v1::FeatureSource SourceOf(const std::string& s) {
  if (s == "counter") return latpred::v1::FEATURE_SOURCE_COUNTER;
  if (s == "reference_latency") return latpred::v1::FEATURE_SOURCE_REFERENCE_LATENCY;
  return latpred::v1::FEATURE_SOURCE_MICROBENCHMARK;
}

std::string Hostname() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host[0] ? host : "localhost";
}

}  // namespace

std::string DefaultDeviceName(const std::string& device) {
  std::string suffix;
  for (char c : device) {
    if (c != ':') suffix += c;
  }
  return absl::StrCat(Hostname(), "-", suffix);
}

std::string DefaultSpoolPath(const std::string& name, const std::string& space) {
  std::string base;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg) {
    base = xdg;
  } else {
    const char* home = std::getenv("HOME");
    base = absl::StrCat(home ? home : ".", "/.local/share");
  }
  return absl::StrCat(base, "/latpred/agent-spool-", name, "-", space, ".csv");
}

absl::StatusOr<Spool> LoadSpool(const std::string& path) {
  Spool out;
  std::ifstream in(path);
  if (!in) return out;  // no spool yet
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ',');
    Measurement m;
    // A torn last line (crash while appending) or the header is skipped.
    if (f.size() < 4 || f.size() > 5 || !absl::SimpleAtod(f[1], &m.median_ms) ||
        !absl::SimpleAtod(f[2], &m.spread_ms) || !absl::SimpleAtoi(f[3], &m.runs)) {
      continue;
    }
    if (f.size() == 5 && f[4] == "sample" && !out.measurements.count(f[0])) {
      out.samples.push_back(f[0]);
    }
    out.measurements[f[0]] = m;
  }
  return out;
}

absl::Status AppendSpool(const std::string& path, const std::string& arch, const Measurement& m,
                         const std::string& role) {
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  const bool fresh = !std::filesystem::exists(path);
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot open spool ", path));
  std::string text = fresh ? "arch,latency_ms,spread_ms,runs,role\n" : "";
  absl::StrAppend(&text, arch, ",",
                  absl::StrFormat("%.6f,%.6f,%d", m.median_ms, m.spread_ms, m.runs), ",", role,
                  "\n");
  const ssize_t n = write(fd, text.data(), text.size());
  fsync(fd);
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    return absl::InternalError(absl::StrCat("short write to spool ", path));
  }
  return absl::OkStatus();
}

absl::Status Onboard(const OnboardOptions& o) {
  const auto t_start = Clock::now();
  auto space_or = core::GetSearchSpace(o.space);
  if (!space_or.ok()) return space_or.status();
  const core::SearchSpace& space = **space_or;
  const std::string name = o.name.empty() ? DefaultDeviceName(o.measure.device) : o.name;
  const std::string spool = o.spool.empty() ? DefaultSpoolPath(name, o.space) : o.spool;
  if (o.samples < 1) return absl::InvalidArgumentError("--samples must be >= 1");

  auto spool_or = LoadSpool(spool);
  if (!spool_or.ok()) return spool_or.status();
  std::map<std::string, Measurement> spooled = spool_or->measurements;
  std::fprintf(stderr, "latpred-agent: device %s, spool %s (%zu measurements)\n", name.c_str(),
               spool.c_str(), spooled.size());

  client::ClientOptions copts;
  copts.target = o.server;
  copts.ca_file = o.ca_file;
  // The server needs a token for writes when it has one; like the CLI, the agent takes
  // it from $LATPRED_TOKEN_FILE or $LATPRED_TOKEN, never from its command line.
  auto token = client::TokenFromEnvironment();
  if (!token.ok()) return token.status();
  copts.token = *token;
  // WithRetry retries every call; the batch's request_id (below) makes that safe for
  // SubmitSamples, so the client need not retry it a second time inside.
  copts.submit_attempts = 1;
  auto client_or = client::Client::Connect(copts);
  if (!client_or.ok()) return client_or.status();
  client::Client& client = **client_or;
  if (auto s = client.WaitUntilServing(absl::Seconds(o.wait_seconds)); !s.ok()) return s;

  // 1. Describe and register.
  std::fprintf(stderr, "latpred-agent: describing this machine%s...\n", o.quick ? " (quick)" : "");
  DescribeOptions dopts;
  dopts.quick = o.quick;
  dopts.measure = o.measure;
  const Descriptor d = Describe(dopts);
  latpred::v1::RegisterDeviceRequest reg;
  reg.set_name(name);
  for (const auto& [k, v] : d.labels) (*reg.mutable_labels())[k] = v;
  for (const Feature& f : d.features) {
    auto* pf = reg.add_features();
    pf->set_name(f.name);
    pf->set_value(f.value);
    pf->set_source(SourceOf(f.source));
    pf->set_unit(f.unit);
  }
  auto reg_r =
      WithRetry("RegisterDevice", o.max_attempts, [&] { return client.RegisterDevice(reg); });
  if (!reg_r.ok()) return reg_r.status();
  std::fprintf(stderr, "latpred-agent: registered %s (%s, %zu features)\n", name.c_str(),
               reg_r->created() ? "created" : "updated", d.features.size());

  // 2. Samples: the spool's when it already holds k of them (a resumed
  // onboarding whose samples may already be on the server, which would then
  // suggest other ones), else the server's suggestions.
  std::vector<std::string> sample_archs;
  if (static_cast<int>(spool_or->samples.size()) >= o.samples) {
    sample_archs.assign(spool_or->samples.begin(), spool_or->samples.begin() + o.samples);
    std::fprintf(stderr, "latpred-agent: resuming with %d spooled samples\n", o.samples);
  } else {
    latpred::v1::SuggestSamplesRequest sug;
    sug.set_device(name);
    sug.set_space(o.space);
    sug.set_k(o.samples);
    auto sug_r =
        WithRetry("SuggestSamples", o.max_attempts, [&] { return client.SuggestSamples(sug); });
    if (!sug_r.ok()) return sug_r.status();
    for (const auto& a : sug_r->archs()) {
      auto arch = space.Parse(a);
      if (!arch.ok()) return arch.status();
      sample_archs.push_back(space.Canonical(*arch));
    }
  }

  // Measures (or reuses) archs; appends new measurements to the spool. The ones to
  // measure are timed interleaved in groups (MeasureGroups), so that the machine's
  // drifts of speed scale a group alike instead of skewing single samples; each group
  // is spooled as soon as it is done.
  int reused = 0, measured = 0;
  auto measure_all = [&](const std::vector<std::string>& archs,
                         const char* what) -> absl::StatusOr<std::vector<Measurement>> {
    std::vector<size_t> todo;
    for (size_t i = 0; i < archs.size(); ++i) {
      if (spooled.count(archs[i])) {
        ++reused;
      } else {
        todo.push_back(i);
      }
    }
    for (const auto& [begin, end] : MeasureGroups(todo.size())) {
      std::vector<core::Architecture> group;
      for (size_t j = begin; j < end; ++j) {
        auto arch = space.Parse(archs[todo[j]]);
        if (!arch.ok()) return arch.status();
        group.push_back(*std::move(arch));
      }
      MeasureOptions m = o.measure;
      const auto t0 = Clock::now();
      m.progress = [&, begin = begin, end = end](double done) {
        // Time per network so far, applied to the networks not measured yet.
        const double per_net = Since(t0) / std::max(done, 1e-3) / (end - begin);
        const double eta = per_net * ((1 - done) * (end - begin) + (todo.size() - end));
        const int bar = static_cast<int>(done * 20);
        std::fprintf(stderr, "\r[%s %zu-%zu/%zu] [%-20s] %3.0f%%  ETA %.0f s ", what, begin + 1,
                     end, todo.size(), std::string(bar, '#').c_str(), 100 * done, eta);
      };
      auto ms = MeasureArchs(space, group, m);
      std::fprintf(stderr, "\n");
      if (!ms.ok()) return ms.status();
      for (size_t j = begin; j < end; ++j) {
        const std::string& a = archs[todo[j]];
        const Measurement& r = (*ms)[j - begin];
        if (auto s = AppendSpool(spool, a, r, what); !s.ok()) return s;
        spooled[a] = r;
        ++measured;
        std::fprintf(stderr, "  %s %.3f ms (+-%.3f, %d runs)\n", a.c_str(), r.median_ms,
                     r.spread_ms, r.runs);
      }
    }
    std::vector<Measurement> out;
    for (const std::string& a : archs) out.push_back(spooled.at(a));
    return out;
  };

  auto sample_m = measure_all(sample_archs, "sample");
  if (!sample_m.ok()) return sample_m.status();

  // 3. Submit and adapt.
  latpred::v1::SubmitSamplesRequest sub;
  sub.set_device(name);
  sub.set_space(o.space);
  // One id for the batch, sent by every retry: a retry after an answer was lost (an
  // UNAVAILABLE "outcome unknown" included) stores nothing again.
  sub.set_request_id(client::NewRequestId());
  for (size_t i = 0; i < sample_archs.size(); ++i) {
    auto* s = sub.add_samples();
    s->set_arch(sample_archs[i]);
    s->set_latency_ms((*sample_m)[i].median_ms);
    s->set_repeats((*sample_m)[i].runs);
    s->set_spread_ms((*sample_m)[i].spread_ms);
  }
  auto sub_r =
      WithRetry("SubmitSamples", o.max_attempts, [&] { return client.SubmitSamples(sub); });
  if (!sub_r.ok()) return sub_r.status();
  std::fprintf(stderr, "latpred-agent: submitted %d samples (%lld stored)\n", sub_r->accepted(),
               static_cast<long long>(sub_r->sample_count()));
  latpred::v1::AdaptDeviceRequest ad;
  ad.set_device(name);
  ad.set_space(o.space);
  auto ad_r = WithRetry("AdaptDevice", o.max_attempts, [&] { return client.AdaptDevice(ad); });
  if (!ad_r.ok()) return ad_r.status();
  std::printf(
      "adapted: model_version=%lld state=%s fit_spearman=%.3f "
      "fit_mape=%.3f loo_mape=%.3f\n",
      static_cast<long long>(ad_r->model_version()),
      latpred::v1::ModelState_Name(ad_r->state()).c_str(), ad_r->fit().fit_spearman(),
      ad_r->fit().fit_mape(), ad_r->fit().loo_mape());
  for (const std::string& arch : ad_r->fit().set_aside()) {
    std::printf("set aside as a likely glitch (measure it again): %s\n", arch.c_str());
  }

  // 4. Check: random architectures not among the samples (deterministic by
  // --seed).
  if (o.check > 0) {
    std::set<std::string> taken(sample_archs.begin(), sample_archs.end());
    std::vector<std::string> check;
    std::mt19937_64 rng(o.seed);
    std::uniform_int_distribution<int> op(0, space.num_ops() - 1);
    for (int tries = 0; static_cast<int>(check.size()) < o.check && tries < 100000; ++tries) {
      core::Architecture a;
      for (int p = 0; p < space.num_positions(); ++p)
        a.ops.push_back(static_cast<uint8_t>(op(rng)));
      std::string c = space.Canonical(a);
      if (taken.insert(c).second) check.push_back(c);
    }
    auto check_m = measure_all(check, "check");
    if (!check_m.ok()) return check_m.status();
    latpred::v1::PredictLatencyRequest pr;
    pr.set_device(name);
    pr.set_space(o.space);
    for (const auto& a : check) pr.add_archs(a);
    auto pr_r =
        WithRetry("PredictLatency", o.max_attempts, [&] { return client.PredictLatency(pr); });
    if (!pr_r.ok()) return pr_r.status();
    std::vector<double> pred(pr_r->latency_ms().begin(), pr_r->latency_ms().end());
    std::vector<double> meas;
    std::printf("arch,predicted_ms,measured_ms\n");
    for (size_t i = 0; i < check.size(); ++i) {
      meas.push_back((*check_m)[i].median_ms);
      std::printf("%s,%.4f,%.4f\n", check[i].c_str(), i < pred.size() ? pred[i] : 0.0, meas[i]);
    }
    std::printf("spearman %.4f over %zu architectures\n", core::Spearman(pred, meas), check.size());
  }
  std::printf("reused %d spooled measurements, measured %d\n", reused, measured);
  std::printf("onboarding wall time %.1f s\n", Since(t_start));
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace latpred::agent
