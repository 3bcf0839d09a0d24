// The scheduler of the host CUDA execution model (host_emulation.h).
//
// A launch runs its blocks one after another in the schedule's order. The
// threads of a block run as fibers: the scheduler resumes a runnable thread,
// which runs until it waits (at __syncthreads or in a warp collective) or
// exits; a fiber whose thread exits starts the block's next thread itself,
// so a kernel without barriers costs two context switches per block. When
// no thread can run, either every live thread waits at one barrier (all of
// them are released, in the schedule's order) or the block is stuck, which
// is reported with what each thread is waiting for.
#include "host_emulation.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>

#if defined(__SANITIZE_ADDRESS__)
#define DBF_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DBF_EMU_ASAN 1
#endif
#endif
#ifdef DBF_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace dbf_emu {
namespace builtin {
uint3 thread_idx{0, 0, 0}, block_idx{0, 0, 0};
dim3 block_dim, grid_dim;
}  // namespace builtin

namespace {

#ifdef DBF_EMU_ASAN
constexpr size_t kStackBytes = size_t(1) << 20;  // ASan's redzones make frames larger
constexpr size_t kRedzone = 32;                  // poisoned bytes after each shared variable
#else
constexpr size_t kStackBytes = size_t(256) << 10;
constexpr size_t kRedzone = 0;
#endif
constexpr int kStaticSharedMax = 48 * 1024;  // CUDA's limit of static shared memory
const size_t kPage = size_t(sysconf(_SC_PAGESIZE));  // the guard page below each stack

std::string short_path(const char* file) {
  const std::string path(file ? file : "?");
  const size_t at = path.rfind("csrc/");
  return at == std::string::npos ? path.substr(path.rfind('/') + 1) : path.substr(at);
}

std::string site(const char* file, int line) { return short_path(file) + ":" + std::to_string(line); }

// "3", "0-31", "0-3, 7, 9-12" for a sorted list of indices.
std::string ranges(const std::vector<int>& items) {
  std::ostringstream out;
  for (size_t i = 0; i < items.size();) {
    size_t j = i;
    while (j + 1 < items.size() && items[j + 1] == items[j] + 1) ++j;
    out << (i ? ", " : "") << items[i];
    if (j > i) out << "-" << items[j];
    i = j + 1;
  }
  return out.str();
}

const char* collective_name(Collective kind) {
  switch (kind) {
    case Collective::kSyncwarp: return "__syncwarp";
    case Collective::kShfl: return "__shfl_sync";
    case Collective::kShflXor: return "__shfl_xor_sync";
    case Collective::kShflUp: return "__shfl_up_sync";
    case Collective::kShflDown: return "__shfl_down_sync";
    case Collective::kBallot: return "__ballot_sync";
    case Collective::kAny: return "__any_sync";
    case Collective::kAll: return "__all_sync";
  }
  return "?";
}

// --- fibers --------------------------------------------------------------------

struct Fiber {
  ucontext_t context;
  void* memory = nullptr;  // guard page + stack
  int thread = -1;         // the thread it runs, -1 when idle
  bool fresh = true;       // needs makecontext before its next start
  bool abandoned = false;  // its stack holds the frames of a thread that never ended
  void* fake_stack = nullptr;
};

// Switches from the running context to `to`, whose stack is [bottom, bottom + size),
// telling ASan (fake_stack: the running context's, nullptr if it never resumes).
// Returns when something switches back; `from_bottom` / `from_size`, if given,
// receive the stack of the context that did.
void switch_context(ucontext_t* from, void** fake_stack, ucontext_t* to, const void* bottom, size_t size,
                    const void** from_bottom = nullptr, size_t* from_size = nullptr) {
#ifdef DBF_EMU_ASAN
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
  swapcontext(from, to);
  __sanitizer_finish_switch_fiber(fake_stack ? *fake_stack : nullptr, from_bottom, from_size);
#else
  (void)fake_stack, (void)bottom, (void)size, (void)from_bottom, (void)from_size;
  swapcontext(from, to);
#endif
}

// --- the state of a launch -----------------------------------------------------

enum class State { kUnstarted, kRunnable, kRunning, kAtBarrier, kInCollective, kExited };

struct Group {  // one warp collective being gathered or read
  Collective kind;
  unsigned mask;
  const char* file;
  int line;
  unsigned arrived = 0;
  int readers = 0;  // members that have not read their result yet
  bool complete = false;
  uint64_t values[kWarpSize] = {};
};

struct Thread {
  State state = State::kUnstarted;
  int fiber = -1;
  const char* file = nullptr;  // where it waits
  int line = 0;
  Group* group = nullptr;
};

struct Kernel {
  std::string name;
  int max_dynamic = -1;  // cudaFuncAttributeMaxDynamicSharedMemorySize, -1: not set
  int static_bytes = -1; // learned from its launches, -1: not launched yet
};

struct SharedVariable {
  const SharedSite* site;
  size_t offset;
};

struct Emulator {
  std::recursive_mutex mutex;  // (recursive: a kernel that launches is reported, not deadlocked)
  DeviceConfig device;
  Schedule schedule;
  std::map<const void*, Kernel> kernels;
  Record record;
  std::string last_error;
  int64_t launch_count = 0;
  std::string unchecked;  // the last launch, until C10_CUDA_KERNEL_LAUNCH_CHECK (empty: checked)

