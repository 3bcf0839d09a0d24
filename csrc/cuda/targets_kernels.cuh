// CUDA kernels of label generation for a batch (the launchers are in
// targets.cu), with the geometry of csrc/core/targets.h: polygons packed as
// CSR are planned one thread each (clipping, pyclipper's offset outlines,
// Clipper's cleanup into edges, in three passes that size the buffers in
// between), then every polygon is drawn by a row of blocks: per image row its
// fill spans (cv2.fillPoly's sorted crossings) and its threshold canvas, then
// its edges' lines. Writes of 0/1 are idempotent; the canvas takes the
// maximum with atomicMax on the float bits (non-negative floats order as
// integers), so no result depends on the order threads run in. Torch-free.
#pragma once

#include <cstdint>

#include "../core/targets.h"
#include "device.h"

namespace dbf::targets_kernels {

constexpr int kRowBlocks = 16;       // blocks sharing one polygon's rows
constexpr int kRowCrossings = 256;   // crossings of one row kept in shared memory

// Pass 1: clip, role, D, Clipper's source polygon, room for the outlines.
__global__ void plan_kernel(const float* points, const int64_t* offsets, const bool* ignore,
                            int64_t polygons, int height, int width, TargetParams params,
                            double* clipped, IPoint* source, PolygonPrep* preps,
                            PolygonPlan* plans, int64_t* room) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < polygons;
       p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t at = offsets[p], n = offsets[p + 1] - at;
    preps[p] = prepare_polygon(points + 2 * at, n, height, width, ignore[p], params, clipped + 2 * at);
    room[p] = plan_polygon(preps[p], clipped + 2 * at, n, source + at, plans[p]);
  }
}

// Pass 2: the outlines, and the count of edges each polygon draws.
__global__ void outline_kernel(const int64_t* offsets, int64_t polygons, const PolygonPrep* preps,
                               const IPoint* source, const int64_t* room_end, PolygonPlan* plans,
                               IPoint* outline, Split* splits, int64_t* edges) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < polygons;
       p += int64_t(gridDim.x) * blockDim.x) {
    PolygonPlan plan = plans[p];
    plan.outline_at = room_end[p] - plan.shrink_capacity - plan.dilate_capacity;
    const int64_t at = offsets[p];
    edges[p] = plan_edges(plan, preps[p], offsets[p + 1] - at, source + at, outline, splits);
    plans[p] = plan;
  }
}

// Pass 3: the edges, their fill edges and boxes.
__global__ void edge_kernel(const int64_t* offsets, int64_t polygons, const double* clipped,
                            const IPoint* outline, Split* splits, const int64_t* edges_end,
                            PolygonPlan* plans, Segment* edges, FillEdge* fills, int height,
                            int width) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < polygons;
       p += int64_t(gridDim.x) * blockDim.x) {
    PolygonPlan plan = plans[p];
    const int64_t count = plan.shrink_edges + plan.dilate_edges;
    plan.segment_at = edges_end[p] - count;
    const int64_t at = offsets[p];
    plan_write_edges(plan, clipped + 2 * at, offsets[p + 1] - at, outline, splits, edges, height, width);
    for (int64_t k = plan.segment_at; k < plan.segment_at + count; ++k) {
      if (!make_fill_edge(edges[k], height, width, fills[k])) fills[k] = {0, 0, 0, 0};  // never active
    }
    plans[p] = plan;
  }
}

__global__ void init_kernel(float* maps, int64_t plane_batch) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < 4 * plane_batch;
       i += int64_t(gridDim.x) * blockDim.x) {
    maps[i] = (i >= plane_batch && i < 2 * plane_batch) ? 1.f : 0.f;  // shrink_mask starts at 1
  }
}

