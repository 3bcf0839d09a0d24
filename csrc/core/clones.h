// Hot CPU loops are compute-bound in cache: each is compiled for AVX-512
// (x86-64-v4), AVX2 + FMA (x86-64-v3) and the baseline, and called through
// an explicit dispatch on cpu_variant(), chosen once when the library loads:
// the best variant the CPU runs, or a lower one forced with
// DBNET_FAST_CPU_VARIANT=baseline|avx2|avx512 (to measure and test the
// variants of other CPUs on this one). Only code inlined into a variant is
// compiled for it, hence DBF_FORCE_INLINE on the core loops.
#pragma once

#include "common.h"  // DBF_FORCE_INLINE, for the loops that the variants inline

namespace dbf {

enum class CpuVariant { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// The variant the dispatched loops run (fixed at load).
CpuVariant cpu_variant();
const char* cpu_variant_name(CpuVariant variant);
// The best variant this CPU and build can run.
CpuVariant best_cpu_variant();
// Why the requested DBNET_FAST_CPU_VARIANT cannot run ("" when it can, or
// when none is requested); the module refuses to load with this message.
const char* cpu_variant_error();

}  // namespace dbf

// GCC on x86-64 only: other compilers (clang for the fuzz build) build the
// baseline alone.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DBF_CPU_VARIANTS 1
#define DBF_TARGET_AVX512 __attribute__((target("arch=x86-64-v4")))
#define DBF_TARGET_AVX2 __attribute__((target("arch=x86-64-v3")))
// `ret name params` runs `impl args` (a DBF_FORCE_INLINE function) compiled
// for the variant of cpu_variant().
#define DBF_CPU_DISPATCH(ret, name, params, impl, args)                   \
  DBF_TARGET_AVX512 static ret name##_avx512 params { return impl args; } \
  DBF_TARGET_AVX2 static ret name##_avx2 params { return impl args; }     \
  static ret name##_baseline params { return impl args; }                 \
  ret name params {                                                       \
    switch (::dbf::cpu_variant()) {                                       \
      case ::dbf::CpuVariant::kAvx512: return name##_avx512 args;         \
      case ::dbf::CpuVariant::kAvx2: return name##_avx2 args;             \
      default: return name##_baseline args;                               \
    }                                                                     \
  }
#else
#define DBF_CPU_VARIANTS 0
#define DBF_CPU_DISPATCH(ret, name, params, impl, args) \
  ret name params { return impl args; }
#endif
