// SQLite implementation of Store: one WAL-mode connection serialised by a mutex, one
// transaction per write, schema versioned by PRAGMA user_version.
#include "sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "latpred/core/status_macros.h"
#include "latpred/store/store.h"
#include "common.h"

namespace latpred::store {
namespace {

// Schema migrations in order: a database at version N has had the first N applied,
// each in its own transaction. Append new steps; never edit one that has shipped.
constexpr const char* kMigrations[] = {
    // 1: devices, descriptors, samples, models, settings. descriptor_features.position
    // keeps the caller's feature order. samples has no foreign key (PutSamples checks
    // the device; per-row checks slow bulk imports). models keeps rowids since large
    // blobs do not suit WITHOUT ROWID.
    R"sql(
CREATE TABLE devices (
  name TEXT NOT NULL PRIMARY KEY,
  labels_json TEXT NOT NULL,
  source INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE descriptor_features (
  device TEXT NOT NULL REFERENCES devices(name) ON DELETE CASCADE,
  name TEXT NOT NULL,
  position INTEGER NOT NULL,
  value REAL NOT NULL,
  source TEXT NOT NULL,
  unit TEXT NOT NULL,
  PRIMARY KEY (device, name)
) WITHOUT ROWID;
CREATE TABLE samples (
  device TEXT NOT NULL,
  space TEXT NOT NULL,
  arch TEXT NOT NULL,
  latency_ms REAL NOT NULL,
  repeats INTEGER NOT NULL,
  spread_ms REAL NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (device, space, arch)
) WITHOUT ROWID;
CREATE TABLE models (
  device TEXT NOT NULL,
  space TEXT NOT NULL,
  version INTEGER NOT NULL,
  base_version INTEGER NOT NULL,
  blob BLOB NOT NULL,
  meta_json TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (device, space, version)
);
CREATE TABLE settings (
  key TEXT NOT NULL PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
)sql",
    // 2: sample counts per (device, space), kept by PutSamples in the transaction that
    // stores the samples, so that listing devices and the metrics gauges do not count
    // the samples table. Filled from the samples an existing database holds.
    R"sql(
CREATE TABLE sample_counts (
  device TEXT NOT NULL,
  space TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (device, space)
) WITHOUT ROWID;
INSERT INTO sample_counts (device, space, count)
  SELECT device, space, COUNT(*) FROM samples GROUP BY device, space;
)sql",
    // 3: SubmitSamples request ids per device, each with what its call answered, written
    // by PutSamplesOnce in the transaction that stores the samples. seq numbers a
    // device's ids in the order stored, so that keeping the newest N is one range delete.
    R"sql(
CREATE TABLE request_ids (
  device TEXT NOT NULL,
  request_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  space TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  accepted INTEGER NOT NULL,
  rejected INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (device, request_id)
) WITHOUT ROWID;
CREATE INDEX request_ids_by_seq ON request_ids (device, seq);
)sql",
};
constexpr int kLatestSchemaVersion = static_cast<int>(std::size(kMigrations));

// Turns a failed SQLite call into a Status: UNAVAILABLE when the database is busy or
// locked (worth retrying), RESOURCE_EXHAUSTED when the disk (or the database's page
// limit) is full, INTERNAL otherwise.
absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what) {
  std::string message =
      absl::StrCat("sqlite: ", what, ": ", sqlite3_errmsg(db), " (code ", rc, ")");
  const int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    return absl::UnavailableError(std::move(message));
  }
  if (primary == SQLITE_FULL) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "the store is out of space, nothing was written: ", message,
        "; free disk space where the database lives and retry"));
  }
  return absl::InternalError(std::move(message));
}

// Runs one or more SQL statements that return nothing of interest.
absl::Status Exec(sqlite3* db, const char* sql, absl::string_view what) {
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, rc, what);
  return absl::OkStatus();
}

