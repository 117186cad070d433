// The gRPC handlers of latpred.v1.LatencyPredictor (callback API).
#ifndef LATPRED_SERVICE_SERVICE_H_
#define LATPRED_SERVICE_SERVICE_H_

#include <array>
#include <atomic>

#include "job_queue.h"
#include "absl/synchronization/mutex.h"
#include "latpred/metrics/metrics.h"
#include "latpred/service/server.h"
#include "latpred/store/store.h"
#include "latpred/v1/latpred.grpc.pb.h"
#include "message_pool.h"
#include "model_manager.h"
#include "model_registry.h"
#include "unary_call.h"

namespace latpred::service {

// What the handlers work with; owned by the Server.
struct ServiceContext {
  store::Store* store = nullptr;
  ModelRegistry* registry = nullptr;
  ModelManager* manager = nullptr;
  JobQueue* jobs = nullptr;
  metrics::Metrics* metrics = nullptr;
  int max_batch = 0;
  // What one device may hold; the fit's own (max_fit_samples) is the ModelManager's.
  Limits limits;
  const std::atomic<bool>* ready = nullptr;
  // Bearer token required for writes (and for reads when token_for_reads); "" = none.
  std::string token;
  bool token_for_reads = false;
};

// Every method is registered as raw bytes in and out and parses its request itself
// (request_parsing.h), so that a request that does not parse is INVALID_ARGUMENT with a
// message rather than gRPC's empty UNIMPLEMENTED.
class LatencyPredictorService final : public v1::LatencyPredictor::CallbackService {
 public:
  explicit LatencyPredictorService(ServiceContext context);

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
  absl::Status DoGetServerInfo(const v1::GetServerInfoRequest& request,
                               v1::ServerInfo* response);
  // Checks inline; the fit runs on the job queue, which finishes the call.
  void StartAdaptDevice(UnaryCall<v1::AdaptDeviceRequest, v1::AdaptDeviceResponse>* call);

  // Who may call a method when the server has a token.
  enum class Access { kAnyone, kRead, kWrite };
  // Registers the method `name` as raw bytes: authorises the call, parses its request
  // into messages from allocator (null: fresh ones), then hands the call to handler,
  // which finishes it.
  template <typename Request, typename Response, typename Handler>
  void Serve(const char* name, metrics::Method method, Access access,
             grpc::MessageAllocator<Request, Response>* allocator, Handler handler);
  // Serve for a method whose work is done inline by do_method.
  template <typename Request, typename Response>
  void ServeInline(const char* name, metrics::Method method, Access access,
                   absl::Status (LatencyPredictorService::*do_method)(const Request&, Response*),
                   grpc::MessageAllocator<Request, Response>* allocator = nullptr);
  // UNAUTHENTICATED when a token is configured and the call lacks it (writes, or reads
  // when token_for_reads) or carries a wrong one.
  absl::Status Authorize(const grpc::CallbackServerContext& context, bool write) const;
  // UNAVAILABLE until the models are ready.
  absl::Status CheckReady() const;
  // RESOURCE_EXHAUSTED when storing the (valid, canonical) samples would take the
  // device past max_samples_per_device in the space. Call with submit_mu_ held.
  absl::Status CheckSampleLimit(const std::string& device, const std::string& space,
                                const std::vector<store::Sample>& samples) const;
  // The answer to a SubmitSamples whose request_id the device already holds: the stored
  // call's counts with replayed = true (results were filled from the request, which
  // matches the original's), or INVALID_ARGUMENT naming request_id when the request's
  // fingerprint differs from the stored one (the id was reused for another batch).
  absl::Status Replay(const v1::SubmitSamplesRequest& request, const store::SubmitRecord& record,
                      const std::string& fingerprint, v1::SubmitSamplesResponse* response) const;
  // Fills a Device message from the store record, sample counts and the registry.
  void FillDevice(const store::Device& device, const std::map<std::string, int64_t>& counts,
                  v1::Device* out) const;

  ServiceContext ctx_;
  // SubmitSamples of one device and space run one at a time in this process (a mutex
  // per hash of the pair), so that two batches cannot both fit under the sample limit
  // and together pass it.
  std::array<absl::Mutex, 64> submit_mu_;
  // PredictLatency is the hot path: its messages are recycled, so that a batch's strings
  // reuse the buffers of an earlier batch instead of one malloc and free each. Up to 64
  // pairs of at most 1 MiB each (a batch of about 10,000 NAS-Bench-201 strings).
  MessagePool<v1::PredictLatencyRequest, v1::PredictLatencyResponse> predict_messages_{
      64, size_t{1} << 20};
};

}  // namespace latpred::service

#endif  // LATPRED_SERVICE_SERVICE_H_
