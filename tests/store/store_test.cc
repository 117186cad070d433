// Tests of the Store through OpenStore, run unchanged against SQLite and a real
// PostgreSQL server: persistence, upsert and replace semantics, model versions, locks,
// schema versioning, concurrency, bulk inserts and durability across a crashing writer
// process. Then what only one back end has: SQLite's file and URI handling, PostgreSQL's
// connection errors.
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "latpred/store/store.h"
#include "sqlite_store.h"
#include "test_postgres.h"

namespace latpred::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

MATCHER(IsOk, "") { return arg.ok(); }

// Field-wise equality of samples for EXPECT_EQ on vectors.
bool SameSample(const Sample& a, const Sample& b) {
  return a.arch == b.arch && a.latency_ms == b.latency_ms && a.repeats == b.repeats &&
         a.spread_ms == b.spread_ms;
}

MATCHER_P(SamplesAre, expected, "") {
  if (arg.size() != expected.size()) return false;
  for (size_t i = 0; i < arg.size(); ++i) {
    if (!SameSample(arg[i], expected[i])) return false;
  }
  return true;
}

// The schema version this build migrates to (3: request_ids).
constexpr int kLatestSchema = 3;

// A fresh SQLite file (in a fresh directory) or a fresh PostgreSQL database per test.
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  bool IsPostgres() const { return GetParam() == "postgresql"; }

  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "latpred_store_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    if (IsPostgres()) {
      absl::StatusOr<testing::TestPostgres*> server = testing::TestPostgres::Shared();
      if (!server.ok()) GTEST_SKIP() << server.status();
      postgres_ = *server;
      absl::StatusOr<std::string> uri = postgres_->CreateDatabase();
      ASSERT_TRUE(uri.ok()) << uri.status();
      uri_ = *uri;
      database_ = uri_.substr(uri_.find("@/") + 2);
      database_ = database_.substr(0, database_.find('?'));
    } else {
      uri_ = DbPath();
    }
  }
  void TearDown() override {
    std::filesystem::remove_all(dir_);
    if (postgres_ != nullptr && !database_.empty()) {
      (void)postgres_->Psql("postgres", "DROP DATABASE IF EXISTS " + database_ +
                                            " WITH (FORCE)");
    }
  }

  std::string DbPath() const { return (dir_ / "store.db").string(); }
  const std::string& Uri() const { return uri_; }

  // Opens the test store, failing the test when that fails.
  std::unique_ptr<Store> Open() {
    absl::StatusOr<std::unique_ptr<Store>> store = OpenStore(uri_);
    EXPECT_THAT(store.status(), IsOk()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  // Runs one SQL statement on the database, bypassing the store.
  void RawExec(const std::string& sql) {
    if (IsPostgres()) {
      absl::StatusOr<std::string> out = postgres_->Psql(database_, sql);
      EXPECT_TRUE(out.ok()) << out.status();
      return;
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << (error ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
  }

  // Reads the first column of the first row of a query, bypassing the store.
  std::string RawQueryText(const std::string& sql) {
    if (IsPostgres()) {
      absl::StatusOr<std::string> out = postgres_->Psql(database_, sql);
      EXPECT_TRUE(out.ok()) << out.status();
      std::string value = out.value_or("");
      value = value.substr(0, value.find('\n'));
      return value;
    }
    sqlite3* db = nullptr;
    sqlite3_stmt* stmt = nullptr;
    std::string value;
    EXPECT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
  }
  int64_t RawQueryInt(const std::string& sql) { return std::stoll(RawQueryText(sql)); }

  // Sets the stored schema version behind the store's back.
  void SetRawSchemaVersion(int version) {
    RawExec(IsPostgres() ? absl::StrCat("UPDATE latpred_schema SET version = ", version)
                         : absl::StrCat("PRAGMA user_version = ", version));
  }
  int64_t RawSchemaVersion() {
    return RawQueryInt(IsPostgres() ? "SELECT version FROM latpred_schema"
                                    : "PRAGMA user_version");
  }

  std::filesystem::path dir_;
  std::string uri_;
  testing::TestPostgres* postgres_ = nullptr;
  std::string database_;
};

// What only SQLite has: the file behind the store.
class SqliteStoreTest : public StoreTest {};

Device MakeDevice(const std::string& name) {
  Device device;
  device.name = name;
  device.labels = {{"vendor", "ACME \"turbo\" \\ edition"},
                   {"note", "line one\nline two\ttabbed\x01\x1f"},
                   {"unicode", "Gerät ✓ 😀"},
                   {"", "empty key"}};
  device.descriptor = {{"l2_bandwidth", 812.5, "microbenchmark", "GB/s"},
                       {"ipc", 1.75, "counter", ""},
                       {"nb201:|nor_conv_3x3~0|", 3.25, "reference_latency", "ms"}};
  return device;
}

std::vector<Sample> MakeSamples(const std::string& prefix, int count) {
  std::vector<Sample> samples;
  for (int i = 0; i < count; ++i) {
    samples.push_back(Sample{absl::StrCat(prefix, i), 1.0 + i * 0.5, 10 + i, 0.01 * i});
  }
  return samples;
}

ModelRecord MakeModel(const std::string& device, const std::string& space,
                      const std::string& blob) {
  ModelRecord model;
  model.device = device;
  model.space = space;
  model.base_version = 3;
  model.blob = blob;
  model.meta_json = R"({"fit_mape":0.05})";
  return model;
}

TEST_P(StoreTest, ReopenPersistsEverything) {
  const Device device = MakeDevice("pixel-7");
  const std::vector<Sample> samples = MakeSamples("arch-", 5);
  const std::string blob("\0\x01\xff model bytes", 16);
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    absl::StatusOr<bool> created = store->UpsertDevice(device);
    ASSERT_THAT(created.status(), IsOk()) << created.status();
    EXPECT_TRUE(*created);
    ASSERT_THAT(store->PutSamples("pixel-7", "nb201", samples), IsOk());
    ASSERT_THAT(store->PutModel(MakeModel("pixel-7", "nb201", blob)).status(), IsOk());
    ASSERT_THAT(store->PutModel(MakeModel("", "nb201", "base")).status(), IsOk());
    ASSERT_THAT(store->PutSetting("imported", "eagle-v1"), IsOk());
  }
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);

  absl::StatusOr<Device> got = store->GetDevice("pixel-7");
  ASSERT_THAT(got.status(), IsOk()) << got.status();
  EXPECT_EQ(got->name, "pixel-7");
  EXPECT_EQ(got->labels, device.labels);
  EXPECT_EQ(got->descriptor, device.descriptor);
  EXPECT_FALSE(got->source);
  EXPECT_GT(got->created_unix_ms, 0);
  EXPECT_EQ(got->created_unix_ms, got->updated_unix_ms);

  absl::StatusOr<std::vector<Device>> all = store->ListDevices();
  ASSERT_THAT(all.status(), IsOk());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].labels, device.labels);
  EXPECT_EQ((*all)[0].descriptor, device.descriptor);

  absl::StatusOr<std::vector<Sample>> got_samples = store->GetSamples("pixel-7", "nb201");
  ASSERT_THAT(got_samples.status(), IsOk());
  EXPECT_THAT(*got_samples, SamplesAre(samples));

  absl::StatusOr<std::optional<ModelRecord>> model =
      store->GetLatestModel("pixel-7", "nb201");
  ASSERT_THAT(model.status(), IsOk());
  ASSERT_TRUE(model->has_value());
  EXPECT_EQ((*model)->version, 1);
  EXPECT_EQ((*model)->base_version, 3);
  EXPECT_EQ((*model)->blob, blob);
  EXPECT_EQ((*model)->meta_json, R"({"fit_mape":0.05})");
  EXPECT_GT((*model)->created_unix_ms, 0);
  absl::StatusOr<std::optional<ModelRecord>> base = store->GetLatestModel("", "nb201");
  ASSERT_THAT(base.status(), IsOk());
  ASSERT_TRUE(base->has_value());
  EXPECT_EQ((*base)->blob, "base");

  absl::StatusOr<std::optional<std::string>> setting = store->GetSetting("imported");
  ASSERT_THAT(setting.status(), IsOk());
  EXPECT_EQ(*setting, std::optional<std::string>("eagle-v1"));
  absl::StatusOr<std::optional<std::string>> missing = store->GetSetting("nope");
  ASSERT_THAT(missing.status(), IsOk());
  EXPECT_FALSE(missing->has_value());
}

