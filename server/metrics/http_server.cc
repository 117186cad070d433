// /metrics over cpp-httplib (ordinary thread stacks; see metrics.h for why not civetweb).
//
// httplib parses requests and writes answers; the connections are kept here. httplib
// 0.11 gives each connection a worker thread for as long as the connection stays open
// and queues further connections without bound, so a few clients that connected and sent
// nothing, or sent their headers a byte at a time, held every worker and scrapes waited
// behind them for minutes. Here one poller thread holds every connection that is idle
// or still sending its request head, reading what has arrived without blocking; the
// workers only ever get a complete request head. Every wait has a deadline, and past
// the connection limit the connection that has waited longest is closed at once.
#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "latpred/metrics/metrics.h"

namespace latpred::metrics {
namespace {

using Clock = std::chrono::steady_clock;

// One client connection and the bytes it sent that no request has read yet.
struct Connection {
  int fd = -1;
  std::string pending;
  size_t consumed = 0;  // bytes of pending already read by a request
  int served = 0;       // requests answered on this connection
  Clock::time_point since;     // when it began waiting in the poller (eviction order)
  Clock::time_point deadline;  // when waiting ends: for a request to begin, or its head

  size_t available() const { return pending.size() - consumed; }
  void DropConsumed() {
    pending.erase(0, consumed);
    consumed = 0;
  }
  // httplib ends a request head at the first empty CRLF line.
  bool HasCompleteHead() const {
    return pending.find("\r\n\r\n", consumed) != std::string::npos;
  }
};

// Waits until fd is ready for events or deadline passes; false on timeout or error.
bool WaitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 60000)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

// "ip", port of a socket address (IPv4 or IPv6).
void AddressOf(const sockaddr_storage& addr, std::string& ip, int& port) {
  char text[INET6_ADDRSTRLEN] = "";
  if (addr.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
    inet_ntop(AF_INET, &in.sin_addr, text, sizeof(text));
    port = ntohs(in.sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text));
    port = ntohs(in6.sin6_port);
  }
  ip = text;
}

