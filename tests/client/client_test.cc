// Tests of the latpred client library and the `latpred` CLI: offline parts directly, RPCs
// against an in-process fake LatencyPredictor with gRPC's built-in health service.
#include "latpred/client/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cli/args.h"
#include "client/cli/cli.h"
#include "client/cli/descriptor_json.h"
#include "client/cli/input.h"
#include "client/cli/output.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace latpred {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kNb201Arch[] =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "skip_connect~2|";

// ---------------------------------------------------------------------------
// A socket bound to a loopback port without listening: connecting is refused.
class RefusingPort {
 public:
  RefusingPort() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof(addr);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), size), 0);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &size), 0);
    port_ = ntohs(addr.sin_port);
  }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  ~RefusingPort() { close(fd_); }

  int port() const { return port_; }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int fd_;
  int port_ = 0;
};

// A free loopback port (free when this returns; nothing holds it afterwards).
int FreePort() {
  return RefusingPort().port();
}

// ---------------------------------------------------------------------------
// Fake service: canned answers, records what it was asked.
class FakePredictor final : public v1::LatencyPredictor::Service {
 public:
  grpc::Status RegisterDevice(grpc::ServerContext*,
                              const v1::RegisterDeviceRequest* request,
                              v1::RegisterDeviceResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_register_ = *request;
    response->mutable_device()->set_name(request->name());
    *response->mutable_device()->mutable_labels() = request->labels();
    *response->mutable_device()->mutable_features() = request->features();
    response->set_created(true);
    return grpc::Status::OK;
  }

  // One device a page, so that listing them all means following next_page_token.
  grpc::Status ListDevices(grpc::ServerContext*, const v1::ListDevicesRequest* request,
                           v1::ListDevicesResponse* response) override {
    std::vector<v1::Device> devices;
    if (!request->registered_only()) devices.push_back(SourceDevice());
    devices.push_back(OrinDevice());
    size_t page = 0;
    if (!request->page_token().empty() &&
        (!absl::SimpleAtoi(request->page_token(), &page) || page >= devices.size())) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad page_token");
    }
    *response->add_devices() = devices[page];
    if (page + 1 < devices.size()) response->set_next_page_token(absl::StrCat(page + 1));
    return grpc::Status::OK;
  }

  grpc::Status GetDevice(grpc::ServerContext*, const v1::GetDeviceRequest* request,
                         v1::Device* response) override {
    if (request->name() != "orin") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("device '", request->name(), "' not found"));
    }
    *response = OrinDevice();
    return grpc::Status::OK;
  }

  grpc::Status SubmitSamples(grpc::ServerContext*,
                             const v1::SubmitSamplesRequest* request,
                             v1::SubmitSamplesResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    last_submit_ = *request;
    submit_ids_.push_back(request->request_id());
    // A failed call "stored" the batch all the same, as when the reply to COMMIT is lost.
    const bool stored_before = !request->request_id().empty() &&
                               !stored_ids_.insert(request->request_id()).second;
    if (submit_failures_ > 0) {
      --submit_failures_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "connection lost during commit, outcome unknown");
    }
    response->set_replayed(stored_before);
    for (int i = 0; i < request->samples_size(); ++i) {
      v1::SampleResult* result = response->add_results();
      result->set_index(i);
      result->set_accepted(request->samples(i).latency_ms() > 0);
      if (result->accepted()) {
        result->set_canonical_arch(request->samples(i).arch());
      } else {
        result->set_error("latency_ms must be positive");
      }
      response->set_accepted(response->accepted() + (result->accepted() ? 1 : 0));
    }
    response->set_rejected(request->samples_size() - response->accepted());
    response->set_sample_count(10 + response->accepted());
    return grpc::Status::OK;
  }

  grpc::Status SuggestSamples(grpc::ServerContext*,
                              const v1::SuggestSamplesRequest* request,
                              v1::SuggestSamplesResponse* response) override {
    for (int i = 0; i < request->k(); ++i) response->add_archs(absl::StrCat("arch", i));
    response->set_strategy("test");
    return grpc::Status::OK;
  }

  grpc::Status AdaptDevice(grpc::ServerContext*, const v1::AdaptDeviceRequest* request,
                           v1::AdaptDeviceResponse* response) override {
    response->set_model_version(4);
    response->set_state(v1::MODEL_STATE_ADAPTED);
    response->set_pending(request->no_wait());
    v1::FitStats* fit = response->mutable_fit();
    fit->set_samples(5);
    fit->set_fit_spearman(0.9);
    fit->set_fit_mape(3.5);
    fit->set_loo_mape(6.25);
    fit->set_loo_log_sd(0.125);
    fit->set_seconds(0.5);
    return grpc::Status::OK;
  }

  // Latency = 0.5 ms per character of the arch; "bad" fails the batch. With an interval,
  // orin's bounds are 0.8 and 1.25 times the latency; device "fresh" (zero-shot) has none.
  grpc::Status PredictLatency(grpc::ServerContext*,
                              const v1::PredictLatencyRequest* request,
                              v1::PredictLatencyResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    batch_sizes_.push_back(request->archs_size());
    intervals_.push_back(request->interval());
    const bool bounds = request->interval() > 0 && request->device() == "orin";
    for (int i = 0; i < request->archs_size(); ++i) {
      if (request->archs(i) == "bad") {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("arch ", i, ": unknown op 'conv'"));
      }
      const double latency = 0.5 * request->archs(i).size();
      response->add_latency_ms(latency);
      if (bounds) {
        response->add_lower_ms(0.8 * latency);
        response->add_upper_ms(1.25 * latency);
      }
    }
    response->set_model_version(3);
    const bool fresh = request->device() == "fresh";
    response->set_state(fresh ? v1::MODEL_STATE_ZERO_SHOT : v1::MODEL_STATE_ADAPTED);
    response->set_zero_shot(fresh);
    return grpc::Status::OK;
  }

  grpc::Status GetServerInfo(grpc::ServerContext*, const v1::GetServerInfoRequest*,
                             v1::ServerInfo* response) override {
    response->set_version("test-1");
    response->add_spaces("nb201");
    response->add_spaces("fbnet");
    response->set_max_batch(2);
    response->set_ready(true);
    return grpc::Status::OK;
  }

  std::vector<int> batch_sizes() {
    std::lock_guard<std::mutex> lock(mu_);
    return batch_sizes_;
  }
  // PredictLatencyRequest.interval of each batch, in order.
  std::vector<double> intervals() {
    std::lock_guard<std::mutex> lock(mu_);
    return intervals_;
  }
  v1::RegisterDeviceRequest last_register() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_register_;
  }
  v1::SubmitSamplesRequest last_submit() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_submit_;
  }
  // The request_id of every SubmitSamples received, in order.
  std::vector<std::string> submit_ids() {
    std::lock_guard<std::mutex> lock(mu_);
    return submit_ids_;
  }
  // Answers the next n SubmitSamples with UNAVAILABLE ("outcome unknown").
  void FailSubmits(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    submit_failures_ = n;
  }

 private:
  static v1::Device SourceDevice() {
    v1::Device device;
    device.set_name("pixel3");
    device.set_source(true);
    v1::SpaceState* space = device.add_spaces();
    space->set_space("nb201");
    space->set_sample_count(15625);
    space->set_state(v1::MODEL_STATE_SOURCE);
    space->set_model_version(1);
    return device;
  }

  static v1::Device OrinDevice() {
    v1::Device device;
    device.set_name("orin");
    (*device.mutable_labels())["vendor"] = "nvidia";
    (*device.mutable_labels())["kind"] = "gpu";
    v1::DescriptorFeature* feature = device.add_features();
    feature->set_name("dram_gbps");
    feature->set_value(51.2);
    feature->set_source(v1::FEATURE_SOURCE_MICROBENCHMARK);
    feature->set_unit("GB/s");
    device.set_created_unix_ms(1700000000000);
    v1::SpaceState* space = device.add_spaces();
    space->set_space("nb201");
    space->set_sample_count(12);
    space->set_state(v1::MODEL_STATE_ADAPTED);
    space->set_model_version(3);
    space->mutable_fit()->set_samples(12);
    space->mutable_fit()->set_fit_spearman(0.95);
    return device;
  }

  std::mutex mu_;
  std::vector<int> batch_sizes_;
  std::vector<double> intervals_;
  v1::RegisterDeviceRequest last_register_;
  v1::SubmitSamplesRequest last_submit_;
  std::vector<std::string> submit_ids_;
  std::set<std::string> stored_ids_;
  int submit_failures_ = 0;
};

