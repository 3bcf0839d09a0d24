// Polygon rasterisation with the pixel rule of OpenCV's fillPoly (8-connected
// outline lines plus even-odd scanline spans in 16.16 fixed point), used for
// the box scores: PaddleOCR scores a box by the mean probability under such a
// mask, so the same pixels must be counted.
#pragma once

#include <cstdint>
#include <vector>

namespace dbf {

struct RasterEdge {
  int64_t y0, y1, x, dx;  // rows [y0, y1); x at y0 and its step per row in 16.16
};

struct RasterRun {
  int64_t start;  // index of the first pixel in the map
  int length;
};

// Buffers polygon_mean reuses from call to call (no allocation once warm).
struct RasterScratch {
  std::vector<int64_t> local, crossings;
  std::vector<int32_t> lo, hi;
  std::vector<uint8_t> mask;
  std::vector<RasterEdge> edges;
  std::vector<RasterRun> runs;
};

// Mean of prob (height x width, row-major float) over the pixels that
// fillPoly would paint for the integer polygon `xy` (n points, interleaved)
// inside the window [x0, x1] x [y0, y1] (clipped to the map), with coordinates
// taken relative to the window as the reference does. 0 when no pixel is painted.
double polygon_mean(const float* prob, int height, int width, const int32_t* xy, int n, int x0,
                    int y0, int x1, int y1, RasterScratch& scratch);

// The fillPoly mask itself: ORs polygon `xy` (n integer points) into `mask`.
void fill_polygon_mask(uint8_t* mask, int height, int width, const int64_t* xy, int n);

}  // namespace dbf
