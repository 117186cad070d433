// Metrics end to end: the real latpred-server serves /metrics, a real Prometheus server
// scrapes it over loopback, and its HTTP API reports exactly the traffic this test sent.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

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

}  // namespace
}  // namespace latpred
