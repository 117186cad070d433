#include "service.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "grpc_status.h"
#include "latpred/core/search_space.h"
#include "latpred/core/status_macros.h"
#include "latpred/predictor/interval.h"
#include "request_parsing.h"

namespace latpred::service {
namespace {

constexpr size_t kMaxNameLength = 128;
constexpr int kMaxSuggest = 1000;
// How many invalid items an all-or-nothing SubmitSamples error lists.
constexpr int kErrorsListed = 5;
// Devices per ListDevices page: when page_size is 0, and at most.
constexpr int kDefaultDevicePageSize = 1000;
constexpr int kMaxDevicePageSize = 1000;
// A ListDevices page token: web-safe base64 of this prefix, the listing's kind ('a' all,
// 'r' registered only), ':' and the last device name of the page before.
constexpr absl::string_view kPageTokenPrefix = "devices.v1:";

// Store spelling of a descriptor feature's source.
std::string SourceName(v1::FeatureSource source) {
  switch (source) {
    case v1::FEATURE_SOURCE_COUNTER: return "counter";
    case v1::FEATURE_SOURCE_MICROBENCHMARK: return "microbenchmark";
    case v1::FEATURE_SOURCE_REFERENCE_LATENCY: return "reference_latency";
    default: return "unspecified";
  }
}

v1::FeatureSource SourceEnum(const std::string& name) {
  if (name == "counter") return v1::FEATURE_SOURCE_COUNTER;
  if (name == "microbenchmark") return v1::FEATURE_SOURCE_MICROBENCHMARK;
  if (name == "reference_latency") return v1::FEATURE_SOURCE_REFERENCE_LATENCY;
  return v1::FEATURE_SOURCE_UNSPECIFIED;
}

// A short, printable excerpt of user input for error messages.
std::string Excerpt(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += (c >= 32 && c < 127) ? c : '?';
  if (s.size() > 40) absl::StrAppend(&out, "... (", s.size(), " bytes)");
  return out;
}

// Device names: 1-128 characters of [A-Za-z0-9._:-].
absl::Status ValidateDeviceName(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("device name is empty");
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("device name '", Excerpt(name), "' is longer than ", kMaxNameLength));
  }
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' ||
          c == ':')) {
      return absl::InvalidArgumentError(absl::StrCat(
          "device name '", Excerpt(name), "' may only hold letters, digits and . _ - :"));
    }
  }
  return absl::OkStatus();
}

// SubmitSamplesRequest.request_id: at most this many bytes of printable ASCII without
// spaces (a UUID is 36, the clients' 32 hex digits 32).
constexpr size_t kMaxRequestIdLength = 128;

absl::Status ValidateRequestId(const std::string& id) {
  if (id.size() > kMaxRequestIdLength) {
    return absl::InvalidArgumentError(absl::StrCat("request_id '", Excerpt(id), "' is longer than ",
                                                   kMaxRequestIdLength, " bytes"));
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(id[i]);
    if (c > ' ' && c < 0x7f) continue;
    const char* what = c == ' ' ? "a space" : c > 0x7f ? "not ASCII" : "a control character";
    return absl::InvalidArgumentError(absl::StrCat(
        "request_id '", Excerpt(id), "': byte ", i, " is ", what,
        "; a request id is printable ASCII without spaces (0x21-0x7e)"));
  }
  return absl::OkStatus();
}

