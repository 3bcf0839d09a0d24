// Launchers of the fused DB loss's kernels (loss_kernels.cuh). All state
// stays on the device: the forward is a fixed sequence of launches with no
// host synchronisation (it runs inside CUDA graphs).
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cstdint>

#include "../entry_points.h"
#include "loss_kernels.cuh"
#include "runtime.h"

namespace dbf {
namespace {

using namespace loss_kernels;

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

int block_count(int64_t n) {
  int device = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  return int(std::max<int64_t>(1, std::min<int64_t>({wanted, int64_t(sms) * 4, kMaxBlocks})));
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> loss_forward_cuda(
    const at::Tensor& prob_logits, const at::Tensor& thresh_logits, const at::Tensor& shrink_map,
    const at::Tensor& shrink_mask, const at::Tensor& thresh_map, const at::Tensor& thresh_mask,
    const LossConfig& config) {
  TORCH_CHECK(on_device(prob_logits), "db_loss: expected CUDA tensors");
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

    DBF_LAUNCH(blocks, kThreads, 0, stream, pixels_kernel<scalar_t, A, Key>)(
        in.prob_logits.const_data_ptr<scalar_t>(), in.thresh_logits.const_data_ptr<scalar_t>(),
        in.shrink_map.const_data_ptr<A>(), in.shrink_mask.const_data_ptr<A>(), in.thresh_map.const_data_ptr<A>(),
        in.thresh_mask.const_data_ptr<A>(), kp, n, BinarizeGain<A>::from(config.k), part, hist);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    DBF_LAUNCH(1, kThreads, 0, stream, select_start_kernel<Key>)(part, blocks, hist, config.ohem_ratio, stp, st);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    for (int pass = 1; pass < passes; ++pass) {
      DBF_LAUNCH(blocks, kThreads, 0, stream, radix_pass_kernel<Key>)(kp, n, st, pass, part,
                                                                      hist + pass * kRadixBins);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      // Where k = 0 the pass kernel returns at once and radix_step ignores the partials.
      DBF_LAUNCH(1, kThreads, 0, stream, select_step_kernel<Key, A>)(
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
  TORCH_CHECK(on_device(prob_logits), "db_loss_backward: expected CUDA tensors");
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
    DBF_LAUNCH(blocks, kThreads, 0, stream, backward_kernel<scalar_t, A, Key>)(
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
