// CUDA kernels of the fused DB loss (the launchers are in loss.cu). The pass
// structure is the CPU's (csrc/cpu/loss.cpp, csrc/core/loss.h): a pixel pass
// (sums, keys, digit-0 histogram), then per radix digit a histogram pass and
// a one-block step. Sums are reduced in a fixed order (per-block partials,
// then one block), so results do not depend on the order blocks and threads
// run in. Torch-free: the native tests run them through the host emulation.
#pragma once

#include <cstdint>

#include "../core/loss.h"
#include "device.h"

namespace dbf::loss_kernels {

constexpr int kWarpSize = 32;

// The lanes of warp `warp` that the block has (its last warp may be partial).
__device__ inline int lanes_of_warp(int warp) { return min(kWarpSize, int(blockDim.x) - warp * kWarpSize); }

// Sums v over the first `lanes` lanes of the calling warp in a fixed tree; lane 0 ends with the sum.
__device__ inline double warp_sum(double v, int lanes) {
  const unsigned mask = lanes == kWarpSize ? 0xffffffffu : (1u << lanes) - 1u;
  const int lane = int(threadIdx.x) % kWarpSize;
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const double other = __shfl_down_sync(mask, v, unsigned(offset));
    if (lane + offset < lanes) v += other;
  }
  return v;
}

// Sums W doubles over the block in a fixed order, for any block size: each
// warp by shuffles, then warp 0 over the warps' sums; thread 0 ends with the totals.
template <int W> __device__ void block_sum(double (&v)[W]) {
  DBF_SHARED(double[W][kWarpSize], warp_sums);  // a block has at most 32 warps
  const int lane = int(threadIdx.x) % kWarpSize, warp = int(threadIdx.x) / kWarpSize;
  const int warps = (int(blockDim.x) + kWarpSize - 1) / kWarpSize;
  for (int w = 0; w < W; ++w) v[w] = warp_sum(v[w], lanes_of_warp(warp));
  if (lane == 0) {
    for (int w = 0; w < W; ++w) warp_sums[w][warp] = v[w];
  }
  __syncthreads();
  if (warp == 0) {
    for (int w = 0; w < W; ++w) v[w] = warp_sum(lane < warps ? warp_sums[w][lane] : 0.0, lanes_of_warp(0));
  }
  __syncthreads();  // warp_sums is reused by the next call
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
  DBF_SHARED(unsigned int[kRadixBins], local);
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
  DBF_SHARED(int64_t[kRadixBins], local);
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
  DBF_SHARED(unsigned int[kRadixBins], local);
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
  DBF_SHARED(int64_t[kRadixBins], local);
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

}  // namespace dbf::loss_kernels
