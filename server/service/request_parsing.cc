#include "request_parsing.h"

#include <grpcpp/support/proto_buffer_reader.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/wire_format_lite.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace latpred::service {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

// Whether text is UTF-8 as RFC 3629 defines it (no overlong forms, no surrogates,
// nothing above U+10FFFF): what protobuf requires of a string field.
bool IsUtf8(const std::string& text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t length;
    unsigned char low = 0x80, high = 0xbf;  // bounds of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      length = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      length = 3;
      if (c == 0xe0) low = 0xa0;
      if (c == 0xed) high = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      length = 4;
      if (c == 0xf0) low = 0x90;
      if (c == 0xf4) high = 0x8f;
    } else {
      return false;
    }
    if (n - i < length || s[i + 1] < low || s[i + 1] > high) return false;
    for (size_t k = 2; k < length; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xbf) return false;
    }
    i += length;
  }
  return true;
}

// Where and why the bytes left in `in` (up to its limit) are not a valid `type`; ""
// when this finds nothing wrong. `path` names the message ("" for the request itself,
// "samples[2]." for an item).
std::string WireProblem(const Descriptor& type, CodedInputStream* in, const std::string& path) {
  std::map<int, int> seen;  // occurrences of each field so far: the index of a repeated one
  while (true) {
    const int offset = in->CurrentPosition();
    const uint32_t tag = in->ReadTag();
    if (tag == 0) {
      if (in->BytesUntilLimit() == 0) return "";
      return absl::StrCat("malformed field key at byte ", offset, " (field number 0, or a ",
                          "truncated or overlong varint)");
    }
    const int number = static_cast<int>(WireFormatLite::GetTagFieldNumber(tag));
    const FieldDescriptor* field = type.FindFieldByNumber(number);
    std::string name = absl::StrCat(path, field == nullptr ? absl::StrCat("field ", number)
                                                           : field->name());
    const int index = seen[number]++;
    if (field != nullptr && field->is_repeated()) absl::StrAppend(&name, "[", index, "]");
    switch (WireFormatLite::GetTagWireType(tag)) {
      case WireFormatLite::WIRETYPE_VARINT: {
        uint64_t value;
        if (!in->ReadVarint64(&value)) {
          return absl::StrCat(name, ": truncated or overlong varint at byte ", offset);
        }
        break;
      }
      case WireFormatLite::WIRETYPE_FIXED64: {
        uint64_t value;
        if (!in->ReadLittleEndian64(&value)) return absl::StrCat(name, ": truncated");
        break;
      }
      case WireFormatLite::WIRETYPE_FIXED32: {
        uint32_t value;
        if (!in->ReadLittleEndian32(&value)) return absl::StrCat(name, ": truncated");
        break;
      }
      case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
        uint32_t length;
        if (!in->ReadVarint32(&length)) {
          return absl::StrCat(name, ": truncated or overlong length at byte ", offset);
        }
        const int left = in->BytesUntilLimit();
        if (left >= 0 && length > static_cast<uint32_t>(left)) {
          return absl::StrCat(name, ": truncated (its length says ", length, " bytes, ", left,
                              " remain)");
        }
        if (field != nullptr && field->type() == FieldDescriptor::TYPE_STRING) {
          std::string value;
          if (!in->ReadString(&value, static_cast<int>(length))) {
            return absl::StrCat(name, ": truncated");
          }
          if (!IsUtf8(value)) {
            return absl::StrCat(name, " is not valid UTF-8 (use UTF-8 text in string fields)");
          }
        } else if (field != nullptr && field->type() == FieldDescriptor::TYPE_MESSAGE) {
          const CodedInputStream::Limit limit = in->PushLimit(static_cast<int>(length));
          std::string problem = WireProblem(*field->message_type(), in, name + ".");
          if (!problem.empty()) return problem;
          in->PopLimit(limit);
        } else if (!in->Skip(static_cast<int>(length))) {
          return absl::StrCat(name, ": truncated");
        }
        break;
      }
      case WireFormatLite::WIRETYPE_START_GROUP:
        if (!WireFormatLite::SkipField(in, tag)) {
          return absl::StrCat(name, ": malformed group at byte ", offset);
        }
        break;
      case WireFormatLite::WIRETYPE_END_GROUP:
        return absl::StrCat(name, ": end of a group that never started, at byte ", offset);
      default:
        return absl::StrCat(name, ": invalid wire type ", WireFormatLite::GetTagWireType(tag),
                            " at byte ", offset);
    }
  }
}

google::protobuf::LogHandler* previous_log_handler = nullptr;

void DropParseUtf8Errors(google::protobuf::LogLevel level, const char* filename, int line,
                         const std::string& message) {
  if (level != google::protobuf::LOGLEVEL_FATAL &&
      absl::StrContains(message, "contains invalid UTF-8 data when parsing")) {
    return;
  }
  if (previous_log_handler != nullptr) previous_log_handler(level, filename, line, message);
}

}  // namespace

absl::Status ParseRequest(const grpc::ByteBuffer& bytes, google::protobuf::Message* message) {
  const std::string& type = message->GetDescriptor()->full_name();
  if (!bytes.Valid()) {
    return absl::InvalidArgumentError(absl::StrCat("request is not a valid ", type,
                                                   ": the call carried no request message"));
  }
  // The reader only reads; it takes a non-const buffer for gRPC's C API.
  auto* buffer = const_cast<grpc::ByteBuffer*>(&bytes);
  {
    grpc::ProtoBufferReader reader(buffer);
    if (message->ParseFromZeroCopyStream(&reader)) return absl::OkStatus();
  }
  // Off the hot path: read the bytes again to say where and why.
  std::string problem;
  {
    grpc::ProtoBufferReader reader(buffer);
    CodedInputStream in(&reader);
    in.PushLimit(static_cast<int>(bytes.Length()));
    problem = WireProblem(*message->GetDescriptor(), &in, "");
  }
  if (problem.empty()) problem = "its bytes are not protobuf wire format";
  return absl::InvalidArgumentError(absl::StrCat("request is not a valid ", type, ": ", problem));
}

void FilterProtobufParseLogs() {
  static std::once_flag once;
  std::call_once(once, [] {
    previous_log_handler = google::protobuf::SetLogHandler(&DropParseUtf8Errors);
  });
}

}  // namespace latpred::service