// Starts a server with the fake service and gRPC's health service on address.
std::unique_ptr<grpc::Server> StartServer(FakePredictor& service,
                                          const std::string& address, int* port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), port);
  builder.RegisterService(&service);
  return builder.BuildAndStart();
}

// What one run of the CLI printed and returned.
struct CliRun {
  int code;
  std::string out;
  std::string err;
};

// Runs the CLI on args with stdin_text as standard input.
CliRun RunLatpred(std::vector<std::string> args, const std::string& stdin_text = "") {
  args.insert(args.begin(), "latpred");
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  std::istringstream in(stdin_text);
  std::ostringstream out, err;
  const int code = cli::RunCli(static_cast<int>(argv.size()), argv.data(), in, out, err);
  return {code, out.str(), err.str()};
}

// ---------------------------------------------------------------------------
TEST(ToAbslStatusTest, KeepsCodeAndMessage) {
  EXPECT_TRUE(client::ToAbslStatus(grpc::Status::OK).ok());
  for (int code = 1; code <= 16; ++code) {
    const absl::Status status = client::ToAbslStatus(
        grpc::Status(static_cast<grpc::StatusCode>(code), "arch 3: unknown op"));
    EXPECT_EQ(static_cast<int>(status.code()), code);
    EXPECT_EQ(status.message(), "arch 3: unknown op");
  }
  EXPECT_EQ(client::ToAbslStatus(grpc::Status(grpc::StatusCode::NOT_FOUND, "x")).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client::ToAbslStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "x")).code(),
            absl::StatusCode::kUnavailable);
}

