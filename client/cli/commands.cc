#include "client/cli/commands.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli/descriptor_json.h"
#include "client/cli/input.h"
#include "client/cli/output.h"
#include "latpred/core/status_macros.h"

namespace latpred::cli {
namespace {

namespace v1 = ::latpred::v1;
using HealthResponse = ::grpc::health::v1::HealthCheckResponse;

// Batch size of PredictLatency when the server does not report its max_batch.
constexpr int kDefaultMaxBatch = 1024;
// Architectures `suggest` asks for without -k.
constexpr int kDefaultSuggestions = 10;

// The device and search space a command works on.
struct Target {
  std::string device;
  std::string space;
};

// Connects to the server named by the invocation's global flags.
absl::StatusOr<std::unique_ptr<client::Client>> ConnectClient(const Invocation& inv) {
  return client::Client::Connect(inv.client_options);
}

// Usage error unless exactly `names.size()` positional arguments were given.
absl::Status ExpectArgs(const Invocation& inv, const std::vector<std::string>& names) {
  if (inv.args.positional.size() == names.size()) return absl::OkStatus();
  if (names.empty()) {
    return UsageError(absl::StrCat("unexpected argument '", inv.args.positional[0], "'"));
  }
  return UsageError(absl::StrCat("expected ", absl::StrJoin(names, " "), ", got ",
                                 inv.args.positional.size(), " arguments"));
}

// The value of a required flag, or a usage error naming it.
absl::StatusOr<std::string> RequiredFlag(const Invocation& inv, const std::string& name) {
  std::optional<std::string> value = inv.args.Get(name);
  if (!value.has_value() || value->empty()) {
    return UsageError(absl::StrCat("--", name, " is required"));
  }
  return *value;
}

// The --device and --space flags.
absl::StatusOr<Target> DeviceAndSpace(const Invocation& inv) {
  Target target;
  ASSIGN_OR_RETURN(target.device, RequiredFlag(inv, "device"));
  ASSIGN_OR_RETURN(target.space, RequiredFlag(inv, "space"));
  return target;
}

// Prints message as JSON on the invocation's output.
absl::Status PrintJson(const Invocation& inv, const google::protobuf::Message& message) {
  ASSIGN_OR_RETURN(std::string json, ToJson(message));
  inv.out << json;
  return absl::OkStatus();
}

// `devices`: every device as one table row (every page of the listing).
absl::Status RunDevices(const Invocation& inv) {
  RETURN_IF_ERROR(ExpectArgs(inv, {}));
  ASSIGN_OR_RETURN(auto client, ConnectClient(inv));
  v1::ListDevicesRequest request;
  request.set_registered_only(inv.args.Has("registered"));
  ASSIGN_OR_RETURN(v1::ListDevicesResponse response, client->ListAllDevices(request));
  if (inv.json) return PrintJson(inv, response);
  std::vector<std::vector<std::string>> rows = {{"NAME", "SOURCE", "SPACES", "LABELS"}};
  for (const v1::Device& device : response.devices()) {
    rows.push_back({device.name(), device.source() ? "yes" : "no", SpacesSummary(device),
                    LabelsSummary(device)});
  }
  inv.out << FormatTable(rows);
  return absl::OkStatus();
}

// `device NAME`: one device in detail.
absl::Status RunDevice(const Invocation& inv) {
  RETURN_IF_ERROR(ExpectArgs(inv, {"NAME"}));
  ASSIGN_OR_RETURN(auto client, ConnectClient(inv));
  v1::GetDeviceRequest request;
  request.set_name(inv.args.positional[0]);
  ASSIGN_OR_RETURN(v1::Device device, client->GetDevice(request));
  if (inv.json) return PrintJson(inv, device);
  inv.out << FormatDevice(device);
  return absl::OkStatus();
}

// Adds the --label K=V flags to request (they override the descriptor file's labels).
absl::Status AddLabelFlags(const Invocation& inv, v1::RegisterDeviceRequest& request) {
  for (const std::string& label : inv.args.GetAll("label")) {
    const size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      return UsageError(absl::StrCat("--label wants KEY=VALUE, got '", label, "'"));
    }
    (*request.mutable_labels())[label.substr(0, eq)] = label.substr(eq + 1);
  }
  return absl::OkStatus();
}

// `register NAME`: creates or updates a device from flags and a descriptor file.
absl::Status RunRegister(const Invocation& inv) {
  RETURN_IF_ERROR(ExpectArgs(inv, {"NAME"}));
  v1::RegisterDeviceRequest request;
  if (std::optional<std::string> file = inv.args.Get("descriptor")) {
    ASSIGN_OR_RETURN(request, LoadDescriptorFile(*file, inv.in));
  }
  request.set_name(inv.args.positional[0]);
  RETURN_IF_ERROR(AddLabelFlags(inv, request));
  ASSIGN_OR_RETURN(auto client, ConnectClient(inv));
  ASSIGN_OR_RETURN(v1::RegisterDeviceResponse response, client->RegisterDevice(request));
  if (inv.json) return PrintJson(inv, response);
  inv.out << (response.created() ? "created" : "updated") << " device "
          << response.device().name() << " (" << response.device().labels_size()
          << " labels, " << response.device().features_size() << " features)\n";
  return absl::OkStatus();
}

// The architectures to predict: the arguments, the --file or stdin.
absl::StatusOr<std::vector<std::string>> ReadArchs(const Invocation& inv) {
  std::optional<std::string> file = inv.args.Get("file");
  if (!inv.args.positional.empty()) {
    if (file.has_value()) {
      return UsageError("give architectures as arguments or --file, not both");
    }
    return inv.args.positional;
  }
  ASSIGN_OR_RETURN(std::string text, ReadInput(file.value_or("-"), inv.in));
  std::vector<std::string> archs = ParseArchList(text);
  if (archs.empty()) {
    return UsageError(
        "no architectures: give them as arguments, with --file or on stdin");
  }
  return archs;
}

// The server's max_batch, or kDefaultMaxBatch when it reports none.
absl::StatusOr<int> MaxBatch(client::Client& client) {
  ASSIGN_OR_RETURN(v1::ServerInfo info, client.GetServerInfo());
  return info.max_batch() > 0 ? info.max_batch() : kDefaultMaxBatch;
}

// The --interval flag: the share of latencies the bounds should hold, in (0, 1); 0 when
// absent.
absl::StatusOr<double> IntervalFlag(const Invocation& inv) {
  std::optional<std::string> text = inv.args.Get("interval");
  if (!text.has_value()) return 0.0;
  double interval;
  if (!absl::SimpleAtod(*text, &interval) || !(interval > 0 && interval < 1)) {
    return UsageError(absl::StrCat(
        "--interval wants a share between 0 and 1, exclusive (0.8: the 10th to 90th "
        "percentile), got '",
        *text, "'"));
  }
  return interval;
}

// Predicts archs[begin, end) and appends the latencies (and bounds, when the server
// gave them) to result; fails when the model changed since the previous batch
// (begin > 0).
absl::Status PredictBatch(client::Client& client, size_t begin, size_t end,
                          Predictions& result) {
  v1::PredictLatencyRequest request;
  request.set_device(result.device);
  request.set_space(result.space);
  request.set_interval(result.interval);
  for (size_t i = begin; i < end; ++i) request.add_archs(result.archs[i]);
  ASSIGN_OR_RETURN(v1::PredictLatencyResponse response, client.PredictLatency(request));
  if (response.latency_ms_size() != request.archs_size()) {
    return absl::InternalError(absl::StrCat("server returned ",
                                            response.latency_ms_size(), " latencies for ",
                                            request.archs_size(), " architectures"));
  }
  const bool bounds = response.lower_ms_size() > 0 || response.upper_ms_size() > 0;
  if (bounds && (response.lower_ms_size() != request.archs_size() ||
                 response.upper_ms_size() != request.archs_size())) {
    return absl::InternalError(absl::StrCat(
        "server returned ", response.lower_ms_size(), " lower and ",
        response.upper_ms_size(), " upper bounds for ", request.archs_size(),
        " architectures"));
  }
  if (begin > 0 && response.model_version() != result.model_version) {
    return absl::AbortedError(absl::StrCat(
        "the model changed from v", result.model_version, " to v",
        response.model_version(), " between batches; run the command again"));
  }
  // One model answers every batch, so either all of them have bounds or none.
  if (begin > 0 && bounds != !result.lower_ms.empty()) {
    return absl::InternalError(
        "server returned bounds for some batches of the same model and not for others");
  }
  result.latency_ms.insert(result.latency_ms.end(), response.latency_ms().begin(),
                           response.latency_ms().end());
  result.lower_ms.insert(result.lower_ms.end(), response.lower_ms().begin(),
                         response.lower_ms().end());
  result.upper_ms.insert(result.upper_ms.end(), response.upper_ms().begin(),
                         response.upper_ms().end());
  result.model_version = response.model_version();
  result.zero_shot = response.zero_shot();
  result.state = response.state();
  return absl::OkStatus();
}

// Predicts every architecture in batches of at most max_batch; errors of a later batch
// say where it starts, as the server numbers the architectures of each batch from 0.
absl::StatusOr<Predictions> PredictAll(client::Client& client, const Target& target,
                                       std::vector<std::string> archs, size_t max_batch,
                                       double interval) {
  Predictions result;
  result.device = target.device;
  result.space = target.space;
  result.interval = interval;
  result.archs = std::move(archs);
  const size_t total = result.archs.size();
  for (size_t begin = 0; begin < total; begin += max_batch) {
    const size_t end = std::min(total, begin + max_batch);
    absl::Status status = PredictBatch(client, begin, end, result);
    if (total > max_batch) {
      status = WithPrefix(
          status, absl::StrCat("batch of archs ", begin, "..", end - 1, " (0-based)"));
    }
    RETURN_IF_ERROR(status);
  }
  return result;
}

// `predict`: latencies of architectures on a device, with --interval their bounds too.
absl::Status RunPredict(const Invocation& inv) {
  ASSIGN_OR_RETURN(Target target, DeviceAndSpace(inv));
  ASSIGN_OR_RETURN(double interval, IntervalFlag(inv));
  ASSIGN_OR_RETURN(std::vector<std::string> archs, ReadArchs(inv));
  ASSIGN_OR_RETURN(auto client, ConnectClient(inv));
  ASSIGN_OR_RETURN(int max_batch, MaxBatch(*client));
  ASSIGN_OR_RETURN(Predictions predictions,
                   PredictAll(*client, target, std::move(archs), max_batch, interval));
  if (interval > 0 && predictions.lower_ms.empty()) {
    inv.err << "latpred: predict: no interval: "
            << (predictions.state == v1::MODEL_STATE_SOURCE
                    ? "a source device's model has no leave-one-out errors to size one\n"
                    : "the device's model has fewer than 3 samples or is zero-shot\n");
  }
  inv.out << (inv.json ? PredictionsJson(predictions) : FormatPredictions(predictions));
  return absl::OkStatus();
}

// The per-item results of a submission as a table with the CSV line of each item.
std::string FormatSampleResults(const v1::SubmitSamplesRequest& request,
                                const std::vector<int>& lines,
                                const v1::SubmitSamplesResponse& response) {
  std::vector<std::vector<std::string>> rows = {{"LINE", "ARCH", "RESULT", "ERROR"}};
  for (const v1::SampleResult& result : response.results()) {
    const bool known = result.index() >= 0 && result.index() < request.samples_size();
    std::string arch = result.canonical_arch();
    if (arch.empty()) arch = known ? request.samples(result.index()).arch() : "?";
    rows.push_back({known ? absl::StrCat(lines[result.index()]) : "?", arch,
                    result.accepted() ? "accepted" : "rejected",
                    result.error().empty() ? "-" : result.error()});
  }
  return FormatTable(rows);
}

// `submit FILE.csv`: stores measured latencies.
absl::Status RunSubmit(const Invocation& inv) {
  ASSIGN_OR_RETURN(Target target, DeviceAndSpace(inv));
  RETURN_IF_ERROR(ExpectArgs(inv, {"FILE.csv"}));
  const std::string& path = inv.args.positional[0];
  ASSIGN_OR_RETURN(std::string text, ReadInput(path, inv.in));
  absl::StatusOr<CsvSamples> csv = ParseSamplesCsv(text);
  RETURN_IF_ERROR(WithPrefix(csv.status(), path == "-" ? "stdin" : path));
  v1::SubmitSamplesRequest request;
  request.set_device(target.device);
  request.set_space(target.space);
  request.set_partial(inv.args.Has("partial"));
  request.set_request_id(inv.args.Get("request-id").value_or(client::NewRequestId()));
  request.mutable_samples()->Assign(csv->samples.begin(), csv->samples.end());
  ASSIGN_OR_RETURN(auto client, ConnectClient(inv));
  ASSIGN_OR_RETURN(v1::SubmitSamplesResponse response, client->SubmitSamples(request));
  if (inv.json) return PrintJson(inv, response);
  if (response.rejected() > 0) {
    inv.out << FormatSampleResults(request, csv->lines, response);
  }
  if (response.replayed()) {
    inv.out << "request id " << request.request_id()
            << " was stored by an earlier submit; nothing stored again\n";
  }
  inv.out << "accepted " << response.accepted() << ", rejected " << response.rejected()
          << "; " << response.sample_count() << " samples stored for " << target.device
          << "/" << target.space << "\n";
  return absl::OkStatus();
}

// The -k flag: a positive count, kDefaultSuggestions when absent.
absl::StatusOr<int> SuggestionCount(const Invocation& inv) {
  std::optional<std::string> text = inv.args.Get("k");
  if (!text.has_value()) return kDefaultSuggestions;
  int k;
  if (!absl::SimpleAtoi(*text, &k) || k <= 0) {
    return UsageError(absl::StrCat("-k wants a positive integer, got '", *text, "'"));
  }
  return k;
}

// `suggest`: the architectures to measure next, one per line.
absl::Status RunSuggest(const Invocation& inv) {
  ASSIGN_OR_RETURN(Target target, DeviceAndSpace(inv));
  RETURN_IF_ERROR(ExpectArgs(inv, {}));
  v1::SuggestSamplesRequest request;
  request.set_device(target.device);
  request.set_space(target.space);
  ASSIGN_OR_RETURN(int k, SuggestionCount(inv));
  request.set_k(k);
  ASSIGN_OR_RETURN(auto client, ConnectClient(inv));
  ASSIGN_OR_RETURN(v1::SuggestSamplesResponse response, client->SuggestSamples(request));
  if (inv.json) return PrintJson(inv, response);
  for (const std::string& arch : response.archs()) inv.out << arch << "\n";
  return absl::OkStatus();
}

// The result of a finished fit, one "key: value" per line.
std::string FormatAdapted(const v1::AdaptDeviceResponse& response) {
  const v1::FitStats& fit = response.fit();
  return absl::StrFormat(
      "model:         v%d (%s)\n"
      "samples:       %d\n"
      "fit spearman:  %.3f\n"
      "fit MAPE:      %.2f%%\n"
      "LOO MAPE:      %.2f%%\n"
      "LOO log sd:    %s\n"
      "descriptor:    %.2f of the head\n"
      "seconds:       %.2f\n%s",
      response.model_version(), StateName(response.state()), fit.samples(),
      fit.fit_spearman(), fit.fit_mape(), fit.loo_mape(), FormatLooLogSd(fit.loo_log_sd()),
      fit.descriptor_weight(), fit.seconds(),
      fit.set_aside_size() == 0
          ? ""
          : absl::StrCat("set aside:     ", absl::StrJoin(fit.set_aside(), " "),
                         " (likely glitches: measure them again)\n"));
}

// `adapt`: fits the device's predictor, waiting for the fit unless --no-wait.
absl::Status RunAdapt(const Invocation& inv) {
  ASSIGN_OR_RETURN(Target target, DeviceAndSpace(inv));
  RETURN_IF_ERROR(ExpectArgs(inv, {}));
  v1::AdaptDeviceRequest request;
  request.set_device(target.device);
  request.set_space(target.space);
  request.set_no_wait(inv.args.Has("no-wait"));
  ASSIGN_OR_RETURN(auto client, ConnectClient(inv));
  ASSIGN_OR_RETURN(v1::AdaptDeviceResponse response, client->AdaptDevice(request));
  if (inv.json) return PrintJson(inv, response);
  if (response.pending()) {
    inv.out << "fit of " << target.device << "/" << target.space
            << " running in the background; serving model v" << response.model_version()
            << " (" << StateName(response.state()) << ") until it finishes\n";
  } else {
    inv.out << FormatAdapted(response);
  }
  return absl::OkStatus();
}

// `health`: prints the serving status; an error unless SERVING.
absl::Status RunHealth(const Invocation& inv) {
  RETURN_IF_ERROR(ExpectArgs(inv, {}));
  ASSIGN_OR_RETURN(auto client, ConnectClient(inv));
  ASSIGN_OR_RETURN(HealthResponse::ServingStatus status, client->Health());
  if (inv.json) {
    HealthResponse response;
    response.set_status(status);
    RETURN_IF_ERROR(PrintJson(inv, response));
  } else {
    inv.out << HealthResponse::ServingStatus_Name(status) << "\n";
  }
  if (status == HealthResponse::SERVING) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("server at ", inv.client_options.target,
                                             " is ",
                                             HealthResponse::ServingStatus_Name(status)));
}

