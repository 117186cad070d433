// One call of a unary method that the service registers as raw bytes in and out (see
// request_parsing.h for why): the parsed request, the response being built, and how
// the call ends.
#ifndef LATPRED_SERVICE_UNARY_CALL_H_
#define LATPRED_SERVICE_UNARY_CALL_H_

#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/message_allocator.h>
#include <grpcpp/support/server_callback.h>

#include <chrono>

#include "absl/status/status.h"
#include "grpc_status.h"
#include "latpred/metrics/metrics.h"

namespace latpred::service {

// A request and response message pair that is freed after its call (the holder of the
// methods whose messages are not recycled through a MessagePool).
template <typename Request, typename Response>
class OwnedMessages final : public grpc::MessageHolder<Request, Response> {
 public:
  OwnedMessages() {
    this->set_request(&request_);
    this->set_response(&response_);
  }
  void Release() override { delete this; }

 private:
  Request request_;
  Response response_;
};

template <typename Request, typename Response>
class UnaryCall {
 public:
  using Clock = std::chrono::steady_clock;

  // Takes over messages (released when the call finishes). reply is the raw response
  // gRPC sends; metrics may be null.
  UnaryCall(grpc::ServerUnaryReactor* reactor, grpc::ByteBuffer* reply,
            grpc::MessageHolder<Request, Response>* messages, metrics::Metrics* metrics,
            metrics::Method method, Clock::time_point start)
      : reactor_(reactor),
        reply_(reply),
        messages_(messages),
        metrics_(metrics),
        method_(method),
        start_(start) {}
  UnaryCall(const UnaryCall&) = delete;
  UnaryCall& operator=(const UnaryCall&) = delete;

  const Request& request() const { return *messages_->request(); }
  Response* response() { return messages_->response(); }

  // Ends the call with status (and, when it is OK, the response as the reply), counts
  // it, and deletes this call.
  void Finish(const absl::Status& status) {
    grpc::Status result = ToGrpcStatus(status);
    if (result.ok()) {
      bool own_buffer = false;
      result = grpc::SerializationTraits<Response>::Serialize(*response(), reply_, &own_buffer);
    }
    messages_->Release();
    const grpc::StatusCode code = result.error_code();
    reactor_->Finish(std::move(result));
    if (metrics_ != nullptr) {
      metrics_->ObserveRequest(method_, static_cast<int>(code),
                               std::chrono::duration<double>(Clock::now() - start_).count());
    }
    delete this;
  }

 private:
  ~UnaryCall() = default;

  grpc::ServerUnaryReactor* const reactor_;
  grpc::ByteBuffer* const reply_;
  grpc::MessageHolder<Request, Response>* const messages_;
  metrics::Metrics* const metrics_;
  const metrics::Method method_;
  const Clock::time_point start_;
};

}  // namespace latpred::service

#endif  // LATPRED_SERVICE_UNARY_CALL_H_