TEST(ConnectTest, RejectsBadOptions) {
  EXPECT_EQ(client::Client::Connect({"", absl::Seconds(1)}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      client::Client::Connect({"127.0.0.1:1", absl::ZeroDuration()}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

TEST(ConnectTest, UnreachableServerIsUnavailableNamingTarget) {
  RefusingPort port;
  auto client = client::Client::Connect({port.target(), absl::Seconds(5)});
  ASSERT_TRUE(client.ok()) << client.status();
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::ServerInfo> info = (*client)->GetServerInfo();
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(info.status().message()), HasSubstr(port.target()));
  auto health = (*client)->Health();
  EXPECT_EQ(health.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(health.status().message()), HasSubstr(port.target()));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(ConnectTest, WaitUntilServingTimesOutWithLastError) {
  RefusingPort port;
  auto client = client::Client::Connect({port.target(), absl::Seconds(5)});
  ASSERT_TRUE(client.ok()) << client.status();
  const absl::Time start = absl::Now();
  absl::Status status = (*client)->WaitUntilServing(absl::Milliseconds(500));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(status.message()), HasSubstr(port.target()));
  EXPECT_THAT(std::string(status.message()), HasSubstr("UNAVAILABLE"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(ConnectTest, WaitUntilServingFindsServerStartedLater) {
  const std::string address = absl::StrCat("127.0.0.1:", FreePort());
  auto client = client::Client::Connect({address, absl::Seconds(5)});
  ASSERT_TRUE(client.ok()) << client.status();
  FakePredictor service;
  std::unique_ptr<grpc::Server> server;
  std::thread starter([&] {
    absl::SleepFor(absl::Milliseconds(700));
    int port = 0;
    server = StartServer(service, address, &port);
  });
  const absl::Status status = (*client)->WaitUntilServing(absl::Seconds(10));
  starter.join();
  ASSERT_NE(server, nullptr) << "port " << address << " was taken";
  EXPECT_TRUE(status.ok()) << status;
  server->Shutdown();
}

// ---------------------------------------------------------------------------
class FakeServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int port = 0;
    server_ = StartServer(service_, "127.0.0.1:0", &port);
    ASSERT_NE(server_, nullptr);
    target_ = absl::StrCat("127.0.0.1:", port);
    auto client = client::Client::Connect({target_, absl::Seconds(10)});
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }
  void TearDown() override { server_->Shutdown(); }

  // The CLI run against the fake server.
  CliRun Latpred(std::vector<std::string> args, const std::string& stdin_text = "") {
    args.insert(args.begin(), {"--server", target_, "--timeout", "10"});
    return RunLatpred(std::move(args), stdin_text);
  }

  FakePredictor service_;
  std::unique_ptr<grpc::Server> server_;
  std::string target_;
  std::unique_ptr<client::Client> client_;
};

TEST_F(FakeServerTest, ServerErrorKeepsCodeAndMessage) {
  v1::GetDeviceRequest request;
  request.set_name("nope");
  absl::StatusOr<v1::Device> device = client_->GetDevice(request);
  EXPECT_EQ(device.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(device.status().message(), "device 'nope' not found");
}

TEST_F(FakeServerTest, CallsReturnResponses) {
  v1::GetDeviceRequest request;
  request.set_name("orin");
  absl::StatusOr<v1::Device> device = client_->GetDevice(request);
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ(device->spaces(0).model_version(), 3);
  absl::StatusOr<v1::ServerInfo> info = client_->GetServerInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->version(), "test-1");
}

TEST_F(FakeServerTest, ListAllDevicesFollowsEveryPage) {
  absl::StatusOr<v1::ListDevicesResponse> page = client_->ListDevices({});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->devices_size(), 1);
  EXPECT_EQ(page->next_page_token(), "1");
  absl::StatusOr<v1::ListDevicesResponse> all = client_->ListAllDevices({});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->devices_size(), 2);
  EXPECT_EQ(all->devices(0).name(), "pixel3");
  EXPECT_EQ(all->devices(1).name(), "orin");
  EXPECT_EQ(all->next_page_token(), "");
  v1::ListDevicesRequest bad;
  bad.set_page_token("7");
  EXPECT_EQ(client_->ListAllDevices(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FakeServerTest, HealthFollowsServingStatus) {
  auto health = client_->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthCheckResponse::SERVING);
  EXPECT_TRUE(client_->WaitUntilServing(absl::Seconds(1)).ok());

  server_->GetHealthCheckService()->SetServingStatus(false);
  health = client_->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthCheckResponse::NOT_SERVING);
  absl::Status status = client_->WaitUntilServing(absl::Milliseconds(300));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(status.message()), HasSubstr("NOT_SERVING"));

  std::thread flip([&] {
    absl::SleepFor(absl::Milliseconds(300));
    server_->GetHealthCheckService()->SetServingStatus(true);
  });
  EXPECT_TRUE(client_->WaitUntilServing(absl::Seconds(5)).ok());
  flip.join();
}

TEST_F(FakeServerTest, CliHealth) {
  CliRun run = Latpred({"health"});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "SERVING\n");
  server_->GetHealthCheckService()->SetServingStatus(false);
  run = Latpred({"health"});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.out, "NOT_SERVING\n");
  EXPECT_THAT(run.err, HasSubstr("latpred: health: UNAVAILABLE:"));
}

TEST_F(FakeServerTest, CliDevicesTable) {
  CliRun run = Latpred({"devices"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out,
            "NAME    SOURCE  SPACES                 LABELS\n"
            "pixel3  yes     nb201:15625:source:v1  -\n"
            "orin    no      nb201:12:adapted:v3    kind=gpu,vendor=nvidia\n");
  run = Latpred({"devices", "--registered", "--json"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("\"name\": \"orin\""));
  EXPECT_THAT(run.out, HasSubstr("\"source\": false"));  // primitive fields printed
  EXPECT_THAT(run.out, HasSubstr("\"sample_count\""));   // proto field names kept
  EXPECT_THAT(run.out, ::testing::Not(HasSubstr("pixel3")));
}

TEST_F(FakeServerTest, CliDeviceView) {
  CliRun run = Latpred({"device", "orin"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("labels:   kind=gpu,vendor=nvidia\n"));
  EXPECT_THAT(run.out, HasSubstr("dram_gbps  51.2   microbenchmark  GB/s"));
  EXPECT_THAT(run.out, HasSubstr("nb201  12       adapted  v3"));
  EXPECT_THAT(run.out, HasSubstr("created:  2023-11-14 22:13:20 UTC"));
  run = Latpred({"device", "nope"});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.err, "latpred: device: NOT_FOUND: device 'nope' not found\n");
}

TEST_F(FakeServerTest, CliRegisterSendsDescriptorAndLabels) {
  CliRun run =
      Latpred({"register", "orin", "--label", "vendor=nvidia", "--descriptor", "-"},
              R"({"features": [{"name": "ref", "value": 1.5,
                                         "source": "reference_latency"}],
                           "labels": {"vendor": "other", "kind": "gpu"}})");
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "created device orin (2 labels, 1 features)\n");
  const v1::RegisterDeviceRequest request = service_.last_register();
  EXPECT_EQ(request.name(), "orin");
  EXPECT_EQ(request.labels().at("vendor"), "nvidia");
  EXPECT_EQ(request.features(0).source(), v1::FEATURE_SOURCE_REFERENCE_LATENCY);
}

