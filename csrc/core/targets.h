// DBNet label maps (MakeSegDetectionData + MakeBorderMap semantics, see
// dbnet_fast/reference/targets.py), shared by the host renderer
// (targets.cpp) and the CUDA kernels (csrc/cuda/targets.cu).
//
// The masks reproduce what the peers compute, step by step:
//  1. pyclipper offsets the polygon with its coordinates truncated to integers
//     (ClipperOffset, round joins, arc tolerance 0.25): offset_path gives its
//     raw outline, vertices rounded as Clipper rounds them;
//  2. Clipper's union then keeps the part of positive winding, with the
//     crossings of the raw outline rounded to integer vertices: clean_path
//     gives the edges of that polygon (unlinked, which is all a fill needs);
//  3. cv2.fillPoly draws every edge as an 8-connected line and fills the
//     even-odd spans between the edges' 16.16 fixed-point crossings of each
//     row: make_line / line_pixel and make_fill_edge / even_odd_covers.
// The threshold map is computed from distances to the polygon itself (the
// coordinates as given, clipped to the image), within the bounding box of the
// dilated polygon, as the peers do.
//
// Determinism: the masks come out of integer arithmetic and of double
// arithmetic written with explicit fused multiply-adds, so the host and the
// device compute the same bits; only acos, sin, cos and atan2 (the arcs of
// round joins) may differ in the last bit between libm and CUDA, which moves
// a vertex only if it lies within 1e-12 of a rounding tie.
#pragma once

#include <cmath>
#include <cstdint>

#include "common.h"

