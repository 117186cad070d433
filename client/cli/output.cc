#include "client/cli/output.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace latpred::cli {
namespace {

// Lower-case enum value name without its prefix.
std::string ShortEnumName(absl::string_view name, absl::string_view prefix) {
  absl::ConsumePrefix(&name, prefix);
  return absl::AsciiStrToLower(name);
}

// A latency in milliseconds with four decimals.
std::string FormatMs(double ms) { return absl::StrFormat("%.4f", ms); }

// A Unix time in milliseconds as UTC date and time; "-" for 0.
std::string FormatUnixMs(int64_t ms) {
  if (ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixMillis(ms),
                          absl::UTCTimeZone());
}

// The descriptor features as an indented table; "  (none)" when there are none.
std::string FormatFeatures(const latpred::v1::Device& device) {
  if (device.features_size() == 0) return "  (none)\n";
  std::vector<std::vector<std::string>> rows = {{"NAME", "VALUE", "SOURCE", "UNIT"}};
  for (const latpred::v1::DescriptorFeature& feature : device.features()) {
    rows.push_back({feature.name(), absl::StrCat(feature.value()),
                    ShortEnumName(latpred::v1::FeatureSource_Name(feature.source()),
                                  "FEATURE_SOURCE_"),
                    feature.unit().empty() ? "-" : feature.unit()});
  }
  return FormatTable(rows, "  ");
}

// The per-space sample counts and models as an indented table; "  (none)" when empty.
std::string FormatSpaces(const latpred::v1::Device& device) {
  if (device.spaces_size() == 0) return "  (none)\n";
  std::vector<std::vector<std::string>> rows = {
      {"SPACE", "SAMPLES", "STATE", "MODEL", "FIT"}};
  for (const latpred::v1::SpaceState& space : device.spaces()) {
    rows.push_back({space.space(), absl::StrCat(space.sample_count()),
                    StateName(space.state()), absl::StrCat("v", space.model_version()),
                    space.fit().samples() > 0 ? FormatFit(space.fit()) : "-"});
  }
  return FormatTable(rows, "  ");
}

}  // namespace

std::string FormatTable(const std::vector<std::vector<std::string>>& rows,
                        absl::string_view indent) {
  std::vector<size_t> widths;
  for (const std::vector<std::string>& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string table;
  for (const std::vector<std::string>& row : rows) {
    absl::StrAppend(&table, indent);
    for (size_t i = 0; i < row.size(); ++i) {
      const bool last = i + 1 == row.size();
      absl::StrAppend(&table, row[i],
                      last ? "" : std::string(widths[i] - row[i].size() + 2, ' '));
    }
    table += '\n';
  }
  return table;
}

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot print JSON: ", status.message().ToString()));
  }
  absl::StripTrailingAsciiWhitespace(&json);
  return json + "\n";
}

std::string JsonString(absl::string_view text) {
  std::string quoted = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        quoted += "\\\"";
        break;
      case '\\':
        quoted += "\\\\";
        break;
      case '\n':
        quoted += "\\n";
        break;
      case '\r':
        quoted += "\\r";
        break;
      case '\t':
        quoted += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&quoted, "\\u%04x", c);
        } else {
          quoted += c;
        }
    }
  }
  return quoted + "\"";
}

