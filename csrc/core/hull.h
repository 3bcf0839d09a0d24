// Convex hulls of integer points in caller memory (host and device): points
// arrive in lexicographic order, (y, x) or (x, y), and one pass builds both
// monotone chains. The result is put in the order of the host convex_hull
// (csrc/core/postprocess.cpp), which min_area_rect depends on: strictly
// convex, turning with a positive cross product, starting at the largest
// point in (x, y) order (two distinct points: largest, smallest), then
// shifted by the input order of the points as OpenCV does (index_order_start).
#pragma once

#include <cstdint>

#include "common.h"

namespace dbf {

DBF_HOST_DEVICE int64_t hull_cross(int64_t ox, int64_t oy, int64_t ax, int64_t ay, int64_t bx, int64_t by) {
  return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox);
}

// The last step of convex_hull (OpenCV's convexHull): `index` holds, for
// each of the m hull points in order, its position in the input (the first
// of equal points). When these run in one direction around the cycle, the
// hull starts at the smallest (ascending) or the largest (descending) of
// them instead. Returns the position to start at (0: no change).
DBF_HOST_DEVICE int index_order_start(const int32_t* index, int m) {
  if (m < 3) return 0;
  int min_i = 0, max_i = 0, rises = 0;
  for (int i = 1; i < m; ++i) {
    rises += index[i - 1] < index[i];
    if (rises > 1 && rises <= i - 2) break;
    if (index[i] < index[min_i]) min_i = i;
    if (index[i] > index[max_i]) max_i = i;
  }
  const int span = max_i > min_i ? max_i - min_i : min_i - max_i;
  if (!((span == 1 || span == m - 1) && (rises <= 1 || rises >= m - 2))) return 0;
  const bool ascending = (max_i + 1) % m == min_i;
  const int start = ascending ? min_i : max_i;
  for (int i = 0, j = start; i < m - 1; ++i, j = (j + 1) % m) {
    if (ascending != (index[j] < index[(j + 1) % m])) return 0;
  }
  return start;
}

// Rotates n points (x, y interleaved) to start at point k, by three reversals.
DBF_HOST_DEVICE void rotate_points(float* p, int n, int k) {
  auto reverse = [&](int i, int j) {
    for (; i < j; ++i, --j) {
      const float x = p[2 * i], y = p[2 * i + 1];
      p[2 * i] = p[2 * j], p[2 * i + 1] = p[2 * j + 1];
      p[2 * j] = x, p[2 * j + 1] = y;
    }
  };
  if (k <= 0 || k >= n) return;
  reverse(0, k - 1);
  reverse(k, n - 1);
  reverse(0, n - 1);
}

struct HullChains {
  int32_t* lower;  // capacity points each, (x, y) interleaved
  int32_t* upper;
  int capacity;
  int n_lower = 0, n_upper = 0;
  bool overflow = false;  // a chain needed more than `capacity` points

  DBF_HOST_DEVICE HullChains(int32_t* lower_buffer, int32_t* upper_buffer, int cap)
      : lower(lower_buffer), upper(upper_buffer), capacity(cap) {}

  DBF_HOST_DEVICE void reset() { n_lower = n_upper = 0, overflow = false; }

  // The next point in lexicographic order. Collinear points are popped, so
  // the chains stay strictly convex.
  DBF_HOST_DEVICE void push(int32_t x, int32_t y) {
    add(lower, n_lower, x, y, 1);
    add(upper, n_upper, x, y, -1);
  }

  // Writes the hull (float x, y interleaved; at most n_lower + n_upper points)
  // in the order of convex_hull before its last step (index_order_start);
  // returns the point count (0 when nothing was pushed).
  DBF_HOST_DEVICE int finish(float* hull) const {
    if (n_lower == 0) return 0;
    // The cycle: lower chain forward, then the upper chain back without its ends.
    int n = 0;
    for (int i = 0; i < n_lower; ++i) n = put(hull, n, lower[2 * i], lower[2 * i + 1]);
    for (int i = n_upper - 2; i >= 1; --i) n = put(hull, n, upper[2 * i], upper[2 * i + 1]);
    if (n == 2 && hull[0] == hull[2] && hull[1] == hull[3]) n = 1;
    int start = 0;  // the largest point in (x, y) order
    for (int i = 1; i < n; ++i) {
      const float x = hull[2 * i], y = hull[2 * i + 1], sx = hull[2 * start], sy = hull[2 * start + 1];
      if (x > sx || (x == sx && y > sy)) start = i;
    }
    // Counter-clockwise (positive cross at a vertex) in (x, y) terms, else reverse.
    bool reverse = false;
    if (n >= 3) {
      const int64_t turn = hull_cross(int64_t(hull[0]), int64_t(hull[1]), int64_t(hull[2]), int64_t(hull[3]),
                                      int64_t(hull[4]), int64_t(hull[5]));
      reverse = turn < 0;
    }
    rotate_points(hull, n, start);
    if (reverse) {
      for (int i = 1, j = n - 1; i < j; ++i, --j) swap_point(hull, i, j);  // keeps the start first
    }
    return n;
  }

