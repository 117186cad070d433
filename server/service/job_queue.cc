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

JobQueue::JobQueue() {
  for (int lane = 0; lane < kLanes; ++lane) {
    threads_[lane] = std::thread([this, lane] { Run(lane); });
  }
}

JobQueue::~JobQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
}

bool JobQueue::Post(std::function<void()> job, JobLane lane) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  lanes_[static_cast<int>(lane)].jobs.push_back(std::move(job));
  return true;
}

int JobQueue::pending() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const Lane& lane : lanes_) n += static_cast<int>(lane.jobs.size()) + lane.running;
  return n;
}

void JobQueue::Run(int index) {
  // Background work yields the CPU to the RPC threads: on a small machine an adaptation
  // must not push PredictLatency's tail latency up.
  // SCHED_IDLE: a woken RPC thread always preempts it; if the kernel refuses, the
  // highest niceness is the fallback.
  sched_param idle{};
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle) != 0) {
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kJobNiceness);
  }
  struct Ready {
    JobQueue* queue;
    int index;
    bool operator()() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue->mu_) {
      return queue->stopping_ || !queue->lanes_[index].jobs.empty();
    }
  };
  const Ready ready{this, index};
  for (;;) {
    std::function<void()> job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&ready));
      Lane& lane = lanes_[index];
      if (lane.jobs.empty()) return;  // stopping and drained
      job = std::move(lane.jobs.front());
      lane.jobs.pop_front();
      ++lane.running;
    }
    job();
    absl::MutexLock lock(&mu_);
    --lanes_[index].running;
  }
}

}  // namespace latpred::service
