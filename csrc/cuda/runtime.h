// What the launchers take from c10's CUDA side (stream, guard, error checks),
// and `on_device`: the real headers under nvcc; in the host build (the
// emulated module) CPU tensors play the device's, and these stand-ins route
// the checks through the execution model of host_emulation.h.
#pragma once

#include <ATen/core/Tensor.h>

#include "device.h"

#ifdef __CUDACC__
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace dbf {
inline bool on_device(const at::Tensor& t) { return t.is_cuda(); }
}  // namespace dbf
#else
#include <c10/util/Exception.h>

namespace c10::cuda {
// One device, one stream: launches and copies complete before they return.
class CUDAGuard {
 public:
  explicit CUDAGuard(c10::Device) {}
};
class CUDAStream {
 public:
  operator cudaStream_t() const { return nullptr; }
  cudaStream_t stream() const { return nullptr; }
};
inline CUDAStream getCurrentCUDAStream(c10::DeviceIndex = -1) { return {}; }
}  // namespace c10::cuda

#define C10_CUDA_CHECK(EXPR)                                                                      \
  do {                                                                                            \
    const cudaError_t dbf_cuda_error = (EXPR);                                                    \
    TORCH_CHECK(dbf_cuda_error == cudaSuccess, "CUDA error (host emulation): ",                   \
                cudaGetErrorString(dbf_cuda_error), ": ", ::dbf_emu::last_error_message(), " in ", #EXPR); \
  } while (0)
#define C10_CUDA_KERNEL_LAUNCH_CHECK() C10_CUDA_CHECK(::dbf_emu::launch_checked())

namespace dbf {
inline bool on_device(const at::Tensor& t) { return t.is_cpu(); }
}  // namespace dbf
#endif
