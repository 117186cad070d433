// The base model in LibTorch: architecture network h, source-device heads, training,
// inference and serialisation. The only translation unit of the predictor that
// includes torch.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <numeric>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "latpred/predictor/predictor.h"

namespace latpred::predictor {
namespace {

constexpr char kMagic[] = "latpred-base-model-v1";

// h(a): a linear path plus a two-hidden-layer MLP over the standardised encoding.
// The linear path keeps the near-additive structure of latency easy to represent.
struct ArchNetImpl : torch::nn::Module {
  ArchNetImpl(int features, int hidden, int dim)
      : linear(register_module("linear", torch::nn::Linear(features, dim))),
        fc1(register_module("fc1", torch::nn::Linear(features, hidden))),
        fc2(register_module("fc2", torch::nn::Linear(hidden, hidden))),
        fc3(register_module("fc3", torch::nn::Linear(hidden, dim))) {
    mean = register_buffer("mean", torch::zeros({features}));
    scale = register_buffer("scale", torch::ones({features}));
  }

  torch::Tensor forward(torch::Tensor x) {
    x = (x - mean) / scale;
    return linear(x) + fc3(torch::relu(fc2(torch::relu(fc1(x)))));
  }

  torch::nn::Linear linear, fc1, fc2, fc3;
  torch::Tensor mean, scale;
};
TORCH_MODULE(ArchNet);

// Encodes architectures into an n x F float tensor.
torch::Tensor EncodeAll(const core::SearchSpace& space,
                        const std::vector<core::Architecture>& archs) {
  const int f = space.encoding_size();
  torch::Tensor x = torch::empty({static_cast<int64_t>(archs.size()), f}, torch::kFloat32);
  float* p = x.data_ptr<float>();
  for (size_t i = 0; i < archs.size(); ++i) space.Encode(archs[i], p + i * f);
  return x;
}

void SetLearningRate(torch::optim::Adam& opt, double lr) {
  for (auto& group : opt.param_groups()) {
    static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
  }
}

}  // namespace

void SetThreads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
}

// Spaces with at most this many architectures get every embedding computed once.
constexpr int64_t kMaxDenseArchitectures = 1 << 20;

struct BaseModel::Impl {
  const core::SearchSpace* space = nullptr;
  int features = 0;
  int hidden = 0;
  int dim = 0;
  double noise_var = 0.01;
  ArchNet net{nullptr};
  std::vector<std::string> devices;
  std::vector<DeviceHead> heads;
  // h(a) of every architecture of a small space (NAS-Bench-201: 5^6), indexed by the
  // ops read as digits base num_ops; empty for large spaces (FBNet: 9^22). Every op
  // combination is a member of both built-in spaces.
  std::vector<double> dense;
  // The standardised residual features x(a) of the same architectures (empty with
  // `dense`), so that predicting with a residual stays a table lookup.
  std::vector<double> dense_features;
  // The network's input standardisation, as doubles for the residual features.
  std::vector<double> mean, scale;

  // Writes the standardised features of arch (encoding_size values) to out.
  void StandardFeatures(const core::Architecture& arch, float* scratch, double* out) const {
    space->Encode(arch, scratch);
    for (int j = 0; j < features; ++j) out[j] = (scratch[j] - mean[j]) / scale[j];
  }

  void CopyStandardisation() {
    torch::Tensor m = net->mean.to(torch::kFloat64).contiguous();
    torch::Tensor s = net->scale.to(torch::kFloat64).contiguous();
    mean.assign(m.data_ptr<double>(), m.data_ptr<double>() + features);
    scale.assign(s.data_ptr<double>(), s.data_ptr<double>() + features);
  }

  int64_t DenseIndex(const core::Architecture& arch) const { return space->Index(arch); }

  // log t = h(a).z + b + x(a).w for the architecture at `index`, from the dense tables.
  double DenseLogLatency(const DeviceHead& head, int64_t index) const {
    const double* h = &dense[index * dim];
    double y = head.b;
    for (int k = 0; k < dim; ++k) y += h[k] * head.z[k];
    const double* x = &dense_features[index * features];
    if (!head.w.empty()) {
      for (int j = 0; j < features; ++j) y += x[j] * head.w[j];
    }
    if (head.add_weight > 0) y += head.AdditiveLogLatency(x, features);
    return y;
  }

