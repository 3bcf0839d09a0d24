// The quad pipeline of DB post-processing on the device, for a batch of maps:
// only the kept boxes (and per-image counts) are copied to the host.
//
//   text_kernel        prob > thresh (+ 2x2 dilation) -> text bytes; flags NaN/inf
//   init/merge/flatten 8-connected labelling by union-find (components.h):
//                      labels end as the component's first pixel (image-local)
//   at::cumsum         ranks of the roots in raster order (over the batch)
//   bounds_kernel      candidate slot of each component (last first, the first
//                      max_candidates) and its bounding box, from run ends
//   candidates_kernel  one block per candidate: row extremes of its pixels
//                      (warps over rows) -> hull -> first box -> fast score
//                      (warps over the fillPoly rows of the box) -> unclip ->
//                      second box; the serial steps run on thread 0
//   compact_kernel     kept records of each image, in order, packed densely
//
// Memory: per pixel 1 byte of text, 4 of label, 4 of root flag and 4 of rank;
// per candidate slot 4 ints and a 9-float record. Host syncs: one copy of the
// counts and flags, then one copy of the kept records (skipped when none).
#include <ATen/core/Tensor.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <climits>

#include "../core/components.h"
#include "../entry_points.h"

namespace dbf {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kChunkRows = 256;  // rows of row extremes held in shared memory at a time
constexpr int kMaxCandidateBlocks = 2048;

int blocks_for(int64_t items) {
  return int(std::max<int64_t>(1, std::min<int64_t>((items + kThreads - 1) / kThreads, 65535)));
}

// Grid-stride loop over the pixels of the batch: f(image, index in the image, index in the batch).
template <class F>
__device__ void for_each_pixel(int64_t total, int64_t plane, const F& f) {
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < total; g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = g / plane;
    f(b, int32_t(g - b * plane), g);
  }
}

__global__ void text_kernel(const float* prob, uint8_t* text, int* non_finite, int64_t total, int64_t plane,
                            int width, float thresh, bool dilate) {
  for_each_pixel(total, plane, [&](int64_t b, int32_t i, int64_t g) {
    const float* map = prob + b * plane;
    if (!isfinite(map[i])) non_finite[b] = 1;
    text[g] = text_pixel(map, width, i % width, i / width, thresh, dilate);
  });
}

__global__ void init_kernel(const uint8_t* text, int32_t* label, int64_t total, int64_t plane, int width) {
  for_each_pixel(total, plane, [&](int64_t b, int32_t i, int64_t) {
    init_label(text + b * plane, label + b * plane, width, i);
  });
}

__global__ void merge_kernel(const uint8_t* text, int32_t* label, int64_t total, int64_t plane, int width) {
  for_each_pixel(total, plane, [&](int64_t b, int32_t i, int64_t) {
    merge_label(text + b * plane, label + b * plane, width, i);
  });
}

__global__ void flatten_start_kernel(const uint8_t* text, int32_t* label, int64_t total, int64_t plane, int width) {
  for_each_pixel(total, plane, [&](int64_t b, int32_t i, int64_t) {
    flatten_start(text + b * plane, label + b * plane, width, i);
  });
}

__global__ void flatten_rest_kernel(const uint8_t* text, int32_t* label, int32_t* is_root, int64_t total,
                                    int64_t plane, int width) {
  for_each_pixel(total, plane, [&](int64_t b, int32_t i, int64_t g) {
    is_root[g] = flatten_rest(text + b * plane, label + b * plane, width, i);
  });
}

// The slot arrays of image b: four int32 arrays of batch * slots each.
__device__ CandidateSlots image_slots(int32_t* data, int64_t batch, int64_t slots, int64_t b) {
  const int64_t n = batch * slots, at = b * slots;
  return {data + at, data + n + at, data + 2 * n + at, data + 3 * n + at};
}

__global__ void slot_init_kernel(int32_t* slot_data, int64_t batch, int64_t slots) {
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < batch * slots;
       k += int64_t(gridDim.x) * blockDim.x) {
    init_slot(image_slots(slot_data, batch, slots, 0), k);
  }
}

__global__ void bounds_kernel(const uint8_t* text, const int32_t* label, const int32_t* rank, int32_t* slot_data,
                              int64_t batch, int64_t slots, int height, int width) {
  const int64_t plane = int64_t(height) * width;
  for_each_pixel(batch * plane, plane, [&](int64_t b, int32_t i, int64_t) {
    slot_bounds(text + b * plane, label + b * plane, rank + b * plane, height, width, slots, i,
                image_slots(slot_data, batch, slots, b));
  });
}