  // the launch in progress
  bool in_launch = false;
  const LaunchSite* site = nullptr;
  Kernel* kernel = nullptr;
  void (*body)(const void*) = nullptr;
  const void* closure = nullptr;
  int threads_per_block = 0;
  size_t dynamic_bytes = 0;
  size_t shared_limit = 0;
  std::vector<unsigned char> arena;
  std::vector<SharedVariable> shared;  // this block's static variables
  size_t shared_end = 0, static_bytes = 0, static_max = 0;
  std::mt19937_64 rng;

  // the block in progress
  std::vector<Thread> threads;
  std::vector<std::list<Group>> warps;
  std::vector<int> order;  // this segment's thread order
  size_t next_unstarted = 0;
  std::deque<int> runnable;
  int current = -1;  // running thread
  std::string error;

  // fibers, kept across launches
  std::vector<std::unique_ptr<Fiber>> fibers;
  std::vector<int> idle;
  ucontext_t main_context;
  void* main_fake_stack = nullptr;
  const void* main_bottom = nullptr;
  size_t main_size = 0;
};

Emulator& emu() {
  static Emulator* instance = new Emulator;  // never destroyed: fibers may still point into it
  return *instance;
}

std::string kernel_text(const Emulator& e) {
  std::ostringstream out;
  out << "emulated CUDA: kernel " << e.site->name << " (launched at " << site(e.site->file, e.site->line)
      << "), block (" << builtin::block_idx.x << ", " << builtin::block_idx.y << ", " << builtin::block_idx.z << ")";
  return out.str();
}

void set_builtins(int t) {
  const unsigned x = unsigned(t) % builtin::block_dim.x, yz = unsigned(t) / builtin::block_dim.x;
  builtin::thread_idx = {x, yz % builtin::block_dim.y, yz / builtin::block_dim.y};
}

std::vector<int> permutation(Emulator& e, int n) {
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  if (e.schedule.order == Order::kReversed) std::reverse(order.begin(), order.end());
  if (e.schedule.order == Order::kRandom) std::shuffle(order.begin(), order.end(), e.rng);
  return order;
}

// Back to the scheduler; returns when the scheduler resumes this fiber
// (`abandon`: it never will).
void yield_to_scheduler(Emulator& e, Fiber& fiber, bool abandon = false) {
  switch_context(&fiber.context, abandon ? nullptr : &fiber.fake_stack, &e.main_context, e.main_bottom,
                 e.main_size, &e.main_bottom, &e.main_size);
}

// Ends the running thread with an error that the scheduler throws. The
// thread's frames are abandoned, never unwound: `describe` builds the message
// so that no string of its own stays alive on them.
template <class Describe>
[[noreturn]] void fail(Describe&& describe) {
  Emulator& e = emu();
  std::string text = describe();
  if (!e.in_launch || e.current < 0) throw Error("emulated CUDA: " + text + " (outside a kernel)");
  e.error = std::move(text);
  std::string().swap(text);  // (a move may have left it e.error's old buffer)
  yield_to_scheduler(e, *e.fibers[size_t(e.threads[size_t(e.current)].fiber)], true);
  std::abort();  // never resumed
}

// The next unstarted thread, if it comes before every runnable one.
int take_unstarted(Emulator& e) {
  if (!e.runnable.empty() || e.next_unstarted >= e.order.size()) return -1;
  return e.order[e.next_unstarted++];
}

void fiber_main() {
  Emulator& e = emu();
  Fiber& fiber = *e.fibers[size_t(e.threads[size_t(e.current)].fiber)];
#ifdef DBF_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &e.main_bottom, &e.main_size);
#endif
  for (;;) {
    const int t = fiber.thread;
    std::string thrown;
    try {
      e.body(e.closure);
    } catch (const std::exception& error) {
      thrown = error.what();
    }
    if (!thrown.empty()) fail([&] { return "the kernel threw: " + std::exchange(thrown, std::string()); });
    e.threads[size_t(t)].state = State::kExited;
    const int next = take_unstarted(e);
    if (next >= 0) {  // run the next thread on this stack, without a switch
      fiber.thread = next;
      e.threads[size_t(next)].fiber = e.threads[size_t(t)].fiber;
      e.threads[size_t(next)].state = State::kRunning;
      e.current = next;
      set_builtins(next);
      continue;
    }
    fiber.thread = -1;
    e.idle.push_back(e.threads[size_t(t)].fiber);
    yield_to_scheduler(e, fiber);  // resumed with a new thread to run
  }
}

int new_fiber(Emulator& e) {
  auto fiber = std::make_unique<Fiber>();
  fiber->memory =
      mmap(nullptr, kPage + kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (fiber->memory == MAP_FAILED) throw Error("emulated CUDA: no memory for a thread's stack");
  mprotect(fiber->memory, kPage, PROT_NONE);  // a stack overflow faults instead of corrupting
  e.fibers.push_back(std::move(fiber));
  return int(e.fibers.size()) - 1;
}

void* stack_of(const Fiber& fiber) { return static_cast<char*>(fiber.memory) + kPage; }

void prepare_fiber(Fiber& fiber) {
  if (!fiber.fresh) return;
  void* stack = stack_of(fiber);
#ifdef DBF_EMU_ASAN
  if (fiber.abandoned) ASAN_UNPOISON_MEMORY_REGION(stack, kStackBytes);  // its frames' redzones
#endif
  fiber.abandoned = false;
  getcontext(&fiber.context);
  fiber.context.uc_stack.ss_sp = stack;
  fiber.context.uc_stack.ss_size = kStackBytes;
  fiber.context.uc_link = nullptr;
  makecontext(&fiber.context, fiber_main, 0);
  // makecontext has set the stack pointer; without the stack recorded, ASan's
  // swapcontext does not clear the shadow of the whole stack at every switch
  // (a system call each time; the fiber annotations keep ASan right).
  fiber.context.uc_stack.ss_sp = nullptr;
  fiber.context.uc_stack.ss_size = 0;
  fiber.fresh = false;
  fiber.fake_stack = nullptr;
}

// Runs thread t (or resumes it) until it waits or its fiber goes idle.
void resume(Emulator& e, int t) {
  Thread& thread = e.threads[size_t(t)];
  if (thread.state == State::kUnstarted) {
    int f;
    if (!e.idle.empty()) {
      f = e.idle.back();
      e.idle.pop_back();
    } else {
      f = new_fiber(e);
    }
    thread.fiber = f;
    e.fibers[size_t(f)]->thread = t;
    prepare_fiber(*e.fibers[size_t(f)]);
  }
  thread.state = State::kRunning;
  e.current = t;
  set_builtins(t);
  Fiber& fiber = *e.fibers[size_t(thread.fiber)];
  switch_context(&e.main_context, &e.main_fake_stack, &fiber.context, stack_of(fiber), kStackBytes);
  e.current = -1;
}

// What thread t waits for, as "wait at ..." ("waits at ..." for one thread).
std::string describe(const Emulator& e, int t, bool one) {
  const Thread& thread = e.threads[size_t(t)];
  switch (thread.state) {
    case State::kExited: return one ? "has exited" : "have exited";
    case State::kAtBarrier: return (one ? "waits at __syncthreads() at " : "wait at __syncthreads() at ") +
                                   site(thread.file, thread.line);
    case State::kInCollective:
      return std::string(one ? "waits in " : "wait in ") + collective_name(thread.group->kind) + " at " +
             site(thread.group->file, thread.group->line);
    default: return one ? "is running" : "are running";
  }
}

// Threads grouped by what they do: "threads 0-199 wait at ...; thread 200 has exited".
std::string census(const Emulator& e, const std::vector<int>& members) {
  std::map<std::string, std::vector<int>> by_state;
  for (int t : members) by_state[describe(e, t, false)].push_back(t);
  std::string out;
  for (auto& [what, list] : by_state) {
    std::sort(list.begin(), list.end());
    const bool one = list.size() == 1;
    out += (out.empty() ? "" : "; ") + std::string(one ? "thread " : "threads ") + ranges(list) + " " +
           (one ? describe(e, list[0], true) : what);
  }
  return out;
}

// No thread can run: release a barrier that every live thread waits at, or report why the block is stuck.
bool release_barrier(Emulator& e) {
  const int n = e.threads_per_block;
  for (int w = 0; w < int(e.warps.size()); ++w) {
    for (const Group& g : e.warps[size_t(w)]) {
      if (g.complete) continue;
      std::vector<int> missing;
      for (int lane = 0; lane < kWarpSize; ++lane) {
        if ((g.mask >> lane & 1u) && !(g.arrived >> lane & 1u)) missing.push_back(w * kWarpSize + lane);
      }
      throw Error(kernel_text(e) + ": " + collective_name(g.kind) + " at " + site(g.file, g.line) + " (mask 0x" +
                  [&] { std::ostringstream h; h << std::hex << g.mask; return h.str(); }() + ") in warp " +
                  std::to_string(w) + " never completes: " + census(e, missing) +
                  " (every lane named in the mask must reach the same collective)");
    }
  }
  std::vector<int> waiting, exited;
  for (int t = 0; t < n; ++t) {
    (e.threads[size_t(t)].state == State::kAtBarrier ? waiting : exited).push_back(t);
  }
  if (waiting.empty()) return false;  // the block is done
  const Thread& first = e.threads[size_t(waiting[0])];
  for (int t : waiting) {
    const Thread& other = e.threads[size_t(t)];
    if (other.line != first.line || std::strcmp(other.file, first.file) != 0) {
      std::vector<int> all(static_cast<size_t>(n));
      std::iota(all.begin(), all.end(), 0);
      throw Error(kernel_text(e) + ": threads wait at different barriers: " + census(e, all) +
                  " (a barrier in divergent code)");
    }
  }
  if (!exited.empty()) {
    throw Error(kernel_text(e) + ": __syncthreads() at " + site(first.file, first.line) + " is reached by " +
                std::to_string(waiting.size()) + " of " + std::to_string(n) + " threads; " +
                census(e, exited));
  }
  e.order = permutation(e, n);
  e.next_unstarted = e.order.size();
  for (int t : e.order) {
    e.threads[size_t(t)].state = State::kRunnable;
    e.runnable.push_back(t);
  }
  return true;
}

void run_block(Emulator& e) {
  const int n = e.threads_per_block;
  e.threads.assign(size_t(n), Thread{});
  e.warps.assign(size_t((n + kWarpSize - 1) / kWarpSize), {});
  e.order = permutation(e, n);
  e.next_unstarted = 0;
  e.runnable.clear();
  e.shared.clear();
  e.static_bytes = 0;
  e.shared_end = (e.dynamic_bytes + 15) / 16 * 16 + kRedzone;
#ifdef DBF_EMU_ASAN
  ASAN_POISON_MEMORY_REGION(e.arena.data(), e.arena.size());
  ASAN_UNPOISON_MEMORY_REGION(e.arena.data(), e.dynamic_bytes);
#endif
  std::memset(e.arena.data(), kSharedPoison, e.dynamic_bytes);
  for (;;) {
    int t = -1;
    if (!e.runnable.empty()) {
      t = e.runnable.front();
      e.runnable.pop_front();
    } else if (e.next_unstarted < e.order.size()) {
      t = e.order[e.next_unstarted++];
    }
    if (t >= 0) {
      resume(e, t);
      if (!e.error.empty()) throw Error(kernel_text(e) + ": " + e.error);
    } else if (!release_barrier(e)) {
      break;
    }
  }
  e.static_max = std::max(e.static_max, e.static_bytes);
}

// After an error the fibers that hold abandoned threads start afresh next time.
void reset_fibers(Emulator& e) {
  e.idle.clear();
  for (size_t f = 0; f < e.fibers.size(); ++f) {
    Fiber& fiber = *e.fibers[f];
    if (fiber.thread >= 0) fiber.fresh = fiber.abandoned = true;
    fiber.thread = -1;
    e.idle.push_back(int(f));
  }
}

// The arena stays allocated between launches, unpoisoned for ASan.
void release_arena(Emulator& e) {
#ifdef DBF_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION(e.arena.data(), e.arena.size());
#endif
  (void)e;
}

void check_config(const Emulator& e, const LaunchSite& s, dim3 grid, dim3 block, size_t shared_bytes,
                  const Kernel& kernel) {
  const DeviceConfig& d = e.device;
  std::ostringstream why;
  const int64_t threads = int64_t(block.x) * block.y * block.z;
  if (block.x == 0 || block.y == 0 || block.z == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0) {
    why << "an empty grid or block";
  } else if (block.x > 1024 || block.y > 1024 || block.z > 64 || threads > d.max_threads) {
    why << threads << " threads per block (" << block.x << " x " << block.y << " x " << block.z
        << "); the device allows " << d.max_threads << ", and block dims of at most 1024 x 1024 x 64";
  } else if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    why << "a grid of " << grid.x << " x " << grid.y << " x " << grid.z << " blocks; y and z are at most 65535";
  } else {
    const int allowed = kernel.max_dynamic >= 0 ? kernel.max_dynamic : d.shared_default;
    if (shared_bytes > size_t(allowed)) {
      why << shared_bytes << " bytes of dynamic shared memory, above the kernel's " << allowed
          << (kernel.max_dynamic >= 0 ? " (its cudaFuncAttributeMaxDynamicSharedMemorySize)"
                                      : " (the default limit; opt in with cudaFuncSetAttribute)");
    }
  }
  if (!why.str().empty()) {
    throw Error("emulated CUDA: kernel " + std::string(s.name) + " launched at " + site(s.file, s.line) +
                " with " + why.str());
  }
}

cudaError_t fail_call(cudaError_t code, const std::string& message) {
  emu().last_error = message;
  return code;
}

}  // namespace

