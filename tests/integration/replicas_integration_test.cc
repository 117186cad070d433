// Two latpred-server replicas on one real PostgreSQL database (started by the ctest
// fixture `postgres`, or by this test when run alone): the base models are trained
// once, samples and adapted models written through one replica are served by the other,
// concurrent writes through both lose nothing and converge on one model version, and a
// SIGKILLed replica does not disturb the other.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "latpred/client/client.h"
#include "latpred/core/dataset.h"
#include "test_postgres.h"
#include "read_file.h"

namespace latpred {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kDevice[] = "edge-box";
constexpr char kHeldOut[] = "gold_6226";  // its bundled latencies stand in for a new device

using ::latpred::testing::ReadFile;

// Counts the occurrences of needle in text.
int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// One latpred-server process on the shared database, its log in a file.
class Replica {
 public:
  Replica(const std::string& dir, const std::string& name, const std::string& store)
      : log_(dir + "/" + name + ".log") {
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      const std::string data_dir = dir + "/" + name;
      execl(LATPRED_SERVER_BIN, LATPRED_SERVER_BIN, "--listen", "127.0.0.1:0", "--store",
            store.c_str(), "--data-dir", data_dir.c_str(), "--exclude-devices", kHeldOut,
            "--epochs", "3", "--threads", "1", "--sync-interval-ms", "200",
            static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~Replica() { Kill(SIGTERM); }

  // Waits for the port and SERVING, then connects a client.
  void WaitServing(Clock::time_point deadline) {
    while (port_ == 0) {
      ASSERT_TRUE(Alive()) << "replica exited early:\n" << ReadFile(log_);
      ASSERT_LT(Clock::now(), deadline) << ReadFile(log_);
      const std::string log = ReadFile(log_);
      if (size_t at = log.find("listening on port "); at != std::string::npos) {
        port_ = std::atoi(log.c_str() + at + 18);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    client::ClientOptions options;
    options.target = "127.0.0.1:" + std::to_string(port_);
    auto c = client::Client::Connect(options);
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now());
    absl::Status serving = client_->WaitUntilServing(absl::Seconds(left.count()));
    ASSERT_TRUE(serving.ok()) << serving << "\n" << ReadFile(log_);
  }

  bool Alive() { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }

  // Sends sig and reaps the process; returns its wait status.
  int Kill(int sig) {
    if (pid_ <= 0) return 0;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  client::Client& c() { return *client_; }
  std::string log() const { return ReadFile(log_); }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::unique_ptr<client::Client> client_;
};

v1::SubmitSamplesRequest Samples(const core::LatencyTable& table, size_t column, size_t from,
                                 size_t count) {
  v1::SubmitSamplesRequest req;
  req.set_device(kDevice);
  req.set_space("nb201");
  for (size_t r = from; r < from + count; ++r) {
    v1::Sample* s = req.add_samples();
    s->set_arch(table.canonical[r]);
    s->set_latency_ms(table.at(r, column));
  }
  return req;
}

v1::PredictLatencyRequest Predict(const core::LatencyTable& table) {
  v1::PredictLatencyRequest req;
  req.set_device(kDevice);
  req.set_space("nb201");
  for (size_t r = 5000; r < 5010; ++r) req.add_archs(table.canonical[r]);
  return req;
}

v1::AdaptDeviceRequest Adapt() {
  v1::AdaptDeviceRequest req;
  req.set_device(kDevice);
  req.set_space("nb201");
  return req;
}

// Polls until check() holds or the deadline passes; returns whether it held.
bool Eventually(const std::function<bool()>& check, std::chrono::seconds within) {
  const auto deadline = Clock::now() + within;
  while (Clock::now() < deadline) {
    if (check()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return check();
}

TEST(ReplicasIntegrationTest, TwoServersShareOnePostgresDatabase) {
  absl::StatusOr<testing::TestPostgres*> postgres = testing::TestPostgres::Shared();
  if (!postgres.ok()) GTEST_SKIP() << postgres.status();
  absl::StatusOr<std::string> uri = (*postgres)->CreateDatabase();
  ASSERT_TRUE(uri.ok()) << uri.status();
  const std::string database = uri->substr(uri->find("@/") + 2, uri->find('?') - uri->find("@/") - 2);
  auto sql = [&](const std::string& query) {
    absl::StatusOr<std::string> out = (*postgres)->Psql(database, query);
    EXPECT_TRUE(out.ok()) << out.status();
    return std::atoll(out.value_or("-1").c_str());
  };

  char tmpl[] = "/tmp/latpred-replicas-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  auto table = core::ReadLatencyTable(LATPRED_DATA_DIR "/help/nb201_latency.csv",
                                      core::Nb201Space());
  ASSERT_TRUE(table.ok()) << table.status();
  size_t column = 0;
  while (column < table->devices.size() && table->devices[column] != kHeldOut) ++column;
  ASSERT_LT(column, table->devices.size());

  // Both start together on an empty database: one imports and trains, the other waits
  // on the store's lock and loads what was stored.
  auto a = std::make_unique<Replica>(dir, "a", *uri);
  auto b = std::make_unique<Replica>(dir, "b", *uri);
  const auto deadline = Clock::now() + std::chrono::minutes(12);
  a->WaitServing(deadline);
  b->WaitServing(deadline);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  EXPECT_EQ(sql("SELECT COUNT(*) FROM models WHERE device = ''"), 2)
      << "one base model per space, trained once";
  EXPECT_EQ(Count(a->log() + b->log(), "training the base model"), 2)
      << "A:\n" << a->log() << "\nB:\n" << b->log();

  // A device registered and measured through A is visible through B at once (both read
  // the database).
  v1::RegisterDeviceRequest reg;
  reg.set_name(kDevice);
  ASSERT_TRUE(a->c().RegisterDevice(reg).ok());
  auto submitted = a->c().SubmitSamples(Samples(*table, column, 0, 10));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  v1::GetDeviceRequest get;
  get.set_name(kDevice);
  auto seen = b->c().GetDevice(get);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->name(), kDevice);

  // A model adapted through A is served by B within a few seconds (B polls the store's
  // model versions every 200 ms).
  auto adapted = a->c().AdaptDevice(Adapt());
  ASSERT_TRUE(adapted.ok()) << adapted.status();
  const int64_t v1 = adapted->model_version();
  auto from_a = a->c().PredictLatency(Predict(*table));
  ASSERT_TRUE(from_a.ok());
  EXPECT_EQ(from_a->model_version(), v1);
  const auto adapt_done = Clock::now();
  EXPECT_TRUE(Eventually(
      [&] {
        auto p = b->c().PredictLatency(Predict(*table));
        return p.ok() && p->model_version() == v1 && p->state() == v1::MODEL_STATE_ADAPTED;
      },
      std::chrono::seconds(5)))
      << b->log();
  std::cout << "replica B served model v" << v1 << " "
            << std::chrono::duration<double>(Clock::now() - adapt_done).count()
            << " s after A adapted it" << std::endl;
  auto from_b = b->c().PredictLatency(Predict(*table));
  ASSERT_TRUE(from_b.ok());
  ASSERT_EQ(from_b->latency_ms_size(), from_a->latency_ms_size());
  for (int i = 0; i < from_a->latency_ms_size(); ++i) {
    EXPECT_DOUBLE_EQ(from_b->latency_ms(i), from_a->latency_ms(i));
  }

  // Concurrent submissions and adaptations through both lose nothing.
  constexpr int kRounds = 8;
  constexpr size_t kBatch = 15;
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    Replica* r = w == 0 ? a.get() : b.get();
    writers.emplace_back([&, r, w] {
      for (int round = 0; round < kRounds; ++round) {
        const size_t from = 10 + (static_cast<size_t>(round) * 2 + w) * kBatch;
        if (!r->c().SubmitSamples(Samples(*table, column, from, kBatch)).ok()) ++failures;
      }
    });
    writers.emplace_back([&, r] {
      for (int round = 0; round < kRounds / 2; ++round) {
        if (!r->c().AdaptDevice(Adapt()).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : writers) t.join();
  EXPECT_EQ(failures.load(), 0);
  const int64_t expected_samples = 10 + 2 * kRounds * kBatch;
  EXPECT_EQ(sql("SELECT COUNT(*) FROM samples WHERE device = 'edge-box'"), expected_samples);
  EXPECT_EQ(sql("SELECT COUNT(*) FROM models WHERE device = 'edge-box'"), 1 + kRounds);
  EXPECT_EQ(sql("SELECT COUNT(DISTINCT version) FROM models WHERE device = 'edge-box'"),
            1 + kRounds);

  // A last adaptation sees every sample; both replicas settle on its version.
  adapted = b->c().AdaptDevice(Adapt());
  ASSERT_TRUE(adapted.ok()) << adapted.status();
  EXPECT_EQ(adapted->fit().samples(), expected_samples);
  const int64_t latest = adapted->model_version();
  EXPECT_EQ(latest, sql("SELECT MAX(version) FROM models WHERE device = 'edge-box'"));
  for (Replica* r : {a.get(), b.get()}) {
    EXPECT_TRUE(Eventually(
        [&] {
          auto p = r->c().PredictLatency(Predict(*table));
          return p.ok() && p->model_version() == latest;
        },
        std::chrono::seconds(5)))
        << r->log();
  }

  // SIGKILL A: B keeps serving, storing and adapting.
  const int status = a->Kill(SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  auto after = b->c().PredictLatency(Predict(*table));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->model_version(), latest);
  ASSERT_TRUE(b->c().SubmitSamples(Samples(*table, column, 1000, 5)).ok());
  adapted = b->c().AdaptDevice(Adapt());
  ASSERT_TRUE(adapted.ok()) << adapted.status();
  EXPECT_EQ(adapted->model_version(), latest + 1);
  EXPECT_EQ(adapted->fit().samples(), expected_samples + 5);

  const int b_status = b->Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(b_status) && WEXITSTATUS(b_status) == 0) << b->log();
  (void)std::system(("rm -rf '" + dir + "'").c_str());
  (void)(*postgres)->Psql("postgres", "DROP DATABASE IF EXISTS " + database + " WITH (FORCE)");
}

}  // namespace
}  // namespace latpred
