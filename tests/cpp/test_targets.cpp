// Native tests of csrc/core/targets.h: distances against their definitions,
// pyclipper's offset on known shapes, the fillPoly pieces against each other
// (the host's Bresenham and span fill against the per-pixel forms the CUDA
// kernels use), and the host rasteriser on shapes with known maps.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "../../csrc/core/targets.h"
#include "check.h"
#include "test_targets_steps.h"

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
    const double ex = bx - ax, ey = by - ay, e2 = ex * ex + ey * ey;
    const double e2inv = e2 > 0 ? 1 / e2 : 0;
    const double exact = std::sqrt(dbf::edge_distance2_exact(x - ax, y - ay, ex, ey, e2inv));
    const double reference = std::sqrt(dbf::edge_distance2_reference(x - ax, y - ay, ex, ey, e2inv));
    if (i < 300) worst_exact = std::max(worst_exact, std::fabs(exact - sampled_distance(x, y, ax, ay, bx, by)));
    worst_reference = std::max(worst_reference, std::fabs(reference - published_distance(x, y, ax, ay, bx, by)));
    DBF_CHECK(reference >= exact - 1e-9, "the published distance is never shorter");
  }
  DBF_CHECK(worst_exact < 5e-3, "exact distance off by %g", worst_exact);
  DBF_CHECK(worst_reference < 1e-6, "stable published formula off by %g", worst_reference);
  DBF_CHECK(dbf::edge_distance2_reference(0.0, 0.0, 10.0, 0.0, 0.01) == 0, "at a vertex");
  DBF_CHECK(dbf::edge_distance2_reference(5.0, 3.0, 10.0, 0.0, 0.01) == 9, "above the middle");
}