// `info`: the server's version, spaces and limits.
absl::Status RunInfo(const Invocation& inv) {
  RETURN_IF_ERROR(ExpectArgs(inv, {}));
  ASSIGN_OR_RETURN(auto client, ConnectClient(inv));
  ASSIGN_OR_RETURN(v1::ServerInfo info, client->GetServerInfo());
  if (inv.json) return PrintJson(inv, info);
  inv.out << "version:    " << info.version() << "\n"
          << "spaces:     " << absl::StrJoin(info.spaces(), " ") << "\n"
          << "max batch:  " << info.max_batch() << "\n"
          << "ready:      " << (info.ready() ? "yes" : "no") << "\n";
  return absl::OkStatus();
}

// The --device flag of the commands that work on one device and space.
FlagSpec DeviceFlag() { return {"device", "NAME", "the device"}; }

// The --space flag of the commands that work on one device and space.
FlagSpec SpaceFlag() { return {"space", "SPACE", "the search space: nb201 or fbnet"}; }

}  // namespace

const std::vector<Command>& Commands() {
  static const auto* const commands = new std::vector<Command>{
      {"devices",
       "[--registered]",
       "List devices with their samples and model per space.",
       "Lists every device the server knows: the bundled source devices the base models\n"
       "were trained on and the registered ones. SPACES shows space:samples:state:vN.",
       {{"registered", "", "leave out the bundled source devices"}},
       "latpred devices --registered",
       &RunDevices},
      {"device",
       "NAME",
       "Show one device: labels, descriptor and models.",
       "Shows a device's labels, its descriptor features (value, source, unit) and per\n"
       "search space its sample count, model state, model version and fit statistics.",
       {},
       "latpred device pixel3",
       &RunDevice},
      {"register",
       "NAME [--label K=V]... [--descriptor FILE.json]",
       "Create a device or update its labels and descriptor.",
       "Creates the device or replaces its labels and descriptor; its samples are kept.\n"
       "The descriptor file is either\n"
       "  {\"features\": [{\"name\": \"dram_gbps\", \"value\": 51.2,\n"
       "                \"source\": \"microbenchmark\", \"unit\": \"GB/s\"}],\n"
       "   \"labels\": {\"vendor\": \"nvidia\"}}\n"
       "with source counter, microbenchmark (default) or reference_latency, or a flat\n"
       "object {\"dram_gbps\": 51.2, ...} of microbenchmark values. --label overrides "
       "the\n"
       "file's labels.",
       {{"label", "K=V", "set a label (repeatable)"},
        {"descriptor", "FILE.json", "descriptor features and labels ('-' = stdin)"}},
       "latpred register orin_nano --label vendor=nvidia --descriptor orin_nano.json",
       &RunRegister},
      {"predict",
       "--device NAME --space SPACE [ARCH...] [--file FILE] [--interval SHARE]",
       "Predict latency_ms of architectures on a device.",
       "Architectures come from the arguments, from --file (one per line, '#' comments)\n"
       "or from stdin. They are sent in batches of the server's max_batch. Prints each\n"
       "architecture's predicted latency and the model used: vN (adapted, zero-shot or\n"
       "source).\n\n"
       "--interval 0.8 also prints bounds that hold 80% of the device's latencies (its\n"
       "10th and 90th percentiles): log latency is the prediction plus s * T, s the\n"
       "spread of the model's leave-one-out log errors (LOO log sd in `latpred device`)\n"
       "and T Student's t with samples - 1 degrees of freedom. They are rough below 10\n"
       "samples. A model with fewer than 3 samples, a zero-shot one and a source device's\n"
       "have no interval: the predictions alone are printed and stderr says so.",
       {DeviceFlag(),
        SpaceFlag(),
        {"file", "FILE", "architectures, one per line ('-' = stdin)"},
        {"interval", "SHARE",
         "also print bounds holding this share of latencies (0 < SHARE < 1)"}},
       "latpred predict --device pixel3 --space nb201 "
       "'|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
       "skip_connect~2|'",
       &RunPredict},
      {"submit",
       "--device NAME --space SPACE FILE.csv [--partial] [--request-id ID]",
       "Store measured latencies of a device.",
       "FILE.csv ('-' = stdin) has a header naming the columns arch and latency_ms, and\n"
       "optionally repeats and spread_ms (ms). Quote a field that contains commas. The\n"
       "batch is all or nothing unless --partial, which stores the valid rows and lists\n"
       "the rejected ones. The batch goes with a request id (random unless --request-id)\n"
       "and is sent up to 3 times while the server answers UNAVAILABLE; the server stores\n"
       "it once. To rerun a failed submit safely, pass the same --request-id both times:\n"
       "if the first was stored, the rerun stores nothing and says so.",
       {DeviceFlag(),
        SpaceFlag(),
        {"partial", "", "store the valid rows even when some are rejected"},
        {"request-id", "ID",
         "the batch's request id (at most 128 printable ASCII characters, no spaces)"}},
       "latpred submit --device orin_nano --space nb201 measured.csv",
       &RunSubmit},
      {"suggest",
       "--device NAME --space SPACE [-k N]",
       "The N architectures most worth measuring next (default 10).",
       "Prints one architecture per line, ready to measure and submit.",
       {DeviceFlag(), SpaceFlag(), {"k", "N", "how many architectures (default 10)"}},
       "latpred suggest --device orin_nano --space nb201 -k 20 > to_measure.txt",
       &RunSuggest},
      {"adapt",
       "--device NAME --space SPACE [--no-wait]",
       "Fit the device's predictor from its samples.",
       "Fits (or refits) the device's predictor for the space and prints the new model\n"
       "version with its fit statistics: samples, Spearman and MAPE on the samples,\n"
       "MAPE in leave-one-out cross-validation and the spread of its log errors (LOO log\n"
       "sd, the scale of `predict --interval`; '-' below 3 samples).",
       {DeviceFlag(),
        SpaceFlag(),
        {"no-wait", "", "return at once; the fit runs in the background"}},
       "latpred adapt --device orin_nano --space nb201",
       &RunAdapt},
      {"health",
       "",
       "Print SERVING or NOT_SERVING; exit 0 only when SERVING.",
       "Checks the server with the standard grpc.health.v1 protocol (for Docker's\n"
       "HEALTHCHECK and scripts).",
       {},
       "latpred --timeout 3 health",
       &RunHealth},
      {"info",
       "",
       "Server version, search spaces and limits.",
       "Prints the server's version, its search spaces, the largest batch of "
       "PredictLatency\n"
       "and whether it is ready.",
       {},
       "latpred info --json",
       &RunInfo},
  };
  return *commands;
}

}  // namespace latpred::cli
