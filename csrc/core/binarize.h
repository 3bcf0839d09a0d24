// Differentiable binarization B = 1 / (1 + exp(-k (P - T))), element math shared
// by the CPU loops below and the CUDA kernels (csrc/cuda/binarize.cu).
#pragma once

#include "common.h"

namespace dbf {

// The gain k split so that hi + lo carries a double k to float precision twice over.
template <class A> struct BinarizeGain {
  A hi, lo;
  static BinarizeGain from(double k) {
    A hi = static_cast<A>(k);
    return {hi, static_cast<A>(k - static_cast<double>(hi))};
  }
};

// exp(a) for a = a_hi + a_lo <= 0 (a_lo a tiny correction), within about 1 ulp.
// Written without branches or library calls so that loops over it vectorise,
// and the same on host and device. NaN in, NaN out.
DBF_HOST_DEVICE float exp_nonpositive(float a_hi, float a_lo) {
  // exp(-104) < 2^-150 rounds to 0 in float; clamping keeps n in range.
  a_hi = a_hi < -104.f ? -104.f : a_hi;
  // Adding 1.5 * 2^23 rounds to an integer; its low bits then hold n.
  const float round_magic = 12582912.f;
  const float shifted = a_hi * 1.44269504088896341f + round_magic;
  const float n = shifted - round_magic;  // round(a / ln 2), in [-150, 0]
  // Cody-Waite reduction: n * ln2_hi is exact (ln2_hi has 9 significant bits).
  const float r = (a_hi - n * 0.693359375f) + n * 2.12194440e-4f + a_lo;
  // Taylor series of exp on |r| <= ln(2) / 2, degree 7: truncation < 1e-8 relative.
  float poly = 1.f / 5040.f;
  poly = poly * r + 1.f / 720.f;
  poly = poly * r + 1.f / 120.f;
  poly = poly * r + 1.f / 24.f;
  poly = poly * r + 1.f / 6.f;
  poly = poly * r + 0.5f;
  poly = poly * r + 1.f;
  poly = poly * r + 1.f;
  // 2^n as 2^(n + 64) * 2^-64: the first factor stays normal, the product
  // rounds once into the subnormal range.
  const uint32_t biased = float_to_bits(shifted) - float_to_bits(round_magic) + 64u + 127u;
  return poly * bits_to_float(biased << 23) * 5.42101086242752217e-20f;
}

// Stable logistic from s = exp(-|z|): sigmoid(z) = 1/(1+s) for z >= 0, s/(1+s) otherwise.
template <class A> DBF_HOST_DEVICE A sigmoid_from_exp(A z, A s) {
  const A positive = A(1) / (A(1) + s);
  const A negative = s * positive;
  return z >= A(0) ? positive : negative;
}

// B for float math. z = k (p - t) is carried as z + z_err with both the
// subtraction (TwoSum) and the product (fma) error-free, so B is exact to a few
// ulp even where sigmoid is steep relative to itself (z << 0).
DBF_HOST_DEVICE float binarize_value(float p, float t, BinarizeGain<float> k) {
  float d = p - t;
  const float v = d - p;
  const float d_err = (p - (d - v)) + (-t - v);
  // Keep an overflowing p - t finite so that k = 0 still gives 1/2 (0 * inf is NaN).
  d = d > 3.4e38f ? 3.4e38f : d;
  d = d < -3.4e38f ? -3.4e38f : d;
  const float z = k.hi * d;
  float z_err = fused_mul_add(k.hi, d, -z) + (k.hi * d_err + k.lo * d);
  // Past |z| = 104 the result is 0 or 1, and where p - t or k (p - t)
  // overflows the correction is inf - inf: drop it there.
  const float abs_z = z < 0.f ? -z : z;
  z_err = z_err - z_err == 0.f ? z_err : 0.f;
  z_err = abs_z < 104.f ? z_err : 0.f;
  const float neg_z_err = -z_err;
  const float s = exp_nonpositive(-abs_z, z < 0.f ? z_err : neg_z_err);
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
