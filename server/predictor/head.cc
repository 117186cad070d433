// Serialisation of device heads: a short text format, stable across versions.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "latpred/predictor/predictor.h"

namespace latpred::predictor {
namespace {

// The smallest relative latency the additive part predicts: a sum of costs fitted on a
// few samples can extrapolate below zero.
constexpr double kAdditiveFloor = 0.05;

// Shortest text that reads back as the same double.
std::string Exact(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

}  // namespace

std::string DeviceHead::Serialize() const {
  std::string out = absl::StrCat("latpred-head-v1\nb=", Exact(b), "\nz=");
  for (size_t i = 0; i < z.size(); ++i) absl::StrAppend(&out, i ? "," : "", Exact(z[i]));
  if (!w.empty()) {
    absl::StrAppend(&out, "\nw=");
    for (size_t i = 0; i < w.size(); ++i) absl::StrAppend(&out, i ? "," : "", Exact(w[i]));
  }
  if (add_weight > 0) {
    absl::StrAppend(&out, "\nadd=", Exact(add_weight), ",", Exact(add_log_scale), ",",
                    Exact(add_bias));
    for (double v : add_w) absl::StrAppend(&out, ",", Exact(v));
    if (!add_exp.empty()) {
      absl::StrAppend(&out, "\naddexp=");
      for (size_t i = 0; i < add_exp.size(); ++i) {
        absl::StrAppend(&out, i ? "," : "", add_exp[i].feature, ":", Exact(add_exp[i].amplitude),
                        ":", Exact(add_exp[i].rate));
      }
    }
  }
  absl::StrAppend(&out, "\nfit=", fit.samples, ",", Exact(fit.fit_spearman), ",",
                  Exact(fit.fit_mape), ",", Exact(fit.loo_mape), ",", Exact(fit.seconds), ",",
                  Exact(fit.loo_log_sd), ",", Exact(fit.descriptor_weight), "\n");
  // Canonical architecture strings hold no ';'.
  if (!fit.set_aside.empty()) absl::StrAppend(&out, "aside=", absl::StrJoin(fit.set_aside, ";"), "\n");
  return out;
}

absl::StatusOr<DeviceHead> DeviceHead::Deserialize(std::string_view blob) {
  std::vector<std::string> lines = absl::StrSplit(std::string(blob), '\n', absl::SkipEmpty());
  if (lines.empty() || lines[0] != "latpred-head-v1") {
    return absl::DataLossError("stored device head is unreadable: wrong format tag");
  }
  DeviceHead head;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::pair<std::string, std::string> kv = absl::StrSplit(lines[i], absl::MaxSplits('=', 1));
    std::vector<std::string> parts = absl::StrSplit(kv.second, ',', absl::SkipEmpty());
    bool ok = true;
    if (kv.first == "b") {
      ok = absl::SimpleAtod(kv.second, &head.b);
    } else if (kv.first == "z") {
      head.z.resize(parts.size());
      for (size_t k = 0; k < parts.size() && ok; ++k) ok = absl::SimpleAtod(parts[k], &head.z[k]);
    } else if (kv.first == "w") {
      head.w.resize(parts.size());
      for (size_t k = 0; k < parts.size() && ok; ++k) ok = absl::SimpleAtod(parts[k], &head.w[k]);
    } else if (kv.first == "add") {
      ok = parts.size() >= 3 && absl::SimpleAtod(parts[0], &head.add_weight) &&
           absl::SimpleAtod(parts[1], &head.add_log_scale) &&
           absl::SimpleAtod(parts[2], &head.add_bias);
      head.add_w.resize(ok ? parts.size() - 3 : 0);
      for (size_t k = 0; k < head.add_w.size() && ok; ++k) {
        ok = absl::SimpleAtod(parts[k + 3], &head.add_w[k]);
      }
    } else if (kv.first == "addexp") {
      for (const std::string& part : parts) {
        std::vector<std::string> fields = absl::StrSplit(part, ':');
        ExpTerm term;
        ok = ok && fields.size() == 3 && absl::SimpleAtoi(fields[0], &term.feature) &&
             term.feature >= 0 && absl::SimpleAtod(fields[1], &term.amplitude) &&
             absl::SimpleAtod(fields[2], &term.rate);
        head.add_exp.push_back(term);
      }
    } else if (kv.first == "aside") {
      head.fit.set_aside = absl::StrSplit(kv.second, ';', absl::SkipEmpty());
    } else if (kv.first == "fit" && parts.size() >= 5 && parts.size() <= 7) {
      ok = absl::SimpleAtoi(parts[0], &head.fit.samples) &&
           absl::SimpleAtod(parts[1], &head.fit.fit_spearman) &&
           absl::SimpleAtod(parts[2], &head.fit.fit_mape) &&
           absl::SimpleAtod(parts[3], &head.fit.loo_mape) &&
           absl::SimpleAtod(parts[4], &head.fit.seconds) &&
           (parts.size() < 6 || absl::SimpleAtod(parts[5], &head.fit.loo_log_sd)) &&
           (parts.size() < 7 || absl::SimpleAtod(parts[6], &head.fit.descriptor_weight));
    }
    if (!ok) return absl::DataLossError(absl::StrCat("stored device head: bad line '", lines[i], "'"));
  }
  if (head.z.empty()) return absl::DataLossError("stored device head has no weights");
  return head;
}

double DeviceHead::AdditiveLogLatency(const double* x, size_t n) const {
  double t = add_bias;
  for (size_t j = 0; j < std::min(n, add_w.size()); ++j) t += x[j] * add_w[j];
  for (const ExpTerm& term : add_exp) {
    if (static_cast<size_t>(term.feature) < n) {
      t += term.amplitude * std::exp(term.rate * x[term.feature]);
    }
  }
  return add_weight * (add_log_scale + std::log(std::max(t, kAdditiveFloor)));
}

}  // namespace latpred::predictor
