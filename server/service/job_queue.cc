#include "job_queue.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace latpred::service {
namespace {

// Niceness of the job thread where SCHED_IDLE is refused (Linux applies it per thread).
constexpr int kJobNiceness = 19;

}  // namespace
}  // namespace latpred::service

namespace latpred::service {

JobQueue::JobQueue() : thread_([this] { Run(); }) {}

JobQueue::~JobQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

bool JobQueue::Post(std::function<void()> job) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  jobs_.push_back(std::move(job));
  return true;
}

int JobQueue::pending() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(jobs_.size()) + running_;
}

void JobQueue::Run() {
  // Background work yields the CPU to the RPC threads: on a small machine an adaptation
  // must not push PredictLatency's tail latency up.
  // SCHED_IDLE: a woken RPC thread always preempts it; if the kernel refuses, the
  // highest niceness is the fallback.
  sched_param idle{};
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle) != 0) {
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kJobNiceness);
  }
  for (;;) {
    std::function<void()> job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](JobQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) {
            return q->stopping_ || !q->jobs_.empty();
          },
          this));
      if (jobs_.empty()) return;  // stopping and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_;
    }
    job();
    absl::MutexLock lock(&mu_);
    --running_;
  }
}

}  // namespace latpred::service