namespace dbf {

struct TargetParams {
  double shrink_ratio, thresh_min, thresh_max, min_text_size;
  bool exact;  // distance="exact"; otherwise the published approximation
};

enum PolygonRole : int32_t {
  kPolygonUsed = 0,     // in all four maps
  kPolygonIgnored = 1,  // only zeroed in shrink_mask (ignore tag, tiny, too small, no shrink)
  kPolygonSkipped = 2,  // nothing at all (a coordinate that is not finite)
};

struct PolygonPrep {
  double d;      // D = A (1 - r^2) / L
  int32_t role;  // PolygonRole
};

struct IPoint {
  int32_t x, y;
};
DBF_HOST_DEVICE bool operator==(IPoint a, IPoint b) { return a.x == b.x && a.y == b.y; }
DBF_HOST_DEVICE bool operator!=(IPoint a, IPoint b) { return !(a == b); }

// A directed edge of an integer polygon.
struct Segment {
  IPoint a, b;
};

// An inclusive pixel box (empty when x0 > x1 or y0 > y1).
struct Box {
  int32_t x0, y0, x1, y1;
};

// Offset outlines with more points than this are not cleaned (their polygon
// is ignored): only absurd inputs get there (hundreds of sharp corners with
// offsets of hundreds of pixels), and cleaning is quadratic in the points.
constexpr int64_t kMaxOutline = 1 << 13;

// ---------------------------------------------------------------------------
// 1. The polygon in the image.

// Clips the polygon's points into the image (writing `clipped`, 2n doubles)
// and decides its role and D.
DBF_HOST_DEVICE PolygonPrep prepare_polygon(const float* xy, int64_t n, int height, int width,
                                            bool ignore_tag, const TargetParams& p,
                                            double* clipped) {
  PolygonPrep prep{0.0, kPolygonSkipped};
  if (n < 1 || height < 1 || width < 1) return prep;
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
  double area2 = 0.0, perimeter = 0.0;
  for (int64_t i = 0, j = n - 1; i < n; j = i++) {
    const double xi = clipped[2 * i], yi = clipped[2 * i + 1];
    const double xj = clipped[2 * j], yj = clipped[2 * j + 1];
    area2 += fused_mul_add(xj, yi, -(xi * yj));
    const double dx = xi - xj, dy = yi - yj;
    perimeter += sqrt(fused_mul_add(dx, dx, dy * dy));
  }
  const double area = (n >= 3 ? (area2 < 0 ? -area2 : area2) : 0.0) * 0.5;
  const double box = (max_x - min_x) < (max_y - min_y) ? (max_x - min_x) : (max_y - min_y);
  const bool used = !ignore_tag && area >= 1.0 && box >= p.min_text_size && perimeter > 0.0;
  prep.role = used ? kPolygonUsed : kPolygonIgnored;
  prep.d = used ? area * fused_mul_add(-p.shrink_ratio, p.shrink_ratio, 1.0) / perimeter : 0.0;
  return prep;
}

// The polygon as cv2.fillPoly gets it from numpy's astype(int32): truncated
// (the clipped coordinates are >= 0, so floored).
DBF_HOST_DEVICE Segment truncated_edge(const double* clipped, int64_t n, int64_t i) {
  const int64_t j = i + 1 < n ? i + 1 : 0;
  return {{int32_t(clipped[2 * i]), int32_t(clipped[2 * i + 1])},
          {int32_t(clipped[2 * j]), int32_t(clipped[2 * j + 1])}};
}

// ---------------------------------------------------------------------------
// 2. pyclipper's offset: ClipperOffset with round joins on a closed polygon.

// Clipper's input polygon: the truncated points without repeats (consecutive
// ones, and closing ones equal to the first), reversed if its area is
// negative. Returns the count of points (< 3: Clipper drops the polygon).
DBF_HOST_DEVICE int64_t clipper_source(const double* clipped, int64_t n, IPoint* src) {
  if (n < 1) return 0;
  const auto point = [&](int64_t i) {
    return IPoint{int32_t(clipped[2 * i]), int32_t(clipped[2 * i + 1])};
  };
  int64_t high = n - 1, m = 1;
  src[0] = point(0);
  while (high > 0 && point(high) == src[0]) --high;
  for (int64_t i = 1; i <= high; ++i) {
    const IPoint p = point(i);
    if (p != src[m - 1]) src[m++] = p;
  }
  if (m < 3) return m;
  int64_t twice_area = 0;  // Clipper's Area() times -2, exact
  for (int64_t i = 0, j = m - 1; i < m; j = i++) {
    twice_area += (int64_t(src[j].x) + src[i].x) * (int64_t(src[j].y) - src[i].y);
  }
  if (twice_area > 0) {  // Clipper's Orientation() is false: reverse
    for (int64_t i = 0, j = m - 1; i < j; ++i, --j) {
      const IPoint t = src[i];
      src[i] = src[j];
      src[j] = t;
    }
  }
  return m;
}

// Clipper's Round: half away from zero.
DBF_HOST_DEVICE int32_t clipper_round(double v) {
  return int32_t(v < 0.0 ? int64_t(v - 0.5) : int64_t(v + 0.5));
}

struct Normal {
  double x, y;
};

// Clipper's GetUnitNormal of the edge a -> b.
DBF_HOST_DEVICE Normal unit_normal(IPoint a, IPoint b) {
  if (a == b) return {0.0, 0.0};
  double dx = double(b.x) - a.x, dy = double(b.y) - a.y;
  const double f = 1.0 / sqrt(fused_mul_add(dx, dx, dy * dy));
  dx *= f;
  dy *= f;
  return {dy, -dx};
}

// The raw outline of the polygon src[0..m) offset by delta (grown when > 0),
// as ClipperOffset::DoOffset builds it before its union. Writes the points to
// `out` unless it is null; returns their count.
DBF_HOST_DEVICE int64_t offset_path(const IPoint* src, int64_t m, double delta, IPoint* out) {
  if (m < 3 || !(delta != 0.0)) return 0;
  const double pi = 3.141592653589793238, ad = fabs(delta);
  const double tolerance = 0.25 > ad * 0.25 ? ad * 0.25 : 0.25;  // ArcTolerance 0.25
  double steps = pi / acos(1.0 - tolerance / ad);
  if (steps > ad * pi) steps = ad * pi;
  const double step_sin = (delta < 0.0 ? -1.0 : 1.0) * sin(2.0 * pi / steps);
  const double step_cos = cos(2.0 * pi / steps), steps_per_radian = steps / (2.0 * pi);
  int64_t count = 0;
  const auto put = [&](double x, double y) {
    if (out) out[count] = {clipper_round(x), clipper_round(y)};
    ++count;
  };
  const auto offset = [&](IPoint p, Normal n) {
    put(fused_mul_add(n.x, delta, double(p.x)), fused_mul_add(n.y, delta, double(p.y)));
  };
  Normal nk = unit_normal(src[m - 1], src[0]);  // the previous edge's normal
  for (int64_t j = 0; j < m; ++j) {
    const IPoint p = src[j];
    const Normal nj = unit_normal(p, src[j + 1 < m ? j + 1 : 0]);
    double sin_a = fused_mul_add(nk.x, nj.y, -(nj.x * nk.y));
    const double cos_a = fused_mul_add(nk.x, nj.x, nj.y * nk.y);
    if (fabs(sin_a * delta) < 1.0) {
      if (cos_a > 0.0) {  // nearly straight on: one point, and the same previous normal
        offset(p, nk);
        continue;
      }
    } else if (sin_a > 1.0) {
      sin_a = 1.0;
    } else if (sin_a < -1.0) {
      sin_a = -1.0;
    }
    if (sin_a * delta < 0.0) {  // the inner side of a corner: out, back to the vertex, out
      offset(p, nk);
      put(p.x, p.y);
      offset(p, nj);
    } else {  // the outer side: an arc of round join
      const double a = atan2(sin_a, cos_a);
      int64_t arc = int64_t(clipper_round(steps_per_radian * fabs(a)));
      arc = arc < 1 ? 1 : arc;
      double x = nk.x, y = nk.y;
      for (int64_t i = 0; i < arc; ++i) {
        offset(p, {x, y});
        const double x2 = x;
        x = fused_mul_add(x, step_cos, -(step_sin * y));
        y = fused_mul_add(x2, step_sin, y * step_cos);
      }
      offset(p, nj);
    }
    nk = nj;
  }
  return count;
}

// ---------------------------------------------------------------------------
// 3. Clipper's union: the edges of the positive-winding part of an outline.

struct Split {
  double t;  // where along the edge
  IPoint p;  // the crossing, rounded as Clipper rounds its intersections
};

DBF_HOST_DEVICE int64_t cross(int64_t ax, int64_t ay, int64_t bx, int64_t by) {
  return ax * by - ay * bx;
}

DBF_HOST_DEVICE IPoint next_point(const IPoint* p, int64_t m, int64_t i) {
  return p[i + 1 < m ? i + 1 : 0];
}

// Whether the edge c -> d lies on the line of a -> b.
DBF_HOST_DEVICE bool collinear(IPoint a, IPoint b, IPoint c, IPoint d) {
  return cross(b.x - a.x, b.y - a.y, d.x - c.x, d.y - c.y) == 0 &&
         cross(b.x - a.x, b.y - a.y, c.x - a.x, c.y - a.y) == 0;
}

// Clipper keeps the part of the outline where the winding number is positive;
// with winding numbers counted from the edges crossing the row to the left of
// a point (downwards +1 with y down), that is where it is <= -1.
DBF_HOST_DEVICE bool positive_winding(int64_t w) { return w <= -1; }

// Winding number at (x, y) from the edges crossing row y to its left.
DBF_HOST_DEVICE int64_t winding_left(const IPoint* p, int64_t m, double x, double y) {
  int64_t w = 0;
  for (int64_t j = 0; j < m; ++j) {
    const IPoint c = p[j], d = next_point(p, m, j);
    if ((c.y <= y) == (d.y <= y)) continue;
    const double t = (y - c.y) / (double(d.y) - c.y);
    if (fused_mul_add(t, double(d.x) - c.x, double(c.x)) < x) w += d.y > c.y ? 1 : -1;
  }
  return w;
}

// Whether the outline is convex, turns the positive way and goes round once:
// then it is its own union.
DBF_HOST_DEVICE bool convex_positive(const IPoint* p, int64_t m) {
  int64_t first = 0;
  while (first < m && p[first] == next_point(p, m, first)) ++first;
  if (first == m) return false;
  int64_t previous = first, y_turns = 0, first_dy = 0, last_dy = 0;
  for (int64_t s = 1; s <= m; ++s) {  // s = m: back to the first edge, for its turn
    const int64_t e = (first + s) % m;
    const IPoint a = p[e], b = next_point(p, m, e);
    if (a == b) continue;
    const IPoint c = p[previous], d = next_point(p, m, previous);
    const int64_t turn = cross(d.x - c.x, d.y - c.y, b.x - a.x, b.y - a.y);
    const int64_t dot = int64_t(d.x - c.x) * (b.x - a.x) + int64_t(d.y - c.y) * (b.y - a.y);
    if (turn < 0 || (turn == 0 && dot < 0)) return false;
    previous = e;
    const IPoint f = p[first], g = next_point(p, m, first);
    const IPoint u = s == m ? f : a, v = s == m ? g : b;
    if (s == 1 && f.y != g.y) first_dy = last_dy = g.y > f.y ? 1 : -1;
    if (s < m && u.y != v.y) {
      const int64_t dy = v.y > u.y ? 1 : -1;
      if (first_dy == 0) first_dy = dy;
      if (last_dy != 0 && dy != last_dy) ++y_turns;
      last_dy = dy;
    }
  }
  if (last_dy != first_dy) ++y_turns;
  return y_turns == 2;
}

// Where edge j (c -> d) cuts edge i (a -> b) strictly inside: at their
// crossing, computed along the edge of lower index so that both edges get the
// same rounded point, or, when they lie on one line, at the ends of j inside
// i. Writes up to 2 splits; returns their count.
DBF_HOST_DEVICE int edge_splits(IPoint a, IPoint b, int64_t i, IPoint c, IPoint d, int64_t j,
                                Split* out) {
  const int64_t rx = b.x - a.x, ry = b.y - a.y, sx = d.x - c.x, sy = d.y - c.y;
  const int64_t qx = c.x - a.x, qy = c.y - a.y;
  int64_t den = cross(rx, ry, sx, sy);
  if (den == 0) {
    if (cross(rx, ry, qx, qy) != 0) return 0;  // parallel apart
    const int64_t length2 = rx * rx + ry * ry;
    int count = 0;
    for (int end = 0; end < 2; ++end) {
      const IPoint e = end == 0 ? c : d;
      const int64_t tn = int64_t(e.x - a.x) * rx + int64_t(e.y - a.y) * ry;
      if (tn > 0 && tn < length2) out[count++] = {double(tn) / double(length2), e};
    }
    return count;
  }
  int64_t tn = cross(qx, qy, sx, sy), un = cross(qx, qy, rx, ry);
  if (den < 0) {
    den = -den;
    tn = -tn;
    un = -un;
  }
  if (tn <= 0 || tn >= den || un < 0 || un > den) return 0;
  const double t = double(tn) / double(den), u = double(un) / double(den);
  const double x = i < j ? fused_mul_add(t, double(rx), double(a.x)) : fused_mul_add(u, double(sx), double(c.x));
  const double y = i < j ? fused_mul_add(t, double(ry), double(a.y)) : fused_mul_add(u, double(sy), double(c.y));
  out[0] = {t, {clipper_round(x), clipper_round(y)}};
  return 1;
}

// Whether the piece of edge i around parameter t bounds the positive-winding
// region: 0 if not, +1 if it does in the edge's direction, -1 in the other
// (the region on the left of the edge as it goes down the image, as Clipper
// orients outer polygons). Edges lying on the piece count once: the piece is
// reported by the lowest of them.
DBF_HOST_DEVICE int boundary_side(const IPoint* p, int64_t m, int64_t i, double t) {
  const IPoint a = p[i], b = next_point(p, m, i);
  const double x = fused_mul_add(t, double(b.x) - a.x, double(a.x));
  const double y = fused_mul_add(t, double(b.y) - a.y, double(a.y));
  if (a.y == b.y) {  // horizontal: compare just above with just below
    for (int64_t j = 0; j < i; ++j) {
      const IPoint c = p[j], d = next_point(p, m, j);
      if (c.y == a.y && d.y == a.y && (c.x < x) != (d.x < x)) return 0;
    }
    const double eps = 1.0 / 1024;
    const bool above = positive_winding(winding_left(p, m, x, y - eps));
    const bool below = positive_winding(winding_left(p, m, x, y + eps));
    if (above == below) return 0;
    return (b.x > a.x) == below ? 1 : -1;
  }
  // left of the point the edges on it do not count, right of it they do
  int64_t left = 0, on = b.y > a.y ? 1 : -1;
  for (int64_t j = 0; j < m; ++j) {
    const IPoint c = p[j], d = next_point(p, m, j);
    if (j == i || (c.y <= y) == (d.y <= y)) continue;
    const int64_t dir = d.y > c.y ? 1 : -1;
    if (collinear(a, b, c, d)) {
      if (j < i) return 0;
      on += dir;
      continue;
    }
    const double s = (y - c.y) / (double(d.y) - c.y);
    if (fused_mul_add(s, double(d.x) - c.x, double(c.x)) < x) left += dir;
  }
  const bool region_left = positive_winding(left), region_right = positive_winding(left + on);
  if (region_left == region_right) return 0;
  return (b.y > a.y) == region_left ? 1 : -1;
}

// The edges of the positive-winding part of the outline p[0..m): each edge is
// cut where other edges cross it and the pieces on the region's boundary are
// passed to emit(Segment), oriented as Clipper orients its result.
// `splits` holds up to 2m entries (scratch). Returns twice the signed area of
// what was emitted (0: the union is empty).
template <class Emit>
DBF_HOST_DEVICE int64_t clean_path(const IPoint* p, int64_t m, Split* splits, Emit&& emit) {
  int64_t twice_area = 0;
  const auto put = [&](IPoint a, IPoint b) {
    if (a == b) return;
    twice_area += cross(a.x, a.y, b.x, b.y);
    emit(Segment{a, b});
  };
  if (m < 3) return 0;
  if (convex_positive(p, m)) {
    for (int64_t i = 0; i < m; ++i) put(p[i], next_point(p, m, i));
    return twice_area;
  }
  for (int64_t i = 0; i < m; ++i) {
    const IPoint a = p[i], b = next_point(p, m, i);
    if (a == b) continue;
    const int32_t lo_x = a.x < b.x ? a.x : b.x, hi_x = a.x < b.x ? b.x : a.x;
    const int32_t lo_y = a.y < b.y ? a.y : b.y, hi_y = a.y < b.y ? b.y : a.y;
    int64_t count = 0;
    for (int64_t j = 0; j < m; ++j) {
      const IPoint c = p[j], d = next_point(p, m, j);
      if (j == i || c == d || (c.x < lo_x && d.x < lo_x) || (c.x > hi_x && d.x > hi_x) ||
          (c.y < lo_y && d.y < lo_y) || (c.y > hi_y && d.y > hi_y)) {
        continue;
      }
      Split found[2];
      const int n = edge_splits(a, b, i, c, d, j, found);
      for (int f = 0; f < n; ++f) {  // insertion by t
        int64_t k = count++;
        for (; k > 0 && splits[k - 1].t > found[f].t; --k) splits[k] = splits[k - 1];
        splits[k] = found[f];
      }
    }
    IPoint from = a;
    double t_from = 0.0;
    for (int64_t k = 0; k <= count; ++k) {
      const IPoint to = k < count ? splits[k].p : b;
      const double t_to = k < count ? splits[k].t : 1.0;
      if (t_to > t_from) {
        const int side = boundary_side(p, m, i, 0.5 * (t_from + t_to));
        if (side > 0) put(from, to);
        if (side < 0) put(to, from);
      }
      from = to;
      t_from = t_to;
    }
  }
  return twice_area;
}

// ---------------------------------------------------------------------------
// 4. cv2.fillPoly (8-connected lines, no shift) on an integer polygon.

// OpenCV's clipLine for the image (false: nothing inside). Like OpenCV, it
// may move the points even when it returns false.
DBF_HOST_DEVICE bool clip_line(int height, int width, int64_t& x1, int64_t& y1, int64_t& x2,
                               int64_t& y2) {
  const int64_t right = width - 1, bottom = height - 1;
  int c1 = (x1 < 0) + (x1 > right) * 2 + (y1 < 0) * 4 + (y1 > bottom) * 8;
  int c2 = (x2 < 0) + (x2 > right) * 2 + (y2 < 0) * 4 + (y2 > bottom) * 8;
  if ((c1 & c2) == 0 && (c1 | c2) != 0) {
    if (c1 & 12) {
      const int64_t a = c1 < 8 ? 0 : bottom;
      x1 += int64_t(double(a - y1) * double(x2 - x1) / double(y2 - y1));
      y1 = a;
      c1 = (x1 < 0) + (x1 > right) * 2;
    }
    if (c2 & 12) {
      const int64_t a = c2 < 8 ? 0 : bottom;
      x2 += int64_t(double(a - y2) * double(x2 - x1) / double(y2 - y1));
      y2 = a;
      c2 = (x2 < 0) + (x2 > right) * 2;
    }
    if ((c1 & c2) == 0 && (c1 | c2) != 0) {
      if (c1) {
        const int64_t a = c1 == 1 ? 0 : right;
        y1 += int64_t(double(a - x1) * double(y2 - y1) / double(x2 - x1));
        x1 = a;
        c1 = 0;
      }
      if (c2) {
        const int64_t a = c2 == 1 ? 0 : right;
        y2 += int64_t(double(a - x2) * double(y2 - y1) / double(x2 - x1));
        x2 = a;
        c2 = 0;
      }
    }
  }
  return (c1 | c2) == 0;
}

DBF_HOST_DEVICE bool outside(int height, int width, int64_t x, int64_t y) {
  return x < 0 || y < 0 || x >= width || y >= height;
}

// An 8-connected line as OpenCV's LineIterator walks it (left to right, ties
// toward the start): pixel k is (x + k, y + sy m_k) or, when steep,
// (x + m_k, y + sy k), m_k = ceil((2 minor k - major) / (2 major)).
struct LineRun {
  int32_t x, y, sy, major, minor;
  bool steep;
  int64_t count;  // 0: nothing inside the image
};

DBF_HOST_DEVICE LineRun make_line(Segment s, int height, int width) {
  int64_t x1 = s.a.x, y1 = s.a.y, x2 = s.b.x, y2 = s.b.y;
  LineRun run{0, 0, 1, 0, 0, false, 0};
  if ((outside(height, width, x1, y1) || outside(height, width, x2, y2)) &&
      !clip_line(height, width, x1, y1, x2, y2)) {
    return run;
  }
  if (x2 < x1) {
    int64_t t = x1;
    x1 = x2;
    x2 = t;
    t = y1;
    y1 = y2;
    y2 = t;
  }
  const int64_t dx = x2 - x1, dy = y2 > y1 ? y2 - y1 : y1 - y2;
  run.x = int32_t(x1);
  run.y = int32_t(y1);
  run.sy = y2 < y1 ? -1 : 1;
  run.steep = dy > dx;
  run.major = int32_t(run.steep ? dy : dx);
  run.minor = int32_t(run.steep ? dx : dy);
  run.count = run.major + 1;
  return run;
}

// ceil(a / b) for b > 0.
DBF_HOST_DEVICE int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b > 0 ? 1 : 0); }

