// Elementary functions in float written without branches or library calls, so
// that loops over them vectorise and host and device compute the same; double
// versions use the C library.
#pragma once

#include "common.h"

namespace dbf {

// exp(a) for a = a_hi + a_lo <= 0 (a_lo a tiny correction), within about 1 ulp.
// Written without branches or library calls so that loops over it vectorise,
// and the same on host and device. NaN in, NaN out.
DBF_HOST_DEVICE float exp_nonpositive(float a_hi, float a_lo) {
  // exp(-104) < 2^-150 rounds to 0 in float; clamping keeps n in range.
  a_hi = a_hi < -104.f ? -104.f : a_hi;
  // Adding 1.5 * 2^23 rounds to an integer; its low bits then hold n.
  const float round_magic = 12582912.f;
  // (fused: one rounding, and one instruction where the CPU has FMA; the
  // baseline x86-64 variant calls the C library's fmaf, the same bits)
  const float shifted = fused_mul_add(a_hi, 1.44269504088896341f, round_magic);
  const float n = shifted - round_magic;  // round(a / ln 2), in [-150, 0]
  // Cody-Waite reduction: n * ln2_hi is exact (ln2_hi has 9 significant bits).
  const float r = fused_mul_add(n, 2.12194440e-4f, fused_mul_add(n, -0.693359375f, a_hi)) + a_lo;
  // Taylor series of exp on |r| <= ln(2) / 2, degree 7: truncation < 1e-8 relative.
  float poly = 1.f / 5040.f;
  poly = fused_mul_add(poly, r, 1.f / 720.f);
  poly = fused_mul_add(poly, r, 1.f / 120.f);
  poly = fused_mul_add(poly, r, 1.f / 24.f);
  poly = fused_mul_add(poly, r, 1.f / 6.f);
  poly = fused_mul_add(poly, r, 0.5f);
  poly = fused_mul_add(poly, r, 1.f);
  poly = fused_mul_add(poly, r, 1.f);
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

// The logistic function with its slope sigmoid'(x) = sigmoid(x) sigmoid(-x) and
// exp(-|x|), all without cancellation for any x.
template <class A> struct Logistic {
  A value, slope, exp_neg_abs;
};

// exp(-|x|), the building block of the stable logistic and softplus.
DBF_HOST_DEVICE float exp_neg_abs(float x) { return exp_nonpositive(x < 0.f ? x : -x, 0.f); }
DBF_HOST_DEVICE double exp_neg_abs(double x) { return ::exp(x < 0.0 ? x : -x); }

// log(1 + y) for y in [0, 1], within about 2 ulp. With 1 + y = 2^e (1 + f),
// f in [sqrt(1/2) - 1, sqrt(2) - 1] is exact (no rounding of 1 + y), and
// log(1 + f) = 2 atanh(w), w = f / (2 + f), |w| <= 0.1716: five odd terms
// leave a truncation below 3e-9 relative.
DBF_HOST_DEVICE float log1p_unit(float y) {
  const bool halve = y > 0.41421356f;
  const float f = halve ? (y - 1.f) * 0.5f : y;
  const float w = f / (2.f + f);
  const float w2 = w * w;
  float series = 1.f / 9.f;
  series = series * w2 + 1.f / 7.f;
  series = series * w2 + 1.f / 5.f;
  series = series * w2 + 1.f / 3.f;
  series = series * w2 + 1.f;
  const float log_m = 2.f * w * series;
  return halve ? log_m + 0.693147180559945309f : log_m;
}
DBF_HOST_DEVICE double log1p_unit(double y) { return ::log1p(y); }

template <class A> DBF_HOST_DEVICE Logistic<A> logistic(A x) {
  const A e = exp_neg_abs(x);
  const A r = A(1) / (A(1) + e);
  const A negative = e * r;
  return {x >= A(0) ? r : negative, negative * r, e};
}

// softplus(x) - y x, the binary cross-entropy of sigmoid(x) against y, from
// the logit: max(x, 0) - y x + log(1 + exp(-|x|)).
template <class A> DBF_HOST_DEVICE A bce_from_logit(A x, A y, A exp_neg_abs_x) {
  const A relu = x > A(0) ? x : A(0);
  return (relu - y * x) + log1p_unit(exp_neg_abs_x);
}

}  // namespace dbf
