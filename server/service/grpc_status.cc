#include "grpc_status.h"

#include <string>

namespace latpred::service {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  std::string message(status.message());
  if (message.size() > kErrorMessageLimit) {
    message.resize(kErrorMessageLimit - 3);
    message += "...";
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), message);
}

}  // namespace latpred::service
