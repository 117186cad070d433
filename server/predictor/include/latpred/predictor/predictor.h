// The latency predictor: a base model per search space, trained across source devices,
// and a small per-device head adapted from a few samples.
//
// Model: log latency_ms(a, d) = h(a) . z_d + b_d, where h is a network (a linear path
// plus an MLP, in LibTorch) over the space's encoding of architecture a, shared by all
// devices, and (z_d, b_d) is device d's head. Training learns h and the source
// devices' heads jointly. A new device's head averages, by evidence and prior mass, the
// closed-form Bayesian fits of a few parts, each a model of how latency depends on the
// architecture (parts.h: the sources' embedding with a head, a residual on the
// encoding, cost models, a weight per operation, sums of per-operation or analytic
// costs in latency, a source's costs rescaled); settings in AdaptOptions. Zero samples
// give the prior mean: the zero-shot prediction.
//
// Torch stays inside predictor.cc; this header is plain C++.
#ifndef LATPRED_PREDICTOR_PREDICTOR_H_
#define LATPRED_PREDICTOR_PREDICTOR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "latpred/predictor/adapt_options.h"
#include "latpred/predictor/descriptor.h"
#include "latpred/core/search_space.h"

namespace latpred::predictor {

// Latencies of source devices for training: archs x devices, NaN where not measured.
struct TrainingData {
  const core::SearchSpace* space = nullptr;
  std::vector<core::Architecture> archs;
  std::vector<std::string> devices;
  std::vector<double> latency_ms;  // row-major, archs.size() x devices.size()
};

// Training settings. The defaults train both bundled spaces on 2 cores in well
// under a minute each.
struct TrainOptions {
  int embedding_dim = 12;
  int hidden = 128;
  int epochs = 40;
  int batch_archs = 256;
  double learning_rate = 3e-3;
  double weight_decay = 1e-5;
  uint64_t seed = 1;
  int threads = 0;  // 0: all cores
  // Called after each epoch with (epoch, epochs, mean squared error in log space).
  std::function<void(int, int, double)> progress;
  // Checked after each epoch: training stops with CANCELLED once it returns true.
  std::function<bool()> cancelled;
};

// Sets the number of threads the predictor computes with (0: all cores).
void SetThreads(int threads);

// One measured latency of an architecture on the device being adapted.
struct Observation {
  core::Architecture arch;
  double latency_ms = 0;
};

// How well a head fits the samples it was adapted on.
struct FitStats {
  int samples = 0;
  double fit_spearman = 0;
  double fit_mape = 0;  // percent
  // Leave-one-out figures of the served head (each sample predicted by the head's parts
  // refitted without it, their weights kept); 0 when fewer than 3 samples.
  double loo_mape = 0;      // percent
  // A robust spread of log(measured / predicted): 1.4826 times the median absolute
  // leave-one-out log error (the sd of a normal); the predictive interval's scale.
  double loo_log_sd = 0;
  // The share of the head that the descriptor part holds (0 without a descriptor prior;
  // 1 for a zero-shot head from the descriptor).
  double descriptor_weight = 0;
  double seconds = 0;
  // The samples Adapt set aside as measurement glitches (their architectures'
  // canonical strings; see Adapt).
  std::vector<std::string> set_aside;
};

// A device's head: log latency = h(a) . z + b + x(a) . w + the additive part, where x(a)
// is the standardised encoding of a; w (empty when unused) lets a device that the source
// devices do not span correct per-operation costs once it has enough samples to show it.
struct DeviceHead {
  std::vector<double> z;
  double b = 0;
  std::vector<double> w;
  // The additive part: log latency gains add_weight * (add_log_scale + log(max(floor,
  // add_bias + x(a) . add_w))), a latency that is a sum of per-operation costs rather
  // than their product. Absent (add_weight 0) unless Adapt's evidence backs it.
  double add_weight = 0;
  double add_log_scale = 0;
  double add_bias = 0;
  std::vector<double> add_w;
  // Costs that the encoding holds as log1p(cost) enter the sum in linear scale: the sum
  // also gains amplitude * exp(rate * x[feature]) for each term (rate = that feature's
  // standardisation scale, so the term is proportional to 1 + the cost).
  struct ExpTerm {
    int feature = 0;
    double amplitude = 0;
    double rate = 0;
  };
  std::vector<ExpTerm> add_exp;
  FitStats fit;

