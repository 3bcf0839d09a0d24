// A small CUDA execution model on the host (DESIGN.md section 6): the kernels
// of csrc/cuda compiled with the host compiler against it run on the CPU, in
// the test-only module dbnet_fast._C_emulated and in the native tests. It is
// torch-free; csrc/cuda/runtime.h adds the c10 stand-ins for the launchers.
//
// What it models (host_emulation.cpp):
// - grids and blocks in 3-D with the device's launch limits; blocks run one
//   after another, the threads of a block as cooperative fibers (ucontext, one
//   stack each) that switch only at __syncthreads and warp collectives, so a
//   barrier is a real barrier; one that not every live thread reaches, at one
//   site, is an error naming the kernel and the barrier's line, never a hang;
// - per-block shared memory (DBF_SHARED, DBF_DYNAMIC_SHARED), fresh for each
//   block and filled with a garbage byte (kSharedPoison) so that a read before
//   a write shows; static + dynamic size against the 48 KB default or the
//   kernel's opt-in (cudaFuncSetAttribute), the fake device's maximum above;
// - warps of 32 lanes: shuffles, votes and __syncwarp wait for every lane of
//   their mask (a lane named in the mask that exited or waits elsewhere is an
//   error); atomics (a thread is never interrupted between switch points, so
//   a plain read-modify-write is atomic), __ldg/__ldcg, fences, bit casts;
// - schedules: threads between barriers and the blocks of a grid run in
//   raster, reversed or seeded-random order (set_schedule): results that
//   change with the schedule reveal a race.
// Errors throw dbf_emu::Error from the launch; C10_CUDA_KERNEL_LAUNCH_CHECK
// must follow every launch (the next launch, or the end of an emulated entry
// point, refuses otherwise).
//
// Not modelled: preemption between switch points (a thread's stretch between
// barriers runs whole, so races show as order dependence, not as torn
// read-modify-writes), lockstep warps, the memory model beyond barriers,
// streams (everything is synchronous), __launch_bounds__, grid-wide sync.
// A kernel's static shared size is learned from its launches (before its
// first, cudaFuncGetAttributes reports 0 and a dynamic limit of 0).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// --- CUDA's keywords: plain host functions --------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// --- the runtime API that the launchers use -------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
};
struct CUstream_st;
using cudaStream_t = CUstream_st*;  // one stream: launches and copies are synchronous

enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxBlockDimX = 2,
  cudaDevAttrMaxBlockDimY = 3,
  cudaDevAttrMaxBlockDimZ = 4,
  cudaDevAttrMaxGridDimX = 5,
  cudaDevAttrMaxGridDimY = 6,
  cudaDevAttrMaxGridDimZ = 7,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
};
struct cudaFuncAttributes {
  size_t sharedSizeBytes;  // static shared memory
  int maxDynamicSharedSizeBytes;
  int maxThreadsPerBlock;
};

namespace dbf_emu {

constexpr int kWarpSize = 32;
constexpr unsigned char kSharedPoison = 0xFE;  // floats -1.7e38, ints -16843010: reads before writes show

// The fake device of cudaGetDevice / cudaDeviceGetAttribute and its limits.
struct DeviceConfig {
  std::string name = "H100";
  int multiprocessors = 132;
  int shared_default = 48 * 1024;   // per block without opt-in (static + dynamic)
  int shared_optin = 227 * 1024;    // the most a block may opt in to
  int max_threads = 1024;
};

enum class Order { kRaster, kReversed, kRandom };
struct Schedule {
  Order order = Order::kRaster;
  uint64_t seed = 0;  // of kRandom
};

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void set_device(const DeviceConfig& device);
const DeviceConfig& device();
void set_schedule(const Schedule& schedule);
const Schedule& schedule();
// What the launches did since the last call, then cleared.
struct LaunchRecord {
  std::string kernel;  // as written at the launch site, e.g. "forward_kernel<scalar_t, true>"
  dim3 grid, block;
  size_t dynamic_shared, static_shared;
};
struct Record {
  std::vector<LaunchRecord> launches;
  int64_t copies = 0;  // cudaMemcpyAsync calls
  int64_t syncs = 0;   // cudaStreamSynchronize calls
};
Record take_record();
// Throws if the last launch was not followed by C10_CUDA_KERNEL_LAUNCH_CHECK.
void require_launches_checked();

// --- launch machinery (used through DBF_LAUNCH) ---------------------------------
struct LaunchSite {
  const void* kernel;
  const char* name;
  const char* file;
  int line;
};
void launch(const LaunchSite& site, dim3 grid, dim3 block, size_t shared_bytes, void (*body)(const void*),
            const void* closure);
cudaError_t launch_checked();

template <class... P>
struct Launcher {
  void (*kernel)(P...);
  LaunchSite site;
  dim3 grid, block;
  size_t shared_bytes;

