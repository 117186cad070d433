#include "test_postgres.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace latpred::testing {
namespace {

constexpr int kPort = 5432;  // only names the socket file: each server has its own dir

// Quotes s for a POSIX shell.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

// The newest /usr/lib/postgresql/<N>/bin holding initdb, or "".
std::string FindBinDir() {
  std::string best;
  int best_version = -1;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string bin = entry.path().string() + "/bin";
    if (!std::filesystem::exists(bin + "/initdb")) continue;
    const int version = std::atoi(entry.path().filename().c_str());
    if (version > best_version) {
      best_version = version;
      best = bin;
    }
  }
  return best;
}

// Runs a shell command (as the postgres user when we are root); returns its output, or
// an error with the output when it fails.
absl::StatusOr<std::string> Run(const std::string& command, bool as_postgres) {
  std::string full = command;
  if (as_postgres && geteuid() == 0) full = "runuser -u postgres -- sh -c " + Quote(command);
  full += " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return absl::InternalError("popen failed: " + command);
  std::string output;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  if (status != 0) {
    return absl::InternalError(absl::StrCat("`", command, "` failed (status ", status,
                                            "): ", output));
  }
  return output;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TestPostgres>> TestPostgres::Start(const std::string& dir) {
  const std::string bin = FindBinDir();
  if (bin.empty()) {
    return absl::FailedPreconditionError(
        "PostgreSQL server binaries not found under /usr/lib/postgresql: install Debian's "
        "postgresql package (scripts/install-deps.sh does)");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError("cannot create " + dir + ": " + ec.message());
  if (geteuid() == 0) {
    auto chown = Run("chown postgres:postgres " + Quote(dir) + " && chmod 700 " + Quote(dir),
                     false);
    if (!chown.ok()) return chown.status();
  }
  const std::string data = dir + "/data";
  const std::string pg_ctl = bin + "/pg_ctl -D " + Quote(data);
  if (Run(pg_ctl + " status", true).ok()) {
    return std::unique_ptr<TestPostgres>(new TestPostgres(dir, false));
  }
  if (!std::filesystem::exists(data + "/PG_VERSION")) {
    auto init = Run(bin + "/initdb -D " + Quote(data) +
                        " -U latpred -A trust -E UTF8 --no-locale --no-sync",
                    true);
    if (!init.ok()) return init.status();
  }
  const std::string options = absl::StrCat("-k ", dir, " -p ", kPort,
                                           " -c listen_addresses= -c max_connections=300");
  auto start = Run(pg_ctl + " -l " + Quote(dir + "/log") + " -w -t 120 -o " +
                       Quote(options) + " start",
                   true);
  if (!start.ok()) {
    std::ifstream log(dir + "/log");
    std::stringstream text;
    text << log.rdbuf();
    return absl::InternalError(absl::StrCat(start.status().message(), "\nserver log:\n", text.str()));
  }
  return std::unique_ptr<TestPostgres>(new TestPostgres(dir, true));
}

absl::Status TestPostgres::Stop(const std::string& dir) {
  const std::string bin = FindBinDir();
  if (!bin.empty() && std::filesystem::exists(dir + "/data/postmaster.pid")) {
    (void)Run(bin + "/pg_ctl -D " + Quote(dir + "/data") + " -m immediate -w stop", true);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return absl::OkStatus();
}

absl::StatusOr<TestPostgres*> TestPostgres::Shared() {
  static std::mutex mu;
  static TestPostgres* shared = nullptr;
  static absl::Status failure = absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu);
  if (shared != nullptr) return shared;
  if (!failure.ok()) return failure;
  std::string dir;
  if (const char* env = std::getenv(kDirEnv); env != nullptr && *env) {
    dir = env;
  } else {
    std::string pattern = "/tmp/latpred-pg-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) return absl::InternalError("mkdtemp failed");
    dir = pattern;
  }
  auto started = Start(dir);
  if (!started.ok()) {
    failure = started.status();
    return failure;
  }
  shared = started->release();
  if (shared->owned_ && std::getenv(kDirEnv) == nullptr) {
    std::atexit([] {
      const std::string d = shared->dir_;
      delete shared;
      (void)Stop(d);
    });
  }
  return shared;
}

TestPostgres::~TestPostgres() = default;

std::string TestPostgres::Uri(const std::string& database) const {
  return absl::StrCat("postgresql://latpred@/", database, "?host=", dir_, "&port=", kPort);
}

absl::StatusOr<std::string> TestPostgres::CreateDatabase() {
  static std::atomic<int> counter{0};
  const std::string name = absl::StrCat("t_", getpid(), "_", counter++, "_", time(nullptr) % 100000);
  auto out = Psql("postgres", "CREATE DATABASE " + name);
  if (!out.ok()) return out.status();
  return Uri(name);
}

absl::StatusOr<std::string> TestPostgres::Psql(const std::string& database,
                                                const std::string& sql) const {
  return Run("psql -X -q -A -t -v ON_ERROR_STOP=1 -d " + Quote(Uri(database)) + " -c " +
                 Quote(sql),
             false);
}

}  // namespace latpred::testing
