// A gRPC MessageAllocator that recycles the request and response of a callback unary
// method instead of freeing them.
//
// Why: PredictLatency's request is a batch of architecture strings. A fresh message
// mallocs one buffer per string and frees it after the reply, which cost as much of the
// server's time as the prediction itself. Protobuf's Clear() keeps a repeated field's
// elements (and each string its capacity) for reuse, so parsing the next batch into a
// recycled message allocates nothing.
#ifndef LATPRED_SERVICE_MESSAGE_POOL_H_
#define LATPRED_SERVICE_MESSAGE_POOL_H_

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "grpcpp/support/message_allocator.h"

namespace latpred::service {

template <typename Request, typename Response>
class MessagePool final : public grpc::MessageAllocator<Request, Response> {
 public:
  // Keeps at most `max_pooled` message pairs, and only those whose request and response
  // together serialise to at most `max_bytes` (a message that carried an oversized batch
  // is freed after its call, so a rare huge batch does not stay resident).
  MessagePool(size_t max_pooled, size_t max_bytes)
      : max_pooled_(max_pooled), max_bytes_(max_bytes) {}
  MessagePool(const MessagePool&) = delete;
  MessagePool& operator=(const MessagePool&) = delete;

  grpc::MessageHolder<Request, Response>* AllocateMessages() override {
    {
      absl::MutexLock lock(&mu_);
      if (!free_.empty()) {
        Holder* holder = free_.back().release();
        free_.pop_back();
        return holder;
      }
    }
    return new Holder(this);
  }

  // Message pairs waiting for reuse (for tests and diagnostics).
  size_t pooled() const {
    absl::MutexLock lock(&mu_);
    return free_.size();
  }

 private:
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    explicit Holder(MessagePool* pool) : pool_(pool) {
      this->set_request(&request_);
      this->set_response(&response_);
    }
    void Release() override { pool_->Recycle(this); }

   private:
    friend class MessagePool;
    MessagePool* pool_;
    Request request_;
    Response response_;
  };

  void Recycle(Holder* holder) {
    std::unique_ptr<Holder> owned(holder);
    if (owned->request_.ByteSizeLong() + owned->response_.ByteSizeLong() > max_bytes_) return;
    owned->request_.Clear();
    owned->response_.Clear();
    absl::MutexLock lock(&mu_);
    if (free_.size() < max_pooled_) free_.push_back(std::move(owned));
  }

  const size_t max_pooled_;
  const size_t max_bytes_;
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Holder>> free_ ABSL_GUARDED_BY(mu_);
};

}  // namespace latpred::service

#endif  // LATPRED_SERVICE_MESSAGE_POOL_H_
