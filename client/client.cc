#include "latpred/client/client.h"

#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "grpc/grpc.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace latpred::client {
namespace {

namespace health = ::grpc::health::v1;

constexpr int kMaxReceiveMessageBytes = 256 << 20;
// Reconnect quickly after a refused connection so that a server that just started is
// found within about a second (gRPC's default backoff grows to two minutes).
constexpr int kInitialReconnectBackoffMs = 100;
constexpr int kMaxReconnectBackoffMs = 1000;
constexpr absl::Duration kHealthPollInterval = absl::Milliseconds(100);
// Waits between attempts of a SubmitSamples batch: doubling from the first to the most.
constexpr absl::Duration kFirstSubmitRetryDelay = absl::Milliseconds(250);
constexpr absl::Duration kMaxSubmitRetryDelay = absl::Seconds(2);

// Sets the context's deadline to `timeout` from now.
void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

// The channel arguments every latpred client uses.
grpc::ChannelArguments ChannelArgs() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, kInitialReconnectBackoffMs);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kMaxReconnectBackoffMs);
  return args;
}

// What a token may hold, for error messages.
constexpr char kTokenCharset[] = "printable ASCII without spaces";

}  // namespace

absl::Status ValidateToken(absl::string_view token, absl::string_view source) {
  for (size_t i = 0; i < token.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(token[i]);
    if (c > ' ' && c < 0x7f) continue;
    const char* what = c == ' ' ? "a space" : c > 0x7f ? "not ASCII" : "a control character";
    // Never the token itself: error messages end up in logs.
    return absl::InvalidArgumentError(absl::StrCat(
        "the token from ", source, " holds a character a bearer token cannot have (byte ", i,
        " of ", token.size(), " is ", what, "); a token must be ", kTokenCharset,
        " (the token is not shown)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> TokenFromEnvironment() {
  if (const char* file = std::getenv("LATPRED_TOKEN_FILE"); file != nullptr && *file) {
    std::ifstream in(file);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read LATPRED_TOKEN_FILE ", file));
    std::string token;
    std::getline(in, token);
    token = std::string(absl::StripAsciiWhitespace(token));
    if (absl::Status valid = ValidateToken(token, absl::StrCat("LATPRED_TOKEN_FILE ", file));
        !valid.ok()) {
      return valid;
    }
    return token;
  }
  if (const char* token = std::getenv("LATPRED_TOKEN"); token != nullptr) {
    if (absl::Status valid = ValidateToken(token, "LATPRED_TOKEN"); !valid.ok()) return valid;
    return std::string(token);
  }
  return std::string();
}

absl::Status ToAbslStatus(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError("empty server target");
  }
  if (options.submit_attempts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("submit_attempts must be at least 1, got ", options.submit_attempts));
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "timeout must be positive, got ", absl::FormatDuration(options.timeout)));
  }
  // gRPC aborts the process on a header value it cannot send.
  if (absl::Status valid = ValidateToken(options.token, "ClientOptions::token"); !valid.ok()) {
    return valid;
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options.ca_file.empty()) {
    std::ifstream in(options.ca_file);
    if (!in) {
      return absl::NotFoundError(absl::StrCat("cannot read CA file ", options.ca_file));
    }
    std::stringstream pem;
    pem << in.rdbuf();
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem.str();
    credentials = grpc::SslCredentials(ssl);
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.target, credentials, ChannelArgs());
  return absl::WrapUnique(new Client(options, std::move(channel)));
}

Client::Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(latpred::v1::LatencyPredictor::NewStub(channel_)),
      health_stub_(health::Health::NewStub(channel_)) {}

template <typename Request, typename Response>
absl::StatusOr<Response> Client::Call(StubMethod<Request, Response> method,
                                      const Request& request) {
  grpc::ClientContext context;
  SetDeadline(context, options_.timeout);
  if (!options_.token.empty()) context.AddMetadata("authorization", "Bearer " + options_.token);
  Response response;
  grpc::Status status = ((*stub_).*method)(&context, request, &response);
  if (!status.ok()) return CallError(status);
  return response;
}

absl::Status Client::CallError(const grpc::Status& status) const {
  absl::Status result = ToAbslStatus(status);
  const bool transport_failure = result.code() == absl::StatusCode::kUnavailable ||
                                 result.code() == absl::StatusCode::kDeadlineExceeded;
  if (!transport_failure || channel_->GetState(false) == GRPC_CHANNEL_READY) {
    return result;
  }
  return absl::Status(result.code(),
                      absl::StrCat("cannot reach latpred server at ", options_.target,
                                   ": ", result.message()));
}

absl::StatusOr<latpred::v1::RegisterDeviceResponse> Client::RegisterDevice(
    const latpred::v1::RegisterDeviceRequest& request) {
  return Call(&latpred::v1::LatencyPredictor::Stub::RegisterDevice, request);
}