TEST_F(FakeServerTest, CliPredictSplitsIntoServerBatches) {
  CliRun run = Latpred({"predict", "--device", "orin", "--space", "nb201", "a", "bb",
                        "ccc", "dddd", "eeeee"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(service_.batch_sizes(), (std::vector<int>{2, 2, 1}));
  EXPECT_EQ(run.out,
            "ARCH   LATENCY_MS\n"
            "a      0.5000\n"
            "bb     1.0000\n"
            "ccc    1.5000\n"
            "dddd   2.0000\n"
            "eeeee  2.5000\n"
            "model v3 (adapted)\n");
}

TEST_F(FakeServerTest, CliPredictReadsStdinAndPrintsJson) {
  CliRun run = Latpred({"predict", "--device", "orin", "--space", "nb201", "--json"},
                       absl::StrCat(kNb201Arch, "\n\n# comment\nab\n"));
  ASSERT_EQ(run.code, 0) << run.err;
  google::protobuf::Struct json;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(run.out, &json).ok())
      << run.out;
  EXPECT_EQ(json.fields().at("device").string_value(), "orin");
  EXPECT_EQ(json.fields().at("model_version").number_value(), 3);
  EXPECT_EQ(json.fields().at("state").string_value(), "MODEL_STATE_ADAPTED");
  EXPECT_FALSE(json.fields().at("zero_shot").bool_value());
  const auto& predictions = json.fields().at("predictions").list_value();
  ASSERT_EQ(predictions.values_size(), 2);
  EXPECT_EQ(predictions.values(0).struct_value().fields().at("arch").string_value(),
            kNb201Arch);
  EXPECT_EQ(predictions.values(1).struct_value().fields().at("latency_ms").number_value(),
            1);
}

TEST_F(FakeServerTest, CliPredictErrorNamesBatch) {
  CliRun run =
      Latpred({"predict", "--device", "orin", "--space", "nb201", "a", "b", "c", "bad"});
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(run.err,
            "latpred: predict: INVALID_ARGUMENT: batch of archs 2..3 (0-based): arch 1: "
            "unknown op 'conv'\n");
  run = Latpred({"predict", "--device", "orin", "--space", "nb201", "bad"});
  EXPECT_EQ(run.err, "latpred: predict: INVALID_ARGUMENT: arch 0: unknown op 'conv'\n");
}

TEST_F(FakeServerTest, CliPredictIntervalPrintsBoundsFromEveryBatch) {
  CliRun run = Latpred({"predict", "--device", "orin", "--space", "nb201", "a", "bb",
                        "cccc", "--interval", "0.8"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.err, "");
  EXPECT_EQ(service_.intervals(), (std::vector<double>{0.8, 0.8}));
  EXPECT_EQ(run.out,
            "ARCH  LATENCY_MS  LOWER_MS  UPPER_MS\n"
            "a     0.5000      0.4000    0.6250\n"
            "bb    1.0000      0.8000    1.2500\n"
            "cccc  2.0000      1.6000    2.5000\n"
            "model v3 (adapted); 80% interval: percentiles 10 to 90\n");

  run = Latpred({"predict", "--device", "orin", "--space", "nb201", "a", "bb", "--json",
                 "--interval=0.95"});
  ASSERT_EQ(run.code, 0) << run.err;
  google::protobuf::Struct json;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(run.out, &json).ok())
      << run.out;
  EXPECT_EQ(json.fields().at("interval").number_value(), 0.95);
  const auto& item = json.fields().at("predictions").list_value().values(1).struct_value();
  EXPECT_EQ(item.fields().at("latency_ms").number_value(), 1);
  EXPECT_EQ(item.fields().at("lower_ms").number_value(), 0.8);
  EXPECT_EQ(item.fields().at("upper_ms").number_value(), 1.25);

  // Without the flag nothing changes: no interval asked for, no bounds printed.
  run = Latpred({"predict", "--device", "orin", "--space", "nb201", "a", "--json"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.out, Not(HasSubstr("lower_ms")));
  EXPECT_THAT(run.out, Not(HasSubstr("interval")));
  EXPECT_EQ(service_.intervals().back(), 0);
}

TEST_F(FakeServerTest, CliPredictIntervalWithoutBoundsSaysSoOnceAndPrintsPredictions) {
  CliRun plain = Latpred({"predict", "--device", "fresh", "--space", "nb201", "a", "bb",
                          "ccc"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  CliRun run = Latpred({"predict", "--device", "fresh", "--space", "nb201", "a", "bb",
                        "ccc", "--interval", "0.8"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(service_.batch_sizes().size(), 4u);  // two batches each
  EXPECT_EQ(run.out, plain.out);
  EXPECT_EQ(run.err,
            "latpred: predict: no interval: the device's model has fewer than 3 samples "
            "or is zero-shot\n");
  run = Latpred({"predict", "--device", "fresh", "--space", "nb201", "a", "--interval",
                 "0.8", "--json"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.out, Not(HasSubstr("lower_ms")));
  EXPECT_THAT(run.err, HasSubstr("no interval"));
}

TEST_F(FakeServerTest, CliSubmitListsRejectedRowsWithTheirLines) {
  CliRun run =
      Latpred({"submit", "--device", "orin", "--space", "nb201", "-", "--partial"},
              "arch,latency_ms,repeats\na,1.5,10\n\nb,-1,10\n");
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out,
            "LINE  ARCH  RESULT    ERROR\n"
            "2     a     accepted  -\n"
            "4     b     rejected  latency_ms must be positive\n"
            "accepted 1, rejected 1; 11 samples stored for orin/nb201\n");
  const v1::SubmitSamplesRequest request = service_.last_submit();
  EXPECT_TRUE(request.partial());
  EXPECT_EQ(request.samples(0).repeats(), 10);

  run = Latpred({"submit", "--device", "orin", "--space", "nb201", "-"},
                "arch,latency_ms\na,1.5\n");
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "accepted 1, rejected 0; 11 samples stored for orin/nb201\n");
}

// SubmitSamples gives a batch a random request id and sends it again with that id while
// the server answers UNAVAILABLE (submit_attempts, 3 by default); each batch its own id.
TEST_F(FakeServerTest, SubmitRetriesUnavailableWithTheBatchsRequestId) {
  v1::SubmitSamplesRequest request;
  request.set_device("orin");
  request.set_space("nb201");
  v1::Sample* sample = request.add_samples();
  sample->set_arch("a");
  sample->set_latency_ms(1.5);
  service_.FailSubmits(2);
  absl::StatusOr<v1::SubmitSamplesResponse> response = client_->SubmitSamples(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_TRUE(response->replayed());
  std::vector<std::string> ids = service_.submit_ids();
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0].size(), 32u);
  EXPECT_EQ(ids[0].find_first_not_of("0123456789abcdef"), std::string::npos) << ids[0];
  EXPECT_EQ(ids[1], ids[0]);
  EXPECT_EQ(ids[2], ids[0]);

  ASSERT_TRUE(client_->SubmitSamples(request).ok());
  ids = service_.submit_ids();
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_NE(ids[3], ids[0]);

  // Past the attempts, the last UNAVAILABLE is the answer.
  service_.FailSubmits(5);
  response = client_->SubmitSamples(request);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(response.status().message()), HasSubstr("outcome unknown"));
  EXPECT_EQ(service_.submit_ids().size(), 7u);
  service_.FailSubmits(0);

  // A caller's own id is kept; with submit_attempts 1 the client does not retry.
  client::ClientOptions once;
  once.target = target_;
  once.submit_attempts = 1;
  auto single = client::Client::Connect(once);
  ASSERT_TRUE(single.ok()) << single.status();
  request.set_request_id("callers-own");
  service_.FailSubmits(1);
  EXPECT_EQ((*single)->SubmitSamples(request).status().code(), absl::StatusCode::kUnavailable);
  response = (*single)->SubmitSamples(request);
  ASSERT_TRUE(response.ok()) << response.status();
  ids = service_.submit_ids();
  EXPECT_EQ(std::vector<std::string>(ids.end() - 2, ids.end()),
            (std::vector<std::string>{"callers-own", "callers-own"}));
  once.submit_attempts = 0;
  EXPECT_EQ(client::Client::Connect(once).status().code(), absl::StatusCode::kInvalidArgument);
}

// `submit --request-id ID` sends that id; a rerun with it says nothing was stored again.
TEST_F(FakeServerTest, CliSubmitRequestIdRerunSaysItWasStoredBefore) {
  const std::vector<std::string> args = {"submit", "--device", "orin", "--space", "nb201",
                                         "-", "--request-id", "batch-7"};
  CliRun run = Latpred(args, "arch,latency_ms\na,1.5\n");
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "accepted 1, rejected 0; 11 samples stored for orin/nb201\n");
  EXPECT_EQ(service_.last_submit().request_id(), "batch-7");
  run = Latpred(args, "arch,latency_ms\na,1.5\n");
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out,
            "request id batch-7 was stored by an earlier submit; nothing stored again\n"
            "accepted 1, rejected 0; 11 samples stored for orin/nb201\n");
}

TEST_F(FakeServerTest, CliSubmitBadCsvNamesFileAndLine) {
  CliRun run = Latpred({"submit", "--device", "orin", "--space", "nb201", "-"},
                       "arch,latency_ms\na,fast\n");
  EXPECT_EQ(run.code, 1);
  EXPECT_EQ(
      run.err,
      "latpred: submit: INVALID_ARGUMENT: stdin: line 2: latency_ms 'fast' is not a "
      "finite number\n");
}

TEST_F(FakeServerTest, CliSuggestAdaptInfo) {
  CliRun run = Latpred({"suggest", "--device", "orin", "--space", "nb201", "-k", "3"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "arch0\narch1\narch2\n");
  run = Latpred({"suggest", "--device=orin", "--space=nb201"});
  EXPECT_EQ(std::count(run.out.begin(), run.out.end(), '\n'), 10);

  run = Latpred({"adapt", "--device", "orin", "--space", "nb201"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out,
            "model:         v4 (adapted)\n"
            "samples:       5\n"
            "fit spearman:  0.900\n"
            "fit MAPE:      3.50%\n"
            "LOO MAPE:      6.25%\n"
            "LOO log sd:    0.125\n"
            "descriptor:    0.00 of the head\n"
            "seconds:       0.50\n");
  run = Latpred({"adapt", "--device", "orin", "--space", "nb201", "--no-wait"});
  EXPECT_THAT(run.out, HasSubstr("running in the background"));

  run = Latpred({"info"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(
      run.out,
      "version:    test-1\nspaces:     nb201 fbnet\nmax batch:  2\nready:      yes\n");
  run = Latpred({"info", "--json"});
  EXPECT_THAT(run.out, HasSubstr("\"max_batch\": 2"));
}

// ---------------------------------------------------------------------------
TEST(CliTest, HelpListsEveryCommandAndAnExample) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--help"}, {"help"}, {"-h"}}) {
    CliRun run = RunLatpred(args);
    EXPECT_EQ(run.code, 0);
    EXPECT_EQ(run.err, "");
    for (const char* command : {"devices", "device NAME", "register", "predict", "submit",
                                "suggest", "adapt", "health", "info", "example"}) {
      EXPECT_THAT(run.out, HasSubstr(command));
    }
  }
}

TEST(CliTest, CommandHelp) {
  CliRun run = RunLatpred({"predict", "--help"});
  EXPECT_EQ(run.code, 0);
  EXPECT_THAT(run.out, HasSubstr("usage: latpred [GLOBAL FLAGS] predict --device NAME"));
  EXPECT_THAT(run.out, HasSubstr("example:\n  latpred predict"));
  EXPECT_THAT(run.out, HasSubstr("--interval SHARE"));
  EXPECT_THAT(run.out, HasSubstr("10th and 90th percentiles"));
  EXPECT_EQ(RunLatpred({"help", "submit"}).out, RunLatpred({"submit", "-h"}).out);
}

TEST(CliTest, UsageErrorsExitWithTwo) {
  CliRun run = RunLatpred({"frobnicate"});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("latpred: unknown command 'frobnicate'"));

  run = RunLatpred({});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("usage: latpred"));

  run = RunLatpred({"predict", "--space", "nb201", "a"});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("latpred: predict: --device is required\n"));

  run = RunLatpred({"devices", "--bogus"});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("latpred: devices: unknown flag '--bogus'"));

  run = RunLatpred({"info", "--timeout", "-1"});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("--timeout wants a positive number"));

  for (const char* bad : {"1.5", "0", "1", "-0.2", "abc", "nan"}) {
    run = RunLatpred({"predict", "--device", "d", "--space", "nb201", "a", "--interval", bad});
    EXPECT_EQ(run.code, 2) << bad;
    EXPECT_THAT(run.err, HasSubstr(absl::StrCat(
                             "latpred: predict: --interval wants a share between 0 and 1, "
                             "exclusive (0.8: the 10th to 90th percentile), got '",
                             bad, "'\n")));
  }

  run = RunLatpred({"suggest", "--device", "d", "--space", "nb201", "-k", "zero"});
  EXPECT_EQ(run.code, 2);
  run = RunLatpred({"device"});
  EXPECT_EQ(run.code, 2);
  EXPECT_THAT(run.err, HasSubstr("expected NAME, got 0 arguments"));
  run = RunLatpred({"register", "d", "--label", "novalue"});
  EXPECT_EQ(run.code, 2);
  run = RunLatpred({"help", "nothing"});
  EXPECT_EQ(run.code, 2);
}