// What identifies a SubmitSamples request's content apart from its device and
// request_id: FNV-1a (64 bits) over the space, partial and each sample as sent (arch
// bytes, then the IEEE bits of latency_ms, repeats and spread_ms, little-endian), so
// that every replica and build computes the same. It tells a retry from another batch
// that reuses an id by mistake; it is no defence against a caller forging collisions
// (who could as well write to the device).
std::string SubmitFingerprint(const v1::SubmitSamplesRequest& request) {
  uint64_t hash = 14695981039346656037ull;
  const auto add_byte = [&hash](unsigned char b) {
    hash ^= b;
    hash *= 1099511628211ull;
  };
  const auto add_string = [&](const std::string& s) {
    for (char c : s) add_byte(static_cast<unsigned char>(c));
    add_byte(0);
  };
  const auto add_u64 = [&](uint64_t v) {
    for (int i = 0; i < 8; ++i) add_byte(static_cast<unsigned char>(v >> (8 * i)));
  };
  const auto add_double = [&](double d) {
    uint64_t bits = 0;
    std::memcpy(&bits, &d, sizeof(bits));
    add_u64(bits);
  };
  add_string(request.space());
  add_byte(request.partial() ? 1 : 0);
  add_u64(static_cast<uint64_t>(request.samples_size()));
  for (const v1::Sample& s : request.samples()) {
    add_string(s.arch());
    add_double(s.latency_ms());
    add_u64(static_cast<uint64_t>(static_cast<int64_t>(s.repeats())));
    add_double(s.spread_ms());
  }
  return absl::StrCat("fnv1a64:", absl::Hex(hash, absl::kZeroPad16));
}

absl::Status CheckBatchSize(int size, int limit, const char* what) {
  if (size == 0) return absl::InvalidArgumentError(absl::StrCat("empty batch: no ", what));
  if (size > limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "batch of ", size, " ", what, " exceeds the server's limit of ", limit,
        " (--max-batch); split it"));
  }
  return absl::OkStatus();
}

void FillFit(const predictor::FitStats& fit, v1::FitStats* out) {
  out->set_samples(fit.samples);
  out->set_fit_spearman(fit.fit_spearman);
  out->set_fit_mape(fit.fit_mape);
  out->set_loo_mape(fit.loo_mape);
  out->set_loo_log_sd(fit.loo_log_sd);
  out->set_descriptor_weight(fit.descriptor_weight);
  out->set_seconds(fit.seconds);
  for (const std::string& arch : fit.set_aside) out->add_set_aside(arch);
}

// The page token of a listing that continues after device `last`.
std::string DevicePageToken(bool registered_only, const std::string& last) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(kPageTokenPrefix, registered_only ? "r" : "a", ":", last));
}

// The device name a page token continues after; INVALID_ARGUMENT for a token this
// server did not issue or one from a listing with another registered_only.
absl::StatusOr<std::string> DevicePageAfter(const std::string& token, bool registered_only) {
  std::string decoded;
  const std::string kind = absl::StrCat(kPageTokenPrefix, registered_only ? "r" : "a", ":");
  if (!absl::WebSafeBase64Unescape(token, &decoded) ||
      !absl::StartsWith(decoded, kPageTokenPrefix)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token '", Excerpt(token), "' is not a next_page_token of this server"));
  }
  if (!absl::StartsWith(decoded, kind)) {
    return absl::InvalidArgumentError(
        "page_token belongs to a listing with another registered_only; start over without it");
  }
  return decoded.substr(kind.size());
}

using Clock = std::chrono::steady_clock;

}  // namespace

absl::Status LatencyPredictorService::Authorize(const grpc::CallbackServerContext& context,
                                                bool write) const {
  if (ctx_.token.empty()) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    if (!write && !ctx_.token_for_reads) return absl::OkStatus();
    return absl::UnauthenticatedError(
        "this call needs a bearer token: set LATPRED_TOKEN or LATPRED_TOKEN_FILE");
  }
  // "Bearer <token>": the scheme is case-insensitive (RFC 7235), the token is not.
  constexpr absl::string_view kScheme = "bearer";
  absl::string_view given(it->second.data(), it->second.size());
  if (given.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(given.substr(0, kScheme.size()), kScheme) ||
      given[kScheme.size()] != ' ') {
    return absl::UnauthenticatedError("authorization is not a bearer token ('Bearer <token>')");
  }
  given.remove_prefix(kScheme.size());
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  const std::string& expected = ctx_.token;
  // Constant-time comparison: the time taken says nothing about the token.
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i] ^ expected[i % expected.size()]);
  }
  if (diff != 0) return absl::UnauthenticatedError("wrong bearer token");
  return absl::OkStatus();
}

