// The only translation unit of the agent that includes LibTorch.
#include "agent/measure.h"

#include <dlfcn.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace latpred::agent {
namespace {

namespace nn = torch::nn;
using Clock = std::chrono::steady_clock;

// ---- common blocks
// ---------------------------------------------------------------

nn::Conv2d Conv(int c_in, int c_out, int k, int stride = 1, int groups = 1) {
  return nn::Conv2d(nn::Conv2dOptions(c_in, c_out, k)
                        .stride(stride)
                        .padding((k - 1) / 2)
                        .groups(groups)
                        .bias(false));
}

nn::BatchNorm2d Bn(int c) { return nn::BatchNorm2d(nn::BatchNorm2dOptions(c)); }

torch::Tensor ChannelShuffle(const torch::Tensor& x, int groups) {
  const auto n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  return x.view({n, groups, c / groups, h, w}).transpose(1, 2).contiguous().view({n, c, h, w});
}

// A network body: Forward of a tensor.
class Body : public nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

// ---- NAS-Bench-201
// -----------------------------------------------------------------

constexpr int kNbEdges = 6;
constexpr std::array<int, kNbEdges> kEdgeFrom = {0, 0, 1, 0, 1, 2};
constexpr std::array<int, kNbEdges> kEdgeTo = {1, 2, 2, 3, 3, 3};
enum NbOp : uint8_t { kNone = 0, kSkip = 1, kConv1x1 = 2, kConv3x3 = 3, kAvgPool = 4 };

// Edges that cannot carry data from node 0 to node 3 become none (same rule as
// core's AnalyticCosts: through non-none edges only).
std::array<uint8_t, kNbEdges> LiveOps(const std::vector<uint8_t>& ops) {
  std::array<bool, 4> from_input = {true, false, false, false};
  for (int e = 0; e < kNbEdges; ++e) {
    if (ops[e] != kNone && from_input[kEdgeFrom[e]]) from_input[kEdgeTo[e]] = true;
  }
  std::array<bool, 4> to_output = {false, false, false, true};
  for (int e = kNbEdges - 1; e >= 0; --e) {
    if (ops[e] != kNone && to_output[kEdgeTo[e]]) to_output[kEdgeFrom[e]] = true;
  }
  std::array<uint8_t, kNbEdges> live;
  for (int e = 0; e < kNbEdges; ++e) {
    live[e] =
        (from_input[kEdgeFrom[e]] && to_output[kEdgeTo[e]]) ? ops[e] : static_cast<uint8_t>(kNone);
  }
  return live;
}

// One cell. Like NAS-Bench-201's own cell (which sums every edge's op), it runs every
// non-none op, also those on edges that cannot reach the cell's output: a deployed
// network computes them, and the published CPU measurements show their cost. Their
// modules are named "dead_edge*" so that NumParams counts only the parameters that can
// affect the output, as core's AnalyticCosts does. A cell with no path from input to
// output runs nothing and outputs zeros (its latency is the skeleton's, as the spec says).
class Nb201Cell : public Body {
 public:
  Nb201Cell(const std::vector<uint8_t>& ops, const std::array<uint8_t, kNbEdges>& live, int c)
      : live_(live) {
    connected_ = live_[kNbEdges - 1] != kNone || live_[4] != kNone || live_[3] != kNone;
    for (int e = 0; e < kNbEdges; ++e) {
      ops_[e] = connected_ ? ops[e] : static_cast<uint8_t>(kNone);
      const std::string name = absl::StrCat(live_[e] == kNone ? "dead_edge" : "edge", e);
      switch (ops_[e]) {
        case kConv1x1:
        case kConv3x3:
          edges_[e] = register_module(
              name, nn::Sequential(nn::ReLU(), Conv(c, c, ops_[e] == kConv1x1 ? 1 : 3), Bn(c)));
          break;
        case kAvgPool:
          edges_[e] = register_module(
              name, nn::Sequential(nn::AvgPool2d(
                        nn::AvgPool2dOptions(3).stride(1).padding(1).count_include_pad(false))));
          break;
        default:
          break;
      }
    }
  }
  torch::Tensor forward(torch::Tensor x) override {
    std::array<torch::Tensor, 4> nodes;
    nodes[0] = x;
    for (int e = 0; e < kNbEdges; ++e) {
      if (ops_[e] == kNone) continue;
      torch::Tensor& from = nodes[kEdgeFrom[e]];
      if (!from.defined()) from = torch::zeros_like(x);  // only none edges lead here
      torch::Tensor out = ops_[e] == kSkip ? from : edges_[e]->forward(from);
      torch::Tensor& to = nodes[kEdgeTo[e]];
      to = to.defined() ? to + out : out;
    }
    // A dead cell (no path to the output) outputs zeros, as NAS-Bench-201's
    // none does.
    return nodes[3].defined() ? nodes[3] : torch::zeros_like(x);
  }

