// C++ client of the latpred.v1.LatencyPredictor gRPC service and of the server's
// standard grpc.health.v1 health service.
//
// Every call carries a deadline (ClientOptions::timeout) and reports failures as
// absl::Status with the gRPC code and the server's message. Connecting is lazy: Connect()
// only builds the channel, so a Client can wait for a server that is still starting.
#ifndef LATPRED_CLIENT_CLIENT_H_
#define LATPRED_CLIENT_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/status.h"
#include "latpred/v1/latpred.grpc.pb.h"

namespace latpred::client {

// How to reach the server.
struct ClientOptions {
  // gRPC target, e.g. "127.0.0.1:50051" or "dns:///latpred.internal:50051".
  std::string target = "127.0.0.1:50051";
  // Deadline of each call, counted from its start.
  absl::Duration timeout = absl::Seconds(60);
  // Bearer token sent with every call (the server requires it for writes when it has one).
  std::string token;
  // PEM file of the CA that signed the server's certificate: connect with TLS when set.
  std::string ca_file;
  // Attempts of one SubmitSamples batch, all with the batch's request_id: a call that
  // fails with UNAVAILABLE (outcome unknown included) is sent again after 0.25 s, 0.5 s,
  // ... (at most 2 s). 1 = no retry (for a caller with its own retry loop).
  int submit_attempts = 3;
};

// A fresh SubmitSamplesRequest.request_id: 32 hex digits of 128 random bits.
std::string NewRequestId();

// The token from the file named by $LATPRED_TOKEN_FILE (its first line, stripped), else
// $LATPRED_TOKEN, else "". Tokens never travel on a command line, where `ps` would show
// them. INVALID_ARGUMENT, naming the variable or file but never showing the token, when
// it holds anything but printable ASCII without spaces (see ValidateToken).
absl::StatusOr<std::string> TokenFromEnvironment();

// OK when token is empty or printable ASCII without spaces (a superset of RFC 6750's
// b64token, and what an HTTP/2 header value can carry: gRPC aborts the process on a
// header value with a control character). Otherwise INVALID_ARGUMENT naming `source`
// (where the token came from) and the offending byte's position, never the token.
absl::Status ValidateToken(absl::string_view token, absl::string_view source);

// The absl::Status of a gRPC status: same code (both follow google.rpc.Code) and message.
absl::Status ToAbslStatus(const grpc::Status& status);

// A connection to one latpred server over an insecure channel. Thread-safe: calls may
// run concurrently from several threads.
class Client {
 public:
  // Builds a client for options.target (receives messages up to 256 MiB). Contacts
  // nothing yet; fails with INVALID_ARGUMENT on an empty target, a timeout <= 0,
  // submit_attempts < 1 or a token ValidateToken refuses.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const ClientOptions& options);

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Creates a device or updates its labels and descriptor; its samples are kept.
  absl::StatusOr<latpred::v1::RegisterDeviceResponse> RegisterDevice(
      const latpred::v1::RegisterDeviceRequest& request);

  // One page of the known devices (bundled source devices and registered ones), in name
  // order: at most request.page_size of them (0: the server's default, 1000), from
  // request.page_token on. A non-empty next_page_token in the response means more follow.
  absl::StatusOr<latpred::v1::ListDevicesResponse> ListDevices(
      const latpred::v1::ListDevicesRequest& request);

  // Every device the request selects, following next_page_token from request.page_token
  // to the last page: all of them in one response, whose next_page_token is empty.
  absl::StatusOr<latpred::v1::ListDevicesResponse> ListAllDevices(
      latpred::v1::ListDevicesRequest request);

  // One device with its labels, descriptor and per-space model state.
  absl::StatusOr<latpred::v1::Device> GetDevice(
      const latpred::v1::GetDeviceRequest& request);

  // Stores measured latencies (all or nothing unless request.partial is set). A request
  // without request_id gets a NewRequestId(); the batch is sent up to
  // ClientOptions::submit_attempts times while it fails with UNAVAILABLE, each time with
  // that id, so the server stores it once (a retry of a stored batch answers with
  // replayed = true). A caller that retries on its own sets request_id once per batch.
  absl::StatusOr<latpred::v1::SubmitSamplesResponse> SubmitSamples(
      const latpred::v1::SubmitSamplesRequest& request);

  // The architectures most worth measuring next on a device.
  absl::StatusOr<latpred::v1::SuggestSamplesResponse> SuggestSamples(
      const latpred::v1::SuggestSamplesRequest& request);

  // Fits (or refits) a device's predictor from its samples.
  absl::StatusOr<latpred::v1::AdaptDeviceResponse> AdaptDevice(
      const latpred::v1::AdaptDeviceRequest& request);

  // Predicts latency_ms for a batch of architectures.
  absl::StatusOr<latpred::v1::PredictLatencyResponse> PredictLatency(
      const latpred::v1::PredictLatencyRequest& request);

  // The server's version, search spaces and limits.
  absl::StatusOr<latpred::v1::ServerInfo> GetServerInfo();

  // grpc.health.v1 Check of the whole server (service ""): its ServingStatus, or the
  // error when the check itself failed.
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Health();

  // Polls Health() until the server is SERVING. After `timeout` without that, returns
  // DEADLINE_EXCEEDED naming the last status or error seen.
  absl::Status WaitUntilServing(absl::Duration timeout);

 private:
  Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  // A unary method of the LatencyPredictor stub.
  template <typename Request, typename Response>
  using StubMethod = grpc::Status (latpred::v1::LatencyPredictor::Stub::*)(
      grpc::ClientContext*, const Request&, Response*);

  // Runs one unary call of the LatencyPredictor stub with the configured deadline.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(StubMethod<Request, Response> method,
                                const Request& request);

  // Health() with a deadline of `timeout` from now.
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> HealthWithin(
      absl::Duration timeout);

  // ToAbslStatus(), naming the target when the channel could not reach the server.
  absl::Status CallError(const grpc::Status& status) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<latpred::v1::LatencyPredictor::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_stub_;
};

}  // namespace latpred::client

#endif  // LATPRED_CLIENT_CLIENT_H_
