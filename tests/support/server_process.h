// A latpred-server child process for the integration tests: started with the flags a
// test gives, stdout and stderr appended to a log file, its ports read from that log
// ("listening on port N", "metrics on port N"), ready once grpc.health.v1 says SERVING.
// Restartable on the same store (the log is appended across starts) and killable with
// any signal, for tests that crash it. Header-only; the including target links
// latpred_client.
#ifndef LATPRED_TESTS_SUPPORT_SERVER_PROCESS_H_
#define LATPRED_TESTS_SUPPORT_SERVER_PROCESS_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "latpred/client/client.h"
#include "read_file.h"

namespace latpred::testing {

class ServerProcess {
 public:
  // binary: the server; args: its flags (no --listen: 127.0.0.1:0 is added).
  ServerProcess(std::string binary, std::vector<std::string> args, std::string log_path)
      : binary_(std::move(binary)), args_(std::move(args)), log_(std::move(log_path)) {}
  ~ServerProcess() { Kill(SIGKILL); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Forks and execs the server (a running one is SIGKILLed first).
  void Spawn() {
    Kill(SIGKILL);
    log_start_ = ReadFile(log_).size();
    port_ = 0;
    metrics_port_ = 0;
    client_.reset();
    std::vector<std::string> argv = {binary_, "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), args_.begin(), args_.end());
    pid_ = fork();
    if (pid_ == 0) {
      const int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> raw;
      for (std::string& a : argv) raw.push_back(a.data());
      raw.push_back(nullptr);
      execv(raw[0], raw.data());
      _exit(127);
    }
  }

  // Waits for the port (and the metrics port when --metrics-port was given) and for
  // SERVING, then connects client(). An error with the log since Spawn() when the
  // server exits or the timeout passes first.
  absl::Status WaitServing(std::chrono::steady_clock::duration timeout,
                           absl::Duration call_timeout = absl::Seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool wants_metrics = false;
    for (const std::string& a : args_) {
      wants_metrics |= a == "--metrics-port" || a.rfind("--metrics-port=", 0) == 0;
    }
    auto fail = [&](const std::string& why) {
      return absl::DeadlineExceededError(absl::StrCat(why, "; server log:\n", Log()));
    };
    while (port_ == 0 || (wants_metrics && metrics_port_ == 0)) {
      if (!Alive()) return absl::InternalError(absl::StrCat(ExitText(), " early:\n", Log()));
      if (std::chrono::steady_clock::now() > deadline) return fail("no port in time");
      const std::string log = Log();
      if (size_t at = log.find("listening on port "); at != std::string::npos) {
        port_ = std::atoi(log.c_str() + at + 18);
      }
      if (size_t at = log.find("metrics on port "); at != std::string::npos) {
        metrics_port_ = std::atoi(log.c_str() + at + 16);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    client::ClientOptions options;
    options.target = target();
    options.timeout = call_timeout;
    absl::StatusOr<std::unique_ptr<client::Client>> c = client::Client::Connect(options);
    if (!c.ok()) return c.status();
    client_ = std::move(*c);
    while (true) {
      if (!Alive()) return absl::InternalError(absl::StrCat(ExitText(), " while preparing:\n", Log()));
      if (std::chrono::steady_clock::now() > deadline) return fail("not SERVING in time");
      absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> health =
          client_->Health();
      if (health.ok() && *health == grpc::health::v1::HealthCheckResponse::SERVING) {
        return absl::OkStatus();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  // Whether the process still runs (reaps it when it has exited).
  bool Alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == 0) return true;
    pid_ = -1;
    exit_status_ = status;
    return false;
  }

  // Sends sig without waiting: client() stays usable (its calls fail once the process
  // is gone) until Kill() reaps it.
  void Signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }

  // Sends sig and reaps the process; returns its wait status (that of an earlier exit
  // when it had already exited; 0 when it never ran).
  int Kill(int sig) {
    if (pid_ > 0) {
      kill(pid_, sig);
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = -1;
      exit_status_ = status;
    }
    port_ = 0;
    metrics_port_ = 0;
    client_.reset();
    return exit_status_;
  }

  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  client::Client& client() { return *client_; }
  // The log since the last Spawn().
  std::string Log() const {
    const std::string log = ReadFile(log_);
    return log.size() >= log_start_ ? log.substr(log_start_) : log;
  }

 private:
  // How the process ended, for messages ("exit status 127" is a failed exec).
  std::string ExitText() const {
    if (WIFSIGNALED(exit_status_)) return absl::StrCat(binary_, " died of signal ", WTERMSIG(exit_status_));
    return absl::StrCat(binary_, " exited with status ", WEXITSTATUS(exit_status_));
  }

  std::string binary_;
  std::vector<std::string> args_;
  std::string log_;
  size_t log_start_ = 0;
  pid_t pid_ = -1;
  int exit_status_ = 0;
  int port_ = 0;
  int metrics_port_ = 0;
  std::unique_ptr<client::Client> client_;
};

// VmRSS of a process in kB (from /proc/PID/status), or -1 when it cannot be read.
inline long RssKb(pid_t pid) {
  const std::string status = ReadFile("/proc/" + std::to_string(pid) + "/status");
  const size_t at = status.find("VmRSS:");
  return at == std::string::npos ? -1 : std::atol(status.c_str() + at + 6);
}

}  // namespace latpred::testing

#endif  // LATPRED_TESTS_SUPPORT_SERVER_PROCESS_H_