// Fills row y of one edge set's spans with `value`: the row's crossings
// gathered and sorted in shared memory, or, when there are too many, each
// pixel of the row decided on its own.
__device__ void fill_row(const FillEdge* fills, int64_t count, int y, int width, float value,
                         float* row, int64_t* xs, int* crossings) {
  if (threadIdx.x == 0) *crossings = 0;
  __syncthreads();
  for (int64_t e = threadIdx.x; e < count; e += blockDim.x) {
    if (fills[e].y0 <= y && y < fills[e].y1) {
      const int k = atomicAdd(crossings, 1);
      if (k < kRowCrossings) xs[k] = fill_x(fills[e], y);
    }
  }
  __syncthreads();
  const int total = *crossings;
  if (total <= kRowCrossings) {
    if (threadIdx.x == 0) {  // few crossings: insertion sort
      for (int i = 1; i < total; ++i) {
        const int64_t v = xs[i];
        int k = i;
        for (; k > 0 && xs[k - 1] > v; --k) xs[k] = xs[k - 1];
        xs[k] = v;
      }
    }
    __syncthreads();
    for (int k = 0; k + 1 < total; k += 2) {
      const int64_t low = (xs[k] + 65535) >> 16, high = xs[k + 1] >> 16;
      const int64_t x1 = low > 0 ? low : 0, x2 = high < width - 1 ? high : width - 1;
      for (int64_t x = x1 + threadIdx.x; x <= x2; x += blockDim.x) row[x] = value;
    }
  } else {
    for (int x = threadIdx.x; x < width; x += blockDim.x) {
      const int64_t at = int64_t(x) * 65536;
      int64_t below = 0, equal = 0, active = 0;
      for (int64_t e = 0; e < count; ++e) {
        if (fills[e].y0 > y || y >= fills[e].y1) continue;
        const int64_t v = fill_x(fills[e], y);
        ++active;
        below += v < at;
        equal += v == at;
      }
      if (even_odd_covers(below, equal, active)) row[x] = value;
    }
  }
  __syncthreads();
}

// Draws polygon blockIdx.x, its rows split over blockIdx.y.
__global__ void draw_kernel(const double* clipped, const int64_t* offsets, const PolygonPrep* preps,
                            const PolygonPlan* plans, const Segment* edges, const FillEdge* fills,
                            const int64_t* image_offsets, int64_t batch, int height, int width,
                            bool exact, float* maps) {
  DBF_SHARED(int64_t[kRowCrossings], xs);
  DBF_SHARED(int, crossings);
  const int64_t p = blockIdx.x;
  const PolygonPlan plan = plans[p];
  if (plan.role == kPolygonSkipped) return;
  int64_t image = 0;  // the image whose polygon range holds p
  while (image + 1 < batch && image_offsets[image + 1] <= p) ++image;
  const int64_t plane = int64_t(height) * width, stride = batch * plane;
  float* shrink_map = maps + image * plane;
  const bool used = plan.role == kPolygonUsed;
  // used: its shrink into shrink_map and its dilation into thresh_mask;
  // ignored: its own edges, 0 into shrink_mask
  float* first = used ? shrink_map : shrink_map + stride;
  float* second = shrink_map + 3 * stride;
  float* canvas = shrink_map + 2 * stride;
  const float value = used ? 1.f : 0.f;
  const FillEdge* first_fills = fills + plan.segment_at;
  const FillEdge* second_fills = first_fills + plan.shrink_edges;
  int y0 = plan.shrink_box.y0, y1 = plan.shrink_box.y1;
  if (used) {
    y0 = min(y0, plan.dilate_box.y0);
    y1 = max(y1, plan.dilate_box.y1);
  }
  const double* xy = clipped + 2 * offsets[p];
  const int64_t n = offsets[p + 1] - offsets[p];
  const double d = preps[p].d;
  for (int y = y0 + int(blockIdx.y); y <= y1; y += gridDim.y) {
    fill_row(first_fills, plan.shrink_edges, y, width, value, first + int64_t(y) * width, xs, &crossings);
    if (!used) continue;
    fill_row(second_fills, plan.dilate_edges, y, width, 1.f, second + int64_t(y) * width, xs, &crossings);
    const Box& box = plan.dilate_box;
    if (y < box.y0 || y > box.y1) continue;
    for (int x = box.x0 + int(threadIdx.x); x <= box.x1; x += blockDim.x) {
      const float v = pixel_canvas(x, y, xy, n, d, exact);
      if (v > 0.f) atomicMax(reinterpret_cast<int*>(canvas + int64_t(y) * width + x), __float_as_int(v));
    }
  }
  // the edges' 8-connected lines
  const int64_t count = plan.shrink_edges + plan.dilate_edges;
  for (int64_t e = blockIdx.y; e < count; e += gridDim.y) {
    const LineRun run = make_line(edges[plan.segment_at + e], height, width);
    float* target = e < plan.shrink_edges ? first : second;
    for (int64_t k = threadIdx.x; k < run.count; k += blockDim.x) {
      int x, y;
      line_pixel(run, k, x, y);
      target[int64_t(y) * width + x] = value;
    }
  }
}

__global__ void finish_kernel(float* canvas, int64_t count, float low, float span) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    canvas[i] = thresh_value(canvas[i], low, span);
  }
}

}  // namespace dbf::targets_kernels
