// fillPoly's pixel rule for one quadrilateral, row by row (host and device):
// the pixels of a row come out as a few intervals computed in closed form, so
// a CUDA block can score a box without drawing a mask. The rule is the one of
// raster.cpp (OpenCV's clipLine, 8-connected Bresenham outline, 16.16 scanline
// spans with OpenCV >= 4.8 edge clipping); tests compare the two pixel for pixel.
#pragma once

#include <cstdint>

#include "common.h"

namespace dbf {

constexpr int kRasterShift = 16;  // fixed-point fraction bits of the scanline edges

// Cohen-Sutherland clipping of a segment to [0, w-1] x [0, h-1], as OpenCV's
// clipLine (quotients in double, truncated). Moves the ends even when it
// returns false (nothing left), as OpenCV does; callers rely on that.
DBF_HOST_DEVICE bool clip_line(int64_t w, int64_t h, int64_t& x1, int64_t& y1, int64_t& x2, int64_t& y2) {
  const int64_t right = w - 1, bottom = h - 1;
  if (w <= 0 || h <= 0) return false;
  // a * b / c in double, truncated: the product is rounded on its own (no fma).
  auto step = [](int64_t a, int64_t b, int64_t c) { return int64_t(mul_rn(double(a), double(b)) / double(c)); };
  int c1 = (x1 < 0) + (x1 > right) * 2 + (y1 < 0) * 4 + (y1 > bottom) * 8;
  int c2 = (x2 < 0) + (x2 > right) * 2 + (y2 < 0) * 4 + (y2 > bottom) * 8;
  if ((c1 & c2) == 0 && (c1 | c2) != 0) {
    if (c1 & 12) {
      const int64_t a = c1 < 8 ? 0 : bottom;
      x1 += step(a - y1, x2 - x1, y2 - y1);
      y1 = a;
      c1 = (x1 < 0) + (x1 > right) * 2;
    }
    if (c2 & 12) {
      const int64_t a = c2 < 8 ? 0 : bottom;
      x2 += step(a - y2, x2 - x1, y2 - y1);
      y2 = a;
      c2 = (x2 < 0) + (x2 > right) * 2;
    }
    if ((c1 & c2) == 0 && (c1 | c2) != 0) {
      if (c1) {
        const int64_t a = c1 == 1 ? 0 : right;
        y1 += step(a - x1, y2 - y1, x2 - x1);
        x1 = a;
        c1 = 0;
      }
      if (c2) {
        const int64_t a = c2 == 1 ? 0 : right;
        y2 += step(a - x2, y2 - y1, x2 - x1);
        x2 = a;
        c2 = 0;
      }
    }
  }
  return (c1 | c2) == 0;
}

DBF_HOST_DEVICE bool segment_leaves(int64_t w, int64_t h, int64_t x1, int64_t y1, int64_t x2, int64_t y2) {
  return x1 < 0 || x1 >= w || x2 < 0 || x2 >= w || y1 < 0 || y1 >= h || y2 < 0 || y2 >= h;
}

// floor(a / b) for b > 0.
DBF_HOST_DEVICE int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

struct PixelRun {
  int64_t begin, end;  // columns [begin, end]; empty when begin > end
};

// One outline segment as OpenCV's LineIterator draws it after clipping: from
// (x1, y1) with x1 <= x2; `drawn` is false when nothing of it is in the window.
// (The raster structs have no member initialisers, so that a CUDA block can
// hold one in shared memory; set() fills every member.)
struct OutlineLine {
  int64_t x1, y1, dx, dy, sy;
  bool drawn;

  DBF_HOST_DEVICE void set(int64_t w, int64_t h, int64_t ax, int64_t ay, int64_t bx, int64_t by) {
    drawn = !(segment_leaves(w, h, ax, ay, bx, by) && !clip_line(w, h, ax, ay, bx, by));
    if (bx < ax) {
      const int64_t tx = ax, ty = ay;
      ax = bx, ay = by, bx = tx, by = ty;
    }
    x1 = ax, y1 = ay, dx = bx - ax;
    sy = by < ay ? -1 : 1;
    dy = (by - ay) * sy;
  }

