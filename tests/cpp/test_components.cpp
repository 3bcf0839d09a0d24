// Native tests of the host-device steps of the CUDA quad pipeline
// (csrc/core/components.h, hull.h, raster_rows.h) against the host
// algorithms they must reproduce: row-wise fillPoly against the mask
// rasteriser, one-pass hull chains against convex_hull, the labelling
// kernels (run one pixel after another in several orders) against a flood fill.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "../../csrc/core/components.h"
#include "../../csrc/core/contours.h"
#include "../../csrc/core/postprocess.h"
#include "../../csrc/core/raster.h"
#include "check.h"
#include "flood_labels.h"

namespace {

using dbf::PixelRun;

// Row runs of random quads (many partly or wholly outside the window, tiny,
// degenerate or self-intersecting) against fill_polygon_mask, pixel for pixel.
void test_row_runs() {
  std::mt19937_64 rng(11);
  int checked = 0;
  for (int t = 0; t < 20000; ++t) {
    const int w = 1 + int(rng() % 40), h = 1 + int(rng() % 40);
    const int spread = t % 3 == 0 ? 4 : (t % 3 == 1 ? 60 : 400);
    std::uniform_int_distribution<int64_t> coord(-spread / 2, spread);
    int64_t xy[8];
    for (int i = 0; i < 8; ++i) xy[i] = coord(rng);
    if (t % 7 == 0) xy[2] = xy[0], xy[3] = xy[1];  // repeated corner
    if (t % 11 == 0) xy[5] = xy[3];                // horizontal edge
    std::vector<uint8_t> mask(size_t(w) * h, 0);
    dbf::fill_polygon_mask(mask.data(), h, w, xy, 4);
    dbf::QuadRaster raster;
    raster.set(xy, w, h);
    std::vector<uint8_t> rows(size_t(w) * h, 0);
    bool sorted = true;
    for (int y = 0; y < h; ++y) {
      PixelRun runs[6];
      const int m = raster.row_runs(y, runs);
      for (int j = 0; j < m; ++j) {
        if (j > 0 && runs[j].begin <= runs[j - 1].end + 1) sorted = false;
        for (int64_t x = runs[j].begin; x <= runs[j].end; ++x) {
          if (x >= 0 && x < w) rows[size_t(y) * w + x] = 1;
          else sorted = false;
        }
      }
    }
    DBF_CHECK(sorted, "quad %d: runs out of order or outside the window", t);
    DBF_CHECK(rows == mask, "quad %d (%lld,%lld %lld,%lld %lld,%lld %lld,%lld) in %dx%d: masks differ", t,
              (long long)xy[0], (long long)xy[1], (long long)xy[2], (long long)xy[3], (long long)xy[4],
              (long long)xy[5], (long long)xy[6], (long long)xy[7], w, h);
    if (rows != mask && ++checked > 5) return;
  }
}

// Hull chains fed in (y, x) or (x, y) order give convex_hull's points in its order.
void test_hull_chains() {
  std::mt19937_64 rng(5);
  std::vector<int32_t> lower(4096), upper(4096);
  std::vector<float> hull(8192);
  dbf::HullScratch scratch;
  const std::vector<float>& expected = scratch.points;
  for (int t = 0; t < 5000; ++t) {
    const int n = 1 + int(rng() % (t % 2 ? 8 : 200));
    const int range = 1 + int(rng() % (t % 3 ? 30 : 3));
    std::vector<int64_t> xy(2 * size_t(n));
    for (int i = 0; i < n; ++i) xy[2 * i] = int64_t(rng() % range), xy[2 * i + 1] = int64_t(rng() % range) - 5;
    if (t % 13 == 0) {  // all on one line
      for (int i = 0; i < n; ++i) xy[2 * i + 1] = 3 * xy[2 * i] - 7;
    }
    const int m = dbf::convex_hull(xy.data(), n, scratch);
    for (int by_y = 0; by_y < 2; ++by_y) {
      std::vector<int> order(n);
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](int a, int b) {
        const int64_t ka0 = xy[2 * a + by_y], kb0 = xy[2 * b + by_y];
        return ka0 != kb0 ? ka0 < kb0 : xy[2 * a + 1 - by_y] < xy[2 * b + 1 - by_y];
      });
      dbf::HullChains chains(lower.data(), upper.data(), 2048);
      for (int i : order) chains.push(int32_t(xy[2 * i]), int32_t(xy[2 * i + 1]));
      const int k = chains.finish(hull.data());
      // convex_hull's last step, from each hull point's first input position.
      std::vector<int32_t> first(k, -1);
      for (int v = 0; v < k; ++v) {
        for (int i = 0; i < n && first[v] < 0; ++i) {
          if (hull[2 * v] == float(xy[2 * i]) && hull[2 * v + 1] == float(xy[2 * i + 1])) first[v] = i;
        }
      }
      dbf::rotate_points(hull.data(), k, dbf::index_order_start(first.data(), k));
      bool same = k == m && !chains.overflow;
      for (int i = 0; same && i < 2 * m; ++i) same = hull[i] == expected[i];
      DBF_CHECK(same, "point set %d (%d points, order %s): %d hull points, expected %d", t, n,
                by_y ? "(x, y)" : "(y, x)", k, m);
    }
  }
}


