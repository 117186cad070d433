// Accumulates analytic Costs kernel by kernel (private to core's search spaces).
// Activations are C x side x side at batch 1; see Costs in search_space.h for the rules.
#ifndef LATPRED_CORE_SRC_COST_COUNTER_H_
#define LATPRED_CORE_SRC_COST_COUNTER_H_

#include <cmath>

#include "latpred/core/search_space.h"

namespace latpred::core {

class CostCounter {
 public:
  // Conv kxk with stride, pad (k-1)/2 and groups, no bias; returns the output side.
  int Conv(int c_in, int c_out, int k, int stride, int side, int groups = 1) {
    const int out_side = OutSide(k, stride, side);
    const double out = Elements(c_out, out_side);
    const double fan_in = static_cast<double>(c_in / groups) * k * k;
    Kernel(Elements(c_in, side), out, c_out * fan_in, out * fan_in);
    return out_side;
  }
  // Average pool kxk with stride and pad (k-1)/2; returns the output side.
  int AvgPool(int c, int k, int stride, int side) {
    const int out_side = OutSide(k, stride, side);
    Kernel(Elements(c, side), Elements(c, out_side), 0, 0);
    return out_side;
  }
  void BatchNorm(int c, int side) { Kernel(Elements(c, side), Elements(c, side), 2.0 * c, 0); }
  // ReLU and channel shuffle: one read and one write per element.
  void Elementwise(int c, int side) { Kernel(Elements(c, side), Elements(c, side), 0, 0); }
  void Add(int c, int side) { Kernel(2 * Elements(c, side), Elements(c, side), 0, 0); }
  void GlobalPool(int c, int side) { Kernel(Elements(c, side), c, 0, 0); }
  void Linear(int in, int out) {
    const double macs = static_cast<double>(in) * out;
    Kernel(in, out, macs + out, macs);
  }
  // The tail both networks end with: BatchNorm, ReLU, global average pool, linear.
  void Classifier(int c, int side, int classes) {
    BatchNorm(c, side);
    Elementwise(c, side);
    GlobalPool(c, side);
    Linear(c, classes);
  }
  const Costs& costs() const { return costs_; }

 private:
  static int OutSide(int k, int stride, int side) {
    return (side + 2 * ((k - 1) / 2) - k) / stride + 1;
  }
  static double Elements(int c, int side) { return static_cast<double>(c) * side * side; }
  // Records one kernel.
  void Kernel(double in, double out, double weights, double macs) {
    costs_.flops += 2 * macs;
    costs_.params += weights;
    costs_.bytes += 4 * (in + out + weights);
    costs_.kernels += 1;
  }

  Costs costs_;
};

// Writes the last SearchSpace::kCostFeatures values of an encoding: log1p(flops),
// log1p(params), log1p(bytes) and kernels / 100.
inline void EncodeCosts(const Costs& costs, float* out) {
  out[0] = static_cast<float>(std::log1p(costs.flops));
  out[1] = static_cast<float>(std::log1p(costs.params));
  out[2] = static_cast<float>(std::log1p(costs.bytes));
  out[3] = static_cast<float>(costs.kernels / 100);
}
static_assert(SearchSpace::kCostFeatures == 4, "EncodeCosts writes four values");

}  // namespace latpred::core

#endif  // LATPRED_CORE_SRC_COST_COUNTER_H_
