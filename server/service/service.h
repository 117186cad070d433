// The gRPC handlers of latpred.v1.LatencyPredictor (callback API).
#ifndef LATPRED_SERVICE_SERVICE_H_
#define LATPRED_SERVICE_SERVICE_H_

#include <atomic>

#include "job_queue.h"
#include "latpred/metrics/metrics.h"
#include "latpred/store/store.h"
#include "latpred/v1/latpred.grpc.pb.h"
#include "message_pool.h"
#include "model_manager.h"
#include "model_registry.h"

namespace latpred::service {

// What the handlers work with; owned by the Server.
struct ServiceContext {
  store::Store* store = nullptr;
  ModelRegistry* registry = nullptr;
  ModelManager* manager = nullptr;
  JobQueue* jobs = nullptr;
  metrics::Metrics* metrics = nullptr;
  int max_batch = 0;
  const std::atomic<bool>* ready = nullptr;
  // Bearer token required for writes (and for reads when token_for_reads); "" = none.
  std::string token;
  bool token_for_reads = false;
};

class LatencyPredictorService final : public v1::LatencyPredictor::CallbackService {
 public:
  explicit LatencyPredictorService(ServiceContext context) : ctx_(context) {
    SetMessageAllocatorFor_PredictLatency(&predict_messages_);
  }

  grpc::ServerUnaryReactor* RegisterDevice(grpc::CallbackServerContext* context,
                                           const v1::RegisterDeviceRequest* request,
                                           v1::RegisterDeviceResponse* response) override;
  grpc::ServerUnaryReactor* ListDevices(grpc::CallbackServerContext* context,
                                        const v1::ListDevicesRequest* request,
                                        v1::ListDevicesResponse* response) override;
  grpc::ServerUnaryReactor* GetDevice(grpc::CallbackServerContext* context,
                                      const v1::GetDeviceRequest* request,
                                      v1::Device* response) override;
  grpc::ServerUnaryReactor* SubmitSamples(grpc::CallbackServerContext* context,
                                          const v1::SubmitSamplesRequest* request,
                                          v1::SubmitSamplesResponse* response) override;
  grpc::ServerUnaryReactor* SuggestSamples(grpc::CallbackServerContext* context,
                                           const v1::SuggestSamplesRequest* request,
                                           v1::SuggestSamplesResponse* response) override;
  grpc::ServerUnaryReactor* AdaptDevice(grpc::CallbackServerContext* context,
                                        const v1::AdaptDeviceRequest* request,
                                        v1::AdaptDeviceResponse* response) override;
  grpc::ServerUnaryReactor* PredictLatency(grpc::CallbackServerContext* context,
                                           const v1::PredictLatencyRequest* request,
                                           v1::PredictLatencyResponse* response) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const v1::GetServerInfoRequest* request,
                                          v1::ServerInfo* response) override;

 private:
  absl::Status DoRegisterDevice(const v1::RegisterDeviceRequest& request,
                                v1::RegisterDeviceResponse* response);
  absl::Status DoListDevices(const v1::ListDevicesRequest& request,
                             v1::ListDevicesResponse* response);
  absl::Status DoGetDevice(const v1::GetDeviceRequest& request, v1::Device* response);
  absl::Status DoSubmitSamples(const v1::SubmitSamplesRequest& request,
                               v1::SubmitSamplesResponse* response);
  absl::Status DoSuggestSamples(const v1::SuggestSamplesRequest& request,
                                v1::SuggestSamplesResponse* response);
  absl::Status DoPredictLatency(const v1::PredictLatencyRequest& request,
                                v1::PredictLatencyResponse* response);
  // UNAUTHENTICATED when a token is configured and the call lacks it (writes, or reads
  // when token_for_reads) or carries a wrong one.
  absl::Status Authorize(const grpc::CallbackServerContext& context, bool write) const;
  // UNAVAILABLE until the models are ready.
  absl::Status CheckReady() const;
  // Fills a Device message from the store record, sample counts and the registry.
  void FillDevice(const store::Device& device, const std::map<std::string, int64_t>& counts,
                  v1::Device* out) const;

  ServiceContext ctx_;
  // PredictLatency is the hot path: its messages are recycled, so that a batch's strings
  // reuse the buffers of an earlier batch instead of one malloc and free each. Up to 64
  // pairs of at most 1 MiB each (a batch of about 10,000 NAS-Bench-201 strings).
  MessagePool<v1::PredictLatencyRequest, v1::PredictLatencyResponse> predict_messages_{
      64, size_t{1} << 20};
};

}  // namespace latpred::service

#endif  // LATPRED_SERVICE_SERVICE_H_
