// Durable state of latpred: devices, descriptors, samples, models, settings.
//
// Every write returns only after it is durable (SQLite: WAL with synchronous=FULL;
// PostgreSQL: committed; one transaction per call). Implementations are thread-safe.
// SQLite is the embedded default for one server process; PostgreSQL lets several
// server replicas share one database.
#ifndef LATPRED_STORE_STORE_H_
#define LATPRED_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace latpred::store {

// One named number describing a device, with where it came from ("counter",
// "microbenchmark", "reference_latency") and its unit.
struct DescriptorFeature {
  std::string name;
  double value = 0;
  std::string source;
  std::string unit;
  bool operator==(const DescriptorFeature& o) const {
    return name == o.name && value == o.value && source == o.source && unit == o.unit;
  }
};

struct Device {
  std::string name;
  std::map<std::string, std::string> labels;
  std::vector<DescriptorFeature> descriptor;
  bool source = false;  // a bundled device the base models train on
  int64_t created_unix_ms = 0;
  int64_t updated_unix_ms = 0;
  // Samples per space (spaces without samples absent). Filled by ListDevices from the
  // counts kept on write; empty from GetDevice and ignored by UpsertDevice.
  std::map<std::string, int64_t> sample_counts;
};

// Which devices ListDevices returns, in name order (byte-wise): those named after
// `after` ("" = from the first), at most `limit` of them (0 = all), and no bundled
// source devices when registered_only. A page ends at its last name, which is the
// next page's `after`.
struct DeviceQuery {
  std::string after;
  int64_t limit = 0;
  bool registered_only = false;
};

// Totals over the whole store, read from the counts kept on write (no samples are
// scanned): what the state gauges show.
struct StoreTotals {
  int64_t source_devices = 0;
  int64_t registered_devices = 0;
  std::map<std::string, int64_t> samples;  // space -> samples of every device
};

// One measured latency of an architecture (canonical string) on a device.
struct Sample {
  std::string arch;
  double latency_ms = 0;
  int32_t repeats = 0;
  double spread_ms = 0;
};

// A SubmitSamples request id and what that call answered, stored with its samples in
// the same transaction, so that a retry of the call can be answered without storing
// anything again (see PutSamplesOnce).
struct SubmitRecord {
  std::string request_id;
  std::string space;
  // What identifies the request's content (the service's hash of space, partial and the
  // samples as sent): a retry carries the same, another batch reusing the id does not.
  std::string fingerprint;
  int32_t accepted = 0;
  int32_t rejected = 0;
  int64_t created_unix_ms = 0;  // set by the store
};

// How many request ids the store remembers per device: the newest this many; an older
// one is forgotten in the transaction that stores a new one. 10,000: at one batch a
// second, 2.8 hours of batches, far past any client's retries (the agent's 10 attempts
// span under 5 minutes; the CLI's and the Python client's, seconds).
inline constexpr int64_t kRequestIdsPerDevice = 10000;

// A trained model: the base model of a space (device == "") or a device's adapted head.
struct ModelRecord {
  std::string device;  // "" for a space's base model
  std::string space;
  int64_t version = 0;       // assigned by PutModel: 1 + the latest for (device, space)
  int64_t base_version = 0;  // for a device head: the base model version it was fit on
  std::string blob;          // serialised model
  std::string meta_json;     // fit statistics and options, for people and tools
  int64_t created_unix_ms = 0;
};

// A named lock taken through Store::Lock; released when destroyed.
class StoreLock {
 public:
  virtual ~StoreLock() = default;
};

class Store {
 public:
  virtual ~Store() = default;

  // Creates the device or updates labels and descriptor (samples are kept). Returns
  // true when the device was created. created_unix_ms / updated_unix_ms are set here.
  virtual absl::StatusOr<bool> UpsertDevice(const Device& device) = 0;
  // NOT_FOUND naming the device when unknown.
  virtual absl::StatusOr<Device> GetDevice(std::string_view name) = 0;
  // The devices a query selects, with descriptors and sample counts, read in one
  // transaction.
  virtual absl::StatusOr<std::vector<Device>> ListDevices(const DeviceQuery& query) = 0;
  // Every device.
  absl::StatusOr<std::vector<Device>> ListDevices() { return ListDevices(DeviceQuery{}); }

