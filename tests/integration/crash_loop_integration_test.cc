// Crash loop: the real latpred-server is killed with SIGKILL at a random moment while
// client threads submit batches of samples (and, in every other round, while a device
// is being adapted), then restarted on the same store, round after round, on SQLite and
// on PostgreSQL. After every kill the store must hold every acknowledged sample and each
// batch whole or not at all; after every restart the server must count the same samples
// and serve a complete model of the adapted device: the last acknowledged version or the
// one in flight at the kill. The batches a kill left unanswered are then sent again
// with their request_id: stored once, answered replayed exactly when already stored.
//
// Rounds and run time per round are bounded for CI; an operator can ask for more:
//   LATPRED_CRASH_ROUNDS=50 LATPRED_CRASH_MAX_RUN_MS=4000 ctest -R crash_loop
// LATPRED_CRASH_SEED repeats a run's kill times and batch sizes (it prints its seed).
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "latpred/client/client.h"
#include "latpred/core/dataset.h"
#include "latpred/core/search_space.h"
#include "latpred/store/store.h"
#include "server_process.h"
#include "small_bundled_data.h"
#include "test_postgres.h"

namespace latpred {
namespace {

using Clock = std::chrono::steady_clock;
using ::latpred::testing::ServerProcess;

constexpr char kSpace[] = "nb201";
constexpr char kAdaptDevice[] = "crash-adapt";
constexpr int kAdaptSamples = 1500;  // a fit of a few hundred ms: a wide target for a kill

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

// One SubmitSamples batch: `count` architectures from archs[first], sample j with latency
// Latency(j). Every architecture appears in one batch of a device only, so what the store
// holds for it tells which batch put it there.
struct Batch {
  std::string device;
  int first = 0;
  int count = 0;
  int64_t id = 0;
  bool acked = false;
  std::string request_id = client::NewRequestId();
  double Latency(int j) const { return 1.0 + static_cast<double>(id % 4096) + 0.125 * j; }
};

// What the kills did to the samples, summed over the checks.
struct Tally {
  int64_t acked_samples = 0;
  int64_t lost = 0;               // acknowledged samples missing or changed
  int64_t half_batches = 0;       // batches stored in part, or with a wrong latency
  int64_t unacked_stored = 0;     // batches in flight at a kill, found stored whole
  int64_t unacked_absent = 0;     // ... found absent
  int64_t unexpected_samples = 0; // stored samples that no batch sent
};

// The database of a TestPostgres URI (postgresql://latpred@/NAME?host=...).
std::string DatabaseName(const std::string& uri) {
  const size_t from = uri.find("@/") + 2;
  return uri.substr(from, uri.find('?') - from);
}

class CrashLoop {
 public:
  // postgres: the server of store_uri when it is a PostgreSQL database, else null.
  CrashLoop(std::string label, std::string dir, std::string store_uri,
            testing::TestPostgres* postgres = nullptr)
      : label_(std::move(label)),
        dir_(std::move(dir)),
        store_uri_(std::move(store_uri)),
        postgres_(postgres) {
    std::vector<std::string> args = {"--data-dir", dir_ + "/data", "--bundled-data",
                                     dir_ + "/bundled", "--epochs", "1", "--threads", "2"};
    if (postgres_ != nullptr) {
      args.push_back("--store");
      args.push_back(store_uri_);
    }
    server_ = std::make_unique<ServerProcess>(LATPRED_SERVER_BIN, args, dir_ + "/server.log");
  }

