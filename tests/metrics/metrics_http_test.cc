// MetricsHttpServer with short limits: clients that connect and send nothing, or send a
// request head a byte at a time, or open more connections than the limit, hold no
// worker, are closed by the server itself, and never keep a scrape waiting.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "latpred/metrics/metrics.h"

namespace latpred::metrics {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// Deadlines in these tests are 100x the server's limits: they only catch a server that
// never lets go.
constexpr auto kPatience = std::chrono::seconds(30);

HttpLimits ShortLimits() {
  HttpLimits limits;
  limits.workers = 2;
  limits.max_connections = 16;
  limits.idle_timeout = std::chrono::milliseconds(300);
  limits.request_timeout = std::chrono::milliseconds(300);
  limits.max_requests_per_connection = 3;
  return limits;
}

// A connected TCP socket to 127.0.0.1:port (blocking), or -1.
int ConnectTo(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

void SendAll(int fd, const std::string& data) {
  ASSERT_EQ(send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
}

// Everything fd receives until the peer closes it or `deadline`; `closed` says which.
std::string ReceiveUntilClosed(int fd, Clock::time_point deadline, bool* closed) {
  std::string out;
  char buffer[4096];
  *closed = false;
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n > 0) {
      out.append(buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      *closed = true;
      break;
    }
  }
  return out;
}

bool ClosedByServer(int fd) {
  bool closed = false;
  ReceiveUntilClosed(fd, Clock::now() + kPatience, &closed);
  return closed;
}

class MetricsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    metrics_ = std::make_unique<Metrics>("test");
    auto server = MetricsHttpServer::Start("127.0.0.1", 0, metrics_.get(), ShortLimits());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::string Scrape() {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_connection_timeout(kPatience);
    client.set_read_timeout(kPatience);
    auto res = client.Get("/metrics");
    return res && res->status == 200 ? res->body : std::string();
  }

  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<MetricsHttpServer> server_;
};

TEST_F(MetricsHttpTest, ServesMetricsAndKeepsConnectionsAlive) {
  EXPECT_THAT(Scrape(), HasSubstr("latpred_build_info{version=\"test\"} 1"));
  const int fd = ConnectTo(server_->port());
  ASSERT_GE(fd, 0);
  // Two requests in one write (pipelined), then a third: the third reaches the
  // per-connection limit, so its answer closes the connection.
  const std::string get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  SendAll(fd, get + get);
  SendAll(fd, get);
  bool closed = false;
  const std::string answers = ReceiveUntilClosed(fd, Clock::now() + kPatience, &closed);
  EXPECT_TRUE(closed);
  size_t count = 0;
  for (size_t at = answers.find("HTTP/1.1 200"); at != std::string::npos;
       at = answers.find("HTTP/1.1 200", at + 1)) {
    ++count;
  }
  EXPECT_EQ(count, 3u) << answers;
  EXPECT_THAT(answers, HasSubstr("Connection: close"));
  close(fd);
}

TEST_F(MetricsHttpTest, IdleConnectionsAreClosedAndHoldNoWorker) {
  // More idle connections than workers: a scrape still gets through at once.
  std::vector<int> idle;
  for (int i = 0; i < 8; ++i) idle.push_back(ConnectTo(server_->port()));
  EXPECT_THAT(Scrape(), HasSubstr("latpred_build_info"));
  for (const int fd : idle) {
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(ClosedByServer(fd));
    close(fd);
  }
}

TEST_F(MetricsHttpTest, SlowRequestHeadsAreCutOffAndHoldNoWorker) {
  // A request head sent a byte every 100 ms, past the 300 ms the server allows it.
  std::vector<int> slow;
  for (int i = 0; i < 4; ++i) {
    slow.push_back(ConnectTo(server_->port()));
    ASSERT_GE(slow.back(), 0);
    SendAll(slow.back(), "GET /metrics HTTP/1.1\r\nHost: x\r\n");
  }
  std::vector<bool> cut(slow.size(), false);
  const auto deadline = Clock::now() + kPatience;
  bool scraped = false;
  while (Clock::now() < deadline &&
         !std::all_of(cut.begin(), cut.end(), [](bool c) { return c; })) {
    for (size_t i = 0; i < slow.size(); ++i) {
      if (!cut[i] && send(slow[i], "x", 1, MSG_NOSIGNAL) != 1) cut[i] = true;
    }
    if (!scraped) {  // while the slow ones are still sending
      EXPECT_THAT(Scrape(), HasSubstr("latpred_build_info"));
      scraped = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (size_t i = 0; i < slow.size(); ++i) {
    EXPECT_TRUE(cut[i] || ClosedByServer(slow[i])) << "slow connection " << i;
    close(slow[i]);
  }
}

TEST(MetricsHttpLimitTest, PastTheConnectionLimitTheLongestWaitingAreClosedAtOnce) {
  // Timeouts far beyond the test: only the connection limit (16) closes anything here.
  HttpLimits limits = ShortLimits();
  limits.idle_timeout = std::chrono::minutes(10);
  limits.request_timeout = std::chrono::minutes(10);
  Metrics metrics("test");
  auto server = MetricsHttpServer::Start("127.0.0.1", 0, &metrics, limits);
  ASSERT_TRUE(server.ok()) << server.status();
  std::vector<int> idle;
  for (int i = 0; i < 40; ++i) {
    idle.push_back(ConnectTo((*server)->port()));
    ASSERT_GE(idle.back(), 0);
  }
  // A new client gets in and is served...
  httplib::Client client("127.0.0.1", (*server)->port());
  client.set_read_timeout(kPatience);
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_THAT(res->body, HasSubstr("latpred_build_info"));
  // ...the 25 that had waited longest were closed to let it in...
  for (int i = 0; i < 25; ++i) {
    EXPECT_TRUE(ClosedByServer(idle[i])) << "connection " << i;
  }
  // ...and the newest are still open.
  bool closed = false;
  ReceiveUntilClosed(idle.back(), Clock::now() + std::chrono::milliseconds(200), &closed);
  EXPECT_FALSE(closed);
  for (const int fd : idle) close(fd);
}

TEST_F(MetricsHttpTest, StopsPromptlyWithConnectionsOpen) {
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) held.push_back(ConnectTo(server_->port()));
  SendAll(held[0], "GET /metrics HTTP/1.1\r\n");  // a request head in progress
  const auto start = Clock::now();
  server_.reset();
  EXPECT_LT(Clock::now() - start, kPatience);
  for (const int fd : held) {
    EXPECT_TRUE(ClosedByServer(fd));
    close(fd);
  }
}

}  // namespace
}  // namespace latpred::metrics
