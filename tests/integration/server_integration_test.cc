// End-to-end tests: the real latpred-server on an ephemeral port with a temporary
// SQLite store and the bundled data, driven over gRPC and through the real `latpred` CLI.
//
// The suite starts one server that leaves gold_6226 out of its source devices, stands
// that device in as a new one, learns it from 20 samples, and restarts the server on
// the same file to check that nothing changed, then once more with a stored base model
// it cannot use, to check that it retrains and refits the device.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <random>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "latpred/client/client.h"
#include "latpred/core/dataset.h"
#include "latpred/core/reference_archs.h"
#include "latpred/core/stats.h"
#include "latpred/store/store.h"
#include "read_file.h"

namespace latpred {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kHeldOut[] = "gold_6226";
constexpr char kDevice[] = "xeon-gold-6226-new";
constexpr int kMaxBatch = 512;

using ::latpred::testing::ReadFile;

// A latpred-server child process with its log in a file.
class ServerProcess {
 public:
  ServerProcess(std::string data_dir, std::string log_path)
      : data_dir_(std::move(data_dir)), log_(std::move(log_path)) {}
  ~ServerProcess() { Stop(); }

  // Starts the server and waits until it reports its port and SERVING.
  void Start(std::chrono::seconds timeout) {
    const size_t log_start = ReadFile(log_).size();  // the log is appended across restarts
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      execl(LATPRED_SERVER_BIN, LATPRED_SERVER_BIN, "--listen", "127.0.0.1:0", "--data-dir",
            data_dir_.c_str(), "--exclude-devices", kHeldOut, "--epochs", "10", "--threads", "2",
            "--max-batch", std::to_string(kMaxBatch).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (port_ == 0) {
      ASSERT_TRUE(Alive()) << "server exited early:\n" << ReadFile(log_);
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << ReadFile(log_);
      std::string log = ReadFile(log_).substr(log_start);
      size_t at = log.rfind("listening on port ");
      if (at != std::string::npos) port_ = std::atoi(log.c_str() + at + 18);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    client::ClientOptions options;
    options.target = target();
    auto c = client::Client::Connect(options);
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
    while (true) {
      ASSERT_TRUE(Alive()) << "server exited while preparing:\n" << ReadFile(log_);
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "not SERVING in time:\n"
                                                           << ReadFile(log_);
      auto health = client_->Health();
      if (health.ok() && *health == grpc::health::v1::HealthCheckResponse::SERVING) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }

  bool Alive() { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

  // SIGTERM, then wait for a clean exit (status 0).
  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "server did not shut down cleanly on SIGTERM (status " << status << ")\n"
        << ReadFile(log_);
    pid_ = -1;
    port_ = 0;
    client_.reset();
  }

  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  client::Client& client() { return *client_; }
  const std::string& log_path() const { return log_; }

 private:
  std::string data_dir_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::unique_ptr<client::Client> client_;
};

// Runs the CLI with args; returns its exit code and stdout+stderr.
std::pair<int, std::string> RunCli(const std::vector<std::string>& args) {
  std::string cmd = LATPRED_CLI_BIN;
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// --adapt-off names Adapt's parts; an unknown one stops the server before it creates or
// opens anything, naming the parts it knows.
TEST(ServerFlagsTest, UnknownAdaptationPartIsRefusedNamingTheParts) {
  const std::string dir = ::testing::TempDir() + "latpred_adapt_off_never_created";
  const std::string cmd = std::string(LATPRED_SERVER_BIN) +
                          " --listen 127.0.0.1:0 --data-dir " + dir +
                          " --adapt-off source_additive,nonsense 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_THAT(out, HasSubstr("--adapt-off"));
  EXPECT_THAT(out, HasSubstr("'nonsense'"));
  EXPECT_THAT(out, HasSubstr("embedding, additive, additive_costs, source_additive"));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

class ServerIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/latpred-it-XXXXXX";
    dir_ = new std::string(mkdtemp(tmpl));
    server_ = new ServerProcess(*dir_ + "/data", *dir_ + "/server.log");
    server_->Start(std::chrono::seconds(900));
    auto table = core::ReadLatencyTable(LATPRED_DATA_DIR "/help/nb201_latency.csv",
                                        core::Nb201Space());
    ASSERT_TRUE(table.ok()) << table.status();
    table_ = new core::LatencyTable(std::move(*table));
  }
  static void TearDownTestSuite() {
    delete server_;
    delete table_;
    std::string rm = "rm -rf '" + *dir_ + "'";
    (void)std::system(rm.c_str());
    delete dir_;
  }
  void SetUp() override {
    if (server_ == nullptr || !server_->Alive()) GTEST_SKIP() << "server did not start";
  }

  client::Client& c() { return server_->client(); }

  static std::string* dir_;
  static ServerProcess* server_;
  static core::LatencyTable* table_;
};

std::string* ServerIntegrationTest::dir_ = nullptr;
ServerProcess* ServerIntegrationTest::server_ = nullptr;
core::LatencyTable* ServerIntegrationTest::table_ = nullptr;

v1::PredictLatencyRequest Predict(const std::string& device, const std::string& space,
                                  std::vector<std::string> archs) {
  v1::PredictLatencyRequest req;
  req.set_device(device);
  req.set_space(space);
  for (auto& a : archs) req.add_archs(std::move(a));
  return req;
}

const char kGoodArch[] = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|";

TEST_F(ServerIntegrationTest, SourceDevicesAreListedAndPredicted) {
  auto devices = c().ListDevices({});
  ASSERT_TRUE(devices.ok()) << devices.status();
  std::set<std::string> names;
  for (const auto& d : devices->devices()) names.insert(d.name());
  EXPECT_TRUE(names.count("pixel2"));
  EXPECT_TRUE(names.count("desktop_cpu_core_i7_7820x_fp32"));
  EXPECT_FALSE(names.count(kHeldOut)) << "held-out device must not be a source";
  auto pred = c().PredictLatency(Predict("pixel2", "nb201", {kGoodArch}));
  ASSERT_TRUE(pred.ok()) << pred.status();
  ASSERT_EQ(pred->latency_ms_size(), 1);
  EXPECT_GT(pred->latency_ms(0), 0);
  EXPECT_EQ(pred->state(), v1::MODEL_STATE_SOURCE);
  auto fb = c().PredictLatency(
      Predict("pixel2", "fbnet", {"k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-"
                                  "k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-"
                                  "k3_e1-skip"}));
  ASSERT_TRUE(fb.ok()) << fb.status();
  EXPECT_GT(fb->latency_ms(0), 0);
}

TEST_F(ServerIntegrationTest, BadInputGetsTheRightStatusAndChangesNothing) {
  v1::RegisterDeviceRequest reg;
  reg.set_name("bad-input-dev");
  ASSERT_TRUE(c().RegisterDevice(reg).ok());
  v1::SubmitSamplesRequest good;
  good.set_device("bad-input-dev");
  good.set_space("nb201");
  auto* s = good.add_samples();
  s->set_arch(kGoodArch);
  s->set_latency_ms(12.5);
  ASSERT_TRUE(c().SubmitSamples(good).ok());

  auto expect = [](const absl::Status& st, absl::StatusCode code, const std::string& text) {
    EXPECT_EQ(st.code(), code) << st;
    EXPECT_THAT(std::string(st.message()), HasSubstr(text));
  };
  // Malformed architectures: wrong op, wrong shape, empty, 10 KB of junk.
  expect(c().PredictLatency(Predict("pixel2", "nb201", {kGoodArch, "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"})).status(),
         absl::StatusCode::kInvalidArgument, "archs[1]");
  expect(c().PredictLatency(Predict("pixel2", "nb201", {"|none~0|+|none~0|"})).status(),
         absl::StatusCode::kInvalidArgument, "archs[0]");
  expect(c().PredictLatency(Predict("pixel2", "nb201", {""})).status(),
         absl::StatusCode::kInvalidArgument, "archs[0]");
  auto junk = c().PredictLatency(Predict("pixel2", "nb201", {std::string(10240, 'x')}));
  expect(junk.status(), absl::StatusCode::kInvalidArgument, "archs[0]");
  EXPECT_LT(junk.status().message().size(), 1024u);
  // Unknown device, wrong space, empty batch, batch over the limit.
  expect(c().PredictLatency(Predict("no-such-device", "nb201", {kGoodArch})).status(),
         absl::StatusCode::kNotFound, "no-such-device");
  expect(c().PredictLatency(Predict("pixel2", "darts", {kGoodArch})).status(),
         absl::StatusCode::kInvalidArgument, "darts");
  expect(c().PredictLatency(Predict("pixel2", "nb201", {})).status(),
         absl::StatusCode::kInvalidArgument, "empty batch");
  expect(c().PredictLatency(Predict("pixel2", "nb201", std::vector<std::string>(kMaxBatch + 1, kGoodArch))).status(),
         absl::StatusCode::kResourceExhausted, "limit");
  // An architecture of the other space.
  expect(c().PredictLatency(Predict("pixel2", "fbnet", {kGoodArch})).status(),
         absl::StatusCode::kInvalidArgument, "archs[0]");
  // Latencies that are NaN, infinite, zero or negative: nothing stored.
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity(), 0.0, -3.0}) {
    v1::SubmitSamplesRequest req = good;
    req.mutable_samples(0)->set_latency_ms(20);
    auto* b = req.add_samples();
    b->set_arch("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|");
    b->set_latency_ms(bad);
    expect(c().SubmitSamples(req).status(), absl::StatusCode::kInvalidArgument, "samples[1]");
  }
  v1::SubmitSamplesRequest unknown = good;
  unknown.set_device("no-such-device");
  expect(c().SubmitSamples(unknown).status(), absl::StatusCode::kNotFound, "no-such-device");
  v1::SubmitSamplesRequest empty = good;
  empty.clear_samples();
  expect(c().SubmitSamples(empty).status(), absl::StatusCode::kInvalidArgument, "empty batch");
  // A device with samples but no adapted model and no descriptor.
  expect(c().PredictLatency(Predict("bad-input-dev", "nb201", {kGoodArch})).status(),
         absl::StatusCode::kFailedPrecondition, "AdaptDevice");
  expect(c().AdaptDevice([] { v1::AdaptDeviceRequest r; r.set_device("no-such-device"); r.set_space("nb201"); return r; }()).status(),
         absl::StatusCode::kNotFound, "no-such-device");

  // Nothing stored was changed and the server still serves.
  v1::GetDeviceRequest get;
  get.set_name("bad-input-dev");
  auto dev = c().GetDevice(get);
  ASSERT_TRUE(dev.ok()) << dev.status();
  ASSERT_EQ(dev->spaces_size(), 1);
  EXPECT_EQ(dev->spaces(0).sample_count(), 1);
  EXPECT_TRUE(server_->Alive());
  EXPECT_TRUE(c().PredictLatency(Predict("pixel2", "nb201", {kGoodArch})).ok());
}

TEST_F(ServerIntegrationTest, PartialSubmitStoresTheValidItemsAndReportsTheRest) {
  v1::RegisterDeviceRequest reg;
  reg.set_name("partial-dev");
  ASSERT_TRUE(c().RegisterDevice(reg).ok());
  v1::SubmitSamplesRequest req;
  req.set_device("partial-dev");
  req.set_space("nb201");
  req.set_partial(true);
  req.add_samples()->set_arch(kGoodArch);
  req.mutable_samples(0)->set_latency_ms(3);
  req.add_samples()->set_arch("junk");
  req.mutable_samples(1)->set_latency_ms(3);
  auto resp = c().SubmitSamples(req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_EQ(resp->accepted(), 1);
  EXPECT_EQ(resp->rejected(), 1);
  EXPECT_FALSE(resp->results(1).accepted());
  EXPECT_FALSE(resp->results(1).error().empty());
  EXPECT_EQ(resp->sample_count(), 1);
}

TEST_F(ServerIntegrationTest, ZeroShotPredictionFromADescriptorIsFlagged) {
  v1::RegisterDeviceRequest reg;
  reg.set_name("zero-shot-dev");
  auto* f = reg.add_features();
  f->set_name("mem_bandwidth_gbps");
  f->set_value(20);
  f->set_source(v1::FEATURE_SOURCE_MICROBENCHMARK);
  ASSERT_TRUE(c().RegisterDevice(reg).ok());
  auto pred = c().PredictLatency(Predict("zero-shot-dev", "nb201", {kGoodArch}));
  ASSERT_TRUE(pred.ok()) << pred.status();
  EXPECT_TRUE(pred->zero_shot());
  EXPECT_EQ(pred->state(), v1::MODEL_STATE_ZERO_SHOT);
  EXPECT_GT(pred->latency_ms(0), 0);
}

// A device registered with its nb201 reference latencies (as `latpred-agent describe`
// sends them; here the held-out device's measured ones): in fbnet, a space those
// latencies are not from, its zero-shot head is the descriptor map's (learned from the
// source devices' reference latencies and heads); in nb201 the references are samples too.
TEST_F(ServerIntegrationTest, ADescriptorSetsTheZeroShotHeadOfEverySpace) {
  const core::SearchSpace& nb201 = core::Nb201Space();
  const int col = table_->DeviceColumn(kHeldOut);
  ASSERT_GE(col, 0);
  std::map<std::string, size_t> row_of;
  for (size_t r = 0; r < table_->rows(); ++r) row_of[nb201.Canonical(table_->archs[r])] = r;
  v1::RegisterDeviceRequest reg;
  reg.set_name("described-dev");
  for (const std::string& text : core::Nb201ReferenceArchs()) {
    auto arch = nb201.Parse(text);
    ASSERT_TRUE(arch.ok());
    auto* f = reg.add_features();
    f->set_name("nb201:" + text);
    f->set_value(table_->at(row_of.at(nb201.Canonical(*arch)), col));
    f->set_source(v1::FEATURE_SOURCE_REFERENCE_LATENCY);
    f->set_unit("ms");
  }
  ASSERT_TRUE(c().RegisterDevice(reg).ok());
  v1::GetDeviceRequest get;
  get.set_name("described-dev");
  auto dev = c().GetDevice(get);
  ASSERT_TRUE(dev.ok()) << dev.status();
  std::map<std::string, v1::SpaceState> spaces;
  for (const v1::SpaceState& s : dev->spaces()) spaces[s.space()] = s;
  ASSERT_TRUE(spaces.count("fbnet") && spaces.count("nb201")) << dev->DebugString();
  EXPECT_EQ(spaces["fbnet"].state(), v1::MODEL_STATE_ZERO_SHOT);
  EXPECT_EQ(spaces["fbnet"].fit().descriptor_weight(), 1) << "the map learned nothing";
  EXPECT_EQ(spaces["nb201"].state(), v1::MODEL_STATE_ZERO_SHOT);
  EXPECT_EQ(spaces["nb201"].fit().samples(), 10);

  // The nb201 zero-shot head ranks the device's other architectures.
  std::vector<std::string> archs;
  std::vector<double> truth;
  for (size_t r = 7; r < table_->rows() && archs.size() < 300; r += 53) {
    archs.push_back(nb201.Canonical(table_->archs[r]));
    truth.push_back(table_->at(r, col));
  }
  auto pred = c().PredictLatency(Predict("described-dev", "nb201", archs));
  ASSERT_TRUE(pred.ok()) << pred.status();
  EXPECT_TRUE(pred->zero_shot());
  std::vector<double> predicted(pred->latency_ms().begin(), pred->latency_ms().end());
  EXPECT_GT(core::Spearman(truth, predicted), 0.6);
  auto fb = c().PredictLatency(Predict(
      "described-dev", "fbnet",
      {"k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-"
       "k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1-k3_e1"}));
  ASSERT_TRUE(fb.ok()) << fb.status();
  EXPECT_TRUE(fb->zero_shot());
  EXPECT_GT(fb->latency_ms(0), 0);
}

TEST_F(ServerIntegrationTest, LearnsAHeldOutDeviceFromTwentySamplesAndKeepsItAcrossRestartAndUpgrade) {
  const int col = table_->DeviceColumn(kHeldOut);
  ASSERT_GE(col, 0);
  v1::RegisterDeviceRequest reg;
  reg.set_name(kDevice);
  (*reg.mutable_labels())["hardware"] = "Intel Xeon Gold 6226";
  (*reg.mutable_labels())["batch_size"] = "1";
  ASSERT_TRUE(c().RegisterDevice(reg).ok());

  // Ask the server which 20 architectures to measure, then "measure" them, one with a
  // glitch (4x its latency, as a timer hiccup gives) that the fit must set aside.
  v1::SuggestSamplesRequest sug;
  sug.set_device(kDevice);
  sug.set_space("nb201");
  sug.set_k(20);
  auto suggested = c().SuggestSamples(sug);
  ASSERT_TRUE(suggested.ok()) << suggested.status();
  ASSERT_EQ(suggested->archs_size(), 20);
  v1::SubmitSamplesRequest sub;
  sub.set_device(kDevice);
  sub.set_space("nb201");
  std::set<std::string> measured;
  const std::string glitched = suggested->archs(11);
  for (const std::string& arch : suggested->archs()) {
    int row = table_->RowOf(arch);
    ASSERT_GE(row, 0) << arch;
    auto* s = sub.add_samples();
    s->set_arch(arch);
    s->set_latency_ms(table_->at(row, col) * (arch == glitched ? 4 : 1));
    measured.insert(arch);
  }
  ASSERT_TRUE(c().SubmitSamples(sub).ok());
  v1::AdaptDeviceRequest adapt;
  adapt.set_device(kDevice);
  adapt.set_space("nb201");
  auto adapted = c().AdaptDevice(adapt);
  ASSERT_TRUE(adapted.ok()) << adapted.status();
  EXPECT_EQ(adapted->fit().samples(), 19);
  ASSERT_EQ(adapted->fit().set_aside_size(), 1);
  EXPECT_EQ(adapted->fit().set_aside(0), glitched);
  EXPECT_GE(adapted->model_version(), 1);

  // Predict every other architecture, in batches of the server's limit.
  std::vector<std::string> archs;
  std::vector<double> truth, predicted;
  for (size_t r = 0; r < table_->rows(); ++r) {
    double v = table_->at(r, col);
    if (!(v > 0) || measured.count(table_->canonical[r])) continue;
    archs.push_back(table_->canonical[r]);
    truth.push_back(v);
  }
  auto predict_all = [&](client::Client& cl, std::vector<double>* out, int64_t* version) {
    out->clear();
    for (size_t i = 0; i < archs.size(); i += kMaxBatch) {
      std::vector<std::string> batch(archs.begin() + i,
                                     archs.begin() + std::min(archs.size(), i + kMaxBatch));
      auto resp = cl.PredictLatency(Predict(kDevice, "nb201", batch));
      ASSERT_TRUE(resp.ok()) << resp.status();
      EXPECT_FALSE(resp->zero_shot());
      *version = resp->model_version();
      out->insert(out->end(), resp->latency_ms().begin(), resp->latency_ms().end());
    }
  };
  int64_t version = 0;
  predict_all(c(), &predicted, &version);
  ASSERT_EQ(predicted.size(), truth.size());
  const double rho = core::Spearman(truth, predicted);
  std::printf("held-out %s: Spearman %.4f, Kendall %.4f, within 10%% %.3f, MAPE %.1f%% over %zu archs\n",
              kHeldOut, rho, core::KendallTau(truth, predicted),
              core::WithinBound(truth, predicted, 0.1), core::Mape(truth, predicted), truth.size());
  EXPECT_GE(rho, 0.8);

  // The 80% predictive interval: bounds around every prediction, holding a broad share
  // of the measured latencies (the bench measures its calibration); outside (0, 1) the
  // request is INVALID_ARGUMENT.
  int inside = 0, bounded = 0;
  for (size_t i = 0; i < archs.size(); i += kMaxBatch) {
    std::vector<std::string> batch(archs.begin() + i,
                                   archs.begin() + std::min(archs.size(), i + kMaxBatch));
    v1::PredictLatencyRequest with_interval = Predict(kDevice, "nb201", batch);
    with_interval.set_interval(0.8);
    auto resp = c().PredictLatency(with_interval);
    ASSERT_TRUE(resp.ok()) << resp.status();
    ASSERT_EQ(resp->lower_ms_size(), resp->latency_ms_size());
    ASSERT_EQ(resp->upper_ms_size(), resp->latency_ms_size());
    for (int j = 0; j < resp->latency_ms_size(); ++j) {
      ASSERT_LT(resp->lower_ms(j), resp->latency_ms(j));
      ASSERT_GT(resp->upper_ms(j), resp->latency_ms(j));
      const double t = truth[i + j];
      inside += t >= resp->lower_ms(j) && t <= resp->upper_ms(j);
      ++bounded;
    }
  }
  const double coverage = inside / static_cast<double>(bounded);
  std::printf("80%% interval holds %.3f of %d held-out latencies\n", coverage, bounded);
  EXPECT_GT(coverage, 0.5);
  v1::PredictLatencyRequest bad_interval = Predict(kDevice, "nb201", {archs[0]});
  bad_interval.set_interval(1.5);
  auto refused = c().PredictLatency(bad_interval);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("interval"));

  // Restart on the same file: same device, samples, model version and predictions.
  server_->Stop();
  auto start = std::chrono::steady_clock::now();
  server_->Start(std::chrono::seconds(120));
  double restart_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("restart to SERVING: %.1f s\n", restart_s);
  EXPECT_LT(restart_s, 60) << "a second start must load, not retrain";
  v1::GetDeviceRequest get;
  get.set_name(kDevice);
  auto dev = c().GetDevice(get);
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_EQ(dev->labels().at("hardware"), "Intel Xeon Gold 6226");
  ASSERT_EQ(dev->spaces_size(), 1);
  EXPECT_EQ(dev->spaces(0).sample_count(), 20);
  EXPECT_EQ(dev->spaces(0).state(), v1::MODEL_STATE_ADAPTED);
  ASSERT_EQ(dev->spaces(0).fit().set_aside_size(), 1);
  EXPECT_EQ(dev->spaces(0).fit().set_aside(0), glitched);
  std::vector<double> again;
  int64_t version_again = 0;
  predict_all(c(), &again, &version_again);
  EXPECT_EQ(version_again, version);
  ASSERT_EQ(again.size(), predicted.size());
  for (size_t i = 0; i < again.size(); ++i) ASSERT_DOUBLE_EQ(again[i], predicted[i]) << archs[i];

  // An upgrade that changes the encoding (as when nb201 gained its third one-hot block)
  // finds a stored base model it cannot use: here the newest base model claims another
  // encoding's length. The server says so, trains a new base model, and refits the
  // device on its stored samples: nothing the user submitted is lost.
  server_->Stop();
  {
    auto store = store::OpenStore(*dir_ + "/data/latpred.db");
    ASSERT_TRUE(store.ok()) << store.status();
    auto latest = (*store)->GetLatestModel("", "nb201");
    ASSERT_TRUE(latest.ok()) << latest.status();
    ASSERT_TRUE(latest->has_value());
    store::ModelRecord older = **latest;
    const size_t at = older.blob.find("\nfeatures=");
    ASSERT_NE(at, std::string::npos);
    const size_t end = older.blob.find('\n', at + 1);
    older.blob.replace(at, end - at, "\nfeatures=64");
    ASSERT_TRUE((*store)->PutModel(older).ok());
  }
  const size_t log_before = ReadFile(server_->log_path()).size();
  server_->Start(std::chrono::seconds(600));
  const std::string upgrade_log = ReadFile(server_->log_path()).substr(log_before);
  EXPECT_THAT(upgrade_log, HasSubstr("is unusable"));
  EXPECT_THAT(upgrade_log, HasSubstr(std::string(kDevice) + ": refitting nb201 head"));
  auto refit = c().GetDevice(get);
  ASSERT_TRUE(refit.ok()) << refit.status();
  ASSERT_EQ(refit->spaces_size(), 1);
  EXPECT_EQ(refit->spaces(0).sample_count(), 20);
  EXPECT_EQ(refit->spaces(0).state(), v1::MODEL_STATE_ADAPTED);
  EXPECT_GT(refit->spaces(0).model_version(), version);
  std::vector<double> refit_predictions;
  int64_t refit_version = 0;
  predict_all(c(), &refit_predictions, &refit_version);
  EXPECT_GT(refit_version, version);
  ASSERT_EQ(refit_predictions.size(), truth.size());
  EXPECT_GE(core::Spearman(truth, refit_predictions), 0.8);
}

// ListDevices a page at a time: every device exactly once in name order, pages of at
// most page_size, a token only while more follow, the sample counts of the whole
// listing, and INVALID_ARGUMENT for a bad page_size or a token this server did not issue.
TEST_F(ServerIntegrationTest, ListDevicesPagesThroughEveryDeviceInNameOrder) {
  v1::RegisterDeviceRequest reg;
  for (const char* name : {"page-a", "page-b", "page-c"}) {
    reg.set_name(name);
    ASSERT_TRUE(c().RegisterDevice(reg).ok());
  }
  auto whole = c().ListDevices({});
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(whole->next_page_token(), "");  // fewer than the default page of 1000
  std::vector<std::string> names;
  for (const v1::Device& d : whole->devices()) names.push_back(d.name());
  ASSERT_GT(names.size(), 40u);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
  for (const v1::Device& d : whole->devices()) {
    if (d.name() != "pixel2") continue;
    ASSERT_GE(d.spaces_size(), 1);
    EXPECT_EQ(d.spaces(0).space(), "nb201");
    EXPECT_EQ(d.spaces(0).sample_count(), static_cast<int64_t>(table_->archs.size()));
  }

  v1::ListDevicesRequest request;
  request.set_page_size(5);
  std::vector<std::string> paged;
  int pages = 0;
  while (true) {
    auto page = c().ListDevices(request);
    ASSERT_TRUE(page.ok()) << page.status();
    ++pages;
    ASSERT_LE(page->devices_size(), 5);
    for (const v1::Device& d : page->devices()) paged.push_back(d.name());
    if (page->next_page_token().empty()) break;
    ASSERT_EQ(page->devices_size(), 5);
    ASSERT_LT(pages, 1000) << "paging does not end";
    request.set_page_token(page->next_page_token());
  }
  EXPECT_EQ(paged, names);
  EXPECT_EQ(pages, static_cast<int>((names.size() + 4) / 5));

  // The client follows the pages itself; registered_only keeps to registered devices.
  v1::ListDevicesRequest registered;
  registered.set_registered_only(true);
  registered.set_page_size(1);
  auto all_registered = c().ListAllDevices(registered);
  ASSERT_TRUE(all_registered.ok()) << all_registered.status();
  std::vector<std::string> expected, got;
  for (const v1::Device& d : whole->devices()) {
    if (!d.source()) expected.push_back(d.name());
  }
  for (const v1::Device& d : all_registered->devices()) got.push_back(d.name());
  EXPECT_EQ(got, expected);
  EXPECT_GE(got.size(), 3u);

  v1::ListDevicesRequest bad;
  bad.set_page_size(-1);
  EXPECT_EQ(c().ListDevices(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.set_page_size(0);
  bad.set_page_token("not a token");
  EXPECT_EQ(c().ListDevices(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.set_page_token("ZGV2aWNlcy52Mjp4");  // base64 of another prefix
  EXPECT_EQ(c().ListDevices(bad).status().code(), absl::StatusCode::kInvalidArgument);
  // A token of a registered_only listing does not continue a listing of everything.
  registered.set_page_token("");
  auto first = c().ListDevices(registered);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_FALSE(first->next_page_token().empty());
  bad.set_page_token(first->next_page_token());
  EXPECT_EQ(c().ListDevices(bad).status().code(), absl::StatusCode::kInvalidArgument);
  // A page_size over the limit is capped, not refused.
  v1::ListDevicesRequest big;
  big.set_page_size(1 << 30);
  auto capped = c().ListDevices(big);
  ASSERT_TRUE(capped.ok()) << capped.status();
  EXPECT_EQ(capped->devices_size(), static_cast<int>(names.size()));
}

TEST_F(ServerIntegrationTest, CliPredictsListsAndFailsClearly) {
  const std::string server = server_->target();
  auto [rc, out] = RunCli({"--server", server, "--json", "predict", "--device", "pixel2",
                           "--space", "nb201", kGoodArch});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("\"latency_ms\""));
  std::tie(rc, out) = RunCli({"--server", server, "devices"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("pixel2"));
  std::tie(rc, out) = RunCli({"--server", server, "device", "pixel2"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("nb201"));
  std::tie(rc, out) = RunCli({"--server", server, "predict", "--device", "no-such-device",
                              "--space", "nb201", kGoodArch});
  EXPECT_NE(rc, 0);
  EXPECT_THAT(out, HasSubstr("NOT_FOUND"));
  std::tie(rc, out) = RunCli({"--server", server, "health"});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("SERVING"));
}

// `latpred predict --interval`: bounds around each prediction of a device adapted from
// 10 samples (as JSON and as a table), a note instead of bounds for a source device, a
// usage error for a share outside (0, 1); `latpred device` shows the LOO log sd.
TEST_F(ServerIntegrationTest, CliPredictsAnIntervalForAnAdaptedDevice) {
  const char kIntervalDevice[] = "cli-interval-dev";
  const int col = table_->DeviceColumn(kHeldOut);
  ASSERT_GE(col, 0);
  v1::RegisterDeviceRequest reg;
  reg.set_name(kIntervalDevice);
  ASSERT_TRUE(c().RegisterDevice(reg).ok());
  v1::SubmitSamplesRequest sub;
  sub.set_device(kIntervalDevice);
  sub.set_space("nb201");
  // Ten architectures spread over the table, each with its measured latency.
  for (size_t r = 0; r < table_->rows() && sub.samples_size() < 10; r += 1531) {
    if (!(table_->at(r, col) > 0)) continue;
    auto* s = sub.add_samples();
    s->set_arch(table_->canonical[r]);
    s->set_latency_ms(table_->at(r, col));
  }
  ASSERT_EQ(sub.samples_size(), 10);
  ASSERT_TRUE(c().SubmitSamples(sub).ok());
  v1::AdaptDeviceRequest adapt;
  adapt.set_device(kIntervalDevice);
  adapt.set_space("nb201");
  auto adapted = c().AdaptDevice(adapt);
  ASSERT_TRUE(adapted.ok()) << adapted.status();
  EXPECT_GT(adapted->fit().loo_log_sd(), 0);

  const std::string server = server_->target();
  const std::string other_arch = table_->canonical[7];
  auto [rc, out] = RunCli({"--server", server, "--json", "predict", "--device",
                           kIntervalDevice, "--space", "nb201", "--interval", "0.8",
                           kGoodArch, other_arch});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, Not(HasSubstr("no interval")));
  google::protobuf::Struct json;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out, &json).ok()) << out;
  EXPECT_EQ(json.fields().at("interval").number_value(), 0.8);
  const auto& predictions = json.fields().at("predictions").list_value();
  ASSERT_EQ(predictions.values_size(), 2);
  for (const auto& value : predictions.values()) {
    const auto& item = value.struct_value().fields();
    const double latency = item.at("latency_ms").number_value();
    EXPECT_GT(latency, 0);
    EXPECT_LT(item.at("lower_ms").number_value(), latency) << out;
    EXPECT_GT(item.at("upper_ms").number_value(), latency) << out;
  }
  std::tie(rc, out) = RunCli({"--server", server, "predict", "--device", kIntervalDevice,
                              "--space", "nb201", "--interval", "0.8", kGoodArch});
  ASSERT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("LATENCY_MS  LOWER_MS  UPPER_MS"));
  EXPECT_THAT(out, HasSubstr("(adapted); 80% interval: percentiles 10 to 90"));

  // A source device's model has no leave-one-out errors: predictions only, and a note.
  std::tie(rc, out) = RunCli({"--server", server, "predict", "--device", "pixel2", "--space",
                              "nb201", "--interval", "0.8", kGoodArch});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("no interval"));
  EXPECT_THAT(out, HasSubstr("LATENCY_MS"));
  EXPECT_THAT(out, Not(HasSubstr("LOWER_MS")));

  std::tie(rc, out) = RunCli({"--server", server, "predict", "--device", kIntervalDevice,
                              "--space", "nb201", "--interval", "1.5", kGoodArch});
  EXPECT_EQ(rc, 2) << out;
  EXPECT_THAT(out, HasSubstr("--interval wants a share between 0 and 1"));
  EXPECT_THAT(out, HasSubstr("got '1.5'"));

  std::tie(rc, out) = RunCli({"--server", server, "device", kIntervalDevice});
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("LOO log sd 0."));
}

}  // namespace
}  // namespace latpred
