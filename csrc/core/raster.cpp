#include "raster.h"

#include "clones.h"

#include <algorithm>
#include <cstring>

#include "raster_rows.h"

namespace dbf {
namespace {

constexpr int kShift = kRasterShift;

// 8-connected Bresenham line of the clipped segment, drawn from its left end
// (OpenCV's LineIterator).
// Where painted pixels go: a byte mask, or per-row ranges for convex polygons
// (whose painted pixels form one run per row).
struct MaskSink {
  uint8_t* mask;
  int w;
  void dot(int64_t x, int64_t y) { mask[y * w + x] = 1; }
  void span(int64_t y, int64_t a, int64_t b) { std::fill(mask + y * w + a, mask + y * w + b + 1, uint8_t(1)); }
};

struct RangeSink {
  int32_t* lo;
  int32_t* hi;
  void dot(int64_t x, int64_t y) { span(y, x, x); }
  void span(int64_t y, int64_t a, int64_t b) {
    lo[y] = std::min<int32_t>(lo[y], int32_t(a));
    hi[y] = std::max<int32_t>(hi[y], int32_t(b));
  }
};

template <class Sink>
void draw_line(Sink& sink, int w, int h, int64_t x1, int64_t y1, int64_t x2, int64_t y2) {
  if (segment_leaves(w, h, x1, y1, x2, y2) && !clip_line(w, h, x1, y1, x2, y2)) return;
  if (x2 < x1) {
    std::swap(x1, x2);
    std::swap(y1, y2);
  }
  const int64_t dx = x2 - x1, sy = y2 < y1 ? -1 : 1, dy = (y2 - y1) * sy;
  if (dy > dx) {  // steep: one pixel per row, x steps right when err < 0
    int64_t err = dy - 2 * dx, x = x1, y = y1;
    for (int64_t i = 0; i <= dy; ++i, y += sy) {
      sink.dot(x, y);
      if (err < 0) err += 2 * dy, ++x;
      err -= 2 * dx;
    }
    return;
  }
  // Shallow: a run of pixels per row. Bresenham's step i (x = x1 + i) draws
  // on row k (y = y1 + sy * k) and moves down a row after it when its error
  // dx - 2 dy (i + 1) + 2 dx k is negative, so row k ends at step
  // t_k = floor(dx (2k + 1) / (2 dy)) (the last row, k = dy, at dx): one span
  // per row in closed form instead of a dot per pixel.
  int64_t first = 0;
  for (int64_t k = 0; k <= dy; ++k) {
    const int64_t last = k == dy ? dx : dx * (2 * k + 1) / (2 * dy);
    sink.span(y1 + sy * k, x1 + first, x1 + last);
    first = last + 1;
  }
}

// fillPoly of one closed integer polygon into a w x h mask.
template <class Sink>
void fill_polygon(Sink& sink, int w, int h, const int64_t* xy, int n, std::vector<RasterEdge>& edges,
                  std::vector<int64_t>& xs) {
  edges.clear();
  for (int i = 0; i < n; ++i) {
    const int p = i == 0 ? n - 1 : i - 1;
    const int64_t ax = xy[2 * p], ay = xy[2 * p + 1], bx = xy[2 * i], by = xy[2 * i + 1];
    draw_line(sink, w, h, ax, ay, bx, by);
    if (ay == by) continue;
    RasterEdge e;
    scanline_edge(w, h, ax, ay, bx, by, e.y0, e.y1, e.x, e.dx);
    edges.push_back(e);
  }
  if (edges.size() < 2) return;
  int64_t y_min = edges[0].y0, y_max = edges[0].y1;
  for (const RasterEdge& e : edges) y_min = std::min(y_min, e.y0), y_max = std::max(y_max, e.y1);
  y_max = std::min<int64_t>(y_max, h);
  for (int64_t y = std::max<int64_t>(y_min, 0); y < y_max; ++y) {
    xs.clear();
    for (const RasterEdge& e : edges) {
      if (e.y0 <= y && y < e.y1) xs.push_back(e.x + (y - e.y0) * e.dx);
    }
    std::sort(xs.begin(), xs.end());
    for (size_t k = 0; k + 1 < xs.size(); k += 2) {
      int64_t a = (xs[k] + (int64_t(1) << kShift) - 1) >> kShift, b = xs[k + 1] >> kShift;
      if (a >= w || b < 0) continue;
      a = std::max<int64_t>(a, 0);
      b = std::min<int64_t>(b, w - 1);
      if (a <= b) sink.span(y, a, b);
    }
  }
}

}  // namespace

bool is_convex(const int64_t* xy, int n) {
  int sign = 0;
  for (int i = 0; i < n; ++i) {
    const int64_t* a = xy + 2 * i;
    const int64_t* b = xy + 2 * ((i + 1) % n);
    const int64_t* c = xy + 2 * ((i + 2) % n);
    const int64_t turn = (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]);
    const int s = (turn > 0) - (turn < 0);
    if (s != 0 && sign != 0 && s != sign) return false;
    if (s != 0) sign = s;
  }
  return true;
}

