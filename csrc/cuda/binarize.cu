// Launchers of db_binarize's kernels (binarize_kernels.cuh): the vector
// kernels where all buffers are 16-byte aligned, else the scalar ones.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstdint>

#include "../entry_points.h"
#include "binarize_kernels.cuh"
#include "runtime.h"

namespace dbf {
namespace {

using namespace binarize_kernels;

constexpr int kThreads = 256;

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

// Enough blocks to fill the device a few times over; a grid-stride loop does the rest.
int grid_for(int64_t items) {
  int device = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t wanted = (items + kThreads - 1) / kThreads;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(wanted, int64_t(sms) * 16)));
}

}  // namespace

at::Tensor binarize_forward_cuda(const at::Tensor& prob, const at::Tensor& thresh, double k) {
  check_same_floating("db_binarize", prob, "prob", thresh, "thresh");
  TORCH_CHECK(on_device(prob), "db_binarize: expected CUDA tensors");
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
      DBF_LAUNCH(grid_for(n / vec_width<scalar_t>() + 1), kThreads, 0, stream,
                 forward_kernel<scalar_t, true>)(pp, tp, op, n, gain);
    } else {
      DBF_LAUNCH(grid_for(n), kThreads, 0, stream, forward_kernel<scalar_t, false>)(pp, tp, op, n, gain);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> binarize_backward_cuda(const at::Tensor& grad,
                                                          const at::Tensor& out, double k) {
  check_same_floating("db_binarize_backward", grad, "grad", out, "out");
  TORCH_CHECK(on_device(grad), "db_binarize_backward: expected CUDA tensors");
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
      DBF_LAUNCH(grid_for(n / vec_width<scalar_t>() + 1), kThreads, 0, stream,
                 backward_kernel<scalar_t, true>)(gp, bp, dp, dt, n, gain);
    } else {
      DBF_LAUNCH(grid_for(n), kThreads, 0, stream, backward_kernel<scalar_t, false>)(gp, bp, dp, dt, n, gain);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_prob, grad_thresh};
}

}  // namespace dbf
