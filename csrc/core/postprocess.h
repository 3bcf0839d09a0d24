// DB post-processing on the CPU: probability map -> scored quadrilaterals,
// the pipeline of PaddleOCR's DBPostProcess (boxes_from_bitmap) step by step.
#pragma once

#include <cstdint>
#include <vector>

#include "boxes.h"
#include "contours.h"
#include "raster.h"

namespace dbf {

// The range rule of point coordinates (pixels) of every op that takes points:
// finite and |v| <= kMaxCoordinate (unclip distances too). Within it the
// int64 geometry (hull cross products, 16.16 raster edges) and the int32
// casts of the rasters cannot overflow. dbnet_fast/ops/_checks.py reads it.
constexpr int64_t kMaxCoordinate = 10000000;

struct PostParams {
  float thresh = 0.3f;        // binarisation: prob > thresh (compared in float32)
  double box_thresh = 0.7;    // boxes scoring below are dropped
  double unclip_ratio = 1.5;  // growth distance = area * ratio / perimeter
  int64_t max_candidates = 1000;
  bool slow_score = false;    // mean over the contour instead of the box
  bool dilate = false;        // 2x2 dilation of the binary map
  double min_size = 3;        // boxes whose short side is below are dropped (min_size + 2 after unclip)
};

// Buffers convex_hull reuses from call to call, and its result.
struct HullScratch {
  std::vector<int> forward, backward, chain, left, right;
  std::vector<float> points;  // the hull, (x, y) interleaved
};

// Convex hull of integer points in the order cv::minAreaRect uses: no
// collinear points, as OpenCV's convexHull(clockwise=false). Writes float
// points to scratch.points; returns their count.
int convex_hull(const int64_t* xy, int n, HullScratch& scratch);

// The ordered min-area rectangle (TL, TR, BR, BL) of integer points, and its short side.
float min_area_quad(const int64_t* xy, int n, float* quad, HullScratch& scratch);

// Box score as the reference box_score_fast: mean of prob under the polygon
// of the quad's corners truncated to integers, over the quad's bounding window.
double quad_score(const float* prob, int height, int width, const float* quad, RasterScratch& scratch);
// Box score as box_score_slow: mean of prob under the contour polygon.
double contour_score(const float* prob, int height, int width, const int32_t* xy, int n,
                     RasterScratch& scratch);

struct ScoredQuad {
  float xy[8];  // TL, TR, BR, BL in map pixels
  float score;
};

// The whole quad pipeline on one map: contours (RETR_LIST order, the first
// max_candidates), min-area box, score, unclip, min-area box again, filters.
// False (and no box) if the map holds NaN or inf.
bool boxes_from_map(const float* prob, int height, int width, const PostParams& params,
                    std::vector<ScoredQuad>& result);

}  // namespace dbf