TEST_P(StoreTest, EmptyLabelsAndDescriptorRoundTrip) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  Device device;
  device.name = "bare";
  device.source = true;
  ASSERT_THAT(store->UpsertDevice(device).status(), IsOk());
  absl::StatusOr<Device> got = store->GetDevice("bare");
  ASSERT_THAT(got.status(), IsOk());
  EXPECT_TRUE(got->labels.empty());
  EXPECT_TRUE(got->descriptor.empty());
  EXPECT_TRUE(got->source);
}

TEST_P(StoreTest, DecodesAnyJsonSpellingOfLabels) {
  { ASSERT_NE(Open(), nullptr); }
  RawExec(
      "INSERT INTO devices VALUES ('hand', "
      "' { \"a\\/b\" : \"x\\n\\r\\t\\b\\f\\\"\\\\\\u00e9\\u2713\\ud83d\\ude00\" ,"
      "\"n\":\"\\u0000\"}', 0, 1, 2)");
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<Device> got = store->GetDevice("hand");
  ASSERT_THAT(got.status(), IsOk()) << got.status();
  EXPECT_THAT(got->labels, ElementsAre(Pair("a/b", "x\n\r\t\b\f\"\\é✓😀"),
                                       Pair("n", std::string(1, '\0'))));
  EXPECT_EQ(got->created_unix_ms, 1);
  EXPECT_EQ(got->updated_unix_ms, 2);
}

TEST_P(StoreTest, CorruptLabelsJsonIsInternal) {
  { ASSERT_NE(Open(), nullptr); }
  RawExec("INSERT INTO devices VALUES ('bad', '{\"a\":1}', 0, 1, 1)");
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<Device> got = store->GetDevice("bad");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(got.status().message(), HasSubstr("bad"));
}

TEST_P(StoreTest, UpsertKeepsSamplesAndCreatedAndReplacesDescriptor) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->UpsertDevice(MakeDevice("d")).status(), IsOk());
  ASSERT_THAT(store->PutSamples("d", "nb201", MakeSamples("a", 3)), IsOk());
  absl::StatusOr<Device> before = store->GetDevice("d");
  ASSERT_THAT(before.status(), IsOk());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));

  Device update;
  update.name = "d";
  update.labels = {{"k", "v"}};
  update.descriptor = {{"only", 2.0, "counter", "x"}};
  update.source = true;
  absl::StatusOr<bool> created = store->UpsertDevice(update);
  ASSERT_THAT(created.status(), IsOk());
  EXPECT_FALSE(*created);

  absl::StatusOr<Device> after = store->GetDevice("d");
  ASSERT_THAT(after.status(), IsOk());
  EXPECT_EQ(after->labels, update.labels);
  EXPECT_EQ(after->descriptor, update.descriptor);
  EXPECT_TRUE(after->source);
  EXPECT_EQ(after->created_unix_ms, before->created_unix_ms);
  EXPECT_GT(after->updated_unix_ms, before->updated_unix_ms);
  absl::StatusOr<std::vector<Sample>> samples = store->GetSamples("d", "nb201");
  ASSERT_THAT(samples.status(), IsOk());
  EXPECT_EQ(samples->size(), 3u);
}

