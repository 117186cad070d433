// A throwaway PostgreSQL server for tests: initdb into a directory, serve on a Unix
// socket there, no TCP. As root (CI) initdb and pg_ctl run as the "postgres" user that
// Debian's package creates, since initdb refuses root. Needs Debian's postgresql package.
#ifndef LATPRED_TESTS_SUPPORT_TEST_POSTGRES_H_
#define LATPRED_TESTS_SUPPORT_TEST_POSTGRES_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace latpred::testing {

class TestPostgres {
 public:
  // Environment variable naming a running server's directory (the ctest fixture
  // `postgres_server` sets it); when unset, Shared() starts one for the process.
  static constexpr char kDirEnv[] = "LATPRED_TEST_POSTGRES_DIR";

  // Starts a server in dir (created; reused when a server already runs there).
  static absl::StatusOr<std::unique_ptr<TestPostgres>> Start(const std::string& dir);
  // The server of kDirEnv, else one started in a temporary directory and stopped at
  // exit. FAILED_PRECONDITION saying what to install when PostgreSQL is missing.
  static absl::StatusOr<TestPostgres*> Shared();
  // Stops the server in dir (if any) and removes dir.
  static absl::Status Stop(const std::string& dir);

  ~TestPostgres();  // stops the server when this object started it

  // Creates an empty database with a unique name and returns its URI.
  absl::StatusOr<std::string> CreateDatabase();
  // URI of a database on this server.
  std::string Uri(const std::string& database) const;
  // Runs SQL on a database through psql; returns its output (tuples only, unaligned).
  absl::StatusOr<std::string> Psql(const std::string& database, const std::string& sql) const;

 private:
  explicit TestPostgres(std::string dir, bool owned) : dir_(std::move(dir)), owned_(owned) {}
  std::string dir_;
  bool owned_;
};

}  // namespace latpred::testing

#endif  // LATPRED_TESTS_SUPPORT_TEST_POSTGRES_H_
