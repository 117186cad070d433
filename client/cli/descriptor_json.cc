#include "client/cli/descriptor_json.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/cli/input.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "latpred/core/status_macros.h"

namespace latpred::cli {
namespace {

using ::google::protobuf::Struct;
using ::google::protobuf::Value;
using ::latpred::v1::DescriptorFeature;
using ::latpred::v1::FeatureSource;
using ::latpred::v1::RegisterDeviceRequest;

// The JSON text as a Struct, or INVALID_ARGUMENT when it is not a JSON object.
absl::StatusOr<Struct> ParseJsonObject(absl::string_view json) {
  Struct object;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &object);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a JSON object: ", status.message().ToString()));
  }
  return object;
}

// The FeatureSource called text: "counter", "microbenchmark", "reference_latency" or the
// enum's own name, in any case.
absl::StatusOr<FeatureSource> ParseFeatureSource(absl::string_view text) {
  std::string name = absl::AsciiStrToUpper(text);
  if (!absl::StartsWith(name, "FEATURE_SOURCE_")) name = "FEATURE_SOURCE_" + name;
  FeatureSource source;
  if (!latpred::v1::FeatureSource_Parse(name, &source) ||
      source == latpred::v1::FEATURE_SOURCE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown source '", text, "' (counter, microbenchmark or reference_latency)"));
  }
  return source;
}

// The string at key of object; "" when absent and optional.
absl::StatusOr<std::string> StringField(const Struct& object, const std::string& key,
                                        bool required) {
  auto it = object.fields().find(key);
  if (it == object.fields().end()) {
    if (required) return absl::InvalidArgumentError(absl::StrCat("missing '", key, "'"));
    return std::string();
  }
  if (it->second.kind_case() != Value::kStringValue) {
    return absl::InvalidArgumentError(absl::StrCat("'", key, "' must be a string"));
  }
  return it->second.string_value();
}

// One feature of the structured form.
absl::StatusOr<DescriptorFeature> ParseFeature(const Value& value) {
  if (value.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("must be an object with name and value");
  }
  const Struct& object = value.struct_value();
  for (const auto& [key, unused] : object.fields()) {
    if (key != "name" && key != "value" && key != "source" && key != "unit") {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown key '", key, "' (name, value, source, unit)"));
    }
  }
  DescriptorFeature feature;
  ASSIGN_OR_RETURN(*feature.mutable_name(), StringField(object, "name", true));
  if (feature.name().empty()) return absl::InvalidArgumentError("empty 'name'");
  auto number = object.fields().find("value");
  if (number == object.fields().end() ||
      number->second.kind_case() != Value::kNumberValue) {
    return absl::InvalidArgumentError("'value' must be a number");
  }
  feature.set_value(number->second.number_value());
  ASSIGN_OR_RETURN(std::string source, StringField(object, "source", false));
  ASSIGN_OR_RETURN(FeatureSource parsed_source,
                   ParseFeatureSource(source.empty() ? "microbenchmark" : source));
  feature.set_source(parsed_source);
  ASSIGN_OR_RETURN(*feature.mutable_unit(), StringField(object, "unit", false));
  return feature;
}

// Adds the "features" list of the structured form to request.
absl::Status ParseFeatureList(const Value& list, RegisterDeviceRequest& request) {
  if (list.kind_case() != Value::kListValue) {
    return absl::InvalidArgumentError("'features' must be a list");
  }
  for (int i = 0; i < list.list_value().values_size(); ++i) {
    absl::StatusOr<DescriptorFeature> feature = ParseFeature(list.list_value().values(i));
    RETURN_IF_ERROR(WithPrefix(feature.status(), absl::StrCat("features[", i, "]")));
    *request.add_features() = *std::move(feature);
  }
  return absl::OkStatus();
}

// Adds the "labels" object of the structured form to request.
absl::Status ParseLabels(const Value& labels, RegisterDeviceRequest& request) {
  if (labels.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("'labels' must be an object of strings");
  }
  for (const auto& [key, value] : labels.struct_value().fields()) {
    if (value.kind_case() != Value::kStringValue) {
      return absl::InvalidArgumentError(
          absl::StrCat("label '", key, "' must be a string"));
    }
    (*request.mutable_labels())[key] = value.string_value();
  }
  return absl::OkStatus();
}

// The structured form: {"features": [...], "labels": {...}}.
absl::StatusOr<RegisterDeviceRequest> ParseStructured(const Struct& object) {
  RegisterDeviceRequest request;
  for (const auto& [key, value] : object.fields()) {
    if (key == "features") {
      RETURN_IF_ERROR(ParseFeatureList(value, request));
    } else if (key == "labels") {
      RETURN_IF_ERROR(ParseLabels(value, request));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown key '", key, "' next to features/labels"));
    }
  }
  return request;
}

// The flat form: {"feature name": number, ...}, in name order.
absl::StatusOr<RegisterDeviceRequest> ParseFlat(const Struct& object) {
  std::vector<std::pair<std::string, Value>> entries(object.fields().begin(),
                                                     object.fields().end());
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  RegisterDeviceRequest request;
  for (const auto& [name, value] : entries) {
    if (value.kind_case() != Value::kNumberValue) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", name,
          "' must be a number (or use {\"features\": [...], \"labels\": {...}})"));
    }
    DescriptorFeature* feature = request.add_features();
    feature->set_name(name);
    feature->set_value(value.number_value());
    feature->set_source(latpred::v1::FEATURE_SOURCE_MICROBENCHMARK);
  }
  return request;
}

}  // namespace

absl::StatusOr<RegisterDeviceRequest> ParseDescriptorJson(absl::string_view json) {
  ASSIGN_OR_RETURN(Struct object, ParseJsonObject(json));
  const bool structured =
      object.fields().count("features") > 0 || object.fields().count("labels") > 0;
  return structured ? ParseStructured(object) : ParseFlat(object);
}

absl::StatusOr<RegisterDeviceRequest> LoadDescriptorFile(const std::string& path,
                                                         std::istream& in) {
  ASSIGN_OR_RETURN(std::string json, ReadInput(path, in));
  absl::StatusOr<RegisterDeviceRequest> request = ParseDescriptorJson(json);
  RETURN_IF_ERROR(WithPrefix(request.status(), path == "-" ? "stdin" : path));
  return request;
}

}  // namespace latpred::cli
