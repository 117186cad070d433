// NAS-Bench-201 ("nb201"): parsing, canonical spelling, encoding and analytic costs.
//
// Cost counting rules (batch 1, CIFAR: input 3x32x32, 10 classes; see Costs in
// search_space.h and docs/search-spaces.md). Every kernel adds one to `kernels` and
// 4 x (input + output activation elements + its learnable weights) to `bytes`:
//   Conv kxk (pad (k-1)/2, no bias): flops 2 x out_elements x C_in x k x k,
//                                    params C_out x C_in x k x k.
//   BatchNorm(C): params 2 x C (weight and bias), bytes count them as weights.
//   ReLU, AvgPool: in and out elements only.
//   Addition of two tensors: reads two inputs, writes one output.
//   Global average pool: reads C x H x W, writes C.
//   Linear(in -> out): flops 2 x in x out, params in x out + out.
// Network: stem Conv3x3(3->16)-BN; 5 cells at C=16 (32x32); reduction block 16->32;
// 5 cells at C=32 (16x16); reduction block 32->64; 5 cells at C=64 (8x8); head
// BN-ReLU-global pool-Linear(64->10). A reduction block C->2C is ReLU-Conv3x3(s2)-BN,
// ReLU-Conv3x3-BN, shortcut AvgPool2x2(s2)-Conv1x1 (no BN), and the addition: 9 kernels.
// Cells: only live edges cost (an edge is live when its op is not none, its source is
// reachable from node 0 and its target reaches node 3, both through non-none edges).
// nor_conv_kxk = ReLU, Conv, BN (3 kernels); avg_pool_3x3 = 1 kernel; skip_connect is
// free. A node with m >= 2 live incoming edges costs m - 1 additions. `params` therefore
// equals sum(p.numel() for p in model.parameters()) of a model that builds live edges
// only.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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

constexpr int kNumNodes = 4;
constexpr int kNumEdges = 6;
constexpr int kNumOps = 5;
constexpr int kNumCostDims = 4;
constexpr int64_t kNumArchitectures = 15625;
static_assert(kNumArchitectures == kNumOps * kNumOps * kNumOps * kNumOps * kNumOps * kNumOps);
constexpr int kEncodingSize = 3 * kNumEdges * kNumOps + kNumCostDims;
constexpr size_t kMaxEcho = 40;

enum Op : uint8_t { kNone = 0, kSkip = 1, kConv1x1 = 2, kConv3x3 = 3, kAvgPool = 4 };
constexpr std::array<absl::string_view, kNumOps> kOpNames = {
    "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"};

// Edge e carries node kEdgeFrom[e] into node kEdgeTo[e]; edges are sorted by target.
constexpr std::array<int, kNumEdges> kEdgeFrom = {0, 0, 1, 0, 1, 2};
constexpr std::array<int, kNumEdges> kEdgeTo = {1, 2, 2, 3, 3, 3};

constexpr int kCellsPerStage = 5;
constexpr int kNumStages = 3;
constexpr int kInputChannels = 3;
constexpr int kInputSide = 32;
constexpr int kStemChannels = 16;
constexpr int kNumClasses = 10;

// Quotes text for an error message, cut to kMaxEcho characters.
std::string Echo(absl::string_view text) {
  return absl::StrCat("'", absl::CEscape(text.substr(0, kMaxEcho)),
                      text.size() > kMaxEcho ? "'..." : "'");
}

// An INVALID_ARGUMENT error at a character offset of the architecture string.
absl::Status ErrorAt(size_t offset, absl::string_view reason) {
  return absl::InvalidArgumentError(
      absl::StrCat("nb201 architecture: offset ", offset, ": ", reason));
}