DBF_HOST_DEVICE void line_pixel(const LineRun& r, int64_t k, int& x, int& y) {
  const int64_t m = r.major > 0 ? ceil_div(2 * int64_t(r.minor) * k - r.major, 2 * int64_t(r.major)) : 0;
  x = int(r.steep ? r.x + m : r.x + k);
  y = int(r.steep ? r.y + r.sy * k : r.y + r.sy * m);
}

// An edge of the span fill: rows y0 <= y < y1, x (16.16 fixed point) at row y
// is x + (y - y0) dx. Edges that leave the image are redrawn between the
// points where clipLine cuts them, as OpenCV does.
struct FillEdge {
  int32_t y0, y1;
  int64_t x, dx;
};

DBF_HOST_DEVICE bool make_fill_edge(Segment s, int height, int width, FillEdge& e) {
  if (s.a.y == s.b.y) return false;
  int64_t x1 = s.a.x, y1 = s.a.y, x2 = s.b.x, y2 = s.b.y;
  int64_t y1c = y1, y2c = y2;
  if (outside(height, width, x1, y1) || outside(height, width, x2, y2)) {
    clip_line(height, width, x1, y1, x2, y2);
    if (y1 != y2) {
      y1c = y1;
      y2c = y2;
    }
  }
  const int64_t fx1 = x1 * 65536, fx2 = x2 * 65536;
  e.dx = (fx2 - fx1) / (y2c - y1c);
  if (s.a.y < s.b.y) {
    e.y0 = s.a.y;
    e.y1 = s.b.y;
    e.x = fx1 + (s.a.y - y1c) * e.dx;
  } else {
    e.y0 = s.b.y;
    e.y1 = s.a.y;
    e.x = fx2 + (s.b.y - y2c) * e.dx;
  }
  return true;
}