 private:
  std::array<uint8_t, kNbEdges> live_;
  std::array<uint8_t, kNbEdges> ops_;
  bool connected_ = false;
  std::array<nn::Sequential, kNbEdges> edges_ = {nullptr, nullptr, nullptr,
                                                 nullptr, nullptr, nullptr};
};

class ResidualReduction : public Body {
 public:
  ResidualReduction(int c_in, int c_out) {
    a_ = register_module("a", nn::Sequential(nn::ReLU(), Conv(c_in, c_out, 3, 2), Bn(c_out)));
    b_ = register_module("b", nn::Sequential(nn::ReLU(), Conv(c_out, c_out, 3), Bn(c_out)));
    shortcut_ = register_module(
        "shortcut",
        nn::Sequential(nn::AvgPool2d(nn::AvgPool2dOptions(2).stride(2)), Conv(c_in, c_out, 1)));
  }
  torch::Tensor forward(torch::Tensor x) override {
    return b_->forward(a_->forward(x)) + shortcut_->forward(x);
  }

 private:
  nn::Sequential a_{nullptr}, b_{nullptr}, shortcut_{nullptr};
};

class Nb201Net : public Body {
 public:
  explicit Nb201Net(const std::vector<uint8_t>& ops, int classes = 10) {
    const auto live = LiveOps(ops);
    stem_ = register_module("stem", nn::Sequential(Conv(3, 16, 3), Bn(16)));
    int c = 16;
    for (int stage = 0; stage < 3; ++stage) {
      if (stage > 0) {
        layers_.push_back(register_module(absl::StrCat("reduction", stage),
                                          std::make_shared<ResidualReduction>(c, 2 * c)));
        c *= 2;
      }
      for (int i = 0; i < 5; ++i) {
        layers_.push_back(register_module(absl::StrCat("cell", stage, "_", i),
                                          std::make_shared<Nb201Cell>(ops, live, c)));
      }
    }
    head_ = register_module("head", nn::Sequential(Bn(c), nn::ReLU()));
    classifier_ = register_module("classifier", nn::Linear(c, classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = stem_->forward(x);
    for (auto& layer : layers_) x = layer->forward(x);
    x = head_->forward(x);
    x = x.mean({2, 3});
    return classifier_->forward(x);
  }

 private:
  nn::Sequential stem_{nullptr}, head_{nullptr};
  std::vector<std::shared_ptr<Body>> layers_;
  nn::Linear classifier_{nullptr};
};

// ---- FBNet
// -------------------------------------------------------------------------

struct FbBlock {
  int kernel, expansion, groups;
};
constexpr FbBlock kFbBlocks[8] = {{3, 1, 1}, {3, 1, 2}, {3, 3, 1}, {3, 6, 1},
                                  {5, 1, 1}, {5, 1, 2}, {5, 3, 1}, {5, 6, 1}};
constexpr uint8_t kFbSkip = 8;

class FbLayer : public Body {
 public:
  FbLayer(uint8_t op, int c_in, int c_out, int stride) : residual_(c_in == c_out && stride == 1) {
    if (op == kFbSkip) {
      identity_ = residual_;
      if (!identity_) {
        a_ = register_module("proj",
                             nn::Sequential(Conv(c_in, c_out, 1, stride), Bn(c_out), nn::ReLU()));
      }
      residual_ = false;
      return;
    }
    const FbBlock& b = kFbBlocks[op];
    const int mid = b.expansion * c_in;
    groups_ = b.groups;
    a_ = register_module("pw1",
                         nn::Sequential(Conv(c_in, mid, 1, 1, b.groups), Bn(mid), nn::ReLU()));
    b_ = register_module(
        "dw", nn::Sequential(Conv(mid, mid, b.kernel, stride, mid), Bn(mid), nn::ReLU()));
    c_ = register_module("pw2", nn::Sequential(Conv(mid, c_out, 1, 1, b.groups), Bn(c_out)));
  }
  torch::Tensor forward(torch::Tensor x) override {
    if (identity_) return x;
    if (!b_) return a_->forward(x);
    torch::Tensor y = a_->forward(x);
    if (groups_ > 1) y = ChannelShuffle(y, groups_);
    y = c_->forward(b_->forward(y));
    return residual_ ? y + x : y;
  }

 private:
  bool residual_;
  bool identity_ = false;
  int groups_ = 1;
  nn::Sequential a_{nullptr}, b_{nullptr}, c_{nullptr};
};

class FbnetNet : public Body {
 public:
  explicit FbnetNet(const std::vector<uint8_t>& ops, int classes = 100) {
    static constexpr int kLayers[7] = {1, 4, 4, 4, 4, 4, 1};
    static constexpr int kChannels[7] = {16, 24, 32, 64, 112, 184, 352};
    static constexpr int kStrides[7] = {1, 1, 2, 2, 1, 2, 1};
    stem_ = register_module("stem", nn::Sequential(Conv(3, 16, 3), Bn(16), nn::ReLU()));
    int c_in = 16, layer = 0;
    for (int s = 0; s < 7; ++s) {
      for (int i = 0; i < kLayers[s]; ++i) {
        layers_.push_back(register_module(
            absl::StrCat("layer", layer),
            std::make_shared<FbLayer>(ops[layer], c_in, kChannels[s], i == 0 ? kStrides[s] : 1)));
        ++layer;
        c_in = kChannels[s];
      }
    }
    head_ = register_module("head", nn::Sequential(Conv(c_in, 1504, 1), Bn(1504), nn::ReLU()));
    classifier_ = register_module("classifier", nn::Linear(1504, classes));
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = stem_->forward(x);
    for (auto& layer : layers_) x = layer->forward(x);
    x = head_->forward(x).mean({2, 3});
    return classifier_->forward(x);
  }

 private:
  nn::Sequential stem_{nullptr}, head_{nullptr};
  std::vector<std::shared_ptr<Body>> layers_;
  nn::Linear classifier_{nullptr};
};

// ---- running
// -----------------------------------------------------------------------

absl::StatusOr<torch::Device> ParseDevice(const std::string& text) {
  if (text == "cpu") return torch::Device(torch::kCPU);
  absl::string_view rest(text.data(), text.size());
  if (rest.substr(0, 4) != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown device '", text, "' (cpu, cuda or cuda:N)"));
  }
  int index = 0;
  if (rest.size() > 4) {
    if (rest[4] != ':' || !absl::SimpleAtoi(rest.substr(5), &index) || index < 0) {
      return absl::InvalidArgumentError(absl::StrCat("bad device '", text, "' (cuda:N)"));
    }
  }
  if (!torch::cuda::is_available()) {
    return absl::UnavailableError(absl::StrCat("device '", text, "': CUDA is not available"));
  }
  if (index >= static_cast<int>(torch::cuda::device_count())) {
    return absl::InvalidArgumentError(
        absl::StrCat("device '", text, "': only ", torch::cuda::device_count(), " CUDA devices"));
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

class TorchNetwork : public Network {
 public:
  TorchNetwork(std::shared_ptr<Body> body, torch::Device device, int batch)
      : body_(std::move(body)), device_(device) {
    body_->eval();
    body_->to(device_);
    torch::manual_seed(0);
    input_ = torch::randn({batch, 3, 32, 32}).to(device_);
  }
  void Forward() override {
    c10::InferenceMode guard;
    torch::Tensor out = body_->forward(input_);
    if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  }
  int64_t NumParams() const override {
    int64_t n = 0;
    for (const auto& p : body_->named_parameters()) {
      if (p.key().find("dead_edge") == std::string::npos) n += p.value().numel();
    }
    return n;
  }
  std::vector<int64_t> OutputShape() override {
    c10::InferenceMode guard;
    torch::Tensor out = body_->forward(input_);
    return out.sizes().vec();
  }

 private:
  std::shared_ptr<Body> body_;
  torch::Device device_;
  torch::Tensor input_;
};

}  // namespace

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

namespace {
double Quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * (sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}
}  // namespace

double Iqr(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return Quantile(v, 0.75) - Quantile(v, 0.25);
}

absl::StatusOr<std::unique_ptr<Network>> BuildNetwork(const core::SearchSpace& space,
                                                      const core::Architecture& arch,
                                                      const MeasureOptions& options) {
  auto device = ParseDevice(options.device);
  if (!device.ok()) return device.status();
  if (options.batch_size < 1) return absl::InvalidArgumentError("batch size must be >= 1");
  std::shared_ptr<Body> body;
  if (space.name() == "nb201") {
    if (arch.ops.size() != 6) return absl::InvalidArgumentError("nb201 needs 6 ops");
    body = std::make_shared<Nb201Net>(arch.ops);
  } else if (space.name() == "fbnet") {
    if (arch.ops.size() != 22) return absl::InvalidArgumentError("fbnet needs 22 ops");
    body = std::make_shared<FbnetNet>(arch.ops);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("no network builder for space '", std::string(space.name()), "'"));
  }
  torch::NoGradGuard no_grad;
  return std::unique_ptr<Network>(new TorchNetwork(std::move(body), *device, options.batch_size));
}

std::vector<Measurement> TimeInterleaved(const std::vector<std::function<void()>>& runs,
                                         const MeasureOptions& options) {
  const size_t n = runs.size();
  if (n == 0) return {};
  for (const auto& run : runs) {
    for (int i = 0; i < options.warmup; ++i) run();
  }
  // A turn gives each network a few runs; a round is one turn of every network. With
  // many networks a turn is one run, so a round stays short against the machine's
  // drifts of speed.
  const int batch = std::max(1, options.batch_runs);
  const int per_turn = std::max<int>(1, batch / static_cast<int>(n));
  const int rounds_per_check = std::max(1, batch / per_turn);
  const int max_runs = std::max(1, options.max_runs);
  const double budget = options.min_seconds * n;
  // One network alone may take up to max_seconds to settle; a group stops at three
  // times its budget, so that the time a group takes stays predictable.
  const double cap = n == 1 ? options.max_seconds
                            : std::min(options.max_seconds * n, std::max(3 * budget, 1.0));
  std::vector<std::vector<double>> times(n);
  std::vector<double> previous(n, -1);
  double timed = 0;
  for (bool stop = false; !stop;) {
    for (int r = 0; r < rounds_per_check && !stop; ++r) {
      for (size_t k = 0; k < n; ++k) {
        for (int i = 0; i < per_turn && static_cast<int>(times[k].size()) < max_runs; ++i) {
          const auto t0 = Clock::now();
          runs[k]();
          const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
          times[k].push_back(ms);
          timed += ms / 1000;
        }
        stop |= static_cast<int>(times[k].size()) >= max_runs;
      }
    }
    bool enough = timed >= budget, stable = true;
    for (size_t k = 0; k < n; ++k) {
      const double median = Median(times[k]);
      enough &= static_cast<int>(times[k].size()) >= options.min_runs;
      stable &= previous[k] > 0 && std::abs(median - previous[k]) < options.rel_tol * previous[k];
      previous[k] = median;
    }
    stop |= enough && (stable || timed > cap);
    if (options.progress) options.progress(stop ? 1.0 : std::min(0.99, timed / budget));
  }
  std::vector<Measurement> out(n);
  for (size_t k = 0; k < n; ++k) {
    out[k].median_ms = Median(times[k]);
    out[k].spread_ms = Iqr(times[k]);
    out[k].runs = static_cast<int>(times[k].size());
  }
  return out;
}

Measurement TimeRuns(const std::function<void()>& run, const MeasureOptions& options) {
  return TimeInterleaved({run}, options).front();
}

absl::StatusOr<std::vector<Measurement>> MeasureArchs(
    const core::SearchSpace& space, const std::vector<core::Architecture>& archs,
    const MeasureOptions& options) {
  SetTorchThreads(options.threads);
  std::vector<std::unique_ptr<Network>> nets;
  std::vector<std::function<void()>> runs;
  for (const core::Architecture& arch : archs) {
    auto net = BuildNetwork(space, arch, options);
    if (!net.ok()) return net.status();
    nets.push_back(*std::move(net));
    Network* raw = nets.back().get();
    runs.push_back([raw] { raw->Forward(); });
  }
  return TimeInterleaved(runs, options);
}

std::vector<std::pair<size_t, size_t>> MeasureGroups(size_t n) {
  constexpr size_t kMaxGroup = 16;
  std::vector<std::pair<size_t, size_t>> out;
  const size_t groups = (n + kMaxGroup - 1) / kMaxGroup;
  for (size_t g = 0, begin = 0; g < groups; ++g) {
    const size_t end = begin + (n - begin) / (groups - g) + ((n - begin) % (groups - g) ? 1 : 0);
    out.emplace_back(begin, end);
    begin = end;
  }
  return out;
}

absl::StatusOr<Measurement> MeasureArch(const core::SearchSpace& space,
                                        const core::Architecture& arch,
                                        const MeasureOptions& options) {
  auto m = MeasureArchs(space, {arch}, options);
  if (!m.ok()) return m.status();
  return m->front();
}

double GemmGflops(int n, int threads, double seconds) {
  SetTorchThreads(threads);
  c10::InferenceMode guard;
  torch::manual_seed(0);
  torch::Tensor a = torch::randn({n, n}), b = torch::randn({n, n});
  torch::Tensor c = torch::mm(a, b);  // warm-up
  int reps = 0;
  std::vector<double> rates;
  const auto start = Clock::now();
  while (reps < 3 || std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
    const auto t0 = Clock::now();
    c = torch::mm(a, b);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    rates.push_back(2.0 * n * n * static_cast<double>(n) / s / 1e9);
    ++reps;
  }
  return Median(rates);
}

bool CudaAvailable() { return torch::cuda::is_available(); }
int CudaDeviceCount() { return static_cast<int>(torch::cuda::device_count()); }

void SetTorchThreads(int threads) {
  if (threads <= 0) return;
  if (torch::get_num_threads() != threads) torch::set_num_threads(threads);
  // Debian's LibTorch calls OpenBLAS (pthread build) for GEMMs, whose own thread pool
  // torch::set_num_threads may not reach: set it too when that library is loaded.
  using SetBlasThreads = void (*)(int);
  if (auto set =
          reinterpret_cast<SetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set(threads);
  }
}

}  // namespace latpred::agent
