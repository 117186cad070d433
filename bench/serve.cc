// latpred-bench serve: PredictLatency throughput and latency against a running server,
// and the same predictor on the same batches in-process (no RPC) as the limit.
//
// For each space and batch size, `clients` threads (each with its own channel) call
// PredictLatency back to back for `seconds`; the bench prints architectures per second
// and RPC p50/p99. In-process, the same number of threads parse and predict the same
// batches with the models read from the server's store: served / in-process is how
// close the service runs to the hardware limit. Finally batch 1 runs again while
// another thread adapts a device in a loop, to show adaptation never stalls predictions.
#include "serve.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <optional>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "latpred/core/dataset.h"
#include "latpred/core/search_space.h"
#include "latpred/predictor/predictor.h"
#include "latpred/service/head_entry.h"
#include "latpred/store/store.h"
#include "latpred/v1/latpred.grpc.pb.h"

namespace latpred::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct ServeOptions {
  std::string server = "127.0.0.1:50051";
  std::string store;
  std::string data_dir = LATPRED_BUNDLED_DATA_DIR;
  std::string device = "pixel2";
  std::vector<std::string> spaces = {"nb201", "fbnet"};
  std::vector<int> batches = {1, 64, 1024};
  int clients = 8;
  double seconds = 5;
  bool adapt_loop = true;
};

const char kUsage[] =
    "usage: latpred-bench serve [--server HOST:PORT] [--store PATH] [--clients N]\n"
    "                           [--seconds S] [--batches 1,64,1024] [--spaces nb201,fbnet]\n"
    "                           [--device NAME] [--data-dir DIR] [--no-adapt-loop]\n"
    "  Calls PredictLatency from N concurrent clients against a running latpred-server\n"
    "  and runs the same predictor in-process on the same batches (models read from\n"
    "  --store, the server's SQLite file) to print the served / in-process ratio.\n";

// Parses `--flag value` / `--flag=value` pairs; false on a usage error.
bool ParseServeFlags(int argc, char** argv, ServeOptions* o) {
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i], value;
    if (arg == "--no-adapt-loop") { o->adapt_loop = false; continue; }
    if (arg == "--help" || arg == "-h") return false;
    size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "latpred-bench serve: %s needs a value\n", arg.c_str());
      return false;
    }
    std::replace(arg.begin(), arg.end(), '_', '-');
    if (arg == "--server") o->server = value;
    else if (arg == "--store") o->store = value;
    else if (arg == "--data-dir") o->data_dir = value;
    else if (arg == "--device") o->device = value;
    else if (arg == "--spaces") o->spaces = absl::StrSplit(value, ',', absl::SkipEmpty());
    else if (arg == "--clients" && absl::SimpleAtoi(value, &o->clients) && o->clients > 0) {}
    else if (arg == "--seconds" && absl::SimpleAtod(value, &o->seconds) && o->seconds > 0) {}
    else if (arg == "--batches") {
      o->batches.clear();
      for (const std::string& b : std::vector<std::string>(absl::StrSplit(value, ','))) {
        int n = 0;
        if (!absl::SimpleAtoi(b, &n) || n < 1) return false;
        o->batches.push_back(n);
      }
    } else {
      std::fprintf(stderr, "latpred-bench serve: unknown or bad flag %s\n", argv[i]);
      return false;
    }
  }
  return true;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(q * v.size()));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

struct RunResult {
  double archs_per_s = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  int64_t calls = 0;
  int64_t errors = 0;
};

