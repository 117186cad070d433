// FBNet ("fbnet"): parsing, canonical spelling, encoding and analytic costs.
//
// Cost counting rules (batch 1, CIFAR: input 3x32x32, 100 classes; see Costs in
// search_space.h and docs/search-spaces.md). Every kernel adds one to `kernels` and
// 4 x (input + output activation elements + its learnable weights) to `bytes`:
//   Conv kxk (stride s, pad (k-1)/2, g groups, no bias):
//       flops 2 x out_elements x (C_in / g) x k x k, params C_out x (C_in / g) x k x k
//       (a depthwise conv has g = C: C x k x k weights).
//   BatchNorm(C): params 2 x C (weight and bias), bytes count them as weights.
//   ReLU, channel shuffle: in and out elements only.
//   Residual addition: reads two inputs, writes one output.
//   Global average pool: reads C x H x W, writes C.
//   Linear(in -> out): flops 2 x in x out, params in x out + out.
// Network: stem Conv3x3(3->16, s1)-BN-ReLU; 22 layers in 7 stages (layers
// [1,4,4,4,4,4,1], channels [16,24,32,64,112,184,352], first-layer strides
// [1,1,2,2,1,2,1]); head Conv1x1(352->1504)-BN-ReLU, global pool, Linear(1504->100).
// Inverted residual (C_in -> C_out, expansion e, kernel k, stride s, groups g):
// Conv1x1(C_in -> e*C_in, g)-BN-ReLU, channel shuffle when g > 1, depthwise Conv kxk(s)-
// BN-ReLU, Conv1x1(e*C_in -> C_out, g)-BN, and one addition when C_in == C_out and s
// == 1. skip: free when C_in == C_out and s == 1, else Conv1x1(C_in -> C_out, s)-BN-ReLU.
// `params` equals sum(p.numel() for p in model.parameters()) of a faithful PyTorch model.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "cost_counter.h"
#include "latpred/core/search_space.h"
#include "latpred/core/status_macros.h"

namespace latpred::core {
namespace {

constexpr int kNumLayers = 22;
constexpr int kNumOps = 9;
constexpr int kNumCostDims = 4;
constexpr int kEncodingSize = kNumLayers * kNumOps + kNumCostDims;
constexpr size_t kMaxEcho = 40;

constexpr std::array<absl::string_view, kNumOps> kOpNames = {
    "k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip"};
constexpr uint8_t kSkip = 8;

// Depthwise kernel, expansion and 1x1-conv groups of each inverted-residual op.
struct Block {
  int kernel;
  int expansion;
  int groups;
};
constexpr Block kBlocks[kNumOps - 1] = {{3, 1, 1}, {3, 1, 2}, {3, 3, 1}, {3, 6, 1},
                                        {5, 1, 1}, {5, 1, 2}, {5, 3, 1}, {5, 6, 1}};

constexpr int kNumStages = 7;
constexpr std::array<int, kNumStages> kStageLayers = {1, 4, 4, 4, 4, 4, 1};
constexpr std::array<int, kNumStages> kStageChannels = {16, 24, 32, 64, 112, 184, 352};
constexpr std::array<int, kNumStages> kStageStrides = {1, 1, 2, 2, 1, 2, 1};
constexpr int kInputChannels = 3;
constexpr int kInputSide = 32;
constexpr int kStemChannels = 16;
constexpr int kHeadChannels = 1504;
constexpr int kNumClasses = 100;

// Quotes text for an error message, cut to kMaxEcho characters.
std::string Echo(absl::string_view text) {
  return absl::StrCat("'", absl::CEscape(text.substr(0, kMaxEcho)),
                      text.size() > kMaxEcho ? "'..." : "'");
}

// An INVALID_ARGUMENT error about an FBNet architecture string.
absl::Status Error(absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat("fbnet architecture: ", reason));
}

// Adds one searchable layer; returns the output side.
int CountLayer(uint8_t op, int c_in, int c_out, int stride, int side,
               CostCounter& counter) {
  if (op == kSkip) {
    if (c_in == c_out && stride == 1) return side;
    const int out_side = counter.Conv(c_in, c_out, 1, stride, side, 1);
    counter.BatchNorm(c_out, out_side);
    counter.Elementwise(c_out, out_side);
    return out_side;
  }
  const Block& block = kBlocks[op];
  const int mid = block.expansion * c_in;
  counter.Conv(c_in, mid, 1, 1, side, block.groups);
  counter.BatchNorm(mid, side);
  counter.Elementwise(mid, side);
  if (block.groups > 1) counter.Elementwise(mid, side);
  const int out_side = counter.Conv(mid, mid, block.kernel, stride, side, mid);
  counter.BatchNorm(mid, out_side);
  counter.Elementwise(mid, out_side);
  counter.Conv(mid, c_out, 1, 1, out_side, block.groups);
  counter.BatchNorm(c_out, out_side);
  if (c_in == c_out && stride == 1) counter.Add(c_out, out_side);
  return out_side;
}

// Splits the index form "[i, j, ...]" or "i,j,..." into its (unstripped) items.
absl::StatusOr<std::vector<absl::string_view>> SplitIndexList(absl::string_view text) {
  absl::string_view list = text;
  if (list.front() == '[') {
    if (list.back() != ']') {
      return Error("index list opened with '[' but not closed by ']'");
    }
    list = absl::StripAsciiWhitespace(list.substr(1, list.size() - 2));
  }
  if (list.empty()) return std::vector<absl::string_view>();
  return std::vector<absl::string_view>(absl::StrSplit(list, ','));
}

class FbnetSearchSpace final : public SearchSpace {
 public:
  std::string_view name() const override { return "fbnet"; }