absl::Status LatencyPredictorService::CheckReady() const {
  if (!ctx_.ready->load(std::memory_order_acquire)) {
    return absl::UnavailableError(
        "latpred is still preparing its models; retry when grpc.health.v1 reports SERVING");
  }
  return absl::OkStatus();
}

void LatencyPredictorService::FillDevice(const store::Device& device,
                                         const std::map<std::string, int64_t>& counts,
                                         v1::Device* out) const {
  out->set_name(device.name);
  out->mutable_labels()->insert(device.labels.begin(), device.labels.end());
  for (const store::DescriptorFeature& f : device.descriptor) {
    v1::DescriptorFeature* feature = out->add_features();
    feature->set_name(f.name);
    feature->set_value(f.value);
    feature->set_source(SourceEnum(f.source));
    feature->set_unit(f.unit);
  }
  out->set_source(device.source);
  out->set_created_unix_ms(device.created_unix_ms);
  out->set_updated_unix_ms(device.updated_unix_ms);
  for (const std::string& space : core::SearchSpaceNames()) {
    auto count = counts.find(space);
    auto head = ctx_.registry->GetHead(device.name, space);
    std::string fit_error = ctx_.manager->LastFitError(device.name, space);
    if ((count == counts.end() || count->second == 0) && head == nullptr && fit_error.empty()) {
      continue;
    }
    v1::SpaceState* state = out->add_spaces();
    state->set_space(space);
    state->set_last_fit_error(std::move(fit_error));
    state->set_sample_count(count == counts.end() ? 0 : count->second);
    state->set_state(head == nullptr ? v1::MODEL_STATE_NONE : head->state);
    if (head != nullptr) {
      state->set_model_version(head->version);
      // A zero-shot head's fit: the reference latencies it was fitted on, and how much
      // of it the descriptor holds.
      if (head->state == v1::MODEL_STATE_ADAPTED || head->state == v1::MODEL_STATE_ZERO_SHOT) {
        FillFit(head->head.fit, state->mutable_fit());
      }
    }
  }
}

absl::Status LatencyPredictorService::DoRegisterDevice(const v1::RegisterDeviceRequest& request,
                                                       v1::RegisterDeviceResponse* response) {
  RETURN_IF_ERROR(CheckReady());
  RETURN_IF_ERROR(ValidateDeviceName(request.name()));
  // The server's limits (--max-labels, --max-label-length, --max-features) before
  // anything is stored.
  const Limits& limits = ctx_.limits;
  if (request.labels_size() > limits.max_labels) {
    return absl::ResourceExhaustedError(absl::StrCat(
        request.labels_size(), " labels exceed the server's limit of ", limits.max_labels,
        " per device (--max-labels); nothing was stored"));
  }
  if (request.features_size() > limits.max_features) {
    return absl::ResourceExhaustedError(absl::StrCat(
        request.features_size(), " descriptor features exceed the server's limit of ",
        limits.max_features, " per device (--max-features); nothing was stored"));
  }
  store::Device device;
  device.name = request.name();
  for (const auto& [key, value] : request.labels()) {
    if (key.empty()) return absl::InvalidArgumentError("a label's key is empty");
    const size_t max_length = static_cast<size_t>(limits.max_label_length);
    if (key.size() > max_length || value.size() > max_length) {
      const bool long_key = key.size() > max_length;
      return absl::ResourceExhaustedError(absl::StrCat(
          "label '", Excerpt(key), "': its ", long_key ? "key" : "value", " of ",
          long_key ? key.size() : value.size(), " bytes exceeds the server's limit of ",
          max_length, " bytes (--max-label-length); nothing was stored"));
    }
    device.labels[key] = value;
  }
  for (int i = 0; i < request.features_size(); ++i) {
    const v1::DescriptorFeature& f = request.features(i);
    if (f.name().empty() || f.name().size() > 4 * kMaxNameLength) {
      return absl::InvalidArgumentError(absl::StrCat("features[", i, "]: name is empty or too long"));
    }
    if (!std::isfinite(f.value())) {
      return absl::InvalidArgumentError(absl::StrCat("features[", i, "] '", Excerpt(f.name()),
                                                     "': value must be finite, got ", f.value()));
    }
    // A zero-shot head is fit to the reference latencies: values no network takes
    // (1e308 ms, 1e-300 ms) would make it predict +inf and 0.
    if (f.source() == v1::FEATURE_SOURCE_REFERENCE_LATENCY &&
        !(f.value() >= kMinReferenceLatencyMs && f.value() <= kMaxReferenceLatencyMs)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "features[", i, "] '", Excerpt(f.name()), "': a reference latency must lie in [",
          kMinReferenceLatencyMs, ", ", kMaxReferenceLatencyMs, "] ms, got ", f.value()));
    }
    device.descriptor.push_back(
        store::DescriptorFeature{f.name(), f.value(), SourceName(f.source()), f.unit()});
  }
  auto existing = ctx_.store->GetDevice(device.name);
  if (existing.ok() && existing->source) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", device.name, "' is a bundled source device; register the new device under another name"));
  }
  if (!existing.ok() && !absl::IsNotFound(existing.status())) return existing.status();
  ASSIGN_OR_RETURN(bool created, ctx_.store->UpsertDevice(device));
  ASSIGN_OR_RETURN(store::Device stored, ctx_.store->GetDevice(device.name));
  for (const std::string& space : core::SearchSpaceNames()) {
    RETURN_IF_ERROR(ctx_.manager->RefreshZeroShot(stored, space));
  }
  ASSIGN_OR_RETURN(auto counts, ctx_.store->CountSamples(device.name));
  response->set_created(created);
  FillDevice(stored, counts, response->mutable_device());
  return absl::OkStatus();
}

