// Differentiable binarization B = 1 / (1 + exp(-k (P - T))), element math shared
// by the CPU loops below and the CUDA kernels (csrc/cuda/binarize.cu).
#pragma once

#include "elementary.h"

namespace dbf {

// The gain k split so that hi + lo carries a double k to float precision twice over.
template <class A> struct BinarizeGain {
  A hi, lo;
  static BinarizeGain from(double k) {
    A hi = static_cast<A>(k);
    return {hi, static_cast<A>(k - static_cast<double>(hi))};
  }
};

// B for float math. z = k (p - t) is carried as z + z_err with both the
// subtraction (TwoSum) and the product (fma) error-free, so B is exact to a few
// ulp even where sigmoid is steep relative to itself (z << 0).
DBF_HOST_DEVICE float binarize_value(float p, float t, BinarizeGain<float> k) {
  const float d_rounded = p - t;
  const float v = d_rounded - p;
  const float d_err = (p - (d_rounded - v)) + (-t - v);
  // An infinite p - t becomes the largest finite float of its sign, so that
  // k = 0 still gives 1/2 (0 * inf is NaN). Done on the bits (three integer
  // instructions): a two-sided float clamp vectorises into compares and blends.
  uint32_t d_bits = float_to_bits(d_rounded);
  d_bits -= (d_bits & 0x7fffffffu) == 0x7f800000u ? 1u : 0u;
  const float d = bits_to_float(d_bits);
  const float z = k.hi * d;
  float z_err = fused_mul_add(k.hi, d, -z) + fused_mul_add(k.hi, d_err, k.lo * d);
  // Past |z| = 104 the result is 0 or 1, and where p - t or k (p - t)
  // overflows the correction is inf - inf: drop it there.
  const uint32_t z_bits = float_to_bits(z);
  const float abs_z = bits_to_float(z_bits & 0x7fffffffu);
  z_err = z_err - z_err == 0.f ? z_err : 0.f;
  z_err = abs_z < 104.f ? z_err : 0.f;
  // exp(-|z|) is exp(z + z_err) for z < 0, exp(-z - z_err) otherwise (at
  // z = -0 either sign of a zero z_err gives the same)
  const float exp_err = bits_to_float(float_to_bits(z_err) ^ (~z_bits & 0x80000000u));
  const float s = exp_nonpositive(-abs_z, exp_err);
  return sigmoid_from_exp(z, s);
}

DBF_HOST_DEVICE double binarize_value(double p, double t, BinarizeGain<double> k) {
  double d = p - t;
  d = d > 1.7e308 ? 1.7e308 : d;
  d = d < -1.7e308 ? -1.7e308 : d;
  const double z = k.hi * d;
  return sigmoid_from_exp(z, ::exp(z < 0.0 ? z : -z));
}

// dB/dP = k B (1 - B) = -dB/dT, from the saved output B.
template <class A> DBF_HOST_DEVICE A binarize_grad(A grad, A b, A k) {
  return grad * (k * (b * (A(1) - b)));
}

// Host loops on raw buffers. T is float, double or a 16-bit type convertible to
// and from float; math is in acc_t<T>.
template <class T>
DBF_FORCE_INLINE void binarize_forward_span(const T* prob, const T* thresh, T* out, int64_t n,
                           BinarizeGain<acc_t<T>> k) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = T(binarize_value(acc_t<T>(prob[i]), acc_t<T>(thresh[i]), k));
  }
}

template <class T>
DBF_FORCE_INLINE void binarize_backward_span(const T* grad, const T* out, T* grad_prob, T* grad_thresh,
                            int64_t n, acc_t<T> k) {
  for (int64_t i = 0; i < n; ++i) {
    const acc_t<T> g = binarize_grad(acc_t<T>(grad[i]), acc_t<T>(out[i]), k);
    grad_prob[i] = T(g);
    grad_thresh[i] = T(-g);
  }
}

}  // namespace dbf
