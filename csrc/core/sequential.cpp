#include "sequential.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "components.h"

namespace dbf {
namespace {

// Sum and count of prob under a box's fillPoly rows (the device splits the
// rows over warps and the pixels over lanes).
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

void label_in_order(const uint8_t* text, int32_t* label, int width, const std::vector<int32_t>& order) {
  for (int32_t i : order) init_label(text, label, width, i);
  for (int32_t i : order) merge_label(text, label, width, i);
  for (int32_t i : order) flatten_start(text, label, width, i);
  for (int32_t i : order) flatten_rest(text, label, width, i);
}

}  // namespace

std::vector<int32_t> thread_order(int32_t n, uint64_t seed) {
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (seed == 1) std::reverse(order.begin(), order.end());
  if (seed > 1) std::shuffle(order.begin(), order.end(), std::mt19937_64(seed));
  return order;
}

void label_sequential(const uint8_t* text, int32_t* label, int height, int width, uint64_t seed) {
  label_in_order(text, label, width, thread_order(height * width, seed));
}

double row_wise_quad_score(const float* prob, int height, int width, const float* quad) {
  ScoreWindow win;
  score_window(quad, height, width, win);
  double sum;
  int64_t count;
  window_sum(prob, width, win, sum, count);
  return mean_or_zero(sum, count);
}

SequentialResult boxes_sequential(const float* maps, int64_t batch, int height, int width,
                                  const PostParams& params, uint64_t seed) {
  SequentialResult result;
  result.counts.assign(size_t(batch), 0);
  const int64_t plane = int64_t(height) * width;
  const int64_t slots = candidate_slots(height, width, params.max_candidates);
  if (batch <= 0 || plane <= 0) return result;
  const int unclip_cap = unclip_capacity(height, width, params.unclip_ratio);
  const int chain_cap = std::max(convex_chain_capacity(height, width), unclip_cap);

  // text_kernel first over the whole batch: NaN and inf refuse it.
  const std::vector<int32_t> order = thread_order(int32_t(plane), seed);
  std::vector<uint8_t> text(size_t(batch * plane));
  for (int64_t b = 0; b < batch; ++b) {
    const float* map = maps + b * plane;
    for (int32_t i : order) {
      if (!std::isfinite(map[i]) && result.non_finite_image < 0) result.non_finite_image = b;
      text[b * plane + i] = text_pixel(map, width, i % width, i / width, params.thresh, params.dilate);
    }
  }
  if (result.non_finite_image >= 0 || slots == 0) return result;

  std::vector<float> records(size_t(batch * slots) * kRecord);
  std::vector<uint8_t> kept(size_t(batch * slots), 0);
  std::vector<int32_t> label(plane), rank(plane), slot_data(4 * size_t(slots));
  std::vector<int32_t> lower(2 * size_t(chain_cap)), upper(2 * size_t(chain_cap));
  std::vector<float> hull(4 * size_t(chain_cap));
  std::vector<uint64_t> keys(unclip_cap);
  HullChains chains(lower.data(), upper.data(), chain_cap);
  int32_t roots = 0;  // the device's prefix sum runs over the whole batch
  for (int64_t b = 0; b < batch; ++b) {
    const float* map = maps + b * plane;
    const uint8_t* txt = text.data() + b * plane;
    label_in_order(txt, label.data(), width, order);
    for (int64_t i = 0; i < plane; ++i) rank[i] = roots += label[i] == i;
    const CandidateSlots s{slot_data.data(), slot_data.data() + slots, slot_data.data() + 2 * slots,
                           slot_data.data() + 3 * slots};
    for (int64_t k = 0; k < slots; ++k) init_slot(s, k);
    for (int32_t i : order) slot_bounds(txt, label.data(), rank.data(), height, width, slots, i, s);
    // candidates_kernel: one block per candidate on the device
    for (int64_t k = 0; k < slots; ++k) {
      const int32_t root = s.root[k];
      if (root < 0) continue;
      chains.reset();
      for (int y = root / width; y <= s.y_max[k]; ++y) {
        int lo, hi;
        row_extent(label.data() + int64_t(y) * width, s.x_min[k], s.x_max[k], root, lo, hi);
        if (lo > hi) continue;
        chains.push(lo, y);
        if (hi != lo) chains.push(hi, y);
      }
      if (chains.overflow) {
        result.internal_error |= 1;
        continue;
      }
      const int n = chains.finish(hull.data());
      order_component_hull(hull.data(), n, root % width, root / width);
      float quad[8];
      if (!first_box(hull.data(), n, params.min_size, quad)) continue;
      const double score = row_wise_quad_score(map, height, width, quad);
      if (params.box_thresh > score) continue;
      float* record = records.data() + (b * slots + k) * kRecord;
      const int status = grown_box(quad, params, keys.data(), unclip_cap, chains, hull.data(), record);
      if (status < 0) result.internal_error |= 2;
      if (status <= 0) continue;
      record[8] = float(score);
      kept[b * slots + k] = 1;
    }
  }
  // compact_kernel
  int64_t total = 0;
  for (int64_t b = 0; b < batch; ++b) total += result.counts[b] = count_kept(kept.data(), b, slots);
  result.records.resize(size_t(total) * kRecord);
  for (int64_t b = 0, first = 0; b < batch; first += result.counts[b++]) {
    gather_kept(kept.data(), records.data(), b, slots, first, result.records.data());
  }
  return result;
}

}  // namespace dbf