DBF_HOST_DEVICE int64_t fill_x(const FillEdge& e, int y) { return e.x + int64_t(y - e.y0) * e.dx; }

// cv2.fillPoly fills, on each row, the pixels from ceil(x_2k) to floor(x_2k+1)
// of the row's sorted crossings. Given, for pixel column px (P = px << 16),
// the counts of crossings below P, equal to P and in all, whether some pair
// covers it.
DBF_HOST_DEVICE bool even_odd_covers(int64_t below, int64_t equal, int64_t total) {
  const int64_t first = below > 0 ? below - 1 : 0;                  // lowest pair start
  const int64_t last = below + equal - 1 < total - 2 ? below + equal - 1 : total - 2;
  return first <= last && ((first & 1) == 0 || first < last);
}

// ---------------------------------------------------------------------------
// 5. The threshold canvas: 1 - min(d / D, 1) from a squared distance d^2.
//
// The host (edge by edge over rows) and the CUDA kernels (pixel by pixel over
// edges) compute the same bits: the same float inputs (pixel and edge
// coordinates rounded to float first), every multiply-add an explicit fused
// one (compilers contract plain ones differently), and max over edges of a
// value that falls with the distance is the value of the min distance.
struct CanvasEdge {
  float ax, ay, ex, ey, e2inv;  // e2inv = 1 / |e|^2 (0 for a point)
};

