// PostgreSQL implementation of Store, for several server replicas on one database.
//
// A small pool of libpqxx connections; each call is one READ COMMITTED transaction,
// committed before it returns. Bulk writes go as arrays through unnest() so that a
// 15,625-sample import is a handful of round trips. Model versions are assigned under
// a transaction-scoped advisory lock per (device, space); Lock() holds a session-scoped
// advisory lock on a connection of its own, so a replica that dies releases it.
#include "postgres_store.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <iostream>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common.h"
#include "latpred/core/status_macros.h"
#include "latpred/store/store.h"

namespace latpred::store {
namespace {

// Schema migrations in order; a database at version N has had the first N applied.
// Append new steps; never edit one that has shipped. The tables mirror SQLite's.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE devices (
  name TEXT NOT NULL PRIMARY KEY,
  labels_json TEXT NOT NULL,
  source INTEGER NOT NULL,
  created_ms BIGINT NOT NULL,
  updated_ms BIGINT NOT NULL
);
CREATE TABLE descriptor_features (
  device TEXT NOT NULL REFERENCES devices(name) ON DELETE CASCADE,
  name TEXT NOT NULL,
  position INTEGER NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  source TEXT NOT NULL,
  unit TEXT NOT NULL,
  PRIMARY KEY (device, name)
);
CREATE TABLE samples (
  device TEXT NOT NULL,
  space TEXT NOT NULL,
  arch TEXT NOT NULL,
  latency_ms DOUBLE PRECISION NOT NULL,
  repeats INTEGER NOT NULL,
  spread_ms DOUBLE PRECISION NOT NULL,
  created_ms BIGINT NOT NULL,
  PRIMARY KEY (device, space, arch)
);
CREATE TABLE models (
  device TEXT NOT NULL,
  space TEXT NOT NULL,
  version BIGINT NOT NULL,
  base_version BIGINT NOT NULL,
  blob BYTEA NOT NULL,
  meta_json TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  PRIMARY KEY (device, space, version)
);
CREATE TABLE settings (
  key TEXT NOT NULL PRIMARY KEY,
  value TEXT NOT NULL
);
)sql",
    // 2: sample counts per (device, space), kept by PutSamples in the transaction that
    // stores the samples; filled from the samples an existing database holds.
    R"sql(
CREATE TABLE sample_counts (
  device TEXT NOT NULL,
  space TEXT NOT NULL,
  count BIGINT NOT NULL,
  PRIMARY KEY (device, space)
);
INSERT INTO sample_counts (device, space, count)
  SELECT device, space, COUNT(*) FROM samples GROUP BY device, space;
)sql",
    // 3: SubmitSamples request ids per device, each with what its call answered, written
    // by PutSamplesOnce in the transaction that stores the samples; seq numbers a
    // device's ids in the order stored.
    R"sql(
CREATE TABLE request_ids (
  device TEXT NOT NULL,
  request_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  space TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  accepted INTEGER NOT NULL,
  rejected INTEGER NOT NULL,
  created_ms BIGINT NOT NULL,
  PRIMARY KEY (device, request_id)
);
CREATE INDEX request_ids_by_seq ON request_ids (device, seq);
)sql",
};
constexpr int kLatestSchemaVersion = static_cast<int>(std::size(kMigrations));

// Advisory lock key serialising schema migrations of one database.
constexpr int64_t kMigrationLockKey = 0x6c6174707265640;  // "latpred"
// Rows per INSERT ... SELECT FROM unnest(...) statement.
constexpr size_t kRowsPerStatement = 4096;
// Idle connections kept for reuse.
constexpr size_t kMaxIdleConnections = 8;
// Attempts of a transaction that a serialization failure or deadlock rolled back.
constexpr int kMaxAttempts = 4;

