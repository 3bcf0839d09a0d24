// CUDA kernels of db_binarize: one elementwise pass each way, 16-byte vector
// loads where the buffers allow, the element math from csrc/core/binarize.h.
// Torch-free (the launchers are in binarize.cu; the native tests run these
// kernels through the host emulation).
#pragma once

#include <cstdint>

#include "../core/binarize.h"
#include "device.h"

namespace dbf::binarize_kernels {

template <class T> constexpr int vec_width() { return 16 / static_cast<int>(sizeof(T)); }

// N elements loaded as one: aligned to their size, so a pack of one is an element.
template <class T, int N> struct alignas(sizeof(T) * N) Pack { T v[N]; };

// Elements [0, n_vec * N) go through packs of N when `vectorised`, the rest one by one.
template <class T, bool vectorised>
__global__ void forward_kernel(const T* __restrict__ prob, const T* __restrict__ thresh,
                               T* __restrict__ out, int64_t n, BinarizeGain<acc_t<T>> k) {
  constexpr int N = vectorised ? vec_width<T>() : 1;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t n_vec = n / N;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n_vec; i += stride) {
    const auto p = reinterpret_cast<const Pack<T, N>*>(prob)[i];
    const auto t = reinterpret_cast<const Pack<T, N>*>(thresh)[i];
    Pack<T, N> b;
#pragma unroll
    for (int j = 0; j < N; ++j) b.v[j] = T(binarize_value(acc_t<T>(p.v[j]), acc_t<T>(t.v[j]), k));
    reinterpret_cast<Pack<T, N>*>(out)[i] = b;
  }
  for (int64_t i = n_vec * N + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    out[i] = T(binarize_value(acc_t<T>(prob[i]), acc_t<T>(thresh[i]), k));
  }
}

template <class T, bool vectorised>
__global__ void backward_kernel(const T* __restrict__ grad, const T* __restrict__ out,
                                T* __restrict__ grad_prob, T* __restrict__ grad_thresh, int64_t n,
                                acc_t<T> k) {
  constexpr int N = vectorised ? vec_width<T>() : 1;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t n_vec = n / N;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n_vec; i += stride) {
    const auto g = reinterpret_cast<const Pack<T, N>*>(grad)[i];
    const auto b = reinterpret_cast<const Pack<T, N>*>(out)[i];
    Pack<T, N> dp, dt;
#pragma unroll
    for (int j = 0; j < N; ++j) {
      const acc_t<T> d = binarize_grad(acc_t<T>(g.v[j]), acc_t<T>(b.v[j]), k);
      dp.v[j] = T(d);
      dt.v[j] = T(-d);
    }
    reinterpret_cast<Pack<T, N>*>(grad_prob)[i] = dp;
    reinterpret_cast<Pack<T, N>*>(grad_thresh)[i] = dt;
  }
  for (int64_t i = n_vec * N + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const acc_t<T> d = binarize_grad(acc_t<T>(grad[i]), acc_t<T>(out[i]), k);
    grad_prob[i] = T(d);
    grad_thresh[i] = T(-d);
  }
}

}  // namespace dbf::binarize_kernels