TEST_P(StoreTest, RejectsDuplicateDescriptorFeature) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  Device device = MakeDevice("d");
  device.descriptor.push_back(device.descriptor[0]);
  EXPECT_EQ(store->UpsertDevice(device).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->GetDevice("d").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, PutSamplesReplacesPerArchAndSpace) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->UpsertDevice(MakeDevice("d")).status(), IsOk());
  ASSERT_THAT(store->PutSamples("d", "nb201", {{"b", 2, 1, 0}, {"a", 1, 1, 0}}), IsOk());
  ASSERT_THAT(store->PutSamples("d", "fbnet", {{"a", 7, 1, 0}}), IsOk());
  ASSERT_THAT(store->PutSamples("d", "nb201", {{"a", 5, 9, 0.5}, {"c", 3, 1, 0}}),
              IsOk());

  absl::StatusOr<std::vector<Sample>> nb201 = store->GetSamples("d", "nb201");
  ASSERT_THAT(nb201.status(), IsOk());
  EXPECT_THAT(*nb201, SamplesAre(std::vector<Sample>{
                          {"a", 5, 9, 0.5}, {"b", 2, 1, 0}, {"c", 3, 1, 0}}));
  absl::StatusOr<std::vector<Sample>> fbnet = store->GetSamples("d", "fbnet");
  ASSERT_THAT(fbnet.status(), IsOk());
  EXPECT_THAT(*fbnet, SamplesAre(std::vector<Sample>{{"a", 7, 1, 0}}));

  // Within one batch the last sample of an arch wins.
  ASSERT_THAT(
      store->PutSamples("d", "fbnet", {{"b", 1, 1, 0}, {"a", 8, 1, 0}, {"b", 9, 2, 0}}),
      IsOk());
  fbnet = store->GetSamples("d", "fbnet");
  ASSERT_THAT(fbnet.status(), IsOk());
  EXPECT_THAT(*fbnet, SamplesAre(std::vector<Sample>{{"a", 8, 1, 0}, {"b", 9, 2, 0}}));

  ASSERT_THAT(store->UpsertDevice(MakeDevice("e")).status(), IsOk());
  ASSERT_THAT(store->PutSamples("e", "nb201", {{"z", 1, 1, 0}}), IsOk());
  absl::StatusOr<std::map<std::string, int64_t>> counts = store->CountSamples("d");
  ASSERT_THAT(counts.status(), IsOk());
  EXPECT_THAT(*counts, ElementsAre(Pair("fbnet", 2), Pair("nb201", 3)));
  absl::StatusOr<std::map<std::string, std::map<std::string, int64_t>>> all =
      store->CountAllSamples();
  ASSERT_THAT(all.status(), IsOk());
  EXPECT_THAT(*all,
              ElementsAre(Pair("d", ElementsAre(Pair("fbnet", 2), Pair("nb201", 3))),
                          Pair("e", ElementsAre(Pair("nb201", 1)))));
}

// The counts kept on write agree with the samples table after new, replaced and
// duplicate samples, in every view that reads them.
TEST_P(StoreTest, SampleCountsFollowEverySubmit) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  for (const char* name : {"a", "b", "c"}) {
    ASSERT_THAT(store->UpsertDevice(MakeDevice(name)).status(), IsOk());
  }
  Device source = MakeDevice("s");
  source.source = true;
  ASSERT_THAT(store->UpsertDevice(source).status(), IsOk());
  ASSERT_THAT(store->PutSamples("a", "nb201", MakeSamples("x", 10)), IsOk());
  ASSERT_THAT(store->PutSamples("a", "nb201", MakeSamples("x", 4)), IsOk());   // replaces
  ASSERT_THAT(store->PutSamples("a", "nb201", MakeSamples("x", 15)), IsOk());  // 5 new
  ASSERT_THAT(store->PutSamples("a", "fbnet", {{"f", 1, 1, 0}, {"f", 2, 1, 0}}), IsOk());
  ASSERT_THAT(store->PutSamples("b", "nb201", MakeSamples("y", 3)), IsOk());
  ASSERT_THAT(store->PutSamples("s", "nb201", MakeSamples("z", 7)), IsOk());
  ASSERT_THAT(store->PutSamples("b", "nb201", {}), IsOk());
  EXPECT_EQ(store->PutSamples("ghost", "nb201", MakeSamples("g", 2)).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store
                ->PutSamples("b", "nb201",
                             {{"new", 1, 1, 0},
                              {"bad", std::numeric_limits<double>::infinity(), 1, 0}})
                .code(),
            absl::StatusCode::kInvalidArgument);

  const std::map<std::string, int64_t> a = {{"fbnet", 1}, {"nb201", 15}};
  absl::StatusOr<std::map<std::string, int64_t>> counts = store->CountSamples("a");
  ASSERT_THAT(counts.status(), IsOk());
  EXPECT_EQ(*counts, a);
  counts = store->CountSamples("c");
  ASSERT_THAT(counts.status(), IsOk());
  EXPECT_TRUE(counts->empty());
  absl::StatusOr<std::map<std::string, std::map<std::string, int64_t>>> all =
      store->CountAllSamples();
  ASSERT_THAT(all.status(), IsOk());
  EXPECT_EQ(*all, (std::map<std::string, std::map<std::string, int64_t>>{
                      {"a", a}, {"b", {{"nb201", 3}}}, {"s", {{"nb201", 7}}}}));
  EXPECT_EQ(RawQueryInt("SELECT COUNT(*) FROM samples"), 26);

  absl::StatusOr<std::vector<Device>> devices = store->ListDevices();
  ASSERT_THAT(devices.status(), IsOk());
  ASSERT_EQ(devices->size(), 4u);
  EXPECT_EQ((*devices)[0].sample_counts, a);
  EXPECT_EQ((*devices)[1].sample_counts, (std::map<std::string, int64_t>{{"nb201", 3}}));
  EXPECT_TRUE((*devices)[2].sample_counts.empty());
  EXPECT_EQ((*devices)[3].sample_counts, (std::map<std::string, int64_t>{{"nb201", 7}}));

  absl::StatusOr<StoreTotals> totals = store->Totals();
  ASSERT_THAT(totals.status(), IsOk());
  EXPECT_EQ(totals->source_devices, 1);
  EXPECT_EQ(totals->registered_devices, 3);
  EXPECT_EQ(totals->samples, (std::map<std::string, int64_t>{{"fbnet", 1}, {"nb201", 25}}));

  // Kept across reopening.
  store = Open();
  ASSERT_NE(store, nullptr);
  counts = store->CountSamples("a");
  ASSERT_THAT(counts.status(), IsOk());
  EXPECT_EQ(*counts, a);
}

// Writers of one device and space on separate connections (separate replicas for
// PostgreSQL), with overlapping architectures: each architecture is counted once.
TEST_P(StoreTest, ConcurrentOverlappingSubmitsCountEachArchOnce) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 10;
  std::vector<std::unique_ptr<Store>> stores;
  for (int t = 0; t < kThreads; ++t) {
    stores.push_back(Open());
    ASSERT_NE(stores.back(), nullptr);
  }
  ASSERT_THAT(stores[0]->UpsertDevice(MakeDevice("d")).status(), IsOk());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        // Round r writes archs r*5 .. r*5+19: every thread, and the next rounds, overlap.
        std::vector<Sample> samples;
        for (int i = r * 5; i < r * 5 + 20; ++i) {
          samples.push_back(Sample{absl::StrCat("arch-", i), 1.0 + t, 1, 0});
        }
        EXPECT_THAT(stores[t]->PutSamples("d", "nb201", samples), IsOk());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const int64_t distinct = (kRounds - 1) * 5 + 20;
  EXPECT_EQ(RawQueryInt("SELECT COUNT(*) FROM samples"), distinct);
  absl::StatusOr<std::map<std::string, int64_t>> counts = stores[0]->CountSamples("d");
  ASSERT_THAT(counts.status(), IsOk());
  EXPECT_EQ(*counts, (std::map<std::string, int64_t>{{"nb201", distinct}}));
}

