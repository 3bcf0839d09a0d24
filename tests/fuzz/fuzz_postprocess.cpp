// libFuzzer target for the post-processing core: arbitrary bytes become a
// probability map (any float bit pattern), options, and a polygon; run through
// boxes_from_map, trace_contours, polygon_mean and offset_polygon_round.
// Crashes, sanitizer reports, scores outside the map's range and non-finite boxes
// (for a finite map) are failures.
//   cmake -S . -B build/fuzz -DDBF_FUZZ=ON -DDBF_CUDA_CHECK=OFF -DCMAKE_CXX_COMPILER=clang++-14
//   cmake --build build/fuzz --target fuzz_postprocess && build/fuzz/fuzz_postprocess -max_total_time=60
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
  return 0;
}
