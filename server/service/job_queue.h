// Background threads that run long jobs (adaptation, zero-shot fits) off the RPC
// threads, so that PredictLatency never waits behind them. Jobs run in order on one of
// two lanes, each with a thread of its own: short jobs (small fits) have a lane to
// themselves, so that they never wait behind a long one.
#ifndef LATPRED_SERVICE_JOB_QUEUE_H_
#define LATPRED_SERVICE_JOB_QUEUE_H_

#include <array>
#include <deque>
#include <functional>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace latpred::service {

enum class JobLane { kShort, kLong };

class JobQueue {
 public:
  JobQueue();
  // Runs the jobs already queued, then joins the threads.
  ~JobQueue();

  // Queues a job on a lane, behind the jobs already on it; false once the queue is
  // stopping.
  bool Post(std::function<void()> job, JobLane lane = JobLane::kShort);
  // Number of jobs waiting or running, on both lanes.
  int pending() const;

 private:
  static constexpr int kLanes = 2;
  struct Lane {
    std::deque<std::function<void()>> jobs;
    int running = 0;
  };
  void Run(int lane);

  mutable absl::Mutex mu_;
  std::array<Lane, kLanes> lanes_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::array<std::thread, kLanes> threads_;
};

}  // namespace latpred::service

#endif  // LATPRED_SERVICE_JOB_QUEUE_H_