// ListDevices pages: name order, `after` and `limit`, registered_only, and each page's
// descriptors and counts on the right devices; the pages together are the whole list.
TEST_P(StoreTest, ListDevicesPagesInNameOrder) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  std::vector<std::string> names;
  for (int i = 0; i < 11; ++i) {
    Device device = MakeDevice(std::string("dev-") + static_cast<char>('k' - i));
    device.source = i % 3 == 0;
    device.descriptor.push_back({"index", static_cast<double>(i), "counter", ""});
    ASSERT_THAT(store->UpsertDevice(device).status(), IsOk());
    ASSERT_THAT(store->PutSamples(device.name, "nb201", MakeSamples("a", i + 1)), IsOk());
    names.push_back(device.name);
  }
  Device upper = MakeDevice("Dev-upper");  // 'D' sorts before 'd' byte-wise
  ASSERT_THAT(store->UpsertDevice(upper).status(), IsOk());
  names.push_back(upper.name);
  std::sort(names.begin(), names.end());

  for (const bool registered_only : {false, true}) {
    SCOPED_TRACE(registered_only ? "registered_only" : "all");
    absl::StatusOr<std::vector<Device>> whole =
        store->ListDevices(DeviceQuery{"", 0, registered_only});
    ASSERT_THAT(whole.status(), IsOk());
    ASSERT_EQ(whole->size(), registered_only ? 8u : 12u);
    EXPECT_EQ((*whole)[0].name, "Dev-upper");
    std::vector<std::string> paged;
    DeviceQuery query{"", 3, registered_only};
    for (int page = 0; page < 10; ++page) {
      absl::StatusOr<std::vector<Device>> got = store->ListDevices(query);
      ASSERT_THAT(got.status(), IsOk());
      ASSERT_LE(got->size(), 3u);
      for (const Device& device : *got) {
        if (registered_only) {
          EXPECT_FALSE(device.source) << device.name;
        }
        paged.push_back(device.name);
        if (device.name == "Dev-upper") {
          EXPECT_TRUE(device.sample_counts.empty());
          EXPECT_EQ(device.descriptor, upper.descriptor);
          continue;
        }
        const int i = 'k' - device.name.back();
        EXPECT_EQ(device.source, i % 3 == 0) << device.name;
        ASSERT_EQ(device.descriptor.size(), 4u) << device.name;
        EXPECT_EQ(device.descriptor[3].value, i) << device.name;
        EXPECT_EQ(device.sample_counts,
                  (std::map<std::string, int64_t>{{"nb201", i + 1}}))
            << device.name;
      }
      if (got->size() < 3) break;
      query.after = got->back().name;
    }
    std::vector<std::string> expected;
    for (const Device& device : *whole) expected.push_back(device.name);
    EXPECT_EQ(paged, expected);
    if (!registered_only) {
      EXPECT_EQ(expected, names);
    }
  }
  absl::StatusOr<std::vector<Device>> past = store->ListDevices(DeviceQuery{"zzz", 5, false});
  ASSERT_THAT(past.status(), IsOk());
  EXPECT_TRUE(past->empty());
}

// A database at schema version 1 (no kept counts) gains them from its samples when a
// newer build opens it.
TEST_P(StoreTest, MigrationFromVersionOneCountsExistingSamples) {
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    for (const char* name : {"a", "b"}) {
      ASSERT_THAT(store->UpsertDevice(MakeDevice(name)).status(), IsOk());
    }
    ASSERT_THAT(store->PutSamples("a", "nb201", MakeSamples("x", 12)), IsOk());
    ASSERT_THAT(store->PutSamples("a", "fbnet", MakeSamples("x", 2)), IsOk());
    ASSERT_THAT(store->PutSamples("b", "nb201", MakeSamples("y", 5)), IsOk());
  }
  // What version 1 looked like: the same tables without sample_counts (and without
  // request_ids, which version 3 adds).
  RawExec("DROP TABLE sample_counts");
  RawExec("DROP TABLE request_ids");
  SetRawSchemaVersion(1);
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), kLatestSchema);
  EXPECT_EQ(RawSchemaVersion(), kLatestSchema);
  absl::StatusOr<std::map<std::string, std::map<std::string, int64_t>>> all =
      store->CountAllSamples();
  ASSERT_THAT(all.status(), IsOk());
  EXPECT_EQ(*all, (std::map<std::string, std::map<std::string, int64_t>>{
                      {"a", {{"fbnet", 2}, {"nb201", 12}}}, {"b", {{"nb201", 5}}}}));
  // And keeps them from then on.
  ASSERT_THAT(store->PutSamples("b", "nb201", MakeSamples("z", 3)), IsOk());
  absl::StatusOr<std::map<std::string, int64_t>> b = store->CountSamples("b");
  ASSERT_THAT(b.status(), IsOk());
  EXPECT_EQ(*b, (std::map<std::string, int64_t>{{"nb201", 8}}));
}

SubmitRecord MakeRecord(const std::string& id, const std::string& fingerprint, int accepted) {
  SubmitRecord record;
  record.request_id = id;
  record.space = "nb201";
  record.fingerprint = fingerprint;
  record.accepted = accepted;
  record.rejected = 1;
  return record;
}