  // Parses 22 op names joined by '-', or 22 indices 0..8 joined by ',' (optionally in
  // [ ]; spaces around indices are allowed), tolerating surrounding whitespace.
  absl::StatusOr<Architecture> Parse(std::string_view text) const override {
    const absl::string_view trimmed =
        absl::StripAsciiWhitespace(absl::string_view(text.data(), text.size()));
    if (trimmed.empty()) {
      return Error(
          "empty architecture string, expected 22 op names joined by '-' or "
          "22 indices 0..8 joined by ','");
    }
    const bool by_index = trimmed.front() == '[' || absl::ascii_isdigit(trimmed.front());
    std::vector<absl::string_view> items;
    if (by_index) {
      ASSIGN_OR_RETURN(items, SplitIndexList(trimmed));
    } else {
      items = absl::StrSplit(trimmed, '-');
    }
    if (items.size() != kNumLayers) {
      return Error(
          absl::StrCat("expected 22 layers, got ", items.size(), " in ", Echo(trimmed)));
    }
    Architecture arch;
    arch.ops.reserve(kNumLayers);
    for (int layer = 0; layer < kNumLayers; ++layer) {
      const absl::string_view item =
          by_index ? absl::StripAsciiWhitespace(items[layer]) : items[layer];
      const std::string where = absl::StrCat("layer ", layer + 1, " of 22: ");
      if (by_index) {
        if (item.size() != 1 || item[0] < '0' || item[0] > '8') {
          return Error(absl::StrCat(where, "bad op index ", Echo(item),
                                    ", expected an integer 0..8"));
        }
        arch.ops.push_back(static_cast<uint8_t>(item[0] - '0'));
        continue;
      }
      const auto op = std::find(kOpNames.begin(), kOpNames.end(), item);
      if (op == kOpNames.end()) {
        return Error(absl::StrCat(where, "unknown op ", Echo(item),
                                  " (valid ops: ", absl::StrJoin(kOpNames, ", "), ")"));
      }
      arch.ops.push_back(static_cast<uint8_t>(op - kOpNames.begin()));
    }
    return arch;
  }

  // Expects an architecture from Parse (22 ops, each below 9), as do the methods below.
  std::string Canonical(const Architecture& arch) const override {
    std::string out;
    for (int layer = 0; layer < kNumLayers; ++layer) {
      absl::StrAppend(&out, layer > 0 ? "-" : "", kOpNames[arch.ops[layer]]);
    }
    return out;
  }

  int encoding_size() const override { return kEncodingSize; }

  // One-hot ops per layer (198), then log1p(flops), log1p(params), log1p(bytes) and
  // kernels / 100.
  void Encode(const Architecture& arch, float* out) const override {
    std::fill(out, out + kEncodingSize, 0.0f);
    for (int layer = 0; layer < kNumLayers; ++layer) {
      out[layer * kNumOps + arch.ops[layer]] = 1.0f;
    }
    EncodeCosts(AnalyticCosts(arch), out + kNumLayers * kNumOps);
  }

  // Costs of the whole CIFAR network; see the rules at the top of this file.
  Costs AnalyticCosts(const Architecture& arch) const override {
    CostCounter counter;
    int side = counter.Conv(kInputChannels, kStemChannels, 3, 1, kInputSide, 1);
    counter.BatchNorm(kStemChannels, side);
    counter.Elementwise(kStemChannels, side);
    int c_in = kStemChannels;
    int layer = 0;
    for (int stage = 0; stage < kNumStages; ++stage) {
      const int c_out = kStageChannels[stage];
      for (int i = 0; i < kStageLayers[stage]; ++i) {
        const int stride = i == 0 ? kStageStrides[stage] : 1;
        side = CountLayer(arch.ops[layer++], c_in, c_out, stride, side, counter);
        c_in = c_out;
      }
    }
    side = counter.Conv(c_in, kHeadChannels, 1, 1, side, 1);
    counter.Classifier(kHeadChannels, side, kNumClasses);
    return counter.costs();
  }

  int num_ops() const override { return kNumOps; }
  int num_positions() const override { return kNumLayers; }
};

}  // namespace

const SearchSpace& FbnetSpace() {
  static const SearchSpace* const space = new FbnetSearchSpace();
  return *space;
}

}  // namespace latpred::core