// The op of every edge after two prunings that runtimes do. Live ops: edges that cannot
// carry data from node 0 to node 3 become none (what a cell computes). Output ops: only
// edges whose target has no path to node 3 become none (what a runtime runs that drops
// the nodes without a way out but still computes on the zeros that a none edge passes
// on: HELP's pixel3 and raspi4).
struct PrunedOps {
  std::array<uint8_t, kNumEdges> live;
  std::array<uint8_t, kNumEdges> to_output;
};
PrunedOps Prune(const Architecture& arch) {
  // Edges are sorted by target, so a source's reachability is final when it is read.
  std::array<bool, kNumNodes> from_input = {true, false, false, false};
  for (int e = 0; e < kNumEdges; ++e) {
    if (arch.ops[e] != kNone && from_input[kEdgeFrom[e]]) from_input[kEdgeTo[e]] = true;
  }
  std::array<bool, kNumNodes> to_output = {false, false, false, true};
  for (int e = kNumEdges - 1; e >= 0; --e) {
    if (arch.ops[e] != kNone && to_output[kEdgeTo[e]]) to_output[kEdgeFrom[e]] = true;
  }
  PrunedOps pruned;
  for (int e = 0; e < kNumEdges; ++e) {
    pruned.to_output[e] = to_output[kEdgeTo[e]] ? arch.ops[e] : kNone;
    pruned.live[e] = from_input[kEdgeFrom[e]] ? pruned.to_output[e] : kNone;
  }
  return pruned;
}

std::array<uint8_t, kNumEdges> LiveOps(const Architecture& arch) { return Prune(arch).live; }

// Adds one cell with C channels at side x side, given its live ops.
void CountCell(const std::array<uint8_t, kNumEdges>& live, int c, int side,
               CostCounter& counter) {
  std::array<int, kNumNodes> inputs = {0, 0, 0, 0};
  for (int e = 0; e < kNumEdges; ++e) {
    switch (live[e]) {
      case kNone:
        continue;
      case kSkip:
        break;
      case kConv1x1:
      case kConv3x3:
        counter.Elementwise(c, side);
        counter.Conv(c, c, live[e] == kConv1x1 ? 1 : 3, 1, side);
        counter.BatchNorm(c, side);
        break;
      case kAvgPool:
        counter.AvgPool(c, 3, 1, side);
        break;
    }
    ++inputs[kEdgeTo[e]];
  }
  for (int node = 1; node < kNumNodes; ++node) {
    for (int i = 1; i < inputs[node]; ++i) counter.Add(c, side);
  }
}

// Adds the residual reduction block c_in -> c_out (stride 2); returns the output side.
int CountReduction(int c_in, int c_out, int side, CostCounter& counter) {
  counter.Elementwise(c_in, side);
  const int out_side = counter.Conv(c_in, c_out, 3, 2, side);
  counter.BatchNorm(c_out, out_side);
  counter.Elementwise(c_out, out_side);
  counter.Conv(c_out, c_out, 3, 1, out_side);
  counter.BatchNorm(c_out, out_side);
  const int pooled = counter.AvgPool(c_in, 2, 2, side);
  counter.Conv(c_in, c_out, 1, 1, pooled);
  counter.Add(c_out, out_side);
  return out_side;
}

