// The case a SubmitSamples request_id exists for, on a real PostgreSQL: the database
// commits a batch but the reply to COMMIT never reaches the server (a proxy between them
// forwards COMMIT, then drops the connection instead of the answer). The server cannot
// know the outcome and says so (UNAVAILABLE, "outcome unknown"); a retry with the same
// request_id finds the batch stored and stores nothing again. The service runs for real
// on gRPC, called through the generated stub and through the C++ client, which retries.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "latpred/client/client.h"
#include "latpred/core/search_space.h"
#include "latpred/metrics/metrics.h"
#include "latpred/store/store.h"
#include "latpred/v1/latpred.grpc.pb.h"
#include "job_queue.h"
#include "model_manager.h"
#include "model_registry.h"
#include "service.h"
#include "test_postgres.h"

namespace latpred::service {
namespace {

// Forwards PostgreSQL's Unix socket protocol between the store and the server. Armed
// with a marker, it watches for a connection sending a statement that contains it, lets
// that transaction's COMMIT through, and then closes the connection instead of passing
// on the server's answer: the commit happened, the client cannot know.
class CommitReplyDropper {
 public:
  // Listens on listen_dir/.s.PGSQL.5432 and forwards to target (a socket path).
  CommitReplyDropper(const std::string& listen_dir, std::string target)
      : path_(listen_dir + "/.s.PGSQL.5432"), target_(std::move(target)) {
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address = Address(path_);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        listen(listen_fd_, 64) != 0) {
      ADD_FAILURE() << "cannot listen on " << path_ << ": " << std::strerror(errno);
      return;
    }
    accepter_ = std::thread([this] { Accept(); });
  }
  ~CommitReplyDropper() {
    stop_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    close(listen_fd_);
    if (accepter_.joinable()) accepter_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (std::thread& t : pipes_) t.join();
  }

  void Arm(const std::string& marker) {
    std::lock_guard<std::mutex> lock(mu_);
    marker_ = marker;
  }
  int dropped() const { return dropped_.load(); }

 private:
  static sockaddr_un Address(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    return address;
  }

