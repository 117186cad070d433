#include "agent/describe.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "latpred/core/reference_archs.h"
#include "latpred/core/search_space.h"

#ifdef LATPRED_WITH_PAPI
#include <papi.h>
#endif

namespace latpred::agent {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

volatile uint64_t g_sink;

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown";
}

// PAPI counters over `workload`, normalised per instruction. Sets
// available/reason.
void PapiCounters(const std::function<void()>& workload, Descriptor& d) {
#ifndef LATPRED_WITH_PAPI
  (void)workload;
  d.papi_available = false;
  d.papi_reason = "built without PAPI (LATPRED_WITH_PAPI=OFF or libpapi-dev not found)";
#else
  const int init = PAPI_library_init(PAPI_VER_CURRENT);
  if (init != PAPI_VER_CURRENT) {
    d.papi_reason =
        absl::StrCat("PAPI_library_init: ", init > 0 ? "version mismatch" : PAPI_strerror(init));
    return;
  }
  const PAPI_component_info_t* info = PAPI_get_component_info(0);
  if (info != nullptr && info->disabled) {
    d.papi_reason =
        absl::StrCat("PAPI component ", info->name, " disabled: ", info->disabled_reason);
    return;
  }
  if (PAPI_num_cmp_hwctrs(0) <= 0) {
    d.papi_reason = "PAPI reports no hardware counters";
    return;
  }
  int set = PAPI_NULL;
  int rc = PAPI_create_eventset(&set);
  if (rc != PAPI_OK) {
    d.papi_reason = absl::StrCat("PAPI_create_eventset: ", PAPI_strerror(rc));
    return;
  }
  struct Event {
    int code;
    const char* name;
  };
  const Event wanted[] = {{PAPI_TOT_INS, "instructions"}, {PAPI_TOT_CYC, "cycles"},
                          {PAPI_L1_DCM, "l1d_misses"},    {PAPI_L2_TCM, "l2_misses"},
                          {PAPI_L3_TCM, "l3_misses"},     {PAPI_BR_MSP, "branch_mispredicts"}};
  std::vector<const Event*> added;
  std::string ins_error = "failed";
  for (const Event& e : wanted) {
    rc = PAPI_add_event(set, e.code);
    if (rc == PAPI_OK) {
      added.push_back(&e);
    } else {
      d.unavailable.push_back({absl::StrCat("papi:", e.name), PAPI_strerror(rc)});
      if (e.code == PAPI_TOT_INS) ins_error = PAPI_strerror(rc);
    }
  }
  if (added.empty() || added[0]->code != PAPI_TOT_INS) {
    d.papi_reason = absl::StrCat(
        "PAPI_add_event(PAPI_TOT_INS): ", ins_error,
        info != nullptr ? absl::StrCat(" (component ", info->name, ": ", info->num_cntrs,
                                       " counters", info->disabled_reason[0] ? ", " : "",
                                       info->disabled_reason, "; no usable PMU, e.g. in a VM)")
                        : "");
    PAPI_cleanup_eventset(set);
    PAPI_destroy_eventset(&set);
    return;
  }
  rc = PAPI_start(set);
  if (rc != PAPI_OK) {
    d.papi_reason = absl::StrCat("PAPI_start: ", PAPI_strerror(rc));
    PAPI_cleanup_eventset(set);
    PAPI_destroy_eventset(&set);
    return;
  }
  workload();
  std::vector<long long> values(added.size());
  rc = PAPI_stop(set, values.data());
  PAPI_cleanup_eventset(set);
  PAPI_destroy_eventset(&set);
  if (rc != PAPI_OK || values[0] <= 0) {
    d.papi_reason =
        absl::StrCat("PAPI_stop: ", rc != PAPI_OK ? PAPI_strerror(rc) : "no instructions counted");
    return;
  }
  d.papi_available = true;
  const double ins = static_cast<double>(values[0]);
  for (size_t i = 1; i < added.size(); ++i) {
    const bool cycles = added[i]->code == PAPI_TOT_CYC;
    d.features.push_back({cycles ? "papi:cycles_per_instruction"
                                 : absl::StrCat("papi:", added[i]->name, "_per_kilo_instruction"),
                          cycles ? values[i] / ins : 1000.0 * values[i] / ins, "counter",
                          cycles ? "cycles/instruction" : "per 1000 instructions"});
  }
#endif
}

}  // namespace

const std::vector<std::string>& Nb201ReferenceArchs() { return core::Nb201ReferenceArchs(); }

double MemoryReadBandwidthGBps(size_t bytes, int passes) {
  const size_t n = bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buf(new uint64_t[n]);
  for (size_t i = 0; i < n; ++i) buf[i] = i;  // touch every page
  double best = 0;
  for (int p = 0; p < std::max(1, passes); ++p) {
    const auto t0 = Clock::now();
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 3 < n; i += 4) {
      s0 += buf[i];
      s1 += buf[i + 1];
      s2 += buf[i + 2];
      s3 += buf[i + 3];
    }
    const double s = Seconds(t0);
    g_sink = s0 + s1 + s2 + s3;
    best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / s / 1e9);
  }
  return best;
}

