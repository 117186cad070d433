// SQLite implementation of latpred::store::Store (private to latpred_store).
#ifndef LATPRED_SERVER_STORE_SQLITE_STORE_H_
#define LATPRED_SERVER_STORE_SQLITE_STORE_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "latpred/store/store.h"

namespace latpred::store {

// How a SQLite store's connection is set up beyond the defaults.
struct SqliteOptions {
  // When positive, the most pages the database may grow to (PRAGMA max_page_count; a
  // value below the file's size means its size): a write that needs more fails as on a
  // full disk. Lets tests fill a store without filling a disk.
  int64_t max_page_count = 0;
};

// Opens the SQLite database file at path, creating it and its parent directories when
// missing and applying pending schema migrations. FAILED_PRECONDITION when the file
// has a newer schema than this build knows. Writes on a full disk fail with
// RESOURCE_EXHAUSTED.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(std::string_view path,
                                                       const SqliteOptions& options = {});

}  // namespace latpred::store

#endif  // LATPRED_SERVER_STORE_SQLITE_STORE_H_
