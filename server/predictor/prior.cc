// The source devices' prior over device heads and the operation-count layout (prior.h).
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "latpred/predictor/predictor.h"
#include "prior.h"

namespace latpred::predictor {

HeadPrior SourcePrior(const BaseModel& model) {
  HeadPrior prior;
  const int dim = model.embedding_dim();
  prior.dim = dim;
  prior.mean.assign(dim + 1, 0);
  for (const std::string& name : model.source_devices()) {
    const DeviceHead* h = model.SourceHead(name);
    std::vector<double> theta(h->z);
    theta.push_back(h->b);
    for (int i = 0; i <= dim; ++i) prior.mean[i] += theta[i];
    prior.sources.push_back(std::move(theta));
  }
  const double count = static_cast<double>(prior.sources.size());
  for (double& m : prior.mean) m /= count;
  prior.z_cov = Matrix(dim);
  for (const auto& theta : prior.sources) {
    for (int i = 0; i < dim; ++i) {
      for (int j = 0; j < dim; ++j) {
        prior.z_cov(i, j) += (theta[i] - prior.mean[i]) * (theta[j] - prior.mean[j]) / count;
      }
    }
  }
  double trace = 0;
  for (int i = 0; i < dim; ++i) trace += prior.z_cov(i, i);
  prior.z_scale = std::max(1e-4, trace / dim);
  return prior;
}

OpCountLayout CountLayout(const core::SearchSpace& space, int num_features) {
  const int positions = space.num_positions();
  const int ops = space.num_ops();
  const int one_hot = num_features - core::SearchSpace::kCostFeatures;
  OpCountLayout layout;
  layout.blocks = one_hot % (positions * ops) == 0 ? one_hot / (positions * ops) : 0;
  layout.per_block = ops - 1;
  layout.columns = layout.blocks * layout.per_block;
  layout.column_of.assign(num_features, -1);
  for (int j = 0; j < layout.blocks * positions * ops; ++j) {
    const int op = j % ops;
    if (op > 0) layout.column_of[j] = (j / (positions * ops)) * layout.per_block + op - 1;
  }
  return layout;
}

std::vector<double> OpCountRows(const OpCountLayout& layout, const std::vector<double>& x,
                                size_t n, const std::function<double(int)>& scale) {
  const int f = static_cast<int>(layout.column_of.size());
  std::vector<double> rows(n * layout.columns, 0.0);
  for (size_t i = 0; i < n; ++i) {
    for (int j = 0; j < f; ++j) {
      const int c = layout.column_of[j];
      if (c >= 0) rows[i * layout.columns + c] += x[i * f + j] * scale(j);
    }
  }
  return rows;
}

Matrix PriorCovariance(const HeadPrior& prior, double alpha, double beta) {
  const int dim = prior.dim;
  Matrix cov(dim + 1);
  for (int i = 0; i < dim; ++i) {
    for (int j = 0; j < dim; ++j) cov(i, j) = alpha * prior.z_cov(i, j);
    cov(i, i) += alpha * beta * prior.z_scale;
  }
  cov(dim, dim) = kBiasPriorVariance;
  return cov;
}

std::vector<double> DesignRows(const BaseModel& model,
                               const std::vector<core::Architecture>& archs) {
  const int dim = model.embedding_dim();
  std::vector<double> h = model.Embed(archs);
  std::vector<double> rows(archs.size() * (dim + 1));
  for (size_t i = 0; i < archs.size(); ++i) {
    std::copy(&h[i * dim], &h[i * dim] + dim, &rows[i * (dim + 1)]);
    rows[i * (dim + 1) + dim] = 1.0;
  }
  return rows;
}

DeviceHead BaseModel::Prior() const {
  const HeadPrior prior = SourcePrior(*this);
  DeviceHead head;
  head.z.assign(prior.mean.begin(), prior.mean.begin() + prior.dim);
  head.b = prior.mean[prior.dim];
  return head;
}

}  // namespace latpred::predictor
