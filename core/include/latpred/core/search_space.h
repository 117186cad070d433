// Search spaces: parse, validate, canonicalise, encode and cost neural architectures.
//
// No gRPC and no LibTorch here: the server, the agent and the benchmark share it.
// Facts per space are in docs/search-spaces.md (NAS-Bench-201 "nb201", FBNet "fbnet").
#ifndef LATPRED_CORE_SEARCH_SPACE_H_
#define LATPRED_CORE_SEARCH_SPACE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace latpred::core {

// One architecture of a search space, as operation ids.
//   nb201: 6 ids, edges in string order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2),
//          ids: 0 none, 1 skip_connect, 2 nor_conv_1x1, 3 nor_conv_3x3, 4 avg_pool_3x3.
//   fbnet: 22 ids into k3_e1, k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip.
struct Architecture {
  std::vector<uint8_t> ops;
  bool operator==(const Architecture& o) const { return ops == o.ops; }
};

// Analytic cost of one forward pass at batch 1, computed from the space's spec.
//   flops:   2 x multiply-accumulates of every convolution and linear layer (BN, ReLU,
//            pooling and additions are not counted).
//   params:  learnable parameters: conv weights (no conv bias), BN weight and bias
//            (2 per channel), linear weight and bias. BN running stats are not counted.
//   bytes:   4 x (input + output activation elements + weights) summed over kernels.
//   kernels: operations launched: each conv, BN, ReLU, pool, addition, linear,
//            channel shuffle and global pool counts one.
// Edges that cannot carry data from the cell input to the cell output (nb201) cost
// nothing: a runtime that prunes dead code never runs them.
struct Costs {
  double flops = 0;
  double params = 0;
  double bytes = 0;
  double kernels = 0;
};

// A search space. Implementations are stateless singletons; all methods are thread-safe.
class SearchSpace {
 public:
  virtual ~SearchSpace() = default;

  // Short name used in the API: "nb201" or "fbnet".
  virtual std::string_view name() const = 0;

  // Parses and validates text. Errors are INVALID_ARGUMENT and name the position
  // (character offset, edge or layer) and the reason.
  virtual absl::StatusOr<Architecture> Parse(std::string_view text) const = 0;

  // The canonical spelling of an architecture (the bundled data's spelling).
  virtual std::string Canonical(const Architecture& arch) const = 0;

  // Length of the predictor's feature vector, and the vector itself (written to out).
  // It starts with one or more one-hot blocks of num_positions() x num_ops() values
  // (position-major: value position * num_ops() + op is 1 when that position holds op;
  // nb201 has three: all edges, live edges and edges with a path to the output; fbnet
  // one), which the predictor relies on to count operations. Its last kCostFeatures
  // values are the analytic costs:
  // log1p(flops), log1p(params), log1p(bytes), kernels / 100.
  static constexpr int kCostFeatures = 4;
  virtual int encoding_size() const = 0;
  virtual void Encode(const Architecture& arch, float* out) const = 0;

  // Analytic costs of the whole network (see Costs).
  virtual Costs AnalyticCosts(const Architecture& arch) const = 0;

  // Number of operations per layer/edge and number of layers/edges.
  virtual int num_ops() const = 0;
  virtual int num_positions() const = 0;
  // True when an op sees the same input and output shapes at every position, so costs
  // about the same wherever it sits (nb201: every edge of a cell; not fbnet, whose
  // stages change channels and resolution). The predictor then shares a weight per op
  // across positions.
  virtual bool positions_interchangeable() const { return false; }
  // True when the network's output does not depend on its input (nb201: no path of
  // operations other than none leads from a cell's input to its output). Such a network
  // computes next to nothing where the runtime prunes dead code, and in full where it
  // does not: of nb201's 341, HELP's pixel3 and raspi4 time most at about 0.5% of the
  // median architecture (median over the 341), HELP's other devices at 64-81% of it.
  virtual bool output_cut_off(const Architecture& /*arch*/) const { return false; }
  // The op that passes its input through unchanged at every position, or -1 (nb201:
  // skip_connect; not fbnet's skip, a convolution where the shape changes). Where a
  // runtime runs every edge as written it costs least: none is a kernel that multiplies
  // by zero.
  virtual int identity_op() const { return -1; }

  // Number of architectures when the space is small enough to enumerate (nb201:
  // 15,625), else 0.
  virtual int64_t enumerable_size() const { return 0; }
  // Position of arch in that enumeration: its ops are the digits of a base-num_ops()
  // number, the first op least significant. Only meaningful when enumerable_size() > 0.
  int64_t Index(const Architecture& arch) const;
  // Index() of a canonically spelled architecture, parsed without allocating: the hot
  // path of bulk prediction. -1 for any other text (Parse accepts the spellings it
  // tolerates and diagnoses errors) and in spaces that are not enumerable.
  virtual int64_t ParseIndex(std::string_view /*text*/) const { return -1; }
};

// The space called name ("nb201", "fbnet"), or INVALID_ARGUMENT listing the known ones.
absl::StatusOr<const SearchSpace*> GetSearchSpace(std::string_view name);

// Names of all search spaces, in a stable order.
std::vector<std::string> SearchSpaceNames();

// Convenience accessors for the two built-in spaces.
const SearchSpace& Nb201Space();
const SearchSpace& FbnetSpace();

}  // namespace latpred::core

#endif  // LATPRED_CORE_SEARCH_SPACE_H_