  void Run() {
    const int rounds = EnvInt("LATPRED_CRASH_ROUNDS", 8);
    const int max_run_ms = std::max(EnvInt("LATPRED_CRASH_MAX_RUN_MS", 1500), 300);
    const int threads = std::clamp(EnvInt("LATPRED_CRASH_THREADS", 3), 1, 16);
    const unsigned seed = static_cast<unsigned>(
        EnvInt("LATPRED_CRASH_SEED", static_cast<int>(std::random_device()() & 0x7fffffff)));
    std::cout << "crash loop " << label_ << ": " << rounds << " rounds of at most " << max_run_ms
              << " ms, " << threads << " submitters, LATPRED_CRASH_SEED=" << seed << std::endl;
    rng_.seed(seed);

    auto table = core::ReadLatencyTable(LATPRED_DATA_DIR "/help/nb201_latency.csv",
                                        core::Nb201Space());
    ASSERT_TRUE(table.ok()) << table.status();
    archs_ = table->canonical;
    ASSERT_TRUE(testing::WriteSmallBundledData(LATPRED_DATA_DIR, dir_ + "/bundled", 300).ok());

    // First start (imports the cut-down data, trains), then a device with a model.
    server_->Spawn();
    absl::Status serving = server_->WaitServing(std::chrono::minutes(5));
    ASSERT_TRUE(serving.ok()) << serving;
    v1::RegisterDeviceRequest reg;
    reg.set_name(kAdaptDevice);
    ASSERT_TRUE(server_->client().RegisterDevice(reg).ok());
    Batch adapt_batch{kAdaptDevice, 0, kAdaptSamples, next_id_++, false};
    ASSERT_TRUE(server_->client().SubmitSamples(Request(adapt_batch)).ok());
    adapt_batch.acked = true;
    batches_.push_back(adapt_batch);
    auto adapted = server_->client().AdaptDevice(AdaptRequest());
    ASSERT_TRUE(adapted.ok()) << adapted.status();
    adapt_version_ = adapted->model_version();

    int kills_during_adapt = 0;
    for (int round = 1; round <= rounds; ++round) {
      const bool adapting = round % 2 == 0;
      const int run_ms = std::uniform_int_distribution<int>(150, max_run_ms)(rng_);
      std::atomic<bool> killed{false};
      std::atomic<int> unexpected_errors{0};
      std::mutex mu;
      std::string first_error;
      auto error = [&](const std::string& what, const absl::Status& status) {
        if (killed.load()) return;  // the kill's own doing
        ++unexpected_errors;
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.empty()) first_error = absl::StrCat(what, ": ", status.ToString());
      };
      client::Client& c = server_->client();

      std::vector<std::vector<Batch>> sent(threads);
      std::vector<std::thread> workers;
      std::atomic<int64_t> ids{next_id_};
      for (int t = 0; t < threads; ++t) {
        const unsigned thread_seed = static_cast<unsigned>(rng_());
        workers.emplace_back([&, t, thread_seed] {
          std::mt19937 rng(thread_seed);
          std::string device;
          int cursor = static_cast<int>(archs_.size());
          for (int generation = 0; !killed.load();) {
            const int size = std::uniform_int_distribution<int>(5, 60)(rng);
            if (cursor + size > static_cast<int>(archs_.size())) {
              device = absl::StrCat("crash-r", round, "-t", t, "-g", generation++);
              v1::RegisterDeviceRequest r;
              r.set_name(device);
              if (auto st = c.RegisterDevice(r); !st.ok()) {
                error("RegisterDevice " + device, st.status());
                return;
              }
              cursor = 0;
            }
            sent[t].push_back(Batch{device, cursor, size, ids++, false});
            cursor += size;
            auto reply = c.SubmitSamples(Request(sent[t].back()));
            if (!reply.ok()) {
              error("SubmitSamples to " + device, reply.status());
              return;
            }
            sent[t].back().acked = reply->accepted() == size;
            if (!sent[t].back().acked) {
              error("SubmitSamples to " + device,
                    absl::InternalError(absl::StrCat(reply->accepted(), " of ", size, " accepted")));
            }
          }
        });
      }
      std::atomic<bool> adapt_in_flight{false};
      std::atomic<int64_t> acked_version{adapt_version_};
      std::atomic<int> unacked_adapts{0};
      if (adapting) {
        workers.emplace_back([&] {
          while (!killed.load()) {
            adapt_in_flight = true;
            auto reply = c.AdaptDevice(AdaptRequest());
            adapt_in_flight = false;
            if (!reply.ok()) {
              ++unacked_adapts;
              error("AdaptDevice", reply.status());
              return;
            }
            acked_version = std::max<int64_t>(acked_version.load(), reply->model_version());
          }
        });
      }

      std::this_thread::sleep_for(std::chrono::milliseconds(run_ms));
      const bool during_adapt = adapt_in_flight.load();
      killed = true;
      server_->Signal(SIGKILL);
      for (std::thread& w : workers) w.join();
      const int status = server_->Kill(SIGKILL);
      next_id_ = ids.load();
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
          << "the server ended before the kill (status " << status << "):\n" << server_->Log();
      EXPECT_EQ(unexpected_errors.load(), 0) << "round " << round << ": " << first_error;
      kills_during_adapt += during_adapt ? 1 : 0;
      const size_t round_start = batches_.size();
      int round_acked = 0, round_unacked = 0;
      for (auto& s : sent) {
        for (Batch& b : s) {
          (b.acked ? round_acked : round_unacked) += 1;
          batches_.push_back(std::move(b));
        }
      }

      // The store as the dead server left it.
      WaitForSessionsToEnd();
      const Tally before = tally_;
      std::map<std::string, int64_t> stored_counts;
      int64_t stored_version = 0;
      CheckStore(&stored_counts, &stored_version);
      if (::testing::Test::HasFatalFailure()) return;
      EXPECT_GE(stored_version, acked_version.load())
          << "round " << round << ": an acknowledged model version is gone";
      EXPECT_LE(stored_version, acked_version.load() + unacked_adapts.load())
          << "round " << round << ": a model version no AdaptDevice made";

      // Restarted on the same store: the same counts, the adapted device's stored model.
      const auto restart = Clock::now();
      server_->Spawn();
      serving = server_->WaitServing(std::chrono::minutes(3));
      ASSERT_TRUE(serving.ok()) << "round " << round << ": " << serving;
      const double restart_s = std::chrono::duration<double>(Clock::now() - restart).count();
      CheckServed(stored_counts, stored_version);
      adapt_version_ = stored_version;
      RetryUnacknowledged(round_start);
      std::cout << "round " << round << ": killed after " << run_ms << " ms"
                << (during_adapt ? " during AdaptDevice" : "") << ", " << round_acked
                << " batches acknowledged, " << round_unacked << " in flight ("
                << tally_.unacked_stored - before.unacked_stored << " stored whole, "
                << tally_.unacked_absent - before.unacked_absent << " absent), served v"
                << stored_version << ", SERVING again in " << restart_s << " s" << std::endl;
      if (::testing::Test::HasFailure()) break;
    }
    const int status = server_->Kill(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << server_->Log();
    {  // the last round's retries, as stored
      std::map<std::string, int64_t> counts;
      int64_t version = 0;
      WaitForSessionsToEnd();
      CheckStore(&counts, &version);
    }

    std::printf("crash loop %s: %d rounds (%d killed during AdaptDevice), %lld acknowledged samples, "
                "%lld lost, %lld half batches, %lld unacknowledged batches stored whole, %lld absent; "
                "%lld retried with their request_id after the restart, %lld of them replayed\n",
                label_.c_str(), rounds, kills_during_adapt,
                static_cast<long long>(tally_.acked_samples), static_cast<long long>(tally_.lost),
                static_cast<long long>(tally_.half_batches),
                static_cast<long long>(tally_.unacked_stored),
                static_cast<long long>(tally_.unacked_absent), static_cast<long long>(retried_),
                static_cast<long long>(replayed_));
    std::fflush(stdout);
    EXPECT_EQ(tally_.lost, 0);
    EXPECT_EQ(tally_.half_batches, 0);
    EXPECT_EQ(tally_.unexpected_samples, 0);
  }