// One page from the store (sample counts come with it, kept on write), one device
// more than the page holds to tell whether another page follows.
absl::Status LatencyPredictorService::DoListDevices(const v1::ListDevicesRequest& request,
                                                    v1::ListDevicesResponse* response) {
  RETURN_IF_ERROR(CheckReady());
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size must not be negative, got ", request.page_size()));
  }
  const int page_size = request.page_size() == 0
                            ? kDefaultDevicePageSize
                            : std::min(request.page_size(), kMaxDevicePageSize);
  store::DeviceQuery query;
  query.limit = page_size + 1;
  query.registered_only = request.registered_only();
  if (!request.page_token().empty()) {
    ASSIGN_OR_RETURN(query.after,
                     DevicePageAfter(request.page_token(), request.registered_only()));
  }
  ASSIGN_OR_RETURN(std::vector<store::Device> devices, ctx_.store->ListDevices(query));
  const bool more = devices.size() > static_cast<size_t>(page_size);
  if (more) devices.resize(page_size);
  for (const store::Device& d : devices) FillDevice(d, d.sample_counts, response->add_devices());
  if (more) {
    response->set_next_page_token(
        DevicePageToken(request.registered_only(), devices.back().name));
  }
  return absl::OkStatus();
}

absl::Status LatencyPredictorService::DoGetDevice(const v1::GetDeviceRequest& request,
                                                  v1::Device* response) {
  RETURN_IF_ERROR(CheckReady());
  RETURN_IF_ERROR(ValidateDeviceName(request.name()));
  ASSIGN_OR_RETURN(store::Device device, ctx_.store->GetDevice(request.name()));
  ASSIGN_OR_RETURN(auto counts, ctx_.store->CountSamples(request.name()));
  FillDevice(device, counts, response);
  return absl::OkStatus();
}