// A PostgreSQL array literal of strings: {"a","b\"c"}.
std::string TextArray(const std::vector<const std::string*>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('"');
    for (const char c : *values[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  out.push_back('}');
  return out;
}

// A PostgreSQL array literal of finite doubles, each printed to round-trip exactly.
std::string DoubleArray(const std::vector<double>& values) {
  std::string out = "{";
  char buffer[32];
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    std::snprintf(buffer, sizeof(buffer), "%.17g", values[i]);
    out.append(buffer);
  }
  out.push_back('}');
  return out;
}

std::string IntArray(const std::vector<int64_t>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append(std::to_string(values[i]));
  }
  out.push_back('}');
  return out;
}

// Bytes as hex text, the form decode(..., 'hex') reads.
std::string ToHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char ch : bytes) {
    const unsigned char c = static_cast<unsigned char>(ch);
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

absl::StatusOr<std::string> FromHex(std::string_view hex) {
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return absl::InternalError("odd-length hex from PostgreSQL");
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = digit(hex[2 * i]), lo = digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return absl::InternalError("bad hex digit from PostgreSQL");
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return out;
}

constexpr char kModelColumns[] =
    "device, space, version, base_version, encode(blob, 'hex'), meta_json, created_ms";

absl::StatusOr<Device> ReadDeviceRow(const pqxx::row& row) {
  Device device;
  device.name = row[0].as<std::string>();
  const std::string labels_json = row[1].as<std::string>();
  std::optional<std::map<std::string, std::string>> labels = DecodeLabelsJson(labels_json);
  if (!labels.has_value()) {
    return absl::InternalError(absl::StrCat("corrupt labels_json of device \"",
                                            device.name, "\": ", labels_json));
  }
  device.labels = *std::move(labels);
  device.source = row[2].as<int64_t>() != 0;
  device.created_unix_ms = row[3].as<int64_t>();
  device.updated_unix_ms = row[4].as<int64_t>();
  return device;
}

DescriptorFeature ReadFeatureRow(const pqxx::row& row, int offset) {
  DescriptorFeature feature;
  feature.name = row[offset].as<std::string>();
  feature.value = row[offset + 1].as<double>();
  feature.source = row[offset + 2].as<std::string>();
  feature.unit = row[offset + 3].as<std::string>();
  return feature;
}

absl::StatusOr<ModelRecord> ReadModelRow(const pqxx::row& row) {
  ModelRecord model;
  model.device = row[0].as<std::string>();
  model.space = row[1].as<std::string>();
  model.version = row[2].as<int64_t>();
  model.base_version = row[3].as<int64_t>();
  ASSIGN_OR_RETURN(model.blob, FromHex(row[4].as<std::string>()));
  model.meta_json = row[5].as<std::string>();
  model.created_unix_ms = row[6].as<int64_t>();
  return model;
}

// Opens a connection; UNAVAILABLE (with PostgreSQL's reason) when it cannot.
absl::StatusOr<std::unique_ptr<pqxx::connection>> Connect(const std::string& uri) {
  try {
    return std::make_unique<pqxx::connection>(uri);
  } catch (const std::exception& e) {
    std::string reason = e.what();
    while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) {
      reason.pop_back();
    }
    return absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL at ",
                                               RedactStoreUri(uri), ": ", reason));
  }
}

// Connect for a request: what PostgreSQL said names the database (user, host, port,
// database), which belongs in the server's log, not in an answer any client reads.
absl::StatusOr<std::unique_ptr<pqxx::connection>> ConnectForRequest(const std::string& uri) {
  absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = Connect(uri);
  if (conn.ok()) return conn;
  std::cerr << "latpred-server: store: " << conn.status().message() << std::endl;
  return absl::UnavailableError(
      "the PostgreSQL store cannot be reached; retry later (the server's log has the reason)");
}

// Holds a session-level advisory lock; closing its connection releases the lock.
class PostgresLock final : public StoreLock {
 public:
  explicit PostgresLock(std::unique_ptr<pqxx::connection> conn) : conn_(std::move(conn)) {}
  ~PostgresLock() override {
    try {
      conn_->disconnect();
    } catch (...) {
    }
  }

 private:
  std::unique_ptr<pqxx::connection> conn_;
};

