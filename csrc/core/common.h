// Shared, torch-free building blocks for code that runs on the host and on CUDA devices.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

// Always inlined: the CPU loops are compiled once per instruction set
// (target_clones in csrc/cpu), which only reaches code inlined into them.
#if defined(__GNUC__) || defined(__clang__)
#define DBF_FORCE_INLINE inline __attribute__((always_inline))
#else
#define DBF_FORCE_INLINE inline
#endif

// Pointers that do not alias: spares the vectoriser run-time overlap checks.
#define DBF_RESTRICT __restrict__

#ifdef __CUDACC__
#define DBF_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DBF_HOST_DEVICE DBF_FORCE_INLINE
#endif

namespace dbf {

// The arithmetic type of an element type: double stays double, every other
// floating type (float, half, bfloat16) computes in float.
template <class T> struct AccType { using type = float; };
template <> struct AccType<double> { using type = double; };
template <class T> using acc_t = typename AccType<T>::type;

DBF_HOST_DEVICE float bits_to_float(uint32_t bits) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

DBF_HOST_DEVICE uint32_t float_to_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof f);
  return bits;
#endif
}

DBF_HOST_DEVICE double bits_to_double(uint64_t bits) {
#ifdef __CUDA_ARCH__
  return __longlong_as_double(static_cast<long long>(bits));
#else
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
#endif
}

DBF_HOST_DEVICE uint64_t double_to_bits(double d) {
#ifdef __CUDA_ARCH__
  return static_cast<uint64_t>(__double_as_longlong(d));
#else
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof d);
  return bits;
#endif
}

// a * b + c rounded once, the same on host and device (whatever the
// compilers' contraction of plain a * b + c, which differs between them).
DBF_HOST_DEVICE float fused_mul_add(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return fmaf(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

DBF_HOST_DEVICE double fused_mul_add(double a, double b, double c) {
#ifdef __CUDA_ARCH__
  return fma(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// Products rounded on their own: nvcc would otherwise contract a * b + c into
// one fma (it has no pragma against it), and geometry that the host computes
// without fma (the OpenCV- and Clipper-exact boxes) would then differ in the
// last bit on the device, enough to move a truncation onto another pixel.
DBF_HOST_DEVICE float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

DBF_HOST_DEVICE double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

}  // namespace dbf
