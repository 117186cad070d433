// Unit tests of the service's building blocks: status conversion, the job queue and
// the model registry's atomic swaps.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "grpc_status.h"
#include "job_queue.h"
#include "model_registry.h"

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

}  // namespace
}  // namespace latpred::service
