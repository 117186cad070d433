#include "latpred/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <iostream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "latpred/core/search_space.h"
#include "latpred/core/status_macros.h"
#include "latpred/metrics/metrics.h"
#include "latpred/store/store.h"
#include "job_queue.h"
#include "model_manager.h"
#include "model_registry.h"
#include "service.h"

namespace latpred::service {
namespace {

constexpr char kServiceName[] = "latpred.v1.LatencyPredictor";
constexpr int kMaxMessageBytes = 64 << 20;

// $XDG_DATA_HOME/latpred, else ~/.local/share/latpred, else ./latpred-data.
std::string DefaultDataDir() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg) {
    return absl::StrCat(xdg, "/latpred");
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home) {
    return absl::StrCat(home, "/.local/share/latpred");
  }
  return "latpred-data";
}

// The contents of a PEM file named by a flag.
absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag) {
  if (path.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  }
  std::ifstream in(path);
  std::stringstream pem;
  pem << in.rdbuf();
  if (!in || pem.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, " is not a readable PEM file"));
  }
  return pem.str();
}

// INVALID_ARGUMENT naming the flag of a limit out of its range.
absl::Status CheckLimits(const Limits& limits) {
  const struct {
    const char* flag;
    int64_t value;
    int64_t min;
  } checks[] = {
      {"--max-samples-per-device", limits.max_samples_per_device, 1},
      {"--max-labels", limits.max_labels, 0},
      {"--max-label-length", limits.max_label_length, 1},
      {"--max-features", limits.max_features, 0},
      {"--max-fit-samples", limits.max_fit_samples, 1},
  };
  for (const auto& check : checks) {
    if (check.value < check.min) {
      return absl::InvalidArgumentError(
          absl::StrCat(check.flag, " must be at least ", check.min, ", got ", check.value));
    }
  }
  return absl::OkStatus();
}

}  // namespace

struct Server::State {
  Options options;
  std::unique_ptr<store::Store> store;
  metrics::Metrics metrics{LATPRED_VERSION};
  std::unique_ptr<metrics::MetricsHttpServer> metrics_server;
  ModelRegistry registry;
  std::unique_ptr<ModelManager> manager;
  std::unique_ptr<JobQueue> jobs;
  std::unique_ptr<LatencyPredictorService> service;
  std::unique_ptr<grpc::Server> grpc_server;
  int port = 0;
  std::atomic<bool> ready{false};
  std::atomic<bool> stopping{false};
  absl::Mutex gauges_mu;  // serialises UpdateStoreGauges
  absl::Notification prepared;
  absl::Status prepare_status;  // written before `prepared` is notified
  std::thread preparer;
  std::thread syncer;
  absl::Mutex shutdown_mu;
  bool shut_down ABSL_GUARDED_BY(shutdown_mu) = false;

  // Imports the bundled data, then loads or trains every space's models. Replicas on
  // one database queue on a store lock here, so the first imports and trains and the
  // others load what it stored.
  absl::Status Prepare() {
    const auto waiting = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(std::unique_ptr<store::StoreLock> lock, store->Lock("prepare"));
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - waiting).count();
    if (waited > 1) {
      options.log(absl::StrCat("waited ", static_cast<int>(waited),
                               " s for another replica to prepare the models"));
    }
    RETURN_IF_ERROR(ImportBundled(*store, options.bundled_data_dir, options.exclude_devices,
                                  options.log));
    predictor::TrainOptions train = options.train;
    train.threads = options.threads;
    train.cancelled = [this] { return stopping.load(); };
    for (const std::string& space : core::SearchSpaceNames()) {
      RETURN_IF_ERROR(manager->LoadOrTrainBase(space, train));
      RETURN_IF_ERROR(manager->LoadHeads(space));
    }
    return absl::OkStatus();
  }

  // Polls the store for models and devices that other replicas stored, every
  // sync_interval_ms, until shutdown. Failures are logged (once a minute at most) and
  // retried: a store that is briefly unreachable must not stop serving.
  void SyncLoop() {
    auto last_error_log = std::chrono::steady_clock::now() - std::chrono::minutes(2);
    while (true) {
      {
        absl::MutexLock lock(&shutdown_mu);
        shutdown_mu.AwaitWithTimeout(absl::Condition(&shut_down),
                                     absl::Milliseconds(options.sync_interval_ms));
        if (shut_down) return;
      }
      if (options.metrics_port >= 0) UpdateStoreGauges();
      for (const std::string& space : core::SearchSpaceNames()) {
        absl::Status status = manager->Sync(space);
        if (!status.ok() && std::chrono::steady_clock::now() - last_error_log > std::chrono::minutes(1)) {
          options.log(absl::StrCat("sync with the store failed (will retry): ", status.message()));
          last_error_log = std::chrono::steady_clock::now();
        }
      }
    }
  }

  // Sets the devices and samples gauges from the store's totals (counts kept on write,
  // so this reads a few rows): after every write through this process, and on every
  // sync with the writes of other replicas. Serialised, so that the last update to run
  // read the newest totals. A scrape never reads the store.
  void UpdateStoreGauges() {
    absl::MutexLock lock(&gauges_mu);
    absl::StatusOr<store::StoreTotals> totals = store->Totals();
    if (!totals.ok()) return;
    metrics.SetDevices("source", totals->source_devices);
    metrics.SetDevices("registered", totals->registered_devices);
    for (const std::string& space : core::SearchSpaceNames()) {
      auto it = totals->samples.find(space);
      metrics.SetSamples(space, it == totals->samples.end() ? 0 : it->second);
    }
  }

  // Sets the model version gauges from the registry (memory only), before each scrape.
  void RefreshModelGauges(metrics::Metrics& m) {
    for (const auto& [key, head] : registry.Heads()) {
      if (head != nullptr && head->state != v1::MODEL_STATE_SOURCE) {
        m.SetModelVersion(key.first, key.second, head->version);
      }
    }
  }

  void SetServing(bool serving) {
    grpc::HealthCheckServiceInterface* health = grpc_server->GetHealthCheckService();
    if (health == nullptr) return;
    health->SetServingStatus(serving);
    health->SetServingStatus(kServiceName, serving);
  }
};

