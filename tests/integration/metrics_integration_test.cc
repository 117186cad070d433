// Metrics end to end: the real latpred-server serves /metrics, a real Prometheus server
// scrapes it over loopback, and its HTTP API reports exactly the traffic this test sent.
// Then what clients that hold connections open cannot do to a scrape any more, and the
// state gauges following writes without the scrape counting anything.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "latpred/client/client.h"
#include "read_file.h"

namespace latpred {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

using ::latpred::testing::ReadFile;

// A free TCP port on loopback (bound, read, released).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Starts argv with stdout and stderr to log; returns the pid.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

void Stop(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
}

// The first sample value of a Prometheus instant query, or -1 when there is none yet.
double QueryValue(httplib::Client& prom, const std::string& query) {
  auto res = prom.Get("/api/v1/query", httplib::Params{{"query", query}}, httplib::Headers{});
  if (!res || res->status != 200) return -1;
  size_t at = res->body.find("\"value\":[");
  if (at == std::string::npos) return -1;
  size_t q1 = res->body.find('"', res->body.find(',', at) + 1);
  size_t q2 = res->body.find('"', q1 + 1);
  return std::stod(res->body.substr(q1 + 1, q2 - q1 - 1));
}

TEST(MetricsIntegrationTest, PrometheusScrapesTheServedTraffic) {
  char tmpl[] = "/tmp/latpred-metrics-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string server_log = dir + "/server.log";
  pid_t server = Spawn({LATPRED_SERVER_BIN, "--listen", "127.0.0.1:0", "--data-dir", dir + "/data",
                        "--metrics-port", "0", "--epochs", "3", "--threads", "2"},
                       server_log);
  pid_t prometheus = -1;
  auto cleanup = [&] {
    Stop(prometheus);
    Stop(server);
    (void)std::system(("rm -rf '" + dir + "'").c_str());
  };

  // The server prints its ports, then reports SERVING once its models are ready.
  int port = 0, metrics_port = 0;
  auto deadline = Clock::now() + std::chrono::minutes(10);
  while (port == 0 || metrics_port == 0) {
    ASSERT_LT(Clock::now(), deadline) << ReadFile(server_log);
    std::string log = ReadFile(server_log);
    if (size_t at = log.find("listening on port "); at != std::string::npos) port = std::atoi(log.c_str() + at + 18);
    if (size_t at = log.find("metrics on port "); at != std::string::npos) metrics_port = std::atoi(log.c_str() + at + 16);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  client::ClientOptions options;
  options.target = "127.0.0.1:" + std::to_string(port);
  auto c = client::Client::Connect(options);
  ASSERT_TRUE(c.ok());
  absl::Status serving = (*c)->WaitUntilServing(absl::Minutes(10));
  ASSERT_TRUE(serving.ok()) << serving << ReadFile(server_log);

  // /metrics answers in the real binary, and promtool finds nothing wrong with it.
  httplib::Client metrics("127.0.0.1", metrics_port);
  auto res = metrics.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->body, HasSubstr("latpred_build_info"));
  {
    std::ofstream(dir + "/exposition.txt") << res->body;
    std::string cmd = "promtool check metrics < '" + dir + "/exposition.txt' > '" + dir + "/promtool.txt' 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << ReadFile(dir + "/promtool.txt");
    EXPECT_EQ(ReadFile(dir + "/promtool.txt"), "");
  }

  // Known traffic: 7 batches of 3 architectures, 2 calls for an unknown device.
  v1::PredictLatencyRequest req;
  req.set_device("pixel2");
  req.set_space("nb201");
  for (int i = 0; i < 3; ++i) req.add_archs("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|");
  for (int i = 0; i < 7; ++i) ASSERT_TRUE((*c)->PredictLatency(req).ok());
  req.set_device("no-such-device");
  for (int i = 0; i < 2; ++i) EXPECT_EQ((*c)->PredictLatency(req).status().code(), absl::StatusCode::kNotFound);

  // A real Prometheus scraping the server every second.
  const int prom_port = FreePort();
  std::ofstream(dir + "/prometheus.yml")
      << "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: latpred\n"
      << "    static_configs:\n      - targets: ['127.0.0.1:" << metrics_port << "']\n";
  prometheus = Spawn({"prometheus", "--config.file=" + dir + "/prometheus.yml",
                      "--storage.tsdb.path=" + dir + "/tsdb",
                      "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)},
                     dir + "/prometheus.log");
  httplib::Client prom("127.0.0.1", prom_port);
  double predictions = -1;
  deadline = Clock::now() + std::chrono::seconds(90);
  while (predictions != 21 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    predictions = QueryValue(prom, "latpred_predictions_total{space=\"nb201\"}");
  }
  EXPECT_EQ(predictions, 21) << ReadFile(dir + "/prometheus.log");
  EXPECT_EQ(QueryValue(prom, "up{job=\"latpred\"}"), 1);
  EXPECT_EQ(QueryValue(prom, "latpred_requests_total{method=\"PredictLatency\",code=\"OK\"}"), 7);
  EXPECT_EQ(QueryValue(prom, "latpred_requests_total{method=\"PredictLatency\",code=\"NOT_FOUND\"}"), 2);
  EXPECT_EQ(QueryValue(prom, "latpred_predict_batch_size_count"), 7);
  EXPECT_EQ(QueryValue(prom, "latpred_request_duration_seconds_count{method=\"PredictLatency\"}"), 9);
  EXPECT_GT(QueryValue(prom, "latpred_samples{space=\"nb201\"}"), 600000);
  EXPECT_EQ(QueryValue(prom, "latpred_build_info"), 1);
  cleanup();
}

// Connects a TCP socket to 127.0.0.1:port, waiting at most `timeout`; -1 on failure.
int ConnectTo(int port, std::chrono::seconds timeout) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
      errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  int error = 0;
  socklen_t len = sizeof(error);
  if (poll(&p, 1, static_cast<int>(timeout.count() * 1000)) != 1 ||
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Whether the peer closed fd (EOF or reset) before deadline; what it sends is skipped.
bool ClosedByPeerWithin(int fd, Clock::time_point deadline) {
  char buffer[4096];
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 1))) <= 0) continue;
    const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      return true;
    }
  }
  return false;
}