DBF_HOST_DEVICE CanvasEdge canvas_edge(double ax, double ay, double bx, double by) {
  const double ex = bx - ax, ey = by - ay, e2 = fused_mul_add(ex, ex, ey * ey);
  return {float(ax), float(ay), float(ex), float(ey), float(e2 > 0.0 ? 1.0 / e2 : 0.0)};
}

// Squared distances from the pixel at u = pixel - a to the edge a -> a + e,
// written so that loops over pixels vectorise.
// exact: to the nearest point of the segment.
template <class T>
DBF_HOST_DEVICE T edge_distance2_exact(T ux, T uy, T ex, T ey, T e2inv) {
  T t = fused_mul_add(ux, ex, uy * ey) * e2inv;
  t = t < T(0) ? T(0) : t;
  t = t > T(1) ? T(1) : t;
  const T px = fused_mul_add(-t, ex, ux), py = fused_mul_add(-t, ey, uy);
  return fused_mul_add(px, px, py * py);
}

// The published formula: with u, w the vectors from the ends to the pixel,
// the nearer end where the angle at the pixel is acute (u.w > 0, the law of
// cosines), else the distance to the line, (u x e)^2 / |e|^2; 0 at an end.
// (The reference's square roots, cos = -u.w / sqrt(|u|^2 |w|^2), give the
// same; this form is stable and has no NaN.)
template <class T>
DBF_HOST_DEVICE T edge_distance2_reference(T ux, T uy, T ex, T ey, T e2inv) {
  const T wx = ux - ex, wy = uy - ey;
  const T d1 = fused_mul_add(ux, ux, uy * uy), d2 = fused_mul_add(wx, wx, wy * wy);
  const T c = fused_mul_add(ux, ey, -(uy * ex));
  const T line = c * c * e2inv;
  const T end = d1 < d2 ? d1 : d2;
  return fused_mul_add(ux, wx, uy * wy) > T(0) ? end : line;
}