  // The pixels of row y. Step i of the line moves along the major axis and
  // takes k_i minor steps in all, where Bresenham's error term gives
  // k_i = ceil((2 minor i - major) / (2 major)) (the minor offset rounded
  // half down); the pixels of a row are the steps with one k.
  DBF_HOST_DEVICE PixelRun row(int64_t y) const {
    PixelRun run{1, 0};
    const int64_t r = (y - y1) * sy;
    if (!drawn || r < 0 || r > dy) return run;
    if (dy > dx) {  // steep: one pixel per row, i = r
      const int64_t x = x1 - floor_div(dy - 2 * dx * r, 2 * dy);
      return {x, x};
    }
    if (dy == 0) return {x1, x1 + dx};  // r == 0 here
    int64_t lo = floor_div(2 * dx * r - dx, 2 * dy) + 1, hi = floor_div(2 * dx * r + dx, 2 * dy);
    lo = lo < 0 ? 0 : lo;
    hi = hi > dx ? dx : hi;
    return {x1 + lo, x1 + hi};
  }
};


// The scanline edge of the non-horizontal segment (ax, ay) -> (bx, by) in a
// w x h window: rows [y0, y1), the 16.16 x at y0 and its step per row. It
// follows the part of the segment inside the window, extended back to the
// original rows (OpenCV >= 4.8 clips, then extends).
DBF_HOST_DEVICE void scanline_edge(int64_t w, int64_t h, int64_t ax, int64_t ay, int64_t bx, int64_t by,
                                   int64_t& y0, int64_t& y1, int64_t& x, int64_t& dx) {
  int64_t cax = ax, cay = ay, cbx = bx, cby = by;
  if (segment_leaves(w, h, ax, ay, bx, by)) {
    int64_t tax = ax, tay = ay, tbx = bx, tby = by;
    clip_line(w, h, tax, tay, tbx, tby);
    if (tay != tby) cay = tay, cby = tby;
    cax = tax, cbx = tbx;
  }
  const int64_t one = int64_t(1) << kRasterShift;
  dx = (cbx * one - cax * one) / (cby - cay);
  if (ay < by) y0 = ay, y1 = by, x = cax * one + (ay - cay) * dx;
  else y0 = by, y1 = ay, x = cbx * one + (by - cby) * dx;
}

// fillPoly of the quadrilateral `corners` (4 integer points, interleaved, in a
// w x h window) as per-row pixel intervals.
struct QuadRaster {
  int64_t w, h;
  OutlineLine lines[4];
  int64_t edge_y0[4], edge_y1[4], edge_x[4], edge_dx[4];  // rows [y0, y1), 16.16 x at y0 and per row
  int edges;
  int64_t fill_y0, fill_y1;  // rows of the scanline pass

  DBF_HOST_DEVICE void set(const int64_t* xy, int64_t width, int64_t height) {
    w = width, h = height;
    edges = 0;
    for (int i = 0; i < 4; ++i) {
      const int p = i == 0 ? 3 : i - 1;
      const int64_t ax = xy[2 * p], ay = xy[2 * p + 1], bx = xy[2 * i], by = xy[2 * i + 1];
      lines[i].set(w, h, ax, ay, bx, by);
      if (ay == by) continue;
      scanline_edge(w, h, ax, ay, bx, by, edge_y0[edges], edge_y1[edges], edge_x[edges], edge_dx[edges]);
      ++edges;
    }
    fill_y0 = fill_y1 = 0;
    if (edges < 2) return;
    int64_t lo = edge_y0[0], hi = edge_y1[0];
    for (int e = 1; e < edges; ++e) {
      lo = edge_y0[e] < lo ? edge_y0[e] : lo;
      hi = edge_y1[e] > hi ? edge_y1[e] : hi;
    }
    fill_y0 = lo < 0 ? 0 : lo;
    fill_y1 = hi > h ? h : hi;
  }