TEST(CliTest, UnreachableServerFailsWithOne) {
  RefusingPort port;
  CliRun run = RunLatpred({"health", "--server", port.target(), "--timeout", "5"});
  EXPECT_EQ(run.code, 1);
  EXPECT_THAT(run.err,
              HasSubstr("latpred: health: UNAVAILABLE: cannot reach latpred server at " +
                        port.target()));
}

// A token that cannot go in a header (a newline, a control character, a space) made
// gRPC abort the process with the token in its log line. It is refused up front, by
// name of where it came from and without the token.
TEST(TokenTest, RefusesTokensAHeaderCannotCarryWithoutShowingThem) {
  EXPECT_TRUE(client::ValidateToken("", "LATPRED_TOKEN").ok());
  EXPECT_TRUE(client::ValidateToken("abc-DEF_0.9~+/==", "LATPRED_TOKEN").ok());
  const std::vector<std::string> refused = {
      "s3cret\n", "s3c\x01ret", "s3c ret", "s3cret\x7f", "s3cr\xc3\xa9t", std::string("s3c\0ret", 7)};
  for (const std::string& token : refused) {
    const absl::Status status = client::ValidateToken(token, "LATPRED_TOKEN");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("LATPRED_TOKEN"));
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("s3c")));
    client::ClientOptions options;
    options.token = token;
    auto connected = client::Client::Connect(options);
    EXPECT_EQ(connected.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(connected.status().message()), Not(HasSubstr("s3c")));
  }
}