  // Fills `dense` and `dense_features` when the space is small enough to enumerate
  // (after CopyStandardisation).
  void BuildDenseTable() {
    const int64_t count = space->enumerable_size();
    if (count <= 0 || count > kMaxDenseArchitectures) return;
    std::vector<core::Architecture> all(count);
    for (int64_t index = 0; index < count; ++index) {
      all[index].ops.resize(space->num_positions());
      int64_t rest = index;
      for (int i = 0; i < space->num_positions(); ++i) {
        all[index].ops[i] = static_cast<uint8_t>(rest % space->num_ops());
        rest /= space->num_ops();
      }
    }
    c10::InferenceMode guard;
    torch::Tensor h = net->forward(EncodeAll(*space, all)).to(torch::kFloat64).contiguous();
    dense.assign(h.data_ptr<double>(), h.data_ptr<double>() + count * dim);
    dense_features.resize(count * features);
    std::vector<float> scratch(features);
    for (int64_t index = 0; index < count; ++index) {
      StandardFeatures(all[index], scratch.data(), &dense_features[index * features]);
    }
  }
};

BaseModel::BaseModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BaseModel::~BaseModel() = default;

const core::SearchSpace& BaseModel::space() const { return *impl_->space; }
int BaseModel::embedding_dim() const { return impl_->dim; }
const std::vector<std::string>& BaseModel::source_devices() const { return impl_->devices; }
double BaseModel::noise_variance() const { return impl_->noise_var; }

const DeviceHead* BaseModel::SourceHead(std::string_view device) const {
  for (size_t i = 0; i < impl_->devices.size(); ++i) {
    if (impl_->devices[i] == device) return &impl_->heads[i];
  }
  return nullptr;
}

// Log latency of every (architecture, device), standardised per device, into y (n x d)
// with mask 1 where measured; the per-device mean and sd of log latency.
static void StandardiseTargets(const TrainingData& data, torch::Tensor* y_out,
                               torch::Tensor* mask_out, std::vector<double>* mean,
                               std::vector<double>* sd) {
  const int64_t n = static_cast<int64_t>(data.archs.size());
  const int64_t d = static_cast<int64_t>(data.devices.size());
  std::vector<double>& dev_mean = *mean;
  std::vector<double>& dev_std = *sd;
  float* yp = y_out->data_ptr<float>();
  float* mp = mask_out->data_ptr<float>();
  for (int64_t j = 0; j < d; ++j) {
    double s = 0, s2 = 0;
    int64_t c = 0;
    for (int64_t i = 0; i < n; ++i) {
      double v = data.latency_ms[i * d + j];
      if (!(v > 0) || !std::isfinite(v)) continue;
      double lv = std::log(v);
      s += lv;
      s2 += lv * lv;
      ++c;
    }
    if (c < 2) continue;
    dev_mean[j] = s / c;
    dev_std[j] = std::max(1e-3, std::sqrt(std::max(0.0, s2 / c - dev_mean[j] * dev_mean[j])));
    for (int64_t i = 0; i < n; ++i) {
      double v = data.latency_ms[i * d + j];
      if (!(v > 0) || !std::isfinite(v)) continue;
      yp[i * d + j] = static_cast<float>((std::log(v) - dev_mean[j]) / dev_std[j]);
      mp[i * d + j] = 1;
    }
  }
}

