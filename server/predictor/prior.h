// The Gaussian prior over device heads that the source devices imply.
#ifndef LATPRED_PREDICTOR_PRIOR_H_
#define LATPRED_PREDICTOR_PRIOR_H_

#include <functional>
#include <vector>

#include "latpred/predictor/predictor.h"
#include "linalg.h"

namespace latpred::predictor {

// Heads are vectors theta = [z; b] of size dim + 1.
struct HeadPrior {
  int dim = 0;
  std::vector<double> mean;                 // average source head
  std::vector<std::vector<double>> sources; // every source head
  Matrix z_cov;                              // covariance of source z (dim x dim)
  double z_scale = 1;                        // trace(z_cov) / dim, floored
};

// Variance of the prior on the bias b: nearly flat, since devices differ in speed by
// orders of magnitude and the samples fix the scale.
inline constexpr double kBiasPriorVariance = 100.0;

// Mean and covariance of the source heads of a base model.
HeadPrior SourcePrior(const BaseModel& model);

// Prior covariance alpha * (z_cov + beta * z_scale * I) on z, kBiasPriorVariance on b.
Matrix PriorCovariance(const HeadPrior& prior, double alpha, double beta);

// Rows [h(a), 1] for each architecture: n x (dim + 1), row-major.
std::vector<double> DesignRows(const BaseModel& model,
                               const std::vector<core::Architecture>& archs);

// The operation counts that the encoding's one-hot blocks hold (SearchSpace::Encode):
// per block, a column per operation but the first, which is the reference.
struct OpCountLayout {
  int blocks = 0;
  int per_block = 0;           // num_ops - 1 columns per block: block b is [b, b + 1) * per_block
  int columns = 0;             // blocks * per_block
  std::vector<int> column_of;  // feature j -> its count column; -1 for none
};
OpCountLayout CountLayout(const core::SearchSpace& space, int num_features);

// Rows of counts (n x layout.columns) from standardised features x (n x num_features):
// feature j adds x_j * scale(j), its raw value less its mean, so the counts are centred.
std::vector<double> OpCountRows(const OpCountLayout& layout, const std::vector<double>& x,
                                size_t n, const std::function<double(int)>& scale);

}  // namespace latpred::predictor

#endif  // LATPRED_PREDICTOR_PRIOR_H_
