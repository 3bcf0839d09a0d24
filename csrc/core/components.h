// The per-pixel and per-component steps of the CUDA quad pipeline
// (csrc/cuda/postprocess_kernels.cuh), written as host-device functions: the
// native tests check them against the host algorithms they reproduce.
//
// Labelling is union-find over one label per pixel (the image-local linear
// index of the pixel's parent, -1 for background): a pixel starts at the first
// pixel of its run inside its 32-column segment, is united with its other
// neighbours by atomicMin on roots (Playne and Hawick's lock-free union), and
// finally points at its root, the component's first pixel in raster order.
#pragma once

#include <cstdint>

#include "boxes.h"
#include "common.h"
#include "hull.h"
#include "postprocess.h"
#include "raster_rows.h"
#include "unclip.h"

namespace dbf {

constexpr int kSegment = 32;  // columns whose runs are linked at initialisation

// atomicMin / atomicMax on the device; a plain read-modify-write on the host.
DBF_HOST_DEVICE int32_t atomic_min_i32(int32_t* p, int32_t v) {
#ifdef __CUDA_ARCH__
  return atomicMin(reinterpret_cast<int*>(p), int(v));
#else
  const int32_t old = *p;
  if (v < old) *p = v;
  return old;
#endif
}

DBF_HOST_DEVICE int32_t atomic_max_i32(int32_t* p, int32_t v) {
#ifdef __CUDA_ARCH__
  return atomicMax(reinterpret_cast<int*>(p), int(v));
#else
  const int32_t old = *p;
  if (v > old) *p = v;
  return old;
#endif
}

// A label read that bypasses the (non-coherent) L1 cache on the device.
DBF_HOST_DEVICE int32_t load_label(const int32_t* p) {
#ifdef __CUDA_ARCH__
  return __ldcg(p);
#else
  return *p;
#endif
}

// Threshold (and optional 2x2 dilation, as cv2.dilate(ones((2, 2))) whose
// anchor makes a pixel text when it or its left, upper or upper-left
// neighbour is) of pixel (x, y) of one map. NaN is background.
DBF_HOST_DEVICE uint8_t text_pixel(const float* prob, int width, int x, int y, float thresh, bool dilate) {
  const float* row = prob + int64_t(y) * width;
  if (row[x] > thresh) return 1;
  if (!dilate) return 0;
  if (x > 0 && row[x - 1] > thresh) return 1;
  if (y == 0) return 0;
  const float* up = row - width;
  return up[x] > thresh || (x > 0 && up[x - 1] > thresh);
}

// Pixel i of one image: its first parent, the start of its run inside its segment.
DBF_HOST_DEVICE void init_label(const uint8_t* text, int32_t* label, int width, int32_t i) {
  if (!text[i]) {
    label[i] = -1;
    return;
  }
  const int x = i % width, first = x - x % kSegment;
  int s = x;
  while (s > first && text[i - (x - s) - 1]) --s;
  label[i] = i - (x - s);
}

DBF_HOST_DEVICE int32_t find_root(const int32_t* label, int32_t i) {
  int32_t parent = load_label(label + i);
  while (parent != i) {
    i = parent;
    parent = load_label(label + i);
  }
  return i;
}

// Joins the trees of a and b: the larger root is hung under the smaller one.
// If another thread changed that root first, atomicMin returns its new parent
// and the loop goes on from there; labels only decrease, so it ends.
DBF_HOST_DEVICE void unite(int32_t* label, int32_t a, int32_t b) {
  for (;;) {
    a = find_root(label, a);
    b = find_root(label, b);
    if (a == b) return;
    if (a > b) {
      const int32_t t = a;
      a = b, b = t;
    }
    const int32_t old = atomic_min_i32(label + b, a);
    if (old == b) return;
    b = old;
  }
}

// Unions of text pixel i with its 8-neighbours before it in raster order,
// only those that no other path of unions implies (a solid blob then does one
// vertical union per row and one per segment border): runs inside a segment
// are linked at initialisation, the left neighbour across a segment border is
// united; the upper neighbour only at the left end of a stretch of vertical
// contact (further right, left + upper-left + upper link it); the upper-left
// and upper-right ones only when neither the upper nor the same-side
// neighbour is text (else a union of that neighbour links them).
DBF_HOST_DEVICE void merge_label(const uint8_t* text, int32_t* label, int width, int32_t i) {
  if (!text[i]) return;
  const int x = i % width;
  const bool left = x > 0 && text[i - 1];
  if (left && x % kSegment == 0) unite(label, i, i - 1);
  if (i < width) return;  // first row
  const bool up_left = x > 0 && text[i - width - 1];
  if (text[i - width]) {
    if (!(left && up_left)) unite(label, i, i - width);
    return;
  }
  if (up_left && !left) unite(label, i, i - width - 1);
  const bool right = x + 1 < width && text[i + 1];
  if (x + 1 < width && text[i - width + 1] && !right) unite(label, i, i - width + 1);
}

// Whether text pixel i starts a run inside its segment: only such pixels are
// ever roots, the others keep their run's start as parent.
DBF_HOST_DEVICE bool run_start(const uint8_t* text, int width, int32_t i) {
  const int x = i % width;
  return text[i] && (x % kSegment == 0 || !text[i - 1]);
}

// Root of i with path halving (each visited node is hung under its
// grandparent). Only once the merging is over: every label is then an
// ancestor in the final forest, so concurrent halving stores only shorten
// paths, whatever their order.
DBF_HOST_DEVICE int32_t find_root_halving(int32_t* label, int32_t i) {
  for (;;) {
    const int32_t parent = load_label(label + i);
    if (parent == i) return i;
    const int32_t grand = load_label(label + parent);
    if (grand == parent) return parent;
    label[i] = grand;
    i = grand;
  }
}

// Flattening, first pass: paths from run starts (the only nodes of the
// forest besides the leaves) are shortened.
DBF_HOST_DEVICE void flatten_start(const uint8_t* text, int32_t* label, int width, int32_t i) {
  if (run_start(text, width, i)) label[i] = find_root_halving(label, i);
}

// Second pass: each text pixel takes its root (a start's label may still be
// a non-root ancestor: another thread's halving store can land after its
// own). Paths go through run starts only, whose labels here become roots or
// stay ancestors, so concurrent lookups stay right. Returns whether pixel i
// is a root (a component's first pixel).
DBF_HOST_DEVICE bool flatten_rest(const uint8_t* text, int32_t* label, int width, int32_t i) {
  if (!text[i]) return false;
  const int32_t root = find_root(label, run_start(text, width, i) ? i : label[i]);
  label[i] = root;
  return root == i;
}

// The candidates of one image, in slots 0 .. slots - 1: components ordered by
// their first pixel, last first (the order in which RETR_LIST lists the outer
// borders), the first max_candidates of them.
struct CandidateSlots {
  int32_t* root;   // the component's first pixel (image-local index), -1: empty slot
  int32_t* x_min;  // bounding box; y_min is the root's row
  int32_t* x_max;
  int32_t* y_max;
};

DBF_HOST_DEVICE void init_slot(const CandidateSlots& s, int64_t k) {
  s.root[k] = -1, s.x_min[k] = INT32_MAX, s.x_max[k] = -1, s.y_max[k] = -1;
}

// For text pixel i of one image: the bounding box of its component, from the
// ends of its run (only run ends do atomics). `rank` is the inclusive count of
// roots up to each pixel in raster order (a prefix sum that may start before
// the image: only differences within it count).
DBF_HOST_DEVICE void slot_bounds(const uint8_t* text, const int32_t* label, const int32_t* rank, int height,
                                 int width, int64_t slots, int32_t i, const CandidateSlots& s) {
  const int32_t root = label[i];
  if (root < 0) return;
  const int64_t k = int64_t(rank[int64_t(height) * width - 1]) - rank[root];  // 0 for the last component
  if (k >= slots) return;
  const int x = i % width, y = i / width;
  if (i == root) s.root[k] = root;
  if (x == 0 || !text[i - 1]) {
    atomic_min_i32(s.x_min + k, x);
    atomic_max_i32(s.y_max + k, y);
  }
  if (x + 1 == width || !text[i + 1]) atomic_max_i32(s.x_max + k, x);
}

// The leftmost and rightmost pixel of component `root` in one label row
// between columns x0 and x1 (lo > hi when none).
DBF_HOST_DEVICE void row_extent(const int32_t* label_row, int x0, int x1, int32_t root, int& lo, int& hi) {
  lo = x1 + 1, hi = x0 - 1;
  for (int x = x0; x <= x1; ++x) {
    if (label_row[x] == root) {
      lo = x < lo ? x : lo;
      hi = x;
    }
  }
}

// The hull of a component's border as convex_hull gives it (see
// index_order_start): RETR_LIST's trace of an outer border starts at the
// component's first pixel, which is a hull point, and meets the hull points
// in turn against the hull's order, so their indices descend along it and
// the hull starts right after that pixel. `hull` is HullChains' result.
DBF_HOST_DEVICE void order_component_hull(float* hull, int n, int32_t first_x, int32_t first_y) {
  if (n < 3) return;
  for (int r = 0; r < n; ++r) {
    if (hull[2 * r] == float(first_x) && hull[2 * r + 1] == float(first_y)) {
      rotate_points(hull, n, (r + 1) % n);
      return;
    }
  }
}

// The first box of a component from its hull: ordered quad, and whether its
// short side passes (>= min_size).
DBF_HOST_DEVICE bool first_box(const float* hull, int n, double min_size, float* quad) {
  return !(quad_of_hull(hull, n, quad) < min_size);
}

// Mean over the painted pixels from a sum and a count, 0 for none (as polygon_mean).
DBF_HOST_DEVICE double mean_or_zero(double sum, int64_t count) { return count > 0 ? sum / double(count) : 0.0; }

// The largest number of points offset_round_path can emit for a box of a
// height x width map: the box's short side is at most sqrt(height * width)
// (its area is at most the map's bounding box's), so delta <= ratio *
// sqrt(height * width) / 2; four joins emit at most steps / 2 + 2 points each
// over a total turn of 2 pi, 3 at a concave corner.
inline int unclip_capacity(int64_t height, int64_t width, double ratio) {
  const double delta = ratio * sqrt(double(height) * double(width)) / 2 + 1;
  const double steps = offset_arc_steps(delta);
  return int(2 * steps) + 24;
}

// Unclip and second box of a kept quad. `keys` holds `capacity` points,
// `chains` is reset here. Writes the ordered quad; returns 1 when it passes
// the short-side filter (>= min_size + 2), 0 when it does not, -1 when a
// buffer was too small (an internal error).
DBF_HOST_DEVICE int grown_box(const float* quad, const PostParams& params, uint64_t* keys, int capacity,
                              HullChains& chains, float* hull, float* out) {
  int64_t corners[8], src[8];
  for (int i = 0; i < 8; ++i) corners[i] = int64_t(quad[i]);  // truncated, as pyclipper takes them
  const double delta = unclip_distance(quad, params.unclip_ratio);
  const int len = prepare_offset_path(corners, 4, src);
  if (len < 3 || !(delta > 0)) return 0;  // pyclipper returns nothing: the box is dropped
  int n = 0;
  bool overflow = false;
  offset_round_path(src, len, delta, [&](int64_t x, int64_t y) {
    if (n < capacity) keys[n++] = point_key(x, y);
    else overflow = true;
  });
  if (overflow) return -1;
  heap_sort(keys, n);
  chains.reset();
  for (int i = 0; i < n; ++i) chains.push(key_x(keys[i]), key_y(keys[i]));
  if (chains.overflow) return -1;
  const int h = chains.finish(hull);
  // convex_hull's last step needs each hull point's first position in
  // Clipper's output: generate the points again and look them up.
  int32_t* first = chains.lower;  // free now, and holds >= h values
  for (int v = 0; v < h; ++v) first[v] = -1;
  int32_t position = 0;
  offset_round_path(src, len, delta, [&](int64_t x, int64_t y) {
    for (int v = 0; v < h; ++v) {
      if (first[v] < 0 && hull[2 * v] == float(x) && hull[2 * v + 1] == float(y)) first[v] = position;
    }
    ++position;
  });
  rotate_points(hull, h, index_order_start(first, h));
  return quad_of_hull(hull, h, out) < params.min_size + 2 ? 0 : 1;
}

// A kept box in destination pixels, as the reference: x / width * dest_width
// in float32, clipped to [0, dest_width].
DBF_HOST_DEVICE void scale_quad(const float* quad, int height, int width, float dest_h, float dest_w, float* out) {
  for (int i = 0; i < 4; ++i) {
    const float x = quad[2 * i] / float(width) * dest_w, y = quad[2 * i + 1] / float(height) * dest_h;
    out[2 * i] = x < 0.f ? 0.f : (x > dest_w ? dest_w : x);
    out[2 * i + 1] = y < 0.f ? 0.f : (y > dest_h ? dest_h : y);
  }
}

// Record layout of a candidate's result: 8 coordinates, then the score.
constexpr int kRecord = 9;

// Number of kept boxes of image b (flags of its `slots` candidates).
DBF_HOST_DEVICE int64_t count_kept(const uint8_t* kept, int64_t b, int64_t slots) {
  int64_t n = 0;
  for (int64_t k = 0; k < slots; ++k) n += kept[b * slots + k];
  return n;
}

// Copies image b's kept records, in slot order, to `dense` from row `first`.
DBF_HOST_DEVICE void gather_kept(const uint8_t* kept, const float* records, int64_t b, int64_t slots,
                                 int64_t first, float* dense) {
  for (int64_t k = 0; k < slots; ++k) {
    if (!kept[b * slots + k]) continue;
    for (int j = 0; j < kRecord; ++j) dense[first * kRecord + j] = records[(b * slots + k) * kRecord + j];
    ++first;
  }
}

// The candidate slots an image needs: no more than max_candidates, nor than
// the components a height x width map can hold (each 2 x 2 block of pixels
// belongs to one component at most).
inline int64_t candidate_slots(int64_t height, int64_t width, int64_t max_candidates) {
  const int64_t most = ((height + 1) / 2) * ((width + 1) / 2);
  return max_candidates < most ? max_candidates : most;
}

}  // namespace dbf
