// CUDA kernels of the fused DB loss. The pass structure is the CPU's
// (csrc/cpu/loss.cpp, csrc/core/loss.h): a pixel pass (sums, keys, digit-0
// histogram), then per radix digit a histogram pass and a one-block step. All
// state stays on the device; sums are reduced in a fixed order (per-block
// partials, then one block), so results repeat exactly on a given GPU.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>

#include "../core/loss.h"
#include "../entry_points.h"

namespace dbf {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

int block_count(int64_t n) {
  int device = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  return int(std::max<int64_t>(1, std::min<int64_t>({wanted, int64_t(sms) * 4, kMaxBlocks})));
}

// Sums W doubles over the block in a fixed tree; thread 0 ends with the totals.
template <int W> __device__ void block_sum(double (&v)[W]) {
  __shared__ double shared[W][kThreads];
  for (int w = 0; w < W; ++w) shared[w][threadIdx.x] = v[w];
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      for (int w = 0; w < W; ++w) shared[w][threadIdx.x] += shared[w][threadIdx.x + stride];
    }
    __syncthreads();
  }
  for (int w = 0; w < W; ++w) v[w] = shared[w][0];
  __syncthreads();
}

// Sums column w of rows[blocks][W] in a fixed order (one block).
template <int W> __device__ void sum_partials(const double* rows, int blocks, double (&v)[W]) {
  for (int w = 0; w < W; ++w) v[w] = 0.0;
  for (int b = threadIdx.x; b < blocks; b += blockDim.x) {
    for (int w = 0; w < W; ++w) v[w] += rows[b * W + w];
  }
  block_sum(v);
}

__device__ void zero_histogram(unsigned int* local) {
  for (int b = threadIdx.x; b < kRadixBins; b += blockDim.x) local[b] = 0;
  __syncthreads();
}

__device__ void flush_histogram(const unsigned int* local, unsigned long long* global) {
  __syncthreads();
  for (int b = threadIdx.x; b < kRadixBins; b += blockDim.x) {
    if (local[b] != 0) atomicAdd(&global[b], static_cast<unsigned long long>(local[b]));
  }
}

template <class T, class A, class Key>
__global__ void pixels_kernel(const T* __restrict__ xp, const T* __restrict__ xt,
                              const A* __restrict__ gt, const A* __restrict__ m,
                              const A* __restrict__ tm, const A* __restrict__ tmask,
                              Key* __restrict__ keys, int64_t n, BinarizeGain<A> k,
                              double* partials, unsigned long long* histogram) {
  __shared__ unsigned int local[kRadixBins];
  zero_histogram(local);
  double sums[kNumSums] = {};
  unsigned int bin_zero = 0;  // every pixel that is no negative: counted apart, not contended
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const A target = gt[i], mask = m[i];
    const LossPoint<A> q = loss_point(A(xp[i]), A(xt[i]), target, k);
    const Key key = is_negative(target, mask) ? loss_key(q.bce) : Key(0);
    keys[i] = key;
    const int digit = radix_digit(key, 0);
    if (digit == 0) {
      ++bin_zero;
    } else {
      atomicAdd(&local[digit], 1u);
    }
    A c[kNumSums];
    pixel_sums(q, target, mask, tm[i], tmask[i], c);
    for (int s = 0; s < kNumSums; ++s) sums[s] += double(c[s]);
  }
  if (bin_zero != 0) atomicAdd(&local[0], bin_zero);
  block_sum(sums);
  if (threadIdx.x == 0) {
    for (int s = 0; s < kNumSums; ++s) partials[blockIdx.x * kNumSums + s] = sums[s];
  }
  flush_histogram(local, histogram);
}

// Loads a pass's histogram into shared memory as radix_step reads it.
__device__ void load_histogram(const unsigned long long* global, int64_t* local) {
  for (int b = threadIdx.x; b < kRadixBins; b += blockDim.x) local[b] = int64_t(global[b]);
  __syncthreads();
}

// One block: the sums, k, the selection's start and the step of digit 0.
template <class Key>
__global__ void select_start_kernel(const double* partials, int blocks,
                                    const unsigned long long* histogram, double ohem_ratio,
                                    double* stats, RadixState<Key>* state) {
  __shared__ int64_t local[kRadixBins];
  double sums[kNumSums];
  sum_partials(partials, blocks, sums);
  load_histogram(histogram, local);
  if (threadIdx.x == 0) {
    for (int s = 0; s < kNumSums; ++s) stats[s] = sums[s];
    RadixState<Key> s = radix_start<Key>(ohem_count(sums[kPositives], sums[kNegatives], ohem_ratio));
    radix_step(local, 0.0, s, 0);
    *state = s;
  }
}

