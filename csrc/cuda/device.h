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

#ifdef __CUDACC__
#include <type_traits>
#define DBF_SHARED(Type, name) __shared__ std::type_identity_t<Type> name
#define DBF_DYNAMIC_SHARED(Type, name) extern __shared__ __align__(16) Type name[]
#define DBF_LAUNCH(grid, block, shared_bytes, stream, ...) __VA_ARGS__<<<grid, block, shared_bytes, stream>>>
#else
#include "host_emulation.h"
#endif
