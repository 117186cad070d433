// What every part of Adapt reads about the samples, computed once per fit, and the one
// shape every part's output takes. Internal to the predictor.
//
// A part is a model of how a device's log latency depends on the architecture, with a
// grid of Gaussian priors (its settings). Each setting's posterior is a Candidate: its
// log evidence (the marginal likelihood of the samples' log latencies, computed the same
// way for every part), its posterior mean as head coefficients, and a way to get its
// leave-one-out predictions. Combine (combine.h) averages every candidate by evidence and
// prior mass into one DeviceHead.
#ifndef LATPRED_PREDICTOR_ADAPT_CONTEXT_H_
#define LATPRED_PREDICTOR_ADAPT_CONTEXT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "latpred/predictor/adapt_options.h"
#include "latpred/predictor/descriptor.h"
#include "latpred/predictor/predictor.h"
#include "posterior.h"
#include "prior.h"

namespace latpred::predictor {

// One prior setting's posterior.
struct Candidate {
  double evidence = 0;
  // Linear in log latency: theta = [z; b; w] (DeviceHead's z, b and w; w may be zero).
  // Additive: coefficients [c0; a weight per standardised feature; an amplitude per
  // log1p-encoded cost] of a latency relative to the samples' geometric mean.
  std::vector<double> theta;
  bool additive = false;
  // Leave-one-out log-latency predictions of the samples under this setting (the same
  // prior, the other samples); empty where the setting cannot be refitted.
  std::function<std::vector<double>()> loo;
};

// A design: the samples' rows in a part's own parameters (n x q) and their Gram.
struct Design {
  std::vector<double> rows;
  int q = 0;
  Gram gram;
};

// A range [begin, end) of operation-count columns (OpCountLayout).
struct Columns {
  int begin = 0, end = 0;
};

class AdaptContext {
 public:
  // Observations must be positive and finite (Adapt checks).
  AdaptContext(const BaseModel& model, const std::vector<Observation>& observations,
               const AdaptOptions& options, const DescriptorPrior* descriptor = nullptr);

  const BaseModel& model;
  const AdaptOptions& options;
  const core::SearchSpace& space;
  const DescriptorPrior* descriptor;  // the device's descriptor prior, or null
  std::vector<core::Architecture> archs;
  std::vector<double> y;      // log latency
  std::vector<double> truth;  // latency_ms
  double log_ybar = 0;        // mean of y
  HeadPrior prior;
  int dim = 0, p = 0;       // embedding size; p = dim + 1 ([z; b])
  int f = 0, p2 = 0;        // features; p2 = p + f ([z; b; w])
  int first_cost = 0;       // index in theta of the first analytic cost feature
  int exp_costs = 0;        // analytic costs encoded as log1p (all but kernels)
  int coef_size = 0;        // size of an additive candidate's theta
  std::vector<double> rows; // [h(a), 1] per sample, n x p
  std::vector<double> x;    // standardised features, n x f
  OpCountLayout layout;
  std::vector<Columns> told_apart; // the count blocks the samples tell apart

  // Base model noise times each scale, then every device noise level above those.
  std::vector<double> NoiseGrid(const std::vector<double>& scales) const;
  // The prior that is head's on its first parameters (none when null) and independent
  // N(mean[i], var[i]) on the rest.
  static PriorSetting BlockPrior(const PriorSetting* head, const std::vector<double>& mean,
                                 const std::vector<double>& var, double noise);
  // The count columns cc of a count matrix (n x layout.columns).
  std::vector<double> BlockColumns(const std::vector<double>& counts, size_t n, Columns cc) const;
  double feature_scale(int j) const { return model.feature_scale(j); }
  double feature_mean(int j) const { return model.feature_mean(j); }
};

// Leave-one-out log predictions of a linear setting on design d (targets y), for the
// first `count` samples; empty where the refit is undefined.
std::vector<double> LeaveOneOut(const Design& d, const std::vector<double>& y,
                                const PriorSetting& setting, int count);

// Samples in the leave-one-out figures: the first min(n, options.max_loo_samples).
int LooSamples(const AdaptContext& ctx);

}  // namespace latpred::predictor

#endif  // LATPRED_PREDICTOR_ADAPT_CONTEXT_H_