DBF_HOST_DEVICE float canvas_value(float distance2, float inv_d) {
  const float v = fused_mul_add(-sqrtf(distance2), inv_d, 1.f);
  return v > 0.f ? v : 0.f;
}

// The threshold map's value from the canvas value v.
DBF_HOST_DEVICE float thresh_value(float v, float low, float span) {
  return fused_mul_add(v, span, low);
}

// ---------------------------------------------------------------------------
// 6. The CUDA kernels' steps per polygon (the native tests also run them on
// the host, in sequence, and compare with render_targets).

// An upper bound of offset_path's point count: at most 3 points per vertex, or
// an arc of at most steps / 2 + 1 points and its end.
DBF_HOST_DEVICE int64_t offset_capacity(int64_t m, double delta) {
  if (m < 3 || !(delta != 0.0)) return 0;
  const double pi = 3.141592653589793238, ad = fabs(delta);
  const double tolerance = 0.25 > ad * 0.25 ? ad * 0.25 : 0.25;
  double steps = pi / acos(1.0 - tolerance / ad);
  if (steps > ad * pi) steps = ad * pi;
  return m * (int64_t(steps * 0.5) + 4);
}

// Where a polygon's pieces live in the kernels' buffers, and what it is.
struct PolygonPlan {
  int32_t role;             // kPolygonIgnored too when its shrink turns out empty
  int64_t source;           // points of Clipper's polygon (stored at the polygon's point offset)
  int64_t outline_at;       // its outlines in the outline buffer: shrink, then dilation
  int64_t shrink_capacity;  // room for the shrink's outline (the dilation's follows)
  int64_t dilate_capacity;
  int64_t shrink_points, dilate_points;
  int64_t segment_at;       // its edges in the segment buffer: shrink, then dilation,
  int64_t shrink_edges;     // or, when ignored, the polygon's own (truncated) edges
  int64_t dilate_edges;
  Box shrink_box, dilate_box;  // within the image; dilate_box bounds the canvas
};

