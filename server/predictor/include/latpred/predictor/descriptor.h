// MAPLE's idea in the predictor: what is measured about a machine (its descriptor) sets
// the prior of its head.
//
// Model: a device's head theta = [z; b] is linear in its descriptor. Every descriptor
// value is a positive rate, size or time, read as its logarithm and standardised over the
// devices that have it; theta = c + W x, fitted by ridge regression across the devices
// with a descriptor and a fitted head (MAPLE feeds the descriptor to a predictor trained
// across devices; a linear map is the one that extrapolates to a device unlike all of
// them). The ridge is chosen by predicting each of those devices' heads from the others
// (leave one device out), scored by the mean squared log-latency error over the space (the
// heads' difference under the second moment of [h(a); 1] over random architectures); an
// infinite ridge is the plain average of heads, and a descriptor whose best ridge does no
// better than that has learned nothing and gives no prior. The prior covariance is the
// spread of the held-out errors at the chosen ridge, widened for a target farther out in
// descriptor space than the devices were (its leverage), so a descriptor that predicts
// heads well gives a tight prior, on the speed b as on the shape z. The descriptor part
// of Adapt (part_descriptor.cc) scores that prior on the samples like any other part;
// with no samples its mean is the zero-shot head where its expected error on the target
// is below the plain average's.
#ifndef LATPRED_PREDICTOR_DESCRIPTOR_H_
#define LATPRED_PREDICTOR_DESCRIPTOR_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "latpred/predictor/adapt_options.h"

namespace latpred::predictor {

class BaseModel;

// Feature name -> value. A feature a device lacks is absent; a value that is not positive
// and finite is treated as absent.
using Descriptor = std::map<std::string, double>;

// A device the map learns from: its descriptor and its head's [z; b].
struct DescribedHead {
  std::string name;
  Descriptor descriptor;
  std::vector<double> theta;
};

// A target's prior from its descriptor.
struct DescriptorPrior {
  std::vector<double> mean;          // [z; b]
  std::vector<double> cov;           // (dim + 1)^2, row-major
  double ridge = 0;                  // the chosen ridge, per device
  int devices = 0;                   // devices the map learned from
  std::vector<std::string> features; // the target's features that entered the map
  // Mean squared log-latency error of held-out heads: at l, and of the plain average.
  double held_out_error = 0;
  double average_error = 0;
  // The held-out error widened by the target's leverage: what the map's head is expected
  // to miss by on this target. Zero-shot takes the map's head only where this is below
  // average_error (a target far outside the devices' descriptors is extrapolated to).
  double expected_error = 0;
};

// The map on plain vectors: heads of `population` (each theta of size p), `second_moment`
// (p x p, row-major) the metric of head differences. nullopt where the map has learned
// nothing for this target: too few devices share its features, or no ridge beats the
// plain average by options.descriptor_min_gain.
std::optional<DescriptorPrior> FitDescriptorPrior(const Descriptor& target,
                                                  const std::vector<DescribedHead>& population,
                                                  const std::vector<double>& second_moment,
                                                  const AdaptOptions& options);

// The same with the metric of a base model's embedding (random architectures of its
// space). population's thetas must be of size embedding_dim + 1.
std::optional<DescriptorPrior> FitDescriptorPrior(const BaseModel& model,
                                                  const Descriptor& target,
                                                  const std::vector<DescribedHead>& population,
                                                  const AdaptOptions& options);

}  // namespace latpred::predictor

#endif  // LATPRED_PREDICTOR_DESCRIPTOR_H_