// The hull of a component from its rows' extreme pixels, ordered by
// order_component_hull, equals convex_hull of its traced outer border
// (RETR_LIST, simple chains), point for point and in order.
void test_component_hulls() {
  std::mt19937_64 rng(21);
  std::vector<int32_t> lower(8192), upper(8192);
  std::vector<float> hull(16384);
  dbf::HullScratch scratch;
  const std::vector<float>& expected = scratch.points;
  int compared = 0, differing = 0, quads_differ = 0;
  for (int t = 0; t < 400; ++t) {
    const int h = 2 + int(rng() % 60), w = 2 + int(rng() % 90);
    // Blobs: random rectangles and discs, plus salt noise.
    std::vector<uint8_t> text(size_t(h) * w, 0);
    const int shapes = 1 + int(rng() % 6);
    for (int k = 0; k < shapes; ++k) {
      const int cx = int(rng() % w), cy = int(rng() % h), rx = 1 + int(rng() % 15), ry = 1 + int(rng() % 10);
      const bool disc = rng() % 2;
      for (int y = std::max(0, cy - ry); y <= std::min(h - 1, cy + ry); ++y) {
        for (int x = std::max(0, cx - rx); x <= std::min(w - 1, cx + rx); ++x) {
          const double u = double(x - cx) / rx, v = double(y - cy) / ry;
          if (!disc || u * u + v * v <= 1.0) text[size_t(y) * w + x] = 1;
        }
      }
    }
    for (auto& v : text) v ^= (rng() % 100) < unsigned(t % 4 == 0 ? 20 : 2);
    const std::vector<int32_t> label = dbf_test::flood_labels(text, h, w);
    const dbf::Contours contours = dbf::trace_contours(text.data(), h, w, true);
    for (int64_t c = 0; c < contours.count(); ++c) {
      const int64_t begin = contours.offsets[c], n = contours.offsets[c + 1] - begin;
      const int32_t* xy = contours.xy.data() + 2 * begin;
      double area2 = 0;
      for (int64_t i = 0, j = n - 1; i < n; j = i++) {
        area2 += double(xy[2 * j]) * xy[2 * i + 1] - double(xy[2 * i]) * xy[2 * j + 1];
      }
      if (area2 > 0) continue;  // a hole's border
      const int32_t root = xy[1] * w + xy[0];
      DBF_CHECK(label[root] == root, "map %d: an outer border does not start at its component's first pixel", t);
      std::vector<int64_t> points(xy, xy + 2 * n);
      const int m = dbf::convex_hull(points.data(), int(n), scratch);
      dbf::HullChains chains(lower.data(), upper.data(), 4096);
      for (int y = xy[1]; y < h; ++y) {
        int lo, hi;
        dbf::row_extent(label.data() + size_t(y) * w, 0, w - 1, root, lo, hi);
        if (lo > hi) break;
        chains.push(lo, y);
        if (hi != lo) chains.push(hi, y);
      }
      const int k = chains.finish(hull.data());
      dbf::order_component_hull(hull.data(), k, root % w, root / w);
      bool same = k == m;
      for (int i = 0; same && i < 2 * m; ++i) same = hull[i] == expected[i];
      ++compared;
      differing += !same;
      std::vector<std::pair<float, float>> a, b;
      for (int i = 0; i < m; ++i) a.emplace_back(expected[2 * i], expected[2 * i + 1]);
      for (int i = 0; i < k; ++i) b.emplace_back(hull[2 * i], hull[2 * i + 1]);
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      DBF_CHECK(a == b, "map %d, border %lld: the hull points differ", t, (long long)c);
      float q1[8], q2[8];
      dbf::quad_of_hull(expected.data(), m, q1);
      dbf::quad_of_hull(hull.data(), k, q2);
      quads_differ += !std::equal(q1, q1 + 8, q2);
    }
  }
  // The hull points always agree; their start follows the trace's indices,
  // which thin parts (traced out and back) can make run the other way or out
  // of turn. The start only matters to min_area_rect's tie-breaks (rectangles
  // of equal area), so the boxes differ far less often.
  std::printf("component hulls: %d compared, %d start elsewhere, %d give another box\n", compared, differing,
              quads_differ);
  DBF_CHECK(differing * 10 < compared, "%d of %d component hulls differ from convex_hull of their borders", differing,
            compared);
  DBF_CHECK(quads_differ * 2000 < compared, "%d of %d component boxes differ", quads_differ, compared);
}

