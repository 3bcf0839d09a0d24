// CPU entry points of the fused DB loss: fixed chunks of pixels run by the core
// loops (csrc/core/loss.h) across threads; partial sums are added in chunk
// order, so results do not depend on the number of threads.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <vector>

#include "../core/loss.h"
#include "../entry_points.h"
#include "../core/clones.h"

namespace dbf {
namespace {

constexpr int64_t kChunk = 1 << 16;

int64_t chunk_count(int64_t n) { return (n + kChunk - 1) / kChunk; }

// Runs fn(chunk, begin, end) on every chunk, in parallel.
template <class Fn> void for_each_chunk(int64_t n, const Fn& fn) {
  at::parallel_for(0, chunk_count(n), 1, [&](int64_t first, int64_t last) {
    for (int64_t c = first; c < last; ++c) fn(c, c * kChunk, std::min(n, (c + 1) * kChunk));
  });
}

// Adds rows of `width` numbers in row order (so the result does not depend on threads).
template <class Number>
std::vector<Number> sum_rows(const std::vector<Number>& rows, int64_t width) {
  std::vector<Number> total(width, Number(0));
  for (size_t r = 0; r < rows.size(); r += width) {
    for (int64_t w = 0; w < width; ++w) total[w] += rows[r + w];
  }
  return total;
}

DBF_CPU_DISPATCH(void, forward_f32,
                 (const float* xp, const float* xt, const float* gt, const float* m, const float* tm,
                  const float* tmask, uint32_t* keys, int64_t n, BinarizeGain<float> k, double* sums,
                  int64_t* histogram),
                 loss_forward_span, (xp, xt, gt, m, tm, tmask, keys, n, k, sums, histogram))

DBF_CPU_DISPATCH(void, backward_f32,
                 (const float* xp, const float* xt, const float* gt, const float* m, const float* tm,
                  const float* tmask, const uint32_t* keys, int64_t n, uint32_t threshold,
                  LossGradFactors<float> f, BinarizeGain<float> k, float* grad_xp, float* grad_xt),
                 loss_backward_span, (xp, xt, gt, m, tm, tmask, keys, n, threshold, f, k, grad_xp, grad_xt))

DBF_CPU_DISPATCH(double, radix_pass_u32,
                 (const uint32_t* keys, int64_t n, const RadixState<uint32_t>& s, int pass,
                  int64_t* histogram),
                 radix_pass_span, (keys, n, s, pass, histogram))

template <class Key>
double radix_pass_chunk(const Key* keys, int64_t n, const RadixState<Key>& s, int pass,
                        int64_t* histogram) {
  if constexpr (std::is_same_v<Key, uint32_t>) {
    return radix_pass_u32(keys, n, s, pass, histogram);
  } else {
    return radix_pass_span(keys, n, s, pass, histogram);
  }
}

template <class T, class A, class Key>
void forward_chunk(const T* xp, const T* xt, const A* gt, const A* m, const A* tm, const A* tmask,
                   Key* keys, int64_t n, BinarizeGain<A> k, double* sums, int64_t* histogram) {
  if constexpr (std::is_same_v<T, float>) {
    forward_f32(xp, xt, gt, m, tm, tmask, keys, n, k, sums, histogram);
  } else {
    loss_forward_span(xp, xt, gt, m, tm, tmask, keys, n, k, sums, histogram);
  }
}

template <class T, class A, class Key>
void backward_chunk(const T* xp, const T* xt, const A* gt, const A* m, const A* tm, const A* tmask,
                    const Key* keys, int64_t n, Key threshold, LossGradFactors<A> f,
                    BinarizeGain<A> k, T* grad_xp, T* grad_xt) {
  if constexpr (std::is_same_v<T, float>) {
    backward_f32(xp, xt, gt, m, tm, tmask, keys, n, threshold, f, k, grad_xp, grad_xt);
  } else {
    loss_backward_span(xp, xt, gt, m, tm, tmask, keys, n, threshold, f, k, grad_xp, grad_xt);
  }
}

// Radix select of the k-th largest key, given the histogram of digit 0.
template <class Key>
RadixState<Key> select_kth_largest(const Key* keys, int64_t n, int64_t k,
                                   const std::vector<int64_t>& first_histogram) {
  RadixState<Key> state = radix_start<Key>(k);
  radix_step(first_histogram.data(), 0.0, state, 0);
  for (int pass = 1; k > 0 && pass < radix_passes<Key>(); ++pass) {
    const int64_t count = chunk_count(n);
    std::vector<int64_t> histograms(count * kRadixBins, 0);
    std::vector<double> newly_above(count, 0.0);
    for_each_chunk(n, [&](int64_t c, int64_t begin, int64_t end) {
      newly_above[c] = radix_pass_chunk(keys + begin, end - begin, state, pass,
                                        &histograms[c * kRadixBins]);
    });
    radix_step(sum_rows(histograms, kRadixBins).data(), sum_rows(newly_above, 1)[0], state, pass);
  }
  return state;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> loss_forward_cpu(
    const at::Tensor& prob_logits, const at::Tensor& thresh_logits, const at::Tensor& shrink_map,
    const at::Tensor& shrink_mask, const at::Tensor& thresh_map, const at::Tensor& thresh_mask,
    const LossConfig& config) {
  TORCH_CHECK(prob_logits.is_cpu(), "db_loss: expected CPU tensors");
  const LossMaps in("db_loss", prob_logits, thresh_logits, shrink_map, shrink_mask, thresh_map,
                    thresh_mask);
  const int64_t n = in.prob_logits.numel();
  const bool wide = in.prob_logits.scalar_type() == at::kDouble;
  at::Tensor keys = at::empty(in.prob_logits.sizes(), in.prob_logits.options().dtype(wide ? at::kLong : at::kInt));
  at::Tensor stats = at::zeros({kNumStats}, in.prob_logits.options().dtype(at::kDouble));
  double* st = stats.mutable_data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.prob_logits.scalar_type(), "db_loss_cpu", [&] {
    using A = acc_t<scalar_t>;
    using Key = key_t<A>;
    const auto gain = BinarizeGain<A>::from(config.k);
    const scalar_t* xp = in.prob_logits.const_data_ptr<scalar_t>();
    const scalar_t* xt = in.thresh_logits.const_data_ptr<scalar_t>();
    const A *gt = in.shrink_map.const_data_ptr<A>(), *m = in.shrink_mask.const_data_ptr<A>();
    const A *tm = in.thresh_map.const_data_ptr<A>(), *tmask = in.thresh_mask.const_data_ptr<A>();
    Key* kp = reinterpret_cast<Key*>(keys.mutable_data_ptr());
    const int64_t count = chunk_count(n);
    std::vector<double> sums(count * kNumSums, 0.0);
    std::vector<int64_t> histograms(count * kRadixBins, 0);
    for_each_chunk(n, [&](int64_t c, int64_t b, int64_t e) {
      forward_chunk(xp + b, xt + b, gt + b, m + b, tm + b, tmask + b, kp + b, e - b, gain,
                    &sums[c * kNumSums], &histograms[c * kRadixBins]);
    });
    const std::vector<double> total = sum_rows(sums, kNumSums);
    std::copy(total.begin(), total.end(), st);
    const int64_t selected = ohem_count(st[kPositives], st[kNegatives], config.ohem_ratio);
    const RadixState<Key> selection =
        select_kth_largest(kp, n, selected, sum_rows(histograms, kRadixBins));
    record_selection(st, selection, selected);
    compose_loss(st, config);
  });
  // The terms in float32, or float64 for float64 logits.
  const at::Tensor terms = stats.index_select(0, at::tensor({int64_t(kTotal), int64_t(kBce),
                                                             int64_t(kDice), int64_t(kL1)}))
                               .to(wide ? at::kDouble : at::kFloat);
  return {terms, keys, stats};
}

std::tuple<at::Tensor, at::Tensor> loss_backward_cpu(
    const at::Tensor& grad_terms, const at::Tensor& prob_logits, const at::Tensor& thresh_logits,
    const at::Tensor& shrink_map, const at::Tensor& shrink_mask, const at::Tensor& thresh_map,
    const at::Tensor& thresh_mask, const at::Tensor& keys, const at::Tensor& stats,
    const LossConfig& config) {
  TORCH_CHECK(prob_logits.is_cpu(), "db_loss_backward: expected CPU tensors");
  const LossMaps in("db_loss_backward", prob_logits, thresh_logits, shrink_map, shrink_mask,
                    thresh_map, thresh_mask);
  check_loss_saved(in, grad_terms, keys, stats);
  const at::Tensor g = grad_terms.to(at::kDouble).contiguous(), st = stats.to(at::kDouble).contiguous();
  const at::Tensor key_buffer = keys.contiguous();
  at::Tensor grad_xp = at::empty(in.prob_logits.sizes(), in.prob_logits.options());
  at::Tensor grad_xt = at::empty(in.prob_logits.sizes(), in.prob_logits.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.prob_logits.scalar_type(), "db_loss_backward_cpu", [&] {
    using A = acc_t<scalar_t>;
    using Key = key_t<A>;
    const auto gain = BinarizeGain<A>::from(config.k);
    const auto factors = loss_grad_factors<A>(st.const_data_ptr<double>(), g.const_data_ptr<double>(), config);
    const Key threshold = threshold_key<A>(st.const_data_ptr<double>());
    const scalar_t* xp = in.prob_logits.const_data_ptr<scalar_t>();
    const scalar_t* xt = in.thresh_logits.const_data_ptr<scalar_t>();
    const A *gt = in.shrink_map.const_data_ptr<A>(), *m = in.shrink_mask.const_data_ptr<A>();
    const A *tm = in.thresh_map.const_data_ptr<A>(), *tmask = in.thresh_mask.const_data_ptr<A>();
    const Key* kp = reinterpret_cast<const Key*>(key_buffer.const_data_ptr());
    scalar_t* gxp = grad_xp.mutable_data_ptr<scalar_t>();
    scalar_t* gxt = grad_xt.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, in.prob_logits.numel(), kChunk, [&](int64_t b, int64_t e) {
      backward_chunk(xp + b, xt + b, gt + b, m + b, tm + b, tmask + b, kp + b, e - b, threshold,
                     factors, gain, gxp + b, gxt + b);
    });
  });
  return {grad_xp, grad_xt};
}

}  // namespace dbf
