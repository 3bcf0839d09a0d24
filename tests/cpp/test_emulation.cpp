// Native tests of the host CUDA execution model (csrc/cuda/host_emulation.h)
// with small kernels of their own: barriers, shared memory, warp collectives,
// atomics, launch limits and schedules, and that each misuse is reported (an
// exception naming the kernel and the line) rather than hanging.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "../../csrc/cuda/device.h"
#include "check.h"

namespace {

using dbf_emu::Order;
using dbf_emu::Schedule;

const Schedule kSchedules[] = {{Order::kRaster, 0}, {Order::kReversed, 0}, {Order::kRandom, 7}, {Order::kRandom, 8}};

// The message of the dbf_emu::Error that `run` throws ("" if none); its launches are checked.
std::string error_of(const std::function<void()>& run) {
  try {
    run();
    dbf_emu::launch_checked();
  } catch (const dbf_emu::Error& error) {
    return error.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// How the emulator names a line of this file.
std::string here(int line) {
  const std::string file = __FILE__;
  const size_t at = file.rfind('/');
  return (at == std::string::npos ? file : file.substr(at + 1)) + ":" + std::to_string(line);
}

// Each thread reads its neighbour's value through shared memory.
__global__ void rotate_kernel(const int* in, int* out) {
  DBF_SHARED(int[256], values);
  const int t = int(threadIdx.x), n = int(blockDim.x);
  values[t] = in[blockIdx.x * n + t];
  __syncthreads();
  out[blockIdx.x * n + t] = values[(t + 1) % n];
}

void test_barrier_orders_shared_memory() {
  for (const Schedule& s : kSchedules) {
    dbf_emu::set_schedule(s);
    std::vector<int> in(3 * 200), out(in.size(), -1);
    for (size_t i = 0; i < in.size(); ++i) in[i] = int(i) * 7;
    DBF_LAUNCH(3, 200, 0, nullptr, rotate_kernel)(in.data(), out.data());
    dbf_emu::launch_checked();
    bool ok = true;
    for (int b = 0; b < 3; ++b) {
      for (int t = 0; t < 200; ++t) ok = ok && out[size_t(b * 200 + t)] == in[size_t(b * 200 + (t + 1) % 200)];
    }
    DBF_CHECK(ok, "rotate_kernel under schedule %d gave wrong values", int(s.order));
  }
}

// Without the barrier a neighbour's slot may not be written yet: the poison shows.
__global__ void unsynchronised_kernel(int* out) {
  DBF_SHARED(int[64], values);
  values[threadIdx.x] = int(threadIdx.x);
  out[threadIdx.x] = values[(threadIdx.x + 1) % blockDim.x];
}

void test_shared_memory_is_poisoned() {
  for (Order order : {Order::kRaster, Order::kReversed}) {
    dbf_emu::set_schedule({order, 0});
    std::vector<int> out(64, 0);
    DBF_LAUNCH(1, 64, 0, nullptr, unsynchronised_kernel)(out.data());
    dbf_emu::launch_checked();
    int poisoned = 0;
    for (int v : out) poisoned += v == -16843010;  // 0xFEFEFEFE
    // raster: every thread but the last reads a slot written after it ran; reversed: only the last
    DBF_CHECK(poisoned == (order == Order::kRaster ? 63 : 1), "%d poisoned reads under order %d", poisoned,
              int(order));
  }
}

constexpr int kFirstBarrier = __LINE__ + 3, kSecondBarrier = __LINE__ + 5;
__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void early_exit_kernel(int* out) {
  if (threadIdx.x >= 40) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

void test_barrier_misuse_is_reported() {
  std::vector<int> out(64);
  std::string error = error_of([&] { DBF_LAUNCH(2, 64, 0, nullptr, divergent_barrier_kernel)(out.data()); });
  DBF_CHECK(contains(error, "divergent_barrier_kernel") && contains(error, "different barriers") &&
                contains(error, "threads 0-15 wait at __syncthreads() at " + here(kFirstBarrier)) &&
                contains(error, "threads 16-63 wait at __syncthreads() at " + here(kSecondBarrier)),
            "divergent barrier: %s", error.c_str());
  error = error_of([&] { DBF_LAUNCH(1, 64, 0, nullptr, early_exit_kernel)(out.data()); });
  DBF_CHECK(contains(error, "early_exit_kernel") && contains(error, "reached by 40 of 64 threads") &&
                contains(error, "threads 40-63 have exited"),
            "exit before a barrier: %s", error.c_str());
}

// Warp sums by xor shuffles and by down shuffles, and the votes.
__global__ void warp_kernel(const int* in, int* out) {
  const int t = int(threadIdx.x);
  int v = in[t], w = in[t];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  for (int o = 16; o > 0; o >>= 1) w += __shfl_down_sync(0xffffffffu, w, unsigned(o));
  const unsigned ballot = __ballot_sync(0xffffffffu, in[t] % 3 == 0);
  out[4 * t] = v;
  out[4 * t + 1] = w;
  out[4 * t + 2] = int(ballot);
  out[4 * t + 3] = __any_sync(0xffffffffu, in[t] > 90) + 2 * __all_sync(0xffffffffu, in[t] >= 0) +
                   4 * __shfl_sync(0xffffffffu, in[t], 5);
}

void test_warp_collectives() {
  for (const Schedule& s : kSchedules) {
    dbf_emu::set_schedule(s);
    std::vector<int> in(64), out(4 * 64);
    for (int i = 0; i < 64; ++i) in[size_t(i)] = (i * 37) % 101;
    DBF_LAUNCH(1, 64, 0, nullptr, warp_kernel)(in.data(), out.data());
    dbf_emu::launch_checked();
    for (int warp = 0; warp < 2; ++warp) {
      int sum = 0, any = 0;
      unsigned ballot = 0;
      for (int l = 0; l < 32; ++l) {
        const int v = in[size_t(warp * 32 + l)];
        sum += v, any |= v > 90;
        ballot |= unsigned(v % 3 == 0) << l;
      }
      const int t0 = warp * 32;
      DBF_CHECK(out[size_t(4 * t0)] == sum && out[size_t(4 * (t0 + 31))] == sum, "xor sum of warp %d", warp);
      DBF_CHECK(out[size_t(4 * t0 + 1)] == sum, "down sum of warp %d (lane 0)", warp);
      DBF_CHECK(unsigned(out[size_t(4 * t0 + 2)]) == ballot, "ballot of warp %d", warp);
      DBF_CHECK(out[size_t(4 * t0 + 3)] == any + 2 + 4 * in[size_t(t0 + 5)], "votes / shfl of warp %d", warp);
    }
  }
}

constexpr int kShuffle = __LINE__ + 3;
__global__ void exited_lane_kernel(int* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, int(threadIdx.x), 1);
}

constexpr int kHalfShuffle = __LINE__ + 2, kHalfBarrier = __LINE__ + 3;
__global__ void lanes_at_barrier_kernel(int* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, int(threadIdx.x), 1);
  __syncthreads();
}

__global__ void mask_leaves_out_caller_kernel(int* out) {
  out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, 1, 1);
}

// Lanes outside the mask give undefined values: garbage.
__global__ void mask_leaves_out_source_kernel(int* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0x0000ffffu, int(threadIdx.x), 20);
}