void test_prepare_polygon() {
  const dbf::TargetParams params{0.4, 0.3, 0.7, 8, false};
  const float rect[] = {50, 50, 150, 50, 150, 90, 50, 90};
  double clipped[8];
  auto prep = dbf::prepare_polygon(rect, 4, 140, 200, false, params, clipped);
  DBF_CHECK(prep.role == dbf::kPolygonUsed && std::fabs(prep.d - 12.0) < 1e-12, "D = %g", prep.d);
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

std::vector<dbf::Segment> cleaned(const std::vector<dbf::IPoint>& outline) {
  std::vector<dbf::Split> splits(2 * outline.size());
  std::vector<dbf::Segment> out;
  dbf::clean_path(outline.data(), int64_t(outline.size()), splits.data(),
                  [&](const dbf::Segment& s) { out.push_back(s); });
  return out;
}

std::vector<dbf::IPoint> offset(const std::vector<dbf::IPoint>& src, double delta) {
  std::vector<dbf::IPoint> out(dbf::offset_path(src.data(), int64_t(src.size()), delta, nullptr));
  dbf::offset_path(src.data(), int64_t(src.size()), delta, out.data());
  return out;
}

// pyclipper.PyclipperOffset().Execute(-/+12) of the rectangle (50, 50)-(150, 90)
// gives [[138, 78], [62, 78], [62, 62], [138, 62]], Execute(12) a 20-point polygon
// from x 38..162, y 38..102 (round corners).
void test_clipper_offset() {
  const double rect[] = {50, 50, 150, 50, 150, 90, 50, 90};
  std::vector<dbf::IPoint> src(4);
  DBF_CHECK(dbf::clipper_source(rect, 4, src.data()) == 4, "four points");
  // Clipper's orientation: kept (its Area() is positive), the other way reversed
  DBF_CHECK(src[0].x == 50 && src[0].y == 50 && src[1].x == 150 && src[1].y == 50, "kept");
  const double reversed[] = {50.5, 90.5, 150.5, 90, 150.9, 50, 50, 50};
  std::vector<dbf::IPoint> other(4);
  DBF_CHECK(dbf::clipper_source(reversed, 4, other.data()) == 4 && other[0].x == 50 &&
                other[0].y == 50 && other[1].x == 150 && other[1].y == 50 && other[3].y == 90,
            "reversed and truncated");
  const auto shrunk = cleaned(offset(src, -12));
  int64_t twice_area = 0;
  int x0 = 1000, x1 = -1000, y0 = 1000, y1 = -1000;
  for (const auto& s : shrunk) {
    twice_area += dbf::cross(s.a.x, s.a.y, s.b.x, s.b.y);
    x0 = std::min({x0, s.a.x, s.b.x});
    x1 = std::max({x1, s.a.x, s.b.x});
    y0 = std::min({y0, s.a.y, s.b.y});
    y1 = std::max({y1, s.a.y, s.b.y});
  }
  DBF_CHECK(twice_area == 2 * 76 * 16, "shrunk area %lld", (long long)twice_area);
  DBF_CHECK(x0 == 62 && x1 == 138 && y0 == 62 && y1 == 78, "shrunk box %d %d %d %d", x0, y0, x1, y1);
  const auto grown = offset(src, 12);
  const auto grown_edges = cleaned(grown);
  DBF_CHECK(grown_edges.size() == grown.size() && grown.size() == 20, "a convex outline of 20 points is its own union: %zu", grown.size());
  x0 = y0 = 1000;
  x1 = y1 = -1000;
  for (const auto& p : grown) {
    x0 = std::min(x0, p.x);
    x1 = std::max(x1, p.x);
    y0 = std::min(y0, p.y);
    y1 = std::max(y1, p.y);
  }
  DBF_CHECK(x0 == 38 && x1 == 162 && y0 == 38 && y1 == 102, "grown box %d %d %d %d", x0, y0, x1, y1);
  const double line[] = {5, 5, 5, 5, 9, 5};
  DBF_CHECK(dbf::clipper_source(line, 3, src.data()) == 2, "repeats dropped: too few points");
}

// Bresenham's error term (the host) and the closed form (the CUDA kernels)
// walk the same pixels; OpenCV's LineIterator goes left to right with ties
// toward the start.
void test_lines() {
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int> u(-40, 80);
  for (int i = 0; i < 2000; ++i) {
    const dbf::Segment s{{u(rng), u(rng)}, {u(rng), u(rng)}};
    const dbf::LineRun r = dbf::make_line(s, 50, 60);
    int64_t q = r.major, m = 0;
    for (int64_t k = 0; k < r.count; ++k) {
      int x, y;
      dbf::line_pixel(r, k, x, y);
      const int64_t wx = r.steep ? r.x + m : r.x + k, wy = r.steep ? r.y + r.sy * k : r.y + r.sy * m;
      DBF_CHECK(x == wx && y == wy, "pixel %lld of line %d", (long long)k, i);
      DBF_CHECK(x >= 0 && x < 60 && y >= 0 && y < 50, "inside the image");
      q -= 2 * int64_t(r.minor);
      if (q < 0) {
        ++m;
        q += 2 * int64_t(r.major);
      }
    }
  }
  int x, y;
  const dbf::LineRun down = dbf::make_line({{0, 0}, {4, 2}}, 10, 10);
  dbf::line_pixel(down, 1, x, y);
  DBF_CHECK(x == 1 && y == 0, "tie toward the start: (%d, %d)", x, y);
  const dbf::LineRun up = dbf::make_line({{4, 0}, {0, 2}}, 10, 10);
  dbf::line_pixel(up, 1, x, y);
  DBF_CHECK(x == 1 && y == 2, "left to right, tie toward the left end: (%d, %d)", x, y);
}

// The host's span fill (sorted crossings, pairs) and the per-pixel rule the
// CUDA kernels use agree on random polygons, in and out of the image.
void test_even_odd_rule() {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> u(-30, 90);
  const int height = 50, width = 60;
  for (int i = 0; i < 500; ++i) {
    std::vector<dbf::FillEdge> edges;
    const int n = 3 + i % 6;
    std::vector<dbf::IPoint> p(n);
    for (auto& v : p) v = {u(rng), u(rng)};
    for (int k = 0; k < n; ++k) {
      dbf::FillEdge e;
      if (dbf::make_fill_edge({p[k], p[(k + 1) % n]}, height, width, e)) edges.push_back(e);
    }
    for (int y = 0; y < height; ++y) {
      std::vector<int64_t> xs;
      for (const auto& e : edges) {
        if (e.y0 <= y && y < e.y1) xs.push_back(dbf::fill_x(e, y));
      }
      std::sort(xs.begin(), xs.end());
      std::vector<char> spans(width, 0);
      for (size_t k = 0; edges.size() >= 2 && k + 1 < xs.size(); k += 2) {
        const int64_t x1 = std::max<int64_t>((xs[k] + 65535) >> 16, 0);
        const int64_t x2 = std::min<int64_t>(xs[k + 1] >> 16, width - 1);
        for (int64_t x = x1; x <= x2; ++x) spans[x] = 1;
      }
      for (int x = 0; x < width; ++x) {
        const int64_t at = int64_t(x) * 65536;
        int64_t below = 0, equal = 0;
        for (const int64_t v : xs) {
          below += v < at;
          equal += v == at;
        }
        const bool covered = dbf::even_odd_covers(below, equal, int64_t(xs.size()));
        DBF_CHECK(covered == (spans[x] != 0), "polygon %d pixel (%d, %d)", i, x, y);
      }
    }
  }
}

std::vector<float> render(const std::vector<float>& polygon, int height, int width,
                          const dbf::TargetParams& params) {
  const int64_t n = int64_t(polygon.size()) / 2;
  std::vector<double> clipped(2 * n);
  const int64_t offsets[] = {0, n};
  const auto prep = dbf::prepare_polygon(polygon.data(), n, height, width, false, params, clipped.data());
  std::vector<float> maps(4 * int64_t(height) * width);
  float* m = maps.data();
  const int64_t plane = int64_t(height) * width;
  dbf::render_targets(clipped.data(), offsets, &prep, 1, height, width, params, m, m + plane,
                      m + 2 * plane, m + 3 * plane);
  return maps;
}

void test_render_rectangle() {
  const dbf::TargetParams params{0.4, 0.3, 0.7, 8, false};
  const auto maps = render({50, 50, 150, 50, 150, 90, 50, 90}, 140, 200, params);
  const float* m = maps.data();
  const int64_t plane = 140 * 200;
  double shrink = 0, mask = 0, dilated = 0;
  for (int64_t i = 0; i < plane; ++i) {
    shrink += m[i];
    mask += m[plane + i];
    dilated += m[3 * plane + i];
  }
  DBF_CHECK(shrink == 77 * 17, "shrink covers %g pixels, want 77 x 17", shrink);
  DBF_CHECK(m[62 * 200 + 62] == 1 && m[78 * 200 + 138] == 1 && m[61 * 200 + 100] == 0, "shrink edges");
  DBF_CHECK(mask == plane, "nothing ignored");
  DBF_CHECK(dilated == 7973, "dilation covers %g pixels (pyclipper + fillPoly: 7973)", dilated);
  const float* thresh = m + 2 * plane;
  DBF_CHECK(std::fabs(thresh[50 * 200 + 100] - 0.7f) < 1e-6 &&
                std::fabs(thresh[56 * 200 + 100] - 0.5f) < 1e-6 &&
                std::fabs(thresh[44 * 200 + 100] - 0.5f) < 1e-6 &&
                std::fabs(thresh[70 * 200 + 100] - 0.3f) < 1e-6,
            "threshold values on the rectangle");
}

// A polygon too small (4 px high): only zeroed in shrink_mask, over the
// pixels fillPoly paints (the reference zeroes 105).
void test_render_ignored() {
  const dbf::TargetParams params{0.4, 0.3, 0.7, 8, false};
  const auto maps = render({10, 10, 30, 10, 30, 14, 10, 14}, 40, 40, params);
  const int64_t plane = 40 * 40;
  double zeros = 0, other = 0;
  for (int64_t i = 0; i < plane; ++i) {
    zeros += maps[plane + i] == 0;
    other += maps[i] + maps[3 * plane + i];
  }
  DBF_CHECK(zeros == 21 * 5, "zeroed %g pixels of shrink_mask, want 21 x 5", zeros);
  DBF_CHECK(other == 0, "no shrink, no dilation");
}

// Random text-like polygons: rotated quads and curved bands, some crossing
// the border, some tagged ignore, a few degenerate.
struct Sample {
  std::vector<float> points;
  std::vector<int64_t> offsets{0};
  std::vector<char> ignore;
};

Sample random_sample(std::mt19937_64& rng, int height, int width, int count) {
  std::uniform_real_distribution<double> u(0, 1);
  Sample s;
  for (int q = 0; q < count; ++q) {
    const double cx = (u(rng) * 1.1 - 0.05) * width, cy = (u(rng) * 1.1 - 0.05) * height;
    const double h = 8 + 40 * u(rng), w = h * (1 + 6 * u(rng)), angle = (u(rng) - 0.5) * 1.2;
    const double c = std::cos(angle), sn = std::sin(angle);
    std::vector<std::pair<double, double>> local;
    if (q % 3 == 2) {  // a band bent along an arc, 2 x 6 points
      for (int side = 0; side < 2; ++side) {
        for (int k = 0; k < 6; ++k) {
          const double t = side == 0 ? k / 5.0 : 1 - k / 5.0;
          const double bend = 0.3 * w * 4 * t * (1 - t) + (side == 0 ? -h / 2 : h / 2);
          local.push_back({(t - 0.5) * w, bend});
        }
      }
    } else {
      local = {{-w / 2, -h / 2}, {w / 2, -h / 2}, {w / 2, h / 2}, {-w / 2, h / 2}};
    }
    if (q % 11 == 10) local.resize(2);  // degenerate: 2 points
    for (auto [x, y] : local) {
      s.points.push_back(float(cx + c * x - sn * y + u(rng)));
      s.points.push_back(float(cy + sn * x + c * y + u(rng)));
    }
    s.offsets.push_back(int64_t(s.points.size() / 2));
    s.ignore.push_back(u(rng) < 0.1);
  }
  return s;
}

// The CUDA kernels' passes, run on the host in sequence (test_targets_steps.h),
// equal render_targets bit for bit.
void test_kernel_steps_match_the_host() {
  std::mt19937_64 rng(11);
  for (const bool exact : {false, true}) {
    const int height = 150 + int(rng() % 60), width = 170 + int(rng() % 60);
    const Sample s = random_sample(rng, height, width, 24);
    const dbf::TargetParams params{0.4, 0.3, 0.7, 8, exact};
    std::vector<dbf::PolygonPlan> plans;
    const auto steps = dbf_test::kernel_steps(s.points, s.offsets, s.ignore, height, width, params, &plans);
    const auto host = dbf_test::host_render(s.points, s.offsets, s.ignore, height, width, params);
    int64_t used = 0, ignored = 0;
    for (const auto& plan : plans) (plan.role == dbf::kPolygonUsed ? used : ignored) += 1;
    DBF_CHECK(used >= 10 && ignored >= 2, "a mixed sample: %lld used, %lld ignored", (long long)used, (long long)ignored);
    const int64_t plane = int64_t(height) * width;
    for (int map = 0; map < 4; ++map) {
      int64_t differ = 0;
      for (int64_t i = 0; i < plane; ++i) differ += steps[map * plane + i] != host[map * plane + i];
      DBF_CHECK(differ == 0, "exact=%d map %d: %lld pixels differ", int(exact), map, (long long)differ);
    }
  }
}

}  // namespace

int main() {
  test_edge_distances();
  test_prepare_polygon();
  test_clipper_offset();
  test_lines();
  test_even_odd_rule();
  test_render_rectangle();
  test_render_ignored();
  test_kernel_steps_match_the_host();
  return dbf_test::finish("test_targets");
}