// The real case of a retry: a batch stored with a request id, a newer measurement of one
// of its architectures, then the batch again with the same id (its answer was lost).
// The retry stores nothing (the newer latency stays) and gets the first call's record.
TEST_P(StoreTest, PutSamplesOnceStoresARequestIdOnce) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->UpsertDevice(MakeDevice("dev")).status(), IsOk());
  ASSERT_THAT(store->UpsertDevice(MakeDevice("other")).status(), IsOk());
  const std::vector<Sample> batch = MakeSamples("a", 3);
  absl::StatusOr<std::optional<SubmitRecord>> none = store->GetSubmitRecord("dev", "r-1");
  ASSERT_THAT(none.status(), IsOk());
  EXPECT_FALSE(none->has_value());
  absl::StatusOr<std::optional<SubmitRecord>> first =
      store->PutSamplesOnce("dev", "nb201", batch, MakeRecord("r-1", "fp", 3));
  ASSERT_THAT(first.status(), IsOk());
  EXPECT_FALSE(first->has_value());
  const std::vector<Sample> newer = {Sample{"a0", 99.0, 5, 0.5}};
  ASSERT_THAT(store->PutSamples("dev", "nb201", newer), IsOk());

  absl::StatusOr<std::optional<SubmitRecord>> retry =
      store->PutSamplesOnce("dev", "nb201", batch, MakeRecord("r-1", "fp", 3));
  ASSERT_THAT(retry.status(), IsOk());
  ASSERT_TRUE(retry->has_value());
  EXPECT_EQ((*retry)->request_id, "r-1");
  EXPECT_EQ((*retry)->space, "nb201");
  EXPECT_EQ((*retry)->fingerprint, "fp");
  EXPECT_EQ((*retry)->accepted, 3);
  EXPECT_EQ((*retry)->rejected, 1);
  EXPECT_GT((*retry)->created_unix_ms, 0);
  absl::StatusOr<std::vector<Sample>> stored = store->GetSamples("dev", "nb201");
  ASSERT_THAT(stored.status(), IsOk());
  EXPECT_THAT(*stored, SamplesAre(std::vector<Sample>{newer[0], batch[1], batch[2]}));
  EXPECT_EQ(RawQueryInt("SELECT COUNT(*) FROM request_ids"), 1);
  EXPECT_EQ(store->CountSamples("dev")->at("nb201"), 3);

  absl::StatusOr<std::optional<SubmitRecord>> found = store->GetSubmitRecord("dev", "r-1");
  ASSERT_THAT(found.status(), IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->created_unix_ms, (*retry)->created_unix_ms);
  EXPECT_FALSE(store->GetSubmitRecord("dev", "r-2")->has_value());
  // Ids are per device: another device's batch with the same id is stored.
  EXPECT_FALSE(store->GetSubmitRecord("other", "r-1")->has_value());
  absl::StatusOr<std::optional<SubmitRecord>> other =
      store->PutSamplesOnce("other", "nb201", batch, MakeRecord("r-1", "fp", 3));
  ASSERT_THAT(other.status(), IsOk());
  EXPECT_FALSE(other->has_value());
  EXPECT_EQ(store->CountSamples("other")->at("nb201"), 3);
  // An unknown device stores no id.
  EXPECT_EQ(store->PutSamplesOnce("nobody", "nb201", batch, MakeRecord("r-3", "fp", 3))
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(RawQueryInt("SELECT COUNT(*) FROM request_ids"), 2);
}

// Calls racing with one request id (a retry sent while the first is still running, on
// this replica or another) store the batch once: one stores, the others get its record.
TEST_P(StoreTest, ConcurrentPutSamplesOnceWithOneIdStoreOnce) {
  constexpr int kWriters = 6;
  std::vector<std::unique_ptr<Store>> stores;
  for (int i = 0; i < kWriters; ++i) {
    stores.push_back(Open());
    ASSERT_NE(stores.back(), nullptr);
  }
  ASSERT_THAT(stores[0]->UpsertDevice(MakeDevice("dev")).status(), IsOk());
  std::atomic<int> stored{0}, replayed{0}, failed{0};
  std::vector<std::thread> writers;
  for (int i = 0; i < kWriters; ++i) {
    writers.emplace_back([&, i] {
      // Each writer's batch has archs of its own, so what is stored shows who stored.
      absl::StatusOr<std::optional<SubmitRecord>> result = stores[i]->PutSamplesOnce(
          "dev", "nb201", MakeSamples(absl::StrCat("w", i, "-"), 4), MakeRecord("same", "fp", 4));
      if (!result.ok()) {
        ++failed;
      } else if (result->has_value()) {
        ++replayed;
      } else {
        ++stored;
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(stored.load(), 1);
  EXPECT_EQ(replayed.load(), kWriters - 1);
  EXPECT_EQ(stores[0]->GetSamples("dev", "nb201")->size(), 4u);
  EXPECT_EQ(stores[0]->CountSamples("dev")->at("nb201"), 4);
  EXPECT_EQ(RawQueryInt("SELECT COUNT(*) FROM request_ids"), 1);
}

// A device keeps its newest kRequestIdsPerDevice ids: storing one more forgets the
// oldest, in the same transaction; other devices' ids are untouched.
TEST_P(StoreTest, KeepsTheNewestRequestIdsPerDevice) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->UpsertDevice(MakeDevice("dev")).status(), IsOk());
  ASSERT_THAT(store->UpsertDevice(MakeDevice("other")).status(), IsOk());
  ASSERT_THAT(
      store->PutSamplesOnce("other", "nb201", MakeSamples("o", 1), MakeRecord("o-1", "fp", 1))
          .status(),
      IsOk());
  // The device's ids old-1 (oldest) to old-N, written behind the store's back.
  const std::string fill = absl::StrCat(
      IsPostgres() ? "INSERT INTO request_ids SELECT 'dev', 'old-' || i, i, 'nb201', 'fp', "
                     "1, 0, 0 FROM generate_series(1, "
                   : "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE "
                     "i < ",
      kRequestIdsPerDevice,
      IsPostgres() ? ") AS i"
                   : ") INSERT INTO request_ids SELECT 'dev', 'old-' || i, i, 'nb201', "
                     "'fp', 1, 0, 0 FROM n");
  RawExec(fill);
  ASSERT_EQ(RawQueryInt("SELECT COUNT(*) FROM request_ids WHERE device = 'dev'"),
            kRequestIdsPerDevice);
  EXPECT_TRUE(store->GetSubmitRecord("dev", "old-1")->has_value());
  ASSERT_THAT(
      store->PutSamplesOnce("dev", "nb201", MakeSamples("a", 2), MakeRecord("new", "fp", 2))
          .status(),
      IsOk());
  EXPECT_EQ(RawQueryInt("SELECT COUNT(*) FROM request_ids WHERE device = 'dev'"),
            kRequestIdsPerDevice);
  EXPECT_FALSE(store->GetSubmitRecord("dev", "old-1")->has_value());
  EXPECT_TRUE(store->GetSubmitRecord("dev", "old-2")->has_value());
  EXPECT_TRUE(store->GetSubmitRecord("dev", "new")->has_value());
  EXPECT_TRUE(store->GetSubmitRecord("other", "o-1")->has_value());
  // A forgotten id is a new batch again.
  absl::StatusOr<std::optional<SubmitRecord>> again =
      store->PutSamplesOnce("dev", "nb201", MakeSamples("b", 1), MakeRecord("old-1", "fp", 1));
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_FALSE(again->has_value());
  EXPECT_FALSE(store->GetSubmitRecord("dev", "old-2")->has_value());
}

// A database at schema version 2 (no request_ids) gains the table when a newer build
// opens it, keeping its samples and counts.
TEST_P(StoreTest, MigrationFromVersionTwoAddsRequestIds) {
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->UpsertDevice(MakeDevice("dev")).status(), IsOk());
    ASSERT_THAT(store->PutSamples("dev", "nb201", MakeSamples("x", 5)), IsOk());
  }
  // What version 2 looked like: the same tables without request_ids.
  RawExec("DROP TABLE request_ids");
  SetRawSchemaVersion(2);
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), kLatestSchema);
  EXPECT_EQ(RawSchemaVersion(), kLatestSchema);
  EXPECT_EQ(store->CountSamples("dev")->at("nb201"), 5);
  EXPECT_EQ(store->GetSamples("dev", "nb201")->size(), 5u);
  ASSERT_THAT(
      store->PutSamplesOnce("dev", "nb201", MakeSamples("y", 2), MakeRecord("r", "fp", 2))
          .status(),
      IsOk());
  absl::StatusOr<std::optional<SubmitRecord>> retry =
      store->PutSamplesOnce("dev", "nb201", MakeSamples("y", 2), MakeRecord("r", "fp", 2));
  ASSERT_THAT(retry.status(), IsOk());
  EXPECT_TRUE(retry->has_value());
  EXPECT_EQ(store->CountSamples("dev")->at("nb201"), 7);
}

