// The gRPC service served for real: LatencyPredictorService on an ephemeral port with a
// SQLite store in a temporary directory and a small NB201 base model, called through
// the generated stub (and a generic stub for raw request bytes). What these tests pin
// down is what a client sees: status codes, messages, and values that leave the server.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "latpred/core/dataset.h"
#include "latpred/core/search_space.h"
#include "latpred/store/store.h"
#include "latpred/v1/latpred.grpc.pb.h"
#include "job_queue.h"
#include "model_manager.h"
#include "model_registry.h"
#include "service.h"

namespace latpred::service {
namespace {

constexpr char kArch[] =
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|";

// A small NB201 base model trained on the bundled data (about a second on 2 cores).
std::shared_ptr<const predictor::BaseModel> SmallNb201Model() {
  auto table = core::ReadLatencyTable(LATPRED_DATA_DIR "/help/nb201_latency.csv",
                                      core::Nb201Space());
  EXPECT_TRUE(table.ok()) << table.status();
  if (!table.ok()) return nullptr;
  predictor::TrainingData data;
  data.space = &core::Nb201Space();
  data.devices = table->devices;
  for (size_t r = 0; r < 500; ++r) {
    data.archs.push_back(table->archs[r]);
    for (size_t c = 0; c < table->devices.size(); ++c) data.latency_ms.push_back(table->at(r, c));
  }
  predictor::TrainOptions options;
  options.epochs = 2;
  options.threads = 2;
  auto model = predictor::BaseModel::Train(data, options);
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : nullptr;
}

// The service with everything it works with, listening on 127.0.0.1:<ephemeral>.
class ServiceGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(""); }
  void TearDown() override { Stop(); }

  // (Re)starts the service; a non-empty token guards writes (and reads, when asked).
  void Start(const std::string& token, bool token_for_reads = false) {
    if (dir_.empty()) {
      std::string pattern = ::testing::TempDir() + "latpred_service_grpc_XXXXXX";
      ASSERT_NE(mkdtemp(pattern.data()), nullptr);
      dir_ = pattern;
      auto store = store::OpenStore(dir_ + "/store.db");
      ASSERT_TRUE(store.ok()) << store.status();
      store_ = *std::move(store);
      auto model = SmallNb201Model();
      ASSERT_NE(model, nullptr);
      registry_.SetBase("nb201", BaseEntry{model, 1});
      manager_ = std::make_unique<ModelManager>(store_.get(), &registry_, nullptr,
                                                [](const std::string&) {});
    }
    jobs_ = std::make_unique<JobQueue>();
    ServiceContext context;
    context.store = store_.get();
    context.registry = &registry_;
    context.manager = manager_.get();
    context.jobs = jobs_.get();
    context.max_batch = 64;
    context.ready = &ready_;
    context.token = token;
    context.token_for_reads = token_for_reads;
    service_ = std::make_unique<LatencyPredictorService>(context);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::LatencyPredictor::NewStub(channel_);
  }

  void Stop() {
    if (server_ != nullptr) server_->Shutdown();
    jobs_.reset();  // finishes queued adaptations
    server_.reset();
    service_.reset();
  }