// Parses group g ("|op~0|...|op~g-1|", the edges into node g) starting at `offset`.
absl::Status ParseGroup(absl::string_view group, int g, size_t offset,
                        std::vector<uint8_t>& ops) {
  if (group.empty() || group.front() != '|') {
    return ErrorAt(offset, absl::StrCat("missing '|' at the start of group ", g,
                                        " (the edges into node ", g, ")"));
  }
  std::vector<absl::string_view> edges = absl::StrSplit(group.substr(1), '|');
  const absl::string_view tail = edges.back();
  edges.pop_back();
  if (!tail.empty()) {
    if (g == kNumNodes - 1 && static_cast<int>(edges.size()) >= g) {
      // The junk starts after the '|' that closes the last expected edge.
      const size_t junk = edges[g - 1].data() + edges[g - 1].size() + 1 - group.data();
      return ErrorAt(offset + junk,
                     absl::StrCat("trailing characters ", Echo(group.substr(junk)),
                                  " after the architecture's last '|'"));
    }
    return ErrorAt(offset + group.size(),
                   absl::StrCat("missing '|' at the end of group ", g));
  }
  if (static_cast<int>(edges.size()) != g) {
    return ErrorAt(offset, absl::StrCat("group ", g, " (the edges into node ", g,
                                        ") has ", edges.size(), " edges, expected ", g));
  }
  for (int k = 0; k < g; ++k) {
    const absl::string_view edge = edges[k];
    const size_t edge_offset = offset + (edge.data() - group.data());
    const std::string edge_name = absl::StrCat("edge ", g, "<-", k);
    const size_t tilde = edge.find('~');
    if (tilde == absl::string_view::npos) {
      return ErrorAt(edge_offset, absl::StrCat(edge_name, ": expected 'op~", k, "', got ",
                                               Echo(edge)));
    }
    const absl::string_view name = edge.substr(0, tilde);
    const auto op = std::find(kOpNames.begin(), kOpNames.end(), name);
    if (op == kOpNames.end()) {
      return ErrorAt(edge_offset,
                     absl::StrCat(edge_name, ": unknown op ", Echo(name),
                                  " (valid ops: ", absl::StrJoin(kOpNames, ", "), ")"));
    }
    const absl::string_view index = edge.substr(tilde + 1);
    if (index != absl::StrCat(k)) {
      return ErrorAt(
          edge_offset + tilde + 1,
          absl::StrCat(edge_name, ": bad node index ", Echo(index), ", expected ", k,
                       " (group ", g, " lists inputs 0..", g - 1, " in order)"));
    }
    ops.push_back(static_cast<uint8_t>(op - kOpNames.begin()));
  }
  return absl::OkStatus();
}

// The op whose name starts text at pos, advancing pos past the name; -1 when none does.
int MatchOp(std::string_view text, size_t& pos) {
  const std::string_view rest = text.substr(pos);
  const auto starts = [&](Op op) {
    const absl::string_view name = kOpNames[op];
    return rest.size() >= name.size() && std::memcmp(rest.data(), name.data(), name.size()) == 0;
  };
  int op = -1;
  switch (rest.empty() ? '\0' : rest.front()) {
    case 'n':
      op = starts(kNone) ? kNone : starts(kConv3x3) ? kConv3x3 : starts(kConv1x1) ? kConv1x1 : -1;
      break;
    case 's':
      op = starts(kSkip) ? kSkip : -1;
      break;
    case 'a':
      op = starts(kAvgPool) ? kAvgPool : -1;
      break;
  }
  if (op >= 0) pos += kOpNames[op].size();
  return op;
}

// The canonical spelling "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|" in one pass without
// allocating: what clients send in bulk. Returns false on any deviation (whitespace
// included), leaving the diagnosis to ParseGroup.
bool ParseCanonical(std::string_view text, std::array<uint8_t, kNumEdges>& ops) {
  size_t pos = 0;
  const auto expect = [&](char c) { return pos < text.size() && text[pos++] == c; };
  for (int e = 0; e < kNumEdges; ++e) {
    if (kEdgeFrom[e] == 0 && ((e > 0 && !expect('+')) || !expect('|'))) return false;
    const int op = MatchOp(text, pos);
    if (op < 0 || !expect('~') || !expect(static_cast<char>('0' + kEdgeFrom[e])) || !expect('|')) {
      return false;
    }
    ops[e] = static_cast<uint8_t>(op);
  }
  return pos == text.size();
}

class Nb201SearchSpace final : public SearchSpace {
 public:
  std::string_view name() const override { return "nb201"; }