void fill_polygon_mask(uint8_t* mask, int height, int width, const int64_t* xy, int n) {
  std::vector<RasterEdge> edges;
  std::vector<int64_t> crossings;
  MaskSink sink{mask, width};
  if (n > 0 && height > 0 && width > 0) fill_polygon(sink, width, height, xy, n, edges, crossings);
}

namespace {

// The sum of the pixels of all runs, in the same order (so with the same
// result) in every variant: sixty-four at a time, four to a float lane summed
// pairwise (relative error at most 2^-23 of the four: far below the scores'
// tolerance), then into sixteen double lanes; the rest sixteen at a time
// straight into the double lanes, the last few zero-padded to sixteen. Half
// the double conversions of summing every float in double, and one dispatch
// and one reduction per polygon, not per row. Vector extensions because
// compilers do not turn scalar lanes into vectors by themselves.
typedef float Float4 __attribute__((vector_size(16)));
typedef float Float16 __attribute__((vector_size(64)));
typedef double Double4 __attribute__((vector_size(32)));

DBF_FORCE_INLINE double sum_runs_impl(const float* prob, const RasterRun* runs, size_t count) {
  Double4 acc[4] = {};
  auto add16 = [&](const float* p) {
    for (int k = 0; k < 4; ++k) {
      Float4 v;
      std::memcpy(&v, p + 4 * k, sizeof v);
      acc[k] += __builtin_convertvector(v, Double4);
    }
  };
  for (size_t r = 0; r < count; ++r) {
    const float* p = prob + runs[r].start;
    const int n = runs[r].length;
    int i = 0;
    for (; i + 64 <= n; i += 64) {
      Float16 v[4];
      std::memcpy(v, p + i, sizeof v);
      const Float16 four = (v[0] + v[1]) + (v[2] + v[3]);
      add16(reinterpret_cast<const float*>(&four));
    }
    for (; i + 16 <= n; i += 16) add16(p + i);
    if (i < n) {
      float tail[16] = {};
      std::memcpy(tail, p + i, sizeof(float) * size_t(n - i));
      add16(tail);
    }
  }
  double lane[16];
  std::memcpy(lane, acc, sizeof lane);
  for (int width = 8; width > 0; width /= 2) {  // pairwise
    for (int k = 0; k < width; ++k) lane[k] += lane[k + width];
  }
  return lane[0];
}

DBF_CPU_DISPATCH(double, sum_runs, (const float* prob, const RasterRun* runs, size_t count), sum_runs_impl,
                 (prob, runs, count))

}  // namespace

double polygon_mean(const float* prob, int height, int width, const int32_t* xy, int n, int x0,
                    int y0, int x1, int y1, RasterScratch& scratch) {
  x0 = std::clamp(x0, 0, width - 1), x1 = std::clamp(x1, 0, width - 1);
  y0 = std::clamp(y0, 0, height - 1), y1 = std::clamp(y1, 0, height - 1);
  if (x1 < x0 || y1 < y0 || n <= 0) return 0.0;
  const int w = x1 - x0 + 1, h = y1 - y0 + 1;
  std::vector<int64_t>& local = scratch.local;
  std::vector<int32_t>&lo = scratch.lo, &hi = scratch.hi;
  local.resize(2 * size_t(n));
  for (int i = 0; i < n; ++i) local[2 * i] = int64_t(xy[2 * i]) - x0, local[2 * i + 1] = int64_t(xy[2 * i + 1]) - y0;
  // The painted pixels of each row as runs [lo, hi]: one run per row for a
  // convex polygon, else read from a mask.
  lo.assign(size_t(h), w);
  hi.assign(size_t(h), -1);
  const bool convex = is_convex(local.data(), n);
  if (convex) {
    RangeSink sink{lo.data(), hi.data()};
    fill_polygon(sink, w, h, local.data(), n, scratch.edges, scratch.crossings);
  } else {
    scratch.mask.assign(size_t(w) * h, 0);
    MaskSink sink{scratch.mask.data(), w};
    fill_polygon(sink, w, h, local.data(), n, scratch.edges, scratch.crossings);
  }
  std::vector<RasterRun>& runs = scratch.runs;
  runs.clear();
  int64_t count = 0;
  auto add_run = [&](int y, int a, int b) {
    runs.push_back({int64_t(y + y0) * width + x0 + a, b - a + 1});
    count += b - a + 1;
  };
  for (int y = 0; y < h; ++y) {
    if (convex) {
      if (lo[y] <= hi[y]) add_run(y, lo[y], hi[y]);
      continue;
    }
    const uint8_t* m = scratch.mask.data() + size_t(y) * w;
    for (int x = 0; x < w;) {
      while (x < w && !m[x]) ++x;
      const int start = x;
      while (x < w && m[x]) ++x;
      if (x > start) add_run(y, start, x - 1);
    }
  }
  const double sum = sum_runs(prob, runs.data(), runs.size());
  return count > 0 ? sum / double(count) : 0.0;
}

}  // namespace dbf
