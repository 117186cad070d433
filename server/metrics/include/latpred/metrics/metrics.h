// latpred's Prometheus metrics: one registry with every latpred_* family, and a small
// HTTP server that renders it at /metrics.
//
// The metric model is prometheus-cpp core; the transport is cpp-httplib, whose threads
// use ordinary stacks. prometheus-cpp's own Exposer (civetweb) starts threads with a
// fixed 100 KB stack, which the static TLS of LibTorch's dependencies overflows: its
// pthread_create fails with EINVAL in any process that links LibTorch.
#ifndef LATPRED_METRICS_METRICS_H_
#define LATPRED_METRICS_METRICS_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace prometheus {
class Registry;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace latpred::metrics {

// The RPC methods of latpred.v1.LatencyPredictor, for per-method series.
enum class Method {
  kRegisterDevice,
  kListDevices,
  kGetDevice,
  kSubmitSamples,
  kSuggestSamples,
  kAdaptDevice,
  kPredictLatency,
  kGetServerInfo,
};
inline constexpr int kMethodCount = 8;
inline constexpr int kStatusCodeCount = 17;  // google.rpc.Code 0..16

// How a fit of a device's head ended (latpred_adaptations_total{result}): "ok", a new
// model; "rejected", refused for what the device holds (no samples, a bundled source
// device, not registered: the caller's to fix); "failed", anything else (the store, the
// fit itself: the operator's to look at).
enum class AdaptationResult { kOk, kRejected, kFailed };
inline constexpr int kAdaptationResultCount = 3;

// Every latpred_* family. Thread-safe; series handles are created once and kept.
class Metrics {
 public:
  explicit Metrics(const std::string& version);
  ~Metrics();

  // One finished RPC: counted by method and status code, timed by method.
  void ObserveRequest(Method method, int status_code, double seconds);
  // A PredictLatency batch of n architectures in a space.
  void ObservePredictions(const std::string& space, int n);
  void ObserveAdaptation(double seconds);
  // Every fit of a device's head, waited for or not (AdaptDevice's no_wait, the refits
  // of a newer base model).
  void CountAdaptation(AdaptationResult result);
  void ObserveTraining(const std::string& space, double seconds);
  // State gauges, set by the server as the state changes.
  void SetDevices(const std::string& kind, int64_t count);
  void SetSamples(const std::string& space, int64_t count);
  void SetModelVersion(const std::string& device, const std::string& space, int64_t version);

  // Called before each render so that state gauges are current; it must be cheap and
  // read memory only (a scrape must not wait on the store).
  void SetRefresher(std::function<void(Metrics&)> refresh);
  // The Prometheus text exposition of the registry.
  std::string Render();

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* request_duration_;
  prometheus::Family<prometheus::Counter>* predictions_;
  prometheus::Histogram* batch_size_;
  prometheus::Histogram* adaptation_duration_;
  std::array<prometheus::Counter*, kAdaptationResultCount> adaptations_{};
  prometheus::Family<prometheus::Histogram>* training_duration_;
  prometheus::Family<prometheus::Gauge>* devices_;
  prometheus::Family<prometheus::Gauge>* samples_;
  prometheus::Family<prometheus::Gauge>* model_version_;
  std::array<std::array<std::atomic<prometheus::Counter*>, kStatusCodeCount>, kMethodCount>
      request_counters_{};
  std::array<prometheus::Histogram*, kMethodCount> duration_by_method_{};
  std::function<void(Metrics&)> refresh_;
  std::atomic<bool> rendering_{false};
};

// How MetricsHttpServer bounds what its clients may hold. Connections that are idle or
// still sending a request head cost no thread; only complete requests reach a worker.
struct HttpLimits {
  // Threads answering complete requests.
  int workers = 4;
  // Connections open at once; past it the one that has waited longest is closed.
  int max_connections = 128;
  // For a request to begin on a new or kept-alive connection.
  std::chrono::milliseconds idle_timeout{5000};
  // For the rest of a request head once it began, and then for reading the request
  // body and writing the answer.
  std::chrono::milliseconds request_timeout{5000};
  // Requests answered on one kept-alive connection before it is closed.
  int max_requests_per_connection = 100;
  // A longer request head closes the connection.
  size_t max_head_bytes = 16 << 10;
};

// Serves GET /metrics (and / with a pointer to it) on host:port; port 0 picks one.
class MetricsHttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& host, int port, Metrics* metrics,
      const HttpLimits& limits = HttpLimits());
  ~MetricsHttpServer();
  int port() const { return port_; }

 private:
  struct Impl;
  MetricsHttpServer(std::unique_ptr<Impl> impl, int port);
  std::unique_ptr<Impl> impl_;
  int port_;
};

}  // namespace latpred::metrics

#endif  // LATPRED_METRICS_METRICS_H_