Server::Server(std::unique_ptr<State> state) : state_(std::move(state)) {}

Server::~Server() { Shutdown(); }

int Server::port() const { return state_->port; }

int Server::metrics_port() const {
  return state_->metrics_server ? state_->metrics_server->port() : -1;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Create(const Options& options) {
  auto state = std::make_unique<State>();
  state->options = options;
  Options& opts = state->options;
  if (!opts.log) opts.log = [](const std::string& line) { std::cerr << line << std::endl; };
  if (opts.data_dir.empty()) opts.data_dir = DefaultDataDir();
  if (opts.store_uri.empty()) opts.store_uri = opts.data_dir + "/latpred.db";
  if (opts.max_batch < 1) return absl::InvalidArgumentError("--max-batch must be at least 1");
  RETURN_IF_ERROR(CheckLimits(opts.limits));
  std::error_code ec;
  std::filesystem::create_directories(opts.data_dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create data directory ", opts.data_dir, ": ", ec.message()));
  }
  predictor::SetThreads(opts.threads);
  ASSIGN_OR_RETURN(state->store, store::OpenStore(opts.store_uri));
  opts.log(absl::StrCat("store: ", store::RedactStoreUri(opts.store_uri), " (schema v",
                        state->store->schema_version(), ")"));

  state->manager = std::make_unique<ModelManager>(state->store.get(), &state->registry,
                                                  &state->metrics, opts.log,
                                                  opts.limits.max_fit_samples, opts.adapt);
  state->jobs = std::make_unique<JobQueue>();
  ServiceContext context;
  context.store = state->store.get();
  context.registry = &state->registry;
  context.manager = state->manager.get();
  context.jobs = state->jobs.get();
  context.metrics = &state->metrics;
  context.max_batch = opts.max_batch;
  context.limits = opts.limits;
  context.ready = &state->ready;
  context.token = opts.token;
  context.token_for_reads = opts.token_for_reads;
  state->service = std::make_unique<LatencyPredictorService>(context);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!opts.tls_cert_file.empty() || !opts.tls_key_file.empty()) {
    ASSIGN_OR_RETURN(std::string cert, ReadPem(opts.tls_cert_file, "--tls-cert"));
    ASSIGN_OR_RETURN(std::string key, ReadPem(opts.tls_key_file, "--tls-key"));
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({key, cert});
    credentials = grpc::SslServerCredentials(ssl);
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort(opts.listen, credentials, &state->port);
  builder.RegisterService(state->service.get());
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  state->grpc_server = builder.BuildAndStart();
  if (state->grpc_server == nullptr || state->port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", opts.listen, " (address in use or not local?); try --listen ",
        "127.0.0.1:0 for a free port"));
  }
  state->SetServing(false);

  State* s = state.get();
  if (opts.metrics_port >= 0) {
    const std::string host = opts.listen.substr(0, opts.listen.rfind(':'));
    state->store->SetWriteListener([s] { s->UpdateStoreGauges(); });
    state->UpdateStoreGauges();
    state->metrics.SetRefresher([s](metrics::Metrics& m) { s->RefreshModelGauges(m); });
    ASSIGN_OR_RETURN(state->metrics_server,
                     metrics::MetricsHttpServer::Start(host.empty() ? "0.0.0.0" : host,
                                                       opts.metrics_port, &state->metrics));
  }
  state->preparer = std::thread([s] {
    absl::Status status = s->Prepare();
    if (status.ok()) {
      s->ready.store(true, std::memory_order_release);
      s->SetServing(true);
      if (s->options.sync_interval_ms > 0) s->syncer = std::thread([s] { s->SyncLoop(); });
    }
    s->prepare_status = status;
    s->prepared.Notify();
  });
  return std::unique_ptr<Server>(new Server(std::move(state)));
}

absl::Status Server::WaitUntilReady() {
  state_->prepared.WaitForNotification();
  return state_->prepare_status;
}

void Server::Wait() { state_->grpc_server->Wait(); }

void Server::Shutdown() {
  {
    absl::MutexLock lock(&state_->shutdown_mu);
    if (state_->shut_down) return;
    state_->shut_down = true;
  }
  state_->stopping.store(true);
  state_->SetServing(false);
  state_->grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (state_->preparer.joinable()) state_->preparer.join();
  if (state_->syncer.joinable()) state_->syncer.join();
  state_->jobs.reset();  // finishes queued adaptations before the store closes
  state_->metrics_server.reset();
}

}  // namespace latpred::service