  ~ServiceGrpcTest() override {
    Stop();
    manager_.reset();
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // A context with a generous deadline (the machine may be busy).
  static std::unique_ptr<grpc::ClientContext> Context(const std::string& authorization = "") {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    if (!authorization.empty()) context->AddMetadata("authorization", authorization);
    return context;
  }

  grpc::Status Register(const v1::RegisterDeviceRequest& request,
                        const std::string& authorization = "") {
    v1::RegisterDeviceResponse response;
    return stub_->RegisterDevice(Context(authorization).get(), request, &response);
  }

  grpc::Status Predict(const std::string& device, v1::PredictLatencyResponse* response) {
    v1::PredictLatencyRequest request;
    request.set_device(device);
    request.set_space("nb201");
    request.add_archs(kArch);
    request.add_archs("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|");
    return stub_->PredictLatency(Context().get(), request, response);
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  ModelRegistry registry_;
  std::unique_ptr<ModelManager> manager_;
  std::unique_ptr<JobQueue> jobs_;
  std::atomic<bool> ready_{true};
  std::unique_ptr<LatencyPredictorService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::LatencyPredictor::Stub> stub_;
};

v1::RegisterDeviceRequest WithReferenceLatencies(const std::string& name,
                                                 std::vector<double> latencies_ms) {
  const char* archs[] = {kArch, "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
                         "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|none~0|none~1|none~2|"};
  v1::RegisterDeviceRequest request;
  request.set_name(name);
  for (size_t i = 0; i < latencies_ms.size(); ++i) {
    v1::DescriptorFeature* f = request.add_features();
    f->set_name(std::string("nb201:") + archs[i % 3]);
    f->set_value(latencies_ms[i]);
    f->set_source(v1::FEATURE_SOURCE_REFERENCE_LATENCY);
    f->set_unit("ms");
  }
  return request;
}

// Reference latencies far outside what any network takes (1e308 ms, 1e-300 ms) made
// zero-shot heads that predicted +inf and 0 with status OK. Registration refuses them,
// naming the feature and the range; ordinary ones register and predict finite values.
TEST_F(ServiceGrpcTest, RegisterRefusesReferenceLatenciesOutsideTheirRange) {
  for (double bad : {1e308, 1e-300, 1e8, 0.0, -2.0}) {
    grpc::Status status = Register(WithReferenceLatencies("extreme-dev", {5.0, bad}));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_TRUE(absl::StrContains(status.error_message(), "features[1]")) << status.error_message();
    EXPECT_TRUE(absl::StrContains(status.error_message(), "[1e-06, 1e+07] ms"))
        << status.error_message();
  }
  v1::PredictLatencyResponse response;
  EXPECT_EQ(Predict("extreme-dev", &response).error_code(), grpc::StatusCode::NOT_FOUND)
      << "a refused registration stores nothing";

  v1::RegisterDeviceRequest counter = WithReferenceLatencies("counter-dev", {5.0});
  v1::DescriptorFeature* f = counter.add_features();
  f->set_name("ipc");
  f->set_value(std::numeric_limits<double>::infinity());
  f->set_source(v1::FEATURE_SOURCE_COUNTER);
  grpc::Status status = Register(counter);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "features[1]")) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "finite")) << status.error_message();

  ASSERT_TRUE(Register(WithReferenceLatencies("sane-dev", {1e-6, 4.0, 1e7})).ok());
  ASSERT_TRUE(Predict("sane-dev", &response).ok());
  EXPECT_TRUE(response.zero_shot());
  for (double v : response.latency_ms()) EXPECT_TRUE(v > 0 && std::isfinite(v)) << v;
}

// A head whose prediction is not a positive finite number (a stored model from before
// the descriptor bounds, or a fit gone wrong) never answers OK: INTERNAL, naming the
// device and the architecture's index.
TEST_F(ServiceGrpcTest, NonFinitePredictionIsInternalNeverOk) {
  BaseEntry base = registry_.GetBase("nb201");
  ASSERT_TRUE(Register(WithReferenceLatencies("broken-dev", {5.0})).ok());
  const int64_t second = core::Nb201Space().ParseIndex(
      "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|");
  ASSERT_GE(second, 0);
  for (double bad : {std::numeric_limits<double>::infinity(), 0.0, -1.0,
                     std::numeric_limits<double>::quiet_NaN()}) {
    std::shared_ptr<HeadEntry> entry =
        MakeHeadEntry(base, base.model->Prior(), 0, v1::MODEL_STATE_ZERO_SHOT);
    entry->table[second] = bad;
    registry_.SetHead("broken-dev", "nb201", entry);
    v1::PredictLatencyResponse response;
    grpc::Status status = Predict("broken-dev", &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL) << bad;
    EXPECT_TRUE(absl::StrContains(status.error_message(), "broken-dev")) << status.error_message();
    EXPECT_TRUE(absl::StrContains(status.error_message(), "archs[1]")) << status.error_message();
    EXPECT_EQ(response.latency_ms_size(), 0);
  }
}