// A chain of strictly convex integer points cannot outgrow convex_chain_capacity:
// the densest strictly convex chains (all short directions in turn) fit.
void test_chain_capacity() {
  for (int64_t size : {1, 2, 3, 10, 100, 960, 4000}) {
    const int cap = dbf::convex_chain_capacity(size, size);
    // The lower chain of the hull of a lattice disc of radius size / 2 - 1.
    std::vector<int32_t> lower(2 * size_t(cap) + 8), upper(2 * size_t(cap) + 8);
    dbf::HullChains chains(lower.data(), upper.data(), cap);
    const int64_t r = std::max<int64_t>(0, size / 2 - 1), c = size / 2;
    for (int64_t y = c - r; y <= c + r; ++y) {
      int64_t half = 0;
      while ((half + 1) * (half + 1) + (y - c) * (y - c) <= r * r) ++half;
      chains.push(int32_t(c - half), int32_t(y));
      if (half) chains.push(int32_t(c + half), int32_t(y));
    }
    DBF_CHECK(!chains.overflow, "a disc in %lld x %lld overflows the capacity %d", (long long)size,
              (long long)size, cap);
  }
}

// 8-connected labelling by the kernels' steps, threads in raster, reversed
// and shuffled order, against a breadth-first flood fill.
void test_labelling() {
  std::mt19937_64 rng(9);
  for (int t = 0; t < 300; ++t) {
    const int h = 1 + int(rng() % 50), w = 1 + int(rng() % 100);
    const double density = (t % 5 + 1) / 6.0;
    std::vector<uint8_t> text(size_t(h) * w);
    for (auto& v : text) v = (rng() % 1000) < density * 1000;
    const std::vector<int32_t> expected = dbf_test::flood_labels(text, h, w);
    for (int pass = 0; pass < 3; ++pass) {
      std::vector<int32_t> order(text.size());
      std::iota(order.begin(), order.end(), 0);
      if (pass == 1) std::reverse(order.begin(), order.end());
      if (pass == 2) std::shuffle(order.begin(), order.end(), rng);
      std::vector<int32_t> label(text.size());
      for (int32_t i : order) dbf::init_label(text.data(), label.data(), w, i);
      for (int32_t i : order) dbf::merge_label(text.data(), label.data(), w, i);
      for (int32_t i : order) dbf::flatten_start(text.data(), label.data(), w, i);
      int roots = 0;
      for (int32_t i : order) roots += dbf::flatten_rest(text.data(), label.data(), w, i);
      int expected_roots = 0;
      for (int32_t i = 0; i < h * w; ++i) expected_roots += expected[i] == i;
      DBF_CHECK(label == expected && roots == expected_roots, "map %d (%dx%d), order %d: labels differ", t, h, w, pass);
    }
  }
}

}  // namespace

int main() {
  test_row_runs();
  test_hull_chains();
  test_component_hulls();
  test_chain_capacity();
  test_labelling();
  return dbf_test::finish("test_components");
}
