// One background thread that runs long jobs (adaptation, zero-shot fits) in order, off
// the RPC threads, so that PredictLatency never waits behind them.
#ifndef LATPRED_SERVICE_JOB_QUEUE_H_
#define LATPRED_SERVICE_JOB_QUEUE_H_

#include <deque>
#include <functional>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace latpred::service {

class JobQueue {
 public:
  JobQueue();
  // Runs the jobs already queued, then joins the thread.
  ~JobQueue();

  // Queues a job; false once the queue is stopping.
  bool Post(std::function<void()> job);
  // Number of jobs waiting or running.
  int pending() const;

 private:
  void Run();

  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace latpred::service

#endif  // LATPRED_SERVICE_JOB_QUEUE_H_
