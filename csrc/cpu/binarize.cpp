// CPU entry points of db_binarize: contiguous buffers, split across threads,
// each chunk run by the core loops (csrc/core/binarize.h).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include "../core/binarize.h"
#include "../core/clones.h"
#include "../entry_points.h"

namespace dbf {
namespace {

constexpr int64_t kGrain = 1 << 15;  // elements per task: large enough to amortise a wake-up

DBF_CPU_DISPATCH(void, forward_f32,
                 (const float* prob, const float* thresh, float* out, int64_t n, BinarizeGain<float> k),
                 binarize_forward_span, (prob, thresh, out, n, k))

DBF_CPU_DISPATCH(void, backward_f32,
                 (const float* grad, const float* out, float* grad_prob, float* grad_thresh, int64_t n,
                  float k),
                 binarize_backward_span, (grad, out, grad_prob, grad_thresh, n, k))

template <class T>
void forward_chunk(const T* prob, const T* thresh, T* out, int64_t n, BinarizeGain<acc_t<T>> k) {
  if constexpr (std::is_same_v<T, float>) {
    forward_f32(prob, thresh, out, n, k);
  } else {
    binarize_forward_span(prob, thresh, out, n, k);
  }
}

template <class T>
void backward_chunk(const T* grad, const T* out, T* grad_prob, T* grad_thresh, int64_t n,
                    acc_t<T> k) {
  if constexpr (std::is_same_v<T, float>) {
    backward_f32(grad, out, grad_prob, grad_thresh, n, k);
  } else {
    binarize_backward_span(grad, out, grad_prob, grad_thresh, n, k);
  }
}

}  // namespace

at::Tensor binarize_forward_cpu(const at::Tensor& prob, const at::Tensor& thresh, double k) {
  check_same_floating("db_binarize", prob, "prob", thresh, "thresh");
  TORCH_CHECK(prob.is_cpu(), "db_binarize: expected CPU tensors");
  const at::Tensor p = prob.contiguous(), t = thresh.contiguous();
  at::Tensor out = at::empty(p.sizes(), p.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, p.scalar_type(), "db_binarize_cpu", [&] {
    const auto gain = BinarizeGain<acc_t<scalar_t>>::from(k);
    const scalar_t* pp = p.const_data_ptr<scalar_t>();
    const scalar_t* tp = t.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, p.numel(), kGrain, [&](int64_t begin, int64_t end) {
      forward_chunk(pp + begin, tp + begin, op + begin, end - begin, gain);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> binarize_backward_cpu(const at::Tensor& grad,
                                                         const at::Tensor& out, double k) {
  check_same_floating("db_binarize_backward", grad, "grad", out, "out");
  TORCH_CHECK(grad.is_cpu(), "db_binarize_backward: expected CPU tensors");
  const at::Tensor g = grad.contiguous(), b = out.contiguous();
  at::Tensor grad_prob = at::empty(g.sizes(), g.options());
  at::Tensor grad_thresh = at::empty(g.sizes(), g.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "db_binarize_backward_cpu", [&] {
    const auto gain = static_cast<acc_t<scalar_t>>(k);
    const scalar_t* gp = g.const_data_ptr<scalar_t>();
    const scalar_t* bp = b.const_data_ptr<scalar_t>();
    scalar_t* dp = grad_prob.mutable_data_ptr<scalar_t>();
    scalar_t* dt = grad_thresh.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, g.numel(), kGrain, [&](int64_t begin, int64_t end) {
      backward_chunk(gp + begin, bp + begin, dp + begin, dt + begin, end - begin, gain);
    });
  });
  return {grad_prob, grad_thresh};
}

}  // namespace dbf