// The status of a failed statement: RESOURCE_EXHAUSTED for SQLSTATE class 53
// (insufficient resources: 53100 disk full, 53200 out of memory, 53300 too many
// connections), INTERNAL otherwise.
absl::Status SqlError(const std::string& what, const pqxx::sql_error& e) {
  std::string message =
      absl::StrCat("postgresql: ", what, ": ", e.what(), " (SQLSTATE ", e.sqlstate(), ")");
  if (e.sqlstate() == "53100") {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the store is out of space, nothing was written: ", message,
        "; free disk space on the database server and retry"));
  }
  if (e.sqlstate().rfind("53", 0) == 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the database server is out of resources: ", message));
  }
  return absl::InternalError(std::move(message));
}

class PostgresStore final : public Store {
 public:
  PostgresStore(std::string uri, int schema_version, std::unique_ptr<pqxx::connection> first)
      : uri_(std::move(uri)), schema_version_(schema_version) {
    idle_.push_back(std::move(first));
  }

  absl::StatusOr<bool> UpsertDevice(const Device& device) override {
    RETURN_IF_ERROR(ValidateDevice(device));
    const std::string labels_json = EncodeLabelsJson(device.labels);
    const int64_t now = NowUnixMs();
    bool created = false;
    RETURN_IF_ERROR(Transact(
        absl::StrCat("upserting device \"", device.name, "\""),
        [&](pqxx::work& txn) -> absl::Status {
          // xmax is 0 on a freshly inserted row and set on one the conflict updated.
          const pqxx::row row = txn.exec_params1(
              "INSERT INTO devices (name, labels_json, source, created_ms, updated_ms) "
              "VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO UPDATE SET "
              "labels_json = EXCLUDED.labels_json, source = EXCLUDED.source, "
              "updated_ms = EXCLUDED.updated_ms RETURNING (xmax = 0)",
              device.name, labels_json, device.source ? 1 : 0, now);
          created = row[0].as<bool>();
          txn.exec_params0("DELETE FROM descriptor_features WHERE device = $1", device.name);
          if (device.descriptor.empty()) return absl::OkStatus();
          std::vector<const std::string*> names, sources, units;
          std::vector<double> values;
          for (const DescriptorFeature& f : device.descriptor) {
            names.push_back(&f.name);
            values.push_back(f.value);
            sources.push_back(&f.source);
            units.push_back(&f.unit);
          }
          txn.exec_params0(
              "INSERT INTO descriptor_features (device, name, position, value, source, "
              "unit) SELECT $1, n, p - 1, v, s, u FROM unnest($2::text[], "
              "$3::float8[], $4::text[], $5::text[]) WITH ORDINALITY AS t(n, v, s, u, p)",
              device.name, TextArray(names), DoubleArray(values), TextArray(sources),
              TextArray(units));
          return absl::OkStatus();
        }));
    NotifyWrite();
    return created;
  }

  absl::StatusOr<Device> GetDevice(std::string_view name) override {
    const std::string key(name);
    Device device;
    RETURN_IF_ERROR(Transact(
        absl::StrCat("reading device \"", key, "\""), [&](pqxx::work& txn) -> absl::Status {
          const pqxx::result rows = txn.exec_params(
              absl::StrCat("SELECT ", kDeviceColumns, " FROM devices WHERE name = $1"), key);
          if (rows.empty()) return DeviceNotFound(key);
          ASSIGN_OR_RETURN(device, ReadDeviceRow(rows[0]));
          device.descriptor.clear();
          for (const pqxx::row& row : txn.exec_params(
                   "SELECT name, value, source, unit FROM descriptor_features "
                   "WHERE device = $1 ORDER BY position",
                   key)) {
            device.descriptor.push_back(ReadFeatureRow(row, 0));
          }
          return absl::OkStatus();
        }));
    return device;
  }

