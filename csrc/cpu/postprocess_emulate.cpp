// The CUDA quad pipeline run on the CPU: every kernel of csrc/cuda/postprocess.cu
// as a loop over its threads (one after another, in a chosen order) calling
// the same host-device steps of csrc/core/components.h. Only tests use it: it
// checks the kernels' logic on machines without a GPU.
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "../core/components.h"
#include "../entry_points.h"

namespace dbf {
namespace {

// The order in which the "threads" of one kernel run: raster order (seed 0),
// reversed (seed 1) or shuffled.
std::vector<int32_t> thread_order(int32_t n, int64_t seed) {
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (seed == 1) std::reverse(order.begin(), order.end());
  if (seed > 1) std::shuffle(order.begin(), order.end(), std::mt19937_64(uint64_t(seed)));
  return order;
}

// Labels of one image as the labelling kernels leave them.
void label_image(const uint8_t* text, int32_t* label, int height, int width, int64_t seed) {
  const int32_t n = height * width;
  const std::vector<int32_t> order = thread_order(n, seed);
  for (int32_t i : order) init_label(text, label, width, i);
  for (int32_t i : order) merge_label(text, label, width, i);
  for (int32_t i : order) flatten_start(text, label, width, i);
  for (int32_t i : order) flatten_rest(text, label, width, i);
}

// Sum and count of prob under a box's fillPoly mask, row by row (the device
// splits the rows over warps and the pixels over lanes).
void window_sum(const float* prob, int width, const ScoreWindow& win, double& sum, int64_t& count) {
  sum = 0.0, count = 0;
  PixelRun runs[6];
  for (int64_t r = 0; r < win.raster.h; ++r) {
    const float* row = prob + (win.y0 + r) * width + win.x0;
    const int m = win.raster.row_runs(r, runs);
    for (int j = 0; j < m; ++j) {
      for (int64_t x = runs[j].begin; x <= runs[j].end; ++x) sum += row[x];
      count += runs[j].end - runs[j].begin + 1;
    }
  }
}

}  // namespace

at::Tensor label_components_emulated(const at::Tensor& mask, int64_t seed) {
  TORCH_CHECK(mask.dim() == 2 && mask.scalar_type() == at::kByte && mask.is_cpu(),
              "label_components: mask must be a (H, W) uint8 CPU tensor");
  TORCH_CHECK(mask.numel() < (int64_t(1) << 31), "label_components: map too large");
  const at::Tensor m = mask.contiguous();
  std::vector<uint8_t> text(m.const_data_ptr<uint8_t>(), m.const_data_ptr<uint8_t>() + m.numel());
  for (uint8_t& t : text) t = t != 0;
  at::Tensor labels = at::empty(m.sizes(), at::kInt);
  label_image(text.data(), labels.mutable_data_ptr<int32_t>(), int(m.size(0)), int(m.size(1)), seed);
  return labels;
}

at::Tensor quad_row_scores(const at::Tensor& prob, const at::Tensor& quads) {
  TORCH_CHECK(prob.dim() == 2 && prob.scalar_type() == at::kFloat && prob.is_cpu(), "prob must be (H, W) float32");
  TORCH_CHECK(quads.dim() == 3 && quads.size(1) == 4 && quads.size(2) == 2 && quads.scalar_type() == at::kFloat,
              "boxes must be (K, 4, 2) float32");
  const at::Tensor p = prob.contiguous(), q = quads.contiguous();
  at::Tensor out = at::empty({q.size(0)}, at::kDouble);
  for (int64_t k = 0; k < q.size(0); ++k) {
    ScoreWindow win;
    score_window(q.const_data_ptr<float>() + 8 * k, int(p.size(0)), int(p.size(1)), win);
    double sum;
    int64_t count;
    window_sum(p.const_data_ptr<float>(), int(p.size(1)), win, sum, count);
    out.mutable_data_ptr<double>()[k] = mean_or_zero(sum, count);
  }
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> boxes_emulated(const at::Tensor& prob, const at::Tensor& dest_sizes,
                                                              const PostParams& params, int64_t seed) {
  TORCH_CHECK(prob.dim() == 3 && prob.scalar_type() == at::kFloat && prob.is_cpu(),
              "boxes_emulated: prob must be a (B, H, W) float32 CPU tensor");
  TORCH_CHECK(!params.slow_score, "boxes_emulated: the CUDA pipeline scores boxes in fast mode only");
  TORCH_CHECK(dest_sizes.dim() == 2 && dest_sizes.size(0) == prob.size(0) && dest_sizes.size(1) == 2 &&
                  dest_sizes.scalar_type() == at::kLong && dest_sizes.is_cpu(),
              "boxes_emulated: dest_sizes must be a (B, 2) int64 CPU tensor");
  const at::Tensor maps = prob.contiguous(), sizes = dest_sizes.contiguous();
  const int64_t batch = maps.size(0), height = maps.size(1), width = maps.size(2), plane = height * width;
  TORCH_CHECK(plane < (int64_t(1) << 31), "boxes_emulated: map too large");
  const int64_t slots = candidate_slots(height, width, params.max_candidates);
  const int chain_cap = std::max(convex_chain_capacity(height, width),
                                 unclip_capacity(height, width, params.unclip_ratio));
  const int unclip_cap = unclip_capacity(height, width, params.unclip_ratio);

  std::vector<float> records(size_t(batch * slots) * kRecord);
  std::vector<uint8_t> kept(size_t(batch * slots), 0);
  std::vector<uint8_t> text(plane);
  std::vector<int32_t> label(plane), rank(plane);
  std::vector<int32_t> slot_data(4 * size_t(std::max<int64_t>(slots, 1)));
  std::vector<int32_t> lower(2 * size_t(chain_cap)), upper(2 * size_t(chain_cap));
  std::vector<float> hull(4 * size_t(chain_cap));
  std::vector<uint64_t> keys(unclip_cap);
  HullChains chains(lower.data(), upper.data(), chain_cap);
  const std::vector<int32_t> order = thread_order(int32_t(plane), seed);
  const int64_t* dest = sizes.const_data_ptr<int64_t>();

  int32_t roots = 0;
  for (int64_t b = 0; b < batch && slots > 0; ++b) {
    const float* map = maps.const_data_ptr<float>() + b * plane;
    // threshold, labelling, ranks of the roots (a prefix sum on the device)
    for (int32_t i : order) {
      TORCH_CHECK_VALUE(std::isfinite(map[i]), "db_boxes: prob holds NaN or inf (image ", b, ")");
      text[i] = text_pixel(map, int(width), int(i % width), int(i / width), params.thresh, params.dilate);
    }
    label_image(text.data(), label.data(), int(height), int(width), seed);
    for (int64_t i = 0; i < plane; ++i) rank[i] = roots += label[i] == i;  // running over the batch
    // bounding boxes of the candidates
    const CandidateSlots s{slot_data.data(), slot_data.data() + slots, slot_data.data() + 2 * slots,
                           slot_data.data() + 3 * slots};
    for (int64_t k = 0; k < slots; ++k) init_slot(s, k);
    for (int32_t i : order) slot_bounds(text.data(), label.data(), rank.data(), int(height), int(width), slots, i, s);
    // one candidate per block on the device
    for (int64_t k = 0; k < slots; ++k) {
      const int32_t root = s.root[k];
      if (root < 0) continue;
      chains.reset();
      for (int y = root / int(width); y <= s.y_max[k]; ++y) {
        int lo, hi;
        row_extent(label.data() + int64_t(y) * width, s.x_min[k], s.x_max[k], root, lo, hi);
        if (lo > hi) continue;
        chains.push(lo, y);
        if (hi != lo) chains.push(hi, y);
      }
      TORCH_CHECK(!chains.overflow, "boxes_emulated: hull buffer too small (internal error)");
      const int n = chains.finish(hull.data());
      order_component_hull(hull.data(), n, root % int32_t(width), root / int32_t(width));
      float quad[8];
      if (!first_box(hull.data(), n, params.min_size, quad)) continue;
      ScoreWindow win;
      score_window(quad, int(height), int(width), win);
      double sum;
      int64_t count;
      window_sum(map, int(width), win, sum, count);
      const double score = mean_or_zero(sum, count);
      if (params.box_thresh > score) continue;
      float grown[8];
      const int status = grown_box(quad, params, keys.data(), unclip_cap, chains, hull.data(), grown);
      TORCH_CHECK(status >= 0, "boxes_emulated: unclip buffer too small (internal error)");
      if (status == 0) continue;
      float* record = records.data() + (b * slots + k) * kRecord;
      scale_quad(grown, int(height), int(width), float(dest[2 * b]), float(dest[2 * b + 1]), record);
      record[8] = float(score);
      kept[b * slots + k] = 1;
    }
  }
  // compaction
  at::Tensor counts = at::empty({batch}, at::kLong);
  int64_t total = 0;
  for (int64_t b = 0; b < batch; ++b) total += counts.mutable_data_ptr<int64_t>()[b] = count_kept(kept.data(), b, slots);
  std::vector<float> dense(size_t(total) * kRecord);
  for (int64_t b = 0, first = 0; b < batch; first += counts.const_data_ptr<int64_t>()[b++]) {
    gather_kept(kept.data(), records.data(), b, slots, first, dense.data());
  }
  at::Tensor boxes = at::empty({total, 4, 2}, at::kFloat), scores = at::empty({total}, at::kFloat);
  for (int64_t n = 0; n < total; ++n) {
    std::copy_n(dense.data() + n * kRecord, 8, boxes.mutable_data_ptr<float>() + 8 * n);
    scores.mutable_data_ptr<float>()[n] = dense[n * kRecord + 8];
  }
  return {boxes, scores, counts};
}

}  // namespace dbf