TEST(TokenTest, TokenFromEnvironmentNamesTheVariableOrFile) {
  const std::string file = ::testing::TempDir() + "latpred_token_test";
  std::ofstream(file) << "s3c\x01ret\n";
  ASSERT_EQ(setenv("LATPRED_TOKEN_FILE", file.c_str(), 1), 0);
  absl::StatusOr<std::string> token = client::TokenFromEnvironment();
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(token.status().message()), HasSubstr("LATPRED_TOKEN_FILE " + file));
  EXPECT_THAT(std::string(token.status().message()), Not(HasSubstr("s3c")));
  std::ofstream(file) << "  good-token \n";  // surrounding whitespace is stripped
  token = client::TokenFromEnvironment();
  EXPECT_EQ(token.value_or(""), "good-token");
  unsetenv("LATPRED_TOKEN_FILE");
  std::remove(file.c_str());

  ASSERT_EQ(setenv("LATPRED_TOKEN", "s3cret\n", 1), 0);
  token = client::TokenFromEnvironment();
  EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(token.status().message()), HasSubstr("LATPRED_TOKEN"));
  unsetenv("LATPRED_TOKEN");
}

// The real CLI binary with LATPRED_TOKEN=$'s3cret\n': it used to die of SIGABRT.
TEST(CliTest, TokenWithAControlCharacterFailsCleanlyWithoutShowingIt) {
  RefusingPort port;
  const std::string err_file = ::testing::TempDir() + "latpred_cli_token_err";
  const std::string command = std::string("env -u LATPRED_TOKEN_FILE '") + LATPRED_CLI_BIN +
                              "' --server " + port.target() + " --timeout 5 devices 2> '" +
                              err_file + "'";
  ASSERT_EQ(setenv("LATPRED_TOKEN", "s3cret-value\n", 1), 0);
  const int status = std::system(command.c_str());
  unsetenv("LATPRED_TOKEN");
  std::ifstream in(err_file);
  const std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(err_file.c_str());
  ASSERT_TRUE(WIFEXITED(status)) << "the CLI died of a signal: " << status << "\n" << err;
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_THAT(err, HasSubstr("LATPRED_TOKEN"));
  EXPECT_THAT(err, HasSubstr("printable ASCII"));
  EXPECT_THAT(err, Not(HasSubstr("s3cret")));
}