TEST_P(StoreTest, UnknownDeviceIsNotFound) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  absl::Status put = store->PutSamples("ghost", "nb201", {{"a", 1, 1, 0}});
  EXPECT_EQ(put.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(put.message(), HasSubstr("ghost"));
  absl::StatusOr<Device> get = store->GetDevice("ghost");
  EXPECT_EQ(get.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(get.status().message(), HasSubstr("ghost"));
}

TEST_P(StoreTest, NonFiniteLatencyIsInvalidAndStoresNothing) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->UpsertDevice(MakeDevice("d")).status(), IsOk());
  absl::Status put = store->PutSamples(
      "d", "nb201",
      {{"a", 1, 1, 0}, {"b", std::numeric_limits<double>::quiet_NaN(), 1, 0}});
  EXPECT_EQ(put.code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::vector<Sample>> samples = store->GetSamples("d", "nb201");
  ASSERT_THAT(samples.status(), IsOk());
  EXPECT_TRUE(samples->empty());
}

TEST_P(StoreTest, ModelVersionsIncreasePerDeviceAndSpace) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  auto put = [&](const std::string& device, const std::string& space) {
    absl::StatusOr<int64_t> version = store->PutModel(MakeModel(device, space, "m"));
    EXPECT_THAT(version.status(), IsOk());
    return version.value_or(-1);
  };
  EXPECT_EQ(put("", "nb201"), 1);
  EXPECT_EQ(put("", "nb201"), 2);
  EXPECT_EQ(put("", "fbnet"), 1);
  EXPECT_EQ(put("a", "nb201"), 1);
  EXPECT_EQ(put("a", "nb201"), 2);
  EXPECT_EQ(put("a", "nb201"), 3);
  EXPECT_EQ(put("b", "nb201"), 1);
  EXPECT_EQ(put("a", "fbnet"), 1);
  EXPECT_EQ(put("", "nb201"), 3);

  absl::StatusOr<std::optional<ModelRecord>> none = store->GetLatestModel("c", "nb201");
  ASSERT_THAT(none.status(), IsOk());
  EXPECT_FALSE(none->has_value());
}

TEST_P(StoreTest, LatestDeviceModelsAreNewestPerDeviceWithoutBase) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  for (const auto& [device, space, blob] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"", "nb201", "base1"},
           {"b", "nb201", "b1"},
           {"a", "nb201", "a1"},
           {"a", "nb201", "a2"},
           {"b", "fbnet", "bf1"},
           {"b", "fbnet", "bf2"},
           {"", "nb201", "base2"}}) {
    ASSERT_THAT(store->PutModel(MakeModel(device, space, blob)).status(), IsOk());
  }
  absl::StatusOr<std::vector<ModelRecord>> latest = store->GetLatestDeviceModels("nb201");
  ASSERT_THAT(latest.status(), IsOk());
  ASSERT_EQ(latest->size(), 2u);
  EXPECT_EQ((*latest)[0].device, "a");
  EXPECT_EQ((*latest)[0].version, 2);
  EXPECT_EQ((*latest)[0].blob, "a2");
  EXPECT_EQ((*latest)[1].device, "b");
  EXPECT_EQ((*latest)[1].version, 1);
  EXPECT_EQ((*latest)[1].blob, "b1");
  absl::StatusOr<std::vector<ModelRecord>> fbnet = store->GetLatestDeviceModels("fbnet");
  ASSERT_THAT(fbnet.status(), IsOk());
  ASSERT_EQ(fbnet->size(), 1u);
  EXPECT_EQ((*fbnet)[0].blob, "bf2");
  absl::StatusOr<std::vector<ModelRecord>> empty = store->GetLatestDeviceModels("none");
  ASSERT_THAT(empty.status(), IsOk());
  EXPECT_TRUE(empty->empty());
}

TEST_P(StoreTest, SettingsOverwrite) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->PutSetting("k", "1"), IsOk());
  ASSERT_THAT(store->PutSetting("k", "2"), IsOk());
  absl::StatusOr<std::optional<std::string>> value = store->GetSetting("k");
  ASSERT_THAT(value.status(), IsOk());
  EXPECT_EQ(*value, std::optional<std::string>("2"));
}

TEST_P(SqliteStoreTest, SchemaVersionIsLatestAndReopenDoesNotMigrate) {
  int version = 0;
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    version = store->schema_version();
    EXPECT_EQ(version, kLatestSchema);
  }
  EXPECT_EQ(RawQueryInt("PRAGMA user_version"), version);
  EXPECT_EQ(RawQueryText("PRAGMA journal_mode"), "wal");
  const int64_t schema_cookie = RawQueryInt("PRAGMA schema_version");
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->schema_version(), version);
  }
  // Any DDL (a re-run migration) would bump the schema cookie.
  EXPECT_EQ(RawQueryInt("PRAGMA schema_version"), schema_cookie);
  EXPECT_EQ(RawQueryInt("PRAGMA user_version"), version);
}

TEST_P(StoreTest, NewerSchemaIsFailedPrecondition) {
  { ASSERT_NE(Open(), nullptr); }
  SetRawSchemaVersion(99);
  absl::StatusOr<std::unique_ptr<Store>> store = OpenStore(Uri());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("99"));
  EXPECT_THAT(store.status().message(), HasSubstr("newer"));
}

