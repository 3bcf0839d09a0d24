// The label maps two ways, for the native tests and the fuzzer: the host
// renderer, and the CUDA kernels' passes run on the host in sequence (plan,
// outlines, edges, then per polygon its rows' spans from sorted crossings,
// its canvas pixel by pixel, its lines from line_pixel), which is what
// csrc/cuda/targets.cu does in parallel. Both return (4, H, W) maps.
#pragma once

#include <algorithm>
#include <vector>

#include "../../csrc/core/targets.h"

namespace dbf_test {

inline std::vector<float> host_render(const std::vector<float>& points,
                                      const std::vector<int64_t>& offsets,
                                      const std::vector<char>& ignore, int height, int width,
                                      const dbf::TargetParams& params) {
  const int64_t polygons = int64_t(ignore.size()), plane = int64_t(height) * width;
  std::vector<double> clipped(2 * offsets.back() + 2);
  std::vector<dbf::PolygonPrep> preps(polygons);
  for (int64_t p = 0; p < polygons; ++p) {
    const int64_t at = offsets[p];
    preps[p] = dbf::prepare_polygon(points.data() + 2 * at, offsets[p + 1] - at, height, width,
                                    ignore[p] != 0, params, clipped.data() + 2 * at);
  }
  std::vector<float> maps(4 * plane);
  float* m = maps.data();
  dbf::render_targets(clipped.data(), offsets.data(), preps.data(), polygons, height, width,
                      params, m, m + plane, m + 2 * plane, m + 3 * plane);
  return maps;
}

inline std::vector<float> kernel_steps(const std::vector<float>& points,
                                       const std::vector<int64_t>& offsets,
                                       const std::vector<char>& ignore, int height, int width,
                                       const dbf::TargetParams& params,
                                       std::vector<dbf::PolygonPlan>* plans_out = nullptr) {
  const int64_t polygons = int64_t(ignore.size()), n_points = offsets.back();
  const int64_t plane = int64_t(height) * width;
  std::vector<double> clipped(2 * n_points + 2);
  std::vector<dbf::IPoint> source(n_points + 1);
  std::vector<dbf::PolygonPrep> preps(polygons);
  std::vector<dbf::PolygonPlan> plans(polygons);
  std::vector<int64_t> room(polygons);
  // plan_kernel
  for (int64_t p = 0; p < polygons; ++p) {
    const int64_t at = offsets[p], n = offsets[p + 1] - at;
    preps[p] = dbf::prepare_polygon(points.data() + 2 * at, n, height, width, ignore[p] != 0,
                                    params, clipped.data() + 2 * at);
    room[p] = dbf::plan_polygon(preps[p], clipped.data() + 2 * at, n, source.data() + at, plans[p]);
  }
  int64_t total = 0;
  for (int64_t p = 0; p < polygons; ++p) {
    plans[p].outline_at = total;
    total += room[p];
  }
  // outline_kernel
  std::vector<dbf::IPoint> outline(std::max<int64_t>(total, 1));
  std::vector<dbf::Split> splits(2 * std::max<int64_t>(total, 1));
  int64_t edge_total = 0;
  for (int64_t p = 0; p < polygons; ++p) {
    const int64_t at = offsets[p];
    const int64_t count = dbf::plan_edges(plans[p], preps[p], offsets[p + 1] - at,
                                          source.data() + at, outline.data(), splits.data());
    plans[p].segment_at = edge_total;
    edge_total += count;
  }
  // edge_kernel, then draw_kernel polygon by polygon
  std::vector<dbf::Segment> edges(std::max<int64_t>(edge_total, 1));
  std::vector<float> maps(4 * plane, 0.f), canvas(plane, 0.f);
  std::fill(maps.begin() + plane, maps.begin() + 2 * plane, 1.f);
  for (int64_t p = 0; p < polygons; ++p) {
    const int64_t at = offsets[p], n = offsets[p + 1] - at;
    dbf::PolygonPlan& plan = plans[p];
    dbf::plan_write_edges(plan, clipped.data() + 2 * at, n, outline.data(), splits.data(),
                          edges.data(), height, width);
    if (plan.role == dbf::kPolygonSkipped) continue;
    const bool used = plan.role == dbf::kPolygonUsed;
    // used: its shrink into shrink_map, its dilation into thresh_mask;
    // ignored: its own edges, 0 into shrink_mask
    float* targets[2] = {used ? maps.data() : maps.data() + plane, maps.data() + 3 * plane};
    const float values[2] = {used ? 1.f : 0.f, 1.f};
    const int64_t counts[2] = {plan.shrink_edges, plan.dilate_edges};
    for (int set = 0; set < 2; ++set) {
      const int64_t begin = plan.segment_at + (set == 0 ? 0 : plan.shrink_edges);
      std::vector<dbf::FillEdge> fills;
      for (int64_t e = begin; e < begin + counts[set]; ++e) {
        dbf::FillEdge f;
        if (dbf::make_fill_edge(edges[e], height, width, f)) fills.push_back(f);
        const dbf::LineRun run = dbf::make_line(edges[e], height, width);
        for (int64_t k = 0; k < run.count; ++k) {
          int x, y;
          dbf::line_pixel(run, k, x, y);
          targets[set][int64_t(y) * width + x] = values[set];
        }
      }
      for (int y = 0; y < height; ++y) {
        std::vector<int64_t> xs;
        for (const auto& f : fills) {
          if (f.y0 <= y && y < f.y1) xs.push_back(dbf::fill_x(f, y));
        }
        std::sort(xs.begin(), xs.end());
        for (size_t k = 0; k + 1 < xs.size(); k += 2) {
          const int64_t x1 = std::max<int64_t>((xs[k] + 65535) >> 16, 0);
          const int64_t x2 = std::min<int64_t>(xs[k + 1] >> 16, width - 1);
          for (int64_t x = x1; x <= x2; ++x) targets[set][int64_t(y) * width + x] = values[set];
        }
      }
    }
    if (!used) continue;
    const dbf::Box& box = plan.dilate_box;
    for (int y = box.y0; y <= box.y1; ++y) {
      for (int x = box.x0; x <= box.x1; ++x) {
        const float v = dbf::pixel_canvas(x, y, clipped.data() + 2 * at, n, preps[p].d, params.exact);
        float& c = canvas[int64_t(y) * width + x];
        c = std::max(c, v);
      }
    }
  }
  // finish_kernel
  const float low = float(params.thresh_min), span = float(params.thresh_max - params.thresh_min);
  for (int64_t i = 0; i < plane; ++i) maps[2 * plane + i] = dbf::thresh_value(canvas[i], low, span);
  if (plans_out) *plans_out = plans;
  return maps;
}

}  // namespace dbf_test
