// SQLite implementation of latpred::store::Store (private to latpred_store).
#ifndef LATPRED_SERVER_STORE_SQLITE_STORE_H_
#define LATPRED_SERVER_STORE_SQLITE_STORE_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "latpred/store/store.h"

namespace latpred::store {

// Opens the SQLite database file at path, creating it and its parent directories when
// missing and applying pending schema migrations. FAILED_PRECONDITION when the file
// has a newer schema than this build knows.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(std::string_view path);

}  // namespace latpred::store

#endif  // LATPRED_SERVER_STORE_SQLITE_STORE_H_