// --- settings and records -------------------------------------------------------

void set_device(const DeviceConfig& device) {
  std::lock_guard<std::recursive_mutex> lock(emu().mutex);
  if (device.multiprocessors < 1 || device.shared_default < 0 || device.shared_optin < device.shared_default ||
      device.max_threads < 1 || device.max_threads > 1024) {
    throw Error("emulated CUDA: an impossible device configuration");
  }
  Emulator& e = emu();
  const DeviceConfig& d = e.device;
  if (device.name != d.name || device.multiprocessors != d.multiprocessors || device.shared_default != d.shared_default ||
      device.shared_optin != d.shared_optin || device.max_threads != d.max_threads) {
    e.kernels.clear();  // attributes set for another device do not carry over
  }
  e.device = device;
}

const DeviceConfig& device() { return emu().device; }

void set_schedule(const Schedule& schedule) {
  std::lock_guard<std::recursive_mutex> lock(emu().mutex);
  emu().schedule = schedule;
  emu().launch_count = 0;
}

const Schedule& schedule() { return emu().schedule; }

Record take_record() {
  std::lock_guard<std::recursive_mutex> lock(emu().mutex);
  return std::exchange(emu().record, Record{});
}

void require_launches_checked() {
  Emulator& e = emu();
  std::lock_guard<std::recursive_mutex> lock(e.mutex);
  if (!e.unchecked.empty()) {
    const std::string text = std::exchange(e.unchecked, std::string());
    throw Error("emulated CUDA: " + text + " is not followed by C10_CUDA_KERNEL_LAUNCH_CHECK()");
  }
}