// ---------------------------------------------------------------------------
TEST(ArgsTest, ParsesFlagsAnywhere) {
  const std::vector<cli::FlagSpec> specs = {{"device", "NAME", ""}, {"json", "", ""}};
  auto parsed = cli::ParseArgs(
      {"a", "--device=x", "-json", "-", "--device", "y", "--", "--z"}, specs);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->GetAll("device"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(parsed->Get("device"), "y");
  EXPECT_TRUE(parsed->Has("json"));
  EXPECT_EQ(parsed->positional, (std::vector<std::string>{"a", "-", "--z"}));

  EXPECT_TRUE(cli::IsUsageError(cli::ParseArgs({"--device"}, specs).status()));
  EXPECT_TRUE(cli::IsUsageError(cli::ParseArgs({"--json=1"}, specs).status()));
  EXPECT_TRUE(cli::IsUsageError(cli::ParseArgs({"--other"}, specs).status()));
  EXPECT_FALSE(cli::IsUsageError(absl::InvalidArgumentError("server said no")));
}

TEST(ArgsTest, FindsCommandAfterGlobalFlags) {
  const std::vector<cli::FlagSpec> specs = {{"server", "HOST:PORT", ""},
                                            {"json", "", ""}};
  EXPECT_EQ(*cli::FindCommand({"--server", "h:1", "--json", "devices", "-x"}, specs), 3u);
  EXPECT_EQ(*cli::FindCommand({"--json"}, specs), 1u);
  EXPECT_FALSE(cli::FindCommand({"--device", "x", "predict"}, specs).ok());
}

// ---------------------------------------------------------------------------
TEST(DescriptorJsonTest, StructuredForm) {
  auto request = cli::ParseDescriptorJson(R"({
      "features": [
        {"name": "dram_gbps", "value": 51.2, "source": "microbenchmark", "unit": "GB/s"},
        {"name": "ipc", "value": 1.7, "source": "COUNTER"},
        {"name": "nb201:|none~0|", "value": 0.8,
         "source": "FEATURE_SOURCE_REFERENCE_LATENCY"},
        {"name": "l2_kib", "value": 4096}
      ],
      "labels": {"vendor": "nvidia"}})");
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_EQ(request->features_size(), 4);
  EXPECT_EQ(request->features(0).name(), "dram_gbps");
  EXPECT_DOUBLE_EQ(request->features(0).value(), 51.2);
  EXPECT_EQ(request->features(0).unit(), "GB/s");
  EXPECT_EQ(request->features(1).source(), v1::FEATURE_SOURCE_COUNTER);
  EXPECT_EQ(request->features(2).source(), v1::FEATURE_SOURCE_REFERENCE_LATENCY);
  EXPECT_EQ(request->features(3).source(), v1::FEATURE_SOURCE_MICROBENCHMARK);
  EXPECT_EQ(request->labels().at("vendor"), "nvidia");
  EXPECT_TRUE(request->name().empty());
}

TEST(DescriptorJsonTest, FlatFormIsMicrobenchmarksInNameOrder) {
  auto request = cli::ParseDescriptorJson(R"({"l2_kib": 4096, "dram_gbps": 51.2})");
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_EQ(request->features_size(), 2);
  EXPECT_EQ(request->features(0).name(), "dram_gbps");
  EXPECT_EQ(request->features(1).value(), 4096);
  EXPECT_EQ(request->features(1).source(), v1::FEATURE_SOURCE_MICROBENCHMARK);
  EXPECT_EQ(request->labels_size(), 0);
}

TEST(DescriptorJsonTest, ErrorsNameTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{not json", "not a JSON object"},
      {"[1, 2]", "not a JSON object"},
      {R"({"dram_gbps": "fast"})", "'dram_gbps' must be a number"},
      {R"({"features": [{"name": "x", "value": 1, "source": "magic"}]})",
       "features[0]: unknown source 'magic'"},
      {R"({"features": [{"name": "x"}]})", "features[0]: 'value' must be a number"},
      {R"({"features": [{"value": 1}]})", "features[0]: missing 'name'"},
      {R"({"features": [{"name": "x", "value": 1, "scale": 2}]})", "unknown key 'scale'"},
      {R"({"features": {}})", "'features' must be a list"},
      {R"({"labels": {"n": 3}})", "label 'n' must be a string"},
      {R"({"labels": {}, "extra": 1})", "unknown key 'extra'"},
  };
  for (const auto& [json, message] : cases) {
    absl::Status status = cli::ParseDescriptorJson(json).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << json;
    EXPECT_THAT(std::string(status.message()), HasSubstr(message)) << json;
  }
}