// Sends raw bytes as the request of a method; the status and the raw reply.
grpc::Status CallRaw(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& bytes, const std::string& authorization = "") {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  if (!authorization.empty()) context.AddMetadata("authorization", authorization);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), reply;
  std::mutex mu;
  std::condition_variable done_cv;
  bool done = false;
  grpc::Status result;
  stub.UnaryCall(&context, "/latpred.v1.LatencyPredictor/" + method, grpc::StubOptions(),
                 &request, &reply, [&](grpc::Status status) {
                   std::lock_guard<std::mutex> lock(mu);
                   result = std::move(status);
                   done = true;
                   done_cv.notify_all();
                 });
  std::unique_lock<std::mutex> lock(mu);
  done_cv.wait(lock, [&] { return done; });
  return result;
}

// Bytes that are not a valid message of any request: a length running past the end, a
// varint of 11 bytes, a field number 0, an invalid wire type, and a string field
// (field 1, a string in every request that has a field 1 of length-delimited type) that
// is not UTF-8. Requests answered UNIMPLEMENTED with an empty message, and protobuf
// logged a line per request.
const std::vector<std::pair<std::string, std::string>>& BadBytes() {
  static const auto* bad = new std::vector<std::pair<std::string, std::string>>{
      {"truncated", std::string("\x0a\x05" "ab", 4)},
      {"overlong varint", std::string("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12)},
      {"field number 0", std::string("\x00\x01", 2)},
      {"wire type 7", std::string("\x0f\x01\x02", 3)},
      {"garbage", std::string("\xff\xff\xff\xff", 4)},
  };
  return *bad;
}

TEST_F(ServiceGrpcTest, UnparseableRequestsAreInvalidArgumentWithAMessage) {
  const std::vector<std::pair<std::string, std::string>> methods = {
      {"RegisterDevice", "RegisterDeviceRequest"}, {"ListDevices", "ListDevicesRequest"},
      {"GetDevice", "GetDeviceRequest"},           {"SubmitSamples", "SubmitSamplesRequest"},
      {"SuggestSamples", "SuggestSamplesRequest"}, {"AdaptDevice", "AdaptDeviceRequest"},
      {"PredictLatency", "PredictLatencyRequest"}, {"GetServerInfo", "GetServerInfoRequest"}};
  const std::string not_utf8("\x0a\x03" "a\xff" "b", 5);
  ::testing::internal::CaptureStderr();
  for (const auto& [method, type] : methods) {
    std::vector<std::pair<std::string, std::string>> cases = BadBytes();
    // Field 1 of these is a string; of ListDevices a bool, GetServerInfo has none.
    if (method != "ListDevices" && method != "GetServerInfo") cases.push_back({"not UTF-8", not_utf8});
    for (const auto& [what, bytes] : cases) {
      grpc::Status status = CallRaw(channel_, method, bytes);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method << ", " << what;
      EXPECT_TRUE(absl::StartsWith(status.error_message(),
                                   "request is not a valid latpred.v1." + type + ": "))
          << method << ", " << what << ": " << status.error_message();
    }
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(absl::StrContains(log, "UTF-8")) << "protobuf logged the bad requests:\n" << log;
  // The server still answers well-formed calls.
  v1::RegisterDeviceRequest good;
  good.set_name("after-garbage");
  EXPECT_TRUE(Register(good).ok());
}

// The message says where and why, down to an item of a repeated field.
TEST_F(ServiceGrpcTest, ParseErrorsNameTheField) {
  v1::SubmitSamplesRequest request;
  request.set_device("d");
  request.set_space("nb201");
  request.add_samples()->set_arch(kArch);
  request.add_samples()->set_arch("\x01PLACEHOLDER");
  std::string bytes = request.SerializeAsString();
  bytes.replace(bytes.find("\x01PLACEHOLDER"), 1, "\xc3");  // a lead byte without its tail
  grpc::Status status = CallRaw(channel_, "SubmitSamples", bytes);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "request is not a valid latpred.v1.SubmitSamplesRequest: samples[1].arch is not "
            "valid UTF-8 (use UTF-8 text in string fields)");

  v1::RegisterDeviceRequest reg;
  reg.set_name("d");
  (*reg.mutable_labels())["k"] = "value";
  bytes = reg.SerializeAsString();
  bytes.resize(bytes.size() - 2);  // cut into the label's value
  status = CallRaw(channel_, "RegisterDevice", bytes);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "labels[0]: truncated"))
      << status.error_message();
}

