// Tests of reading and merging latency tables: the bundled data and small temp files.
#include "latpred/core/dataset.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "latpred/core/search_space.h"

namespace latpred::core {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kHelpNb201[] = LATPRED_DATA_DIR "/help/nb201_latency.csv";
constexpr char kEagleNb201[] = LATPRED_DATA_DIR "/eagle/nb201_latency.csv";
constexpr char kHelpFbnet[] = LATPRED_DATA_DIR "/help/fbnet_latency.csv";
constexpr char kRow0Arch[] =
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|"
    "skip_connect~2|";

// Reads a table, failing the test on error.
LatencyTable MustRead(const std::string& path, const SearchSpace& space) {
  absl::StatusOr<LatencyTable> table = ReadLatencyTable(path, space);
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *std::move(table) : LatencyTable{};
}

// A temporary file holding `contents`, removed when the test ends.
class TempFile {
 public:
  explicit TempFile(const std::string& contents) {
    char name[] = "/tmp/latpred_dataset_test_XXXXXX";
    const int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    close(fd);
    path_ = name;
    std::ofstream(path_, std::ios::binary) << contents;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// True when the nb201 cell has no live edge: its output is cut off from its input.
bool CutOff(const Architecture& arch) {
  std::vector<float> enc(Nb201Space().encoding_size());
  Nb201Space().Encode(arch, enc.data());
  for (int e = 0; e < 6; ++e) {
    if (enc[30 + e * 5] != 1.0f) return false;  // live op of edge e is not none
  }
  return true;
}

TEST(ReadLatencyTable, HelpNb201) {
  const auto start = std::chrono::steady_clock::now();
  const LatencyTable table = MustRead(kHelpNb201, Nb201Space());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 1.0);
  EXPECT_EQ(table.space, &Nb201Space());
  ASSERT_EQ(table.rows(), 15625u);
  ASSERT_EQ(table.devices.size(), 27u);
  EXPECT_EQ(table.latency.size(), 15625u * 27u);
  EXPECT_EQ(table.devices.front(), "1080ti_1");
  EXPECT_EQ(table.devices.back(), "titanxp_32");
  EXPECT_EQ(table.indices[0], 0);
  EXPECT_EQ(table.indices[15624], 15624);
  EXPECT_EQ(table.canonical[0], kRow0Arch);
  EXPECT_DOUBLE_EQ(table.at(0, 0), 10.7544);
  EXPECT_DOUBLE_EQ(table.at(0, table.DeviceColumn("essential_ph_1")), 9);
  EXPECT_DOUBLE_EQ(table.at(1, table.DeviceColumn("titanxp_32")), 9.9657);
  EXPECT_EQ(table.DeviceColumn("no_such_device"), -1);
  EXPECT_EQ(table.RowOf(kRow0Arch), 0);
  EXPECT_EQ(table.RowOf("|none~0|"), -1);
  // Every cell of the space appears once, spelled canonically.
  EXPECT_EQ(std::set<std::string>(table.canonical.begin(), table.canonical.end()).size(),
            15625u);
  for (size_t row = 0; row < table.rows(); ++row) {
    EXPECT_EQ(table.RowOf(table.canonical[row]), static_cast<int>(row));
  }
}

TEST(ReadLatencyTable, HelpFbnet) {
  const LatencyTable table = MustRead(kHelpFbnet, FbnetSpace());
  EXPECT_EQ(table.rows(), 5000u);
  EXPECT_EQ(table.devices.size(), 27u);
  EXPECT_EQ(
      table.canonical[0],
      "k5_e6-skip-k3_e1_g2-skip-k5_e1-skip-skip-skip-k5_e6-k5_e1-k3_e1_g2-k5_e1-k5_e6-"
      "k3_e6-k3_e3-k5_e6-k3_e6-k3_e3-k5_e1-k3_e3-k5_e1-k5_e1_g2");
  EXPECT_DOUBLE_EQ(table.at(0, 0), 10.6153);
}

TEST(ReadLatencyTable, EagleHasEmptyCellsAndNoCutOffCells) {
  const LatencyTable table = MustRead(kEagleNb201, Nb201Space());
  ASSERT_EQ(table.rows(), 15284u);
  ASSERT_EQ(table.devices.size(), 15u);
  // Index 23 has no edge_tpu_large measurement.
  const int tpu_large = table.DeviceColumn("embedded_tpu_edge_tpu_large");
  ASSERT_GE(tpu_large, 0);
  const int row = table.RowOf(
      "|skip_connect~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
      "avg_pool_3x3~2|");
  ASSERT_GE(row, 0);
  EXPECT_EQ(table.indices[row], 23);
  EXPECT_TRUE(std::isnan(table.at(row, tpu_large)));
  EXPECT_DOUBLE_EQ(table.at(row, tpu_large + 1), 39.544);
  int missing = 0;
  for (double v : table.latency) missing += std::isnan(v) ? 1 : 0;
  EXPECT_GT(missing, 0);
  for (const Architecture& arch : table.archs) EXPECT_FALSE(CutOff(arch));
}

TEST(MergeLatencyTables, HelpAndEagle) {
  LatencyTable merged = MustRead(kHelpNb201, Nb201Space());
  const LatencyTable eagle = MustRead(kEagleNb201, Nb201Space());
  MergeLatencyTables(merged, eagle);
  ASSERT_EQ(merged.rows(), 15625u);
  ASSERT_EQ(merged.devices.size(), 42u);
  ASSERT_EQ(merged.latency.size(), 15625u * 42u);
  EXPECT_EQ(merged.devices[27], "desktop_cpu_core_i7_7820x_fp32");
  const int cpu = merged.DeviceColumn("desktop_cpu_core_i7_7820x_fp32");
  EXPECT_DOUBLE_EQ(merged.at(0, 0), 10.7544);
  EXPECT_DOUBLE_EQ(merged.at(0, cpu), 3.89671);
  // The 341 cells whose output is cut off are exactly the rows Eagle lacks.
  int cut_off = 0;
  for (size_t row = 0; row < merged.rows(); ++row) {
    const bool in_eagle = eagle.RowOf(merged.canonical[row]) >= 0;
    EXPECT_NE(in_eagle, CutOff(merged.archs[row])) << merged.canonical[row];
    if (!in_eagle) {
      ++cut_off;
      EXPECT_TRUE(std::isnan(merged.at(row, cpu)));
      EXPECT_FALSE(std::isnan(merged.at(row, 0)));
    }
  }
  EXPECT_EQ(cut_off, 341);
  // Eagle's values land on the matching rows.
  for (size_t row = 0; row < eagle.rows(); row += 997) {
    const int merged_row = merged.RowOf(eagle.canonical[row]);
    ASSERT_GE(merged_row, 0);
    EXPECT_DOUBLE_EQ(merged.at(merged_row, cpu), eagle.at(row, 0));
  }
}

TEST(MergeLatencyTables, AppendsRowsMissingFromA) {
  const TempFile a_file("index,arch,dev_a\n0," + std::string(kRow0Arch) + ",1.5\n");
  const TempFile b_file(
      "index,arch,dev_b,dev_c\n"
      "7,|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,2,3\n"
      "0," +
      std::string(kRow0Arch) + ",4,\n");
  LatencyTable a = MustRead(a_file.path(), Nb201Space());
  MergeLatencyTables(a, MustRead(b_file.path(), Nb201Space()));
  ASSERT_EQ(a.rows(), 2u);
  ASSERT_EQ(a.devices, (std::vector<std::string>{"dev_a", "dev_b", "dev_c"}));
  EXPECT_DOUBLE_EQ(a.at(0, 0), 1.5);
  EXPECT_DOUBLE_EQ(a.at(0, 1), 4);
  EXPECT_TRUE(std::isnan(a.at(0, 2)));
  EXPECT_EQ(a.indices[1], 7);
  EXPECT_TRUE(std::isnan(a.at(1, 0)));
  EXPECT_DOUBLE_EQ(a.at(1, 1), 2);
  EXPECT_DOUBLE_EQ(a.at(1, 2), 3);
  EXPECT_EQ(a.RowOf("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"), 1);
}

TEST(ReadLatencyTable, EmptyAndInvalidCellsBecomeNaN) {
  const TempFile file(
      "index,arch,d1,d2,d3\r\n"
      ",|none~0|+|none~0|none~1|+|none~0|none~1|none~2|, ,0,-1\r\n"
      "\r\n"
      "5, |skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2| ,inf,nan,2.5e-1\r\n");
  const LatencyTable table = MustRead(file.path(), Nb201Space());
  ASSERT_EQ(table.rows(), 2u);
  EXPECT_EQ(table.indices[0], -1);
  EXPECT_EQ(table.indices[1], 5);
  EXPECT_EQ(table.canonical[1],
            "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|");
  for (int col = 0; col < 3; ++col) EXPECT_TRUE(std::isnan(table.at(0, col)));
  EXPECT_TRUE(std::isnan(table.at(1, 0)));
  EXPECT_TRUE(std::isnan(table.at(1, 1)));
  EXPECT_DOUBLE_EQ(table.at(1, 2), 0.25);
}

// The status of reading `contents` as an nb201 table, which must be INVALID_ARGUMENT.
std::string ReadError(const std::string& contents, std::string* path) {
  const TempFile file(contents);
  *path = file.path();
  absl::StatusOr<LatencyTable> table = ReadLatencyTable(file.path(), Nb201Space());
  EXPECT_FALSE(table.ok());
  if (table.ok()) return "";
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(table.status().message());
}

TEST(ReadLatencyTable, ErrorsNameFileAndLine) {
  const std::string good = "1," + std::string(kRow0Arch) + ",1,2\n";
  std::string path;
  std::string message =
      ReadError("index,arch,d1,d2\n" + good +
                    "2,|bad~0|+|none~0|none~1|+|none~0|none~1|none~2|,1,2\n",
                &path);
  EXPECT_THAT(message, AllOf(HasSubstr(path + ":3: "), HasSubstr("unknown op 'bad'")));
  message =
      ReadError("index,arch,d1,d2\n" + good + good + "3," + kRow0Arch + ",1\n", &path);
  EXPECT_THAT(message, AllOf(HasSubstr(path + ":4: "), HasSubstr("expected 4 fields"),
                             HasSubstr("got 3")));
  message = ReadError("index,arch,d1,d2\nx," + std::string(kRow0Arch) + ",1,2\n", &path);
  EXPECT_THAT(message, AllOf(HasSubstr(path + ":2: "), HasSubstr("bad index 'x'")));
  message =
      ReadError("index,arch,d1,d2\n" + good + "1," + kRow0Arch + ",1,fast\n", &path);
  EXPECT_THAT(message, AllOf(HasSubstr(path + ":3: "), HasSubstr("bad latency 'fast'"),
                             HasSubstr("'d2'")));
  message = ReadError("id,arch,d1\n", &path);
  EXPECT_THAT(message, AllOf(HasSubstr(path + ":1: "), HasSubstr("expected a header")));
  message = ReadError("", &path);
  EXPECT_THAT(message, AllOf(HasSubstr(path + ":1: "), HasSubstr("expected a header")));
  message = ReadError("index,arch,d1,d1\n", &path);
  EXPECT_THAT(message, HasSubstr("duplicate device column 'd1'"));
}

TEST(ReadLatencyTable, MissingFileIsNotFound) {
  const std::string path = "/nonexistent/latpred/table.csv";
  absl::StatusOr<LatencyTable> table = ReadLatencyTable(path, Nb201Space());
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(table.status().message(), HasSubstr(path));
}

}  // namespace
}  // namespace latpred::core
