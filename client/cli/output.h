// Output of the `latpred` CLI: aligned tables, readable views and JSON.
#ifndef LATPRED_CLIENT_CLI_OUTPUT_H_
#define LATPRED_CLIENT_CLI_OUTPUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "latpred/v1/latpred.pb.h"

namespace latpred::cli {

// Rows (a header is just the first row) as columns two spaces apart, each line prefixed
// by indent; the last column is not padded.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows,
                        absl::string_view indent = "");

// The message as indented JSON with the proto field names and every primitive field,
// ending in a newline.
absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message);

// text as a JSON string literal, quotes included.
std::string JsonString(absl::string_view text);

// value as a JSON number: the shortest form that reads back exactly; null if not finite.
std::string JsonNumber(double value);

// Short name of a model state: "none", "zero-shot", "adapted", "source", "unspecified".
std::string StateName(latpred::v1::ModelState state);

// A device's spaces as "space:samples:state:vN" separated by spaces; "-" if none.
std::string SpacesSummary(const latpred::v1::Device& device);

// A device's labels as "k=v" in key order, separated by commas; "-" if none.
std::string LabelsSummary(const latpred::v1::Device& device);

// Fit statistics on one line: samples, fit Spearman, MAPE, LOO MAPE, LOO log sd ("-"
// when the fit has none) and seconds.
std::string FormatFit(const latpred::v1::FitStats& fit);

// FitStats.loo_log_sd with three decimals, or "-" when the fit has none (0: fewer than
// 3 samples).
std::string FormatLooLogSd(double loo_log_sd);

// A multi-line readable view of one device: labels, descriptor, per-space models.
std::string FormatDevice(const latpred::v1::Device& device);

// The result of predicting a list of architectures on one device and space.
struct Predictions {
  std::string device;
  std::string space;
  std::vector<std::string> archs;
  std::vector<double> latency_ms;
  // The share of latencies the bounds hold (0.8: the 10th and 90th percentiles); 0 when
  // none was asked for.
  double interval = 0;
  // The bounds per architecture; empty when none was asked for or the server had none
  // (the device's model is zero-shot or has fewer than 3 samples).
  std::vector<double> lower_ms;
  std::vector<double> upper_ms;
  int64_t model_version = 0;
  bool zero_shot = false;
  latpred::v1::ModelState state = latpred::v1::MODEL_STATE_UNSPECIFIED;
};

// Predictions as an ARCH / LATENCY_MS table and a line "model vN (state)"; with bounds,
// LOWER_MS and UPPER_MS columns too and the line says which percentiles they are.
std::string FormatPredictions(const Predictions& predictions);

// Predictions as a JSON object: device, space, model_version, zero_shot, state (the
// enum name) and predictions [{arch, latency_ms}]; with bounds, also interval and
// lower_ms and upper_ms in each prediction.
std::string PredictionsJson(const Predictions& predictions);

}  // namespace latpred::cli

#endif  // LATPRED_CLIENT_CLI_OUTPUT_H_