  // The additive part's log latency for the n standardised features x.
  double AdditiveLogLatency(const double* x, size_t n) const;

  std::string Serialize() const;
  static absl::StatusOr<DeviceHead> Deserialize(std::string_view blob);
};

// A trained base model. Immutable once built; every method is thread-safe.
class BaseModel {
 public:
  ~BaseModel();
  BaseModel(const BaseModel&) = delete;
  BaseModel& operator=(const BaseModel&) = delete;

  // Trains h and the source heads on data. FAILED_PRECONDITION without enough data.
  static absl::StatusOr<std::shared_ptr<const BaseModel>> Train(const TrainingData& data,
                                                                const TrainOptions& options);
  // Restores a model written by Serialize for the given space.
  static absl::StatusOr<std::shared_ptr<const BaseModel>> Deserialize(
      const core::SearchSpace& space, std::string_view blob);
  std::string Serialize() const;

  const core::SearchSpace& space() const;
  int embedding_dim() const;
  const std::vector<std::string>& source_devices() const;
  // The head learned for a source device, or nullptr when it is not one.
  const DeviceHead* SourceHead(std::string_view device) const;
  // Residual variance of log latency on the training data.
  double noise_variance() const;

  // h(a) for each architecture, row-major n x embedding_dim.
  std::vector<double> Embed(const std::vector<core::Architecture>& archs) const;
  // x(a): the space's encoding standardised as the network sees it, n x num_features.
  std::vector<double> Features(const std::vector<core::Architecture>& archs) const;
  int num_features() const;
  // Predicted latency_ms for each architecture, written to out (archs.size() values).
  void Predict(const DeviceHead& head, const std::vector<core::Architecture>& archs,
               double* out) const;
  // Every architecture's predicted latency_ms, indexed by SearchSpace::Index, for a
  // space small enough to enumerate (nb201: 15,625 values, about 2 ms to fill); empty
  // otherwise. Equal to what Predict returns for the same architectures.
  std::vector<double> LatencyTable(const DeviceHead& head) const;

  // The zero-shot head: the prior mean over source devices.
  DeviceHead Prior() const;
  // The zero-shot head of a device: its descriptor prior's mean where it has one whose
  // expected error is below the plain average's (and fit.descriptor_weight 1), else
  // Prior().
  DeviceHead ZeroShot(const DescriptorPrior* descriptor) const;
  // Adapts a head to a device from its observations (at least one). Non-positive or
  // non-finite latencies are INVALID_ARGUMENT. With enough samples, the one sample
  // that is most likely a measurement glitch is set aside where the evidence says so
  // (FitStats::set_aside).
  // descriptor: the device's descriptor prior (FitDescriptorPrior), scored by the
  // descriptor part; null for none.
  absl::StatusOr<DeviceHead> Adapt(const std::vector<Observation>& observations,
                                   const AdaptOptions& options = AdaptOptions(),
                                   const DescriptorPrior* descriptor = nullptr) const;
  // Picks k of candidates (indices) that best pin down a new device's head, given the
  // architectures already measured: greedy D-optimal design on h(a) and the features
  // under the prior, on the operation counts too with a budget of at most 5 samples.
  std::vector<int> Suggest(const std::vector<core::Architecture>& candidates,
                           const std::vector<core::Architecture>& measured, int k) const;

  // The standardisation scale of feature j: x(a)_j = (raw_j - mean_j) / scale_j.
  double feature_scale(int j) const;
  // mean_j of the same standardisation: the raw feature's mean over the training data.
  double feature_mean(int j) const;

 private:
  // exp(h(a) . z + b) through the network, without the residual (spaces without the
  // dense tables).
  void PredictEmbedded(const DeviceHead& head, const std::vector<core::Architecture>& archs,
                       double* out) const;
  // Every enabled part on every observation, none set aside, combined; writes log
  // p(samples) under the model average to *log_evidence.
  absl::StatusOr<DeviceHead> FitParts(const std::vector<Observation>& observations,
                                      const AdaptOptions& options,
                                      const DescriptorPrior* descriptor,
                                      double* log_evidence) const;

  struct Impl;
  explicit BaseModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace latpred::predictor

#endif  // LATPRED_PREDICTOR_PREDICTOR_H_