  void Accept() {
    while (!stop_) {
      const int client = accept(listen_fd_, nullptr, nullptr);
      if (client < 0) return;
      const int server = socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un address = Address(target_);
      if (connect(server, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        close(client);
        close(server);
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      pipes_.emplace_back([this, client, server] { Pipe(client, server); });
    }
  }

  static bool SendAll(int fd, const char* data, size_t size) {
    while (size > 0) {
      const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }

  // Copies bytes both ways until either side closes, or the armed drop happens.
  void Pipe(int client, int server) {
    bool watched = false, commit_sent = false;
    char buffer[65536];
    while (!stop_) {
      pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (poll(fds, 2, 100) < 0) break;
      if (fds[0].revents != 0) {
        const ssize_t n = recv(client, buffer, sizeof(buffer), 0);
        if (n <= 0) break;
        const std::string_view data(buffer, static_cast<size_t>(n));
        {
          std::lock_guard<std::mutex> lock(mu_);
          if (!marker_.empty() && data.find(marker_) != std::string_view::npos) {
            watched = true;
          }
        }
        if (watched && data.find("COMMIT") != std::string_view::npos) commit_sent = true;
        if (!SendAll(server, buffer, static_cast<size_t>(n))) break;
      }
      if (fds[1].revents != 0) {
        const ssize_t n = recv(server, buffer, sizeof(buffer), 0);
        if (n <= 0) break;
        if (commit_sent) {  // PostgreSQL answered COMMIT: it is durable; lose the answer
          {
            std::lock_guard<std::mutex> lock(mu_);
            marker_.clear();
          }
          ++dropped_;
          break;
        }
        if (!SendAll(client, buffer, static_cast<size_t>(n))) break;
      }
    }
    close(client);
    close(server);
  }

  const std::string path_;
  const std::string target_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> dropped_{0};
  std::thread accepter_;
  std::mutex mu_;
  std::string marker_;              // guarded by mu_
  std::vector<std::thread> pipes_;  // guarded by mu_
};

std::string Nb201Arch(int index) {
  core::Architecture arch;
  for (int e = 0, rest = index; e < 6; ++e, rest /= 5) {
    arch.ops.push_back(static_cast<uint8_t>(rest % 5));
  }
  return core::Nb201Space().Canonical(arch);
}

class SubmitRetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<testing::TestPostgres*> server = testing::TestPostgres::Shared();
    if (!server.ok()) GTEST_SKIP() << server.status();
    postgres_ = *server;
    absl::StatusOr<std::string> uri = postgres_->CreateDatabase();
    ASSERT_TRUE(uri.ok()) << uri.status();
    // postgresql://latpred@/DB?host=DIR&port=5432: the proxy listens in a directory of
    // its own and forwards to DIR's socket.
    const size_t host = uri->find("host=") + 5;
    const std::string dir = uri->substr(host, uri->find('&', host) - host);
    database_ = uri->substr(uri->find("@/") + 2);
    database_ = database_.substr(0, database_.find('?'));
    std::string pattern = ::testing::TempDir() + "latpred_pgproxy_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    proxy_dir_ = pattern;
    proxy_ = std::make_unique<CommitReplyDropper>(proxy_dir_, dir + "/.s.PGSQL.5432");
    std::string proxied = *uri;
    proxied.replace(host, dir.size(), proxy_dir_);
    auto store = store::OpenStore(proxied);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    store::Device device;
    device.name = "pg-dev";
    ASSERT_TRUE(store_->UpsertDevice(device).ok());

    manager_ = std::make_unique<ModelManager>(store_.get(), &registry_, &metrics_,
                                              [](const std::string&) {}, 2000);
    jobs_ = std::make_unique<JobQueue>();
    ServiceContext context;
    context.store = store_.get();
    context.registry = &registry_;
    context.manager = manager_.get();
    context.jobs = jobs_.get();
    context.max_batch = 64;
    context.ready = &ready_;
    service_ = std::make_unique<LatencyPredictorService>(context);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::LatencyPredictor::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    jobs_.reset();
    server_.reset();
    service_.reset();
    manager_.reset();
    store_.reset();
    proxy_.reset();
    if (!proxy_dir_.empty()) std::filesystem::remove_all(proxy_dir_);
    if (postgres_ != nullptr && !database_.empty()) {
      (void)postgres_->Psql("postgres", "DROP DATABASE IF EXISTS " + database_ + " WITH (FORCE)");
    }
  }

  grpc::Status Submit(const v1::SubmitSamplesRequest& request, v1::SubmitSamplesResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return stub_->SubmitSamples(&context, request, response);
  }

  // A value from the database, read behind the store (and the proxy).
  std::string Query(const std::string& sql) {
    absl::StatusOr<std::string> out = postgres_->Psql(database_, sql);
    EXPECT_TRUE(out.ok()) << out.status();
    std::string value = out.value_or("");
    return value.substr(0, value.find('\n'));
  }

  testing::TestPostgres* postgres_ = nullptr;
  std::string database_;
  std::string proxy_dir_;
  std::unique_ptr<CommitReplyDropper> proxy_;
  std::unique_ptr<store::Store> store_;
  ModelRegistry registry_;
  metrics::Metrics metrics_{"test"};
  std::unique_ptr<ModelManager> manager_;
  std::unique_ptr<JobQueue> jobs_;
  std::atomic<bool> ready_{true};
  std::unique_ptr<LatencyPredictorService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<v1::LatencyPredictor::Stub> stub_;
};

v1::SubmitSamplesRequest Batch(const std::string& request_id) {
  v1::SubmitSamplesRequest request;
  request.set_device("pg-dev");
  request.set_space("nb201");
  request.set_request_id(request_id);
  for (int index : {5, 600, 7000, 12000}) {
    v1::Sample* sample = request.add_samples();
    sample->set_arch(Nb201Arch(index));
    sample->set_latency_ms(1.0 + index / 1000.0);
  }
  return request;
}

// The lost reply, step by step: UNAVAILABLE saying "outcome unknown" although the batch
// is stored; a newer measurement of one of its architectures; the retry with the same
// request_id stores nothing (the newer latency stays, one request id row) and answers
// replayed = true with the first call's counts.
TEST_F(SubmitRetryTest, RetryAfterALostCommitReplyStoresNothingAgain) {
  const v1::SubmitSamplesRequest batch = Batch("lost-reply-1");
  proxy_->Arm("INSERT INTO request_ids");
  v1::SubmitSamplesResponse response;
  grpc::Status status = Submit(batch, &response);
  ASSERT_EQ(proxy_->dropped(), 1);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "outcome unknown"))
      << status.error_message();
  // It was committed all the same.
  EXPECT_EQ(Query("SELECT COUNT(*) FROM samples WHERE device = 'pg-dev'"), "4");
  EXPECT_EQ(Query("SELECT request_id FROM request_ids WHERE device = 'pg-dev'"), "lost-reply-1");