absl::Status LatencyPredictorService::DoSubmitSamples(const v1::SubmitSamplesRequest& request,
                                                      v1::SubmitSamplesResponse* response) {
  RETURN_IF_ERROR(CheckReady());
  RETURN_IF_ERROR(ValidateDeviceName(request.device()));
  ASSIGN_OR_RETURN(const core::SearchSpace* space, core::GetSearchSpace(request.space()));
  RETURN_IF_ERROR(CheckBatchSize(request.samples_size(), ctx_.max_batch, "samples"));
  RETURN_IF_ERROR(ValidateRequestId(request.request_id()));
  ASSIGN_OR_RETURN(store::Device device, ctx_.store->GetDevice(request.device()));
  if (device.source) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", device.name, "' is a bundled source device; its measurements are read-only"));
  }
  std::vector<store::Sample> valid;
  std::vector<std::string> errors;
  for (int i = 0; i < request.samples_size(); ++i) {
    const v1::Sample& s = request.samples(i);
    v1::SampleResult* result = response->add_results();
    result->set_index(i);
    std::string error;
    auto arch = space->Parse(s.arch());
    if (!arch.ok()) {
      error = std::string(arch.status().message());
    } else if (!(s.latency_ms() > 0) || !std::isfinite(s.latency_ms())) {
      error = absl::StrCat("latency_ms must be a positive finite number, got ", s.latency_ms());
    } else if (s.repeats() < 0 || !(s.spread_ms() >= 0) || !std::isfinite(s.spread_ms())) {
      error = "repeats and spread_ms must be non-negative";
    }
    if (!error.empty()) {
      result->set_error(error);
      if (errors.size() < kErrorsListed) {
        errors.push_back(absl::StrCat("samples[", i, "] (arch '", Excerpt(s.arch()), "'): ", error));
      }
      continue;
    }
    result->set_accepted(true);
    result->set_canonical_arch(space->Canonical(*arch));
    valid.push_back(store::Sample{result->canonical_arch(), s.latency_ms(), s.repeats(), s.spread_ms()});
  }
  const int rejected = request.samples_size() - static_cast<int>(valid.size());
  // The per-item results above follow from the request alone, so a replay's are the
  // original call's; the rest of its answer comes from the stored record.
  const std::string& request_id = request.request_id();
  const std::string fingerprint = request_id.empty() ? std::string() : SubmitFingerprint(request);
  if (!request_id.empty()) {
    ASSIGN_OR_RETURN(std::optional<store::SubmitRecord> earlier,
                     ctx_.store->GetSubmitRecord(request.device(), request_id));
    if (earlier.has_value()) return Replay(request, *earlier, fingerprint, response);
  }
  if (rejected > 0 && !request.partial()) {
    return absl::InvalidArgumentError(absl::StrCat(
        rejected, " of ", request.samples_size(), " samples are invalid, nothing was stored: ",
        absl::StrJoin(errors, "; ")));
  }
  if (!valid.empty()) {
    const size_t stripe =
        std::hash<std::string>()(absl::StrCat(request.device(), "/", request.space()));
    absl::MutexLock lock(&submit_mu_[stripe % submit_mu_.size()]);
    RETURN_IF_ERROR(CheckSampleLimit(request.device(), request.space(), valid));
    if (request_id.empty()) {
      RETURN_IF_ERROR(ctx_.store->PutSamples(request.device(), request.space(), valid));
    } else {
      store::SubmitRecord record;
      record.request_id = request_id;
      record.space = request.space();
      record.fingerprint = fingerprint;
      record.accepted = static_cast<int32_t>(valid.size());
      record.rejected = rejected;
      // Another call with this id (a retry racing the first, on any replica) may have
      // stored it since the lookup above: then this one stores nothing.
      ASSIGN_OR_RETURN(std::optional<store::SubmitRecord> earlier,
                       ctx_.store->PutSamplesOnce(request.device(), request.space(), valid,
                                                  record));
      if (earlier.has_value()) return Replay(request, *earlier, fingerprint, response);
    }
  }
  response->set_accepted(static_cast<int>(valid.size()));
  response->set_rejected(rejected);
  ASSIGN_OR_RETURN(auto counts, ctx_.store->CountSamples(request.device()));
  response->set_sample_count(counts[request.space()]);
  return absl::OkStatus();
}

