// Tests of the FBNet space: both spellings, errors, analytic costs and encoding.
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "latpred/core/search_space.h"

namespace latpred::core {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

const SearchSpace& Space() { return FbnetSpace(); }

// 22 copies of op, with the given 1-based layers replaced.
std::string Layers(const std::string& op,
                   const std::vector<std::pair<int, std::string>>& changes = {}) {
  std::vector<std::string> ops(22, op);
  for (const auto& [layer, name] : changes) ops[layer - 1] = name;
  return absl::StrJoin(ops, "-");
}

// Parses text, failing the test on error.
Architecture MustParse(const std::string& text) {
  absl::StatusOr<Architecture> arch = Space().Parse(text);
  EXPECT_TRUE(arch.ok()) << arch.status();
  return arch.ok() ? *arch : Architecture{};
}

// The error message of parsing text, which must fail with INVALID_ARGUMENT.
std::string ParseError(const std::string& text) {
  absl::StatusOr<Architecture> arch = Space().Parse(text);
  EXPECT_FALSE(arch.ok()) << text;
  if (arch.ok()) return "";
  EXPECT_EQ(arch.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(arch.status().message());
}

// Expects the four costs exactly (all are integers well below 2^53).
void ExpectCosts(const Costs& costs, double flops, double params, double kernels,
                 double bytes) {
  EXPECT_EQ(costs.flops, flops);
  EXPECT_EQ(costs.params, params);
  EXPECT_EQ(costs.kernels, kernels);
  EXPECT_EQ(costs.bytes, bytes);
}

constexpr char kFirstDataArch[] =
    "k5_e6-skip-k3_e1_g2-skip-k5_e1-skip-skip-skip-k5_e6-k5_e1-k3_e1_g2-k5_e1-k5_e6-k3_"
    "e6-"
    "k3_e3-k5_e6-k3_e6-k3_e3-k5_e1-k3_e3-k5_e1-k5_e1_g2";
constexpr char kFirstDataIndices[] = "7,8,1,8,4,8,8,8,7,4,1,4,7,3,2,7,3,2,4,2,4,5";

TEST(FbnetParse, NamesAndIndicesAgree) {
  const Architecture by_name = MustParse(kFirstDataArch);
  EXPECT_EQ(by_name.ops, std::vector<uint8_t>({7, 8, 1, 8, 4, 8, 8, 8, 7, 4, 1,
                                               4, 7, 3, 2, 7, 3, 2, 4, 2, 4, 5}));
  EXPECT_EQ(MustParse(kFirstDataIndices), by_name);
  EXPECT_EQ(MustParse(std::string("[") + kFirstDataIndices + "]"), by_name);
  EXPECT_EQ(
      MustParse("  [7, 8, 1, 8, 4, 8, 8, 8, 7, 4, 1, 4, 7, 3, 2, 7, 3, 2, 4, 2, 4, 5]\n"),
      by_name);
}

TEST(FbnetParse, CanonicalRoundTrip) {
  EXPECT_EQ(Space().Canonical(MustParse(kFirstDataArch)), kFirstDataArch);
  EXPECT_EQ(Space().Canonical(MustParse(kFirstDataIndices)), kFirstDataArch);
  EXPECT_EQ(Space().Canonical(MustParse(std::string(" ") + kFirstDataArch + "\r\n")),
            kFirstDataArch);
  const std::string all_skip = Layers("skip");
  EXPECT_EQ(Space().Canonical(MustParse(all_skip)), all_skip);
}

TEST(FbnetParse, SpaceShape) {
  EXPECT_EQ(Space().name(), "fbnet");
  EXPECT_EQ(Space().num_ops(), 9);
  EXPECT_EQ(Space().num_positions(), 22);
  // Stages change channels and resolution: an op costs differently per layer.
  EXPECT_FALSE(Space().positions_interchangeable());
  EXPECT_EQ(Space().encoding_size(), 202);
  // Every layer carries data, skip included.
  EXPECT_FALSE(Space().output_cut_off(MustParse(Layers("skip"))));
  // skip is a convolution where a layer changes the shape: no op is the identity everywhere.
  EXPECT_EQ(Space().identity_op(), -1);
}

TEST(FbnetParseError, Empty) {
  EXPECT_THAT(ParseError(" "), HasSubstr("empty architecture string"));
}

TEST(FbnetParseError, WrongLayerCount) {
  std::vector<std::string> ops(21, "k3_e1");
  EXPECT_THAT(ParseError(absl::StrJoin(ops, "-")),
              HasSubstr("expected 22 layers, got 21"));
  ops.resize(23, "skip");
  EXPECT_THAT(ParseError(absl::StrJoin(ops, "-")),
              HasSubstr("expected 22 layers, got 23"));
  EXPECT_THAT(ParseError("1,2,3"), HasSubstr("expected 22 layers, got 3"));
  EXPECT_THAT(ParseError("[]"), HasSubstr("expected 22 layers, got 0"));
}

TEST(FbnetParseError, UnknownOpNamesLayer) {
  EXPECT_EQ(ParseError(Layers("skip", {{5, "k7_e6"}})),
            "fbnet architecture: layer 5 of 22: unknown op 'k7_e6' (valid ops: k3_e1, "
            "k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip)");
  EXPECT_THAT(ParseError(Layers("skip", {{22, ""}})),
              HasSubstr("layer 22 of 22: unknown op ''"));
}

TEST(FbnetParseError, BadIndexNamesLayer) {
  EXPECT_EQ(
      ParseError("0,0,9,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0"),
      "fbnet architecture: layer 3 of 22: bad op index '9', expected an integer 0..8");
  EXPECT_THAT(ParseError("0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,-1"),
              HasSubstr("layer 22 of 22: bad op index '-1'"));
  EXPECT_THAT(ParseError("[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0"),
              HasSubstr("not closed by ']'"));
}

TEST(FbnetParseError, HugeJunkGivesShortMessage) {
  EXPECT_LT(ParseError(std::string(10000, 'k')).size(), 160u);
  const std::string message = ParseError(Layers("skip", {{2, std::string(10000, 'k')}}));
  EXPECT_LT(message.size(), 250u);
  EXPECT_THAT(message, AllOf(HasSubstr("layer 2 of 22"), HasSubstr("'...")));
}

// Skeleton (elements = C x H x W; bytes = 4 x elements):
//   stem: Conv3x3 3->16 @32x32: params 432, MACs 16384*27 = 442368,
//         elements 3072 + 16384 + 432 = 19888; BN(16): params 32, elements 32800;
//         ReLU 32768. params 464, MACs 442368, elements 85456, 3 kernels.
//   head @4x4: Conv1x1 352->1504: params 529408, MACs 24064*352 = 8470528,
//         elements 5632 + 24064 + 529408 = 559104; BN(1504): params 3008,
//         elements 2*24064 + 3008 = 51136; ReLU 48128; global pool 24064 + 1504 = 25568;
//         Linear 1504->100: params 150500, MACs 150400, elements 1504 + 100 + 150500.
//         params 682916, MACs 8620928, elements 836040, 5 kernels.
// A skip at stride 2 or with a channel change is Conv1x1-BN-ReLU (3 kernels):
//   layer  C_in->C_out  side      params            MACs                  elements
//   2      16->24       32        384+48 = 432      24576*16 = 393216 41344+49200+49152
//   6      24->32       32->16    768+64 = 832      8192*24 = 196608 33536+16448+16384 10
//   32->64       16->8     2048+128 = 2176   4096*32 = 131072      14336+8320+8192 14
//   64->112      8         7168+224 = 7392   7168*64 = 458752      18432+14560+14336 18
//   112->184     8->4      20608+368 = 20976 2944*112 = 329728     30720+6256+5888 22
//   184->352     4         64768+704 = 65472 5632*184 = 1036288    73344+11968+11264 sum
//   97280             2545664               423680
// The other 16 skips are identities and cost nothing.
//   params  464 + 682916 + 97280 = 780660
//   flops   2 * (442368 + 8620928 + 2545664) = 2 * 11608960 = 23217920
//   kernels 3 + 5 + 6*3 = 26
//   bytes   4 * (85456 + 836040 + 423680) = 4 * 1345176 = 5380704
TEST(FbnetCosts, AllSkip) {
  ExpectCosts(Space().AnalyticCosts(MustParse(Layers("skip"))), 23217920, 780660, 26,
              5380704);
}

// k3_e1 layer C_in -> C_out, side h -> h' (HW = h^2, HW' = h'^2):
//   Conv1x1 C_in->C_in, BN, ReLU, depthwise 3x3 (stride), BN, ReLU, Conv1x1 C_in->C_out,
//   BN, plus an addition when C_in == C_out and stride 1.
//   params   C_in^2 + 2C_in + 9C_in + 2C_in + C_in*C_out + 2C_out
//   MACs     HW*C_in^2 + HW'*9C_in + HW'*C_in*C_out
//   elements (2 C_in HW + C_in^2) + (2 C_in HW + 2 C_in) + 2 C_in HW
//            + (C_in HW + C_in HW' + 9 C_in) + (2 C_in HW' + 2 C_in) + 2 C_in HW'
//            + (C_in HW' + C_out HW' + C_in C_out) + (2 C_out HW' + 2 C_out)
//            [+ 3 C_out HW' for the addition]
// Layer 1 (16->16 @32): params 256+32+144+32+256+32 = 752,
//   MACs 262144 + 147456 + 262144 = 671744, elements 33024 + 32800 + 32768 + 32912 +
//   32800 + 32768 + 33024 + 32800 + 49152 = 312048, 9 kernels. All layers:
//   layers      C_in->C_out  side    params   MACs      elements  kernels
//   1           16->16       32      752      671744    312048    9
//   2           16->24       32      896      802816    287616    8
//   3-5 (x3)    24->24       32      1512     1400832   468456    9
//   6           24->32       32->16  1720     841728    235192    8
//   7-9 (x3)    32->32       16      2528     598016    158176    9
//   10          32->64       16->8   3616     411648    85536     8
//   11-13 (x3)  64->64       8       9152     561152    86976     9
//   14          64->112      8       12320    757760    87072     8
//   15-17 (x3)  112->112     8       26768    1670144   162960    9
//   18          112->184     8->4    34976    1148672   104736    8
//   19-21 (x3)  184->184     4       70472    1109888   126408    9
//   22          184->352     4       101720   1604480   156888    8
//   layer sums: params 487296, MACs 22258944, elements 4278016, kernels 192
//   params  464 + 682916 + 487296 = 1170676
//   flops   2 * (442368 + 8620928 + 22258944) = 2 * 31322240 = 62644480
//   kernels 3 + 5 + 192 = 200
//   bytes   4 * (85456 + 836040 + 4278016) = 4 * 5199512 = 20798048
TEST(FbnetCosts, AllK3E1) {
  ExpectCosts(Space().AnalyticCosts(MustParse(Layers("k3_e1"))), 62644480, 1170676, 200,
              20798048);
}

// All skip except layer 1 = k5_e6, layer 6 = k3_e1_g2, layer 22 = k5_e3:
//   layer 1 (16->96->16, k5, @32, residual): Conv1x1 params 1536,
//     MACs 98304*16 = 1572864, elements 16384+98304+1536 = 116224; BN(96) 192, 196800;
//     ReLU 196608; dw5x5 params 2400, MACs 98304*25 = 2457600, elements 199008;
//     BN 196800; ReLU 196608; Conv1x1 96->16 params 1536, MACs 1572864,
//     elements 116224; BN(16) 32, 32800; add 49152.
//     params 5888, MACs 5603328, elements 1300224, 9 kernels.
//   layer 6 (24->24->32, g2, stride 2, 32->16): Conv1x1 g2 params 24*24/2 = 288,
//     MACs 24576*12 = 294912, elements 49440; BN(24) 48, 49200; ReLU 49152;
//     shuffle 49152; dw3x3 s2 params 216, MACs 6144*9 = 55296, elements 30936;
//     BN 48, 12336; ReLU 12288; Conv1x1 g2 24->32 params 384, MACs 8192*12 = 98304,
//     elements 14720; BN(32) 64, 16448.
//     params 1048, MACs 448512, elements 283672, 9 kernels.
//   layer 22 (184->552->352, k5, @4): Conv1x1 params 101568, MACs 8832*184 = 1625088,
//     elements 113344; BN(552) 1104, 18768; ReLU 17664; dw5x5 params 13800,
//     MACs 8832*25 = 220800, elements 31464; BN 18768; ReLU 17664; Conv1x1 552->352
//     params 194304, MACs 5632*552 = 3108864, elements 208768; BN(352) 704, 11968.
//     params 312584, MACs 4954752, elements 438408, 8 kernels.
// From all-skip, drop the skip convs of layers 6 and 22 and add these three layers:
//   params  780660 - 832 - 65472 + 5888 + 1048 + 312584 = 1033876
//   flops   2 * (11608960 - 196608 - 1036288 + 5603328 + 448512 + 4954752) = 42765312
//   kernels 26 - 3 - 3 + 9 + 9 + 8 = 46
//   bytes   4 * (1345176 - 66368 - 96576 + 1300224 + 283672 + 438408) = 12818144
TEST(FbnetCosts, Mixed) {
  const std::string arch = Layers("skip", {{1, "k5_e6"}, {6, "k3_e1_g2"}, {22, "k5_e3"}});
  ExpectCosts(Space().AnalyticCosts(MustParse(arch)), 42765312, 1033876, 46, 12818144);
}

TEST(FbnetEncode, LayoutAndDeterminism) {
  const Architecture arch = MustParse(kFirstDataArch);
  std::vector<float> enc(Space().encoding_size(), -1.0f);
  Space().Encode(arch, enc.data());
  for (int layer = 0; layer < 22; ++layer) {
    for (int op = 0; op < 9; ++op) {
      EXPECT_EQ(enc[layer * 9 + op], op == arch.ops[layer] ? 1.0f : 0.0f);
    }
  }
  const Costs costs = Space().AnalyticCosts(arch);
  EXPECT_FLOAT_EQ(enc[198], std::log1p(costs.flops));
  EXPECT_FLOAT_EQ(enc[199], std::log1p(costs.params));
  EXPECT_FLOAT_EQ(enc[200], std::log1p(costs.bytes));
  EXPECT_FLOAT_EQ(enc[201], costs.kernels / 100);
  std::vector<float> again(202);
  Space().Encode(MustParse(kFirstDataIndices), again.data());
  EXPECT_EQ(enc, again);
  Space().Encode(MustParse(Layers("skip")), again.data());
  EXPECT_NE(enc, again);
}

}  // namespace
}  // namespace latpred::core