// `clients` threads call PredictLatency with the requests in turn for `seconds`.
RunResult RunServed(const ServeOptions& o, const std::vector<v1::PredictLatencyRequest>& requests) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> latencies(o.clients);
  std::vector<int64_t> archs(o.clients, 0), errors(o.clients, 0);
  std::vector<std::thread> threads;
  for (int c = 0; c < o.clients; ++c) {
    threads.emplace_back([&, c] {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(64 << 20);
      args.SetInt("latpred.bench.client", c);  // a channel of its own per client
      auto channel = grpc::CreateCustomChannel(o.server, grpc::InsecureChannelCredentials(), args);
      auto stub = v1::LatencyPredictor::NewStub(channel);
      size_t next = c;
      while (!stop.load(std::memory_order_relaxed)) {
        const v1::PredictLatencyRequest& req = requests[next++ % requests.size()];
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        v1::PredictLatencyResponse resp;
        auto t0 = Clock::now();
        grpc::Status st = stub->PredictLatency(&ctx, req, &resp);
        latencies[c].push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (st.ok()) archs[c] += req.archs_size();
        else ++errors[c];
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  stop = true;
  for (auto& t : threads) t.join();
  RunResult r;
  std::vector<double> all;
  for (int c = 0; c < o.clients; ++c) {
    all.insert(all.end(), latencies[c].begin(), latencies[c].end());
    r.archs_per_s += archs[c] / o.seconds;
    r.errors += errors[c];
  }
  r.calls = static_cast<int64_t>(all.size());
  r.p50_ms = Percentile(all, 0.5);
  r.p99_ms = Percentile(all, 0.99);
  return r;
}

// The same work in-process: HeadEntry::Predict, the service's own prediction code, on
// the same requests from the same number of threads, with no RPC.
RunResult RunInProcess(const ServeOptions& o, const service::HeadEntry& entry,
                       const std::vector<v1::PredictLatencyRequest>& requests) {
  std::atomic<bool> stop{false};
  std::vector<int64_t> archs(o.clients, 0), errors(o.clients, 0);
  std::vector<std::thread> threads;
  for (int c = 0; c < o.clients; ++c) {
    threads.emplace_back([&, c] {
      size_t next = c;
      std::vector<double> out;
      while (!stop.load(std::memory_order_relaxed)) {
        const v1::PredictLatencyRequest& req = requests[next++ % requests.size()];
        out.resize(req.archs_size());
        if (entry.Predict(req.archs(), out.data()).ok()) archs[c] += req.archs_size();
        else ++errors[c];
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  stop = true;
  for (auto& t : threads) t.join();
  RunResult r;
  for (int c = 0; c < o.clients; ++c) {
    r.archs_per_s += archs[c] / o.seconds;
    r.errors += errors[c];
  }
  return r;
}

// Requests of `batch` architectures drawn from the bundled table of the space.
std::vector<v1::PredictLatencyRequest> MakeRequests(const ServeOptions& o,
                                                    const core::LatencyTable& table, int batch) {
  std::mt19937 rng(1);
  std::vector<v1::PredictLatencyRequest> out(std::max(1, std::min(64, 65536 / batch)));
  for (auto& req : out) {
    req.set_device(o.device);
    req.set_space(std::string(table.space->name()));
    for (int i = 0; i < batch; ++i) req.add_archs(table.canonical[rng() % table.rows()]);
  }
  return out;
}

}  // namespace

int RunServeBench(int argc, char** argv) {
  ServeOptions o;
  if (!ParseServeFlags(argc, argv, &o)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (o.store.empty()) {
    const char* home = std::getenv("HOME");
    o.store = std::string(home ? home : ".") + "/.local/share/latpred/latpred.db";
  }
  auto store = store::OpenStore(o.store);
  if (!store.ok()) {
    std::fprintf(stderr, "latpred-bench serve: %s\n", std::string(store.status().message()).c_str());
    return 1;
  }
  std::printf("latpred-bench serve: %d clients, %.1f s per run, server %s, device %s\n",
              o.clients, o.seconds, o.server.c_str(), o.device.c_str());
  std::printf("%-6s %6s %14s %10s %10s %16s %8s %12s %12s\n", "space", "batch",
              "served arch/s", "p50 ms", "p99 ms", "in-process/s", "ratio", "served us/a",
              "in-proc us/a");
  std::printf("(us/a: machine microseconds per architecture, all %u cores)\n",
              std::max(1u, std::thread::hardware_concurrency()));
  for (const std::string& space_name : o.spaces) {
    auto space = core::GetSearchSpace(space_name);
    auto record = space.ok() ? (*store)->GetLatestModel("", space_name)
                             : absl::StatusOr<std::optional<store::ModelRecord>>(space.status());
    if (!record.ok() || !record->has_value()) {
      std::fprintf(stderr, "latpred-bench serve: no %s base model in %s\n", space_name.c_str(),
                   o.store.c_str());
      return 1;
    }
    auto model = predictor::BaseModel::Deserialize(**space, (*record)->blob);
    if (!model.ok()) {
      std::fprintf(stderr, "latpred-bench serve: %s\n", std::string(model.status().message()).c_str());
      return 1;
    }
    // A source device's head, else the device's adapted head from the store.
    std::optional<predictor::DeviceHead> head;
    if (const predictor::DeviceHead* source = (*model)->SourceHead(o.device)) head = *source;
    if (!head.has_value()) {
      auto adapted = (*store)->GetLatestModel(o.device, space_name);
      if (adapted.ok() && adapted->has_value()) {
        auto fitted = predictor::DeviceHead::Deserialize((*adapted)->blob);
        if (fitted.ok()) head = *std::move(fitted);
      }
    }
    if (!head.has_value()) {
      std::fprintf(stderr,
                   "latpred-bench serve: %s has neither a %s source head nor an adapted one in %s\n",
                   o.device.c_str(), space_name.c_str(), o.store.c_str());
      return 1;
    }
    auto table = core::ReadLatencyTable(o.data_dir + "/help/" + space_name + "_latency.csv", **space);
    if (!table.ok()) {
      std::fprintf(stderr, "latpred-bench serve: %s\n", std::string(table.status().message()).c_str());
      return 1;
    }
    // The head as the server holds it (its latency table included).
    const std::shared_ptr<const service::HeadEntry> entry = service::MakeHeadEntry(
        service::BaseEntry{*model, (*record)->version}, *std::move(head), 0,
        v1::MODEL_STATE_NONE);
    for (int batch : o.batches) {
      auto requests = MakeRequests(o, *table, batch);
      RunResult served = RunServed(o, requests);
      RunResult local = RunInProcess(o, *entry, requests);
      // Machine time per architecture (all cores): what prediction itself costs, and
      // what serving it costs (gRPC, protobuf and the client threads included).
      const double ratio = served.archs_per_s / local.archs_per_s;
      const double cores = std::max(1u, std::thread::hardware_concurrency());
      std::printf("%-6s %6d %14.0f %10.3f %10.3f %16.0f %8.2f %12.3f %12.3f%s\n",
                  space_name.c_str(), batch, served.archs_per_s, served.p50_ms, served.p99_ms,
                  local.archs_per_s, ratio, 1e6 * cores / served.archs_per_s,
                  1e6 * cores / local.archs_per_s,
                  served.errors || local.errors ? "  (errors!)" : "");
      if (batch == 1 && space_name == o.spaces.front()) {
        ServeOptions single = o;
        single.clients = 1;
        RunResult one = RunServed(single, requests);
        std::printf("%-6s %6d %14.0f %10.3f %10.3f   (one client)\n", space_name.c_str(), batch,
                    one.archs_per_s, one.p50_ms, one.p99_ms);
      }
    }
  }
  if (o.adapt_loop) {
    // Batch 1 with and without a device being adapted over and over in the background.
    auto space = core::GetSearchSpace(o.spaces.front());
    auto table = core::ReadLatencyTable(o.data_dir + "/help/" + o.spaces.front() + "_latency.csv", **space);
    auto requests = MakeRequests(o, *table, 1);
    auto channel = grpc::CreateChannel(o.server, grpc::InsecureChannelCredentials());
    auto stub = v1::LatencyPredictor::NewStub(channel);
    const std::string device = "latpred-bench-adapt-loop";
    {
      grpc::ClientContext ctx;
      v1::RegisterDeviceRequest reg;
      reg.set_name(device);
      v1::RegisterDeviceResponse resp;
      stub->RegisterDevice(&ctx, reg, &resp);
      grpc::ClientContext ctx2;
      v1::SubmitSamplesRequest sub;
      sub.set_device(device);
      sub.set_space(o.spaces.front());
      for (int i = 0; i < 20; ++i) {
        auto* s = sub.add_samples();
        s->set_arch(table->canonical[i * 101]);
        s->set_latency_ms(1 + table->at(i * 101, 0));
      }
      v1::SubmitSamplesResponse sresp;
      stub->SubmitSamples(&ctx2, sub, &sresp);
    }
    RunResult quiet = RunServed(o, requests);
    std::atomic<bool> stop{false};
    std::atomic<int> adaptations{0};
    std::thread adapter([&] {
      while (!stop) {
        grpc::ClientContext ctx;
        v1::AdaptDeviceRequest req;
        req.set_device(device);
        req.set_space(o.spaces.front());
        v1::AdaptDeviceResponse resp;
        if (stub->AdaptDevice(&ctx, req, &resp).ok()) ++adaptations;
      }
    });
    RunResult busy = RunServed(o, requests);
    stop = true;
    adapter.join();
    std::printf("batch 1, %d clients: p99 %.3f ms without adaptation, %.3f ms with %d "
                "adaptations running alongside\n",
                o.clients, quiet.p99_ms, busy.p99_ms, adaptations.load());
  }
  return 0;
}

}  // namespace latpred::bench
