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
#include "latpred/metrics/metrics.h"
#include "latpred/store/store.h"
#include "latpred/v1/latpred.grpc.pb.h"
#include "job_queue.h"
#include "model_manager.h"
#include "model_registry.h"
#include "service.h"
#include "small_model.h"

namespace latpred::service {
namespace {

constexpr char kArch[] =
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|";

// A small NB201 base model trained on the bundled data.
std::shared_ptr<const predictor::BaseModel> SmallNb201Model() {
  return latpred::testing::SmallNb201Model(500, 2);
}

// The NAS-Bench-201 architecture at index (0 to 15624) of the space's enumeration.
std::string Nb201Arch(int index) {
  core::Architecture arch;
  for (int e = 0, rest = index; e < 6; ++e, rest /= 5) {
    arch.ops.push_back(static_cast<uint8_t>(rest % 5));
  }
  return core::Nb201Space().Canonical(arch);
}

// A latency for it (ms): a fixed overhead and a cost per operation, added up.
double SyntheticLatencyMs(int index) {
  constexpr double kOpCostMs[] = {0.0, 0.05, 1.1, 0.4, 0.2};
  double ms = 0.5;
  for (int e = 0, rest = index; e < 6; ++e, rest /= 5) ms += kOpCostMs[rest % 5];
  return ms;
}

std::vector<int> Range(int begin, int end) {
  std::vector<int> out;
  for (int i = begin; i < end; ++i) out.push_back(i);
  return out;
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
    }
    if (manager_ == nullptr) {
      manager_ = std::make_unique<ModelManager>(store_.get(), &registry_, &metrics_,
                                                [](const std::string&) {},
                                                limits_.max_fit_samples);
    }
    jobs_ = std::make_unique<JobQueue>();
    ServiceContext context;
    context.store = store_.get();
    context.registry = &registry_;
    context.manager = manager_.get();
    context.jobs = jobs_.get();
    context.max_batch = max_batch_;
    context.limits = limits_;
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