// The request's view of a connection: first what the poller already read, then the
// non-blocking socket, waiting at most until the deadline for either direction.
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(Connection& conn, Clock::time_point deadline)
      : conn_(conn), deadline_(deadline) {}

  bool is_readable() const override {
    return conn_.available() > 0 || WaitFor(conn_.fd, POLLIN, deadline_);
  }
  bool is_writable() const override { return WaitFor(conn_.fd, POLLOUT, deadline_); }

  ssize_t read(char* ptr, size_t size) override {
    if (conn_.available() > 0) {
      const size_t n = std::min(size, conn_.available());
      std::memcpy(ptr, conn_.pending.data() + conn_.consumed, n);
      conn_.consumed += n;
      return static_cast<ssize_t>(n);
    }
    while (true) {
      const ssize_t n = recv(conn_.fd, ptr, size, 0);
      if (n >= 0) return n;
      if (errno == EINTR) continue;
      if ((errno != EAGAIN && errno != EWOULDBLOCK) || !WaitFor(conn_.fd, POLLIN, deadline_)) {
        return -1;
      }
    }
  }

  ssize_t write(const char* ptr, size_t size) override {
    size_t done = 0;
    while (done < size) {
      const ssize_t n = send(conn_.fd, ptr + done, size - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
                 WaitFor(conn_.fd, POLLOUT, deadline_)) {
        continue;
      } else {
        return -1;
      }
    }
    return static_cast<ssize_t>(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (getpeername(conn_.fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      AddressOf(addr, ip, port);
    }
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (getsockname(conn_.fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      AddressOf(addr, ip, port);
    }
  }
  socket_t socket() const override { return conn_.fd; }

 private:
  Connection& conn_;
  const Clock::time_point deadline_;
};

// Answers one request read from a stream (httplib's parsing, routing and writing);
// returns false when the connection is unusable, sets closed when the client asked to
// close it.
using ServeFn = std::function<bool(httplib::Stream&, bool last, bool& closed)>;

// The connections of one server: a poller thread and a pool of workers (see the top).
class Connections {
 public:
  Connections(const HttpLimits& limits, ServeFn serve)
      : limits_(limits), serve_(std::move(serve)) {}
  ~Connections() { Stop(); }

  absl::Status Start() {
    if (pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) {
      return absl::InternalError(absl::StrCat("metrics: pipe: ", std::strerror(errno)));
    }
    poller_ = std::thread([this] { PollLoop(); });
    for (int i = 0; i < std::max(1, limits_.workers); ++i) {
      workers_.emplace_back([this] { WorkLoop(); });
    }
    return absl::OkStatus();
  }

  // Takes over an accepted socket (called on httplib's accept thread; never blocks).
  void Adopt(int fd) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    auto conn = std::make_unique<Connection>();
    conn->fd = fd;
    conn->since = Clock::now();
    conn->deadline = conn->since + limits_.idle_timeout;
    ++open_;
    ToPoller(std::move(conn));
  }

  // Closes every connection, cutting short requests in progress, and joins the threads.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      for (const int fd : busy_) shutdown(fd, SHUT_RDWR);
    }
    Wake();
    ready_cv_.notify_all();
    if (poller_.joinable()) poller_.join();
    for (std::thread& worker : workers_) worker.join();
    for (auto& conn : incoming_) Close(std::move(conn));
    incoming_.clear();
    for (auto& conn : ready_) Close(std::move(conn));
    ready_.clear();
    for (const int fd : wake_) {
      if (fd >= 0) close(fd);
    }
  }

 private:
  enum class ReadResult { kWaiting, kHead, kClosed };

  void Wake() {
    const char byte = 0;
    if (wake_[1] >= 0 && ::write(wake_[1], &byte, 1) < 0) {
      // The pipe is full, so the poller wakes anyway.
    }
  }

  // Hands a connection to the poller: a new one, or one back from a worker.
  void ToPoller(std::unique_ptr<Connection> conn) {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) {
      lock.unlock();
      Close(std::move(conn));
      return;
    }
    incoming_.push_back(std::move(conn));
    lock.unlock();
    Wake();
  }

  void Close(std::unique_ptr<Connection> conn) {
    close(conn->fd);
    --open_;
  }

  void Dispatch(std::unique_ptr<Connection> conn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ready_.push_back(std::move(conn));
    }
    ready_cv_.notify_one();
  }

  // Reads what has arrived without blocking. The first bytes of a request start its
  // deadline: the whole head must follow within request_timeout.
  ReadResult ReadAvailable(Connection& conn, Clock::time_point now) {
    char buffer[4096];
    while (true) {
      const ssize_t n = recv(conn.fd, buffer, sizeof(buffer), 0);
      if (n > 0) {
        if (conn.available() == 0) {
          conn.DropConsumed();
          conn.deadline = now + limits_.request_timeout;
        }
        conn.pending.append(buffer, static_cast<size_t>(n));
        if (conn.HasCompleteHead()) return ReadResult::kHead;
        if (conn.available() > limits_.max_head_bytes) return ReadResult::kClosed;
        continue;
      }
      if (n == 0) return ReadResult::kClosed;
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? ReadResult::kWaiting
                                                     : ReadResult::kClosed;
    }
  }

  void PollLoop() {
    std::vector<std::unique_ptr<Connection>> waiting, still;
    std::vector<pollfd> fds;
    while (true) {
      std::vector<std::unique_ptr<Connection>> arrived;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) break;
        arrived.swap(incoming_);
      }
      for (auto& conn : arrived) {
        if (conn->HasCompleteHead()) {
          Dispatch(std::move(conn));  // the next request was sent with the last one
        } else {
          waiting.push_back(std::move(conn));
        }
      }
      // Over the limit: close the connections that have waited longest, so a new
      // client always gets in however many others hold connections open.
      while (open_.load() > limits_.max_connections && !waiting.empty()) {
        auto oldest = std::min_element(
            waiting.begin(), waiting.end(),
            [](const auto& a, const auto& b) { return a->since < b->since; });
        Close(std::move(*oldest));
        waiting.erase(oldest);
      }

      fds.assign(1, pollfd{wake_[0], POLLIN, 0});
      Clock::time_point next = Clock::time_point::max();
      for (const auto& conn : waiting) {
        fds.push_back(pollfd{conn->fd, POLLIN, 0});
        next = std::min(next, conn->deadline);
      }
      int timeout_ms = -1;
      if (next != Clock::time_point::max()) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now());
        timeout_ms = static_cast<int>(std::clamp<int64_t>(left.count(), 0, 60000));
      }
      if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // EINVAL/ENOMEM: retry
        continue;
      }
      if (fds[0].revents != 0) {
        char drain[256];
        while (read(wake_[0], drain, sizeof(drain)) > 0) {
        }
      }
      const Clock::time_point now = Clock::now();
      still.clear();
      for (size_t i = 0; i < waiting.size(); ++i) {
        std::unique_ptr<Connection>& conn = waiting[i];
        if (fds[i + 1].revents != 0) {
          const ReadResult result = ReadAvailable(*conn, now);
          if (result == ReadResult::kHead) {
            Dispatch(std::move(conn));
            continue;
          }
          if (result == ReadResult::kClosed) {
            Close(std::move(conn));
            continue;
          }
        }
        if (now >= conn->deadline) {
          Close(std::move(conn));
          continue;
        }
        still.push_back(std::move(conn));
      }
      waiting.swap(still);
    }
    for (auto& conn : waiting) Close(std::move(conn));
  }

  void WorkLoop() {
    while (true) {
      std::unique_ptr<Connection> conn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        ready_cv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
        if (stopping_) return;
        conn = std::move(ready_.front());
        ready_.pop_front();
        busy_.insert(conn->fd);
      }
      const bool last = conn->served + 1 >= limits_.max_requests_per_connection;
      bool closed = false;
      bool ok = false;
      {
        ConnectionStream stream(*conn, Clock::now() + limits_.request_timeout);
        ok = serve_(stream, last, closed);
      }
      ++conn->served;
      {
        std::lock_guard<std::mutex> lock(mu_);
        busy_.erase(conn->fd);
      }
      if (!ok || last || closed) {
        Close(std::move(conn));
        continue;
      }
      conn->DropConsumed();
      conn->since = Clock::now();
      conn->deadline = conn->since + limits_.idle_timeout;
      ToPoller(std::move(conn));
    }
  }

  const HttpLimits limits_;
  const ServeFn serve_;
  int wake_[2] = {-1, -1};  // the poller's wake-up pipe
  std::atomic<int> open_{0};
  std::mutex mu_;
  std::condition_variable ready_cv_;
  bool stopping_ = false;                                // guarded by mu_
  std::vector<std::unique_ptr<Connection>> incoming_;   // guarded by mu_
  std::deque<std::unique_ptr<Connection>> ready_;       // guarded by mu_
  std::unordered_set<int> busy_;                        // guarded by mu_
  std::thread poller_;
  std::vector<std::thread> workers_;
};