  // A page of devices by name (byte order), then the descriptors and sample counts of
  // the names it spans, in one transaction.
  absl::StatusOr<std::vector<Device>> ListDevices(const DeviceQuery& query) override {
    std::vector<Device> devices;
    RETURN_IF_ERROR(Transact("listing devices", [&](pqxx::work& txn) -> absl::Status {
      devices.clear();
      std::map<std::string, size_t> index;
      const std::string sql = absl::StrCat(
          "SELECT ", kDeviceColumns, " FROM devices WHERE name COLLATE \"C\" > $1",
          query.registered_only ? " AND source = 0" : "", " ORDER BY name COLLATE \"C\"",
          query.limit > 0 ? absl::StrCat(" LIMIT ", query.limit) : "");
      for (const pqxx::row& row : txn.exec_params(sql, query.after)) {
        ASSIGN_OR_RETURN(Device device, ReadDeviceRow(row));
        index.emplace(device.name, devices.size());
        devices.push_back(std::move(device));
      }
      if (devices.empty()) return absl::OkStatus();
      // Rows of the devices in (after, last name]; those of devices the page left out
      // (source devices when registered_only) are skipped.
      const std::string& last = devices.back().name;
      for (const pqxx::row& row : txn.exec_params(
               "SELECT device, name, value, source, unit FROM descriptor_features "
               "WHERE device COLLATE \"C\" > $1 AND device COLLATE \"C\" <= $2 "
               "ORDER BY device COLLATE \"C\", position",
               query.after, last)) {
        const auto it = index.find(row[0].as<std::string>());
        if (it != index.end()) devices[it->second].descriptor.push_back(ReadFeatureRow(row, 1));
      }
      for (const pqxx::row& row : txn.exec_params(
               "SELECT device, space, count FROM sample_counts "
               "WHERE device COLLATE \"C\" > $1 AND device COLLATE \"C\" <= $2 AND count > 0",
               query.after, last)) {
        const auto it = index.find(row[0].as<std::string>());
        if (it != index.end()) {
          devices[it->second].sample_counts[row[1].as<std::string>()] = row[2].as<int64_t>();
        }
      }
      return absl::OkStatus();
    }));
    return devices;
  }

  absl::Status PutSamples(std::string_view device, std::string_view space,
                          const std::vector<Sample>& samples) override {
    return StoreSamples(device, space, samples, nullptr).status();
  }

  absl::StatusOr<std::optional<SubmitRecord>> PutSamplesOnce(
      std::string_view device, std::string_view space, const std::vector<Sample>& samples,
      const SubmitRecord& record) override {
    return StoreSamples(device, space, samples, &record);
  }

  absl::StatusOr<std::optional<SubmitRecord>> GetSubmitRecord(
      std::string_view device, std::string_view request_id) override {
    const std::string dev(device), id(request_id);
    std::optional<SubmitRecord> found;
    RETURN_IF_ERROR(Transact(absl::StrCat("looking up request id of device \"", dev, "\""),
                             [&](pqxx::work& txn) -> absl::Status {
                               found = FindSubmitRecord(txn, dev, id);
                               return absl::OkStatus();
                             }));
    return found;
  }

 private:
  // The device's record of request_id, in txn.
  static std::optional<SubmitRecord> FindSubmitRecord(pqxx::work& txn, const std::string& dev,
                                                      const std::string& id) {
    const pqxx::result rows = txn.exec_params(
        "SELECT request_id, space, fingerprint, accepted, rejected, created_ms "
        "FROM request_ids WHERE device = $1 AND request_id = $2",
        dev, id);
    if (rows.empty()) return std::nullopt;
    SubmitRecord found;
    found.request_id = rows[0][0].as<std::string>();
    found.space = rows[0][1].as<std::string>();
    found.fingerprint = rows[0][2].as<std::string>();
    found.accepted = rows[0][3].as<int32_t>();
    found.rejected = rows[0][4].as<int32_t>();
    found.created_unix_ms = rows[0][5].as<int64_t>();
    return found;
  }

