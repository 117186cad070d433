// Converts absl::Status (used inside latpred) to grpc::Status (at the RPC edge).
#ifndef LATPRED_SERVICE_GRPC_STATUS_H_
#define LATPRED_SERVICE_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace latpred::service {

// Messages longer than this are truncated: a 10 KB junk input must not come back whole.
inline constexpr size_t kErrorMessageLimit = 1024;

// Same code (both follow google.rpc.Code), message truncated to kErrorMessageLimit.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace latpred::service

#endif  // LATPRED_SERVICE_GRPC_STATUS_H_
