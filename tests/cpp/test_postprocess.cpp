// Native checks of the post-processing core on hand-made cases with known
// answers (the OpenCV / pyclipper equality is tested from Python).
#include <cmath>
#include <vector>

#include "../../csrc/core/postprocess.h"
#include "../../csrc/core/raster.h"
#include "../../csrc/core/unclip.h"
#include "check.h"

namespace {

void test_contours_of_a_ring() {
  // A 5x5 square with a one-pixel hole: one outer border, one hole border.
  const int h = 7, w = 7;
  std::vector<uint8_t> mask(h * w, 0);
  for (int y = 1; y <= 5; ++y)
    for (int x = 1; x <= 5; ++x) mask[y * w + x] = 1;
  mask[3 * w + 3] = 0;
  const dbf::Contours c = dbf::trace_contours(mask.data(), h, w, true);
  DBF_CHECK(c.count() == 2, "%lld contours", (long long)c.count());
  // Listed last-found first: the hole (found on row 3) before the outer border.
  DBF_CHECK(c.offsets[1] - c.offsets[0] == 4, "hole has %lld points", (long long)(c.offsets[1] - c.offsets[0]));
  DBF_CHECK(c.offsets[2] - c.offsets[1] == 4, "outer border has %lld corners", (long long)(c.offsets[2] - c.offsets[1]));
  DBF_CHECK(c.xy[2 * c.offsets[1]] == 1 && c.xy[2 * c.offsets[1] + 1] == 1, "outer border starts at its first pixel");
}

void test_min_area_quad_of_a_rotated_square() {
  // A diamond: its min-area rectangle is itself.
  const std::vector<int64_t> xy = {5, 0, 10, 5, 5, 10, 0, 5};
  dbf::HullScratch scratch;
  float quad[8];
  const float side = dbf::min_area_quad(xy.data(), 4, quad, scratch);
  DBF_CHECK(std::fabs(side - std::sqrt(50.f)) < 1e-4f, "short side %f", side);
  double area = 0;
  for (int i = 0, j = 3; i < 4; j = i++) area += double(quad[2 * j]) * quad[2 * i + 1] - double(quad[2 * i]) * quad[2 * j + 1];
  DBF_CHECK(std::fabs(std::fabs(area) / 2 - 50) < 1e-3, "area %f", std::fabs(area) / 2);
}

void test_polygon_mean_counts_the_outline() {
  // fillPoly paints the outline: a 3x3 box of corners (1,1)-(3,3) covers 9 pixels.
  const int h = 5, w = 5;
  std::vector<float> prob(h * w, 0.f);
  for (int y = 1; y <= 3; ++y)
    for (int x = 1; x <= 3; ++x) prob[y * w + x] = 1.f;
  const std::vector<int32_t> box = {1, 1, 3, 1, 3, 3, 1, 3};
  dbf::RasterScratch scratch;
  const double mean = dbf::polygon_mean(prob.data(), h, w, box.data(), 4, 0, 0, 4, 4, scratch);
  DBF_CHECK(mean == 1.0, "mean %f", mean);
  std::vector<uint8_t> mask(h * w, 0);
  const std::vector<int64_t> box64(box.begin(), box.end());
  dbf::fill_polygon_mask(mask.data(), h, w, box64.data(), 4);
  int painted = 0;
  for (uint8_t m : mask) painted += m;
  DBF_CHECK(painted == 9, "%d pixels painted", painted);
}

void test_offset_of_a_square_grows_it() {
  const std::vector<int64_t> square = {0, 0, 10, 0, 10, 10, 0, 10};
  std::vector<int64_t> grown;
  dbf::offset_polygon_round(square.data(), 4, 2.0, grown);
  int64_t lo = 0, hi = 0;
  for (size_t i = 0; i < grown.size(); ++i) lo = std::min(lo, grown[i]), hi = std::max(hi, grown[i]);
  DBF_CHECK(lo == -2 && hi == 12, "grown extent [%lld, %lld]", (long long)lo, (long long)hi);
  grown.clear();
  const std::vector<int64_t> line = {0, 0, 5, 5, 0, 0};
  dbf::offset_polygon_round(line.data(), 3, 2.0, grown);
  DBF_CHECK(grown.empty(), "a path of fewer than 3 distinct points gives nothing");
}

void test_boxes_from_a_map() {
  // One bright 20x8 block: one box around it grown by the unclip.
  const int h = 32, w = 48;
  std::vector<float> prob(h * w, 0.f);
  for (int y = 10; y < 18; ++y)
    for (int x = 10; x < 30; ++x) prob[y * w + x] = 0.9f;
  std::vector<dbf::ScoredQuad> boxes;
  DBF_CHECK(dbf::boxes_from_map(prob.data(), h, w, dbf::PostParams{}, boxes), "finite map");
  DBF_CHECK(boxes.size() == 1, "%zu boxes", boxes.size());
  if (!boxes.empty()) {
    DBF_CHECK(std::fabs(boxes[0].score - 0.9f) < 1e-6f, "score %f", boxes[0].score);
    DBF_CHECK(boxes[0].xy[0] < 10 && boxes[0].xy[4] > 29, "box x range %f..%f", boxes[0].xy[0], boxes[0].xy[4]);
  }
  prob[5] = NAN;
  DBF_CHECK(!dbf::boxes_from_map(prob.data(), h, w, dbf::PostParams{}, boxes) && boxes.empty(), "NaN map refused");
}

}  // namespace

int main() {
  test_contours_of_a_ring();
  test_min_area_quad_of_a_rotated_square();
  test_polygon_mean_counts_the_outline();
  test_offset_of_a_square_grows_it();
  test_boxes_from_a_map();
  return dbf_test::finish("test_postprocess");
}