  // Adds samples in one transaction; a sample for an (arch) the device already has in
  // that space replaces it. The device's sample count in that space is updated in the
  // same transaction. NOT_FOUND when the device is unknown.
  virtual absl::Status PutSamples(std::string_view device, std::string_view space,
                                  const std::vector<Sample>& samples) = 0;
  // PutSamples that stores `record` (its request id) in the same transaction, unless the
  // device already holds a record with that request id: then nothing is stored and that
  // record is returned (nullopt when this call stored the samples). Concurrent calls with
  // one request id, from any replica, store once. Keeps the device's newest
  // kRequestIdsPerDevice records.
  virtual absl::StatusOr<std::optional<SubmitRecord>> PutSamplesOnce(
      std::string_view device, std::string_view space, const std::vector<Sample>& samples,
      const SubmitRecord& record) = 0;
  // The device's record of request_id, or nullopt when it has none (never stored, or
  // forgotten).
  virtual absl::StatusOr<std::optional<SubmitRecord>> GetSubmitRecord(
      std::string_view device, std::string_view request_id) = 0;
  virtual absl::StatusOr<std::vector<Sample>> GetSamples(std::string_view device,
                                                         std::string_view space) = 0;
  // Sample counts per space for one device (from the counts kept on write, as are the
  // next two).
  virtual absl::StatusOr<std::map<std::string, int64_t>> CountSamples(
      std::string_view device) = 0;
  // Sample counts for all devices: device -> space -> count.
  virtual absl::StatusOr<std::map<std::string, std::map<std::string, int64_t>>>
  CountAllSamples() = 0;
  // Devices by kind and samples by space over the whole store.
  virtual absl::StatusOr<StoreTotals> Totals() = 0;

  // Stores a model, assigning and returning its version.
  virtual absl::StatusOr<int64_t> PutModel(const ModelRecord& model) = 0;
  // The newest model for (device, space), or nullopt when there is none.
  virtual absl::StatusOr<std::optional<ModelRecord>> GetLatestModel(
      std::string_view device, std::string_view space) = 0;
  // The newest model of every device (device != "") for a space.
  virtual absl::StatusOr<std::vector<ModelRecord>> GetLatestDeviceModels(
      std::string_view space) = 0;

  // The newest model version of every device in a space, base model under "": what a
  // replica polls to notice models stored by another (no blobs are read).
  virtual absl::StatusOr<std::map<std::string, int64_t>> GetLatestModelVersions(
      std::string_view space) = 0;

  // Takes the named lock, waiting while another holder has it: another thread of this
  // process and, for PostgreSQL, any replica on the same database (an advisory lock on a
  // session of its own, so a replica that dies releases it). SQLite's locks are per
  // process: one server per SQLite file.
  virtual absl::StatusOr<std::unique_ptr<StoreLock>> Lock(std::string_view name) = 0;

  // Small key/value settings (e.g. which bundled data was imported).
  virtual absl::StatusOr<std::optional<std::string>> GetSetting(std::string_view key) = 0;
  virtual absl::Status PutSetting(std::string_view key, std::string_view value) = 0;

  // Schema version of the open database.
  virtual int schema_version() const = 0;

  // Calls listener after each committed UpsertDevice and PutSamples through this object
  // (not those of other connections or replicas), on the writing thread, with no lock of
  // the store held: what is derived from devices and sample counts (the metrics'
  // gauges) can follow writes as they happen. Set it before the store is shared.
  void SetWriteListener(std::function<void()> listener) {
    write_listener_ = std::move(listener);
  }

 protected:
  void NotifyWrite() const {
    if (write_listener_) write_listener_();
  }

 private:
  std::function<void()> write_listener_;
};

// Opens (creating and migrating as needed) the store named by uri: a file path,
// "sqlite:PATH", or a libpq connection URI "postgresql://[user[:password]@][host][:port]/db
// [?param=value...]" (the database must exist; latpred creates its tables). Unknown
// schemes are INVALID_ARGUMENT saying which are supported; an unreachable PostgreSQL is
// UNAVAILABLE.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(std::string_view uri);

// The store URI with any password replaced by "***", for logs and messages.
std::string RedactStoreUri(std::string_view uri);

}  // namespace latpred::store

#endif  // LATPRED_STORE_STORE_H_