// A prepared statement. Bind failures are remembered and reported by the next Step so
// that call sites check one status per execution.
class Statement {
 public:
  // Compiles sql; `what` describes the operation in error messages.
  static absl::StatusOr<Statement> Prepare(sqlite3* db, std::string_view sql,
                                           absl::string_view what) {
    sqlite3_stmt* stmt = nullptr;
    const int rc =
        sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return SqliteError(db, rc, what);
    }
    return Statement(db, stmt, what);
  }

  Statement(Statement&& other) noexcept
      : db_(other.db_),
        stmt_(std::exchange(other.stmt_, nullptr)),
        what_(std::move(other.what_)),
        bind_rc_(other.bind_rc_) {}
  Statement& operator=(Statement&&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  void BindText(int index, std::string_view text) {
    Note(sqlite3_bind_text64(stmt_, index, NonNull(text), text.size(), SQLITE_TRANSIENT,
                             SQLITE_UTF8));
  }
  void BindBlob(int index, std::string_view bytes) {
    Note(sqlite3_bind_blob64(stmt_, index, NonNull(bytes), bytes.size(),
                             SQLITE_TRANSIENT));
  }
  void BindInt(int index, int64_t value) {
    Note(sqlite3_bind_int64(stmt_, index, value));
  }
  void BindDouble(int index, double value) {
    Note(sqlite3_bind_double(stmt_, index, value));
  }

  // Advances the statement: true when a row is available, false when done.
  absl::StatusOr<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return SqliteError(db_, bind_rc_, what_);
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, rc, what_);
  }
  // Executes a statement whose result rows, if any, are not needed.
  absl::Status Run() { return Step().status(); }
  // Makes the statement ready to run again; bindings are kept until rebound.
  void Reset() { sqlite3_reset(stmt_); }

  int64_t ColumnInt(int index) const { return sqlite3_column_int64(stmt_, index); }
  double ColumnDouble(int index) const { return sqlite3_column_double(stmt_, index); }
  std::string ColumnText(int index) const {
    const unsigned char* text = sqlite3_column_text(stmt_, index);
    const int size = sqlite3_column_bytes(stmt_, index);
    if (text == nullptr) return std::string();
    return std::string(reinterpret_cast<const char*>(text), size);
  }
  std::string ColumnBlob(int index) const {
    const void* bytes = sqlite3_column_blob(stmt_, index);
    const int size = sqlite3_column_bytes(stmt_, index);
    if (bytes == nullptr) return std::string();
    return std::string(static_cast<const char*>(bytes), size);
  }

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt, absl::string_view what)
      : db_(db), stmt_(stmt), what_(what) {}

  // An empty string_view may carry a null pointer, which SQLite would store as NULL.
  static const char* NonNull(std::string_view s) {
    return s.data() == nullptr ? "" : s.data();
  }
  void Note(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::string what_;
  int bind_rc_ = SQLITE_OK;
};

enum class TxnMode { kRead, kWrite };

// Runs body inside a transaction (BEGIN IMMEDIATE for writes, so the write lock is
// taken up front and waits under busy_timeout), committing when it succeeds and rolling
// back otherwise.
template <typename Body>
absl::Status InTransaction(sqlite3* db, TxnMode mode, absl::string_view what,
                           Body&& body) {
  RETURN_IF_ERROR(Exec(db, mode == TxnMode::kWrite ? "BEGIN IMMEDIATE" : "BEGIN",
                       absl::StrCat("beginning transaction for ", what)));
  absl::Status status = body();
  if (status.ok()) {
    status = Exec(db, "COMMIT", absl::StrCat("committing ", what));
  }
  if (!status.ok() && !sqlite3_get_autocommit(db)) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  return status;
}

// Reads PRAGMA user_version.
absl::StatusOr<int> ReadSchemaVersion(sqlite3* db, const std::string& path) {
  const std::string what = absl::StrCat("reading schema version of ", path);
  ASSIGN_OR_RETURN(Statement stmt, Statement::Prepare(db, "PRAGMA user_version", what));
  ASSIGN_OR_RETURN(const bool row, stmt.Step());
  if (!row) return absl::InternalError(absl::StrCat("sqlite: ", what, ": no result"));
  return static_cast<int>(stmt.ColumnInt(0));
}

// Applies the migrations the database lacks, one transaction each, and returns the
// resulting schema version. The version is re-read under the write lock, so processes
// opening the same new file concurrently migrate it once.
absl::StatusOr<int> Migrate(sqlite3* db, const std::string& path) {
  ASSIGN_OR_RETURN(int version, ReadSchemaVersion(db, path));
  while (true) {
    if (version > kLatestSchemaVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("store ", path, " has schema version ", version,
                       ", newer than the latest this build knows (", kLatestSchemaVersion,
                       "); use a newer latpred"));
    }
    if (version == kLatestSchemaVersion) return version;
    const std::string what =
        absl::StrCat("migrating ", path, " to schema version ", version + 1);
    RETURN_IF_ERROR(InTransaction(db, TxnMode::kWrite, what, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(version, ReadSchemaVersion(db, path));
      if (version >= kLatestSchemaVersion) return absl::OkStatus();
      RETURN_IF_ERROR(Exec(db, kMigrations[version], what));
      ++version;
      return Exec(db, absl::StrCat("PRAGMA user_version = ", version).c_str(), what);
    }));
  }
}

