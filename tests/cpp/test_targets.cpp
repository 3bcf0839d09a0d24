// Native tests of csrc/core/targets.h: distances against their definitions,
// polygon preparation, and the host rasteriser on shapes with known maps.
#include <cmath>
#include <random>
#include <vector>

#include "../../csrc/core/targets.h"
#include "check.h"

namespace {

double sampled_distance(double x, double y, double ax, double ay, double bx, double by) {
  double best = INFINITY;
  for (int i = 0; i <= 20000; ++i) {
    const double t = i / 20000.0;
    best = std::min(best, std::hypot(x - (ax + t * (bx - ax)), y - (ay + t * (by - ay))));
  }
  return best;
}

// The published formula as written with square roots (cos from the law of cosines).
double published_distance(double x, double y, double ax, double ay, double bx, double by) {
  const double d1 = (x - ax) * (x - ax) + (y - ay) * (y - ay);
  const double d2 = (x - bx) * (x - bx) + (y - by) * (y - by);
  const double l2 = (ax - bx) * (ax - bx) + (ay - by) * (ay - by);
  if (l2 == 0) return std::sqrt(d1);
  if (d1 * d2 == 0) return 0;
  const double cosin = (l2 - d1 - d2) / (2 * std::sqrt(d1 * d2));
  if (cosin < 0) return std::sqrt(std::min(d1, d2));
  return std::sqrt(d1 * d2 * std::max(0.0, 1 - cosin * cosin) / l2);
}

void test_edge_distances() {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-50, 50);
  double worst_exact = 0, worst_reference = 0;
  for (int i = 0; i < 3000; ++i) {
    const double ax = u(rng), ay = u(rng);
    const double bx = i % 10 == 0 ? ax : u(rng), by = i % 10 == 0 ? ay : u(rng);
    const double x = std::round(u(rng)), y = std::round(u(rng));
    const dbf::Edge e = dbf::make_edge(ax, ay, bx, by);
    const double exact = std::sqrt(dbf::edge_distance2_exact(x, y, e));
    const double reference = std::sqrt(dbf::edge_distance2_reference(x, y, e));
    if (i < 300) worst_exact = std::max(worst_exact, std::fabs(exact - sampled_distance(x, y, ax, ay, bx, by)));
    worst_reference = std::max(worst_reference, std::fabs(reference - published_distance(x, y, ax, ay, bx, by)));
    DBF_CHECK(reference >= exact - 1e-9, "the published distance is never shorter");
  }
  DBF_CHECK(worst_exact < 5e-3, "exact distance off by %g", worst_exact);
  DBF_CHECK(worst_reference < 1e-6, "squared published formula off by %g", worst_reference);
  const dbf::Edge e = dbf::make_edge(0, 0, 10, 0);
  DBF_CHECK(dbf::edge_distance2_reference(0, 0, e) == 0, "at a vertex");
  DBF_CHECK(dbf::edge_distance2_reference(5, 3, e) == 9, "above the middle: %g",
            dbf::edge_distance2_reference(5, 3, e));
}

void test_prepare_polygon() {
  const dbf::TargetParams params{0.4, 0.3, 0.7, 8, false};
  const float rect[] = {50, 50, 150, 50, 150, 90, 50, 90};
  double clipped[8];
  auto prep = dbf::prepare_polygon(rect, 4, 140, 200, false, params, clipped);
  DBF_CHECK(prep.role == dbf::kPolygonUsed && std::fabs(prep.d - 12.0) < 1e-12, "D = %g", prep.d);
  // D + the fill margin + 1 for the floored polygon: 13.5 px around the box
  DBF_CHECK(prep.x0 == 36 && prep.x1 == 164 && prep.y0 == 36 && prep.y1 == 104,
            "box %d %d %d %d", prep.x0, prep.y0, prep.x1, prep.y1);
  const float small[] = {0, 0, 30, 0, 30, 5, 0, 5};
  DBF_CHECK(dbf::prepare_polygon(small, 4, 140, 200, false, params, clipped).role ==
                dbf::kPolygonIgnored, "5 px high: ignored");
  DBF_CHECK(dbf::prepare_polygon(rect, 4, 140, 200, true, params, clipped).role ==
                dbf::kPolygonIgnored, "tagged: ignored");
  const float nan_point[] = {0, 0, NAN, 0, 3, 3};
  DBF_CHECK(dbf::prepare_polygon(nan_point, 3, 140, 200, false, params, clipped).role ==
                dbf::kPolygonSkipped, "NaN: skipped");
  const float outside[] = {-100, -100, -50, -100, -50, -50};
  prep = dbf::prepare_polygon(outside, 3, 140, 200, false, params, clipped);
  DBF_CHECK(prep.role == dbf::kPolygonIgnored && clipped[0] == 0 && clipped[1] == 0,
            "outside: clipped to the corner, ignored");
}

void test_render_rectangle() {
  const dbf::TargetParams params{0.4, 0.3, 0.7, 8, false};
  const float rect[] = {50, 50, 150, 50, 150, 90, 50, 90};
  std::vector<double> clipped(8);
  const int64_t offsets[] = {0, 4};
  const auto prep = dbf::prepare_polygon(rect, 4, 140, 200, false, params, clipped.data());
  std::vector<float> maps(4 * 140 * 200);
  float* m = maps.data();
  const int64_t plane = 140 * 200;
  dbf::render_targets(clipped.data(), offsets, &prep, 1, 140, 200, params, m, m + plane,
                      m + 2 * plane, m + 3 * plane);
  double shrink = 0, mask = 0;
  for (int64_t i = 0; i < plane; ++i) {
    shrink += m[i];
    mask += m[plane + i];
  }
  DBF_CHECK(shrink == 77 * 17, "shrink covers %g pixels, want 77 x 17", shrink);
  DBF_CHECK(mask == plane, "nothing ignored");
  const float* thresh = m + 2 * plane;
  DBF_CHECK(std::fabs(thresh[50 * 200 + 100] - 0.7f) < 1e-6 &&
                std::fabs(thresh[56 * 200 + 100] - 0.5f) < 1e-6 &&
                std::fabs(thresh[44 * 200 + 100] - 0.5f) < 1e-6 &&
                std::fabs(thresh[70 * 200 + 100] - 0.3f) < 1e-6,
            "threshold values on the rectangle");
}

}  // namespace

int main() {
  test_edge_distances();
  test_prepare_polygon();
  test_render_rectangle();
  return dbf_test::finish("test_targets");
}