void test_collective_misuse_is_reported() {
  std::vector<int> out(64);
  std::string error = error_of([&] { DBF_LAUNCH(1, 32, 0, nullptr, exited_lane_kernel)(out.data()); });
  DBF_CHECK(contains(error, "__shfl_xor_sync at " + here(kShuffle)) && contains(error, "thread 3 has exited"),
            "exited lane: %s", error.c_str());
  error = error_of([&] { DBF_LAUNCH(1, 32, 0, nullptr, lanes_at_barrier_kernel)(out.data()); });
  DBF_CHECK(contains(error, "__shfl_xor_sync at " + here(kHalfShuffle)) &&
                contains(error, "threads 16-31 wait at __syncthreads() at " + here(kHalfBarrier)),
            "lanes at a barrier: %s", error.c_str());
  error = error_of([&] { DBF_LAUNCH(1, 32, 0, nullptr, mask_leaves_out_caller_kernel)(out.data()); });
  DBF_CHECK(contains(error, "leaves out the calling lane"), "mask without the caller: %s", error.c_str());
  DBF_CHECK(error_of([&] { DBF_LAUNCH(1, 32, 0, nullptr, mask_leaves_out_source_kernel)(out.data()); }).empty(),
            "a source outside the mask");
  DBF_CHECK(out[0] == -16843010 && out[15] == -16843010, "a source outside the mask gives %d", out[0]);
}

// Execution order, as atomics see it.
__global__ void order_kernel(unsigned* counter, unsigned* seen) {
  seen[blockIdx.x * blockDim.x + threadIdx.x] = atomicAdd(counter, 1u);
}

std::vector<unsigned> run_order(const Schedule& s) {
  dbf_emu::set_schedule(s);
  unsigned counter = 0;
  std::vector<unsigned> seen(4 * 8);
  DBF_LAUNCH(4, 8, 0, nullptr, order_kernel)(&counter, seen.data());
  dbf_emu::launch_checked();
  return seen;
}