// Without the token a write is UNAUTHENTICATED whatever its bytes: the token comes first.
TEST_F(ServiceGrpcTest, UnparseableWriteWithoutTheTokenIsUnauthenticated) {
  Stop();
  Start("s3cret-token");
  const std::string bytes = BadBytes()[0].second;
  EXPECT_EQ(CallRaw(channel_, "RegisterDevice", bytes).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallRaw(channel_, "RegisterDevice", bytes, "Bearer s3cret-token").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// The auth scheme is case-insensitive (RFC 7235): "bearer" and "BEARER" carry the token
// as "Bearer" does; another scheme, or the token in another case, does not.
TEST_F(ServiceGrpcTest, BearerSchemeIsCaseInsensitive) {
  Stop();
  Start("s3cret-token");
  v1::RegisterDeviceRequest request;
  request.set_name("bearer-dev");
  for (const std::string scheme : {"Bearer", "bearer", "BEARER", "bEaReR"}) {
    grpc::Status status = Register(request, scheme + " s3cret-token");
    EXPECT_TRUE(status.ok()) << scheme << ": " << status.error_message();
  }
  for (const std::string refused : {"Basic s3cret-token", "Bearers3cret-token",
                                    "Bearer S3CRET-TOKEN", "Bearer s3cret-token2", "bearer"}) {
    EXPECT_EQ(Register(request, refused).error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << refused;
  }
}

// AdaptDevice with no_wait answers before the fit runs; when the fit fails, GetDevice
// says why in the space's last_fit_error, until a fit succeeds.
TEST_F(ServiceGrpcTest, FailedNoWaitFitIsVisibleInGetDevice) {
  v1::RegisterDeviceRequest reg;
  reg.set_name("nowait-dev");
  ASSERT_TRUE(Register(reg).ok());
  v1::AdaptDeviceRequest adapt;
  adapt.set_device("nowait-dev");
  adapt.set_space("nb201");
  adapt.set_no_wait(true);
  v1::AdaptDeviceResponse adapted;
  ASSERT_TRUE(stub_->AdaptDevice(Context().get(), adapt, &adapted).ok());
  EXPECT_TRUE(adapted.pending());
  // The job queue runs jobs in order: once this one ran, so did the fit.
  absl::Notification fitted;
  ASSERT_TRUE(jobs_->Post([&] { fitted.Notify(); }));
  fitted.WaitForNotification();

  v1::GetDeviceRequest get;
  get.set_name("nowait-dev");
  v1::Device device;
  ASSERT_TRUE(stub_->GetDevice(Context().get(), get, &device).ok());
  ASSERT_EQ(device.spaces_size(), 1) << device.DebugString();
  EXPECT_EQ(device.spaces(0).space(), "nb201");
  EXPECT_TRUE(absl::StartsWith(device.spaces(0).last_fit_error(), "FAILED_PRECONDITION: "))
      << device.spaces(0).last_fit_error();
  EXPECT_TRUE(absl::StrContains(device.spaces(0).last_fit_error(), "no nb201 samples"))
      << device.spaces(0).last_fit_error();

  v1::SubmitSamplesRequest submit;
  submit.set_device("nowait-dev");
  submit.set_space("nb201");
  for (int index : {7, 512, 3000, 9001}) {
    core::Architecture arch;
    for (int e = 0, rest = index; e < 6; ++e, rest /= 5) {
      arch.ops.push_back(static_cast<uint8_t>(rest % 5));
    }
    v1::Sample* sample = submit.add_samples();
    sample->set_arch(core::Nb201Space().Canonical(arch));
    sample->set_latency_ms(3.0 + index / 1000.0);
  }
  v1::SubmitSamplesResponse submitted;
  grpc::Status status = stub_->SubmitSamples(Context().get(), submit, &submitted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  adapt.set_no_wait(false);
  status = stub_->AdaptDevice(Context().get(), adapt, &adapted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  device.Clear();
  ASSERT_TRUE(stub_->GetDevice(Context().get(), get, &device).ok());
  ASSERT_EQ(device.spaces_size(), 1);
  EXPECT_EQ(device.spaces(0).state(), v1::MODEL_STATE_ADAPTED);
  EXPECT_EQ(device.spaces(0).last_fit_error(), "");
}

}  // namespace
}  // namespace latpred::service
