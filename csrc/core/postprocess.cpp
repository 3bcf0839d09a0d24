#include "postprocess.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "hull.h"
#include "raster.h"
#include "unclip.h"

namespace dbf {

int convex_hull(const int64_t* xy, int n, HullScratch& scratch) {
  std::vector<int>&forward = scratch.forward, &backward = scratch.backward, &chain = scratch.chain;
  std::vector<int>&left = scratch.left, &right = scratch.right;
  forward.clear();
  backward.clear();
  auto less = [&](int a, int b) {
    if (xy[2 * a] != xy[2 * b]) return xy[2 * a] < xy[2 * b];
    if (xy[2 * a + 1] != xy[2 * b + 1]) return xy[2 * a + 1] < xy[2 * b + 1];
    return a < b;  // of equal points, the first one represents them
  };
  // The monotone chain: one side of the hull from the first to the last point
  // of a lexicographic order (forward), the other side back (backward).
  // Only the leftmost and rightmost point of a row can be a vertex of the
  // strictly convex hull: unless the points are sparse over their rows (then
  // a sort is cheaper) keep those (the first of equal points), which row by
  // row are in (y, x) order, and no sort is needed. In that order the
  // forward chain (top to bottom, every kept turn negative) is the left side,
  // so it takes the leftmost points only, and the backward chain the
  // rightmost; the others would be popped anyway.
  if (n <= 0) return 0;
  int64_t lo_y = xy[1], hi_y = xy[1];
  for (int i = 1; i < n; ++i) lo_y = std::min(lo_y, xy[2 * i + 1]), hi_y = std::max(hi_y, xy[2 * i + 1]);
  // (hi_y - lo_y as unsigned: no overflow for any coordinates)
  if (n > 16 && uint64_t(hi_y) - uint64_t(lo_y) < 4 * uint64_t(n)) {
    const int rows = int(hi_y - lo_y) + 1;
    left.assign(size_t(rows), -1);
    right.assign(size_t(rows), -1);
    for (int i = 0; i < n; ++i) {
      const int r = int(xy[2 * i + 1] - lo_y);
      if (left[r] < 0 || xy[2 * i] < xy[2 * left[r]]) left[r] = i;
      if (right[r] < 0 || xy[2 * i] > xy[2 * right[r]]) right[r] = i;
    }
    for (int r = 0; r < rows; ++r) {
      if (left[r] >= 0) forward.push_back(left[r]);
    }
    for (int r = rows - 1; r >= 0; --r) {
      if (right[r] >= 0) backward.push_back(right[r]);
    }
    // The chains meet at the ends of the order: the last point (bottom right)
    // closes the forward chain, the first (top left) the backward one.
    if (backward.front() != forward.back()) forward.push_back(backward.front());
    if (forward.front() != backward.back()) backward.push_back(forward.front());
  } else {
    forward.resize(n);
    std::iota(forward.begin(), forward.end(), 0);
    std::sort(forward.begin(), forward.end(), less);
    auto same = [&](int a, int b) { return xy[2 * a] == xy[2 * b] && xy[2 * a + 1] == xy[2 * b + 1]; };
    // Of equal points the first one stands for all (OpenCV's pick among equal
    // points depends on its sort; this choice agrees with it almost always).
    forward.erase(std::unique(forward.begin(), forward.end(), same), forward.end());
    backward.assign(forward.rbegin(), forward.rend());
  }
  auto cross = [&](int o, int a, int b) {
    return (xy[2 * a] - xy[2 * o]) * (xy[2 * b + 1] - xy[2 * o + 1]) -
           (xy[2 * a + 1] - xy[2 * o + 1]) * (xy[2 * b] - xy[2 * o]);
  };
  // Strictly convex: every kept turn has a negative cross product. Each
  // chain's end point starts the next chain (or closes the hull).
  chain.resize(forward.size() + backward.size() + 1);
  int* top = chain.data();
  int size = 0;
  for (const std::vector<int>* side : {&forward, &backward}) {
    const int floor = size;
    for (const int i : *side) {
      while (size >= floor + 2 && cross(top[size - 2], top[size - 1], i) >= 0) --size;
      top[size++] = i;
    }
    --size;
  }
  if (size == 0) top[0] = forward[0], size = 1;
  chain.resize(size_t(size));
  // OpenCV's order (convexHull(clockwise=false)): the reverse of this chain,
  // from the largest point in (x, y) order ...
  std::reverse(chain.begin(), chain.end());
  std::rotate(chain.begin(), std::max_element(chain.begin(), chain.end(), less), chain.end());
  // ... then shifted cyclically to start at the smallest (or largest) input
  // index when that makes the indices run in one direction.
  const int m = int(chain.size());
  std::rotate(chain.begin(), chain.begin() + index_order_start(chain.data(), m), chain.end());
  std::vector<float>& hull = scratch.points;
  hull.resize(2 * chain.size());
  for (size_t k = 0; k < chain.size(); ++k) {
    hull[2 * k] = float(xy[2 * chain[k]]);
    hull[2 * k + 1] = float(xy[2 * chain[k] + 1]);
  }
  return int(chain.size());
}

float min_area_quad(const int64_t* xy, int n, float* quad, HullScratch& scratch) {
  const int h = convex_hull(xy, n, scratch);
  return quad_of_hull(scratch.points.data(), h, quad);
}

double quad_score(const float* prob, int height, int width, const float* quad, RasterScratch& scratch) {
  float lo_x = quad[0], hi_x = quad[0], lo_y = quad[1], hi_y = quad[1];
  int32_t corners[8];
  for (int i = 0; i < 4; ++i) {
    lo_x = std::min(lo_x, quad[2 * i]), hi_x = std::max(hi_x, quad[2 * i]);
    lo_y = std::min(lo_y, quad[2 * i + 1]), hi_y = std::max(hi_y, quad[2 * i + 1]);
    corners[2 * i] = int32_t(quad[2 * i]);  // truncation toward zero, as astype(int32)
    corners[2 * i + 1] = int32_t(quad[2 * i + 1]);
  }
  return polygon_mean(prob, height, width, corners, 4, int(std::floor(lo_x)), int(std::floor(lo_y)),
                      int(std::ceil(hi_x)), int(std::ceil(hi_y)), scratch);
}

double contour_score(const float* prob, int height, int width, const int32_t* xy, int n,
                     RasterScratch& scratch) {
  int lo_x = xy[0], hi_x = xy[0], lo_y = xy[1], hi_y = xy[1];
  for (int i = 1; i < n; ++i) {
    lo_x = std::min(lo_x, xy[2 * i]), hi_x = std::max(hi_x, xy[2 * i]);
    lo_y = std::min(lo_y, xy[2 * i + 1]), hi_y = std::max(hi_y, xy[2 * i + 1]);
  }
  return polygon_mean(prob, height, width, xy, n, lo_x, lo_y, hi_x, hi_y, scratch);
}

bool boxes_from_map(const float* prob, int height, int width, const PostParams& params,
                    std::vector<ScoredQuad>& result) {
  result.clear();
  if (height <= 0 || width <= 0) return true;
  bool finite = true;
  const Contours contours = trace_map_contours(prob, height, width, params.thresh, params.dilate, &finite);
  if (!finite) return false;
  const int64_t candidates = std::min(contours.count(), params.max_candidates);
  // Kept per thread: one thread-local lookup per map, none per box.
  struct BoxScratch {
    HullScratch hull;
    RasterScratch raster;
    std::vector<int64_t> points, grown;
  };
  thread_local BoxScratch scratch;
  std::vector<int64_t>&points = scratch.points, &grown = scratch.grown;
  HullScratch& hull = scratch.hull;
  RasterScratch& raster = scratch.raster;
  for (int64_t c = 0; c < candidates; ++c) {
    const int64_t begin = contours.offsets[c], n = contours.offsets[c + 1] - begin;
    const int32_t* xy = contours.xy.data() + 2 * begin;
    points.assign(xy, xy + 2 * n);
    ScoredQuad box;
    float quad[8];
    if (min_area_quad(points.data(), int(n), quad, hull) < params.min_size) continue;
    const double score = params.slow_score ? contour_score(prob, height, width, xy, int(n), raster)
                                           : quad_score(prob, height, width, quad, raster);
    if (params.box_thresh > score) continue;
    // Unclip: grow the box (corners truncated, as pyclipper takes them) by
    // area * ratio / perimeter of the float box.
    int64_t corners[8];
    for (int i = 0; i < 8; ++i) corners[i] = int64_t(quad[i]);
    const double distance = unclip_distance(quad, params.unclip_ratio);
    grown.clear();
    offset_polygon_round(corners, 4, distance, grown);
    if (grown.empty()) continue;
    if (min_area_quad(grown.data(), int(grown.size() / 2), box.xy, hull) < params.min_size + 2) continue;
    box.score = float(score);
    result.push_back(box);
  }
  // The mask of a large non-convex polygon (slow scores) is not kept per thread.
  if (raster.mask.capacity() > (size_t(1) << 20)) std::vector<uint8_t>().swap(raster.mask);
  return true;
}

}  // namespace dbf