absl::StatusOr<latpred::v1::ListDevicesResponse> Client::ListDevices(
    const latpred::v1::ListDevicesRequest& request) {
  return Call(&latpred::v1::LatencyPredictor::Stub::ListDevices, request);
}

absl::StatusOr<latpred::v1::ListDevicesResponse> Client::ListAllDevices(
    latpred::v1::ListDevicesRequest request) {
  latpred::v1::ListDevicesResponse all;
  while (true) {
    absl::StatusOr<latpred::v1::ListDevicesResponse> page = ListDevices(request);
    if (!page.ok()) return page.status();
    for (latpred::v1::Device& device : *page->mutable_devices()) {
      *all.add_devices() = std::move(device);
    }
    if (page->next_page_token().empty()) return all;
    // A server that hands back the token it was given would be asked forever.
    if (page->next_page_token() == request.page_token()) {
      return absl::InternalError(
          "ListDevices returned the page token it was given; the server is not paging");
    }
    request.set_page_token(page->next_page_token());
  }
}

absl::StatusOr<latpred::v1::Device> Client::GetDevice(
    const latpred::v1::GetDeviceRequest& request) {
  return Call(&latpred::v1::LatencyPredictor::Stub::GetDevice, request);
}

std::string NewRequestId() {
  std::random_device random;
  std::string id;
  for (int i = 0; i < 4; ++i) {
    absl::StrAppend(&id, absl::Hex(static_cast<uint32_t>(random()), absl::kZeroPad8));
  }
  return id;
}

absl::StatusOr<latpred::v1::SubmitSamplesResponse> Client::SubmitSamples(
    const latpred::v1::SubmitSamplesRequest& request) {
  if (request.request_id().empty()) {
    latpred::v1::SubmitSamplesRequest with_id = request;
    with_id.set_request_id(NewRequestId());
    return SubmitSamples(with_id);
  }
  absl::Duration delay = kFirstSubmitRetryDelay;
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<latpred::v1::SubmitSamplesResponse> response =
        Call(&latpred::v1::LatencyPredictor::Stub::SubmitSamples, request);
    if (response.ok() || response.status().code() != absl::StatusCode::kUnavailable ||
        attempt >= options_.submit_attempts) {
      return response;
    }
    absl::SleepFor(delay);
    delay = std::min(delay * 2, kMaxSubmitRetryDelay);
  }
}

absl::StatusOr<latpred::v1::SuggestSamplesResponse> Client::SuggestSamples(
    const latpred::v1::SuggestSamplesRequest& request) {
  return Call(&latpred::v1::LatencyPredictor::Stub::SuggestSamples, request);
}

absl::StatusOr<latpred::v1::AdaptDeviceResponse> Client::AdaptDevice(
    const latpred::v1::AdaptDeviceRequest& request) {
  return Call(&latpred::v1::LatencyPredictor::Stub::AdaptDevice, request);
}

absl::StatusOr<latpred::v1::PredictLatencyResponse> Client::PredictLatency(
    const latpred::v1::PredictLatencyRequest& request) {
  return Call(&latpred::v1::LatencyPredictor::Stub::PredictLatency, request);
}

absl::StatusOr<latpred::v1::ServerInfo> Client::GetServerInfo() {
  return Call(&latpred::v1::LatencyPredictor::Stub::GetServerInfo,
              latpred::v1::GetServerInfoRequest());
}

absl::StatusOr<health::HealthCheckResponse::ServingStatus> Client::Health() {
  return HealthWithin(options_.timeout);
}

absl::StatusOr<health::HealthCheckResponse::ServingStatus> Client::HealthWithin(
    absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(context, timeout);
  health::HealthCheckRequest request;  // service "": the server as a whole
  health::HealthCheckResponse response;
  grpc::Status status = health_stub_->Check(&context, request, &response);
  if (!status.ok()) return CallError(status);
  return response.status();
}

absl::Status Client::WaitUntilServing(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string last = "no health check completed";
  for (absl::Duration left = timeout; left > absl::ZeroDuration();
       left = deadline - absl::Now()) {
    absl::StatusOr<health::HealthCheckResponse::ServingStatus> serving =
        HealthWithin(std::min(left, options_.timeout));
    if (serving.ok() && *serving == health::HealthCheckResponse::SERVING) {
      return absl::OkStatus();
    }
    last = serving.ok() ? health::HealthCheckResponse::ServingStatus_Name(*serving)
                        : serving.status().ToString();
    absl::SleepFor(std::min(kHealthPollInterval, deadline - absl::Now()));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("server at ", options_.target, " not SERVING after ",
                   absl::FormatDuration(timeout), "; last: ", last));
}

}  // namespace latpred::client