// The value of the exposition line that starts with `series ` (e.g.
// latpred_samples{space="nb201"}), or -1 when there is none.
double SeriesValue(const std::string& exposition, const std::string& series) {
  const std::string line_start = series + " ";
  size_t at = exposition.rfind("\n" + line_start);
  if (at == std::string::npos) return -1;
  return std::stod(exposition.substr(at + 1 + line_start.size()));
}

// CPU seconds (user + system) the process has used, from /proc/PID/stat.
double CpuSeconds(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// One server, SERVING, for the tests below (its traffic is theirs alone).
class MetricsServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/latpred-metrics-load-XXXXXX";
    dir_ = new std::string(mkdtemp(tmpl));
    const std::string log = *dir_ + "/server.log";
    pid_ = Spawn({LATPRED_SERVER_BIN, "--listen", "127.0.0.1:0", "--data-dir", *dir_ + "/data",
                  "--metrics-port", "0", "--epochs", "3", "--threads", "2"},
                 log);
    auto deadline = Clock::now() + std::chrono::minutes(10);
    while (port_ == 0 || metrics_port_ == 0) {
      ASSERT_LT(Clock::now(), deadline) << ReadFile(log);
      const std::string text = ReadFile(log);
      if (size_t at = text.find("listening on port "); at != std::string::npos) {
        port_ = std::atoi(text.c_str() + at + 18);
      }
      if (size_t at = text.find("metrics on port "); at != std::string::npos) {
        metrics_port_ = std::atoi(text.c_str() + at + 16);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    client::ClientOptions options;
    options.target = "127.0.0.1:" + std::to_string(port_);
    auto c = client::Client::Connect(options);
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = c->release();
    absl::Status serving = client_->WaitUntilServing(absl::Minutes(10));
    ASSERT_TRUE(serving.ok()) << serving << ReadFile(log);
  }
  static void TearDownTestSuite() {
    delete client_;
    Stop(pid_);
    (void)std::system(("rm -rf '" + *dir_ + "'").c_str());
    delete dir_;
  }
  void SetUp() override {
    if (client_ == nullptr || metrics_port_ == 0) GTEST_SKIP() << "server did not start";
  }

  // One scrape with generous timeouts; "" when it got no 200 answer.
  static std::string Scrape(std::chrono::seconds timeout) {
    httplib::Client metrics("127.0.0.1", metrics_port_);
    metrics.set_connection_timeout(timeout);
    metrics.set_read_timeout(timeout);
    auto res = metrics.Get("/metrics");
    return res && res->status == 200 ? res->body : std::string();
  }

  static std::string* dir_;
  static pid_t pid_;
  static int port_;
  static int metrics_port_;
  static client::Client* client_;
};

std::string* MetricsServerTest::dir_ = nullptr;
pid_t MetricsServerTest::pid_ = -1;
int MetricsServerTest::port_ = 0;
int MetricsServerTest::metrics_port_ = 0;
client::Client* MetricsServerTest::client_ = nullptr;

// 200 connections that send nothing and 8 that send their headers a byte a second held
// every worker of the old server: a scrape waited for minutes, and the slow clients kept
// their workers for as long as they kept sending. Now the scrape is answered while they
// hold on, and the server closes all of them itself (idle and request-head timeouts,
// and past its connection limit at once). The bounds are generous; the server's own
// timeouts are 5 s.
TEST_F(MetricsServerTest, ScrapeIsAnsweredWhileIdleAndSlowClientsHoldConnections) {
  constexpr int kIdle = 200;
  constexpr int kSlow = 8;
  std::vector<int> idle;
  for (int i = 0; i < kIdle; ++i) {
    const int fd = ConnectTo(metrics_port_, std::chrono::seconds(10));
    if (fd >= 0) idle.push_back(fd);
  }
  EXPECT_GT(idle.size(), kIdle / 2u) << "could not open the idle connections";

  std::atomic<bool> stop{false};
  std::vector<int> slow;
  for (int i = 0; i < kSlow; ++i) {
    const int fd = ConnectTo(metrics_port_, std::chrono::seconds(10));
    if (fd < 0) continue;
    const std::string start = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    EXPECT_EQ(send(fd, start.data(), start.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(start.size()));
    slow.push_back(fd);
  }
  // A byte of one endless header line a second on every slow connection, until the
  // server closes it or the test ends.
  std::vector<std::atomic<bool>> slow_closed(slow.size());
  for (std::atomic<bool>& closed : slow_closed) closed = false;
  std::thread dribbler([&] {
    std::vector<bool> open(slow.size(), true);
    while (!stop) {
      for (size_t i = 0; i < slow.size(); ++i) {
        if (open[i] && send(slow[i], i == 0 ? "X" : "x", 1, MSG_NOSIGNAL) != 1) {
          open[i] = false;
          slow_closed[i] = true;
        }
      }
      for (int i = 0; i < 10 && !stop; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::seconds(1));  // every holder in place

  const auto scrape_start = Clock::now();
  const std::string body = Scrape(std::chrono::seconds(30));
  const double scrape_s = std::chrono::duration<double>(Clock::now() - scrape_start).count();
  EXPECT_THAT(body, HasSubstr("latpred_build_info")) << "no answer in " << scrape_s << " s";

  // The server lets go of every holder by itself.
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  int idle_closed = 0;
  for (const int fd : idle) idle_closed += ClosedByPeerWithin(fd, deadline) ? 1 : 0;
  EXPECT_EQ(idle_closed, static_cast<int>(idle.size()));
  for (size_t i = 0; i < slow.size(); ++i) {
    while (!slow_closed[i] && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_TRUE(slow_closed[i] || ClosedByPeerWithin(slow[i], Clock::now()))
        << "slow connection " << i << " still open after 60 s";
  }
  stop = true;
  dribbler.join();
  for (const int fd : idle) close(fd);
  for (const int fd : slow) close(fd);
  // And still answers.
  EXPECT_THAT(Scrape(std::chrono::seconds(30)), HasSubstr("latpred_build_info"));
}

// The devices and samples gauges follow registrations and submits as they happen, and
// a scrape does not count the store's rows: 20 scrapes cost the server well under a
// second of CPU (counting per scrape took 0.16-0.22 s each).
TEST_F(MetricsServerTest, GaugesFollowWritesAndScrapesCountNothing) {
  const std::string before = Scrape(std::chrono::seconds(30));
  const double nb201 = SeriesValue(before, "latpred_samples{space=\"nb201\"}");
  const double fbnet = SeriesValue(before, "latpred_samples{space=\"fbnet\"}");
  const double source = SeriesValue(before, "latpred_devices{kind=\"source\"}");
  const double registered = SeriesValue(before, "latpred_devices{kind=\"registered\"}");
  EXPECT_GT(nb201, 600000) << before;
  EXPECT_GT(fbnet, 0) << before;
  EXPECT_GT(source, 40) << before;
  EXPECT_GE(registered, 0) << before;

  v1::RegisterDeviceRequest reg;
  reg.set_name("gauge-dev");
  ASSERT_TRUE(client_->RegisterDevice(reg).ok());
  const char* kArchs[] = {
      "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
      "|nor_conv_1x1~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
      "|avg_pool_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"};
  v1::SubmitSamplesRequest submit;
  submit.set_device("gauge-dev");
  submit.set_space("nb201");
  for (const char* arch : kArchs) {
    v1::Sample* sample = submit.add_samples();
    sample->set_arch(arch);
    sample->set_latency_ms(2.5);
  }
  ASSERT_TRUE(client_->SubmitSamples(submit).ok());
  std::string after = Scrape(std::chrono::seconds(30));
  EXPECT_EQ(SeriesValue(after, "latpred_samples{space=\"nb201\"}"), nb201 + 3) << after;
  EXPECT_EQ(SeriesValue(after, "latpred_samples{space=\"fbnet\"}"), fbnet);
  EXPECT_EQ(SeriesValue(after, "latpred_devices{kind=\"registered\"}"), registered + 1);
  EXPECT_EQ(SeriesValue(after, "latpred_devices{kind=\"source\"}"), source);

  // The same architectures again replace samples: no new ones.
  submit.mutable_samples(0)->set_latency_ms(3.5);
  ASSERT_TRUE(client_->SubmitSamples(submit).ok());
  after = Scrape(std::chrono::seconds(30));
  EXPECT_EQ(SeriesValue(after, "latpred_samples{space=\"nb201\"}"), nb201 + 3) << after;

  const double cpu_before = CpuSeconds(pid_);
  for (int i = 0; i < 20; ++i) {
    ASSERT_THAT(Scrape(std::chrono::seconds(30)), HasSubstr("latpred_samples"));
  }
  const double cpu = CpuSeconds(pid_) - cpu_before;
  EXPECT_LT(cpu, 1.0) << "20 scrapes cost the server " << cpu << " s of CPU";
}

}  // namespace
}  // namespace latpred