// Device name, labels, source flag and timestamps from a devices row selected as
// kDeviceColumns.
absl::StatusOr<Device> ReadDeviceRow(const Statement& stmt) {
  Device device;
  device.name = stmt.ColumnText(0);
  const std::string labels_json = stmt.ColumnText(1);
  std::optional<std::map<std::string, std::string>> labels =
      DecodeLabelsJson(labels_json);
  if (!labels.has_value()) {
    return absl::InternalError(absl::StrCat("corrupt labels_json of device \"",
                                            device.name, "\": ", labels_json));
  }
  device.labels = *std::move(labels);
  device.source = stmt.ColumnInt(2) != 0;
  device.created_unix_ms = stmt.ColumnInt(3);
  device.updated_unix_ms = stmt.ColumnInt(4);
  return device;
}

// A descriptor feature from a row selected as (name, value, source, unit) at offset.
DescriptorFeature ReadFeatureRow(const Statement& stmt, int offset) {
  DescriptorFeature feature;
  feature.name = stmt.ColumnText(offset);
  feature.value = stmt.ColumnDouble(offset + 1);
  feature.source = stmt.ColumnText(offset + 2);
  feature.unit = stmt.ColumnText(offset + 3);
  return feature;
}

constexpr char kModelColumns[] =
    "m.device, m.space, m.version, m.base_version, m.blob, m.meta_json, m.created_ms";

// A model from a row selected as kModelColumns.
ModelRecord ReadModelRow(const Statement& stmt) {
  ModelRecord model;
  model.device = stmt.ColumnText(0);
  model.space = stmt.ColumnText(1);
  model.version = stmt.ColumnInt(2);
  model.base_version = stmt.ColumnInt(3);
  model.blob = stmt.ColumnBlob(4);
  model.meta_json = stmt.ColumnText(5);
  model.created_unix_ms = stmt.ColumnInt(6);
  return model;
}

// In-process named locks: the SQLite store's Lock (one server process per file).
class NamedLocks {
 public:
  void Acquire(const std::string& name) {
    std::unique_lock<std::mutex> lock(mu_);
    released_.wait(lock, [&] { return held_.count(name) == 0; });
    held_.insert(name);
  }
  void Release(const std::string& name) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_.erase(name);
    }
    released_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable released_;
  std::set<std::string> held_;  // guarded by mu_
};

class SqliteLock final : public StoreLock {
 public:
  SqliteLock(std::shared_ptr<NamedLocks> locks, std::string name)
      : locks_(std::move(locks)), name_(std::move(name)) {
    locks_->Acquire(name_);
  }
  ~SqliteLock() override { locks_->Release(name_); }

