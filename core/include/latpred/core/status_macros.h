// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status: Debian's Abseil 20220623 ships
// no status_macros.h.
#ifndef LATPRED_CORE_STATUS_MACROS_H_
#define LATPRED_CORE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LATPRED_CONCAT_INNER_(a, b) a##b
#define LATPRED_CONCAT_(a, b) LATPRED_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function when it is not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::absl::Status latpred_status_ = (expr);         \
    if (!latpred_status_.ok()) return latpred_status_; \
  } while (0)

// Declares or assigns `lhs` from a StatusOr, returning its status when not OK.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  ASSIGN_OR_RETURN_IMPL_(LATPRED_CONCAT_(latpred_statusor_, __LINE__), lhs, rexpr)
#define ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                           \
  if (!statusor.ok()) return statusor.status();      \
  lhs = std::move(statusor).value()

#endif  // LATPRED_CORE_STATUS_MACROS_H_