absl::StatusOr<std::shared_ptr<const BaseModel>> BaseModel::Train(
    const TrainingData& data, const TrainOptions& options) {
  if (data.space == nullptr) return absl::InvalidArgumentError("training data has no space");
  const int64_t n = static_cast<int64_t>(data.archs.size());
  const int64_t d = static_cast<int64_t>(data.devices.size());
  if (n < 2 || d < 1 || data.latency_ms.size() != static_cast<size_t>(n * d)) {
    return absl::FailedPreconditionError(
        absl::StrCat("not enough training data for ", std::string(data.space->name()), ": ", n,
                     " architectures x ", d, " devices"));
  }
  torch::manual_seed(options.seed);
  if (options.threads > 0) SetThreads(options.threads);

  // Targets: log latency, standardised per device so that every device's ranking
  // weighs the same in the loss; heads are mapped back to log space afterwards.
  torch::Tensor y = torch::zeros({n, d}, torch::kFloat32);
  torch::Tensor mask = torch::zeros({n, d}, torch::kFloat32);
  std::vector<double> dev_mean(d, 0), dev_std(d, 1);
  StandardiseTargets(data, &y, &mask, &dev_mean, &dev_std);
  if (mask.sum().item<float>() < 2) {
    return absl::FailedPreconditionError("training data holds no positive latencies");
  }

  auto impl = std::make_unique<Impl>();
  impl->space = data.space;
  impl->features = data.space->encoding_size();
  impl->hidden = options.hidden;
  impl->dim = options.embedding_dim;
  impl->devices = data.devices;
  impl->net = ArchNet(impl->features, impl->hidden, impl->dim);

  torch::Tensor x = EncodeAll(*data.space, data.archs);
  {
    torch::NoGradGuard no_grad;
    impl->net->mean.copy_(x.mean(0));
    impl->net->scale.copy_(x.std(0).clamp_min(1e-2));
  }
  torch::Tensor z = torch::randn({d, impl->dim}) * 0.1;
  z.set_requires_grad(true);
  torch::Tensor b = torch::zeros({d}, torch::requires_grad());

  std::vector<torch::Tensor> params = impl->net->parameters();
  params.push_back(z);
  params.push_back(b);
  torch::optim::Adam opt(params, torch::optim::AdamOptions(options.learning_rate)
                                     .weight_decay(options.weight_decay));

  const int64_t batch = std::max<int64_t>(16, options.batch_archs);
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    // Cosine decay to a tenth of the initial rate.
    double frac = options.epochs > 1 ? static_cast<double>(epoch) / (options.epochs - 1) : 1.0;
    SetLearningRate(opt, options.learning_rate * (0.1 + 0.45 * (1 + std::cos(M_PI * frac))));
    torch::Tensor perm = torch::randperm(n, torch::kInt64);
    double loss_sum = 0;
    int64_t steps = 0;
    for (int64_t start = 0; start < n; start += batch) {
      torch::Tensor idx = perm.slice(0, start, std::min(n, start + batch));
      torch::Tensor m = mask.index_select(0, idx);
      torch::Tensor msum = m.sum();
      if (msum.item<float>() == 0) continue;
      torch::Tensor h = impl->net->forward(x.index_select(0, idx));
      torch::Tensor pred = h.mm(z.t()) + b;
      torch::Tensor loss = ((pred - y.index_select(0, idx)).pow(2) * m).sum() / msum;
      opt.zero_grad();
      loss.backward();
      opt.step();
      loss_sum += loss.item<double>();
      ++steps;
    }
    if (options.progress) options.progress(epoch + 1, options.epochs, loss_sum / std::max<int64_t>(1, steps));
    if (options.cancelled && options.cancelled()) {
      return absl::CancelledError("training was cancelled");
    }
  }
  impl->net->eval();
  impl->CopyStandardisation();
  impl->BuildDenseTable();

  // Heads in log-latency space: log t = dev_std * (h.z + b) + dev_mean.
  torch::Tensor zc = z.detach().to(torch::kFloat64).contiguous();
  torch::Tensor bc = b.detach().to(torch::kFloat64).contiguous();
  impl->heads.resize(d);
  for (int64_t j = 0; j < d; ++j) {
    DeviceHead& head = impl->heads[j];
    head.z.resize(impl->dim);
    for (int k = 0; k < impl->dim; ++k) head.z[k] = dev_std[j] * zc[j][k].item<double>();
    head.b = dev_mean[j] + dev_std[j] * bc[j].item<double>();
  }
  // Noise: the median over devices of the residual variance of log latency.
  {
    torch::NoGradGuard no_grad;
    torch::Tensor h = impl->net->forward(x);
    torch::Tensor resid = (h.mm(z.t()) + b - y).pow(2) * mask;
    torch::Tensor per_dev = resid.sum(0) / mask.sum(0).clamp_min(1);
    std::vector<double> vars;
    for (int64_t j = 0; j < d; ++j) {
      if (mask.select(1, j).sum().item<float>() > 0) {
        vars.push_back(per_dev[j].item<double>() * dev_std[j] * dev_std[j]);
      }
    }
    std::nth_element(vars.begin(), vars.begin() + vars.size() / 2, vars.end());
    impl->noise_var = std::max(1e-5, vars[vars.size() / 2]);
  }
  return std::shared_ptr<const BaseModel>(new BaseModel(std::move(impl)));
}