 private:
  v1::SubmitSamplesRequest Request(const Batch& b) const {
    v1::SubmitSamplesRequest req;
    req.set_device(b.device);
    req.set_space(kSpace);
    req.set_request_id(b.request_id);
    for (int j = 0; j < b.count; ++j) {
      v1::Sample* s = req.add_samples();
      s->set_arch(archs_[static_cast<size_t>(b.first + j)]);
      s->set_latency_ms(b.Latency(j));
    }
    return req;
  }

  // Sends every batch of this round that the kill left unanswered once more, with its
  // request_id, as a client that retries would: the restarted server stores it once,
  // answering replayed exactly when the store held it already. Acknowledged from now on.
  void RetryUnacknowledged(size_t from) {
    std::map<std::string, std::set<std::string>> stored;  // device -> archs, read once
    for (size_t i = from; i < batches_.size(); ++i) {
      Batch& b = batches_[i];
      if (b.acked) continue;
      if (!stored.count(b.device)) {
        absl::StatusOr<std::unique_ptr<store::Store>> store = store::OpenStore(store_uri_);
        ASSERT_TRUE(store.ok()) << store.status();
        auto samples = (*store)->GetSamples(b.device, kSpace);
        ASSERT_TRUE(samples.ok()) << samples.status();
        for (const store::Sample& s : *samples) stored[b.device].insert(s.arch);
      }
      const bool was_stored = stored[b.device].count(archs_[static_cast<size_t>(b.first)]) > 0;
      auto reply = server_->client().SubmitSamples(Request(b));
      ASSERT_TRUE(reply.ok()) << b.device << ": " << reply.status();
      EXPECT_EQ(reply->replayed(), was_stored)
          << b.device << ": a retry with the request_id of a batch the store "
          << (was_stored ? "held" : "did not hold");
      EXPECT_EQ(reply->accepted(), b.count);
      b.acked = true;
      ++retried_;
      replayed_ += reply->replayed() ? 1 : 0;
    }
  }

