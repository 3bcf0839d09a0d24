// DBNet label maps (MakeSegDetectionData + MakeBorderMap semantics, see
// dbnet_fast/reference/targets.py) from one distance field per polygon:
// with d the distance of a pixel to the polygon's nearest edge and D its
// shrink distance, shrink_map = inside and d >= D, thresh_mask = inside or
// d <= D, thresh canvas = max over polygons of 1 - min(d / D, 1). The
// geometry here is shared by the CPU rasteriser below and the CUDA kernels.
//
// The masks follow the peers' rasterisation: pyclipper offsets the polygon
// with its coordinates truncated to integers, and cv2.fillPoly also fills the
// pixels its outline crosses. So masks use the distance to the polygon with
// floored coordinates (clipped coordinates are >= 0) and a margin of half a
// pixel; the threshold map uses the exact coordinates, as the peers do.
#pragma once

#include <cmath>
#include <cstdint>

#include "common.h"

namespace dbf {

struct TargetParams {
  double shrink_ratio, thresh_min, thresh_max, min_text_size;
  bool exact;  // distance="exact"; otherwise the published approximation
};

// What a polygon contributes: its shrink distance D and the pixel box to visit.
enum PolygonRole : int32_t {
  kPolygonUsed = 0,     // in all four maps
  kPolygonIgnored = 1,  // only zeroed in shrink_mask (ignore tag, tiny, too small, no shrink)
  kPolygonSkipped = 2,  // nothing at all: no point inside the image's reach (or not finite)
};

constexpr double kFillMargin = 0.5;

struct PolygonPrep {
  double d;             // D = A (1 - r^2) / L
  int32_t role;         // PolygonRole
  int32_t x0, y0, x1, y1;  // inclusive pixel box, clipped to the image (empty if x0 > x1)
};

// An edge a -> a + (dx, dy) with what the distance functions need per pixel,
// in double, or in float for the masks (integer coordinates, half-pixel margins).
template <class T> struct EdgeT {
  T ax, ay, dx, dy, length2, inv_length2;
};
using Edge = EdgeT<double>;

// The mask decisions compare these distances with thresholds, so CPU and
// CUDA must compute them bit for bit alike: every multiply-add is an explicit
// fused one (compilers contract plain ones differently on host and device).
template <class T = double> DBF_HOST_DEVICE EdgeT<T> make_edge(double ax, double ay, double bx, double by) {
  const double dx = bx - ax, dy = by - ay, length2 = fused_mul_add(dx, dx, dy * dy);
  return {T(ax), T(ay), T(dx), T(dy), T(length2), T(length2 > 0.0 ? 1.0 / length2 : 0.0)};
}

// Squared distances from the pixel (x, y) to an edge, free of square roots and
// divisions (so that loops over pixels vectorise and run fast), and of branches.
//
// exact: to the nearest point of the segment (a degenerate edge is a point).
template <class T> DBF_HOST_DEVICE T edge_distance2_exact(T x, T y, const EdgeT<T>& e) {
  const T u = x - e.ax, v = y - e.ay;
  T t = fused_mul_add(u, e.dx, v * e.dy) * e.inv_length2;
  t = t < T(0) ? T(0) : t;
  t = t > T(1) ? T(1) : t;
  const T px = fused_mul_add(-t, e.dx, u), py = fused_mul_add(-t, e.dy, v);
  return fused_mul_add(px, px, py * py);
}

// The published formula, squared: with d1, d2 the squared distances to the
// endpoints and g = |ab|^2 - d1 - d2 (the law of cosines: g < 0 where the angle
// at the pixel is acute), the nearer endpoint if g < 0, else the line distance
// d1 d2 sin^2 / |ab|^2 = (d1 d2 - g^2 / 4) / |ab|^2; 0 at a vertex. The
// reference computes the same with square roots (cos = g / (2 sqrt(d1 d2))).
DBF_HOST_DEVICE double edge_distance2_reference(double x, double y, const Edge& e) {
  const double d1 = (x - e.ax) * (x - e.ax) + (y - e.ay) * (y - e.ay);
  const double bx = x - e.ax - e.dx, by = y - e.ay - e.dy;
  const double d2 = bx * bx + by * by;
  const double g = e.length2 - d1 - d2;
  const double product = d1 * d2;
  double line = (product - 0.25 * g * g) * e.inv_length2;
  line = line > 0.0 ? line : 0.0;
  const double endpoint = d1 < d2 ? d1 : d2;
  const double distance2 = g < 0.0 ? endpoint : line;
  return product == 0.0 ? 0.0 : distance2;
}

// Even-odd rule: whether (x, y) is inside the closed polygon xy[0..n) with
// floored coordinates (the masks' polygon).
DBF_HOST_DEVICE bool point_inside(double x, double y, const double* xy, int64_t n) {
  bool inside = false;
  for (int64_t i = 0, j = n - 1; i < n; j = i++) {
    const double xi = floor(xy[2 * i]), yi = floor(xy[2 * i + 1]);
    const double xj = floor(xy[2 * j]), yj = floor(xy[2 * j + 1]);
    if ((yi > y) != (yj > y) && x < xi + (y - yi) * (xj - xi) / (yj - yi)) inside = !inside;
  }
  return inside;
}

// Clips the polygon's points into the image (writing `clipped`, 2n doubles),
// decides its role and computes D and the box of pixels it can touch: within
// D of it when used, within 1/2 (the filled outline) when ignored.
DBF_HOST_DEVICE PolygonPrep prepare_polygon(const float* xy, int64_t n, int height, int width,
                                            bool ignore_tag, const TargetParams& p,
                                            double* clipped) {
  PolygonPrep prep{0.0, kPolygonSkipped, 0, 0, -1, -1};
  if (n < 1 || height < 1 || width < 1) return prep;
  double area2 = 0.0, perimeter = 0.0;
  double min_x = INFINITY, min_y = INFINITY, max_x = -INFINITY, max_y = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    const double x = xy[2 * i], y = xy[2 * i + 1];
    if (!(x - x == 0.0) || !(y - y == 0.0)) return prep;  // NaN or inf: skipped
    const double cx = x < 0.0 ? 0.0 : x > width - 1 ? double(width - 1) : x;
    const double cy = y < 0.0 ? 0.0 : y > height - 1 ? double(height - 1) : y;
    clipped[2 * i] = cx;
    clipped[2 * i + 1] = cy;
    min_x = cx < min_x ? cx : min_x;
    max_x = cx > max_x ? cx : max_x;
    min_y = cy < min_y ? cy : min_y;
    max_y = cy > max_y ? cy : max_y;
  }
  for (int64_t i = 0, j = n - 1; i < n; j = i++) {
    const double xi = clipped[2 * i], yi = clipped[2 * i + 1];
    const double xj = clipped[2 * j], yj = clipped[2 * j + 1];
    area2 += xj * yi - xi * yj;
    perimeter += sqrt((xi - xj) * (xi - xj) + (yi - yj) * (yi - yj));
  }
  const double area = (n >= 3 ? (area2 < 0 ? -area2 : area2) : 0.0) * 0.5;
  const double box = (max_x - min_x) < (max_y - min_y) ? (max_x - min_x) : (max_y - min_y);
  const bool used = !ignore_tag && area >= 1.0 && box >= p.min_text_size && perimeter > 0.0;
  prep.role = used ? kPolygonUsed : kPolygonIgnored;
  prep.d = used ? area * (1.0 - p.shrink_ratio * p.shrink_ratio) / perimeter : 0.0;
  const double reach = (used ? prep.d : 0.0) + kFillMargin + 1.0;  // + 1: the floored polygon
  const double x0 = floor(min_x - reach), x1 = ceil(max_x + reach);
  const double y0 = floor(min_y - reach), y1 = ceil(max_y + reach);
  prep.x0 = int32_t(x0 < 0 ? 0 : x0);
  prep.y0 = int32_t(y0 < 0 ? 0 : y0);
  prep.x1 = int32_t(x1 > width - 1 ? width - 1 : x1);
  prep.y1 = int32_t(y1 > height - 1 ? height - 1 : y1);
  return prep;
}

