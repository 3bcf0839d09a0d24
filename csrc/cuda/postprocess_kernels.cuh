// CUDA kernels of the quad pipeline of DB post-processing, for a batch of
// maps (the launcher is in postprocess.cu):
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
// Torch-free: the native tests run these kernels through the host emulation.
#pragma once

#include <climits>
#include <cstdint>

#include "../core/components.h"
#include "device.h"

namespace dbf::postprocess_kernels {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kChunkRows = 256;  // rows of row extremes held in shared memory at a time

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
  DBF_DYNAMIC_SHARED(unsigned char, shared_bytes);
  CandidateShared sh;
  sh.keys = reinterpret_cast<uint64_t*>(shared_bytes);
  sh.ext = reinterpret_cast<int32_t*>(sh.keys + a.unclip_cap);
  sh.lower = sh.ext + 2 * kChunkRows;
  sh.upper = sh.lower + 2 * a.chain_cap;
  sh.hull = reinterpret_cast<float*>(sh.upper + 2 * a.chain_cap);
  DBF_SHARED(float[8], quad);
  DBF_SHARED(ScoreWindow, win);  // the box's fillPoly rows, set up once for the block
  DBF_SHARED(int, go);
  DBF_SHARED(double[kWarps], warp_sums);
  DBF_SHARED(long long[kWarps], warp_counts);

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

}  // namespace dbf::postprocess_kernels