  v1::SubmitSamplesRequest newer;
  newer.set_device("pg-dev");
  newer.set_space("nb201");
  newer.add_samples()->set_arch(Nb201Arch(5));
  newer.mutable_samples(0)->set_latency_ms(55.5);
  ASSERT_TRUE(Submit(newer, &response).ok());

  response.Clear();
  status = Submit(batch, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.replayed());
  EXPECT_EQ(response.accepted(), 4);
  EXPECT_EQ(response.rejected(), 0);
  EXPECT_EQ(response.sample_count(), 4);
  EXPECT_EQ(Query("SELECT COUNT(*) FROM request_ids"), "1");
  EXPECT_EQ(Query("SELECT count FROM sample_counts WHERE device = 'pg-dev'"), "4");
  EXPECT_EQ(Query(absl::StrCat("SELECT latency_ms FROM samples WHERE arch = '",
                               Nb201Arch(5), "'")),
            "55.5");
}

// Without a request_id the same retry stores the batch again, undoing the newer
// measurement: what the id prevents.
TEST_F(SubmitRetryTest, WithoutARequestIdTheRetryStoresTheBatchAgain) {
  const v1::SubmitSamplesRequest batch = Batch("");
  proxy_->Arm("INSERT INTO samples");
  v1::SubmitSamplesResponse response;
  grpc::Status status = Submit(batch, &response);
  ASSERT_EQ(proxy_->dropped(), 1);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_TRUE(absl::StrContains(status.error_message(), "outcome unknown"));
  v1::SubmitSamplesRequest newer;
  newer.set_device("pg-dev");
  newer.set_space("nb201");
  newer.add_samples()->set_arch(Nb201Arch(5));
  newer.mutable_samples(0)->set_latency_ms(55.5);
  ASSERT_TRUE(Submit(newer, &response).ok());
  ASSERT_TRUE(Submit(batch, &response).ok());
  EXPECT_FALSE(response.replayed());
  EXPECT_EQ(Query(absl::StrCat("SELECT latency_ms FROM samples WHERE arch = '",
                               Nb201Arch(5), "'")),
            "1.005");
  EXPECT_EQ(Query("SELECT COUNT(*) FROM request_ids"), "0");
}

// The C++ client gives a batch a request id and retries it on UNAVAILABLE with that id:
// the caller sees one success, replayed, and the database holds the batch once.
TEST_F(SubmitRetryTest, TheClientRetriesWithTheSameIdAndTheBatchIsStoredOnce) {
  client::ClientOptions options;
  options.target = absl::StrCat("127.0.0.1:", port_);
  options.timeout = absl::Seconds(60);
  auto client = client::Client::Connect(options);
  ASSERT_TRUE(client.ok()) << client.status();
  proxy_->Arm("INSERT INTO request_ids");
  absl::StatusOr<v1::SubmitSamplesResponse> response = (*client)->SubmitSamples(Batch(""));
  ASSERT_EQ(proxy_->dropped(), 1);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_TRUE(response->replayed());
  EXPECT_EQ(response->accepted(), 4);
  EXPECT_EQ(Query("SELECT COUNT(*) FROM request_ids"), "1");
  EXPECT_EQ(Query("SELECT length(request_id) FROM request_ids"), "32");
  EXPECT_EQ(Query("SELECT COUNT(*) FROM samples"), "4");
  // A second batch gets an id of its own: stored, not replayed.
  response = (*client)->SubmitSamples(Batch(""));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_FALSE(response->replayed());
  EXPECT_EQ(Query("SELECT COUNT(*) FROM request_ids"), "2");
}

}  // namespace
}  // namespace latpred::service