template <class Key>
__global__ void radix_pass_kernel(const Key* __restrict__ keys, int64_t n,
                                  const RadixState<Key>* state, int pass, double* partials,
                                  unsigned long long* histogram) {
  const RadixState<Key> s = *state;
  if (s.rank <= 0) return;  // k = 0: nothing to select (the same for every thread)
  __shared__ unsigned int local[kRadixBins];
  zero_histogram(local);
  double newly_above[1] = {0.0};
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const Key key = keys[i];
    if (radix_matches(key, s)) atomicAdd(&local[radix_digit(key, pass)], 1u);
    if (radix_newly_above(key, s, pass)) newly_above[0] += double(key_loss(key));
  }
  block_sum(newly_above);
  if (threadIdx.x == 0) partials[blockIdx.x] = newly_above[0];
  flush_histogram(local, histogram);
}

// One block: the step of digit `pass`; after the last, the loss itself.
template <class Key, class Out>
__global__ void select_step_kernel(const double* partials, int blocks,
                                   const unsigned long long* histogram, int pass,
                                   RadixState<Key>* state, double* stats, LossConfig config,
                                   Out* terms) {
  __shared__ int64_t local[kRadixBins];
  double newly_above[1];
  sum_partials(partials, blocks, newly_above);
  load_histogram(histogram, local);
  if (threadIdx.x != 0) return;
  RadixState<Key> s = *state;
  radix_step(local, newly_above[0], s, pass);
  *state = s;
  if (pass == radix_passes<Key>() - 1) {
    record_selection(stats, s, ohem_count(stats[kPositives], stats[kNegatives], config.ohem_ratio));
    compose_loss(stats, config);
    terms[0] = Out(stats[kTotal]);
    terms[1] = Out(stats[kBce]);
    terms[2] = Out(stats[kDice]);
    terms[3] = Out(stats[kL1]);
  }
}

