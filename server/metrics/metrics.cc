#include "latpred/metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <cmath>

namespace latpred::metrics {
namespace {

constexpr const char* kMethodNames[kMethodCount] = {
    "RegisterDevice", "ListDevices",    "GetDevice",      "SubmitSamples",
    "SuggestSamples", "AdaptDevice",    "PredictLatency", "GetServerInfo",
};
constexpr const char* kCodeNames[kStatusCodeCount] = {
    "OK",        "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS",     "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION", "ABORTED",  "OUT_OF_RANGE",      "UNIMPLEMENTED",    "INTERNAL",
    "UNAVAILABLE", "DATA_LOSS",        "UNAUTHENTICATED",
};

// Buckets from `start`, multiplying by `factor`, `count` of them.
prometheus::Histogram::BucketBoundaries Exponential(double start, double factor, int count) {
  prometheus::Histogram::BucketBoundaries b;
  for (int i = 0; i < count; ++i) b.push_back(start * std::pow(factor, i));
  return b;
}

// 10 us to about 100 s, as gRPC's own latency views.
const prometheus::Histogram::BucketBoundaries& DurationBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries(Exponential(1e-5, 2.5, 18));
  return *b;
}

}  // namespace

Metrics::Metrics(const std::string& version) : registry_(std::make_shared<prometheus::Registry>()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("latpred_requests_total")
                   .Help("RPCs finished, by method and gRPC status code.")
                   .Register(*registry_);
  request_duration_ = &prometheus::BuildHistogram()
                           .Name("latpred_request_duration_seconds")
                           .Help("Time from receiving an RPC to finishing it, by method.")
                           .Register(*registry_);
  predictions_ = &prometheus::BuildCounter()
                      .Name("latpred_predictions_total")
                      .Help("Architectures predicted, by search space.")
                      .Register(*registry_);
  batch_size_ = &prometheus::BuildHistogram()
                     .Name("latpred_predict_batch_size")
                     .Help("Architectures per PredictLatency call.")
                     .Register(*registry_)
                     .Add({}, Exponential(1, 4, 9));
  adaptation_duration_ = &prometheus::BuildHistogram()
                              .Name("latpred_adaptation_duration_seconds")
                              .Help("Time to adapt a device's model from its samples.")
                              .Register(*registry_)
                              .Add({}, DurationBuckets());
  // Every result's series from the start, at 0: a rate over them is defined before the
  // first failure.
  auto& adaptations = prometheus::BuildCounter()
                          .Name("latpred_adaptations_total")
                          .Help("Fits of a device's model, by result (ok; rejected: no samples "
                                "or not adaptable; failed: store or fit errors).")
                          .Register(*registry_);
  adaptations_ = {&adaptations.Add({{"result", "ok"}}), &adaptations.Add({{"result", "rejected"}}),
                  &adaptations.Add({{"result", "failed"}})};
  training_duration_ = &prometheus::BuildHistogram()
                            .Name("latpred_training_duration_seconds")
                            .Help("Time to train a base model, by search space.")
                            .Register(*registry_);
  devices_ = &prometheus::BuildGauge()
                  .Name("latpred_devices")
                  .Help("Known devices, by kind (source: bundled; registered).")
                  .Register(*registry_);
  samples_ = &prometheus::BuildGauge()
                  .Name("latpred_samples")
                  .Help("Stored latency samples, by search space.")
                  .Register(*registry_);
  model_version_ = &prometheus::BuildGauge()
                        .Name("latpred_model_version")
                        .Help("Model version each registered device predicts with, by space.")
                        .Register(*registry_);
  prometheus::BuildGauge()
      .Name("latpred_build_info")
      .Help("Build information; the value is always 1.")
      .Register(*registry_)
      .Add({{"version", version}})
      .Set(1);
  for (int m = 0; m < kMethodCount; ++m) {
    duration_by_method_[m] = &request_duration_->Add({{"method", kMethodNames[m]}}, DurationBuckets());
    for (auto& c : request_counters_[m]) c.store(nullptr);
  }
}

Metrics::~Metrics() = default;

void Metrics::ObserveRequest(Method method, int status_code, double seconds) {
  const int m = static_cast<int>(method);
  if (status_code < 0 || status_code >= kStatusCodeCount) status_code = 2;  // UNKNOWN
  std::atomic<prometheus::Counter*>& slot = request_counters_[m][status_code];
  prometheus::Counter* counter = slot.load(std::memory_order_acquire);
  if (counter == nullptr) {
    // Family::Add returns the same series for the same labels, so a race is harmless.
    counter = &requests_->Add({{"method", kMethodNames[m]}, {"code", kCodeNames[status_code]}});
    slot.store(counter, std::memory_order_release);
  }
  counter->Increment();
  duration_by_method_[m]->Observe(seconds);
}

void Metrics::ObservePredictions(const std::string& space, int n) {
  predictions_->Add({{"space", space}}).Increment(n);
  batch_size_->Observe(n);
}

void Metrics::ObserveAdaptation(double seconds) { adaptation_duration_->Observe(seconds); }

void Metrics::CountAdaptation(AdaptationResult result) {
  adaptations_[static_cast<int>(result)]->Increment();
}

void Metrics::ObserveTraining(const std::string& space, double seconds) {
  training_duration_->Add({{"space", space}}, Exponential(1, 2, 12)).Observe(seconds);
}

void Metrics::SetDevices(const std::string& kind, int64_t count) {
  devices_->Add({{"kind", kind}}).Set(static_cast<double>(count));
}

void Metrics::SetSamples(const std::string& space, int64_t count) {
  samples_->Add({{"space", space}}).Set(static_cast<double>(count));
}

void Metrics::SetModelVersion(const std::string& device, const std::string& space,
                              int64_t version) {
  model_version_->Add({{"device", device}, {"space", space}}).Set(static_cast<double>(version));
}

void Metrics::SetRefresher(std::function<void(Metrics&)> refresh) { refresh_ = std::move(refresh); }

std::string Metrics::Render() {
  if (refresh_) refresh_(*this);
  prometheus::TextSerializer serializer;
  return serializer.Serialize(registry_->Collect());
}

}  // namespace latpred::metrics