cudaError_t launch_checked() {
  emu().unchecked.clear();
  return cudaSuccess;
}

// --- launches -------------------------------------------------------------------

void launch(const LaunchSite& s, dim3 grid, dim3 block, size_t shared_bytes, void (*body)(const void*),
            const void* closure) {
  Emulator& e = emu();
  std::lock_guard<std::recursive_mutex> lock(e.mutex);
  if (e.in_launch) {
    throw Error("emulated CUDA: kernel " + std::string(s.name) + " launched from inside kernel " + e.site->name +
                " (dynamic parallelism is not modelled)");
  }
  require_launches_checked();
  Kernel& kernel = e.kernels[s.kernel];
  kernel.name = s.name;
  check_config(e, s, grid, block, shared_bytes, kernel);
  e.record.launches.push_back({s.name, grid, block, shared_bytes, 0});
  e.unchecked = "kernel " + std::string(s.name) + " launched at " + site(s.file, s.line);

  e.in_launch = true;
  e.site = &s;
  e.kernel = &kernel;
  e.body = body;
  e.closure = closure;
  e.threads_per_block = int(block.x * block.y * block.z);
  e.dynamic_bytes = shared_bytes;
  e.shared_limit = size_t(kernel.max_dynamic >= 0 ? e.device.shared_optin : e.device.shared_default);
  const size_t arena = size_t(e.device.shared_optin) + 64 * (kRedzone + 16) + 16;  // room for 64 variables
  if (e.arena.size() < arena) e.arena.assign(arena, kSharedPoison);
  e.static_max = 0;
  e.error.clear();
  builtin::block_dim = block;
  builtin::grid_dim = grid;
  e.rng.seed(e.schedule.seed * 0x9E3779B97F4A7C15ull + uint64_t(++e.launch_count));

  const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
  std::vector<uint32_t> block_order;
  if (e.schedule.order == Order::kRandom) {
    if (blocks > (uint64_t(1) << 32)) throw Error("emulated CUDA: too many blocks to shuffle");
    block_order.resize(size_t(blocks));
    std::iota(block_order.begin(), block_order.end(), 0u);
    std::shuffle(block_order.begin(), block_order.end(), e.rng);
  }
  try {
    for (uint64_t i = 0; i < blocks; ++i) {
      uint64_t b = i;
      if (e.schedule.order == Order::kReversed) b = blocks - 1 - i;
      if (e.schedule.order == Order::kRandom) b = block_order[size_t(i)];
      builtin::block_idx = {unsigned(b % grid.x), unsigned(b / grid.x % grid.y), unsigned(b / grid.x / grid.y)};
      run_block(e);
    }
  } catch (...) {
    reset_fibers(e);
    release_arena(e);
    e.in_launch = false;
    e.unchecked.clear();
    throw;
  }
  release_arena(e);
  if (kernel.static_bytes < int(e.static_max)) kernel.static_bytes = int(e.static_max);
  e.record.launches.back().static_shared = e.static_max;
  e.in_launch = false;
}

