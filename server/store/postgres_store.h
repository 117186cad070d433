// PostgreSQL implementation of latpred::store::Store (private to latpred_store).
#ifndef LATPRED_SERVER_STORE_POSTGRES_STORE_H_
#define LATPRED_SERVER_STORE_POSTGRES_STORE_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "latpred/store/store.h"

namespace latpred::store {

// Connects to the database named by a libpq connection URI and applies pending schema
// migrations. UNAVAILABLE when the server cannot be reached; FAILED_PRECONDITION when
// the database has a newer schema than this build knows.
absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(std::string_view uri);

}  // namespace latpred::store

#endif  // LATPRED_SERVER_STORE_POSTGRES_STORE_H_
