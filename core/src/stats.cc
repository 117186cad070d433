// Rank correlations and error bounds for judging latency predictions.
//
// Spearman and Kendall return NaN when the inputs differ in length, hold fewer than two
// items, contain NaN, or either side is constant. Mape and WithinBound return NaN when
// the inputs differ in length or are empty.
#include "latpred/core/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

namespace latpred::core {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// True when a and b can be rank-correlated: same length, two or more items, no NaN.
bool Rankable(const std::vector<double>& a, const std::vector<double>& b) {
  const auto is_nan = [](double x) { return std::isnan(x); };
  return a.size() == b.size() && a.size() >= 2 &&
         std::none_of(a.begin(), a.end(), is_nan) &&
         std::none_of(b.begin(), b.end(), is_nan);
}

// Pairs of equal values in an ascending vector: sum over runs of length t of t(t-1)/2.
int64_t TiedPairs(const std::vector<double>& sorted) {
  int64_t pairs = 0;
  int64_t run = 1;
  for (size_t i = 1; i <= sorted.size(); ++i) {
    if (i < sorted.size() && sorted[i] == sorted[i - 1]) {
      ++run;
    } else {
      pairs += run * (run - 1) / 2;
      run = 1;
    }
  }
  return pairs;
}

// Sorts v ascending (bottom-up merge sort); returns the number of strict inversions.
int64_t SortCountingInversions(std::vector<double>& v) {
  const size_t n = v.size();
  std::vector<double> buffer(n);
  int64_t inversions = 0;
  for (size_t width = 1; width < n; width *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * width) {
      const size_t mid = std::min(lo + width, n);
      const size_t hi = std::min(lo + 2 * width, n);
      size_t i = lo;
      size_t j = mid;
      size_t k = lo;
      while (i < mid && j < hi) {
        if (v[j] < v[i]) {
          inversions += static_cast<int64_t>(mid - i);
          buffer[k++] = v[j++];
        } else {
          buffer[k++] = v[i++];
        }
      }
      while (i < mid) buffer[k++] = v[i++];
      while (j < hi) buffer[k++] = v[j++];
    }
    v.swap(buffer);
  }
  return inversions;
}

}  // namespace

double Median(std::vector<double> v) {
  if (v.empty()) return kNaN;
  const size_t n = v.size();
  std::nth_element(v.begin(), v.begin() + n / 2, v.end());
  const double upper = v[n / 2];
  if (n % 2) return upper;
  return 0.5 * (*std::max_element(v.begin(), v.begin() + n / 2) + upper);
}

std::vector<double> Ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  // NaN sorts last (each NaN its own rank) so the order stays strict and weak.
  std::sort(order.begin(), order.end(), [&v](size_t i, size_t j) {
    return v[i] < v[j] || (!std::isnan(v[i]) && std::isnan(v[j]));
  });
  std::vector<double> ranks(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i + 1;
    while (j < order.size() && v[order[j]] == v[order[i]]) ++j;
    const double rank = (i + 1 + j) / 2.0;  // average of 1-based ranks i+1 .. j
    for (size_t k = i; k < j; ++k) ranks[order[k]] = rank;
    i = j;
  }
  return ranks;
}

double Spearman(const std::vector<double>& a, const std::vector<double>& b) {
  if (!Rankable(a, b)) return kNaN;
  const std::vector<double> ra = Ranks(a);
  const std::vector<double> rb = Ranks(b);
  const double mean = (ra.size() + 1) / 2.0;  // ranks always average to (n + 1) / 2
  double cov = 0;
  double var_a = 0;
  double var_b = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    cov += (ra[i] - mean) * (rb[i] - mean);
    var_a += (ra[i] - mean) * (ra[i] - mean);
    var_b += (rb[i] - mean) * (rb[i] - mean);
  }
  if (var_a == 0 || var_b == 0) return kNaN;
  return cov / std::sqrt(var_a * var_b);
}

// Knight's algorithm: sort by (a, b), count ties, then count discordant pairs as the
// inversions of b while merge-sorting it.
double KendallTau(const std::vector<double>& a, const std::vector<double>& b) {
  if (!Rankable(a, b)) return kNaN;
  const size_t n = a.size();
  std::vector<std::pair<double, double>> pairs(n);
  for (size_t i = 0; i < n; ++i) pairs[i] = {a[i], b[i]};
  std::sort(pairs.begin(), pairs.end());
  int64_t tied_a = 0;
  int64_t tied_both = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && pairs[j].first == pairs[i].first) ++j;
    const int64_t run = static_cast<int64_t>(j - i);
    tied_a += run * (run - 1) / 2;
    for (size_t k = i; k < j;) {
      size_t l = k + 1;
      while (l < j && pairs[l].second == pairs[k].second) ++l;
      const int64_t both = static_cast<int64_t>(l - k);
      tied_both += both * (both - 1) / 2;
      k = l;
    }
    i = j;
  }
  std::vector<double> second(n);
  for (size_t i = 0; i < n; ++i) second[i] = pairs[i].second;
  const int64_t discordant = SortCountingInversions(second);
  const int64_t tied_b = TiedPairs(second);
  const int64_t total = static_cast<int64_t>(n) * static_cast<int64_t>(n - 1) / 2;
  const double untied_a = static_cast<double>(total - tied_a);
  const double untied_b = static_cast<double>(total - tied_b);
  if (untied_a == 0 || untied_b == 0) return kNaN;
  const double concordant_minus_discordant =
      static_cast<double>(total - tied_a - tied_b + tied_both - 2 * discordant);
  return concordant_minus_discordant / std::sqrt(untied_a * untied_b);
}

double Mape(const std::vector<double>& truth, const std::vector<double>& pred) {
  if (truth.size() != pred.size() || truth.empty()) return kNaN;
  double sum = 0;
  for (size_t i = 0; i < truth.size(); ++i)
    sum += std::abs(pred[i] - truth[i]) / truth[i];
  return sum / truth.size() * 100;
}

double WithinBound(const std::vector<double>& truth, const std::vector<double>& pred,
                   double bound) {
  if (truth.size() != pred.size() || truth.empty()) return kNaN;
  size_t within = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    if (std::abs(pred[i] - truth[i]) <= bound * std::abs(truth[i])) ++within;
  }
  return static_cast<double>(within) / truth.size();
}

}  // namespace latpred::core