  // Parses "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|", tolerating surrounding whitespace.
  absl::StatusOr<Architecture> Parse(std::string_view text) const override {
    if (std::array<uint8_t, kNumEdges> ops; ParseCanonical(text, ops)) {
      return Architecture{std::vector<uint8_t>(ops.begin(), ops.end())};
    }
    const absl::string_view input(text.data(), text.size());
    const absl::string_view trimmed = absl::StripAsciiWhitespace(input);
    if (trimmed.empty()) {
      return ErrorAt(0,
                     "empty architecture string, expected "
                     "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'");
    }
    const size_t base = trimmed.data() - input.data();
    const std::vector<absl::string_view> groups = absl::StrSplit(trimmed, '+');
    if (groups.size() != kNumNodes - 1) {
      return ErrorAt(base, absl::StrCat("expected 3 groups separated by '+', got ",
                                        groups.size(), " in ", Echo(trimmed)));
    }
    Architecture arch;
    arch.ops.reserve(kNumEdges);
    for (int g = 1; g < kNumNodes; ++g) {
      const absl::string_view group = groups[g - 1];
      RETURN_IF_ERROR(
          ParseGroup(group, g, base + (group.data() - trimmed.data()), arch.ops));
    }
    return arch;
  }

  // Expects an architecture from Parse (6 ops, each below 5), as do the methods below.
  std::string Canonical(const Architecture& arch) const override {
    std::string out;
    for (int e = 0; e < kNumEdges; ++e) {
      if (e > 0 && kEdgeFrom[e] == 0) out += "+";
      absl::StrAppend(&out, "|", kOpNames[arch.ops[e]], "~", kEdgeFrom[e]);
      if (kEdgeFrom[e] + 1 == kEdgeTo[e]) out += "|";
    }
    return out;
  }

  int encoding_size() const override { return kEncodingSize; }

  // Raw one-hot ops (30), one-hot ops after liveness (30), one-hot ops of the edges
  // with a path to the output (30; see Prune), then log1p(flops), log1p(params),
  // log1p(bytes) and kernels / 100.
  void Encode(const Architecture& arch, float* out) const override {
    std::fill(out, out + kEncodingSize, 0.0f);
    const PrunedOps pruned = Prune(arch);
    for (int e = 0; e < kNumEdges; ++e) {
      out[e * kNumOps + arch.ops[e]] = 1.0f;
      out[(kNumEdges + e) * kNumOps + pruned.live[e]] = 1.0f;
      out[(2 * kNumEdges + e) * kNumOps + pruned.to_output[e]] = 1.0f;
    }
    EncodeCosts(AnalyticCosts(arch), out + 3 * kNumEdges * kNumOps);
  }

  // Costs of the whole CIFAR network; see the rules at the top of this file.
  Costs AnalyticCosts(const Architecture& arch) const override {
    CostCounter counter;
    int side = counter.Conv(kInputChannels, kStemChannels, 3, 1, kInputSide);
    counter.BatchNorm(kStemChannels, side);
    const std::array<uint8_t, kNumEdges> live = LiveOps(arch);
    int c = kStemChannels;
    for (int stage = 0; stage < kNumStages; ++stage) {
      if (stage > 0) {
        side = CountReduction(c, 2 * c, side, counter);
        c *= 2;
      }
      for (int cell = 0; cell < kCellsPerStage; ++cell) CountCell(live, c, side, counter);
    }
    counter.Classifier(c, side, kNumClasses);
    return counter.costs();
  }

  int num_ops() const override { return kNumOps; }
  int num_positions() const override { return kNumEdges; }
  bool positions_interchangeable() const override { return true; }
  int identity_op() const override { return kSkip; }
  bool output_cut_off(const Architecture& arch) const override {
    const std::array<uint8_t, kNumEdges> live = LiveOps(arch);
    return std::all_of(live.begin(), live.end(), [](uint8_t op) { return op == kNone; });
  }
  int64_t enumerable_size() const override { return kNumArchitectures; }

  int64_t ParseIndex(std::string_view text) const override {
    std::array<uint8_t, kNumEdges> ops;
    if (!ParseCanonical(text, ops)) return -1;
    int64_t index = 0;
    for (int e = kNumEdges - 1; e >= 0; --e) index = index * kNumOps + ops[e];
    return index;
  }
};

}  // namespace

const SearchSpace& Nb201Space() {
  static const SearchSpace* const space = new Nb201SearchSpace();
  return *space;
}

}  // namespace latpred::core
