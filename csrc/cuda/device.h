// The one source of the kernels, two builds: nvcc, or the host compiler
// against the execution model of host_emulation.h (tests). Kernels write
// shared memory and launches with these macros, which are the plain CUDA
// forms under nvcc:
//   DBF_SHARED(int[8], xs);                     __shared__ int xs[8];
//   DBF_DYNAMIC_SHARED(unsigned char, bytes);   extern __shared__ __align__(16) unsigned char bytes[];
//   DBF_LAUNCH(grid, block, bytes, stream, kernel<T>)(args...);   kernel<T><<<grid, block, bytes, stream>>>(args...);
// (the kernel comes last: template arguments may hold commas). Torch-free:
// the launchers' c10 side is in runtime.h.
#pragma once

// Lets the macros take array types as written: dbf_type<int[8]> is int[8].
template <class T> using dbf_type = T;

#ifdef __CUDACC__
#define DBF_SHARED(Type, name) __shared__ dbf_type<Type> name
#define DBF_DYNAMIC_SHARED(Type, name) extern __shared__ __align__(16) Type name[]
#define DBF_LAUNCH(grid, block, shared_bytes, stream, ...) __VA_ARGS__<<<grid, block, shared_bytes, stream>>>
#else
#include "host_emulation.h"
// The variable lives in the block's shared arena, allocated (and poisoned)
// when the block's first thread reaches the declaration.
#define DBF_SHARED(Type, name)                                                                  \
  static constexpr ::dbf_emu::SharedSite name##_shared_site{#name, __FILE__, __LINE__};         \
  dbf_type<Type>& name =                                                                        \
      *static_cast<dbf_type<Type>*>(::dbf_emu::static_shared(&name##_shared_site, sizeof(Type), alignof(Type)))
#define DBF_DYNAMIC_SHARED(Type, name) Type* const name = static_cast<Type*>(::dbf_emu::dynamic_shared())
#define DBF_LAUNCH(grid, block, shared_bytes, stream, ...) \
  ::dbf_emu::launcher(__VA_ARGS__, #__VA_ARGS__, __FILE__, __LINE__, grid, block, shared_bytes, stream)
#endif