// --- inside a kernel ------------------------------------------------------------

void sync_threads(const char* file, int line) {
  Emulator& e = emu();
  if (!e.in_launch || e.current < 0) throw Error("emulated CUDA: __syncthreads() outside a kernel");
  Thread& thread = e.threads[size_t(e.current)];
  thread.state = State::kAtBarrier;
  thread.file = file;
  thread.line = line;
  yield_to_scheduler(e, *e.fibers[size_t(thread.fiber)]);
}

uint64_t collective(Collective kind, unsigned mask, uint64_t value, int operand, int width, const char* file,
                    int line) {
  Emulator& e = emu();
  if (!e.in_launch || e.current < 0) throw Error(std::string("emulated CUDA: ") + collective_name(kind) + " outside a kernel");
  const int t = e.current, warp = t / kWarpSize, lane = t % kWarpSize;
  const auto where = [&] {
    return std::string(collective_name(kind)) + " at " + site(file, line) + " (thread " + std::to_string(t) + ")";
  };
  const int lanes = std::min(kWarpSize, e.threads_per_block - warp * kWarpSize);
  const unsigned present = lanes == kWarpSize ? ~0u : (1u << lanes) - 1u;
  if (!(mask >> lane & 1u)) fail([&] { return where() + ": the mask leaves out the calling lane"; });
  if (mask & ~present) fail([&] { return where() + ": the mask names lanes beyond the block's threads"; });
  if (width < 1 || width > kWarpSize || (width & (width - 1))) {
    fail([&] { return where() + ": width " + std::to_string(width) + " is not a power of 2 up to 32"; });
  }
  std::list<Group>& groups = e.warps[size_t(warp)];
  Group* group = nullptr;
  for (Group& g : groups) {
    if (g.complete || !(g.mask & mask)) continue;
    if (g.mask != mask || g.kind != kind || g.line != line || std::strcmp(g.file, file) != 0) {
      fail([&] {
        return where() + " meets " + collective_name(g.kind) + " at " + site(g.file, g.line) +
               " of lanes of the same warp (masks must match and every lane named must reach the same call)";
      });
    }
    group = &g;
  }
  if (!group) {
    groups.push_back(Group{kind, mask, file, line});
    group = &groups.back();
  }
  group->values[lane] = value;
  group->arrived |= 1u << lane;
  Thread& me = e.threads[size_t(t)];
  if (group->arrived == mask) {
    group->complete = true;
    group->readers = __builtin_popcount(mask);
    std::vector<int> members;
    for (int l = 0; l < kWarpSize; ++l) {
      if ((mask >> l & 1u) && l != lane) members.push_back(warp * kWarpSize + l);
    }
    if (e.schedule.order == Order::kReversed) std::reverse(members.begin(), members.end());
    if (e.schedule.order == Order::kRandom) std::shuffle(members.begin(), members.end(), e.rng);
    for (int m : members) {
      e.threads[size_t(m)].state = State::kRunnable;
      e.runnable.push_back(m);
    }
  } else {
    me.state = State::kInCollective;
    me.group = group;
    yield_to_scheduler(e, *e.fibers[size_t(me.fiber)]);
  }
  me.group = nullptr;
  // The result, from the values every lane of the mask gave.
  const int base = lane & ~(width - 1), offset = lane - base;
  int source = -1;
  uint64_t result = 0;
  switch (kind) {
    case Collective::kSyncwarp: break;
    case Collective::kShfl: source = base + (operand & (width - 1)); break;
    case Collective::kShflXor: source = lane ^ operand; source = (source & ~(width - 1)) > base ? lane : source; break;
    case Collective::kShflUp: source = offset >= operand ? lane - operand : lane; break;
    case Collective::kShflDown: source = offset + operand < width ? lane + operand : lane; break;
    case Collective::kBallot:
    case Collective::kAny:
    case Collective::kAll: {
      unsigned ballot = 0;
      for (int l = 0; l < kWarpSize; ++l) ballot |= (mask >> l & 1u) && group->values[l] ? 1u << l : 0u;
      result = kind == Collective::kBallot ? ballot : kind == Collective::kAny ? ballot != 0 : ballot == mask;
      break;
    }
  }
  if (source >= 0) {  // a lane the mask leaves out gives an undefined value: garbage, so that its use shows
    result = source < kWarpSize && (mask >> source & 1u) ? group->values[source] : 0xFEFEFEFEFEFEFEFEull;
  }
  if (--group->readers == 0) {
    groups.remove_if([group](const Group& g) { return &g == group; });
  }
  return result;
}