  // PutSamples, and with a record, PutSamplesOnce.
  absl::StatusOr<std::optional<SubmitRecord>> StoreSamples(std::string_view device,
                                                           std::string_view space,
                                                           const std::vector<Sample>& samples,
                                                           const SubmitRecord* record) {
    RETURN_IF_ERROR(ValidateSamples(samples));
    // The last sample of an arch wins; rows go in key order so that concurrent writers
    // take row locks in the same order.
    std::map<std::string_view, const Sample*> last;
    for (const Sample& sample : samples) last[sample.arch] = &sample;
    const std::string dev(device), sp(space);
    const int64_t now = NowUnixMs();
    std::optional<SubmitRecord> earlier;
    const absl::Status status = Transact(
        absl::StrCat("storing samples of device \"", dev, "\" in space \"", sp, "\""),
        [&](pqxx::work& txn) -> absl::Status {
          earlier.reset();
          if (txn.exec_params("SELECT 1 FROM devices WHERE name = $1 FOR SHARE", dev)
                  .empty()) {
            return DeviceNotFound(dev);
          }
          if (record != nullptr) {
            // Writers with request ids of one device queue here (every replica), so that
            // one of two calls with the same id stores and the other finds its record:
            // READ COMMITTED gives the next statement a snapshot that includes the
            // previous holder's commit.
            txn.exec_params("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                            absl::StrCat("latpred.requests:", dev));
            earlier = FindSubmitRecord(txn, dev, record->request_id);
            if (earlier.has_value()) return absl::OkStatus();
          }
          // Rows this call inserted (xmax is 0 on a fresh row, set on one the conflict
          // updated) add to the device's count. A concurrent writer of the same new arch
          // waits for this transaction and then updates the row, so it adds nothing.
          int64_t added = 0;
          auto it = last.begin();
          while (it != last.end()) {
            std::vector<const std::string*> archs;
            std::vector<double> latencies, spreads;
            std::vector<int64_t> repeats;
            for (; it != last.end() && archs.size() < kRowsPerStatement; ++it) {
              archs.push_back(&it->second->arch);
              latencies.push_back(it->second->latency_ms);
              repeats.push_back(it->second->repeats);
              spreads.push_back(it->second->spread_ms);
            }
            added += txn.exec_params1(
                           "WITH stored AS (INSERT INTO samples (device, space, arch, "
                           "latency_ms, repeats, spread_ms, created_ms) "
                           "SELECT $1, $2, a, l, r, s, $7 FROM unnest($3::text[], "
                           "$4::float8[], $5::int[], $6::float8[]) AS t(a, l, r, s) "
                           "ON CONFLICT (device, space, arch) DO UPDATE SET "
                           "latency_ms = EXCLUDED.latency_ms, repeats = EXCLUDED.repeats, "
                           "spread_ms = EXCLUDED.spread_ms, created_ms = EXCLUDED.created_ms "
                           "RETURNING (xmax = 0) AS inserted) "
                           "SELECT COUNT(*) FILTER (WHERE inserted) FROM stored",
                           dev, sp, TextArray(archs), DoubleArray(latencies),
                           IntArray(repeats), DoubleArray(spreads), now)[0]
                         .as<int64_t>();
          }
          if (added > 0) {
            txn.exec_params0(
                "INSERT INTO sample_counts (device, space, count) VALUES ($1, $2, $3) "
                "ON CONFLICT (device, space) DO UPDATE SET "
                "count = sample_counts.count + EXCLUDED.count",
                dev, sp, added);
          }
          if (record == nullptr) return absl::OkStatus();
          // The device's newest record; those past kRequestIdsPerDevice are forgotten.
          const int64_t seq =
              txn.exec_params1(
                     "INSERT INTO request_ids (device, request_id, seq, space, fingerprint, "
                     "accepted, rejected, created_ms) SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, "
                     "$3, $4, $5, $6, $7 FROM request_ids WHERE device = $1 RETURNING seq",
                     dev, record->request_id, sp, record->fingerprint, record->accepted,
                     record->rejected, now)[0]
                  .as<int64_t>();
          txn.exec_params0("DELETE FROM request_ids WHERE device = $1 AND seq <= $2", dev,
                           seq - kRequestIdsPerDevice);
          return absl::OkStatus();
        });
    RETURN_IF_ERROR(status);
    if (!earlier.has_value()) NotifyWrite();
    return earlier;
  }

 public:

  absl::StatusOr<std::vector<Sample>> GetSamples(std::string_view device,
                                                 std::string_view space) override {
    const std::string dev(device), sp(space);
    std::vector<Sample> samples;
    RETURN_IF_ERROR(Transact(
        absl::StrCat("reading samples of device \"", dev, "\" in space \"", sp, "\""),
        [&](pqxx::work& txn) -> absl::Status {
          const pqxx::result rows = txn.exec_params(
              "SELECT arch, latency_ms, repeats, spread_ms FROM samples "
              "WHERE device = $1 AND space = $2 ORDER BY arch COLLATE \"C\"",
              dev, sp);
          samples.clear();
          samples.reserve(rows.size());
          for (const pqxx::row& row : rows) {
            samples.push_back(Sample{row[0].as<std::string>(), row[1].as<double>(),
                                     row[2].as<int32_t>(), row[3].as<double>()});
          }
          return absl::OkStatus();
        }));
    return samples;
  }

  absl::StatusOr<std::map<std::string, int64_t>> CountSamples(
      std::string_view device) override {
    const std::string dev(device);
    std::map<std::string, int64_t> counts;
    RETURN_IF_ERROR(Transact(absl::StrCat("counting samples of device \"", dev, "\""),
                             [&](pqxx::work& txn) -> absl::Status {
                               counts.clear();
                               for (const pqxx::row& row : txn.exec_params(
                                        "SELECT space, count FROM sample_counts "
                                        "WHERE device = $1 AND count > 0",
                                        dev)) {
                                 counts[row[0].as<std::string>()] = row[1].as<int64_t>();
                               }
                               return absl::OkStatus();
                             }));
    return counts;
  }

  absl::StatusOr<std::map<std::string, std::map<std::string, int64_t>>> CountAllSamples()
      override {
    std::map<std::string, std::map<std::string, int64_t>> counts;
    RETURN_IF_ERROR(Transact("counting samples of all devices",
                             [&](pqxx::work& txn) -> absl::Status {
                               counts.clear();
                               for (const pqxx::row& row :
                                    txn.exec("SELECT device, space, count FROM sample_counts "
                                             "WHERE count > 0")) {
                                 counts[row[0].as<std::string>()][row[1].as<std::string>()] =
                                     row[2].as<int64_t>();
                               }
                               return absl::OkStatus();
                             }));
    return counts;
  }

  absl::StatusOr<StoreTotals> Totals() override {
    StoreTotals totals;
    RETURN_IF_ERROR(Transact("reading store totals", [&](pqxx::work& txn) -> absl::Status {
      totals = StoreTotals();
      for (const pqxx::row& row :
           txn.exec("SELECT source <> 0, COUNT(*) FROM devices GROUP BY source <> 0")) {
        (row[0].as<bool>() ? totals.source_devices : totals.registered_devices) =
            row[1].as<int64_t>();
      }
      for (const pqxx::row& row :
           txn.exec("SELECT space, SUM(count) FROM sample_counts GROUP BY space")) {
        totals.samples[row[0].as<std::string>()] = row[1].as<int64_t>();
      }
      return absl::OkStatus();
    }));
    return totals;
  }

  absl::StatusOr<int64_t> PutModel(const ModelRecord& model) override {
    const int64_t now = NowUnixMs();
    const std::string blob_hex = ToHex(model.blob);
    int64_t version = 0;
    RETURN_IF_ERROR(Transact(
        absl::StrCat("storing model of device \"", model.device, "\" in space \"",
                     model.space, "\""),
        [&](pqxx::work& txn) -> absl::Status {
          // Writers of one (device, space) queue here; READ COMMITTED gives the next
          // statement a snapshot that includes the previous writer's commit.
          txn.exec_params("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                           absl::StrCat("latpred.model:", model.device, ":", model.space));
          version = txn.exec_params1(
                           "SELECT COALESCE(MAX(version), 0) + 1 FROM models "
                           "WHERE device = $1 AND space = $2",
                           model.device, model.space)[0]
                        .as<int64_t>();
          txn.exec_params0(
              "INSERT INTO models (device, space, version, base_version, blob, meta_json, "
              "created_ms) VALUES ($1, $2, $3, $4, decode($5, 'hex'), $6, $7)",
              model.device, model.space, version, model.base_version, blob_hex,
              model.meta_json, now);
          return absl::OkStatus();
        }));
    return version;
  }

  absl::StatusOr<std::optional<ModelRecord>> GetLatestModel(std::string_view device,
                                                            std::string_view space) override {
    const std::string dev(device), sp(space);
    std::optional<ModelRecord> model;
    RETURN_IF_ERROR(Transact(
        absl::StrCat("reading latest model of device \"", dev, "\" in space \"", sp, "\""),
        [&](pqxx::work& txn) -> absl::Status {
          const pqxx::result rows = txn.exec_params(
              absl::StrCat("SELECT ", kModelColumns,
                           " FROM models WHERE device = $1 AND space = $2 "
                           "ORDER BY version DESC LIMIT 1"),
              dev, sp);
          if (rows.empty()) return absl::OkStatus();
          ASSIGN_OR_RETURN(model, ReadModelRow(rows[0]));
          return absl::OkStatus();
        }));
    return model;
  }

  absl::StatusOr<std::vector<ModelRecord>> GetLatestDeviceModels(
      std::string_view space) override {
    const std::string sp(space);
    std::vector<ModelRecord> models;
    RETURN_IF_ERROR(Transact(
        absl::StrCat("reading latest device models in space \"", sp, "\""),
        [&](pqxx::work& txn) -> absl::Status {
          models.clear();
          for (const pqxx::row& row : txn.exec_params(
                   absl::StrCat("SELECT DISTINCT ON (device COLLATE \"C\") ", kModelColumns,
                                " FROM models WHERE space = $1 AND device <> '' "
                                "ORDER BY device COLLATE \"C\", version DESC"),
                   sp)) {
            ASSIGN_OR_RETURN(ModelRecord model, ReadModelRow(row));
            models.push_back(std::move(model));
          }
          return absl::OkStatus();
        }));
    return models;
  }

  absl::StatusOr<std::map<std::string, int64_t>> GetLatestModelVersions(
      std::string_view space) override {
    const std::string sp(space);
    std::map<std::string, int64_t> versions;
    RETURN_IF_ERROR(Transact(
        absl::StrCat("reading model versions in space \"", sp, "\""),
        [&](pqxx::work& txn) -> absl::Status {
          versions.clear();
          for (const pqxx::row& row : txn.exec_params(
                   "SELECT device, MAX(version) FROM models WHERE space = $1 "
                   "GROUP BY device",
                   sp)) {
            versions[row[0].as<std::string>()] = row[1].as<int64_t>();
          }
          return absl::OkStatus();
        }));
    return versions;
  }

  absl::StatusOr<std::unique_ptr<StoreLock>> Lock(std::string_view name) override {
    ASSIGN_OR_RETURN(std::unique_ptr<pqxx::connection> conn, ConnectForRequest(uri_));
    const std::string key = absl::StrCat("latpred.lock:", AbslView(name));
    try {
      pqxx::nontransaction txn(*conn);
      txn.exec_params("SELECT pg_advisory_lock(hashtextextended($1, 0))", key);
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrCat("postgresql: taking lock \"", AbslView(name), "\": ", e.what()));
    }
    return std::unique_ptr<StoreLock>(new PostgresLock(std::move(conn)));
  }

  absl::StatusOr<std::optional<std::string>> GetSetting(std::string_view key) override {
    const std::string k(key);
    std::optional<std::string> value;
    RETURN_IF_ERROR(Transact(absl::StrCat("reading setting \"", k, "\""),
                             [&](pqxx::work& txn) -> absl::Status {
                               const pqxx::result rows = txn.exec_params(
                                   "SELECT value FROM settings WHERE key = $1", k);
                               if (!rows.empty()) value = rows[0][0].as<std::string>();
                               return absl::OkStatus();
                             }));
    return value;
  }

  absl::Status PutSetting(std::string_view key, std::string_view value) override {
    const std::string k(key), v(value);
    return Transact(absl::StrCat("writing setting \"", k, "\""),
                    [&](pqxx::work& txn) -> absl::Status {
                      txn.exec_params0(
                          "INSERT INTO settings (key, value) VALUES ($1, $2) "
                          "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                          k, v);
                      return absl::OkStatus();
                    });
  }

  int schema_version() const override { return schema_version_; }

 private:
  // An idle pooled connection, or a new one.
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Borrow() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (!idle_.empty()) {
        std::unique_ptr<pqxx::connection> conn = std::move(idle_.back());
        idle_.pop_back();
        if (conn->is_open()) return conn;
      }
    }
    return ConnectForRequest(uri_);
  }