absl::Status LatencyPredictorService::Replay(const v1::SubmitSamplesRequest& request,
                                             const store::SubmitRecord& record,
                                             const std::string& fingerprint,
                                             v1::SubmitSamplesResponse* response) const {
  if (record.fingerprint != fingerprint) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request_id '", Excerpt(request.request_id()), "' was already used by device '",
        request.device(), "' for another batch (space '", Excerpt(record.space), "', ",
        record.accepted, " samples accepted, stored at ",
        absl::FormatTime(absl::FromUnixMillis(record.created_unix_ms), absl::UTCTimeZone()),
        "); nothing was stored: send a new request_id with a new batch, and the same one "
        "only with a retry of the same batch"));
  }
  response->set_replayed(true);
  response->set_accepted(record.accepted);
  response->set_rejected(record.rejected);
  ASSIGN_OR_RETURN(auto counts, ctx_.store->CountSamples(request.device()));
  response->set_sample_count(counts[request.space()]);
  return absl::OkStatus();
}

absl::Status LatencyPredictorService::CheckSampleLimit(
    const std::string& device, const std::string& space,
    const std::vector<store::Sample>& samples) const {
  const int64_t limit = ctx_.limits.max_samples_per_device;
  ASSIGN_OR_RETURN(auto counts, ctx_.store->CountSamples(device));
  const int64_t stored = counts[space];
  std::set<std::string> archs;
  for (const store::Sample& s : samples) archs.insert(s.arch);
  int64_t added = static_cast<int64_t>(archs.size());
  if (stored + added <= limit) return absl::OkStatus();
  // Near the limit: a sample of an architecture already stored replaces it, adding none.
  ASSIGN_OR_RETURN(std::vector<store::Sample> existing, ctx_.store->GetSamples(device, space));
  for (const store::Sample& s : existing) added -= static_cast<int64_t>(archs.count(s.arch));
  if (stored + added <= limit) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "device '", device, "' holds ", stored, " ", space, " samples and this batch adds ", added,
      " more, past the server's limit of ", limit,
      " per device and space (--max-samples-per-device); nothing was stored"));
}

absl::Status LatencyPredictorService::DoSuggestSamples(const v1::SuggestSamplesRequest& request,
                                                       v1::SuggestSamplesResponse* response) {
  RETURN_IF_ERROR(CheckReady());
  RETURN_IF_ERROR(ValidateDeviceName(request.device()));
  ASSIGN_OR_RETURN(const core::SearchSpace* space, core::GetSearchSpace(request.space()));
  if (request.k() < 1 || request.k() > kMaxSuggest) {
    return absl::InvalidArgumentError(
        absl::StrCat("k must be between 1 and ", kMaxSuggest, ", got ", request.k()));
  }
  ASSIGN_OR_RETURN(store::Device device, ctx_.store->GetDevice(request.device()));
  BaseEntry base = ctx_.registry->GetBase(request.space());
  if (base.model == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("no base model for ", request.space()));
  }
  std::shared_ptr<const std::vector<core::Architecture>> pool;
  if (request.candidates_size() > 0) {
    if (request.candidates_size() > ctx_.max_batch) {
      return CheckBatchSize(request.candidates_size(), ctx_.max_batch, "candidates");
    }
    ASSIGN_OR_RETURN(auto parsed, ParseBatch(*space, request.candidates(), "candidates"));
    pool = std::make_shared<const std::vector<core::Architecture>>(std::move(parsed));
  } else {
    pool = ctx_.manager->Candidates(request.space());
  }
  ASSIGN_OR_RETURN(std::vector<store::Sample> samples,
                   ctx_.store->GetSamples(device.name, request.space()));
  std::vector<core::Architecture> measured;
  for (const store::Sample& s : samples) {
    ASSIGN_OR_RETURN(core::Architecture arch, space->Parse(s.arch));
    measured.push_back(std::move(arch));
  }
  for (int index : base.model->Suggest(*pool, measured, request.k())) {
    response->add_archs(space->Canonical((*pool)[index]));
  }
  response->set_strategy("d-optimal");
  return absl::OkStatus();
}