  // PostgreSQL may still commit a transaction whose COMMIT reached it just before the
  // kill: wait until the dead server's sessions are gone, so that what the store shows
  // now is what the restarted server will find.
  void WaitForSessionsToEnd() {
    if (postgres_ == nullptr) return;
    const std::string database = DatabaseName(store_uri_);
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    std::string sessions;
    while (Clock::now() < deadline) {
      absl::StatusOr<std::string> out = postgres_->Psql(
          database, "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()");
      ASSERT_TRUE(out.ok()) << out.status();
      sessions = *out;
      if (std::atoi(sessions.c_str()) == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL() << "the killed server's database sessions did not end in 60 s: " << sessions;
  }

  static v1::AdaptDeviceRequest AdaptRequest() {
    v1::AdaptDeviceRequest req;
    req.set_device(kAdaptDevice);
    req.set_space(kSpace);
    return req;
  }

  // Reads the store directly (the server is dead): every batch ever sent is there whole
  // or not at all, every acknowledged one whole, nothing else. Sets this check's tally
  // (the totals over every batch, as of now), the sample count of each device and the
  // adapted device's newest model version.
  void CheckStore(std::map<std::string, int64_t>* counts, int64_t* model_version) {
    absl::StatusOr<std::unique_ptr<store::Store>> store = store::OpenStore(store_uri_);
    ASSERT_TRUE(store.ok()) << store.status();
    std::map<std::string, std::map<std::string, double>> stored;
    for (const Batch& b : batches_) {
      if (stored.count(b.device)) continue;
      auto samples = (*store)->GetSamples(b.device, kSpace);
      ASSERT_TRUE(samples.ok()) << samples.status();
      auto& by_arch = stored[b.device];
      for (const store::Sample& s : *samples) by_arch[s.arch] = s.latency_ms;
      (*counts)[b.device] = static_cast<int64_t>(samples->size());
    }
    Tally tally = tally_;
    tally.acked_samples = tally.lost = tally.half_batches = tally.unexpected_samples = 0;
    std::map<std::string, int64_t> accounted;
    for (const Batch& b : batches_) {
      const auto& by_arch = stored[b.device];
      int present = 0;
      for (int j = 0; j < b.count; ++j) {
        auto it = by_arch.find(archs_[static_cast<size_t>(b.first + j)]);
        present += it != by_arch.end() && it->second == b.Latency(j) ? 1 : 0;
      }
      if (b.acked) tally.acked_samples += b.count;
      if (b.acked) tally.lost += b.count - present;
      if (present != 0 && present != b.count) ++tally.half_batches;
      if (present == b.count) accounted[b.device] += b.count;
    }
    // Unacknowledged batches are counted once, by the check right after their round.
    for (size_t i = checked_; i < batches_.size(); ++i) {
      const Batch& b = batches_[i];
      if (b.acked) continue;
      const auto& by_arch = stored[b.device];
      const bool first_there = by_arch.count(archs_[static_cast<size_t>(b.first)]) > 0;
      (first_there ? tally.unacked_stored : tally.unacked_absent) += 1;
    }
    checked_ = batches_.size();
    for (const auto& [device, n] : *counts) tally.unexpected_samples += n - accounted[device];
    EXPECT_EQ(tally.lost, 0) << "acknowledged samples are missing";
    EXPECT_EQ(tally.half_batches, 0) << "a batch is stored in part";
    EXPECT_EQ(tally.unexpected_samples, 0) << "samples no batch sent";
    tally_ = tally;

    auto model = (*store)->GetLatestModel(kAdaptDevice, kSpace);
    ASSERT_TRUE(model.ok()) << model.status();
    ASSERT_TRUE(model->has_value()) << "the adapted device's model is gone";
    *model_version = (*model)->version;
  }

  // Through the restarted server: the sample counts the store holds, and the adapted
  // device served by its newest stored model, whole.
  void CheckServed(const std::map<std::string, int64_t>& counts, int64_t model_version) {
    client::Client& c = server_->client();
    for (const auto& [device, n] : counts) {
      v1::GetDeviceRequest get;
      get.set_name(device);
      auto d = c.GetDevice(get);
      ASSERT_TRUE(d.ok()) << device << ": " << d.status();
      int64_t served = 0;
      for (const v1::SpaceState& s : d->spaces()) {
        if (s.space() == kSpace) served = s.sample_count();
      }
      EXPECT_EQ(served, n) << device << ": GetDevice's sample count differs from the store's";
    }
    v1::GetDeviceRequest get;
    get.set_name(kAdaptDevice);
    auto d = c.GetDevice(get);
    ASSERT_TRUE(d.ok()) << d.status();
    bool found = false;
    for (const v1::SpaceState& s : d->spaces()) {
      if (s.space() != kSpace) continue;
      found = true;
      EXPECT_EQ(s.model_version(), model_version);
      EXPECT_EQ(s.state(), v1::MODEL_STATE_ADAPTED);
      EXPECT_EQ(s.fit().samples(), kAdaptSamples);
    }
    EXPECT_TRUE(found) << d->DebugString();
    v1::PredictLatencyRequest predict;
    predict.set_device(kAdaptDevice);
    predict.set_space(kSpace);
    predict.set_interval(0.8);
    for (size_t i = 5000; i < 5100; ++i) predict.add_archs(archs_[i]);
    auto p = c.PredictLatency(predict);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->model_version(), model_version);
    EXPECT_EQ(p->state(), v1::MODEL_STATE_ADAPTED);
    ASSERT_EQ(p->latency_ms_size(), predict.archs_size());
    ASSERT_EQ(p->lower_ms_size(), predict.archs_size());
    ASSERT_EQ(p->upper_ms_size(), predict.archs_size());
    for (int i = 0; i < p->latency_ms_size(); ++i) {
      EXPECT_TRUE(std::isfinite(p->latency_ms(i)) && p->latency_ms(i) > 0) << p->latency_ms(i);
      EXPECT_TRUE(p->lower_ms(i) > 0 && p->lower_ms(i) <= p->latency_ms(i) &&
                  p->latency_ms(i) <= p->upper_ms(i) && std::isfinite(p->upper_ms(i)))
          << p->lower_ms(i) << " " << p->latency_ms(i) << " " << p->upper_ms(i);
    }
  }

  std::string label_;
  std::string dir_;
  std::string store_uri_;
  testing::TestPostgres* postgres_;
  std::unique_ptr<ServerProcess> server_;
  std::mt19937 rng_;
  std::vector<std::string> archs_;
  std::vector<Batch> batches_;
  size_t checked_ = 0;
  int64_t retried_ = 0, replayed_ = 0;
  int64_t next_id_ = 0;
  int64_t adapt_version_ = 0;
  Tally tally_;
};

std::string TempDir(const char* prefix) {
  std::string tmpl = std::string("/tmp/") + prefix + "-XXXXXX";
  return mkdtemp(tmpl.data());
}

TEST(CrashLoopIntegrationTest, Sqlite) {
  const std::string dir = TempDir("latpred-crash-sqlite");
  {
    CrashLoop loop("sqlite", dir, dir + "/data/latpred.db");
    loop.Run();
  }
  if (!::testing::Test::HasFailure()) (void)std::system(("rm -rf '" + dir + "'").c_str());
}

TEST(CrashLoopIntegrationTest, Postgres) {
  absl::StatusOr<testing::TestPostgres*> postgres = testing::TestPostgres::Shared();
  if (!postgres.ok()) GTEST_SKIP() << postgres.status();
  absl::StatusOr<std::string> uri = (*postgres)->CreateDatabase();
  ASSERT_TRUE(uri.ok()) << uri.status();
  const std::string dir = TempDir("latpred-crash-pg");
  {
    CrashLoop loop("postgresql", dir, *uri, *postgres);
    loop.Run();
  }
  (void)(*postgres)->Psql("postgres", "DROP DATABASE IF EXISTS " + DatabaseName(*uri) + " WITH (FORCE)");
  if (!::testing::Test::HasFailure()) (void)std::system(("rm -rf '" + dir + "'").c_str());
}

}  // namespace
}  // namespace latpred