  void Return(std::unique_ptr<pqxx::connection> conn) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(conn));
  }

  // Runs body in one transaction on a pooled connection and commits when it returns OK
  // (rolls back otherwise). A transaction rolled back by a serialization failure or a
  // deadlock is retried; so is one whose connection broke before COMMIT (a restarted
  // server or a dropped idle connection). A connection lost during COMMIT leaves the
  // outcome unknown: UNAVAILABLE, saying so.
  template <typename Body>
  absl::Status Transact(const std::string& what, Body&& body) {
    for (int attempt = 1;; ++attempt) {
      ASSIGN_OR_RETURN(std::unique_ptr<pqxx::connection> conn, Borrow());
      absl::Status status;
      bool retry = false;
      try {
        pqxx::work txn(*conn);
        status = body(txn);
        if (status.ok()) txn.commit();
      } catch (const pqxx::in_doubt_error& e) {
        conn.reset();
        status = absl::UnavailableError(absl::StrCat(
            "postgresql: ", what, ": connection lost during commit, outcome unknown: ",
            e.what()));
      } catch (const pqxx::broken_connection& e) {
        conn.reset();
        status = absl::UnavailableError(absl::StrCat("postgresql: ", what,
                                                     ": connection lost: ", e.what()));
        retry = attempt < 2;
      } catch (const pqxx::transaction_rollback& e) {
        status = absl::AbortedError(absl::StrCat("postgresql: ", what, ": ", e.what()));
        retry = attempt < kMaxAttempts;
      } catch (const pqxx::sql_error& e) {
        status = SqlError(what, e);
      } catch (const std::exception& e) {
        status = absl::InternalError(absl::StrCat("postgresql: ", what, ": ", e.what()));
      }
      if (conn != nullptr) Return(std::move(conn));
      if (!retry) return status;
    }
  }

  const std::string uri_;
  const int schema_version_;
  std::mutex mu_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;  // guarded by mu_
};