 private:
  std::shared_ptr<NamedLocks> locks_;
  std::string name_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, int schema_version)
      : db_(db), schema_version_(schema_version) {}
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  ~SqliteStore() override { sqlite3_close_v2(db_); }

  // Upserts the device row (keeping created_ms) and replaces its descriptor.
  absl::StatusOr<bool> UpsertDevice(const Device& device) override {
    RETURN_IF_ERROR(ValidateDevice(device));
    const std::string labels_json = EncodeLabelsJson(device.labels);
    const int64_t now = NowUnixMs();
    const std::string what = absl::StrCat("upserting device \"", device.name, "\"");
    bool created = false;
    std::unique_lock<std::mutex> lock(mu_);
    RETURN_IF_ERROR(InTransaction(db_, TxnMode::kWrite, what, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(const bool exists, DeviceExists(device.name));
      created = !exists;
      ASSIGN_OR_RETURN(
          Statement upsert,
          Statement::Prepare(
              db_,
              "INSERT INTO devices (name, labels_json, source, created_ms, updated_ms) "
              "VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (name) DO UPDATE SET "
              "labels_json = excluded.labels_json, source = excluded.source, "
              "updated_ms = excluded.updated_ms",
              what));
      upsert.BindText(1, device.name);
      upsert.BindText(2, labels_json);
      upsert.BindInt(3, device.source ? 1 : 0);
      upsert.BindInt(4, now);
      RETURN_IF_ERROR(upsert.Run());
      ASSIGN_OR_RETURN(
          Statement clear,
          Statement::Prepare(db_, "DELETE FROM descriptor_features WHERE device = ?1",
                             what));
      clear.BindText(1, device.name);
      RETURN_IF_ERROR(clear.Run());
      ASSIGN_OR_RETURN(Statement insert,
                       Statement::Prepare(db_,
                                          "INSERT INTO descriptor_features "
                                          "(device, name, position, value, source, unit) "
                                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                          what));
      insert.BindText(1, device.name);
      for (size_t i = 0; i < device.descriptor.size(); ++i) {
        const DescriptorFeature& feature = device.descriptor[i];
        insert.BindText(2, feature.name);
        insert.BindInt(3, static_cast<int64_t>(i));
        insert.BindDouble(4, feature.value);
        insert.BindText(5, feature.source);
        insert.BindText(6, feature.unit);
        RETURN_IF_ERROR(insert.Run());
        insert.Reset();
      }
      return absl::OkStatus();
    }));
    lock.unlock();
    NotifyWrite();
    return created;
  }

  // Reads the device row and its descriptor in one read transaction.
  absl::StatusOr<Device> GetDevice(std::string_view name) override {
    const std::string what = absl::StrCat("reading device \"", AbslView(name), "\"");
    Device device;
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(InTransaction(db_, TxnMode::kRead, what, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(
          Statement select,
          Statement::Prepare(
              db_, absl::StrCat("SELECT ", kDeviceColumns, " FROM devices WHERE name = ?1"),
              what));
      select.BindText(1, name);
      ASSIGN_OR_RETURN(const bool found, select.Step());
      if (!found) return DeviceNotFound(name);
      ASSIGN_OR_RETURN(device, ReadDeviceRow(select));
      ASSIGN_OR_RETURN(Statement features,
                       Statement::Prepare(db_,
                                          "SELECT name, value, source, unit "
                                          "FROM descriptor_features WHERE device = ?1 "
                                          "ORDER BY position",
                                          what));
      features.BindText(1, name);
      while (true) {
        ASSIGN_OR_RETURN(const bool row, features.Step());
        if (!row) break;
        device.descriptor.push_back(ReadFeatureRow(features, 0));
      }
      return absl::OkStatus();
    }));
    return device;
  }

  // Reads a page of devices (by name), then the descriptors and sample counts of the
  // names it spans, in one read transaction.
  absl::StatusOr<std::vector<Device>> ListDevices(const DeviceQuery& query) override {
    constexpr absl::string_view what = "listing devices";
    std::vector<Device> devices;
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(InTransaction(db_, TxnMode::kRead, what, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(
          Statement select,
          Statement::Prepare(
              db_,
              absl::StrCat("SELECT ", kDeviceColumns,
                           " FROM devices WHERE name > ?1 AND (?2 = 0 OR source = 0) "
                           "ORDER BY name LIMIT ?3"),
              what));
      select.BindText(1, query.after);
      select.BindInt(2, query.registered_only ? 1 : 0);
      select.BindInt(3, query.limit > 0 ? query.limit : -1);
      std::map<std::string, size_t> index;
      while (true) {
        ASSIGN_OR_RETURN(const bool row, select.Step());
        if (!row) break;
        ASSIGN_OR_RETURN(Device device, ReadDeviceRow(select));
        index.emplace(device.name, devices.size());
        devices.push_back(std::move(device));
      }
      if (devices.empty()) return absl::OkStatus();
      // Rows of the devices in (after, last name]; those of devices the page left out
      // (source devices when registered_only) are skipped.
      const std::string& last = devices.back().name;
      ASSIGN_OR_RETURN(Statement features,
                       Statement::Prepare(db_,
                                          "SELECT device, name, value, source, unit "
                                          "FROM descriptor_features "
                                          "WHERE device > ?1 AND device <= ?2 "
                                          "ORDER BY device, position",
                                          what));
      features.BindText(1, query.after);
      features.BindText(2, last);
      while (true) {
        ASSIGN_OR_RETURN(const bool row, features.Step());
        if (!row) break;
        const auto it = index.find(features.ColumnText(0));
        if (it != index.end()) {
          devices[it->second].descriptor.push_back(ReadFeatureRow(features, 1));
        }
      }
      ASSIGN_OR_RETURN(Statement counts,
                       Statement::Prepare(db_,
                                          "SELECT device, space, count FROM sample_counts "
                                          "WHERE device > ?1 AND device <= ?2",
                                          what));
      counts.BindText(1, query.after);
      counts.BindText(2, last);
      while (true) {
        ASSIGN_OR_RETURN(const bool row, counts.Step());
        if (!row) break;
        const auto it = index.find(counts.ColumnText(0));
        if (it != index.end() && counts.ColumnInt(2) > 0) {
          devices[it->second].sample_counts[counts.ColumnText(1)] = counts.ColumnInt(2);
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
    std::lock_guard<std::mutex> lock(mu_);
    return FindSubmitRecord(device, request_id);
  }

 private:
  // Inserts or replaces all samples with one prepared statement in one transaction, and
  // with a record, stores it too unless the device already has its request id (then
  // stores nothing and returns the stored record).
  absl::StatusOr<std::optional<SubmitRecord>> StoreSamples(std::string_view device,
                                                           std::string_view space,
                                                           const std::vector<Sample>& samples,
                                                           const SubmitRecord* record) {
    RETURN_IF_ERROR(ValidateSamples(samples));
    // Inserting in primary-key order fills B-tree pages in sequence instead of at
    // random (2-3x faster for large batches). The stable sort keeps the last of
    // duplicate archs last, so it still wins.
    std::vector<const Sample*> in_key_order;
    in_key_order.reserve(samples.size());
    for (const Sample& sample : samples) in_key_order.push_back(&sample);
    const auto by_arch = [](const Sample* a, const Sample* b) {
      return a->arch < b->arch;
    };
    if (!std::is_sorted(in_key_order.begin(), in_key_order.end(), by_arch)) {
      std::stable_sort(in_key_order.begin(), in_key_order.end(), by_arch);
    }
    const int64_t now = NowUnixMs();
    const std::string what =
        absl::StrCat("storing samples of device \"", AbslView(device), "\" in space \"",
                     AbslView(space), "\"");
    std::optional<SubmitRecord> earlier;
    std::unique_lock<std::mutex> lock(mu_);
    const absl::Status status = InTransaction(db_, TxnMode::kWrite, what, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(const bool exists, DeviceExists(device));
      if (!exists) return DeviceNotFound(device);
      if (record != nullptr) {
        ASSIGN_OR_RETURN(earlier, FindSubmitRecord(device, record->request_id));
        if (earlier.has_value()) return absl::OkStatus();
      }
      ASSIGN_OR_RETURN(
          Statement insert,
          Statement::Prepare(db_,
                             "INSERT OR REPLACE INTO samples (device, space, arch, "
                             "latency_ms, repeats, spread_ms, created_ms) "
                             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                             what));
      insert.BindText(1, device);
      insert.BindText(2, space);
      insert.BindInt(7, now);
      for (const Sample* sample : in_key_order) {
        insert.BindText(3, sample->arch);
        insert.BindDouble(4, sample->latency_ms);
        insert.BindInt(5, sample->repeats);
        insert.BindDouble(6, sample->spread_ms);
        RETURN_IF_ERROR(insert.Run());
        insert.Reset();
      }
      // Writers are serialised (one connection under mu_, and BEGIN IMMEDIATE across
      // processes), so a recount of this device's range of the key is exact.
      ASSIGN_OR_RETURN(Statement count,
                       Statement::Prepare(db_,
                                          "INSERT INTO sample_counts (device, space, count) "
                                          "SELECT ?1, ?2, COUNT(*) FROM samples "
                                          "WHERE device = ?1 AND space = ?2 "
                                          "ON CONFLICT (device, space) DO UPDATE SET "
                                          "count = excluded.count",
                                          what));
      count.BindText(1, device);
      count.BindText(2, space);
      RETURN_IF_ERROR(count.Run());
      if (record == nullptr) return absl::OkStatus();
      return InsertSubmitRecord(device, *record, now, what);
    });
    lock.unlock();
    RETURN_IF_ERROR(status);
    if (!earlier.has_value()) NotifyWrite();
    return earlier;
  }

  // The device's record of request_id; the caller holds mu_.
  absl::StatusOr<std::optional<SubmitRecord>> FindSubmitRecord(std::string_view device,
                                                               std::string_view request_id) {
    ASSIGN_OR_RETURN(
        Statement select,
        Statement::Prepare(db_,
                           "SELECT request_id, space, fingerprint, accepted, rejected, "
                           "created_ms FROM request_ids WHERE device = ?1 AND request_id = ?2",
                           absl::StrCat("looking up request id of device \"",
                                        AbslView(device), "\"")));
    select.BindText(1, device);
    select.BindText(2, request_id);
    ASSIGN_OR_RETURN(const bool row, select.Step());
    if (!row) return std::optional<SubmitRecord>();
    SubmitRecord found;
    found.request_id = select.ColumnText(0);
    found.space = select.ColumnText(1);
    found.fingerprint = select.ColumnText(2);
    found.accepted = static_cast<int32_t>(select.ColumnInt(3));
    found.rejected = static_cast<int32_t>(select.ColumnInt(4));
    found.created_unix_ms = select.ColumnInt(5);
    return std::optional<SubmitRecord>(std::move(found));
  }

  // Stores the record as the device's newest and forgets those past
  // kRequestIdsPerDevice; the caller holds mu_ inside a write transaction.
  absl::Status InsertSubmitRecord(std::string_view device, const SubmitRecord& record,
                                  int64_t now, const std::string& what) {
    ASSIGN_OR_RETURN(Statement insert,
                     Statement::Prepare(db_,
                                        "INSERT INTO request_ids (device, request_id, seq, "
                                        "space, fingerprint, accepted, rejected, created_ms) "
                                        "SELECT ?1, ?2, COALESCE(MAX(seq), 0) + 1, ?3, ?4, ?5, "
                                        "?6, ?7 FROM request_ids WHERE device = ?1 "
                                        "RETURNING seq",
                                        what));
    insert.BindText(1, device);
    insert.BindText(2, record.request_id);
    insert.BindText(3, record.space);
    insert.BindText(4, record.fingerprint);
    insert.BindInt(5, record.accepted);
    insert.BindInt(6, record.rejected);
    insert.BindInt(7, now);
    ASSIGN_OR_RETURN(const bool row, insert.Step());
    if (!row) return absl::InternalError(absl::StrCat("sqlite: ", what, ": no seq returned"));
    const int64_t seq = insert.ColumnInt(0);
    RETURN_IF_ERROR(insert.Run());  // finishes the statement
    ASSIGN_OR_RETURN(Statement forget,
                     Statement::Prepare(db_,
                                        "DELETE FROM request_ids WHERE device = ?1 AND "
                                        "seq <= ?2",
                                        what));
    forget.BindText(1, device);
    forget.BindInt(2, seq - kRequestIdsPerDevice);
    return forget.Run();
  }

 public:

  // Samples of (device, space) ordered by arch; empty for unknown devices.
  absl::StatusOr<std::vector<Sample>> GetSamples(std::string_view device,
                                                 std::string_view space) override {
    const std::string what =
        absl::StrCat("reading samples of device \"", AbslView(device), "\" in space \"",
                     AbslView(space), "\"");
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     Statement::Prepare(db_,
                                        "SELECT arch, latency_ms, repeats, spread_ms "
                                        "FROM samples WHERE device = ?1 AND space = ?2 "
                                        "ORDER BY arch",
                                        what));
    select.BindText(1, device);
    select.BindText(2, space);
    std::vector<Sample> samples;
    while (true) {
      ASSIGN_OR_RETURN(const bool row, select.Step());
      if (!row) break;
      Sample sample;
      sample.arch = select.ColumnText(0);
      sample.latency_ms = select.ColumnDouble(1);
      sample.repeats = static_cast<int32_t>(select.ColumnInt(2));
      sample.spread_ms = select.ColumnDouble(3);
      samples.push_back(std::move(sample));
    }
    return samples;
  }

  // Space -> sample count for one device; empty for unknown devices.
  absl::StatusOr<std::map<std::string, int64_t>> CountSamples(
      std::string_view device) override {
    return KeyedInts(
        "SELECT space, count FROM sample_counts WHERE device = ?1 AND count > 0", device,
        absl::StrCat("counting samples of device \"", AbslView(device), "\""));
  }

  // Device -> space -> sample count, from the kept counts.
  absl::StatusOr<std::map<std::string, std::map<std::string, int64_t>>> CountAllSamples()
      override {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     Statement::Prepare(db_,
                                        "SELECT device, space, count FROM sample_counts "
                                        "WHERE count > 0",
                                        "counting samples of all devices"));
    std::map<std::string, std::map<std::string, int64_t>> counts;
    while (true) {
      ASSIGN_OR_RETURN(const bool row, select.Step());
      if (!row) break;
      counts[select.ColumnText(0)][select.ColumnText(1)] = select.ColumnInt(2);
    }
    return counts;
  }

  // Devices by kind (one pass over the devices table) and the kept sample counts summed
  // by space, in one read transaction.
  absl::StatusOr<StoreTotals> Totals() override {
    constexpr absl::string_view what = "reading store totals";
    StoreTotals totals;
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(InTransaction(db_, TxnMode::kRead, what, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(Statement devices,
                       Statement::Prepare(db_,
                                          "SELECT source <> 0, COUNT(*) FROM devices "
                                          "GROUP BY source <> 0",
                                          what));
      while (true) {
        ASSIGN_OR_RETURN(const bool row, devices.Step());
        if (!row) break;
        (devices.ColumnInt(0) != 0 ? totals.source_devices : totals.registered_devices) =
            devices.ColumnInt(1);
      }
      ASSIGN_OR_RETURN(Statement samples,
                       Statement::Prepare(db_,
                                          "SELECT space, SUM(count) FROM sample_counts "
                                          "GROUP BY space",
                                          what));
      while (true) {
        ASSIGN_OR_RETURN(const bool row, samples.Step());
        if (!row) break;
        totals.samples[samples.ColumnText(0)] = samples.ColumnInt(1);
      }
      return absl::OkStatus();
    }));
    return totals;
  }

  // Assigns 1 + the latest version of (device, space) and inserts the model, under the
  // write lock so concurrent writers (threads or processes) get distinct versions.
  absl::StatusOr<int64_t> PutModel(const ModelRecord& model) override {
    const int64_t now = NowUnixMs();
    const std::string what = absl::StrCat("storing model of device \"", model.device,
                                          "\" in space \"", model.space, "\"");
    int64_t version = 0;
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(InTransaction(db_, TxnMode::kWrite, what, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(Statement latest,
                       Statement::Prepare(db_,
                                          "SELECT COALESCE(MAX(version), 0) + 1 "
                                          "FROM models WHERE device = ?1 AND space = ?2",
                                          what));
      latest.BindText(1, model.device);
      latest.BindText(2, model.space);
      ASSIGN_OR_RETURN(const bool row, latest.Step());
      if (!row) return absl::InternalError(absl::StrCat("sqlite: ", what, ": no result"));
      version = latest.ColumnInt(0);
      ASSIGN_OR_RETURN(
          Statement insert,
          Statement::Prepare(db_,
                             "INSERT INTO models (device, space, version, base_version, "
                             "blob, meta_json, created_ms) "
                             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                             what));
      insert.BindText(1, model.device);
      insert.BindText(2, model.space);
      insert.BindInt(3, version);
      insert.BindInt(4, model.base_version);
      insert.BindBlob(5, model.blob);
      insert.BindText(6, model.meta_json);
      insert.BindInt(7, now);
      return insert.Run();
    }));
    return version;
  }

  // The highest version of (device, space), if any.
  absl::StatusOr<std::optional<ModelRecord>> GetLatestModel(
      std::string_view device, std::string_view space) override {
    const std::string what =
        absl::StrCat("reading latest model of device \"", AbslView(device),
                     "\" in space \"", AbslView(space), "\"");
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Statement select,
                     Statement::Prepare(db_,
                                        absl::StrCat("SELECT ", kModelColumns,
                                                     " FROM models AS m WHERE m.device = "
                                                     "?1 AND m.space = ?2 "
                                                     "ORDER BY m.version DESC LIMIT 1"),
                                        what));
    select.BindText(1, device);
    select.BindText(2, space);
    ASSIGN_OR_RETURN(const bool row, select.Step());
    if (!row) return std::optional<ModelRecord>();
    return std::optional<ModelRecord>(ReadModelRow(select));
  }

  // The highest version per device (excluding the base model) in a space, by device.
  absl::StatusOr<std::vector<ModelRecord>> GetLatestDeviceModels(
      std::string_view space) override {
    const std::string what =
        absl::StrCat("reading latest device models in space \"", AbslView(space), "\"");
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(
        Statement select,
        Statement::Prepare(
            db_,
            absl::StrCat("SELECT ", kModelColumns,
                         " FROM models AS m JOIN (SELECT device, MAX(version) AS version "
                         "FROM models WHERE space = ?1 AND device <> '' GROUP BY device) "
                         "AS latest ON m.device = latest.device AND "
                         "m.version = latest.version WHERE m.space = ?1 "
                         "ORDER BY m.device"),
            what));
    select.BindText(1, space);
    std::vector<ModelRecord> models;
    while (true) {
      ASSIGN_OR_RETURN(const bool row, select.Step());
      if (!row) break;
      models.push_back(ReadModelRow(select));
    }
    return models;
  }

  // Device -> MAX(version) of a space's models, "" for the base model.
  absl::StatusOr<std::map<std::string, int64_t>> GetLatestModelVersions(
      std::string_view space) override {
    return KeyedInts(
        "SELECT device, MAX(version) FROM models WHERE space = ?1 GROUP BY device", space,
        absl::StrCat("reading model versions in space \"", AbslView(space), "\""));
  }

  absl::StatusOr<std::unique_ptr<StoreLock>> Lock(std::string_view name) override {
    return std::unique_ptr<StoreLock>(new SqliteLock(locks_, std::string(name)));
  }

  absl::StatusOr<std::optional<std::string>> GetSetting(std::string_view key) override {
    const std::string what = absl::StrCat("reading setting \"", AbslView(key), "\"");
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(
        Statement select,
        Statement::Prepare(db_, "SELECT value FROM settings WHERE key = ?1", what));
    select.BindText(1, key);
    ASSIGN_OR_RETURN(const bool row, select.Step());
    if (!row) return std::optional<std::string>();
    return std::optional<std::string>(select.ColumnText(0));
  }

  // Inserts or overwrites the setting (a single auto-committed statement).
  absl::Status PutSetting(std::string_view key, std::string_view value) override {
    const std::string what = absl::StrCat("writing setting \"", AbslView(key), "\"");
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(
        Statement upsert,
        Statement::Prepare(db_,
                           "INSERT INTO settings (key, value) VALUES (?1, ?2) "
                           "ON CONFLICT (key) DO UPDATE SET "
                           "value = excluded.value",
                           what));
    upsert.BindText(1, key);
    upsert.BindText(2, value);
    return upsert.Run();
  }

  int schema_version() const override { return schema_version_; }

 private:
  // Runs sql (one parameter, ?1 = param) whose rows are (text key, integer value).
  absl::StatusOr<std::map<std::string, int64_t>> KeyedInts(const char* sql,
                                                           std::string_view param,
                                                           const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    ASSIGN_OR_RETURN(Statement select, Statement::Prepare(db_, sql, what));
    select.BindText(1, param);
    std::map<std::string, int64_t> values;
    while (true) {
      ASSIGN_OR_RETURN(const bool row, select.Step());
      if (!row) break;
      values[select.ColumnText(0)] = select.ColumnInt(1);
    }
    return values;
  }

  // Whether the device row exists; the caller holds mu_.
  absl::StatusOr<bool> DeviceExists(std::string_view name) {
    ASSIGN_OR_RETURN(
        Statement select,
        Statement::Prepare(db_, "SELECT 1 FROM devices WHERE name = ?1",
                           absl::StrCat("looking up device \"", AbslView(name), "\"")));
    select.BindText(1, name);
    return select.Step();
  }

  std::mutex mu_;
  sqlite3* const db_;  // guarded by mu_
  const std::shared_ptr<NamedLocks> locks_ = std::make_shared<NamedLocks>();
  const int schema_version_;
};