double LoadLatencyNs(size_t working_set_bytes, size_t steps) {
  struct alignas(64) Node {
    Node* next;
    char pad[64 - sizeof(Node*)];
  };
  const size_t n = std::max<size_t>(2, working_set_bytes / sizeof(Node));
  std::unique_ptr<Node[]> nodes(new Node[n]);
  // Sattolo's algorithm: one random cycle through all nodes, defeating the
  // prefetcher.
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(42);
  for (size_t i = n - 1; i > 0; --i) {
    std::uniform_int_distribution<size_t> pick(0, i - 1);
    std::swap(order[i], order[pick(rng)]);
  }
  for (size_t i = 0; i < n; ++i) nodes[order[i]].next = &nodes[order[(i + 1) % n]];
  Node* p = &nodes[0];
  for (size_t i = 0; i < std::min(n, steps); ++i) p = p->next;  // warm the caches
  const auto t0 = Clock::now();
  for (size_t i = 0; i < steps; ++i) p = p->next;
  const double s = Seconds(t0);
  g_sink = reinterpret_cast<uintptr_t>(p);
  return s * 1e9 / static_cast<double>(steps);
}

Descriptor Describe(const DescribeOptions& options) {
  Descriptor d;
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  d.labels["hostname"] = host;
  d.labels["cpu_model"] = CpuModel();
  d.labels["torch_device"] = options.measure.device;
  d.labels["threads"] = absl::StrCat(options.measure.threads);
  d.labels["batch_size"] = absl::StrCat(options.measure.batch_size);
  d.labels["agent"] = "latpred-agent";
  d.labels["online_cpus"] = absl::StrCat(sysconf(_SC_NPROCESSORS_ONLN));

  const bool q = options.quick;
  d.features.push_back({"mem_read_bandwidth", MemoryReadBandwidthGBps(256u << 20, q ? 2 : 5),
                        "microbenchmark", "GB/s"});
  const struct {
    size_t bytes;
    const char* name;
  } sets[] = {
      {16u << 10, "16KiB"}, {256u << 10, "256KiB"}, {8u << 20, "8MiB"}, {256u << 20, "256MiB"}};
  for (const auto& s : sets) {
    d.features.push_back({absl::StrCat("load_latency_", s.name),
                          LoadLatencyNs(s.bytes, q ? 500000 : 4000000), "microbenchmark", "ns"});
  }
  d.features.push_back({"gemm_fp32_512_gflops",
                        GemmGflops(512, options.measure.threads, q ? 0.2 : 1.0), "microbenchmark",
                        "GFLOP/s"});
  if (CudaAvailable()) {
    d.labels["cuda_devices"] = absl::StrCat(CudaDeviceCount());
  } else {
    d.unavailable.push_back({"gpu_microbenchmarks", "CUDA is not available to LibTorch"});
  }

  // PAPI over one forward pass of the heaviest reference network (or a GEMM).
  const core::SearchSpace& nb201 = core::Nb201Space();
  auto arch = nb201.Parse(Nb201ReferenceArchs().back());
  MeasureOptions cpu = options.measure;
  cpu.device = "cpu";
  cpu.batch_size = 1;
  auto net = BuildNetwork(nb201, *arch, cpu);
  Network* n = net.ok() ? net->get() : nullptr;
  PapiCounters(
      [n] {
        for (int i = 0; i < 5 && n != nullptr; ++i) n->Forward();
      },
      d);
  if (!d.papi_available) d.unavailable.push_back({"papi_counters", d.papi_reason});

  if (options.references) {
    MeasureOptions m = options.measure;
    if (q) {
      m.warmup = 2;
      m.min_runs = 5;
      m.batch_runs = 5;
      m.max_runs = 30;
      m.max_seconds = 2;
    }
    // Timed interleaved, so that the references' ratios survive a drifting machine.
    const std::vector<std::string> texts = Nb201ReferenceArchs();
    std::vector<core::Architecture> archs;
    for (const std::string& text : texts) archs.push_back(*nb201.Parse(text));
    auto r = MeasureArchs(nb201, archs, m);
    for (size_t i = 0; i < texts.size(); ++i) {
      const std::string name = absl::StrCat("nb201:", texts[i]);
      if (!r.ok()) {
        d.unavailable.push_back({name, std::string(r.status().message())});
      } else {
        d.features.push_back({name, (*r)[i].median_ms, "reference_latency", "ms"});
      }
    }
  } else {
    d.unavailable.push_back({"reference_latencies", "skipped (--no-references)"});
  }
  return d;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string DescriptorToJson(const Descriptor& d) {
  std::string out = "{\n  \"labels\": {";
  bool first = true;
  for (const auto& [k, v] : d.labels) {
    absl::StrAppend(&out, first ? "\n" : ",\n", "    ", JsonString(k), ": ", JsonString(v));
    first = false;
  }
  out += "\n  },\n  \"features\": [";
  first = true;
  for (const Feature& f : d.features) {
    absl::StrAppend(
        &out, first ? "\n" : ",\n", "    {\"name\": ", JsonString(f.name),
        ", \"value\": ", std::isfinite(f.value) ? absl::StrFormat("%.6g", f.value) : "0",
        ", \"source\": ", JsonString(f.source), ", \"unit\": ", JsonString(f.unit), "}");
    first = false;
  }
  absl::StrAppend(&out, "\n  ],\n  \"papi\": {\"available\": ", d.papi_available ? "true" : "false",
                  ", \"reason\": ", JsonString(d.papi_reason), "},\n  \"unavailable\": [");
  first = true;
  for (const auto& [what, why] : d.unavailable) {
    absl::StrAppend(&out, first ? "\n" : ",\n", "    {\"what\": ", JsonString(what),
                    ", \"why\": ", JsonString(why), "}");
    first = false;
  }
  out += "\n  ]\n}\n";
  return out;
}

}  // namespace latpred::agent