  // The arguments are copied into the kernel's parameter types, as a launch does.
  template <class... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "wrong number of kernel arguments");
    struct Closure {
      void (*kernel)(P...);
      std::tuple<std::decay_t<P>...> params;
    };
    const Closure closure{kernel, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
    launch(site, grid, block, shared_bytes,
           [](const void* c) {
             const Closure& self = *static_cast<const Closure*>(c);
             std::apply(self.kernel, self.params);
           },
           &closure);
  }
};

template <class... P>
Launcher<P...> launcher(void (*kernel)(P...), const char* name, const char* file, int line, dim3 grid, dim3 block,
                        size_t shared_bytes, cudaStream_t) {
  return {kernel, {reinterpret_cast<const void*>(kernel), name, file, line}, grid, block, shared_bytes};
}

// --- inside a kernel ------------------------------------------------------------
namespace builtin {
extern uint3 thread_idx, block_idx;
extern dim3 block_dim, grid_dim;
}  // namespace builtin

struct SharedSite {
  const char* name;
  const char* file;
  int line;
};
void* static_shared(const SharedSite* site, size_t size, size_t align);
void* dynamic_shared();

enum class Collective { kSyncwarp, kShfl, kShflXor, kShflUp, kShflDown, kBallot, kAny, kAll };
void sync_threads(const char* file, int line);
// Waits until every lane of `mask` has called the same collective, then
// returns the 8 raw bytes of the source lane's value (garbage for a lane the
// mask leaves out, whose value is undefined) or, for the votes, the ballot of
// the lanes' values != 0.
uint64_t collective(Collective kind, unsigned mask, uint64_t value, int operand, int width, const char* file,
                    int line);
void check_atomic(const void* address, size_t size, const char* what);

template <class T>
uint64_t to_raw(T v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move values of at most 8 bytes");
  uint64_t raw = 0;
  std::memcpy(&raw, &v, sizeof v);
  return raw;
}

template <class T>
T from_raw(uint64_t raw) {
  T v;
  std::memcpy(&v, &raw, sizeof v);
  return v;
}

template <class To, class From>
To bit_cast(From v) {
  static_assert(sizeof(To) == sizeof(From), "bit casts keep the size");
  To to;
  std::memcpy(&to, &v, sizeof to);
  return to;
}

}  // namespace dbf_emu

// Read-only views of the built-in variables of the thread that runs.
inline const uint3& threadIdx = dbf_emu::builtin::thread_idx;
inline const uint3& blockIdx = dbf_emu::builtin::block_idx;
inline const dim3& blockDim = dbf_emu::builtin::block_dim;
inline const dim3& gridDim = dbf_emu::builtin::grid_dim;
constexpr int warpSize = dbf_emu::kWarpSize;

inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  dbf_emu::sync_threads(file, line);
}

inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  dbf_emu::collective(dbf_emu::Collective::kSyncwarp, mask, 0, 0, dbf_emu::kWarpSize, file, line);
}

template <class T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = warpSize, const char* file = __builtin_FILE(),
              int line = __builtin_LINE()) {
  return dbf_emu::from_raw<T>(
      dbf_emu::collective(dbf_emu::Collective::kShfl, mask, dbf_emu::to_raw(v), src_lane, width, file, line));
}

template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = warpSize, const char* file = __builtin_FILE(),
                  int line = __builtin_LINE()) {
  return dbf_emu::from_raw<T>(
      dbf_emu::collective(dbf_emu::Collective::kShflXor, mask, dbf_emu::to_raw(v), lane_mask, width, file, line));
}

template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = warpSize, const char* file = __builtin_FILE(),
                 int line = __builtin_LINE()) {
  return dbf_emu::from_raw<T>(
      dbf_emu::collective(dbf_emu::Collective::kShflUp, mask, dbf_emu::to_raw(v), int(delta), width, file, line));
}

template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize, const char* file = __builtin_FILE(),
                   int line = __builtin_LINE()) {
  return dbf_emu::from_raw<T>(
      dbf_emu::collective(dbf_emu::Collective::kShflDown, mask, dbf_emu::to_raw(v), int(delta), width, file, line));
}

inline unsigned __ballot_sync(unsigned mask, int predicate, const char* file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
  return unsigned(dbf_emu::collective(dbf_emu::Collective::kBallot, mask, predicate != 0, 0, warpSize, file, line));
}

inline int __any_sync(unsigned mask, int predicate, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return int(dbf_emu::collective(dbf_emu::Collective::kAny, mask, predicate != 0, 0, warpSize, file, line));
}

inline int __all_sync(unsigned mask, int predicate, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return int(dbf_emu::collective(dbf_emu::Collective::kAll, mask, predicate != 0, 0, warpSize, file, line));
}

