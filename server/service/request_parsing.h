// Parsing of request bytes in the service's own code, so that a request that is not a
// valid message gets INVALID_ARGUMENT saying why.
//
// Why not leave it to gRPC: the callback API parses a request before the handler runs
// and, when that fails, answers UNIMPLEMENTED with an empty message (grpc 1.51,
// CallbackUnaryHandler::RunHandler); protobuf also logs an error line for every string
// field that is not UTF-8, so a client sending such requests floods the server's log.
#ifndef LATPRED_SERVICE_REQUEST_PARSING_H_
#define LATPRED_SERVICE_REQUEST_PARSING_H_

#include <grpcpp/support/byte_buffer.h>

#include <google/protobuf/message.h>

#include "absl/status/status.h"

namespace latpred::service {

// Parses bytes into message (which must be empty). INVALID_ARGUMENT when they are not a
// valid message of its type: "request is not a valid latpred.v1.X: <where and why>",
// e.g. "samples[2].arch is not valid UTF-8" or "truncated: field 3 says 40 bytes, 7
// remain".
absl::Status ParseRequest(const grpc::ByteBuffer& bytes, google::protobuf::Message* message);

// Keeps protobuf's "contains invalid UTF-8 data when parsing" error lines out of the
// log (ParseRequest reports those to the client instead); passes every other protobuf
// log line on to the handler installed before. Idempotent and thread-safe.
void FilterProtobufParseLogs();

}  // namespace latpred::service

#endif  // LATPRED_SERVICE_REQUEST_PARSING_H_