void* static_shared(const SharedSite* s, size_t size, size_t align) {
  Emulator& e = emu();
  if (!e.in_launch || e.current < 0) throw Error(std::string("emulated CUDA: __shared__ ") + s->name + " outside a kernel");
  for (const SharedVariable& v : e.shared) {
    if (v.site == s) return e.arena.data() + v.offset;
  }
  const auto align_up = [](size_t v, size_t a) { return (v + a - 1) / a * a; };
  const size_t offset = align_up(e.shared_end, std::max<size_t>(align, 16));
  e.static_bytes = align_up(e.static_bytes, align) + size;  // packed as the device packs them
  const auto variable = [&] { return "__shared__ " + std::string(s->name) + " (" + site(s->file, s->line) + ")"; };
  if (e.static_bytes > size_t(kStaticSharedMax)) {
    fail([&] {
      return variable() + ": " + std::to_string(e.static_bytes) + " bytes of static shared memory, above 48 KB";
    });
  }
  if (e.static_bytes + e.dynamic_bytes > e.shared_limit) {
    fail([&] {
      return variable() + ": " + std::to_string(e.static_bytes) + " bytes of static and " +
             std::to_string(e.dynamic_bytes) + " of dynamic shared memory exceed the block's " +
             std::to_string(e.shared_limit) +
             (e.kernel->max_dynamic >= 0 ? " (the device's opt-in maximum)"
                                         : " (the default limit; opt in with cudaFuncSetAttribute("
                                           "cudaFuncAttributeMaxDynamicSharedMemorySize))");
    });
  }
  if (offset + size + kRedzone > e.arena.size()) {
    fail([&] { return variable() + ": the emulator's shared arena is full"; });
  }
#ifdef DBF_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION(e.arena.data() + offset, size);
#endif
  std::memset(e.arena.data() + offset, kSharedPoison, size);
  e.shared.push_back({s, offset});
  e.shared_end = offset + size + kRedzone;
  return e.arena.data() + offset;
}

