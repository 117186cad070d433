// Two latpred-server replicas on one real PostgreSQL database (started by the ctest
// fixture `postgres`, or by this test when run alone): the base models are trained
// once, samples and adapted models written through one replica are served by the other,
// concurrent writes through both lose nothing and converge on one model version, and a
// SIGKILLed replica does not disturb the other.
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
#include "server_process.h"

namespace latpred {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kDevice[] = "edge-box";
constexpr char kHeldOut[] = "gold_6226";  // its bundled latencies stand in for a new device

// Counts the occurrences of needle in text.
int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// One latpred-server process on the shared database, its log in a file.
std::unique_ptr<testing::ServerProcess> StartReplica(const std::string& dir,
                                                     const std::string& name,
                                                     const std::string& store) {
  auto replica = std::make_unique<testing::ServerProcess>(
      LATPRED_SERVER_BIN,
      std::vector<std::string>{"--store", store, "--data-dir", dir + "/" + name,
                               "--exclude-devices", kHeldOut, "--epochs", "3", "--threads", "1",
                               "--sync-interval-ms", "200"},
      dir + "/" + name + ".log");
  replica->Spawn();
  return replica;
}

// Waits for a replica's port and SERVING, then connects its client.
void WaitServing(testing::ServerProcess& replica, Clock::time_point deadline) {
  const absl::Status serving = replica.WaitServing(deadline - Clock::now());
  ASSERT_TRUE(serving.ok()) << serving;
}

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
  auto a = StartReplica(dir, "a", *uri);
  auto b = StartReplica(dir, "b", *uri);
  const auto deadline = Clock::now() + std::chrono::minutes(12);
  WaitServing(*a, deadline);
  WaitServing(*b, deadline);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  EXPECT_EQ(sql("SELECT COUNT(*) FROM models WHERE device = ''"), 2)
      << "one base model per space, trained once";
  EXPECT_EQ(Count(a->Log() + b->Log(), "training the base model"), 2)
      << "A:\n" << a->Log() << "\nB:\n" << b->Log();

  // A device registered and measured through A is visible through B at once (both read
  // the database).
  v1::RegisterDeviceRequest reg;
  reg.set_name(kDevice);
  ASSERT_TRUE(a->client().RegisterDevice(reg).ok());
  auto submitted = a->client().SubmitSamples(Samples(*table, column, 0, 10));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  v1::GetDeviceRequest get;
  get.set_name(kDevice);
  auto seen = b->client().GetDevice(get);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->name(), kDevice);

  // A model adapted through A is served by B within a few seconds (B polls the store's
  // model versions every 200 ms).
  auto adapted = a->client().AdaptDevice(Adapt());
  ASSERT_TRUE(adapted.ok()) << adapted.status();
  const int64_t v1 = adapted->model_version();
  auto from_a = a->client().PredictLatency(Predict(*table));
  ASSERT_TRUE(from_a.ok());
  EXPECT_EQ(from_a->model_version(), v1);
  const auto adapt_done = Clock::now();
  EXPECT_TRUE(Eventually(
      [&] {
        auto p = b->client().PredictLatency(Predict(*table));
        return p.ok() && p->model_version() == v1 && p->state() == v1::MODEL_STATE_ADAPTED;
      },
      std::chrono::seconds(5)))
      << b->Log();
  std::cout << "replica B served model v" << v1 << " "
            << std::chrono::duration<double>(Clock::now() - adapt_done).count()
            << " s after A adapted it" << std::endl;
  auto from_b = b->client().PredictLatency(Predict(*table));
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
    testing::ServerProcess* r = w == 0 ? a.get() : b.get();
    writers.emplace_back([&, r, w] {
      for (int round = 0; round < kRounds; ++round) {
        const size_t from = 10 + (static_cast<size_t>(round) * 2 + w) * kBatch;
        if (!r->client().SubmitSamples(Samples(*table, column, from, kBatch)).ok()) ++failures;
      }
    });
    writers.emplace_back([&, r] {
      for (int round = 0; round < kRounds / 2; ++round) {
        if (!r->client().AdaptDevice(Adapt()).ok()) ++failures;
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
  adapted = b->client().AdaptDevice(Adapt());
  ASSERT_TRUE(adapted.ok()) << adapted.status();
  EXPECT_EQ(adapted->fit().samples(), expected_samples);
  const int64_t latest = adapted->model_version();
  EXPECT_EQ(latest, sql("SELECT MAX(version) FROM models WHERE device = 'edge-box'"));
  for (testing::ServerProcess* r : {a.get(), b.get()}) {
    EXPECT_TRUE(Eventually(
        [&] {
          auto p = r->client().PredictLatency(Predict(*table));
          return p.ok() && p->model_version() == latest;
        },
        std::chrono::seconds(5)))
        << r->Log();
  }

  // SIGKILL A: B keeps serving, storing and adapting.
  const int status = a->Kill(SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  auto after = b->client().PredictLatency(Predict(*table));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->model_version(), latest);
  ASSERT_TRUE(b->client().SubmitSamples(Samples(*table, column, 1000, 5)).ok());
  adapted = b->client().AdaptDevice(Adapt());
  ASSERT_TRUE(adapted.ok()) << adapted.status();
  EXPECT_EQ(adapted->model_version(), latest + 1);
  EXPECT_EQ(adapted->fit().samples(), expected_samples + 5);

  const int b_status = b->Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(b_status) && WEXITSTATUS(b_status) == 0) << b->Log();
  (void)std::system(("rm -rf '" + dir + "'").c_str());
  (void)(*postgres)->Psql("postgres", "DROP DATABASE IF EXISTS " + database + " WITH (FORCE)");
}

}  // namespace
}  // namespace latpred