void test_schedules() {
  const std::vector<unsigned> raster = run_order({Order::kRaster, 0}), reversed = run_order({Order::kReversed, 0});
  bool ok = true;
  for (unsigned i = 0; i < 32; ++i) ok = ok && raster[i] == i && reversed[i] == 31 - i;
  DBF_CHECK(ok, "raster and reversed orders");
  const std::vector<unsigned> a = run_order({Order::kRandom, 1}), b = run_order({Order::kRandom, 1});
  const std::vector<unsigned> c = run_order({Order::kRandom, 2});
  DBF_CHECK(a == b && a != c && a != raster, "random orders: repeatable by seed, differing between seeds");
}

__global__ void big_static_kernel(float* out) {
  DBF_SHARED(float[2048], table);  // 8 KB
  DBF_DYNAMIC_SHARED(float, extra);
  table[threadIdx.x] = 1.f;
  extra[threadIdx.x] = 2.f;
  __syncthreads();
  out[threadIdx.x] = table[threadIdx.x] + extra[threadIdx.x];
}

void test_shared_limits() {
  dbf_emu::set_device({});
  dbf_emu::set_schedule({});
  std::vector<float> out(32);
  auto run = [&](size_t dynamic) { DBF_LAUNCH(1, 32, dynamic, nullptr, big_static_kernel)(out.data()); };
  DBF_CHECK(error_of([&] { run(40 * 1024); }).empty(), "8 KB static + 40 KB dynamic fit the default 48 KB");
  std::string error = error_of([&] { run(40 * 1024 + 4); });
  DBF_CHECK(contains(error, "exceed the block's 49152") && contains(error, "opt in"), "above 48 KB: %s",
            error.c_str());
  cudaFuncAttributes attributes;
  cudaFuncGetAttributes(&attributes, big_static_kernel);
  DBF_CHECK(attributes.sharedSizeBytes == 8192, "static size %zu learned from the launches", attributes.sharedSizeBytes);
  DBF_CHECK(cudaFuncSetAttribute(big_static_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024) ==
                cudaSuccess,
            "opt in to 100 KB");
  DBF_CHECK(error_of([&] { run(100 * 1024); }).empty(), "100 KB dynamic after opting in");
  error = error_of([&] { run(100 * 1024 + 4); });
  DBF_CHECK(contains(error, "above the kernel's 102400"), "above the opt-in: %s", error.c_str());
  DBF_CHECK(cudaFuncSetAttribute(big_static_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024) ==
                cudaErrorInvalidValue,
            "the device's opt-in less the static size is the most");
  dbf_emu::set_device({});  // forgets the attributes
}

__global__ void nothing_kernel() {}

void test_launch_limits() {
  const std::pair<dim3, dim3> bad[] = {{dim3(1), dim3(1025)}, {dim3(1), dim3(32, 33)}, {dim3(1), dim3(1, 1, 65)},
                                       {dim3(1, 65536), dim3(32)}, {dim3(0), dim3(32)}};
  for (const auto& [grid, block] : bad) {
    const std::string error = error_of([&] { DBF_LAUNCH(grid, block, 0, nullptr, nothing_kernel)(); });
    DBF_CHECK(contains(error, "nothing_kernel launched at"), "limits: grid %u x %u, block %u x %u x %u: '%s'", grid.x,
              grid.y, block.x, block.y, block.z, error.c_str());
  }
  DBF_CHECK(error_of([&] { DBF_LAUNCH(dim3(1, 65535), dim3(1), 0, nullptr, nothing_kernel)(); }).empty(),
            "the largest grid y");
  DBF_CHECK(error_of([&] { DBF_LAUNCH(dim3(1), dim3(32, 32), 0, nullptr, nothing_kernel)(); }).empty(),
            "the largest block");
  // a launch must be checked before the next one
  DBF_LAUNCH(1, 1, 0, nullptr, nothing_kernel)();
  const std::string error = error_of([&] { DBF_LAUNCH(1, 1, 0, nullptr, nothing_kernel)(); });
  DBF_CHECK(contains(error, "is not followed by C10_CUDA_KERNEL_LAUNCH_CHECK"), "unchecked launch: %s",
            error.c_str());
}

__global__ void misaligned_atomic_kernel(char* bytes) {
  atomicAdd(reinterpret_cast<int*>(bytes + 1), 1);
}

void test_misaligned_atomic() {
  alignas(8) char bytes[16] = {};
  const std::string error = error_of([&] { DBF_LAUNCH(1, 1, 0, nullptr, misaligned_atomic_kernel)(bytes); });
  DBF_CHECK(contains(error, "atomicAdd on a misaligned address"), "misaligned atomic: %s", error.c_str());
}

}  // namespace

int main() {
  test_barrier_orders_shared_memory();
  test_shared_memory_is_poisoned();
  test_barrier_misuse_is_reported();
  test_warp_collectives();
  test_collective_misuse_is_reported();
  test_schedules();
  test_shared_limits();
  test_launch_limits();
  test_misaligned_atomic();
  return dbf_test::finish("test_emulation");
}