std::vector<double> BaseModel::Embed(const std::vector<core::Architecture>& archs) const {
  std::vector<double> out(archs.size() * impl_->dim);
  if (archs.empty()) return out;
  if (!impl_->dense.empty()) {
    for (size_t i = 0; i < archs.size(); ++i) {
      const double* h = &impl_->dense[impl_->DenseIndex(archs[i]) * impl_->dim];
      std::copy(h, h + impl_->dim, &out[i * impl_->dim]);
    }
    return out;
  }
  c10::InferenceMode guard;
  torch::Tensor h = impl_->net->forward(EncodeAll(*impl_->space, archs))
                        .to(torch::kFloat64)
                        .contiguous();
  std::memcpy(out.data(), h.data_ptr<double>(), out.size() * sizeof(double));
  return out;
}

int BaseModel::num_features() const { return impl_->features; }

double BaseModel::feature_scale(int j) const { return impl_->scale[j]; }
double BaseModel::feature_mean(int j) const { return impl_->mean[j]; }

std::vector<double> BaseModel::Features(const std::vector<core::Architecture>& archs) const {
  const int f = impl_->features;
  std::vector<double> out(archs.size() * f);
  std::vector<float> scratch(f);
  for (size_t i = 0; i < archs.size(); ++i) {
    if (!impl_->dense_features.empty()) {
      const double* x = &impl_->dense_features[impl_->DenseIndex(archs[i]) * f];
      std::copy(x, x + f, &out[i * f]);
    } else {
      impl_->StandardFeatures(archs[i], scratch.data(), &out[i * f]);
    }
  }
  return out;
}

void BaseModel::Predict(const DeviceHead& head, const std::vector<core::Architecture>& archs,
                        double* out) const {
  if (archs.empty()) return;
  const int f = impl_->features;
  if (!impl_->dense.empty()) {
    for (size_t i = 0; i < archs.size(); ++i) {
      out[i] = std::exp(impl_->DenseLogLatency(head, impl_->DenseIndex(archs[i])));
    }
    return;
  }
  PredictEmbedded(head, archs, out);
  if (head.w.empty() && head.add_weight == 0) return;
  // The residual on the features, x(a) . w, and the additive part, in log space.
  std::vector<float> scratch(f);
  std::vector<double> x(f);
  for (size_t i = 0; i < archs.size(); ++i) {
    impl_->StandardFeatures(archs[i], scratch.data(), x.data());
    double r = 0;
    if (!head.w.empty()) {
      for (int j = 0; j < f; ++j) r += x[j] * head.w[j];
    }
    if (head.add_weight > 0) r += head.AdditiveLogLatency(x.data(), x.size());
    out[i] *= std::exp(r);
  }
}

std::vector<double> BaseModel::LatencyTable(const DeviceHead& head) const {
  const int64_t count = impl_->dense.empty() ? 0 : impl_->space->enumerable_size();
  std::vector<double> table(count);
  for (int64_t index = 0; index < count; ++index) {
    table[index] = std::exp(impl_->DenseLogLatency(head, index));
  }
  return table;
}

void BaseModel::PredictEmbedded(const DeviceHead& head,
                                const std::vector<core::Architecture>& archs,
                                double* out) const {
  c10::InferenceMode guard;
  torch::Tensor z = torch::from_blob(const_cast<double*>(head.z.data()),
                                     {static_cast<int64_t>(head.z.size())}, torch::kFloat64)
                        .to(torch::kFloat32);
  torch::Tensor h = impl_->net->forward(EncodeAll(*impl_->space, archs));
  torch::Tensor t = (h.mv(z).to(torch::kFloat64) + head.b).exp().contiguous();
  std::memcpy(out, t.data_ptr<double>(), archs.size() * sizeof(double));
}