std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  for (int precision = 1; precision < 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, value);
    if (std::strtod(text.c_str(), nullptr) == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

std::string StateName(latpred::v1::ModelState state) {
  return absl::StrReplaceAll(
      ShortEnumName(latpred::v1::ModelState_Name(state), "MODEL_STATE_"), {{"_", "-"}});
}

std::string SpacesSummary(const latpred::v1::Device& device) {
  std::vector<std::string> spaces;
  for (const latpred::v1::SpaceState& space : device.spaces()) {
    spaces.push_back(absl::StrCat(space.space(), ":", space.sample_count(), ":",
                                  StateName(space.state()), ":v", space.model_version()));
  }
  return spaces.empty() ? "-" : absl::StrJoin(spaces, " ");
}

std::string LabelsSummary(const latpred::v1::Device& device) {
  const std::map<std::string, std::string> sorted(device.labels().begin(),
                                                  device.labels().end());
  return sorted.empty() ? "-" : absl::StrJoin(sorted, ",", absl::PairFormatter("="));
}

std::string FormatLooLogSd(double loo_log_sd) {
  return loo_log_sd > 0 ? absl::StrFormat("%.3f", loo_log_sd) : "-";
}

std::string FormatFit(const latpred::v1::FitStats& fit) {
  std::string out = absl::StrFormat(
      "%d samples, spearman %.3f, MAPE %.2f%%, LOO MAPE %.2f%%, LOO log sd %s, %.2f s",
      fit.samples(), fit.fit_spearman(), fit.fit_mape(), fit.loo_mape(),
      FormatLooLogSd(fit.loo_log_sd()), fit.seconds());
  if (fit.descriptor_weight() > 0) {
    absl::StrAppend(&out, absl::StrFormat(", descriptor weight %.2f", fit.descriptor_weight()));
  }
  if (fit.set_aside_size() > 0) {
    absl::StrAppend(&out, ", set aside as glitches: ", absl::StrJoin(fit.set_aside(), " "));
  }
  return out;
}

std::string FormatDevice(const latpred::v1::Device& device) {
  return absl::StrCat("name:     ", device.name(), "\n",
                      "kind:     ", device.source() ? "source (bundled)" : "registered",
                      "\n", "created:  ", FormatUnixMs(device.created_unix_ms()), "\n",
                      "updated:  ", FormatUnixMs(device.updated_unix_ms()), "\n",
                      "labels:   ", LabelsSummary(device), "\n", "features:\n",
                      FormatFeatures(device), "spaces:\n", FormatSpaces(device));
}

namespace {

// Whether predictions carry a lower and an upper bound per architecture.
bool HasBounds(const Predictions& predictions) {
  return !predictions.lower_ms.empty() &&
         predictions.lower_ms.size() == predictions.archs.size() &&
         predictions.upper_ms.size() == predictions.archs.size();
}

}  // namespace

std::string FormatPredictions(const Predictions& predictions) {
  const bool bounds = HasBounds(predictions);
  std::vector<std::vector<std::string>> rows = {{"ARCH", "LATENCY_MS"}};
  if (bounds) rows[0].insert(rows[0].end(), {"LOWER_MS", "UPPER_MS"});
  for (size_t i = 0; i < predictions.archs.size(); ++i) {
    rows.push_back({predictions.archs[i], FormatMs(predictions.latency_ms[i])});
    if (bounds) {
      rows.back().insert(rows.back().end(), {FormatMs(predictions.lower_ms[i]),
                                             FormatMs(predictions.upper_ms[i])});
    }
  }
  std::string model = absl::StrCat("model v", predictions.model_version, " (",
                                   StateName(predictions.state), ")");
  if (bounds) {
    // 0.8 holds the latencies between the 10th and the 90th percentile.
    const double tail = 50 * (1 - predictions.interval);
    absl::StrAppendFormat(&model, "; %g%% interval: percentiles %g to %g",
                          100 * predictions.interval, tail, 100 - tail);
  }
  return absl::StrCat(FormatTable(rows), model, "\n");
}

std::string PredictionsJson(const Predictions& predictions) {
  const bool bounds = HasBounds(predictions);
  std::vector<std::string> items;
  for (size_t i = 0; i < predictions.archs.size(); ++i) {
    std::string item =
        absl::StrCat("    {\"arch\": ", JsonString(predictions.archs[i]),
                     ", \"latency_ms\": ", JsonNumber(predictions.latency_ms[i]));
    if (bounds) {
      absl::StrAppend(&item, ", \"lower_ms\": ", JsonNumber(predictions.lower_ms[i]),
                      ", \"upper_ms\": ", JsonNumber(predictions.upper_ms[i]));
    }
    items.push_back(item + "}");
  }
  return absl::StrCat(
      "{\n", "  \"device\": ", JsonString(predictions.device), ",\n",
      "  \"space\": ", JsonString(predictions.space), ",\n",
      "  \"model_version\": ", predictions.model_version, ",\n",
      "  \"zero_shot\": ", predictions.zero_shot ? "true" : "false", ",\n",
      "  \"state\": ", JsonString(latpred::v1::ModelState_Name(predictions.state)), ",\n",
      bounds ? absl::StrCat("  \"interval\": ", JsonNumber(predictions.interval), ",\n")
             : "",
      "  \"predictions\": [", items.empty() ? "" : "\n", absl::StrJoin(items, ",\n"),
      items.empty() ? "]\n" : "\n  ]\n", "}\n");
}

}  // namespace latpred::cli