__device__ int warp_min(int v) {
  for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ int warp_max(int v) {
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <class T>
__device__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

struct CandidateArgs {
  const float* prob;
  const int32_t* label;
  const int32_t* slot_data;
  int64_t batch, slots;
  int height, width;
  PostParams params;
  int chain_cap, unclip_cap;
  float* records;  // (batch * slots, kRecord): quad in map pixels, score
  uint8_t* kept;   // (batch * slots)
  int* error;      // bit 1: hull buffer, bit 2: unclip buffer (internal errors)
};

// Shared memory of one block, carved from the dynamic allocation.
struct CandidateShared {
  uint64_t* keys;   // unclip_cap
  int32_t* ext;     // 2 * kChunkRows
  int32_t* lower;   // 2 * chain_cap
  int32_t* upper;   // 2 * chain_cap
  float* hull;      // 4 * chain_cap

  static size_t bytes(int chain_cap, int unclip_cap) {
    return sizeof(uint64_t) * unclip_cap + sizeof(int32_t) * (2 * kChunkRows + 4 * size_t(chain_cap)) +
           sizeof(float) * 4 * size_t(chain_cap);
  }
};

__global__ void __launch_bounds__(kThreads) candidates_kernel(CandidateArgs a) {
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  CandidateShared sh;
  sh.keys = reinterpret_cast<uint64_t*>(shared_bytes);
  sh.ext = reinterpret_cast<int32_t*>(sh.keys + a.unclip_cap);
  sh.lower = sh.ext + 2 * kChunkRows;
  sh.upper = sh.lower + 2 * a.chain_cap;
  sh.hull = reinterpret_cast<float*>(sh.upper + 2 * a.chain_cap);
  __shared__ float quad[8];
  __shared__ ScoreWindow win;  // the box's fillPoly rows, set up once for the block
  __shared__ int go;
  __shared__ double warp_sums[kWarps];
  __shared__ long long warp_counts[kWarps];

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t total = a.batch * a.slots, plane = int64_t(a.height) * a.width;
  HullChains chains(sh.lower, sh.upper, a.chain_cap);  // used by thread 0 only
  for (int64_t slot = blockIdx.x; slot < total; slot += gridDim.x) {
    const int64_t b = slot / a.slots;
    const CandidateSlots s = image_slots(const_cast<int32_t*>(a.slot_data), a.batch, a.slots, 0);
    const int32_t root = s.root[slot];  // the same for the whole block
    if (root < 0) {
      if (threadIdx.x == 0) a.kept[slot] = 0;
      continue;
    }
    const int32_t* label = a.label + b * plane;
    const float* prob = a.prob + b * plane;
    const int x0 = s.x_min[slot], x1 = s.x_max[slot], y_first = root / a.width, y_last = s.y_max[slot];

    // Hull of the component from the extreme pixels of its rows, in chunks.
    if (threadIdx.x == 0) chains.reset();
    for (int y_start = y_first; y_start <= y_last; y_start += kChunkRows) {
      const int rows = min(kChunkRows, y_last - y_start + 1);
      for (int r = warp; r < rows; r += kWarps) {
        const int32_t* row = label + int64_t(y_start + r) * a.width;
        int lo = INT_MAX, hi = -1;
        for (int x = x0 + lane; x <= x1; x += 32) {
          if (row[x] == root) lo = min(lo, x), hi = max(hi, x);
        }
        lo = warp_min(lo);
        hi = warp_max(hi);
        if (lane == 0) sh.ext[2 * r] = lo, sh.ext[2 * r + 1] = hi;
      }
      __syncthreads();
      if (threadIdx.x == 0) {
        for (int r = 0; r < rows; ++r) {
          const int lo = sh.ext[2 * r], hi = sh.ext[2 * r + 1];
          if (lo > hi) continue;
          chains.push(lo, y_start + r);
          if (hi != lo) chains.push(hi, y_start + r);
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      go = 0;
      if (chains.overflow) {
        atomicOr(a.error, 1);
      } else {
        const int n = chains.finish(sh.hull);
        order_component_hull(sh.hull, n, root % a.width, root / a.width);
        go = first_box(sh.hull, n, a.params.min_size, quad);
        if (go) score_window(quad, a.height, a.width, win);
      }
      if (!go) a.kept[slot] = 0;
    }
    __syncthreads();
    if (!go) continue;

    // Fast score: mean of prob under the box's fillPoly rows.
    double sum = 0.0;
    long long count = 0;
    PixelRun runs[6];
    for (int64_t r = warp; r < win.raster.h; r += kWarps) {
      const float* row = prob + (win.y0 + r) * a.width + win.x0;
      const int m = win.raster.row_runs(r, runs);
      for (int j = 0; j < m; ++j) {
        for (int64_t x = runs[j].begin + lane; x <= runs[j].end; x += 32) sum += row[x];
        count += runs[j].end - runs[j].begin + 1;  // every lane counts; lane 0's is kept
      }
    }
    sum = warp_sum(sum);
    if (lane == 0) warp_sums[warp] = sum, warp_counts[warp] = count;
    __syncthreads();

    // Unclip and the second box.
    if (threadIdx.x == 0) {
      double block_sum = 0.0;
      long long block_count = 0;
      for (int w = 0; w < kWarps; ++w) block_sum += warp_sums[w], block_count += warp_counts[w];
      const double score = mean_or_zero(block_sum, block_count);
      uint8_t keep = 0;
      if (!(a.params.box_thresh > score)) {
        float* record = a.records + slot * kRecord;
        const int status = grown_box(quad, a.params, sh.keys, a.unclip_cap, chains, sh.hull, record);
        if (status < 0) atomicOr(a.error, 2);
        if (status > 0) record[8] = float(score), keep = 1;
      }
      a.kept[slot] = keep;
    }
    // The next slot's first barrier keeps thread 0's shared state until it is done.
  }
}

// One block: per-image counts, then each image's kept records packed after
// those of the images before it; status = counts (batch), non-finite flags
// (batch), internal error bits.
__global__ void compact_kernel(const uint8_t* kept, const float* records, const int* non_finite, const int* error,
                               int64_t batch, int64_t slots, int64_t* status, float* dense) {
  for (int64_t b = threadIdx.x; b < batch; b += blockDim.x) {
    status[b] = count_kept(kept, b, slots);
    status[batch + b] = non_finite[b];
  }
  if (threadIdx.x == 0) status[2 * batch] = *error;
  __syncthreads();
  for (int64_t b = threadIdx.x; b < batch; b += blockDim.x) {
    int64_t first = 0;
    for (int64_t p = 0; p < b; ++p) first += status[p];
    gather_kept(kept, records, b, slots, first, dense);
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> boxes_cuda(const at::Tensor& prob, const at::Tensor& dest_sizes,
                                                          const PostParams& params) {
  TORCH_CHECK(prob.dim() == 3 && prob.scalar_type() == at::kFloat && prob.is_cuda(),
              "db_boxes: prob must be a (B, H, W) float32 CUDA tensor");
  TORCH_CHECK_NOT_IMPLEMENTED(!params.slow_score,
                              "db_boxes: score_mode='slow' has no CUDA implementation; use 'fast' or CPU maps");
  const c10::cuda::CUDAGuard guard(prob.device());
  const at::Tensor maps = prob.contiguous(), sizes = checked_dest_sizes("db_boxes", prob, dest_sizes);
  const int64_t batch = maps.size(0), height = maps.size(1), width = maps.size(2), plane = height * width;
  TORCH_CHECK(height < (1 << 24) && width < (1 << 24) && plane < (int64_t(1) << 31),
              "db_boxes: map too large for the CUDA pipeline (H * W must be below 2^31)");
  const int64_t slots = candidate_slots(height, width, params.max_candidates);
  TORCH_CHECK(batch * ((height + 1) / 2) * ((width + 1) / 2) < (int64_t(1) << 31),
              "db_boxes: batch too large for the CUDA pipeline (its components are counted in int32); split it");
  const auto host = at::TensorOptions().dtype(at::kFloat);
  if (batch == 0 || plane == 0) {
    return {at::empty({0, 4, 2}, host), at::empty({0}, host), at::zeros({batch}, host.dtype(at::kLong))};
  }
  const int unclip_cap = unclip_capacity(height, width, params.unclip_ratio);
  const int chain_cap = std::max(convex_chain_capacity(height, width), unclip_cap);
  const size_t shared = CandidateShared::bytes(chain_cap, unclip_cap);
  const int device = prob.device().index();
  int shared_optin = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&shared_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  TORCH_CHECK(shared + 4096 <= size_t(shared_optin), "db_boxes: the maps (", height, " x ", width,
              ") or unclip_ratio (", params.unclip_ratio, ") are too large for the CUDA pipeline's buffers (",
              shared, " bytes of shared memory per block)");
  if (shared > 48 * 1024) {  // above the default limit: opt in (large maps or unclip ratios)
    C10_CUDA_CHECK(cudaFuncSetAttribute(candidates_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)));
  }

  const auto options = maps.options();
  const int64_t total = batch * plane, candidates = batch * slots;
  at::Tensor text = at::empty({batch, plane}, options.dtype(at::kByte));
  at::Tensor label = at::empty({batch, plane}, options.dtype(at::kInt));
  at::Tensor is_root = at::empty({batch * plane}, options.dtype(at::kInt));
  at::Tensor non_finite = at::zeros({batch}, options.dtype(at::kInt));
  at::Tensor error = at::zeros({1}, options.dtype(at::kInt));
  at::Tensor slot_data = at::empty({4, candidates}, options.dtype(at::kInt));
  at::Tensor records = at::empty({candidates, kRecord}, options);
  at::Tensor kept = at::empty({candidates}, options.dtype(at::kByte));
  at::Tensor dense = at::empty({candidates, kRecord}, options);
  at::Tensor status = at::empty({2 * batch + 1}, options.dtype(at::kLong));

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  uint8_t* text_p = text.mutable_data_ptr<uint8_t>();
  int32_t* label_p = label.mutable_data_ptr<int32_t>();
  const int grid = blocks_for(total), w = int(width), h = int(height);
  text_kernel<<<grid, kThreads, 0, stream>>>(maps.const_data_ptr<float>(), text_p, non_finite.mutable_data_ptr<int>(),
                                             total, plane, w, params.thresh, params.dilate);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  init_kernel<<<grid, kThreads, 0, stream>>>(text_p, label_p, total, plane, w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  merge_kernel<<<grid, kThreads, 0, stream>>>(text_p, label_p, total, plane, w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  flatten_start_kernel<<<grid, kThreads, 0, stream>>>(text_p, label_p, total, plane, w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  flatten_rest_kernel<<<grid, kThreads, 0, stream>>>(text_p, label_p, is_root.mutable_data_ptr<int32_t>(), total,
                                                     plane, w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // Ranks of the roots over the whole batch (a 1-D scan runs on all of the
  // GPU); slot_bounds only uses differences within an image.
  const at::Tensor rank = at::cumsum(is_root, 0, at::kInt);  // on the current stream
  slot_init_kernel<<<blocks_for(candidates), kThreads, 0, stream>>>(slot_data.mutable_data_ptr<int32_t>(), batch,
                                                                     slots);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  bounds_kernel<<<grid, kThreads, 0, stream>>>(text_p, label_p, rank.const_data_ptr<int32_t>(),
                                               slot_data.mutable_data_ptr<int32_t>(), batch, slots, h, w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  CandidateArgs args{maps.const_data_ptr<float>(), label_p, slot_data.const_data_ptr<int32_t>(), batch, slots, h, w,
                     params, chain_cap, unclip_cap, records.mutable_data_ptr<float>(), kept.mutable_data_ptr<uint8_t>(),
                     error.mutable_data_ptr<int>()};
  if (candidates > 0) {  // none when max_candidates is 0 (the maps are still checked for NaN)
    const int candidate_grid = int(std::min<int64_t>(candidates, kMaxCandidateBlocks));
    candidates_kernel<<<candidate_grid, kThreads, shared, stream>>>(args);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  compact_kernel<<<1, kThreads, 0, stream>>>(kept.const_data_ptr<uint8_t>(), records.const_data_ptr<float>(),
                                             non_finite.const_data_ptr<int>(), error.const_data_ptr<int>(), batch,
                                             slots, status.mutable_data_ptr<int64_t>(),
                                             dense.mutable_data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  // The only transfers: counts and flags, then the kept records.
  const at::Tensor status_host = status.cpu();
  const int64_t* st = status_host.const_data_ptr<int64_t>();
  TORCH_CHECK(st[2 * batch] == 0, "db_boxes: internal error in the CUDA pipeline (buffer overflow, code ",
              st[2 * batch], "); please report it with the map size and settings");
  at::Tensor counts = at::empty({batch}, host.dtype(at::kLong));
  int64_t kept_total = 0;
  for (int64_t b = 0; b < batch; ++b) {
    TORCH_CHECK_VALUE(st[batch + b] == 0, "db_boxes: prob holds NaN or inf (image ", b, ")");
    kept_total += counts.mutable_data_ptr<int64_t>()[b] = st[b];
  }
  at::Tensor boxes = at::empty({kept_total, 4, 2}, host), scores = at::empty({kept_total}, host);
  if (kept_total > 0) {
    const at::Tensor packed = dense.narrow(0, 0, kept_total).cpu();
    const float* rec = packed.const_data_ptr<float>();
    const int64_t* dest = sizes.const_data_ptr<int64_t>();
    float* out = boxes.mutable_data_ptr<float>();
    float* score = scores.mutable_data_ptr<float>();
    // To destination pixels on the host, with the CPU path's arithmetic.
    for (int64_t b = 0, n = 0; b < batch; ++b) {
      for (int64_t e = 0; e < st[b]; ++e, ++n) {
        scale_quad(rec + n * kRecord, h, w, float(dest[2 * b]), float(dest[2 * b + 1]), out + 8 * n);
        score[n] = rec[n * kRecord + 8];
      }
    }
  }
  return {boxes, scores, counts};
}

}  // namespace dbf
