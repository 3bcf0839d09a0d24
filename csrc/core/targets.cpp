// Host rasteriser of the label maps: polygons row by row, each row's
// distances edge by edge over only the pixels an edge can reach (so the inner
// loops vectorise), inside-ness from the row's edge crossings.
#include "targets.h"

#include <algorithm>
#include <vector>

#include "clones.h"

namespace dbf {
namespace {

// One row of one polygon over pixels [x0, x1]: the squared mask and canvas
// distances (infinite beyond reach) and the even-odd inside flag.
struct RowScratch {
  std::vector<float> mask2;
  std::vector<double> canvas2, crossings;
  std::vector<uint8_t> inside;
};

// out[k] = min(out[k], distance2(x + k, y)) for k < count.
template <bool kExact, class T>
DBF_FORCE_INLINE void min_distance2(T* DBF_RESTRICT out, int count, T x, T y, const EdgeT<T>& edge) {
  for (int k = 0; k < count; ++k) {
    const T px = x + T(k);
    T d;
    if constexpr (kExact) {
      d = edge_distance2_exact(px, y, edge);
    } else {
      d = edge_distance2_reference(px, y, edge);
    }
    out[k] = d < out[k] ? d : out[k];
  }
}

// The row's squared mask distances over the pixels within mask_reach of an
// edge and, where canvas_reach > 0, the canvas distances within canvas_reach
// (the canvas is 0 beyond D); both infinite elsewhere.
DBF_CPU_CLONES void row_distances(double y, int x0, int x1, const double* xy, int64_t n,
                                  double mask_reach, double canvas_reach, bool exact,
                                  float* mask2, double* canvas2) {
  const int count = x1 - x0 + 1;
  std::fill(mask2, mask2 + count, INFINITY);
  if (canvas_reach > 0) std::fill(canvas2, canvas2 + count, INFINITY);
  for (int64_t i = 0, j = n - 1; i < n; j = i++) {
    const double ax = xy[2 * j], ay = xy[2 * j + 1], bx = xy[2 * i], by = xy[2 * i + 1];
    const double lo_x = std::min(ax, bx), hi_x = std::max(ax, bx);
    const double lo_y = std::min(ay, by), hi_y = std::max(ay, by);
    // the floored edge lies up to 1 pixel left of and above the edge
    if (y >= lo_y - mask_reach - 1.0 && y <= hi_y + mask_reach) {
      const int from = std::max(x0, int(std::ceil(lo_x - mask_reach - 1.0)));
      const int to = std::min(x1, int(std::floor(hi_x + mask_reach)));
      const auto floored = make_edge<float>(std::floor(ax), std::floor(ay), std::floor(bx), std::floor(by));
      if (from <= to) min_distance2<true>(mask2 + (from - x0), to - from + 1, float(from), float(y), floored);
    }
    if (canvas_reach > 0 && y >= lo_y - canvas_reach && y <= hi_y + canvas_reach) {
      const int from = std::max(x0, int(std::ceil(lo_x - canvas_reach)));
      const int to = std::min(x1, int(std::floor(hi_x + canvas_reach)));
      const Edge edge = make_edge(ax, ay, bx, by);
      if (from > to) continue;
      if (exact) {
        min_distance2<true>(canvas2 + (from - x0), to - from + 1, double(from), y, edge);
      } else {
        min_distance2<false>(canvas2 + (from - x0), to - from + 1, double(from), y, edge);
      }
    }
  }
}

// inside[x - x0] for x in [x0, x1] by the rule of point_inside.
void row_inside(double y, int x0, int x1, const double* xy, int64_t n, RowScratch& s) {
  s.crossings.clear();
  for (int64_t i = 0, j = n - 1; i < n; j = i++) {
    const double xi = std::floor(xy[2 * i]), yi = std::floor(xy[2 * i + 1]);
    const double xj = std::floor(xy[2 * j]), yj = std::floor(xy[2 * j + 1]);
    if ((yi > y) != (yj > y)) s.crossings.push_back(xi + (y - yi) * (xj - xi) / (yj - yi));
  }
  std::sort(s.crossings.begin(), s.crossings.end());
  std::fill(s.inside.begin(), s.inside.begin() + (x1 - x0 + 1), uint8_t(0));
  // x is inside when an odd number of crossings lie to its right (x < c)
  for (size_t k = 0; k + 1 < s.crossings.size(); k += 2) {
    const int from = std::max(x0, int(std::ceil(s.crossings[k])));
    const int to = std::min(x1, int(std::ceil(s.crossings[k + 1])) - 1);
    for (int x = from; x <= to; ++x) s.inside[x - x0] = 1;
  }
}

// Fills the scratch row for row y of the polygon's box: mask distances within
// mask_reach, canvas distances within canvas_reach (none if 0), inside flags.
void prepare_row(int y, const PolygonPrep& prep, const double* xy, int64_t n, double mask_reach,
                 double canvas_reach, bool exact, RowScratch& s) {
  const int count = prep.x1 - prep.x0 + 1;
  if (int(s.mask2.size()) < count) {
    s.mask2.resize(count);
    s.canvas2.resize(count);
    s.inside.resize(count);
  }
  row_distances(double(y), prep.x0, prep.x1, xy, n, mask_reach, canvas_reach, exact,
                s.mask2.data(), s.canvas2.data());
  row_inside(double(y), prep.x0, prep.x1, xy, n, s);
}

// Whether the shrink covers some pixel; rows from the middle out, as the
// shrink usually lies there.
DBF_CPU_CLONES bool has_shrink(const PolygonPrep& prep, const double* xy, int64_t n, RowScratch& s) {
  const int rows = prep.y1 - prep.y0 + 1, middle = prep.y0 + rows / 2;
  for (int k = 0; k < rows; ++k) {
    const int y = middle + ((k & 1) ? -(k + 1) / 2 : k / 2);
    prepare_row(y, prep, xy, n, prep.d, 0.0, true, s);
    for (int x = 0; x <= prep.x1 - prep.x0; ++x) {
      if (s.inside[x] && s.mask2[x] >= shrink_threshold2(prep.d)) return true;
    }
  }
  return false;
}

DBF_CPU_CLONES void zero_in_mask(const PolygonPrep& prep, const double* xy, int64_t n, int width, float* mask,
                  RowScratch& s) {
  for (int y = prep.y0; y <= prep.y1; ++y) {
    prepare_row(y, prep, xy, n, kFillMargin, 0.0, true, s);
    float* row = mask + int64_t(y) * width + prep.x0;
    for (int x = 0; x <= prep.x1 - prep.x0; ++x) {
      if (s.inside[x] || s.mask2[x] <= float(kFillMargin * kFillMargin)) row[x] = 0.f;
    }
  }
}

// One row of a used polygon into the maps (pointers at the row's first pixel).
DBF_FORCE_INLINE void draw_row(int count, const uint8_t* DBF_RESTRICT inside,
                               const float* DBF_RESTRICT mask2, const double* DBF_RESTRICT canvas2,
                               double d, float* DBF_RESTRICT shrink_map,
                               float* DBF_RESTRICT canvas, float* DBF_RESTRICT thresh_mask) {
  const float shrink2 = shrink_threshold2(d), dilate2 = dilate_threshold2(d);
  for (int k = 0; k < count; ++k) {
    const bool in = inside[k] != 0;
    shrink_map[k] = (in & (mask2[k] >= shrink2)) ? 1.f : shrink_map[k];
    thresh_mask[k] = (in | (mask2[k] <= dilate2)) ? 1.f : thresh_mask[k];
    const float value = canvas_value(canvas2[k], d);
    canvas[k] = value > canvas[k] ? value : canvas[k];
  }
}

DBF_CPU_CLONES void draw_polygon(const PolygonPrep& prep, const double* xy, int64_t n, int width,
                                 bool exact, float* shrink_map, float* canvas, float* thresh_mask,
                                 RowScratch& s) {
  for (int y = prep.y0; y <= prep.y1; ++y) {
    prepare_row(y, prep, xy, n, prep.d + kFillMargin, prep.d, exact, s);
    const int64_t at = int64_t(y) * width + prep.x0;
    draw_row(prep.x1 - prep.x0 + 1, s.inside.data(), s.mask2.data(), s.canvas2.data(), prep.d,
             shrink_map + at, canvas + at, thresh_mask + at);
  }
}

DBF_CPU_CLONES void rescale(float* values, int64_t n, float low, float span) {
  for (int64_t i = 0; i < n; ++i) values[i] = values[i] * span + low;
}

}  // namespace

void render_targets(const double* xy, const int64_t* offsets, const PolygonPrep* preps,
                    int64_t polygons, int height, int width, const TargetParams& params,
                    float* shrink_map, float* shrink_mask, float* thresh_map, float* thresh_mask) {
  const int64_t pixels = int64_t(height) * width;
  std::fill(shrink_map, shrink_map + pixels, 0.f);
  std::fill(shrink_mask, shrink_mask + pixels, 1.f);
  std::fill(thresh_map, thresh_map + pixels, 0.f);  // the canvas until the end
  std::fill(thresh_mask, thresh_mask + pixels, 0.f);
  RowScratch scratch;
  for (int64_t p = 0; p < polygons; ++p) {
    PolygonPrep prep = preps[p];
    const double* points = xy + 2 * offsets[p];
    const int64_t n = offsets[p + 1] - offsets[p];
    if (prep.role == kPolygonSkipped || prep.x0 > prep.x1 || prep.y0 > prep.y1) continue;
    if (prep.role == kPolygonUsed && !has_shrink(prep, points, n, scratch)) {
      prep.role = kPolygonIgnored;
    }
    if (prep.role == kPolygonIgnored) {
      zero_in_mask(prep, points, n, width, shrink_mask, scratch);
    } else {
      draw_polygon(prep, points, n, width, params.exact, shrink_map, thresh_map, thresh_mask,
                   scratch);
    }
  }
  rescale(thresh_map, pixels, float(params.thresh_min), float(params.thresh_max - params.thresh_min));
}

}  // namespace dbf