void* dynamic_shared() {
  Emulator& e = emu();
  if (!e.in_launch || e.current < 0) throw Error("emulated CUDA: dynamic shared memory outside a kernel");
  return e.arena.data();
}

void check_atomic(const void* address, size_t size, const char* what) {
  if (reinterpret_cast<uintptr_t>(address) % size != 0) {
    fail([&] { return std::string(what) + " on a misaligned address"; });
  }
}

// --- the runtime API -----------------------------------------------------------

cudaError_t set_max_dynamic_shared(const void* kernel, int bytes) {
  Emulator& e = emu();
  std::lock_guard<std::recursive_mutex> lock(e.mutex);
  Kernel& k = e.kernels[kernel];
  const int static_bytes = std::max(k.static_bytes, 0);
  if (bytes < 0 || bytes > e.device.shared_optin - static_bytes) {
    return fail_call(cudaErrorInvalidValue,
                     "cudaFuncSetAttribute(MaxDynamicSharedMemorySize, " + std::to_string(bytes) +
                         "): above the device's opt-in " + std::to_string(e.device.shared_optin) + " less the " +
                         std::to_string(static_bytes) + " bytes of static shared memory");
  }
  k.max_dynamic = bytes;
  return cudaSuccess;
}

cudaFuncAttributes attributes(const void* kernel) {
  Emulator& e = emu();
  std::lock_guard<std::recursive_mutex> lock(e.mutex);
  const Kernel& k = e.kernels[kernel];
  // The static size is learned from a kernel's launches. Before its first it
  // reads 0 and so does the dynamic limit (unless set): a launcher that
  // checks the total against the device passes, and one that compares its
  // dynamic size with the limit opts in (harmless) rather than fail.
  if (k.static_bytes < 0) return {0, std::max(k.max_dynamic, 0), e.device.max_threads};
  const int dynamic = k.max_dynamic >= 0 ? k.max_dynamic : std::max(0, e.device.shared_default - k.static_bytes);
  return {size_t(k.static_bytes), dynamic, e.device.max_threads};
}

