// Host renderer of the label maps: per polygon, the offset polygons of
// pyclipper cleaned as Clipper cleans them and filled as cv2.fillPoly fills
// them (lines, then spans row by row from an active edge list), and the
// threshold canvas edge by edge over the pixels within D of the edge.
#include "targets.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "clones.h"

namespace dbf {
namespace {

struct Scratch {
  std::vector<IPoint> source, outline;
  std::vector<Split> splits;
  std::vector<Segment> shrunk, dilated, edges;
  std::vector<FillEdge> fill;
  std::vector<int32_t> active;
  std::vector<int64_t> xs;
};

// The cleaned offset polygon of src by delta into `out`. Returns twice its
// area (0: empty, or its outline too long to clean).
DBF_FORCE_INLINE int64_t offset_polygon_impl(const std::vector<IPoint>& src, int64_t m, double delta,
                                             Scratch& s, std::vector<Segment>& out) {
  out.clear();
  s.outline.resize(offset_capacity(m, delta));
  const int64_t count = offset_path(src.data(), m, delta, s.outline.data());
  if (count > kMaxOutline) return 0;
  s.splits.resize(2 * count);
  return clean_path(s.outline.data(), count, s.splits.data(),
                    [&](const Segment& e) { out.push_back(e); });
}

DBF_CPU_DISPATCH(int64_t, offset_polygon,
                 (const std::vector<IPoint>& src, int64_t m, double delta, Scratch& s,
                  std::vector<Segment>& out),
                 offset_polygon_impl, (src, m, delta, s, out))

void draw_line(const LineRun& r, float value, float* plane, int width) {
  // Bresenham's error term instead of line_pixel's division: q = 2 major m -
  // (2 minor k - major) stays in [0, 2 major).
  int64_t q = r.major, m = 0;
  if (r.steep) {  // a pixel per row
    for (int64_t k = 0; k < r.count; ++k) {
      plane[(r.y + r.sy * k) * width + r.x + m] = value;
      q -= 2 * int64_t(r.minor);
      if (q < 0) {
        ++m;
        q += 2 * int64_t(r.major);
      }
    }
    return;
  }
  for (int64_t k = 0, start = 0; k < r.count; ++k) {  // runs of pixels along a row
    q -= 2 * int64_t(r.minor);
    const bool step = q < 0;
    if (step || k + 1 == r.count) {
      float* row = plane + (r.y + r.sy * m) * width + r.x;
      std::fill(row + start, row + k + 1, value);
      start = k + 1;
    }
    if (step) {
      ++m;
      q += 2 * int64_t(r.major);
    }
  }
}

// cv2.fillPoly(plane, polygon, value) for the polygon given by its edges.
DBF_FORCE_INLINE void fill_poly_impl(const Segment* edges, size_t count, int height, int width,
                                     float value, float* plane, Scratch& s) {
  s.fill.clear();
  for (size_t i = 0; i < count; ++i) {
    draw_line(make_line(edges[i], height, width), value, plane, width);
    FillEdge e;
    if (make_fill_edge(edges[i], height, width, e)) s.fill.push_back(e);
  }
  if (s.fill.size() < 2) return;
  std::sort(s.fill.begin(), s.fill.end(),
            [](const FillEdge& a, const FillEdge& b) { return a.y0 < b.y0; });
  int32_t y_end = 0;
  for (const FillEdge& e : s.fill) y_end = std::max(y_end, e.y1);
  y_end = std::min(y_end, height);
  s.active.clear();
  size_t next = 0;
  for (int y = std::max(s.fill[0].y0, 0); y < y_end; ++y) {
    while (next < s.fill.size() && s.fill[next].y0 <= y) s.active.push_back(int32_t(next++));
    s.xs.clear();
    size_t kept = 0;
    for (const int32_t a : s.active) {
      if (s.fill[a].y1 <= y) continue;
      s.active[kept++] = a;
      const int64_t x = fill_x(s.fill[a], y);
      size_t k = s.xs.size();  // insertion: few edges cross a row
      s.xs.push_back(x);
      for (; k > 0 && s.xs[k - 1] > x; --k) s.xs[k] = s.xs[k - 1];
      s.xs[k] = x;
    }
    s.active.resize(kept);
    float* row = plane + int64_t(y) * width;
    for (size_t k = 0; k + 1 < s.xs.size(); k += 2) {
      const int64_t x1 = std::max<int64_t>((s.xs[k] + 65535) >> 16, 0);
      const int64_t x2 = std::min<int64_t>(s.xs[k + 1] >> 16, width - 1);
      if (x1 <= x2) std::fill(row + x1, row + x2 + 1, value);
    }
  }
}

DBF_CPU_DISPATCH(void, fill_poly,
                 (const Segment* edges, size_t count, int height, int width, float value, float* plane,
                  Scratch& s),
                 fill_poly_impl, (edges, count, height, width, value, plane, s))

// Rows of the canvas are widened to whole vectors of this many floats (the
// compilers' vector epilogues are 8 wide; scalar tails cost more than pixels).
constexpr int kVector = 8;

// One row of one edge into the threshold map: out[k] = best(out[k], value of
// pixel (x0 + k, y)).
template <bool kExact, bool kMax>
DBF_FORCE_INLINE void canvas_row(float* DBF_RESTRICT out, int count, int x0, int y,
                                 const CanvasEdge& e, float inv_d, float low, float span) {
  const float uy = float(y) - e.ay;
  for (int k = 0; k < count; ++k) {
    const float ux = float(x0 + k) - e.ax;
    const float d2 = kExact ? edge_distance2_exact(ux, uy, e.ex, e.ey, e.e2inv)
                            : edge_distance2_reference(ux, uy, e.ex, e.ey, e.e2inv);
    const float t = thresh_value(canvas_value(d2, inv_d), low, span);
    out[k] = kMax ? (t > out[k] ? t : out[k]) : (t < out[k] ? t : out[k]);
  }
}

// The polygon's part of the threshold map within `box`: per edge, per row,
// the pixels whose distance to the edge can be below D (beyond, the value is
// 0 and changes nothing).
template <bool kExact, bool kMax>
DBF_FORCE_INLINE void draw_canvas_impl(const double* xy, int64_t n, double d, Box box, float low,
                                       float span, float* thresh, int width) {
  const float inv_d = float(1.0 / d);
  for (int64_t i = 0, j = n - 1; i < n; j = i++) {
    const double ax = xy[2 * j], ay = xy[2 * j + 1], bx = xy[2 * i], by = xy[2 * i + 1];
    const double ex = bx - ax, ey = by - ay;
    const CanvasEdge edge = canvas_edge(ax, ay, bx, by);
    // (a pixel of margin: where float rounding gives a pixel just beyond D a
    // value, the kernels, pixel by pixel, give it one too)
    const int y0 = std::max(box.y0, int(std::ceil(std::min(ay, by) - d)) - 1);
    const int y1 = std::min(box.y1, int(std::floor(std::max(ay, by) + d)) + 1);
    const double inv_ey = ey != 0.0 ? 1.0 / ey : 0.0;
    for (int y = y0; y <= y1; ++y) {
      // the edge's points within D of the row in y, widened by D in x
      double t0 = 0.0, t1 = 1.0;
      if (ey != 0.0) {
        const double ta = (y - d - 1 - ay) * inv_ey, tb = (y + d + 1 - ay) * inv_ey;
        t0 = std::max(std::min(ta, tb), 0.0);
        t1 = std::min(std::max(ta, tb), 1.0);
      }
      const double xa = ax + t0 * ex, xb = ax + t1 * ex;
      int x0 = std::max(box.x0, int(std::ceil(std::min(xa, xb) - d)) - 1);
      int x1 = std::min(box.x1, int(std::floor(std::max(xa, xb) + d)) + 1);
      if (t0 > t1 || x0 > x1) continue;
      // whole vectors where the box allows: pixels beyond D change nothing
      int extra = (kVector - (x1 - x0 + 1) % kVector) % kVector;
      const int right = std::min(extra, box.x1 - x1);
      x1 += right;
      extra -= right;
      x0 -= std::min(extra, x0 - box.x0);
      canvas_row<kExact, kMax>(thresh + int64_t(y) * width + x0, x1 - x0 + 1, x0, y, edge, inv_d,
                               low, span);
    }
  }
}

DBF_FORCE_INLINE void draw_canvas_any(const double* xy, int64_t n, double d, Box box, bool exact,
                                      float low, float span, float* thresh, int width) {
  // the map holds low + span v: with span < 0 the largest v is the smallest value
  if (exact && span >= 0) draw_canvas_impl<true, true>(xy, n, d, box, low, span, thresh, width);
  if (exact && span < 0) draw_canvas_impl<true, false>(xy, n, d, box, low, span, thresh, width);
  if (!exact && span >= 0) draw_canvas_impl<false, true>(xy, n, d, box, low, span, thresh, width);
  if (!exact && span < 0) draw_canvas_impl<false, false>(xy, n, d, box, low, span, thresh, width);
}

DBF_CPU_DISPATCH(void, draw_canvas,
                 (const double* xy, int64_t n, double d, Box box, bool exact, float low, float span,
                  float* thresh, int width),
                 draw_canvas_any, (xy, n, d, box, exact, low, span, thresh, width))

DBF_FORCE_INLINE void fill_value_impl(float* values, int64_t n, float value) {
  if (value == 0.f) {
    std::memset(values, 0, n * sizeof(float));  // libc's fastest stores
    return;
  }
  for (int64_t i = 0; i < n; ++i) values[i] = value;
}

DBF_CPU_DISPATCH(void, fill_value, (float* values, int64_t n, float value), fill_value_impl,
                 (values, n, value))

// The bounding box of the polygon's vertices within the image.
Box segment_box(const std::vector<Segment>& edges, int height, int width) {
  Box box{width, height, -1, -1};
  for (const Segment& e : edges) {
    grow_box(box, e.a);
    grow_box(box, e.b);
  }
  return clip_box(box, height, width);
}

}  // namespace

void render_targets(const double* xy, const int64_t* offsets, const PolygonPrep* preps,
                    int64_t polygons, int height, int width, const TargetParams& params,
                    float* shrink_map, float* shrink_mask, float* thresh_map, float* thresh_mask) {
  const int64_t pixels = int64_t(height) * width;
  const float low = float(params.thresh_min), span = float(params.thresh_max - params.thresh_min);
  fill_value(shrink_map, pixels, 0.f);
  fill_value(shrink_mask, pixels, 1.f);
  fill_value(thresh_map, pixels, thresh_value(0.f, low, span));
  fill_value(thresh_mask, pixels, 0.f);
  thread_local Scratch s;  // kept between calls: no allocations per image
  for (int64_t p = 0; p < polygons; ++p) {
    const PolygonPrep& prep = preps[p];
    const double* points = xy + 2 * offsets[p];
    const int64_t n = offsets[p + 1] - offsets[p];
    if (prep.role == kPolygonSkipped) continue;
    if (prep.role == kPolygonUsed) {
      s.source.resize(n);
      const int64_t m = clipper_source(points, n, s.source.data());
      if (m >= 3 && offset_polygon(s.source, m, -prep.d, s, s.shrunk) != 0 &&
          offset_polygon(s.source, m, prep.d, s, s.dilated) != 0) {
        fill_poly(s.shrunk.data(), s.shrunk.size(), height, width, 1.f, shrink_map, s);
        fill_poly(s.dilated.data(), s.dilated.size(), height, width, 1.f, thresh_mask, s);
        draw_canvas(points, n, prep.d, segment_box(s.dilated, height, width), params.exact, low,
                    span, thresh_map, width);
        continue;
      }
    }
    // ignored: the polygon as given (truncated) filled with 0 in shrink_mask
    s.edges.resize(n);
    for (int64_t i = 0; i < n; ++i) s.edges[i] = truncated_edge(points, n, i);
    fill_poly(s.edges.data(), s.edges.size(), height, width, 0.f, shrink_mask, s);
  }
}

}  // namespace dbf