// Atomics on the types CUDA has them for (a call on another type fails to
// compile here as under nvcc); the address must be naturally aligned.
#define DBF_EMU_ATOMIC(name, T, update)                   \
  inline T name(T* address, T val) {                      \
    dbf_emu::check_atomic(address, sizeof(T), #name);     \
    const T old = *address;                               \
    *address = (update);                                  \
    return old;                                           \
  }
#define DBF_EMU_ATOMIC_ARITH(T)                                     \
  DBF_EMU_ATOMIC(atomicAdd, T, static_cast<T>(old + val))                        \
  DBF_EMU_ATOMIC(atomicSub, T, static_cast<T>(old - val))                        \
  DBF_EMU_ATOMIC(atomicExch, T, val)
#define DBF_EMU_ATOMIC_ORDER(T)                                     \
  DBF_EMU_ATOMIC(atomicMin, T, val < old ? val : old)               \
  DBF_EMU_ATOMIC(atomicMax, T, val > old ? val : old)
#define DBF_EMU_ATOMIC_BITS(T)                                      \
  DBF_EMU_ATOMIC(atomicAnd, T, static_cast<T>(old & val))                        \
  DBF_EMU_ATOMIC(atomicOr, T, static_cast<T>(old | val))                         \
  DBF_EMU_ATOMIC(atomicXor, T, static_cast<T>(old ^ val))
DBF_EMU_ATOMIC_ARITH(int)
DBF_EMU_ATOMIC_ARITH(unsigned int)
DBF_EMU_ATOMIC_ARITH(unsigned long long)
DBF_EMU_ATOMIC(atomicAdd, float, old + val)
DBF_EMU_ATOMIC(atomicAdd, double, old + val)
DBF_EMU_ATOMIC(atomicExch, float, val)
DBF_EMU_ATOMIC_ORDER(int)
DBF_EMU_ATOMIC_ORDER(unsigned int)
DBF_EMU_ATOMIC_ORDER(long long)
DBF_EMU_ATOMIC_ORDER(unsigned long long)
DBF_EMU_ATOMIC_BITS(int)
DBF_EMU_ATOMIC_BITS(unsigned int)
DBF_EMU_ATOMIC_BITS(unsigned long long)
#undef DBF_EMU_ATOMIC_BITS
#undef DBF_EMU_ATOMIC_ORDER
#undef DBF_EMU_ATOMIC_ARITH
#undef DBF_EMU_ATOMIC

template <class T>
T atomicCAS(T* address, T compare, T val) {
  static_assert(std::is_same_v<T, int> || std::is_same_v<T, unsigned int> || std::is_same_v<T, unsigned long long>,
                "atomicCAS takes int, unsigned int or unsigned long long");
  dbf_emu::check_atomic(address, sizeof(T), "atomicCAS");
  const T old = *address;
  if (old == compare) *address = val;
  return old;
}

// Memory order: threads switch only at barriers and collectives, where every
// write is visible; the fences only keep the compiler from moving accesses.
inline void __threadfence() { asm volatile("" ::: "memory"); }
inline void __threadfence_block() { asm volatile("" ::: "memory"); }
template <class T> T __ldg(const T* p) { return *p; }
template <class T> T __ldcg(const T* p) { return *p; }

inline int __float_as_int(float v) { return dbf_emu::bit_cast<int>(v); }
inline unsigned __float_as_uint(float v) { return dbf_emu::bit_cast<unsigned>(v); }
inline float __int_as_float(int v) { return dbf_emu::bit_cast<float>(v); }
inline float __uint_as_float(unsigned v) { return dbf_emu::bit_cast<float>(v); }
inline long long __double_as_longlong(double v) { return dbf_emu::bit_cast<long long>(v); }
inline double __longlong_as_double(long long v) { return dbf_emu::bit_cast<double>(v); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dmul_rn(double a, double b) { return a * b; }

// The device's min / max overloads and the math functions kernels call unqualified.
#define DBF_EMU_MIN_MAX(T)                                  \
  inline T min(T a, T b) { return b < a ? b : a; }          \
  inline T max(T a, T b) { return a < b ? b : a; }
DBF_EMU_MIN_MAX(int)
DBF_EMU_MIN_MAX(unsigned int)
DBF_EMU_MIN_MAX(long)
DBF_EMU_MIN_MAX(unsigned long)
DBF_EMU_MIN_MAX(long long)
DBF_EMU_MIN_MAX(unsigned long long)
#undef DBF_EMU_MIN_MAX
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
using std::isfinite;
using std::isnan;

cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaGetLastError();
const char* cudaGetErrorString(cudaError_t error);

namespace dbf_emu {
cudaError_t set_max_dynamic_shared(const void* kernel, int bytes);
cudaFuncAttributes attributes(const void* kernel);
// The message of the last failed runtime call, for C10_CUDA_CHECK.
std::string last_error_message();
}  // namespace dbf_emu

template <class... P>
cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attribute, int value) {
  if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  return dbf_emu::set_max_dynamic_shared(reinterpret_cast<const void*>(kernel), value);
}

template <class... P>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attributes, void (*kernel)(P...)) {
  *attributes = dbf_emu::attributes(reinterpret_cast<const void*>(kernel));
  return cudaSuccess;
}