// Step 1 (with prepare_polygon): Clipper's source polygon into `source`
// (room for n points) and the room its outlines need. Returns that room.
DBF_HOST_DEVICE int64_t plan_polygon(const PolygonPrep& prep, const double* clipped, int64_t n,
                                     IPoint* source, PolygonPlan& plan) {
  plan = PolygonPlan{};
  plan.role = prep.role;
  if (prep.role != kPolygonUsed) return 0;
  plan.source = clipper_source(clipped, n, source);
  plan.shrink_capacity = offset_capacity(plan.source, -prep.d);
  plan.dilate_capacity = offset_capacity(plan.source, prep.d);
  if (plan.source < 3) plan.role = kPolygonIgnored;
  return plan.shrink_capacity + plan.dilate_capacity;
}

// Step 2: the outlines (at outline[plan.outline_at]) and the count of edges
// the polygon will draw; a used polygon whose shrink is empty (or whose
// outlines are too long to clean) becomes ignored. `splits`: 2 entries per
// outline point (at splits[2 plan.outline_at]).
DBF_HOST_DEVICE int64_t plan_edges(PolygonPlan& plan, const PolygonPrep& prep, int64_t n,
                                   const IPoint* source, IPoint* outline, Split* splits) {
  if (plan.role == kPolygonSkipped) return 0;
  if (plan.role == kPolygonUsed) {
    IPoint* shrink = outline + plan.outline_at;
    IPoint* dilate = shrink + plan.shrink_capacity;
    Split* scratch = splits + 2 * plan.outline_at;
    int64_t edges = 0;
    const auto count = [&](const Segment&) { ++edges; };
    plan.shrink_points = offset_path(source, plan.source, -prep.d, shrink);
    plan.dilate_points = offset_path(source, plan.source, prep.d, dilate);
    if (plan.shrink_points <= kMaxOutline && plan.dilate_points <= kMaxOutline &&
        clean_path(shrink, plan.shrink_points, scratch, count) != 0) {
      plan.shrink_edges = edges;
      edges = 0;
      if (clean_path(dilate, plan.dilate_points, scratch, count) != 0) {
        plan.dilate_edges = edges;
        return plan.shrink_edges + plan.dilate_edges;
      }
    }
    plan.role = kPolygonIgnored;
  }
  plan.shrink_edges = n;  // the polygon's own edges
  plan.dilate_edges = 0;
  return n;
}