std::string BaseModel::Serialize() const {
  // Header: magic and a line of key=value settings, then the torch archive.
  std::ostringstream meta;
  meta << kMagic << "\n"
       << "space=" << impl_->space->name() << "\n"
       << "features=" << impl_->features << "\n"
       << "hidden=" << impl_->hidden << "\n"
       << "dim=" << impl_->dim << "\n"
       << "noise=" << std::setprecision(17) << impl_->noise_var << "\n"
       << "devices=" << absl::StrJoin(impl_->devices, ",") << "\n";
  torch::serialize::OutputArchive archive;
  impl_->net->save(archive);
  const int64_t d = static_cast<int64_t>(impl_->heads.size());
  torch::Tensor hz = torch::zeros({d, impl_->dim}, torch::kFloat64);
  torch::Tensor hb = torch::zeros({d}, torch::kFloat64);
  for (int64_t j = 0; j < d; ++j) {
    for (int k = 0; k < impl_->dim; ++k) hz[j][k] = impl_->heads[j].z[k];
    hb[j] = impl_->heads[j].b;
  }
  archive.write("heads_z", hz, /*is_buffer=*/true);
  archive.write("heads_b", hb, /*is_buffer=*/true);
  std::ostringstream body;
  archive.save_to(body);
  std::string header = meta.str();
  return absl::StrCat(header.size(), "\n", header, body.str());
}

absl::StatusOr<std::shared_ptr<const BaseModel>> BaseModel::Deserialize(
    const core::SearchSpace& space, std::string_view blob) {
  auto bad = [](const std::string& why) {
    return absl::DataLossError(absl::StrCat("stored base model is unreadable: ", why));
  };
  size_t nl = blob.find('\n');
  size_t header_len = 0;
  if (nl == std::string_view::npos || !absl::SimpleAtoi(std::string(blob.substr(0, nl)), &header_len) ||
      nl + 1 + header_len > blob.size()) {
    return bad("no header");
  }
  std::string header(blob.substr(nl + 1, header_len));
  std::string_view body = blob.substr(nl + 1 + header_len);
  std::vector<std::string> lines = absl::StrSplit(header, '\n', absl::SkipEmpty());
  if (lines.empty() || lines[0] != kMagic) return bad("wrong format tag");
  auto impl = std::make_unique<Impl>();
  impl->space = &space;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::pair<std::string, std::string> kv = absl::StrSplit(lines[i], absl::MaxSplits('=', 1));
    bool ok = true;
    if (kv.first == "space") ok = kv.second == space.name();
    else if (kv.first == "features") ok = absl::SimpleAtoi(kv.second, &impl->features);
    else if (kv.first == "hidden") ok = absl::SimpleAtoi(kv.second, &impl->hidden);
    else if (kv.first == "dim") ok = absl::SimpleAtoi(kv.second, &impl->dim);
    else if (kv.first == "noise") ok = absl::SimpleAtod(kv.second, &impl->noise_var);
    else if (kv.first == "devices") impl->devices = absl::StrSplit(kv.second, ',', absl::SkipEmpty());
    if (!ok) return bad(absl::StrCat("bad header field '", lines[i], "'"));
  }
  if (impl->features != space.encoding_size() || impl->dim <= 0 || impl->hidden <= 0) {
    return bad("model does not match the search space encoding");
  }
  try {
    impl->net = ArchNet(impl->features, impl->hidden, impl->dim);
    torch::serialize::InputArchive archive;
    archive.load_from(body.data(), body.size());
    impl->net->load(archive);
    impl->net->eval();
    impl->CopyStandardisation();
    impl->BuildDenseTable();
    torch::Tensor hz, hb;
    archive.read("heads_z", hz, /*is_buffer=*/true);
    archive.read("heads_b", hb, /*is_buffer=*/true);
    const int64_t d = static_cast<int64_t>(impl->devices.size());
    if (hz.size(0) != d || hz.size(1) != impl->dim || hb.size(0) != d) {
      return bad("head count does not match the device list");
    }
    hz = hz.contiguous();
    impl->heads.resize(d);
    for (int64_t j = 0; j < d; ++j) {
      impl->heads[j].z.assign(hz[j].data_ptr<double>(), hz[j].data_ptr<double>() + impl->dim);
      impl->heads[j].b = hb[j].item<double>();
    }
  } catch (const c10::Error& e) {
    return bad(e.what_without_backtrace());
  }
  return std::shared_ptr<const BaseModel>(new BaseModel(std::move(impl)));
}

}  // namespace latpred::predictor
