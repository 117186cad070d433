// Unit tests of the service's building blocks: status conversion, the job queue and its
// lanes, the samples a capped fit uses, the model registry's atomic swaps, the head
// entries PredictLatency reads and the pool that recycles its messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "latpred/core/dataset.h"
#include "latpred/core/search_space.h"
#include "grpc_status.h"
#include "job_queue.h"
#include "message_pool.h"
#include "model_manager.h"
#include "model_registry.h"
#include "small_model.h"

namespace latpred::service {
namespace {

TEST(GrpcStatusTest, KeepsTheCodeAndTruncatesLongMessages) {
  grpc::Status s = ToGrpcStatus(absl::NotFoundError("device 'x' is not registered"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "device 'x' is not registered");
  grpc::Status long_one = ToGrpcStatus(absl::InvalidArgumentError(std::string(5000, 'x')));
  EXPECT_EQ(long_one.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(long_one.error_message().size(), kErrorMessageLimit);
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(JobQueueTest, RunsJobsInOrderOffTheCallingThread) {
  std::vector<int> order;
  std::thread::id caller = std::this_thread::get_id(), worker;
  absl::Notification done;
  {
    JobQueue queue;
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(queue.Post([&, i] {
        order.push_back(i);
        worker = std::this_thread::get_id();
      }));
    }
    ASSERT_TRUE(queue.Post([&] { done.Notify(); }));
    done.WaitForNotification();
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_NE(worker, caller);
}

TEST(JobQueueTest, DestructorFinishesQueuedJobs) {
  std::atomic<int> ran{0};
  {
    JobQueue queue;
    for (int i = 0; i < 100; ++i) queue.Post([&] { ++ran; });
  }
  EXPECT_EQ(ran.load(), 100);
}

// A long job holds its lane; short jobs run meanwhile on theirs, in order, and the long
// lane's next job waits for the long one.
TEST(JobQueueTest, ShortJobsRunWhileALongOneHoldsItsLane) {
  absl::Notification release_long, long_started, short_done, after_long_done;
  std::vector<int> order;  // written by the short lane only
  bool next_saw_it_finish = false;
  std::atomic<bool> long_finished{false};
  {
    JobQueue queue;
    // Released however the test ends: the queue's destructor waits for the long job.
    struct Release {
      absl::Notification* release;
      ~Release() {
        if (!release->HasBeenNotified()) release->Notify();
      }
    } release{&release_long};
    ASSERT_TRUE(queue.Post(
        [&] {
          long_started.Notify();
          release_long.WaitForNotification();
          long_finished = true;
        },
        JobLane::kLong));
    ASSERT_TRUE(queue.Post([&] { next_saw_it_finish = long_finished.load(); }, JobLane::kLong));
    ASSERT_TRUE(queue.Post([&] { after_long_done.Notify(); }, JobLane::kLong));
    long_started.WaitForNotification();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(queue.Post([&, i] { order.push_back(i); }));
    ASSERT_TRUE(queue.Post([&] { short_done.Notify(); }, JobLane::kShort));
    // Never, were the short jobs behind the long one (minutes: a busy machine is slow).
    ASSERT_TRUE(short_done.WaitForNotificationWithTimeout(absl::Minutes(5)));
    EXPECT_FALSE(long_finished.load());
    EXPECT_GE(queue.pending(), 3);  // the long job running, two behind it
    release_long.Notify();
    after_long_done.WaitForNotification();
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(next_saw_it_finish);
}

std::vector<store::Sample> NamedSamples(int n, const std::string& prefix = "arch") {
  std::vector<store::Sample> samples;
  for (int i = 0; i < n; ++i) {
    samples.push_back(store::Sample{prefix + std::to_string(i), 1.0 + i, 1, 0});
  }
  return samples;
}

std::set<std::string> Archs(const std::vector<store::Sample>& samples) {
  std::set<std::string> archs;
  for (const store::Sample& s : samples) archs.insert(s.arch);
  return archs;
}

// At most max samples, all when there are fewer; the same ones whatever the order they
// come in; one more sample changes the choice by at most one; the order kept.
TEST(SelectFitSamplesTest, AStableUniformSubsetOfTheCapsSize) {
  EXPECT_EQ(SelectFitSamples(NamedSamples(30), 50).size(), 30u);
  EXPECT_EQ(SelectFitSamples(NamedSamples(50), 50).size(), 50u);
  const std::vector<store::Sample> all = NamedSamples(1000);
  const std::vector<store::Sample> chosen = SelectFitSamples(all, 100);
  ASSERT_EQ(chosen.size(), 100u);
  EXPECT_TRUE(std::is_sorted(chosen.begin(), chosen.end(), [](const auto& a, const auto& b) {
    return std::stoi(a.arch.substr(4)) < std::stoi(b.arch.substr(4));
  })) << "the subset keeps the store's order";
  for (const store::Sample& s : chosen) {
    EXPECT_EQ(s.latency_ms, 1.0 + std::stoi(s.arch.substr(4))) << "samples stay whole";
  }
  std::vector<store::Sample> reversed(all.rbegin(), all.rend());
  EXPECT_EQ(Archs(SelectFitSamples(reversed, 100)), Archs(chosen));
  std::vector<store::Sample> more = all;
  more.push_back(store::Sample{"arch-new", 5, 1, 0});
  std::set<std::string> after = Archs(SelectFitSamples(more, 100));
  int kept = 0;
  for (const std::string& a : Archs(chosen)) kept += static_cast<int>(after.count(a));
  EXPECT_GE(kept, 99);
  // Uniform: about half of the subset from each half of the samples (binomial sd 5).
  int low = 0;
  for (const store::Sample& s : chosen) low += std::stoi(s.arch.substr(4)) < 500;
  EXPECT_GT(low, 25);
  EXPECT_LT(low, 75);
}

TEST(ModelRegistryTest, ReadersKeepTheHeadTheyTookWhileAWriterSwapsIt) {
  ModelRegistry registry;
  EXPECT_EQ(registry.GetHead("d", "nb201"), nullptr);
  auto first = std::make_shared<HeadEntry>();
  first->version = 1;
  registry.SetHead("d", "nb201", first);
  std::shared_ptr<const HeadEntry> held = registry.GetHead("d", "nb201");
  auto second = std::make_shared<HeadEntry>();
  second->version = 2;
  registry.SetHead("d", "nb201", second);
  EXPECT_EQ(held->version, 1);
  EXPECT_EQ(registry.GetHead("d", "nb201")->version, 2);
  EXPECT_EQ(registry.GetHead("d", "fbnet"), nullptr);
  registry.SetHead("d", "nb201", nullptr);
  EXPECT_EQ(registry.GetHead("d", "nb201"), nullptr);
}

TEST(ModelRegistryTest, ConcurrentReadersSeeOneVersionOrTheNext) {
  ModelRegistry registry;
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::thread reader([&] {
    int64_t last = 0;
    while (!stop) {
      auto h = registry.GetHead("d", "nb201");
      if (h == nullptr) continue;
      if (h->version < last) ++bad;
      last = h->version;
    }
  });
  for (int v = 1; v <= 2000; ++v) {
    auto e = std::make_shared<HeadEntry>();
    e->version = v;
    registry.SetHead("d", "nb201", e);
  }
  stop = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0) << "a reader saw versions go backwards";
}

// A small NB201 base model trained on the bundled data.
std::shared_ptr<const predictor::BaseModel> SmallNb201Model() {
  return latpred::testing::SmallNb201Model(1500, 3);
}

// A head entry answers from its latency table exactly what the base model predicts, on
// canonical strings (the fast path) and on tolerated spellings (the full parser), and
// names the first bad item.
TEST(HeadEntryTest, PredictsFromTheTableWhatTheModelPredicts) {
  const BaseEntry base{SmallNb201Model(), 3};
  ASSERT_NE(base.model, nullptr);
  std::shared_ptr<const HeadEntry> entry =
      MakeHeadEntry(base, base.model->Prior(), 7, v1::MODEL_STATE_ZERO_SHOT);
  EXPECT_EQ(entry->version, 7);
  EXPECT_EQ(entry->base_version, 3);
  ASSERT_EQ(entry->table.size(), 15625u);

  const core::SearchSpace& space = core::Nb201Space();
  google::protobuf::RepeatedPtrField<std::string> texts;
  std::vector<core::Architecture> archs;
  for (int64_t index = 0; index < 15625; index += 97) {
    core::Architecture arch;
    for (int e = 0, rest = static_cast<int>(index); e < 6; ++e, rest /= 5) {
      arch.ops.push_back(static_cast<uint8_t>(rest % 5));
    }
    // Every third one spelled with surrounding whitespace: the slow path.
    *texts.Add() = (index % 3 == 0 ? " " : "") + space.Canonical(arch);
    archs.push_back(arch);
  }
  std::vector<double> served(archs.size()), direct(archs.size());
  ASSERT_TRUE(entry->Predict(texts, served.data()).ok());
  base.model->Predict(entry->head, archs, direct.data());
  for (size_t i = 0; i < archs.size(); ++i) EXPECT_EQ(served[i], direct[i]) << i;

  // Without a table (as in spaces too large to enumerate): the same values.
  HeadEntry untabled = *entry;
  untabled.table.clear();
  std::vector<double> slow(archs.size());
  ASSERT_TRUE(untabled.Predict(texts, slow.data()).ok());
  for (size_t i = 0; i < archs.size(); ++i) EXPECT_EQ(slow[i], direct[i]) << i;

  *texts.Mutable(2) = "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|";
  for (const HeadEntry* e : {entry.get(), static_cast<const HeadEntry*>(&untabled)}) {
    absl::Status status = e->Predict(texts, served.data(), "candidates");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(status.message(), "candidates[2]: ")) << status;
    EXPECT_NE(status.message().find("unknown op"), std::string::npos) << status;
  }
}

using PredictPool = MessagePool<v1::PredictLatencyRequest, v1::PredictLatencyResponse>;

std::string Batch(int n) {
  v1::PredictLatencyRequest request;
  request.set_device("pixel2");
  request.set_space("nb201");
  for (int i = 0; i < n; ++i) {
    request.add_archs("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|" +
                      std::to_string(i) + "|nor_conv_1x1~2|");
  }
  return request.SerializeAsString();
}

TEST(MessagePoolTest, ParsesTheNextBatchIntoTheBuffersOfTheLast) {
  PredictPool pool(4, 1 << 20);
  auto* first = pool.AllocateMessages();
  ASSERT_TRUE(first->request()->ParseFromString(Batch(100)));
  first->response()->mutable_latency_ms()->Resize(100, 1.0);
  const char* buffer = first->request()->archs(7).data();
  first->Release();
  EXPECT_EQ(pool.pooled(), 1u);

  auto* second = pool.AllocateMessages();
  EXPECT_EQ(second, first);
  EXPECT_EQ(pool.pooled(), 0u);
  // Handed out empty, as a fresh message would be.
  EXPECT_EQ(second->request()->archs_size(), 0);
  EXPECT_TRUE(second->request()->device().empty());
  EXPECT_EQ(second->response()->latency_ms_size(), 0);
  ASSERT_TRUE(second->request()->ParseFromString(Batch(100)));
  EXPECT_EQ(second->request()->archs_size(), 100);
  EXPECT_EQ(second->request()->archs(7).data(), buffer) << "the string was reallocated";
  second->Release();
}

TEST(MessagePoolTest, FreesOversizedMessagesAndKeepsAtMostItsCapacity) {
  PredictPool pool(2, 4096);
  std::vector<grpc::MessageHolder<v1::PredictLatencyRequest, v1::PredictLatencyResponse>*> held;
  for (int i = 0; i < 3; ++i) held.push_back(pool.AllocateMessages());
  for (auto* h : held) h->Release();
  EXPECT_EQ(pool.pooled(), 2u);

  auto* big = pool.AllocateMessages();
  ASSERT_TRUE(big->request()->ParseFromString(Batch(200)));  // about 17 KB
  big->Release();
  EXPECT_EQ(pool.pooled(), 1u) << "a message over the byte limit went back to the pool";
}

}  // namespace
}  // namespace latpred::service