  // Restarts the service (and its model manager) with other limits, on the same store.
  void UseLimits(const Limits& limits, int max_batch = 64) {
    Stop();
    limits_ = limits;
    max_batch_ = max_batch;
    manager_.reset();
    Start("");
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

  metrics::Metrics metrics_{"test"};
  Limits limits_;
  int max_batch_ = 64;
  // Submits the NB201 architectures at indices with their synthetic latencies (scaled).
  grpc::Status SubmitNb201(const std::string& device, const std::vector<int>& indices,
                           bool partial = false, double scale = 1) {
    v1::SubmitSamplesRequest request;
    request.set_device(device);
    request.set_space("nb201");
    request.set_partial(partial);
    for (int index : indices) {
      v1::Sample* sample = request.add_samples();
      sample->set_arch(Nb201Arch(index));
      sample->set_latency_ms(scale * SyntheticLatencyMs(index));
    }
    v1::SubmitSamplesResponse response;
    return stub_->SubmitSamples(Context().get(), request, &response);
  }

  // Submits the indices in batches of at most max_batch_.
  void SubmitNb201InBatches(const std::string& device, const std::vector<int>& indices) {
    for (size_t i = 0; i < indices.size(); i += max_batch_) {
      const size_t end = std::min(indices.size(), i + max_batch_);
      const grpc::Status status =
          SubmitNb201(device, std::vector<int>(indices.begin() + i, indices.begin() + end));
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }

  grpc::Status RegisterNamed(const std::string& name) {
    v1::RegisterDeviceRequest request;
    request.set_name(name);
    return Register(request);
  }

  // The device as GetDevice answers it (a failed call is a test failure).
  v1::Device GetDevice(const std::string& name) {
    v1::GetDeviceRequest request;
    request.set_name(name);
    v1::Device device;
    const grpc::Status status = stub_->GetDevice(Context().get(), request, &device);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return device;
  }

  // The device's state in nb201 (an empty one when it has none).
  v1::SpaceState Nb201State(const std::string& name) {
    const v1::Device device = GetDevice(name);
    for (const v1::SpaceState& state : device.spaces()) {
      if (state.space() == "nb201") return state;
    }
    return v1::SpaceState();
  }

  grpc::Status Adapt(const std::string& device, bool no_wait, v1::AdaptDeviceResponse* response) {
    v1::AdaptDeviceRequest request;
    request.set_device(device);
    request.set_space("nb201");
    request.set_no_wait(no_wait);
    return stub_->AdaptDevice(Context().get(), request, response);
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

// A device holds at most --max-samples-per-device samples per space. A batch that would
// take it past is RESOURCE_EXHAUSTED naming the limit and its flag, and stores nothing,
// with `partial` too; samples that replace stored ones add nothing, so a device at the
// limit can still re-measure what it has.
TEST_F(ServiceGrpcTest, SamplesPastTheDeviceLimitAreRefusedWhole) {
  Limits limits;
  limits.max_samples_per_device = 10;
  UseLimits(limits);
  ASSERT_TRUE(RegisterNamed("limited-dev").ok());
  ASSERT_TRUE(SubmitNb201("limited-dev", Range(0, 8)).ok());
  EXPECT_EQ(Nb201State("limited-dev").sample_count(), 8);

  for (const bool partial : {false, true}) {
    const grpc::Status status = SubmitNb201("limited-dev", Range(8, 11), partial);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << partial;
    for (const char* part : {"--max-samples-per-device", "limit of 10", "holds 8 nb201 samples",
                             "adds 3 more", "nothing was stored"}) {
      EXPECT_TRUE(absl::StrContains(status.error_message(), part))
          << part << " not in: " << status.error_message();
    }
    EXPECT_EQ(Nb201State("limited-dev").sample_count(), 8) << partial;
  }
  // Two new ones and two replacements (one twice in the batch): 10, at the limit.
  grpc::Status status = SubmitNb201("limited-dev", {0, 1, 8, 9, 9});
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Nb201State("limited-dev").sample_count(), 10);
  // At the limit: re-measuring stored architectures is fine, one more is not.
  status = SubmitNb201("limited-dev", Range(0, 10), false, /*scale=*/1.5);
  ASSERT_TRUE(status.ok()) << status.error_message();
  status = SubmitNb201("limited-dev", {2, 3, 10});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "adds 1 more")) << status.error_message();
  EXPECT_EQ(Nb201State("limited-dev").sample_count(), 10);
  // Nothing of the refused batch was stored, not even its replacements.
  auto stored = store_->GetSamples("limited-dev", "nb201");
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ(stored->size(), 10u);
  for (const store::Sample& sample : *stored) {
    EXPECT_NE(sample.arch, Nb201Arch(10));
    if (sample.arch == Nb201Arch(2)) EXPECT_EQ(sample.latency_ms, 1.5 * SyntheticLatencyMs(2));
  }
  v1::AdaptDeviceResponse adapted;
  ASSERT_TRUE(Adapt("limited-dev", false, &adapted).ok());
  EXPECT_EQ(adapted.fit().samples(), 10);

  // The limit is per space: fbnet samples of the same device are counted apart.
  const core::SearchSpace& fbnet = core::FbnetSpace();
  v1::SubmitSamplesRequest fb;
  fb.set_device("limited-dev");
  fb.set_space("fbnet");
  for (int i = 0; i < 5; ++i) {
    core::Architecture arch;
    for (int p = 0; p < fbnet.num_positions(); ++p) {
      arch.ops.push_back(static_cast<uint8_t>((i + p) % fbnet.num_ops()));
    }
    v1::Sample* sample = fb.add_samples();
    sample->set_arch(fbnet.Canonical(arch));
    sample->set_latency_ms(10 + i);
  }
  v1::SubmitSamplesResponse submitted;
  status = stub_->SubmitSamples(Context().get(), fb, &submitted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(submitted.sample_count(), 5);
}

// RegisterDevice beyond --max-labels, --max-label-length or --max-features is
// RESOURCE_EXHAUSTED naming the limit and its flag; a new device is not created and a
// registered one keeps its labels and descriptor.
TEST_F(ServiceGrpcTest, RegisterPastLabelAndFeatureLimitsStoresNothing) {
  Limits limits;
  limits.max_labels = 3;
  limits.max_label_length = 16;
  limits.max_features = 4;
  UseLimits(limits);
  auto with = [](const std::string& name, int labels, int features) {
    v1::RegisterDeviceRequest request;
    request.set_name(name);
    for (int i = 0; i < labels; ++i) {
      (*request.mutable_labels())["key" + std::to_string(i)] = "value";
    }
    for (int i = 0; i < features; ++i) {
      v1::DescriptorFeature* f = request.add_features();
      f->set_name("bench" + std::to_string(i));
      f->set_value(1 + i);
      f->set_source(v1::FEATURE_SOURCE_MICROBENCHMARK);
    }
    return request;
  };
  struct Case {
    v1::RegisterDeviceRequest request;
    std::vector<std::string> message;
  };
  std::vector<Case> cases = {
      {with("new-dev", 4, 0), {"4 labels", "limit of 3", "--max-labels", "nothing was stored"}},
      {with("new-dev", 0, 5),
       {"5 descriptor features", "limit of 4", "--max-features", "nothing was stored"}},
      {with("new-dev", 1, 0), {"its key of 17 bytes", "limit of 16 bytes", "--max-label-length"}},
      {with("new-dev", 1, 0), {"its value of 17 bytes", "limit of 16 bytes", "--max-label-length"}},
  };
  (*cases[2].request.mutable_labels())[std::string(17, 'k')] = "v";
  cases[2].request.mutable_labels()->erase("key0");
  (*cases[3].request.mutable_labels())["key0"] = std::string(17, 'v');
  for (const Case& c : cases) {
    const grpc::Status status = Register(c.request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    for (const std::string& part : c.message) {
      EXPECT_TRUE(absl::StrContains(status.error_message(), part))
          << part << " not in: " << status.error_message();
    }
    v1::GetDeviceRequest get;
    get.set_name("new-dev");
    v1::Device device;
    EXPECT_EQ(stub_->GetDevice(Context().get(), get, &device).error_code(),
              grpc::StatusCode::NOT_FOUND)
        << "a refused registration created the device";
  }

  // At every limit: registered. Past one: refused, and the device is as it was.
  v1::RegisterDeviceRequest at_limits = with("limits-dev", 3, 4);
  (*at_limits.mutable_labels())["key0"] = std::string(16, 'v');
  (*at_limits.mutable_labels())[std::string(16, 'k')] = "v";
  at_limits.mutable_labels()->erase("key1");
  ASSERT_TRUE(Register(at_limits).ok());
  for (const auto& over : {with("limits-dev", 4, 1), with("limits-dev", 1, 5)}) {
    EXPECT_EQ(Register(over).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    const v1::Device device = GetDevice("limits-dev");
    EXPECT_EQ(device.labels_size(), 3);
    EXPECT_EQ(device.labels().at("key0"), std::string(16, 'v'));
    EXPECT_EQ(device.features_size(), 4);
  }
}

// A fit uses at most --max-fit-samples of a device's samples, the same ones each time
// (FitStats.samples says how many); a device with fewer uses all of them.
TEST_F(ServiceGrpcTest, FitOnMoreSamplesThanTheCapUsesTheCap) {
  Limits limits;
  limits.max_fit_samples = 40;
  UseLimits(limits);
  ASSERT_TRUE(RegisterNamed("many-samples").ok());
  SubmitNb201InBatches("many-samples", Range(100, 220));
  ASSERT_EQ(Nb201State("many-samples").sample_count(), 120);
  v1::AdaptDeviceResponse first, second;
  grpc::Status status = Adapt("many-samples", false, &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(first.fit().samples(), 40);
  status = Adapt("many-samples", false, &second);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(second.fit().samples(), 40);
  EXPECT_EQ(second.model_version(), first.model_version() + 1);
  EXPECT_EQ(second.fit().fit_mape(), first.fit().fit_mape()) << "another subset";
  EXPECT_EQ(second.fit().loo_mape(), first.fit().loo_mape()) << "another subset";
  const v1::SpaceState state = Nb201State("many-samples");
  EXPECT_EQ(state.sample_count(), 120);
  EXPECT_EQ(state.fit().samples(), 40);

  ASSERT_TRUE(RegisterNamed("few-samples").ok());
  SubmitNb201InBatches("few-samples", Range(300, 330));
  v1::AdaptDeviceResponse few;
  ASSERT_TRUE(Adapt("few-samples", false, &few).ok());
  EXPECT_EQ(few.fit().samples(), 30);
}

// Small fits have a job thread of their own: one completes while a big fit (more than
// small_fit_samples samples) holds the other. The big fit is held inside, at the store
// lock that serialises a device's fits, so the order is certain however slow the
// machine: the small fit's AdaptDevice returns while the big device has no model yet.
TEST_F(ServiceGrpcTest, SmallFitCompletesWhileABigOneRuns) {
  Limits limits;
  limits.small_fit_samples = 20;
  UseLimits(limits, /*max_batch=*/500);
  ASSERT_TRUE(RegisterNamed("big-fit").ok());
  ASSERT_TRUE(RegisterNamed("small-fit").ok());
  SubmitNb201InBatches("big-fit", Range(0, 400));
  SubmitNb201InBatches("small-fit", Range(5000, 5010));

  auto held = store_->Lock("adapt:big-fit:nb201");
  ASSERT_TRUE(held.ok()) << held.status();
  v1::AdaptDeviceResponse big;
  ASSERT_TRUE(Adapt("big-fit", /*no_wait=*/true, &big).ok());
  EXPECT_TRUE(big.pending());
  v1::AdaptDeviceResponse small;
  const grpc::Status status = Adapt("small-fit", false, &small);  // 60 s deadline
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(small.state(), v1::MODEL_STATE_ADAPTED);
  EXPECT_EQ(small.fit().samples(), 10);
  EXPECT_NE(Nb201State("big-fit").state(), v1::MODEL_STATE_ADAPTED)
      << "the big fit finished first";

  held->reset();  // lets the big fit go on
  absl::Notification big_done;  // the long lane runs in order: after the big fit
  ASSERT_TRUE(jobs_->Post([&] { big_done.Notify(); }, JobLane::kLong));
  big_done.WaitForNotification();
  const v1::SpaceState state = Nb201State("big-fit");
  EXPECT_EQ(state.state(), v1::MODEL_STATE_ADAPTED) << state.last_fit_error();
  EXPECT_EQ(state.fit().samples(), 400);
}

// Every fit counts in latpred_adaptations_total by result, no_wait fits too: "rejected"
// for a device that has nothing to fit (the caller's to fix), "ok" for a new model.
TEST_F(ServiceGrpcTest, AdaptationsAreCountedByResult) {
  ASSERT_TRUE(RegisterNamed("counted").ok());
  v1::AdaptDeviceResponse response;
  EXPECT_EQ(Adapt("counted", false, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(Adapt("counted", /*no_wait=*/true, &response).ok());
  absl::Notification fitted;  // the short lane runs in order: after the no_wait fit
  ASSERT_TRUE(jobs_->Post([&] { fitted.Notify(); }));
  fitted.WaitForNotification();
  SubmitNb201InBatches("counted", Range(40, 50));
  ASSERT_TRUE(Adapt("counted", false, &response).ok());
  const std::string text = metrics_.Render();
  EXPECT_TRUE(absl::StrContains(text, "latpred_adaptations_total{result=\"ok\"} 1\n")) << text;
  EXPECT_TRUE(absl::StrContains(text, "latpred_adaptations_total{result=\"rejected\"} 2\n"))
      << text;
  EXPECT_TRUE(absl::StrContains(text, "latpred_adaptations_total{result=\"failed\"} 0\n"))
      << text;
}

// A SubmitSamples request with its samples, device "retry-dev" in nb201.
v1::SubmitSamplesRequest RetryBatch(const std::string& request_id) {
  v1::SubmitSamplesRequest request;
  request.set_device("retry-dev");
  request.set_space("nb201");
  request.set_partial(true);
  request.set_request_id(request_id);
  for (int index : {11, 222, 3333}) {
    v1::Sample* sample = request.add_samples();
    sample->set_arch(Nb201Arch(index));
    sample->set_latency_ms(SyntheticLatencyMs(index));
  }
  request.add_samples()->set_arch("not an architecture");  // rejected: partial
  return request;
}

// A retry of a stored batch (same device and request_id) stores nothing and answers what
// the first call answered, with replayed = true: a newer measurement of one of its
// architectures, stored in between, stays.
TEST_F(ServiceGrpcTest, RetryWithTheSameRequestIdStoresNothingAndReplays) {
  ASSERT_TRUE(RegisterNamed("retry-dev").ok());
  const v1::SubmitSamplesRequest batch = RetryBatch("batch-0001");
  v1::SubmitSamplesResponse first;
  grpc::Status status = stub_->SubmitSamples(Context().get(), batch, &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(first.replayed());
  EXPECT_EQ(first.accepted(), 3);
  EXPECT_EQ(first.rejected(), 1);

  v1::SubmitSamplesRequest newer;
  newer.set_device("retry-dev");
  newer.set_space("nb201");
  newer.add_samples()->set_arch(Nb201Arch(11));
  newer.mutable_samples(0)->set_latency_ms(42.0);
  v1::SubmitSamplesResponse stored;
  ASSERT_TRUE(stub_->SubmitSamples(Context().get(), newer, &stored).ok());

  v1::SubmitSamplesResponse retry;
  status = stub_->SubmitSamples(Context().get(), batch, &retry);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(retry.replayed());
  EXPECT_EQ(retry.accepted(), first.accepted());
  EXPECT_EQ(retry.rejected(), first.rejected());
  ASSERT_EQ(retry.results_size(), first.results_size());
  for (int i = 0; i < first.results_size(); ++i) {
    EXPECT_EQ(retry.results(i).SerializeAsString(), first.results(i).SerializeAsString()) << i;
  }
  EXPECT_EQ(retry.sample_count(), 3);
  auto samples = store_->GetSamples("retry-dev", "nb201");
  ASSERT_TRUE(samples.ok()) << samples.status();
  ASSERT_EQ(samples->size(), 3u);
  for (const store::Sample& sample : *samples) {
    if (sample.arch == Nb201Arch(11)) EXPECT_EQ(sample.latency_ms, 42.0);
  }
  // A new id is a new batch: stored again (its samples replace the same rows).
  v1::SubmitSamplesResponse fresh;
  ASSERT_TRUE(stub_->SubmitSamples(Context().get(), RetryBatch("batch-0002"), &fresh).ok());
  EXPECT_FALSE(fresh.replayed());
  samples = store_->GetSamples("retry-dev", "nb201");
  ASSERT_TRUE(samples.ok());
  for (const store::Sample& sample : *samples) {
    if (sample.arch == Nb201Arch(11)) EXPECT_EQ(sample.latency_ms, SyntheticLatencyMs(11));
  }
}

// An id reused for a different batch is refused naming request_id, and stores nothing.
TEST_F(ServiceGrpcTest, RequestIdReusedForAnotherBatchIsInvalidArgument) {
  ASSERT_TRUE(RegisterNamed("retry-dev").ok());
  v1::SubmitSamplesResponse response;
  ASSERT_TRUE(stub_->SubmitSamples(Context().get(), RetryBatch("reused"), &response).ok());
  v1::SubmitSamplesRequest other = RetryBatch("reused");
  other.mutable_samples(0)->set_latency_ms(7.5);
  response.Clear();
  const grpc::Status status = stub_->SubmitSamples(Context().get(), other, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_TRUE(absl::StartsWith(status.error_message(), "request_id 'reused' was already used"))
      << status.error_message();
  auto samples = store_->GetSamples("retry-dev", "nb201");
  ASSERT_TRUE(samples.ok());
  for (const store::Sample& sample : *samples) EXPECT_NE(sample.latency_ms, 7.5);
}

// A request id longer than 128 bytes or holding anything but printable ASCII without
// spaces is INVALID_ARGUMENT naming the field; nothing is stored.
TEST_F(ServiceGrpcTest, MalformedRequestIdIsInvalidArgumentNamingTheField) {
  ASSERT_TRUE(RegisterNamed("retry-dev").ok());
  const std::string longest(128, 'x');
  for (const std::string& id :
       {std::string(129, 'x'), std::string("a\nb"), std::string("tab\t"), std::string("a b"),
        std::string("\x7f"), std::string("caf\xc3\xa9")}) {
    v1::SubmitSamplesResponse response;
    const grpc::Status status = stub_->SubmitSamples(Context().get(), RetryBatch(id), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << id;
    EXPECT_TRUE(absl::StartsWith(status.error_message(), "request_id '"))
        << status.error_message();
  }
  EXPECT_EQ(GetDevice("retry-dev").spaces_size(), 0);
  v1::SubmitSamplesResponse response;
  const grpc::Status status =
      stub_->SubmitSamples(Context().get(), RetryBatch(longest), &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.accepted(), 3);
}

// Limits out of range stop the server from starting, naming the flag.
TEST(ServerLimitsTest, OutOfRangeLimitsAreRefusedNamingTheFlag) {
  Options options;
  options.listen = "127.0.0.1:0";
  options.data_dir = ::testing::TempDir() + "latpred_limits_never_created";
  options.limits.max_fit_samples = 0;
  auto server = Server::Create(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(server.status().message(), "--max-fit-samples"))
      << server.status();
  options.limits.max_fit_samples = 2000;
  options.limits.max_samples_per_device = 0;
  server = Server::Create(options);
  ASSERT_FALSE(server.ok());
  EXPECT_TRUE(absl::StrContains(server.status().message(), "--max-samples-per-device"))
      << server.status();
  EXPECT_FALSE(std::filesystem::exists(options.data_dir));
}

}  // namespace
}  // namespace latpred::service