template <class T, class A, class Key>
__global__ void backward_kernel(const T* __restrict__ xp, const T* __restrict__ xt,
                                const A* __restrict__ gt, const A* __restrict__ m,
                                const A* __restrict__ tm, const A* __restrict__ tmask,
                                const Key* __restrict__ keys, int64_t n, const double* stats,
                                const double* grad_terms, LossConfig config, BinarizeGain<A> k,
                                T* __restrict__ grad_xp, T* __restrict__ grad_xt) {
  const LossGradFactors<A> f = loss_grad_factors<A>(stats, grad_terms, config);
  const Key threshold = threshold_key<A>(stats);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    A gp, gtl;
    loss_grad_point(A(xp[i]), A(xt[i]), gt[i], m[i], tm[i], tmask[i], keys[i], threshold, f, k,
                    gp, gtl);
    grad_xp[i] = T(gp);
    grad_xt[i] = T(gtl);
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> loss_forward_cuda(
    const at::Tensor& prob_logits, const at::Tensor& thresh_logits, const at::Tensor& shrink_map,
    const at::Tensor& shrink_mask, const at::Tensor& thresh_map, const at::Tensor& thresh_mask,
    const LossConfig& config) {
  TORCH_CHECK(prob_logits.is_cuda(), "db_loss: expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(prob_logits.device());
  const LossMaps in("db_loss", prob_logits, thresh_logits, shrink_map, shrink_mask, thresh_map,
                    thresh_mask);
  const int64_t n = in.prob_logits.numel();
  const bool wide = in.prob_logits.scalar_type() == at::kDouble;
  const auto options = in.prob_logits.options();
  at::Tensor keys = at::empty(in.prob_logits.sizes(), options.dtype(wide ? at::kLong : at::kInt));
  at::Tensor stats = at::zeros({kNumStats}, options.dtype(at::kDouble));
  at::Tensor terms = at::empty({4}, options.dtype(wide ? at::kDouble : at::kFloat));
  const int blocks = block_count(n);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.prob_logits.scalar_type(), "db_loss_cuda", [&] {
    using A = acc_t<scalar_t>;
    using Key = key_t<A>;
    constexpr int passes = radix_passes<Key>();
    at::Tensor partials = at::empty({blocks * kNumSums}, options.dtype(at::kDouble));
    at::Tensor histograms = at::zeros({passes * kRadixBins}, options.dtype(at::kLong));
    at::Tensor state = at::empty({8}, options.dtype(at::kLong));  // a RadixState<Key>
    static_assert(sizeof(RadixState<Key>) <= 8 * sizeof(int64_t), "state buffer too small");
    auto* hist = reinterpret_cast<unsigned long long*>(histograms.mutable_data_ptr<int64_t>());
    auto* st = reinterpret_cast<RadixState<Key>*>(state.mutable_data_ptr<int64_t>());
    double* part = partials.mutable_data_ptr<double>();
    double* stp = stats.mutable_data_ptr<double>();
    Key* kp = reinterpret_cast<Key*>(keys.mutable_data_ptr());

    pixels_kernel<scalar_t, A, Key><<<blocks, kThreads, 0, stream>>>(
        in.prob_logits.const_data_ptr<scalar_t>(), in.thresh_logits.const_data_ptr<scalar_t>(),
        in.shrink_map.const_data_ptr<A>(), in.shrink_mask.const_data_ptr<A>(), in.thresh_map.const_data_ptr<A>(),
        in.thresh_mask.const_data_ptr<A>(), kp, n, BinarizeGain<A>::from(config.k), part, hist);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    select_start_kernel<Key><<<1, kThreads, 0, stream>>>(part, blocks, hist, config.ohem_ratio,
                                                         stp, st);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    for (int pass = 1; pass < passes; ++pass) {
      radix_pass_kernel<Key><<<blocks, kThreads, 0, stream>>>(kp, n, st, pass, part,
                                                              hist + pass * kRadixBins);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      // Where k = 0 the pass kernel returns at once and radix_step ignores the partials.
      select_step_kernel<Key, A><<<1, kThreads, 0, stream>>>(
          part, blocks, hist + pass * kRadixBins, pass, st, stp, config,
          terms.mutable_data_ptr<A>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return {terms, keys, stats};
}

std::tuple<at::Tensor, at::Tensor> loss_backward_cuda(
    const at::Tensor& grad_terms, const at::Tensor& prob_logits, const at::Tensor& thresh_logits,
    const at::Tensor& shrink_map, const at::Tensor& shrink_mask, const at::Tensor& thresh_map,
    const at::Tensor& thresh_mask, const at::Tensor& keys, const at::Tensor& stats,
    const LossConfig& config) {
  TORCH_CHECK(prob_logits.is_cuda(), "db_loss_backward: expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(prob_logits.device());
  const LossMaps in("db_loss_backward", prob_logits, thresh_logits, shrink_map, shrink_mask,
                    thresh_map, thresh_mask);
  check_loss_saved(in, grad_terms, keys, stats);
  const at::Tensor g = grad_terms.to(at::kDouble).contiguous();
  const at::Tensor st = stats.to(at::kDouble).contiguous();
  const at::Tensor key_buffer = keys.contiguous();
  at::Tensor grad_xp = at::empty(in.prob_logits.sizes(), in.prob_logits.options());
  at::Tensor grad_xt = at::empty(in.prob_logits.sizes(), in.prob_logits.options());
  const int64_t n = in.prob_logits.numel();
  if (n == 0) return {grad_xp, grad_xt};
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  const int blocks = int(std::min<int64_t>(wanted, 65535));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.prob_logits.scalar_type(), "db_loss_backward_cuda", [&] {
    using A = acc_t<scalar_t>;
    using Key = key_t<A>;
    backward_kernel<scalar_t, A, Key><<<blocks, kThreads, 0, stream>>>(
        in.prob_logits.const_data_ptr<scalar_t>(), in.thresh_logits.const_data_ptr<scalar_t>(),
        in.shrink_map.const_data_ptr<A>(), in.shrink_mask.const_data_ptr<A>(), in.thresh_map.const_data_ptr<A>(),
        in.thresh_mask.const_data_ptr<A>(), reinterpret_cast<const Key*>(key_buffer.const_data_ptr()), n,
        st.const_data_ptr<double>(), g.const_data_ptr<double>(), config,
        BinarizeGain<A>::from(config.k), grad_xp.mutable_data_ptr<scalar_t>(),
        grad_xt.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_xp, grad_xt};
}

}  // namespace dbf
