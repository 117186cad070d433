// Settings of Adapt: which parts of the device head run and the grids of their priors.
// Every default is here, one line of provenance each; the measurements behind them are in
// bench/README.md ("Adaptation constants"). latpred-bench (--adapt-off) and the server
// read the same struct.
#ifndef LATPRED_PREDICTOR_ADAPT_OPTIONS_H_
#define LATPRED_PREDICTOR_ADAPT_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace latpred::predictor {

struct AdaptOptions {
  // The parts Adapt averages (names as in PartNames()); a part left out scores nothing.
  std::vector<std::string> disabled_parts;

  // embedding: prior covariance alpha * (source spread + beta * its scale) (grid of 3x3,
  // the sources' spread is the natural unit); noise = base noise times each scale.
  std::vector<double> alphas = {0.25, 1.0, 4.0};
  std::vector<double> betas = {0.01, 0.1, 1.0};
  std::vector<double> noise_scales = {0.5, 2.0, 8.0};
  // Every noise grid also reaches these log-latency variances: a phone measured in the
  // wild has noise near 0.1 in log latency where desktop GPU sources leave 0.004.
  // (The residual, cost-model, one-cost and log-linear count parts were measured on the
  // generalisation protocol and removed: bench/README.md, "Fewer parts".)
  std::vector<double> device_noise_variances = {1e-3, 1e-2, 4e-2};

  // additive: the variances of a cost per operation relative to the typical latency
  // (a share of 0.1 to 1 of it); additive_costs: of a rate per analytic cost. The sums'
  // noise is larger than the base model's (a device measured in the wild): their own
  // noise scales of the base noise.
  std::vector<double> additive_count_variances = {0.01, 0.1, 1};
  std::vector<double> additive_cost_variances = {0.1, 1, 10};
  std::vector<double> additive_noise_scales = {2.0, 8.0, 32.0};
  // Prior mass of the count sums once there are as many samples as their terms, and of the
  // embedding alone then; chosen across collections (HELP from LatBench and the reverse).
  double additive_prior_mass = 16;
  double embedding_prior_mass = 0.25;
  // source_additive: a source device's costs (least squares on 256 random architectures)
  // as the prior mean up to a scale ~ N(1, 1); each cost's spread a share of itself.
  int reference_archs = 256;
  std::vector<double> source_additive_spreads = {0.3, 1};
  double source_additive_floor = 1e-4;
  double source_scale_variance = 1;
  // A sum of costs fitted on a few samples can extrapolate below zero: floor it at 5% of
  // the typical latency (the same floor the head predicts with).
  double additive_fit_floor = 0.05;

  // descriptor: ridges per device of the map (from a hundredth, nearly least squares, to
  // ten, nearly the plain average; the plain average itself is always scored too). The
  // map needs this many devices with all the features it uses (fewer cannot hold one out
  // and still fit), and must cut the held-out error of the plain average of heads by this
  // factor to count as having learned something (a tenth: below that, trial noise on
  // 20-30 source heads). Its prior covariance is the held-out spread times each alpha
  // (1 to 16: a target from another collection is farther than the held-out sources).
  std::vector<double> descriptor_ridges = {0.01, 0.1, 1, 10};
  int descriptor_min_devices = 4;
  double descriptor_min_gain = 0.9;
  std::vector<double> descriptor_alphas = {1, 4, 16};
  double descriptor_prior_mass = 1;

  // Glitches: prior rate of a sample off by up to a factor of 100 (1-4% of the bundled
  // phones' samples lie 5 robust sd away), set aside at posterior odds 19 (p = 0.95),
  // weighed from 8 samples (fewer cannot tell a glitch from a misfit) up to 64.
  double glitch_rate = 0.02;
  double glitch_range = 100;
  double glitch_odds = 19;
  int glitch_min_samples = 8;
  int glitch_max_samples = 64;

  // Leave-one-out figures: refits are closed form; cap the samples they run on.
  int max_loo_samples = 200;
  // Settings whose share of the average is below this are left out of the leave-one-out
  // refits (they move the served head's prediction by less than this share).
  double loo_min_weight = 1e-3;

  bool Enabled(const std::string& part) const;
};

// Every part's name, in the order Adapt scores them.
const std::vector<std::string>& PartNames();

// Disables the comma-separated parts of `list`; INVALID_ARGUMENT naming an unknown one.
absl::Status DisableParts(const std::string& list, AdaptOptions* options);

}  // namespace latpred::predictor

#endif  // LATPRED_PREDICTOR_ADAPT_OPTIONS_H_
