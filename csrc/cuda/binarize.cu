// CUDA kernels of db_binarize: one elementwise pass each way, 16-byte vector
// loads where the buffers allow, the element math from csrc/core/binarize.h.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>

#include "../core/binarize.h"
#include "../entry_points.h"

namespace dbf {
namespace {

constexpr int kThreads = 256;

template <class T> constexpr int vec_width() { return 16 / static_cast<int>(sizeof(T)); }

template <class T, int N> struct alignas(16) Pack { T v[N]; };

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// Enough blocks to fill the device a few times over; a grid-stride loop does the rest.
int grid_for(int64_t items) {
  int device = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t wanted = (items + kThreads - 1) / kThreads;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(wanted, int64_t(sms) * 16)));
}

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

}  // namespace

at::Tensor binarize_forward_cuda(const at::Tensor& prob, const at::Tensor& thresh, double k) {
  check_same_floating("db_binarize", prob, "prob", thresh, "thresh");
  TORCH_CHECK(prob.is_cuda(), "db_binarize: expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(prob.device());
  const at::Tensor p = prob.contiguous(), t = thresh.contiguous();
  at::Tensor out = at::empty(p.sizes(), p.options());
  const int64_t n = p.numel();
  if (n == 0) return out;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "db_binarize_cuda", [&] {
    const auto gain = BinarizeGain<acc_t<scalar_t>>::from(k);
    const scalar_t* pp = p.const_data_ptr<scalar_t>();
    const scalar_t* tp = t.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    if (aligned16(pp) && aligned16(tp) && aligned16(op)) {
      forward_kernel<scalar_t, true>
          <<<grid_for(n / vec_width<scalar_t>() + 1), kThreads, 0, stream>>>(pp, tp, op, n, gain);
    } else {
      forward_kernel<scalar_t, false><<<grid_for(n), kThreads, 0, stream>>>(pp, tp, op, n, gain);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> binarize_backward_cuda(const at::Tensor& grad,
                                                          const at::Tensor& out, double k) {
  check_same_floating("db_binarize_backward", grad, "grad", out, "out");
  TORCH_CHECK(grad.is_cuda(), "db_binarize_backward: expected CUDA tensors");
  const c10::cuda::CUDAGuard guard(grad.device());
  const at::Tensor g = grad.contiguous(), b = out.contiguous();
  at::Tensor grad_prob = at::empty(g.sizes(), g.options());
  at::Tensor grad_thresh = at::empty(g.sizes(), g.options());
  const int64_t n = g.numel();
  if (n == 0) return {grad_prob, grad_thresh};
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "db_binarize_backward_cuda", [&] {
    const auto gain = static_cast<acc_t<scalar_t>>(k);
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    const scalar_t* bp = b.const_data_ptr<scalar_t>();
    scalar_t* dp = grad_prob.mutable_data_ptr<scalar_t>();
    scalar_t* dt = grad_thresh.mutable_data_ptr<scalar_t>();
    if (aligned16(gp) && aligned16(bp) && aligned16(dp) && aligned16(dt)) {
      backward_kernel<scalar_t, true>
          <<<grid_for(n / vec_width<scalar_t>() + 1), kThreads, 0, stream>>>(gp, bp, dp, dt, n, gain);
    } else {
      backward_kernel<scalar_t, false><<<grid_for(n), kThreads, 0, stream>>>(gp, bp, dp, dt, n, gain);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_prob, grad_thresh};
}

}  // namespace dbf
