// libFuzzer target for the CUDA quad pipeline and its host-device steps:
// arbitrary bytes become a map, options, a schedule, a quad and a point set.
// The pipeline's kernels run through the host emulation
// (tests/cpp/quad_pipeline.h); its labels must equal a flood fill, its boxes
// be finite with in-range scores; the row-wise fillPoly must equal the mask
// rasteriser and the hull chains convex_hull.
//   cmake -S . -B build/fuzz -DDBF_FUZZ=ON -DDBF_CUDA_CHECK=OFF -DCMAKE_CXX_COMPILER=clang++-14
//   cmake --build build/fuzz --target fuzz_components && build/fuzz/fuzz_components -max_total_time=60
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "../cpp/flood_labels.h"
#include "../cpp/quad_pipeline.h"
#include "../../csrc/core/components.h"
#include "../../csrc/core/postprocess.h"
#include "../../csrc/core/raster.h"

namespace {

using dbf_fuzz::Reader;

void fail(const char* what) { dbf_fuzz::fail("fuzz_components", what); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in{data, size};
  const int height = 1 + in.take<uint8_t>() % 48, width = 1 + in.take<uint8_t>() % 48;
  const uint8_t flags = in.take<uint8_t>();
  const uint64_t seed = in.take<uint8_t>();
  const dbf::PostParams params = dbf_fuzz::take_params(in, flags);
  std::vector<float> prob(size_t(height) * width);
  for (float& p : prob) p = (flags & 4) ? in.take<float>() : float(in.take<uint8_t>()) / 255.f;
  bool finite = true;
  float lo = 0.f, hi = 0.f;
  for (float p : prob) {
    finite = finite && std::isfinite(p);
    lo = std::fmin(lo, p), hi = std::fmax(hi, p);
  }
  const double slack = 1e-5 * (1.0 + std::fabs(lo) + std::fabs(hi));

  // The whole pipeline, threads and blocks in raster, reversed or a random order.
  dbf_emu::set_schedule({seed == 0 ? dbf_emu::Order::kRaster : seed == 1 ? dbf_emu::Order::kReversed
                                                                        : dbf_emu::Order::kRandom, seed});
  const dbf_test::QuadPipeline run = dbf_test::run_quad_pipeline(prob.data(), height, width, params);
  if (run.non_finite == finite) fail("non-finite map not reported");
  if (run.error) fail("buffer overflow");
  for (size_t r = 0; r < run.records.size(); r += dbf::kRecord) {
    for (int j = 0; j < 8; ++j) {
      if (!std::isfinite(run.records[r + j])) fail("non-finite box corner");
    }
    if (!(run.records[r + 8] >= lo - slack && run.records[r + 8] <= hi + slack)) fail("score outside the map's range");
  }

  // Labels of the thresholded map against a flood fill.
  std::vector<uint8_t> text(prob.size());
  for (int i = 0; i < height * width; ++i) {
    text[i] = dbf::text_pixel(prob.data(), width, i % width, i / width, params.thresh, params.dilate);
  }
  if (dbf_test::emulated_labels(text.data(), height, width) != dbf_test::flood_labels(text, height, width)) {
    fail("labels differ from a flood fill");
  }

  // Row-wise fillPoly of a quad anywhere near the window against the mask.
  int64_t quad[8];
  for (int64_t& v : quad) v = int64_t(in.take<int8_t>()) * ((flags & 8) ? 4 : 1);
  std::vector<uint8_t> mask(text.size(), 0), rows(text.size(), 0);
  dbf::fill_polygon_mask(mask.data(), height, width, quad, 4);
  dbf::QuadRaster raster;
  raster.set(quad, width, height);
  for (int y = 0; y < height; ++y) {
    dbf::PixelRun runs[6];
    const int m = raster.row_runs(y, runs);
    for (int j = 0; j < m; ++j) {
      if (runs[j].begin < 0 || runs[j].end >= width || (j > 0 && runs[j].begin <= runs[j - 1].end + 1)) {
        fail("row runs out of the window or out of order");
      }
      for (int64_t x = runs[j].begin; x <= runs[j].end; ++x) rows[size_t(y) * width + x] = 1;
    }
  }
  if (rows != mask) fail("row-wise fillPoly differs from the mask");

  // Hull chains (with the input-order rule) against convex_hull.
  const int n = 1 + in.take<uint8_t>() % 24;
  std::vector<int64_t> xy(2 * size_t(n));
  for (int64_t& v : xy) v = in.take<int8_t>();
  dbf::HullScratch scratch;
  const std::vector<float>& expected = scratch.points;
  const int m = dbf::convex_hull(xy.data(), n, scratch);
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  for (int i = 1; i < n; ++i) {  // insertion sort by (y, x)
    const int v = order[i];
    int k = i;
    auto before = [&](int a, int b) {
      return xy[2 * a + 1] != xy[2 * b + 1] ? xy[2 * a + 1] < xy[2 * b + 1] : xy[2 * a] < xy[2 * b];
    };
    while (k > 0 && before(v, order[k - 1])) order[k] = order[k - 1], --k;
    order[k] = v;
  }
  std::vector<int32_t> lower(2 * size_t(n) + 2), upper(2 * size_t(n) + 2), first(2 * size_t(n) + 2, -1);
  std::vector<float> hull(4 * size_t(n) + 4);
  dbf::HullChains chains(lower.data(), upper.data(), n + 1);
  for (int i : order) chains.push(int32_t(xy[2 * i]), int32_t(xy[2 * i + 1]));
  const int k = chains.finish(hull.data());
  for (int v = 0; v < k; ++v) {
    for (int i = 0; i < n && first[v] < 0; ++i) {
      if (hull[2 * v] == float(xy[2 * i]) && hull[2 * v + 1] == float(xy[2 * i + 1])) first[v] = i;
    }
  }
  dbf::rotate_points(hull.data(), k, dbf::index_order_start(first.data(), k));
  if (chains.overflow || k != m || !std::equal(expected.begin(), expected.end(), hull.begin())) {
    fail("hull chains differ from convex_hull");
  }
  return 0;
}