absl::Status LatencyPredictorService::DoPredictLatency(const v1::PredictLatencyRequest& request,
                                                       v1::PredictLatencyResponse* response) {
  RETURN_IF_ERROR(CheckReady());
  RETURN_IF_ERROR(ValidateDeviceName(request.device()));
  RETURN_IF_ERROR(core::GetSearchSpace(request.space()).status());
  RETURN_IF_ERROR(CheckBatchSize(request.archs_size(), ctx_.max_batch, "architectures"));
  if (request.interval() != 0 && !(request.interval() > 0 && request.interval() < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "interval must lie in (0, 1) (0.8: the 10th to 90th percentile), or 0 for none; got ",
        request.interval()));
  }
  std::shared_ptr<const HeadEntry> head = ctx_.registry->GetHead(request.device(), request.space());
  if (head == nullptr) {
    // Off the hot path: say whether the device is unknown or just has no model yet.
    RETURN_IF_ERROR(ctx_.store->GetDevice(request.device()).status());
    return absl::FailedPreconditionError(absl::StrCat(
        "device '", request.device(), "' has no ", request.space(),
        " model yet: submit samples and call AdaptDevice, or register a descriptor for a "
        "zero-shot prediction"));
  }
  response->mutable_latency_ms()->Resize(request.archs_size(), 0.0);
  RETURN_IF_ERROR(head->Predict(request.archs(), response->mutable_latency_ms()->mutable_data()));
  // A latency that is not a positive finite number never leaves the server.
  const double* latency = response->latency_ms().data();
  for (int i = 0; i < request.archs_size(); ++i) {
    if (latency[i] > 0 && latency[i] < std::numeric_limits<double>::infinity()) continue;
    const std::string bad = absl::StrCat(latency[i]);
    response->clear_latency_ms();
    return absl::InternalError(absl::StrCat(
        "device '", request.device(), "': the ", request.space(), " model (version ",
        head->version, ") predicts ", bad, " ms for archs[", i,
        "], not a positive finite latency; re-register the device or adapt it"));
  }
  const double factor =
      request.interval() > 0 ? predictor::IntervalFactor(head->head.fit, request.interval()) : 0;
  if (factor > 0) {
    response->mutable_lower_ms()->Reserve(request.archs_size());
    response->mutable_upper_ms()->Reserve(request.archs_size());
    for (int i = 0; i < request.archs_size(); ++i) {
      response->add_lower_ms(latency[i] / factor);
      response->add_upper_ms(latency[i] * factor);
    }
  }
  response->set_model_version(head->version);
  response->set_state(head->state);
  response->set_zero_shot(head->state == v1::MODEL_STATE_ZERO_SHOT);
  if (ctx_.metrics != nullptr) ctx_.metrics->ObservePredictions(request.space(), request.archs_size());
  return absl::OkStatus();
}

absl::Status LatencyPredictorService::DoGetServerInfo(const v1::GetServerInfoRequest&,
                                                      v1::ServerInfo* response) {
  response->set_version(LATPRED_VERSION);
  for (const std::string& space : core::SearchSpaceNames()) response->add_spaces(space);
  response->set_max_batch(ctx_.max_batch);
  response->set_ready(ctx_.ready->load());
  return absl::OkStatus();
}

void LatencyPredictorService::StartAdaptDevice(
    UnaryCall<v1::AdaptDeviceRequest, v1::AdaptDeviceResponse>* call) {
  // Cheap checks inline; the fit itself runs on the job queue, which finishes the call.
  const v1::AdaptDeviceRequest& request = call->request();
  absl::Status status = CheckReady();
  if (status.ok()) status = ValidateDeviceName(request.device());
  if (status.ok()) status = core::GetSearchSpace(request.space()).status();
  if (status.ok()) status = ctx_.store->GetDevice(request.device()).status();
  if (!status.ok()) {
    call->Finish(status);
    return;
  }
  const std::string device = request.device(), space = request.space();
  // A fit's cost grows with its samples (at most --max-fit-samples): small fits have a
  // lane of their own, so that they never wait behind a big one.
  auto counts = ctx_.store->CountSamples(device);
  if (!counts.ok()) {
    call->Finish(counts.status());
    return;
  }
  const int64_t fit_samples =
      std::min<int64_t>((*counts)[space], std::max(0, ctx_.limits.max_fit_samples));
  const JobLane lane =
      fit_samples <= ctx_.limits.small_fit_samples ? JobLane::kShort : JobLane::kLong;
  ModelManager* manager = ctx_.manager;
  const absl::Status shutting_down = absl::UnavailableError("server is shutting down");
  if (request.no_wait()) {
    bool queued =
        ctx_.jobs->Post([manager, device, space] { (void)manager->Adapt(device, space); }, lane);
    call->response()->set_pending(true);
    call->Finish(queued ? absl::OkStatus() : shutting_down);
    return;
  }
  bool queued = ctx_.jobs->Post([manager, device, space, call] {
    auto entry = manager->Adapt(device, space);
    if (entry.ok()) {
      v1::AdaptDeviceResponse* response = call->response();
      response->set_model_version((*entry)->version);
      response->set_state((*entry)->state);
      FillFit((*entry)->head.fit, response->mutable_fit());
    }
    call->Finish(entry.status());
  }, lane);
  if (!queued) call->Finish(shutting_down);
}