DBF_HOST_DEVICE void grow_box(Box& box, IPoint p) {
  box.x0 = p.x < box.x0 ? p.x : box.x0;
  box.y0 = p.y < box.y0 ? p.y : box.y0;
  box.x1 = p.x > box.x1 ? p.x : box.x1;
  box.y1 = p.y > box.y1 ? p.y : box.y1;
}

DBF_HOST_DEVICE Box clip_box(Box box, int height, int width) {
  return {box.x0 > 0 ? box.x0 : 0, box.y0 > 0 ? box.y0 : 0,
          box.x1 < width - 1 ? box.x1 : width - 1, box.y1 < height - 1 ? box.y1 : height - 1};
}

// Step 3: the edges (at edges[plan.segment_at]) and their boxes.
DBF_HOST_DEVICE void plan_write_edges(PolygonPlan& plan, const double* clipped, int64_t n,
                                      const IPoint* outline, Split* splits, Segment* edges,
                                      int height, int width) {
  Segment* out = edges + plan.segment_at;
  const Box empty{2147483647, 2147483647, -2147483647, -2147483647};
  plan.shrink_box = plan.dilate_box = empty;
  int64_t k = 0;
  const auto put = [&](const Segment& e) {
    Box& box = k < plan.shrink_edges ? plan.shrink_box : plan.dilate_box;
    grow_box(box, e.a);
    grow_box(box, e.b);
    out[k++] = e;
  };
  if (plan.role == kPolygonUsed) {
    const IPoint* shrink = outline + plan.outline_at;
    Split* scratch = splits + 2 * plan.outline_at;
    clean_path(shrink, plan.shrink_points, scratch, put);
    clean_path(shrink + plan.shrink_capacity, plan.dilate_points, scratch, put);
  } else if (plan.role == kPolygonIgnored) {
    for (int64_t i = 0; i < n; ++i) put(truncated_edge(clipped, n, i));
  }
  plan.shrink_box = clip_box(plan.shrink_box, height, width);
  plan.dilate_box = clip_box(plan.dilate_box, height, width);
}

// The canvas value of pixel (x, y) for a polygon (clipped points xy[0..2n)).
DBF_HOST_DEVICE float pixel_canvas(int x, int y, const double* xy, int64_t n, double d, bool exact) {
  float best = INFINITY;
  for (int64_t i = 0, j = n - 1; i < n; j = i++) {
    const CanvasEdge e = canvas_edge(xy[2 * j], xy[2 * j + 1], xy[2 * i], xy[2 * i + 1]);
    const float ux = float(x) - e.ax, uy = float(y) - e.ay;
    const float d2 = exact ? edge_distance2_exact(ux, uy, e.ex, e.ey, e.e2inv)
                           : edge_distance2_reference(ux, uy, e.ex, e.ey, e.e2inv);
    best = d2 < best ? d2 : best;
  }
  return canvas_value(best, float(1.0 / d));
}

// Renders one image's four maps (each height x width floats) on the host.
// Polygons are given clipped (prepare_polygon) as xy[2 offsets[p] .. 2 offsets[p+1]).
void render_targets(const double* xy, const int64_t* offsets, const PolygonPrep* preps,
                    int64_t polygons, int height, int width, const TargetParams& params,
                    float* shrink_map, float* shrink_mask, float* thresh_map, float* thresh_mask);

}  // namespace dbf