// The two squared distances of a pixel to the polygon: exact to the floored
// polygon (for the masks) and of the chosen mode to the polygon itself (for
// the threshold map). Edges farther than `reach` along x or y are skipped:
// both distances are then above reach - 1 anyway.
DBF_HOST_DEVICE void polygon_distances2(double x, double y, const double* xy, int64_t n,
                                        double reach, bool exact, float& mask2, double& canvas2) {
  mask2 = INFINITY;
  canvas2 = INFINITY;
  for (int64_t i = 0, j = n - 1; i < n; j = i++) {
    const double ax = xy[2 * j], ay = xy[2 * j + 1], bx = xy[2 * i], by = xy[2 * i + 1];
    const double lo_x = ax < bx ? ax : bx, hi_x = ax < bx ? bx : ax;
    const double lo_y = ay < by ? ay : by, hi_y = ay < by ? by : ay;
    if (x < lo_x - reach - 1.0 || x > hi_x + reach || y < lo_y - reach - 1.0 || y > hi_y + reach) {
      continue;
    }
    const float e = edge_distance2_exact(float(x), float(y),
                                         make_edge<float>(floor(ax), floor(ay), floor(bx), floor(by)));
    mask2 = e < mask2 ? e : mask2;
    const Edge edge = make_edge(ax, ay, bx, by);
    const double m = exact ? edge_distance2_exact(x, y, edge) : edge_distance2_reference(x, y, edge);
    canvas2 = m < canvas2 ? m : canvas2;
  }
}

// The mask thresholds on squared distances: inside the shrink where
// d >= D - margin, inside the dilation where d <= D + margin.
DBF_HOST_DEVICE float shrink_threshold2(double d) {
  const double t = d - kFillMargin;
  return float(t > 0.0 ? t * t : -1.0);
}
DBF_HOST_DEVICE float dilate_threshold2(double d) {
  return float((d + kFillMargin) * (d + kFillMargin));
}

// Value of a polygon at a pixel in the threshold canvas: 1 - min(d / D, 1),
// from the squared distance.
DBF_HOST_DEVICE float canvas_value(double canvas2, double d) {
  const double v = 1.0 - sqrt(canvas2) * (1.0 / d);  // 1 / d: the same for a whole loop
  return float(v > 0.0 ? v : 0.0);
}

// Renders one image's four maps (each height x width floats) on the host.
// Polygons are given clipped (prepare_polygon) as xy[2 offsets[p] .. 2 offsets[p+1]).
// A used polygon whose shrink covers no pixel becomes ignored.
void render_targets(const double* xy, const int64_t* offsets, const PolygonPrep* preps,
                    int64_t polygons, int height, int width, const TargetParams& params,
                    float* shrink_map, float* shrink_mask, float* thresh_map, float* thresh_mask);

}  // namespace dbf