TEST(DescriptorJsonTest, FileErrorsNameTheFile) {
  std::istringstream no_stdin;
  absl::Status status = cli::LoadDescriptorFile("/nonexistent/d.json", no_stdin).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr("/nonexistent/d.json"));

  const std::string path = ::testing::TempDir() + "/bad_descriptor.json";
  std::ofstream(path) << "{\"features\": 3}";
  status = cli::LoadDescriptorFile(path, no_stdin).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr(path + ": 'features' must be a list"));
}

// ---------------------------------------------------------------------------
TEST(SamplesCsvTest, ParsesColumnsInAnyOrder) {
  auto csv = cli::ParseSamplesCsv(
      "\xEF\xBB\xBFlatency_ms, arch ,spread_ms,repeats\r\n"
      "1.25,|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|,0.1,20\r\n"
      "\r\n"
      "2e1,\"0,1,2,3,4,5,6,7,8,0,1,2,3,4,5,6,7,8,0,1,2,3\",,\n");
  ASSERT_TRUE(csv.ok()) << csv.status();
  ASSERT_EQ(csv->samples.size(), 2u);
  EXPECT_EQ(csv->samples[0].arch(),
            "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|");
  EXPECT_DOUBLE_EQ(csv->samples[0].latency_ms(), 1.25);
  EXPECT_DOUBLE_EQ(csv->samples[0].spread_ms(), 0.1);
  EXPECT_EQ(csv->samples[0].repeats(), 20);
  EXPECT_EQ(csv->samples[1].arch(), "0,1,2,3,4,5,6,7,8,0,1,2,3,4,5,6,7,8,0,1,2,3");
  EXPECT_DOUBLE_EQ(csv->samples[1].latency_ms(), 20);
  EXPECT_EQ(csv->samples[1].repeats(), 0);
  EXPECT_EQ(csv->lines, (std::vector<int>{2, 4}));
}

TEST(SamplesCsvTest, ErrorsNameTheLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"|a|,1.5\n", "line 1: missing or bad header"},
      {"arch\nx\n", "line 1: missing header"},
      {"arch,latency_ms\nx,1\ny,abc\n",
       "line 3: latency_ms 'abc' is not a finite number"},
      {"arch,latency_ms\nx,nan\n", "line 2: latency_ms 'nan' is not a finite number"},
      {"arch,latency_ms\nx,1,2\n", "line 2: 3 fields, the header has 2"},
      {"arch,latency_ms,repeats\nx,1,2.5\n", "line 2: repeats '2.5' is not an integer"},
      {"arch,latency_ms\n,1\n", "line 2: empty arch"},
      {"arch,latency_ms\n\"x,1\n", "line 2: unterminated quote"},
      {"arch,arch,latency_ms\n", "column 'arch' repeated"},
      {"arch,latency_ms\n\n", "no samples"},
      {"", "empty input"},
  };
  for (const auto& [text, message] : cases) {
    absl::Status status = cli::ParseSamplesCsv(text).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(status.message()), HasSubstr(message)) << text;
  }
}

// ---------------------------------------------------------------------------
TEST(InputTest, ArchListSkipsBlankLinesAndComments) {
  EXPECT_EQ(cli::ParseArchList("  a  \r\n\n# note\nk3_e1-skip\n\t\n"),
            (std::vector<std::string>{"a", "k3_e1-skip"}));
  EXPECT_TRUE(cli::ParseArchList("").empty());
}

TEST(InputTest, ReadInputFromStdinOrFile) {
  std::istringstream in("from stdin");
  EXPECT_EQ(*cli::ReadInput("-", in), "from stdin");
  const std::string path = ::testing::TempDir() + "/archs.txt";
  std::ofstream(path) << "a\nb\n";
  EXPECT_EQ(*cli::ReadInput(path, in), "a\nb\n");
  absl::Status status = cli::ReadInput(::testing::TempDir(), in).status();
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(std::string(status.message()), HasSubstr(::testing::TempDir()));
}

// ---------------------------------------------------------------------------
TEST(OutputTest, TableAlignsAllButTheLastColumn) {
  EXPECT_EQ(cli::FormatTable({{"A", "BB", "C"}, {"long", "x", ""}}, "> "),
            "> A     BB  C\n> long  x   \n");
}

TEST(OutputTest, JsonScalars) {
  EXPECT_EQ(cli::JsonString("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
  EXPECT_EQ(cli::JsonNumber(0.1), "0.1");
  EXPECT_EQ(cli::JsonNumber(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(cli::JsonNumber(12), "12");
  EXPECT_EQ(cli::JsonNumber(std::nan("")), "null");
}

TEST(OutputTest, FitShowsTheLooLogSdOrADash) {
  v1::FitStats fit;
  fit.set_samples(12);
  fit.set_fit_spearman(0.95);
  fit.set_fit_mape(3.5);
  fit.set_loo_mape(6.25);
  fit.set_loo_log_sd(0.1234);
  fit.set_seconds(0.5);
  EXPECT_EQ(cli::FormatFit(fit),
            "12 samples, spearman 0.950, MAPE 3.50%, LOO MAPE 6.25%, LOO log sd 0.123, "
            "0.50 s");
  fit.set_samples(2);
  fit.set_loo_log_sd(0);  // below 3 samples: none
  EXPECT_THAT(cli::FormatFit(fit), HasSubstr("LOO log sd -, "));
}

TEST(OutputTest, StateNames) {
  EXPECT_EQ(cli::StateName(v1::MODEL_STATE_ZERO_SHOT), "zero-shot");
  EXPECT_EQ(cli::StateName(v1::MODEL_STATE_ADAPTED), "adapted");
  EXPECT_EQ(cli::StateName(v1::MODEL_STATE_SOURCE), "source");
}

}  // namespace
}  // namespace latpred
