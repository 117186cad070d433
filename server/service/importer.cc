// Import of the bundled public measurements (HELP, LatBench) as source devices.
#include <cmath>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "latpred/core/dataset.h"
#include "latpred/core/status_macros.h"
#include "model_manager.h"

namespace latpred::service {
namespace {

constexpr char kImportSetting[] = "bundled_import";

// One bundled table: file under the data directory, its space, where it comes from.
struct BundledTable {
  const char* path;
  const char* space;
  const char* origin;
};
constexpr BundledTable kTables[] = {
    {"help/nb201_latency.csv", "nb201", "HELP"},
    {"eagle/nb201_latency.csv", "nb201", "LatBench"},
    {"help/fbnet_latency.csv", "fbnet", "HELP"},
};

// Stores every column of a table as a source device's samples.
absl::Status ImportTable(store::Store& store, const core::LatencyTable& table,
                         const std::string& origin, const std::set<std::string>& exclude,
                         int* devices, int64_t* samples) {
  const std::string space(table.space->name());
  for (size_t col = 0; col < table.devices.size(); ++col) {
    const std::string& name = table.devices[col];
    if (exclude.count(name)) continue;
    store::Device device;
    device.name = name;
    device.source = true;
    device.labels = {{"origin", origin}};
    RETURN_IF_ERROR(store.UpsertDevice(device).status());
    std::vector<store::Sample> rows;
    rows.reserve(table.rows());
    for (size_t r = 0; r < table.rows(); ++r) {
      double v = table.at(r, col);
      if (!(v > 0) || !std::isfinite(v)) continue;
      rows.push_back(store::Sample{table.canonical[r], v, 0, 0});
    }
    RETURN_IF_ERROR(store.PutSamples(name, space, rows));
    ++*devices;
    *samples += static_cast<int64_t>(rows.size());
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ImportBundled(store::Store& store, const std::string& dir,
                           const std::set<std::string>& exclude,
                           const std::function<void(const std::string&)>& log) {
  const std::string record =
      absl::StrCat("excluded=", absl::StrJoin(exclude.begin(), exclude.end(), ","));
  ASSIGN_OR_RETURN(std::optional<std::string> done, store.GetSetting(kImportSetting));
  if (done.has_value()) {
    if (*done != record) {
      log(absl::StrCat("bundled data was imported earlier with ", *done,
                       "; keeping that (use a new --store to change it)"));
    }
    return absl::OkStatus();
  }
  for (const BundledTable& t : kTables) {
    const std::string path = absl::StrCat(dir, "/", t.path);
    if (!std::filesystem::exists(path)) {
      return absl::NotFoundError(absl::StrCat(
          "bundled measurements not found: ", path,
          " (point --bundled-data at the project's data/ directory)"));
    }
    ASSIGN_OR_RETURN(const core::SearchSpace* space, core::GetSearchSpace(t.space));
    ASSIGN_OR_RETURN(core::LatencyTable table, core::ReadLatencyTable(path, *space));
    int devices = 0;
    int64_t samples = 0;
    RETURN_IF_ERROR(ImportTable(store, table, t.origin, exclude, &devices, &samples));
    log(absl::StrCat("imported ", t.path, ": ", devices, " devices, ", samples, " samples"));
  }
  return store.PutSetting(kImportSetting, record);
}

}  // namespace latpred::service