// Applies the migrations the database lacks in one transaction, under an advisory lock
// so that replicas starting together migrate once. Returns the schema version.
absl::StatusOr<int> Migrate(pqxx::connection& conn, const std::string& display) {
  int version = 0;
  try {
    pqxx::work txn(conn);
    txn.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
    txn.exec0("CREATE TABLE IF NOT EXISTS latpred_schema (version INTEGER NOT NULL)");
    const pqxx::result rows = txn.exec("SELECT version FROM latpred_schema");
    if (rows.empty()) {
      txn.exec0("INSERT INTO latpred_schema (version) VALUES (0)");
    } else {
      version = rows[0][0].as<int>();
    }
    if (version > kLatestSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "store ", display, " has schema version ", version,
          ", newer than the latest this build knows (", kLatestSchemaVersion,
          "); use a newer latpred"));
    }
    for (; version < kLatestSchemaVersion; ++version) txn.exec0(kMigrations[version]);
    txn.exec_params0("UPDATE latpred_schema SET version = $1", version);
    txn.commit();
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("postgresql: migrating ", display, ": ", e.what()));
  }
  return version;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(std::string_view uri) {
  const std::string conninfo(uri);
  ASSIGN_OR_RETURN(std::unique_ptr<pqxx::connection> conn, Connect(conninfo));
  ASSIGN_OR_RETURN(const int version, Migrate(*conn, RedactStoreUri(conninfo)));
  return std::unique_ptr<Store>(new PostgresStore(conninfo, version, std::move(conn)));
}

}  // namespace latpred::store