template <typename Request, typename Response, typename Handler>
void LatencyPredictorService::Serve(const char* name, metrics::Method method, Access access,
                                    grpc::MessageAllocator<Request, Response>* allocator,
                                    Handler handler) {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          v1::LatencyPredictor::service_full_name());
  // The generated service lists its methods in the proto's order, as the descriptor does.
  const int index = service->FindMethodByName(name)->index();
  MarkMethodRawCallback(
      index,
      new grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, grpc::ByteBuffer>(
          [this, method, access, allocator, handler](grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* bytes,
                                                      grpc::ByteBuffer* reply) {
            const auto start = Clock::now();
            grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
            grpc::MessageHolder<Request, Response>* messages =
                allocator != nullptr ? allocator->AllocateMessages()
                                     : new OwnedMessages<Request, Response>();
            auto* call = new UnaryCall<Request, Response>(reactor, reply, messages, ctx_.metrics,
                                                          method, start);
            // The token first: a caller without it learns nothing, not even a parse error.
            absl::Status status = access == Access::kAnyone
                                      ? absl::OkStatus()
                                      : Authorize(*context, access == Access::kWrite);
            if (status.ok()) status = ParseRequest(*bytes, messages->request());
            if (status.ok()) {
              handler(call);
            } else {
              call->Finish(status);
            }
            return reactor;
          }));
}

template <typename Request, typename Response>
void LatencyPredictorService::ServeInline(
    const char* name, metrics::Method method, Access access,
    absl::Status (LatencyPredictorService::*do_method)(const Request&, Response*),
    grpc::MessageAllocator<Request, Response>* allocator) {
  Serve(name, method, access, allocator, [this, do_method](UnaryCall<Request, Response>* call) {
    call->Finish((this->*do_method)(call->request(), call->response()));
  });
}

LatencyPredictorService::LatencyPredictorService(ServiceContext context) : ctx_(context) {
  FilterProtobufParseLogs();
  using M = metrics::Method;
  using S = LatencyPredictorService;
  ServeInline("RegisterDevice", M::kRegisterDevice, Access::kWrite, &S::DoRegisterDevice);
  ServeInline("ListDevices", M::kListDevices, Access::kRead, &S::DoListDevices);
  ServeInline("GetDevice", M::kGetDevice, Access::kRead, &S::DoGetDevice);
  ServeInline("SubmitSamples", M::kSubmitSamples, Access::kWrite, &S::DoSubmitSamples);
  ServeInline("SuggestSamples", M::kSuggestSamples, Access::kRead, &S::DoSuggestSamples);
  Serve<v1::AdaptDeviceRequest, v1::AdaptDeviceResponse>(
      "AdaptDevice", M::kAdaptDevice, Access::kWrite, nullptr,
      [this](UnaryCall<v1::AdaptDeviceRequest, v1::AdaptDeviceResponse>* call) {
        StartAdaptDevice(call);
      });
  ServeInline("PredictLatency", M::kPredictLatency, Access::kRead, &S::DoPredictLatency,
              &predict_messages_);
  // Open even with --token-for-reads: clients ask it before anything else (README).
  ServeInline("GetServerInfo", M::kGetServerInfo, Access::kAnyone, &S::DoGetServerInfo);
}

}  // namespace latpred::service
