// Hot CPU loops are compute-bound in cache: build them for AVX-512 and AVX2 +
// FMA as well as the baseline, and let the loader pick the variant for the
// running CPU. Only code inlined into such a function gets the wider variants,
// hence DBF_FORCE_INLINE on the core loops.
#pragma once

// GCC only: clang (the fuzz build) takes no arch= clones.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DBF_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DBF_CPU_CLONES
#endif