// Closes a connection that never made it into a SqliteStore.
struct ConnectionCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};

}  // namespace

// Creates parent directories, opens the file, configures the connection (WAL,
// synchronous=FULL, foreign keys, busy timeout) and migrates the schema.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(std::string_view path,
                                                       const SqliteOptions& options) {
  if (path.empty()) return absl::InvalidArgumentError("SQLite store path is empty");
  const std::string file(path);
  const std::filesystem::path parent = std::filesystem::path(file).parent_path();
  if (!parent.empty()) {
    std::error_code error;
    std::filesystem::create_directories(parent, error);
    if (error) {
      return absl::InternalError(absl::StrCat("creating directory ", parent.string(),
                                              " for store ", file, ": ",
                                              error.message()));
    }
  }
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(
      file.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<sqlite3, ConnectionCloser> db(raw);
  if (rc != SQLITE_OK) return SqliteError(raw, rc, absl::StrCat("opening ", file));
  sqlite3_extended_result_codes(raw, 1);

  const std::string configuring = absl::StrCat("configuring ", file);
  RETURN_IF_ERROR(Exec(raw, "PRAGMA busy_timeout = 5000", configuring));
  {
    ASSIGN_OR_RETURN(Statement wal,
                     Statement::Prepare(raw, "PRAGMA journal_mode = WAL", configuring));
    ASSIGN_OR_RETURN(const bool row, wal.Step());
    const std::string mode = row ? wal.ColumnText(0) : std::string();
    if (mode != "wal") {
      return absl::InternalError(
          absl::StrCat("sqlite: ", configuring,
                       ": could not enable WAL journal (mode is \"", mode, "\")"));
    }
  }
  // journal_size_limit truncates the WAL after a checkpoint so that one bulk import does
  // not leave a WAL file of its size behind.
  RETURN_IF_ERROR(Exec(raw,
                       "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; "
                       "PRAGMA journal_size_limit = 67108864",
                       configuring));
  ASSIGN_OR_RETURN(const int version, Migrate(raw, file));
  if (options.max_page_count > 0) {
    RETURN_IF_ERROR(Exec(
        raw, absl::StrCat("PRAGMA max_page_count = ", options.max_page_count).c_str(),
        configuring));
  }
  return std::make_unique<SqliteStore>(db.release(), version);
}

}  // namespace latpred::store