  // The painted pixels of row y as disjoint intervals in increasing order
  // (at most 6: four outline runs and two spans); returns their count.
  DBF_HOST_DEVICE int row_runs(int64_t y, PixelRun* runs) const {
    PixelRun all[6];
    int n = 0;
    for (int i = 0; i < 4; ++i) {
      const PixelRun r = lines[i].row(y);
      if (r.begin <= r.end) all[n++] = r;
    }
    if (y >= fill_y0 && y < fill_y1) {
      int64_t xs[4];
      int active = 0;
      for (int e = 0; e < edges; ++e) {
        if (edge_y0[e] <= y && y < edge_y1[e]) {
          // Insertion into the sorted crossings.
          const int64_t v = edge_x[e] + (y - edge_y0[e]) * edge_dx[e];
          int k = active++;
          while (k > 0 && xs[k - 1] > v) xs[k] = xs[k - 1], --k;
          xs[k] = v;
        }
      }
      const int64_t one = int64_t(1) << kRasterShift;
      for (int k = 0; k + 1 < active; k += 2) {
        int64_t a = (xs[k] + one - 1) >> kRasterShift, b = xs[k + 1] >> kRasterShift;
        if (a >= w || b < 0) continue;
        a = a < 0 ? 0 : a;
        b = b > w - 1 ? w - 1 : b;
        if (a <= b) all[n++] = {a, b};
      }
    }
    // Sort by start and merge overlapping or touching intervals.
    for (int i = 1; i < n; ++i) {
      const PixelRun v = all[i];
      int k = i;
      while (k > 0 && all[k - 1].begin > v.begin) all[k] = all[k - 1], --k;
      all[k] = v;
    }
    int m = 0;
    for (int i = 0; i < n; ++i) {
      if (m > 0 && all[i].begin <= runs[m - 1].end + 1) {
        if (all[i].end > runs[m - 1].end) runs[m - 1].end = all[i].end;
      } else {
        runs[m++] = all[i];
      }
    }
    return m;
  }
};

// The scoring window of box_score_fast for a float quad (TL, TR, BR, BL) in a
// height x width map: the quad's bounding box (floor / ceil) clipped to the
// map, and the corners truncated toward zero, relative to the window.
struct ScoreWindow {
  int64_t x0, y0;
  QuadRaster raster;
};

DBF_HOST_DEVICE int64_t clamp_index(int64_t v, int64_t hi) { return v < 0 ? 0 : (v > hi ? hi : v); }

DBF_HOST_DEVICE void score_window(const float* quad, int height, int width, ScoreWindow& out) {
  float lo_x = quad[0], hi_x = quad[0], lo_y = quad[1], hi_y = quad[1];
  for (int i = 1; i < 4; ++i) {
    lo_x = quad[2 * i] < lo_x ? quad[2 * i] : lo_x;
    hi_x = quad[2 * i] > hi_x ? quad[2 * i] : hi_x;
    lo_y = quad[2 * i + 1] < lo_y ? quad[2 * i + 1] : lo_y;
    hi_y = quad[2 * i + 1] > hi_y ? quad[2 * i + 1] : hi_y;
  }
  const int64_t x0 = clamp_index(int64_t(floor(lo_x)), width - 1), x1 = clamp_index(int64_t(ceil(hi_x)), width - 1);
  const int64_t y0 = clamp_index(int64_t(floor(lo_y)), height - 1), y1 = clamp_index(int64_t(ceil(hi_y)), height - 1);
  int64_t corners[8];
  for (int i = 0; i < 4; ++i) {
    corners[2 * i] = int64_t(int32_t(quad[2 * i])) - x0;  // truncation toward zero, as astype(int32)
    corners[2 * i + 1] = int64_t(int32_t(quad[2 * i + 1])) - y0;
  }
  out.x0 = x0, out.y0 = y0;
  out.raster.set(corners, x1 - x0 + 1, y1 - y0 + 1);
}

}  // namespace dbf
