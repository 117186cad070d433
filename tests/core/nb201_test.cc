// Tests of the NAS-Bench-201 space: parsing, errors, liveness, analytic costs, encoding,
// and the search-space registry.
#include <cmath>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "latpred/core/search_space.h"

namespace latpred::core {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kAllNone[] = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|";
constexpr char kAllSkip[] =
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|"
    "skip_connect~2|";
constexpr char kAllConv3x3[] =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|";
// Only 3<-0 (skip) is live: node 1 has no way out, node 2 no way in.
constexpr char kOnlySkipLive[] =
    "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|";
// Every non-none edge is live.
constexpr char kMixed[] =
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|"
    "nor_conv_3x3~2|";
// 1<-0 is a dead conv (node 1 feeds nothing); live path 0 -skip-> 2 -conv1x1-> 3.
constexpr char kDeadConv[] =
    "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_1x1~2|";
constexpr char kDeadConvRemoved[] =
    "|none~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_1x1~2|";

const SearchSpace& Space() { return Nb201Space(); }

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

Costs CostsOf(const std::string& text) { return Space().AnalyticCosts(MustParse(text)); }

// Expects the four costs exactly (all are integers well below 2^53).
void ExpectCosts(const Costs& costs, double flops, double params, double kernels,
                 double bytes) {
  EXPECT_EQ(costs.flops, flops);
  EXPECT_EQ(costs.params, params);
  EXPECT_EQ(costs.kernels, kernels);
  EXPECT_EQ(costs.bytes, bytes);
}

TEST(Nb201Parse, OpIdsInEdgeOrder) {
  EXPECT_THAT(MustParse("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+"
                        "|nor_conv_3x3~0|none~1|skip_connect~2|")
                  .ops,
              ElementsAre(4, 2, 1, 3, 0, 1));
}

TEST(Nb201Parse, CanonicalRoundTrip) {
  for (const char* text : {kAllNone, kAllSkip, kAllConv3x3, kOnlySkipLive, kMixed}) {
    EXPECT_EQ(Space().Canonical(MustParse(text)), text);
  }
}

// Every architecture of the space parses from its canonical string (the allocation-free
// fast path) to itself, and near-misses of a canonical string still fail with the
// detailed diagnosis.
TEST(Nb201Parse, EveryCanonicalStringRoundTrips) {
  Architecture arch;
  arch.ops.assign(6, 0);
  for (int index = 0; index < 15625; ++index) {
    for (int e = 0, rest = index; e < 6; ++e, rest /= 5) arch.ops[e] = static_cast<uint8_t>(rest % 5);
    const std::string text = Space().Canonical(arch);
    absl::StatusOr<Architecture> parsed = Space().Parse(text);
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.status();
    ASSERT_EQ(parsed->ops, arch.ops) << text;
    ASSERT_EQ(Space().Index(arch), index) << text;
    ASSERT_EQ(Space().ParseIndex(text), index) << text;
  }
  EXPECT_EQ(Space().enumerable_size(), 15625);
  EXPECT_THAT(ParseError("|none~0|+|none~0|none~1|+|none~0|none~1|none~3|"),
              HasSubstr("bad node index"));
  EXPECT_THAT(ParseError("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|x"),
              HasSubstr("trailing characters"));
  EXPECT_THAT(ParseError("|none~0|+|none~0|none~1|+|none~0|none~1|nono~2|"),
              HasSubstr("unknown op"));
}

// ParseIndex takes the canonical spelling only; anything else is -1, for Parse to accept
// (surrounding whitespace) or diagnose.
TEST(Nb201Parse, ParseIndexRejectsEveryOtherSpelling) {
  const std::string canonical = kMixed;
  ASSERT_GE(Space().ParseIndex(canonical), 0);
  EXPECT_EQ(Space().ParseIndex(canonical), Space().Index(MustParse(canonical)));
  for (const std::string& text :
       {std::string(" ") + canonical, canonical + "\n", canonical + "|", canonical.substr(1),
        canonical.substr(0, canonical.size() - 1), std::string(""), std::string("|"),
        std::string("|none~0|+|none~0|none~1|+|none~0|none~1|none~3|"),
        std::string("|none~0|+|none~0|none~1|+|none~0|none~1|nono~2|"),
        std::string("|none~0|+|none~0|none~1|+|none~0|none~1|nor_conv_5x5~2|"),
        std::string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|"),
        std::string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2"),
        std::string("|none~0|+|none~0|none~1|+|none~0|none~1|none~22|"),
        std::string("|none~0|+|none~0||none~1|+|none~0|none~1|none~2|"),
        std::string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\0", 48)}) {
    EXPECT_EQ(Space().ParseIndex(text), -1) << absl::CEscape(text);
  }
  EXPECT_EQ(FbnetSpace().enumerable_size(), 0);
  const Architecture all_skip{std::vector<uint8_t>(22, 8)};
  EXPECT_EQ(FbnetSpace().ParseIndex(FbnetSpace().Canonical(all_skip)), -1);
}

TEST(Nb201Parse, ToleratesSurroundingWhitespaceOnly) {
  EXPECT_EQ(Space().Canonical(MustParse(std::string(" \t\n") + kMixed + "\r\n ")),
            kMixed);
  EXPECT_THAT(ParseError("|none~0| +|none~0|none~1|+|none~0|none~1|none~2|"),
              HasSubstr("missing '|' at the end of group 1"));
}

TEST(Nb201Parse, SpaceShape) {
  EXPECT_EQ(Space().name(), "nb201");
  EXPECT_EQ(Space().num_ops(), 5);
  EXPECT_EQ(Space().num_positions(), 6);
  // Every edge of a cell maps C x H x W to C x H x W.
  EXPECT_TRUE(Space().positions_interchangeable());
  EXPECT_EQ(Space().encoding_size(), 94);
  // skip_connect passes its input through at every edge.
  EXPECT_EQ(MustParse("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|").ops[0],
            Space().identity_op());
}

// The cell output is cut off from its input when no path of ops other than none leads
// from node 0 to node 3.
TEST(Nb201Parse, OutputCutOff) {
  EXPECT_TRUE(Space().output_cut_off(
      MustParse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")));
  // Node 2 feeds the output, but nothing reaches node 2 or node 1 from the input.
  EXPECT_TRUE(Space().output_cut_off(
      MustParse("|none~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|")));
  // The same cell with the input joined to node 1.
  EXPECT_FALSE(Space().output_cut_off(
      MustParse("|avg_pool_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|")));
  // The direct edge from the input to the output alone.
  EXPECT_FALSE(Space().output_cut_off(
      MustParse("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")));
}

TEST(Nb201ParseError, Empty) {
  EXPECT_THAT(ParseError(""), HasSubstr("empty architecture string"));
  EXPECT_THAT(ParseError("  \n"), HasSubstr("empty architecture string"));
}

TEST(Nb201ParseError, UnknownOpNamesOffsetEdgeAndValidOps) {
  // "|none~0|" is offsets 0..7, '+' is 8, group 2 starts at 9, its second edge at 17.
  EXPECT_EQ(
      ParseError("|none~0|+|none~0|conv~1|+|none~0|none~1|none~2|"),
      "nb201 architecture: offset 17: edge 2<-1: unknown op 'conv' (valid ops: none, "
      "skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)");
}

TEST(Nb201ParseError, WrongGroupCount) {
  EXPECT_THAT(ParseError("|none~0|+|none~0|none~1|"),
              HasSubstr("expected 3 groups separated by '+', got 2"));
  EXPECT_THAT(ParseError(std::string(kAllNone) + "+|none~0|"),
              HasSubstr("expected 3 groups separated by '+', got 4"));
}

TEST(Nb201ParseError, WrongEdgeCount) {
  EXPECT_EQ(ParseError("|none~0|+|none~0|+|none~0|none~1|none~2|"),
            "nb201 architecture: offset 9: group 2 (the edges into node 2) has 1 edges, "
            "expected 2");
  EXPECT_THAT(ParseError("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|none~3|"),
              HasSubstr("group 3 (the edges into node 3) has 4 edges, expected 3"));
}

TEST(Nb201ParseError, BadNodeIndex) {
  // The index of "none~5" starts at offset 6.
  EXPECT_EQ(ParseError("|none~5|+|none~0|none~1|+|none~0|none~1|none~2|"),
            "nb201 architecture: offset 6: edge 1<-0: bad node index '5', expected 0 "
            "(group 1 lists inputs 0..0 in order)");
  EXPECT_THAT(ParseError("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"),
              AllOf(HasSubstr("offset 6"), HasSubstr("bad node index '1'")));
  // Out of order in group 3: offset 38 is the index of the second edge.
  EXPECT_THAT(ParseError("|none~0|+|none~0|none~1|+|none~0|none~2|none~1|"),
              AllOf(HasSubstr("offset 38"), HasSubstr("edge 3<-1: bad node index '2'")));
  EXPECT_THAT(ParseError("|none~0|+|none~0|none~ 1|+|none~0|none~1|none~2|"),
              HasSubstr("bad node index ' 1'"));
  EXPECT_THAT(ParseError("|none|+|none~0|none~1|+|none~0|none~1|none~2|"),
              AllOf(HasSubstr("offset 1"), HasSubstr("expected 'op~0', got 'none'")));
}

TEST(Nb201ParseError, MissingBar) {
  EXPECT_EQ(
      ParseError("none~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
      "nb201 architecture: offset 0: missing '|' at the start of group 1 (the edges "
      "into node 1)");
  // Group 2 "|none~0|none~1" spans offsets 9..22; its closing '|' is missing at 23.
  EXPECT_EQ(ParseError("|none~0|+|none~0|none~1+|none~0|none~1|none~2|"),
            "nb201 architecture: offset 23: missing '|' at the end of group 2");
  EXPECT_THAT(ParseError("|none~0|+|none~0|none~1|+|none~0|none~1|none~2"),
              HasSubstr("missing '|' at the end of group 3"));
}

TEST(Nb201ParseError, TrailingJunk) {
  // kAllNone is 8 + 1 + 15 + 1 + 22 = 47 characters long; the junk starts right after.
  EXPECT_EQ(ParseError(std::string(kAllNone) + "junk"),
            "nb201 architecture: offset 47: trailing characters 'junk' after the "
            "architecture's last '|'");
  EXPECT_THAT(ParseError(std::string(kAllNone) + "x|y"),
              AllOf(HasSubstr("offset 47"), HasSubstr("trailing characters 'x|y'")));
}

TEST(Nb201ParseError, HugeJunkGivesShortMessage) {
  const std::string junk(10000, 'x');
  EXPECT_LT(ParseError(junk).size(), 160u);
  const std::string long_op =
      "|" + std::string(10000, 'a') + "~0|+|none~0|none~1|+" + "|none~0|none~1|none~2|";
  const std::string message = ParseError(long_op);
  EXPECT_LT(message.size(), 250u);
  EXPECT_THAT(message, HasSubstr("unknown op 'aaaa"));
  EXPECT_THAT(message, HasSubstr("'..."));
  EXPECT_LT(ParseError(std::string(kAllNone) + std::string(10000, '|')).size(), 160u);
}

// Skeleton, worked by hand (batch 1; elements = C x H x W; bytes = 4 x elements):
//   stem    Conv3x3 3->16 @32x32: MACs 16384*27 = 442368, params 432,
//             elements 3072 + 16384 + 432 = 19888
//           BN(16): params 32, elements 2*16384 + 32 = 32800
//           2 kernels, elements 52688
//   red 1   ReLU 2*16384 = 32768
//   16->32  Conv3x3 s2: params 32*16*9 = 4608, MACs 8192*144 = 1179648,
//             elements 16384 + 8192 + 4608 = 29184
//           BN(32): params 64, elements 2*8192 + 64 = 16448
//           ReLU 16384; Conv3x3: params 9216, MACs 8192*288 = 2359296,
//             elements 8192 + 8192 + 9216 = 25600; BN 16448
//           AvgPool2x2: 16384 + 4096 = 20480
//           Conv1x1: params 512, MACs 8192*16 = 131072, elements 4096 + 8192 + 512
//           add: 3*8192 = 24576
//           9 kernels, params 14464, MACs 3670016, elements 194688
//   red 2   ReLU 16384; Conv3x3 s2: params 18432, MACs 4096*288 = 1179648,
//   32->64    elements 30720; BN 8320; ReLU 8192; Conv3x3: params 36864,
//             MACs 4096*576 = 2359296, elements 45056; BN 8320; AvgPool 10240;
//             Conv1x1: params 2048, MACs 4096*32 = 131072, elements 8192; add 12288
//           9 kernels, params 57600, MACs 3670016, elements 147712
//   head    BN(64): params 128, elements 8320; ReLU 8192; global pool 4096 + 64 = 4160;
//           Linear 64->10: params 650, MACs 640, elements 64 + 10 + 650 = 724
//           4 kernels, params 778, MACs 640, elements 21396
//   total   params  464 + 14464 + 57600 + 778 = 73306
//           flops   2 * (442368 + 2*3670016 + 640) = 15566080
//           kernels 2 + 9 + 9 + 4 = 24
//           bytes   4 * (52688 + 194688 + 147712 + 21396) = 4 * 416484 = 1665936
// (NAS-Bench-201 itself reports 0.073306 M params and 7.78304 M MACs for this cell.)
constexpr double kSkeletonFlops = 15566080;
constexpr double kSkeletonParams = 73306;
constexpr double kSkeletonKernels = 24;
constexpr double kSkeletonBytes = 1665936;

TEST(Nb201Costs, AllNoneIsSkeletonOnly) {
  ExpectCosts(CostsOf(kAllNone), kSkeletonFlops, kSkeletonParams, kSkeletonKernels,
              kSkeletonBytes);
}

// Per cell: node 2 adds 2 inputs (1 addition), node 3 adds 3 (2 additions), each
// 3N elements, N = 16384, 8192, 4096 in the three stages.
//   kernels 24 + 15*3 = 69
//   bytes   1665936 + 4 * 5 * 9 * (16384 + 8192 + 4096) = 1665936 + 5160960 = 6826896
TEST(Nb201Costs, AllSkip) {
  ExpectCosts(CostsOf(kAllSkip), kSkeletonFlops, kSkeletonParams, 69, 6826896);
}

// Edge 1<-0 is a conv into node 1, but both edges out of node 1 are none: dead.
// Edge 3<-2 is a conv out of node 2, but both edges into node 2 are none: dead.
// Only the skip 3<-0 is live, node 3 has one input (no addition): skeleton only.
TEST(Nb201Costs, OnlySkipLiveCostsSkeleton) {
  ExpectCosts(CostsOf(kOnlySkipLive), kSkeletonFlops, kSkeletonParams, kSkeletonKernels,
              kSkeletonBytes);
}

// All five non-none edges are live. Per cell at C channels, N = C*H*W (C*N = 262144 in
// every stage):
//   conv3x3 edge (x2): ReLU 2N; Conv 2N + 9C^2, MACs 9CN; BN 2N + 2C; 3 kernels
//   conv1x1 edge:      ReLU 2N; Conv 2N + C^2,  MACs CN;  BN 2N + 2C; 3 kernels
//   avg_pool edge:     2N; 1 kernel
//   node 2 (conv1x1 + pool) and node 3 (skip + conv3x3): one addition each, 3N
//   => params 19C^2 + 6C, MACs 19CN = 4980736, kernels 12, elements 26N + 19C^2 + 6C
//   C=16: params 4960,  elements 425984 + 4864 + 96 = 430944
//   C=32: params 19648, elements 212992 + 19456 + 192 = 232640
//   C=64: params 78208, elements 106496 + 77824 + 384 = 184704
// Totals (5 cells per stage):
//   params  73306 + 5 * (4960 + 19648 + 78208) = 73306 + 514080 = 587386
//   flops   15566080 + 2 * 15 * 4980736 = 15566080 + 149422080 = 164988160
//   kernels 24 + 15 * 12 = 204
//   bytes   4 * (416484 + 5 * (430944 + 232640 + 184704)) = 4 * 4657924 = 18631696
TEST(Nb201Costs, Mixed) {
  ExpectCosts(CostsOf(kMixed), 164988160, 587386, 204, 18631696);
}

// Only 2<-0 (skip) and 3<-2 (conv1x1) are live; no node has two inputs.
//   conv1x1 edge per cell: params C^2 + 2C, MACs CN = 262144, elements 6N + C^2 + 2C
//   C=16: 288, 98304 + 288 = 98592; C=32: 1088, 49152 + 1088 = 50240;
//   C=64: 4224, 24576 + 4224 = 28800
//   params  73306 + 5 * (288 + 1088 + 4224) = 73306 + 28000 = 101306
//   flops   15566080 + 2 * 15 * 262144 = 23430400
//   kernels 24 + 15 * 3 = 69
//   bytes   4 * (416484 + 5 * (98592 + 50240 + 28800)) = 4 * 1304644 = 5218576
TEST(Nb201Costs, DeadEdgeCostsNothing) {
  ExpectCosts(CostsOf(kDeadConv), 23430400, 101306, 69, 5218576);
  ExpectCosts(CostsOf(kDeadConvRemoved), 23430400, 101306, 69, 5218576);
}

// Every edge live. Per cell: 6 conv3x3 edges (params 9C^2 + 2C, MACs 9CN, elements
// 6N + 9C^2 + 2C each) and 3 additions (3N each): params 54C^2 + 12C, MACs 54CN,
// kernels 21, elements 45N + 54C^2 + 12C.
//   params  73306 + 5 * (14016 + 55680 + 221952) = 1531546
//   flops   2 * (7783040 + 15 * 54 * 262144) = 2 * 220119680 = 440239360
//   kernels 24 + 15 * 21 = 339
//   bytes   4 * (416484 + 5 * (751296 + 424320 + 406272)) = 4 * 8325924 = 33303696
//   (NAS-Bench-201 reports 1.531546 M params and 220.11968 M MACs for this cell.)
TEST(Nb201Costs, AllConv3x3MatchesNasBench201) {
  ExpectCosts(CostsOf(kAllConv3x3), 440239360, 1531546, 339, 33303696);
}

TEST(Nb201Encode, LayoutAndLiveness) {
  const Architecture arch = MustParse(kOnlySkipLive);
  std::vector<float> enc(Space().encoding_size(), -1.0f);
  Space().Encode(arch, enc.data());
  // Raw ops: conv3x3, none, none, skip, none, conv3x3.
  const std::vector<int> raw = {3, 0, 0, 1, 0, 3};
  // Live ops: only 3<-0 (skip) survives.
  const std::vector<int> live = {0, 0, 0, 1, 0, 0};
  // Ops with a path to the output: 3<-2 (conv3x3) too, though node 2 has no input; 1<-0
  // leads nowhere.
  const std::vector<int> to_output = {0, 0, 0, 1, 0, 3};
  for (int e = 0; e < 6; ++e) {
    for (int op = 0; op < 5; ++op) {
      EXPECT_EQ(enc[e * 5 + op], op == raw[e] ? 1.0f : 0.0f) << e << " " << op;
      EXPECT_EQ(enc[30 + e * 5 + op], op == live[e] ? 1.0f : 0.0f) << e << " " << op;
      EXPECT_EQ(enc[60 + e * 5 + op], op == to_output[e] ? 1.0f : 0.0f) << e << " " << op;
    }
  }
  EXPECT_FLOAT_EQ(enc[90], std::log1p(kSkeletonFlops));
  EXPECT_FLOAT_EQ(enc[91], std::log1p(kSkeletonParams));
  EXPECT_FLOAT_EQ(enc[92], std::log1p(kSkeletonBytes));
  EXPECT_FLOAT_EQ(enc[93], 0.24f);
}

TEST(Nb201Encode, DeterministicAndDistinct) {
  std::vector<float> a(Space().encoding_size());
  std::vector<float> b(Space().encoding_size(), 7.0f);
  std::vector<float> c(Space().encoding_size());
  Space().Encode(MustParse(kMixed), a.data());
  Space().Encode(MustParse(kMixed), b.data());
  Space().Encode(MustParse(kAllSkip), c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(SearchSpaceRegistry, LooksUpByName) {
  EXPECT_THAT(SearchSpaceNames(), ElementsAre("nb201", "fbnet"));
  absl::StatusOr<const SearchSpace*> nb201 = GetSearchSpace("nb201");
  ASSERT_TRUE(nb201.ok());
  EXPECT_EQ(*nb201, &Nb201Space());
  absl::StatusOr<const SearchSpace*> fbnet = GetSearchSpace("fbnet");
  ASSERT_TRUE(fbnet.ok());
  EXPECT_EQ(*fbnet, &FbnetSpace());
}

TEST(SearchSpaceRegistry, UnknownName) {
  absl::StatusOr<const SearchSpace*> space = GetSearchSpace("x");
  ASSERT_FALSE(space.ok());
  EXPECT_EQ(space.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(space.status().message(), "unknown search space 'x' (known: nb201, fbnet)");
  EXPECT_LT(GetSearchSpace(std::string(10000, 'y')).status().message().size(), 120u);
}

}  // namespace
}  // namespace latpred::core
