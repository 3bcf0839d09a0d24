// libFuzzer target for the post-processing core: arbitrary bytes become a
// probability map (any float bit pattern), options, a polygon near the map, a
// polygon anywhere in the coordinate range and a mask of any byte values; run
// through boxes_from_map, trace_contours, polygon_mean, fill_polygon_mask,
// min_area_quad and offset_polygon_round. Crashes, sanitizer reports, scores
// outside the map's range, non-finite boxes (for a finite map), pixels of a
// polygon outside the map and masks whose contours depend on more than
// nonzero-ness are failures.
//   cmake -S . -B build/fuzz -DDBF_FUZZ=ON -DDBF_CUDA_CHECK=OFF -DCMAKE_CXX_COMPILER=clang++-14
//   cmake --build build/fuzz --target fuzz_postprocess && build/fuzz/fuzz_postprocess -max_total_time=60
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "../../csrc/core/postprocess.h"
#include "../../csrc/core/raster.h"
#include "../../csrc/core/unclip.h"

namespace {

using dbf_fuzz::Reader;

void fail(const char* what) { dbf_fuzz::fail("fuzz_postprocess", what); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in{data, size};
  const int height = 1 + in.take<uint8_t>() % 48, width = 1 + in.take<uint8_t>() % 48;
  const uint8_t flags = in.take<uint8_t>();
  dbf::PostParams params = dbf_fuzz::take_params(in, flags);
  params.slow_score = flags & 1;
  // The map: bytes as probabilities, or (flag 4) raw float bits.
  std::vector<float> prob(size_t(height) * width);
  for (float& p : prob) p = (flags & 4) ? in.take<float>() : float(in.take<uint8_t>()) / 255.f;
  bool finite = true;
  float lo = 0.f, hi = 0.f;  // means lie within the map's range
  for (float p : prob) {
    finite = finite && std::isfinite(p);
    lo = std::fmin(lo, p), hi = std::fmax(hi, p);
  }
  const double slack = 1e-5 * (1.0 + std::fabs(lo) + std::fabs(hi));
  std::vector<dbf::ScoredQuad> boxes;
  const bool ok = dbf::boxes_from_map(prob.data(), height, width, params, boxes);
  if (ok != finite) fail("finite-map flag wrong");
  for (const dbf::ScoredQuad& b : boxes) {
    for (float v : b.xy) {
      if (!std::isfinite(v)) fail("non-finite box corner");
    }
    if (finite && !(b.score >= lo - slack && b.score <= hi + slack)) fail("score outside the map's range");
  }
  // A polygon of up to 8 integer points anywhere near the map.
  const int n = in.take<uint8_t>() % 9;
  std::vector<int32_t> xy(2 * size_t(n));
  std::vector<int64_t> xy64(2 * size_t(n));
  for (int i = 0; i < 2 * n; ++i) xy64[i] = xy[i] = int32_t(in.take<int8_t>()) * 2;
  if (n > 0) {
    dbf::RasterScratch scratch;
    const double mean = dbf::polygon_mean(prob.data(), height, width, xy.data(), n, -100, -100, 200, 200, scratch);
    if (finite && !(mean >= lo - slack && mean <= hi + slack)) fail("polygon mean outside the map's range");
    std::vector<int64_t> grown;
    dbf::offset_polygon_round(xy64.data(), n, double(in.take<uint8_t>()) / 8.0, grown);
    dbf::HullScratch hull;
    float quad[8];
    if (!grown.empty()) dbf::min_area_quad(grown.data(), int(grown.size() / 2), quad, hull);
  }
  // A polygon anywhere in the range rule of the ops (|v| <= kMaxCoordinate):
  // nothing may overflow, and one whose bounding box misses the map scores 0
  // and paints nothing (an int32 wrap would bring it back onto the map).
  const int m = 1 + in.take<uint8_t>() % 8;
  std::vector<int32_t> far(2 * size_t(m));
  std::vector<int64_t> far64(2 * size_t(m));
  for (int i = 0; i < 2 * m; ++i) far64[i] = far[i] = int32_t(in.take<int32_t>() % (dbf::kMaxCoordinate + 1));
  int64_t lo_x = far64[0], hi_x = far64[0], lo_y = far64[1], hi_y = far64[1];
  for (int i = 1; i < m; ++i) {
    lo_x = std::min(lo_x, far64[2 * i]), hi_x = std::max(hi_x, far64[2 * i]);
    lo_y = std::min(lo_y, far64[2 * i + 1]), hi_y = std::max(hi_y, far64[2 * i + 1]);
  }
  const bool misses = hi_x < 0 || hi_y < 0 || lo_x >= width || lo_y >= height;
  {
    dbf::RasterScratch scratch;
    const double mean = dbf::contour_score(prob.data(), height, width, far.data(), m, scratch);
    if (finite && !(mean >= lo - slack && mean <= hi + slack)) fail("far polygon's mean outside the map's range");
    if (misses && mean != 0.0) fail("a polygon outside the map has a nonzero mean");
    std::vector<uint8_t> painted(prob.size(), 0);
    dbf::fill_polygon_mask(painted.data(), height, width, far64.data(), m);
    for (uint8_t v : painted) {
      if (misses && v) fail("a polygon outside the map paints pixels");
    }
    dbf::HullScratch hull;
    float quad[8];
    const float side = dbf::min_area_quad(far64.data(), m, quad, hull);
    if (!(side >= 0.f) || !std::isfinite(side)) fail("far polygon's short side negative or not finite");
    for (float v : quad) {
      if (!std::isfinite(v)) fail("far polygon's box not finite");
    }
    const double score = dbf::quad_score(prob.data(), height, width, quad, scratch);
    if (finite && !(score >= lo - slack && score <= hi + slack)) fail("far box's score outside the map's range");
    std::vector<int64_t> grown;
    dbf::offset_polygon_round(far64.data(), m, double(in.take<uint16_t>()), grown);
  }
  // A mask of any byte values: text is every nonzero byte (the Python door
  // turns bitmaps of every dtype into != 0 bytes; no value may count as 0).
  std::vector<uint8_t> wide(prob.size()), binary(prob.size());
  for (size_t i = 0; i < wide.size(); ++i) binary[i] = (wide[i] = in.take<uint8_t>()) != 0;
  for (const bool simple : {true, false}) {
    const dbf::Contours a = dbf::trace_contours(wide.data(), height, width, simple);
    const dbf::Contours b = dbf::trace_contours(binary.data(), height, width, simple);
    if (a.xy != b.xy || a.offsets != b.offsets) fail("contours depend on the mask's nonzero values");
  }
  return 0;
}