TEST_P(SqliteStoreTest, NotADatabaseIsInternal) {
  FILE* file = fopen(DbPath().c_str(), "w");
  ASSERT_NE(file, nullptr);
  fputs("this is certainly not an SQLite database, just some text padding it out", file);
  fclose(file);
  absl::StatusOr<std::unique_ptr<Store>> store = OpenStore(DbPath());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(store.status().message(), HasSubstr("sqlite"));
}

TEST_P(SqliteStoreTest, UriForms) {
  const std::string nested = (dir_ / "a" / "b" / "c.db").string();
  absl::StatusOr<std::unique_ptr<Store>> store = OpenStore("sqlite:" + nested);
  ASSERT_THAT(store.status(), IsOk()) << store.status();
  ASSERT_THAT((*store)->PutSetting("k", "v"), IsOk());
  store->reset();
  EXPECT_TRUE(std::filesystem::exists(nested));
  absl::StatusOr<std::unique_ptr<Store>> plain = OpenStore(nested);
  ASSERT_THAT(plain.status(), IsOk());
  absl::StatusOr<std::optional<std::string>> value = (*plain)->GetSetting("k");
  ASSERT_THAT(value.status(), IsOk());
  EXPECT_EQ(*value, std::optional<std::string>("v"));

  absl::StatusOr<std::unique_ptr<Store>> bad = OpenStore("mysql://host/db");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("sqlite:PATH"));
  EXPECT_EQ(OpenStore("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenStore("sqlite:").status().code(), absl::StatusCode::kInvalidArgument);
}

// A full disk is RESOURCE_EXHAUSTED saying the store is out of space (it was INTERNAL),
// and the failed write leaves nothing behind. The database is capped at its current
// size (max_page_count) instead of filling a disk.
TEST_P(SqliteStoreTest, FullDiskIsResourceExhaustedAndStoresNothing) {
  ASSERT_THAT(Open()->UpsertDevice(MakeDevice("full-dev")), IsOk());
  SqliteOptions options;
  options.max_page_count = 1;  // below the file's size: its size
  absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(DbPath(), options);
  ASSERT_THAT(store.status(), IsOk()) << store.status();
  const absl::Status status =
      (*store)->PutSamples("full-dev", "nb201", MakeSamples(std::string(200, 'a'), 2000));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_THAT(status.message(), HasSubstr("out of space"));
  absl::StatusOr<std::vector<Sample>> samples = (*store)->GetSamples("full-dev", "nb201");
  ASSERT_THAT(samples.status(), IsOk()) << samples.status();
  EXPECT_TRUE(samples->empty());
}

TEST_P(StoreTest, ConcurrentWritersLoseNothing) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 25;
  std::unique_ptr<Store> shared = Open();
  ASSERT_NE(shared, nullptr);
  // Half the threads share one connection, the others each open their own, so both the
  // mutex and SQLite's file locking (busy_timeout) are exercised.
  std::vector<std::unique_ptr<Store>> own(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    if (t % 2 == 1) {
      own[t] = Open();
      ASSERT_NE(own[t], nullptr);
    }
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Store& store = own[t] ? *own[t] : *shared;
      const std::string name = absl::StrCat("dev", t);
      EXPECT_THAT(store.UpsertDevice(MakeDevice(name)).status(), IsOk());
      for (int r = 0; r < kRounds; ++r) {
        EXPECT_THAT(
            store.PutSamples(name, "nb201", MakeSamples(absl::StrCat("r", r, "-"), 10)),
            IsOk());
        EXPECT_THAT(store.PutModel(MakeModel("", "nb201", name)).status(), IsOk());
        EXPECT_THAT(store.PutSetting(absl::StrCat(name, "-", r), "x"), IsOk());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  absl::StatusOr<std::map<std::string, std::map<std::string, int64_t>>> counts =
      shared->CountAllSamples();
  ASSERT_THAT(counts.status(), IsOk());
  ASSERT_EQ(counts->size(), static_cast<size_t>(kThreads));
  for (const auto& [device, spaces] : *counts) {
    EXPECT_EQ(spaces.at("nb201"), kRounds * 10) << device;
  }
  absl::StatusOr<std::optional<ModelRecord>> latest = shared->GetLatestModel("", "nb201");
  ASSERT_THAT(latest.status(), IsOk());
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->version, kThreads * kRounds);
  EXPECT_EQ(RawQueryInt("SELECT COUNT(DISTINCT version) FROM models"),
            kThreads * kRounds);
  EXPECT_EQ(RawQueryInt("SELECT COUNT(*) FROM settings"), kThreads * kRounds);
}

TEST_P(StoreTest, LargeBatchInsertCompletes) {
  constexpr int kCount = 200000;
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->UpsertDevice(MakeDevice("bulk")).status(), IsOk());
  std::vector<Sample> samples;
  samples.reserve(kCount);
  for (int i = 0; i < kCount; ++i) {
    // NB201-like canonical strings, inserted out of order.
    const int64_t k = (int64_t{i} * 7919) % kCount;
    samples.push_back(
        Sample{absl::StrCat("|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|", k,
                            "~0|none~1|nor_conv_1x1~2|"),
               1.0 + k * 1e-4, 20, 0.01});
  }
  const auto start = std::chrono::steady_clock::now();
  ASSERT_THAT(store->PutSamples("bulk", "nb201", samples), IsOk());
  const double put_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto read_start = std::chrono::steady_clock::now();
  absl::StatusOr<std::vector<Sample>> got = store->GetSamples("bulk", "nb201");
  const double get_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - read_start)
          .count();
  ASSERT_THAT(got.status(), IsOk());
  EXPECT_EQ(got->size(), static_cast<size_t>(kCount));
  std::cout << "PutSamples of " << kCount << " samples: " << put_s
            << " s; GetSamples: " << get_s << " s" << std::endl;
}

// Forks a child that opens the store, stores samples, reports through a pipe that
// PutSamples returned, then either _exit(0)s without closing the store or waits to be
// SIGKILLed. Returns after the child is gone.
void RunCrashingWriter(const std::string& path, bool kill_child) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    absl::StatusOr<std::unique_ptr<Store>> store = OpenStore(path);
    if (!store.ok()) _exit(2);
    if (!(*store)->PutSamples("d", "nb201", MakeSamples("child-", 1000)).ok()) _exit(3);
    if (!(*store)->PutModel(MakeModel("d", "nb201", "child")).ok()) _exit(4);
    const char done = 'k';
    if (write(fds[1], &done, 1) != 1) _exit(5);
    if (!kill_child) _exit(0);  // the store is never closed
    while (true) pause();
  }
  close(fds[1]);
  char done = 0;
  EXPECT_EQ(read(fds[0], &done, 1), 1);
  close(fds[0]);
  if (kill_child) kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  if (kill_child) {
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  } else {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
}