// Runs each task at once on the accepting thread: the only task httplib gives it is
// "process this socket", which HttpServer turns into handing it to Connections.
class InlineTaskQueue final : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override {}
};

class HttpServer final : public httplib::Server {
 public:
  explicit HttpServer(std::function<void(int)> adopt) : adopt_(std::move(adopt)) {
    new_task_queue = [] { return new InlineTaskQueue; };
  }

  bool Serve(httplib::Stream& stream, bool last, bool& closed) {
    return process_request(stream, last, closed, nullptr);
  }

  // httplib listens with a backlog of 5; a burst of clients would wait out SYN
  // retransmissions behind it. listen() again on a bound socket only sets the backlog.
  void RaiseBacklog() { ::listen(svr_sock_, SOMAXCONN); }

 private:
  // httplib's accept loop calls this (through InlineTaskQueue) with each new socket.
  bool process_and_close_socket(socket_t sock) override {
    adopt_(sock);
    return true;
  }

  std::function<void(int)> adopt_;
};

}  // namespace

struct MetricsHttpServer::Impl {
  explicit Impl(const HttpLimits& limits)
      : connections(limits, [this](httplib::Stream& stream, bool last, bool& closed) {
          return server.Serve(stream, last, closed);
        }),
        server([this](int fd) { connections.Adopt(fd); }) {}

  Connections connections;
  HttpServer server;
  std::thread thread;
  std::atomic<bool> listen_returned{false};
};

MetricsHttpServer::MetricsHttpServer(std::unique_ptr<Impl> impl, int port)
    : impl_(std::move(impl)), port_(port) {}

MetricsHttpServer::~MetricsHttpServer() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->connections.Stop();
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port, Metrics* metrics, const HttpLimits& limits) {
  auto impl = std::make_unique<Impl>(limits);
  impl->server.Get("/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  impl->server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("latpred metrics: see /metrics\n", "text/plain");
  });
  int bound = port == 0 ? impl->server.bind_to_any_port(host)
                        : (impl->server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for /metrics on ", host, ":", port, " (port in use?)"));
  }
  impl->server.RaiseBacklog();
  if (absl::Status started = impl->connections.Start(); !started.ok()) return started;
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    raw->server.listen_after_bind();
    raw->listen_returned = true;
  });
  // httplib's stop() does nothing until its accept loop runs: wait for it, so that the
  // destructor always ends the loop.
  while (!raw->server.is_running() && !raw->listen_returned) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(std::move(impl), bound));
}

}  // namespace latpred::metrics