std::string last_error_message() { return emu().last_error; }

}  // namespace dbf_emu

using dbf_emu::emu;

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device) {
  const dbf_emu::DeviceConfig& d = emu().device;
  if (device != 0) return dbf_emu::fail_call(cudaErrorInvalidDevice, "device " + std::to_string(device) + " (the emulator has device 0 only)");
  switch (attribute) {
    case cudaDevAttrMaxThreadsPerBlock: *value = d.max_threads; break;
    case cudaDevAttrMaxBlockDimX:
    case cudaDevAttrMaxBlockDimY: *value = 1024; break;
    case cudaDevAttrMaxBlockDimZ: *value = 64; break;
    case cudaDevAttrMaxGridDimX: *value = 2147483647; break;
    case cudaDevAttrMaxGridDimY:
    case cudaDevAttrMaxGridDimZ: *value = 65535; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = d.shared_default; break;
    case cudaDevAttrWarpSize: *value = dbf_emu::kWarpSize; break;
    case cudaDevAttrMultiProcessorCount: *value = d.multiprocessors; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = d.shared_optin; break;
    default:
      return dbf_emu::fail_call(cudaErrorInvalidValue,
                                "cudaDeviceGetAttribute: attribute " + std::to_string(int(attribute)) +
                                    " is not modelled by the emulator");
  }
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  std::lock_guard<std::recursive_mutex> lock(emu().mutex);
  ++emu().record.copies;
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) {
  std::lock_guard<std::recursive_mutex> lock(emu().mutex);
  ++emu().record.syncs;
  return cudaSuccess;
}

cudaError_t cudaGetLastError() { return cudaSuccess; }

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
  }
  return "unknown error";
}