TEST_P(StoreTest, DurableWhenWriterExitsWithoutClosing) {
  for (const bool kill_child : {false, true}) {
    SCOPED_TRACE(kill_child ? "SIGKILL" : "_exit");
    if (IsPostgres()) {
      RawExec("DROP TABLE IF EXISTS samples, sample_counts, request_ids, models, "
              "descriptor_features, devices, settings, latpred_schema");
    } else {
      std::filesystem::remove_all(dir_);
      std::filesystem::create_directories(dir_);
    }
    {
      std::unique_ptr<Store> store = Open();
      ASSERT_NE(store, nullptr);
      ASSERT_THAT(store->UpsertDevice(MakeDevice("d")).status(), IsOk());
    }
    RunCrashingWriter(Uri(), kill_child);
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    absl::StatusOr<std::vector<Sample>> samples = store->GetSamples("d", "nb201");
    ASSERT_THAT(samples.status(), IsOk());
    EXPECT_EQ(samples->size(), 1000u);
    absl::StatusOr<std::optional<ModelRecord>> model =
        store->GetLatestModel("d", "nb201");
    ASSERT_THAT(model.status(), IsOk());
    ASSERT_TRUE(model->has_value());
    EXPECT_EQ((*model)->blob, "child");
  }
}

TEST_P(StoreTest, ReopenKeepsSchemaVersion) {
  { ASSERT_NE(Open(), nullptr); }
  EXPECT_EQ(RawSchemaVersion(), kLatestSchema);
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), kLatestSchema);
  EXPECT_EQ(RawSchemaVersion(), kLatestSchema);
}

TEST_P(StoreTest, LatestModelVersionsPerDeviceIncludingBase) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  for (const auto& [device, space] : std::vector<std::pair<std::string, std::string>>{
           {"", "nb201"}, {"a", "nb201"}, {"a", "nb201"}, {"b", "fbnet"}, {"", "nb201"}}) {
    ASSERT_THAT(store->PutModel(MakeModel(device, space, "m")).status(), IsOk());
  }
  absl::StatusOr<std::map<std::string, int64_t>> nb201 = store->GetLatestModelVersions("nb201");
  ASSERT_THAT(nb201.status(), IsOk());
  EXPECT_THAT(*nb201, ElementsAre(Pair("", 2), Pair("a", 2)));
  absl::StatusOr<std::map<std::string, int64_t>> none = store->GetLatestModelVersions("x");
  ASSERT_THAT(none.status(), IsOk());
  EXPECT_TRUE(none->empty());
}

// Lock excludes other holders of the same name (across store connections, so across
// replicas for PostgreSQL) and not holders of other names.
TEST_P(StoreTest, LockExcludesSameNameOnly) {
  std::unique_ptr<Store> first = Open();
  ASSERT_NE(first, nullptr);
  // SQLite's locks are per Store object (one server process per file); PostgreSQL's are
  // per database, so a second store object stands in for a second replica.
  std::unique_ptr<Store> second_owner = IsPostgres() ? Open() : nullptr;
  Store& second = IsPostgres() ? *second_owner : *first;
  absl::StatusOr<std::unique_ptr<StoreLock>> held = first->Lock("base:nb201");
  ASSERT_THAT(held.status(), IsOk()) << held.status();
  absl::StatusOr<std::unique_ptr<StoreLock>> other = second.Lock("base:fbnet");
  ASSERT_THAT(other.status(), IsOk()) << other.status();
  std::atomic<bool> acquired{false};
  std::thread waiter([&] {
    absl::StatusOr<std::unique_ptr<StoreLock>> lock = second.Lock("base:nb201");
    EXPECT_THAT(lock.status(), IsOk());
    acquired = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(acquired.load());
  held->reset();
  waiter.join();
  EXPECT_TRUE(acquired.load());
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(Sqlite, SqliteStoreTest, ::testing::Values("sqlite"),
                         [](const auto& info) { return info.param; });

// What only PostgreSQL has: a server that can be unreachable, and passwords in URIs.
TEST(PostgresStoreTest, UnreachableServerIsUnavailableWithoutThePassword) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenStore(
      "postgresql://latpred:s3cret@/nodb?host=/nonexistent-latpred-dir&port=1&connect_timeout=2");
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("cannot connect to PostgreSQL"));
  EXPECT_THAT(std::string(store.status().message()), ::testing::Not(HasSubstr("s3cret")));
  EXPECT_EQ(RedactStoreUri("postgres://u:pw@h:5/db?sslmode=require&password=x"),
            "postgres://u:***@h:5/db?sslmode=require&password=***");
}

// A store whose server goes away answers UNAVAILABLE without naming the database: the
// user, the host (here the socket directory), the port and the database name stay in
// the server's log.
TEST(PostgresStoreTest, LostServerIsUnavailableWithoutConnectionDetails) {
  const std::string dir = ::testing::TempDir() + "latpred-pg-lost";
  auto pg = testing::TestPostgres::Start(dir);
  if (!pg.ok() && pg.status().code() == absl::StatusCode::kFailedPrecondition) {
    GTEST_SKIP() << pg.status();
  }
  ASSERT_TRUE(pg.ok()) << pg.status();
  absl::StatusOr<std::string> uri = (*pg)->CreateDatabase();
  ASSERT_TRUE(uri.ok()) << uri.status();
  absl::StatusOr<std::unique_ptr<Store>> store = OpenStore(*uri);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CountAllSamples().ok());
  ASSERT_TRUE(testing::TestPostgres::Stop(dir).ok());
  const auto count = (*store)->CountAllSamples();
  ASSERT_FALSE(count.ok());
  EXPECT_EQ(count.status().code(), absl::StatusCode::kUnavailable) << count.status();
  const std::string message(count.status().message());
  EXPECT_THAT(message, HasSubstr("cannot be reached"));
  EXPECT_THAT(message, ::testing::Not(HasSubstr(dir)));
  const size_t slash = uri->rfind('/');
  const std::string database = uri->substr(slash + 1, uri->find('?') - slash - 1);
  EXPECT_THAT(message, ::testing::Not(HasSubstr(database)));
}

}  // namespace
}  // namespace latpred::store