 private:
  DBF_HOST_DEVICE void add(int32_t* chain, int& n, int32_t x, int32_t y, int side) {
    while (n >= 2 && side * hull_cross(chain[2 * n - 4], chain[2 * n - 3], chain[2 * n - 2], chain[2 * n - 1], x,
                                       y) <= 0) {
      --n;
    }
    if (n >= 1 && chain[2 * n - 2] == x && chain[2 * n - 1] == y) return;
    if (n == capacity) {
      overflow = true;
      return;
    }
    chain[2 * n] = x, chain[2 * n + 1] = y;
    ++n;
  }

  DBF_HOST_DEVICE static int put(float* hull, int n, int32_t x, int32_t y) {
    hull[2 * n] = float(x), hull[2 * n + 1] = float(y);
    return n + 1;
  }

  DBF_HOST_DEVICE static void swap_point(float* p, int i, int j) {
    const float x = p[2 * i], y = p[2 * i + 1];
    p[2 * i] = p[2 * j], p[2 * i + 1] = p[2 * j + 1];
    p[2 * j] = x, p[2 * j + 1] = y;
  }

};

// Heap sort of 64-bit keys (no recursion, no extra memory): the device sorts
// the unclip points with it.
DBF_HOST_DEVICE void heap_sort(uint64_t* keys, int n) {
  auto sift = [&](int root, int end) {
    while (2 * root + 1 < end) {
      int child = 2 * root + 1;
      if (child + 1 < end && keys[child] < keys[child + 1]) ++child;
      if (!(keys[root] < keys[child])) return;
      const uint64_t t = keys[root];
      keys[root] = keys[child], keys[child] = t;
      root = child;
    }
  };
  for (int i = n / 2 - 1; i >= 0; --i) sift(i, n);
  for (int end = n - 1; end > 0; --end) {
    const uint64_t t = keys[0];
    keys[0] = keys[end], keys[end] = t;
    sift(0, end);
  }
}

// A point as a key ordered by (y, x), for coordinates of magnitude below 2^31.
DBF_HOST_DEVICE uint64_t point_key(int64_t x, int64_t y) {
  return (uint64_t(uint32_t(int32_t(y)) ^ 0x80000000u) << 32) | (uint32_t(int32_t(x)) ^ 0x80000000u);
}
DBF_HOST_DEVICE int32_t key_x(uint64_t key) { return int32_t(uint32_t(key) ^ 0x80000000u); }
DBF_HOST_DEVICE int32_t key_y(uint64_t key) { return int32_t(uint32_t(key >> 32) ^ 0x80000000u); }

// An upper bound on the points of one strictly convex chain of integer points
// with coordinates in [0, width) x [0, height) (a monotone chain of a hull):
// its edges are distinct integer vectors of total |dx| + |dy| at most
// 2 (width - 1) + 2 (height - 1), and there are at most 4 s vectors with
// |dx| + |dy| = s, so the count is bounded by the shortest such vectors.
inline int convex_chain_capacity(int64_t height, int64_t width) {
  const int64_t budget = 2 * (width > 0 ? width - 1 : 0) + 2 * (height > 0 ? height - 1 : 0);
  int64_t used = 0, edges = 0;
  for (int64_t s = 1;; ++s) {
    if (used + 4 * s * s > budget) {
      edges += (budget - used) / s;  // partial level: each vector costs s
      break;
    }
    used += 4 * s * s;
    edges += 4 * s;
  }
  const int64_t by_rows = 2 * height + 2;  // also: at most two points per row
  const int64_t cap = edges + 2;
  return int(cap < by_rows ? cap : by_rows);
}

}  // namespace dbf
