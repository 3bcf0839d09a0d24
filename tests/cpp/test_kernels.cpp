// Native tests of the CUDA kernels themselves (csrc/cuda/*_kernels.cuh), run
// on the host through the execution model of csrc/cuda/host_emulation.h under
// several schedules (in `make cpp-sanitize` with ASan and UBSan too), each
// family against host code: binarize's vector and scalar paths, the loss's
// block reduction for any block size and its pixel pass, label generation's
// span fill, post-processing's labelling against a flood fill and its whole
// pipeline (the same boxes under every schedule, finite, scores in range).
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "../../csrc/cuda/binarize_kernels.cuh"
#include "../../csrc/cuda/loss_kernels.cuh"
#include "../../csrc/cuda/postprocess_kernels.cuh"
#include "../../csrc/cuda/targets_kernels.cuh"
#include "check.h"
#include "flood_labels.h"
#include "quad_pipeline.h"

namespace {

using dbf_emu::Order;
using dbf_emu::Schedule;

const Schedule kSchedules[] = {{Order::kRaster, 0}, {Order::kReversed, 0}, {Order::kRandom, 3}};

// A launch as a launcher makes it: followed by its check.
#define LAUNCH(grid, block, shared, ...) DBF_LAUNCH(grid, block, shared, nullptr, __VA_ARGS__)
#define CHECKED(call) (call, dbf_emu::launch_checked())

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Forward and backward, vector kernels on aligned buffers and scalar ones at
// an element offset, against the element functions on the host, bit for bit.
void test_binarize() {
  using namespace dbf::binarize_kernels;
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> unit(-0.5f, 1.5f);
  const int n = 4 * 1000 + 3, stride = n + 5;  // a tail after the packs of four; buffers 16-byte apart
  std::vector<float> storage(3 * stride + 16);
  for (float& v : storage) v = unit(rng);
  const auto gain = dbf::BinarizeGain<float>::from(50.0);
  for (const Schedule& s : kSchedules) {
    dbf_emu::set_schedule(s);
    for (int offset : {0, 1}) {  // 16-byte aligned, then one float off
      const float* prob = storage.data() + offset;
      const float* thresh = prob + stride;
      std::vector<float> out(size_t(n) + 1, -7.f), grad_p(size_t(n), -7.f), grad_t(size_t(n), -7.f);
      if (offset == 0) {
        CHECKED(LAUNCH(3, 64, 0, forward_kernel<float, true>)(prob, thresh, out.data(), int64_t(n), gain));
      } else {
        CHECKED(LAUNCH(3, 64, 0, forward_kernel<float, false>)(prob, thresh, out.data(), int64_t(n), gain));
      }
      std::vector<float> want(size_t(n) + 1, -7.f);
      for (int i = 0; i < n; ++i) want[size_t(i)] = dbf::binarize_value(prob[i], thresh[i], gain);
      DBF_CHECK(same_bits(out, want), "forward (offset %d, order %d) differs from the host", offset, int(s.order));
      const float* grad = thresh + stride;
      CHECKED(LAUNCH(2, 96, 0, backward_kernel<float, false>)(grad, out.data(), grad_p.data(), grad_t.data(),
                                                               int64_t(n), 50.f));
      bool ok = true;
      for (int i = 0; i < n; ++i) {
        const float d = dbf::binarize_grad(grad[i], out[size_t(i)], 50.f);
        ok = ok && grad_p[size_t(i)] == d && grad_t[size_t(i)] == -d;
      }
      DBF_CHECK(ok, "backward (order %d) differs from the host", int(s.order));
    }
  }
}

// block_sum for any block size: thread 0 gets the exact sums.
__global__ void block_sum_kernel(double* out) {
  double v[2] = {double(threadIdx.x), 1.0};
  dbf::loss_kernels::block_sum(v);
  if (threadIdx.x == 0) out[2 * blockIdx.x] = v[0], out[2 * blockIdx.x + 1] = v[1];
}

void test_block_sum() {
  for (const Schedule& s : kSchedules) {
    dbf_emu::set_schedule(s);
    for (int threads : {1, 7, 31, 32, 33, 100, 255, 256, 257, 1000, 1024}) {
      std::vector<double> out(4, -1.0);
      CHECKED(LAUNCH(2, threads, 0, block_sum_kernel)(out.data()));
      const double want = double(threads) * (threads - 1) / 2;
      DBF_CHECK(out[0] == want && out[1] == threads && out[2] == want && out[3] == threads,
                "block_sum over %d threads (order %d): %g and %g, want %g and %d", threads, int(s.order), out[0],
                out[1], want, threads);
    }
  }
}

// The pixel pass: keys, the digit-0 histogram and the per-block sums against the host.
void test_loss_pixels() {
  using namespace dbf::loss_kernels;
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<float> logit(-12.f, 12.f), unit(0.f, 1.f);
  const int64_t n = 5000;
  std::vector<float> xp(n), xt(n), gt(n), mask(n), tm(n), tmask(n);
  for (int64_t i = 0; i < n; ++i) {
    xp[i] = logit(rng), xt[i] = logit(rng), gt[i] = unit(rng) < 0.3f, mask[i] = unit(rng) < 0.9f;
    tm[i] = 0.3f + 0.4f * unit(rng), tmask[i] = unit(rng) < 0.5f;
  }
  const auto k = dbf::BinarizeGain<float>::from(50.0);
  std::vector<uint32_t> want_keys(n);
  std::vector<unsigned long long> want_hist(dbf::kRadixBins, 0);
  std::vector<double> want_sums(dbf::kNumSums, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const dbf::LossPoint<float> q = dbf::loss_point(xp[i], xt[i], gt[i], k);
    want_keys[i] = dbf::is_negative(gt[i], mask[i]) ? dbf::loss_key(q.bce) : 0u;
    ++want_hist[dbf::radix_digit(want_keys[i], 0)];
    float c[dbf::kNumSums];
    dbf::pixel_sums(q, gt[i], mask[i], tm[i], tmask[i], c);
    for (int j = 0; j < dbf::kNumSums; ++j) want_sums[j] += c[j];
  }
  for (const Schedule& s : kSchedules) {
    dbf_emu::set_schedule(s);
    const int blocks = 5;
    std::vector<uint32_t> keys(n);
    std::vector<unsigned long long> hist(dbf::kRadixBins, 0);
    std::vector<double> partials(blocks * dbf::kNumSums);
    CHECKED(LAUNCH(blocks, 128, 0, pixels_kernel<float, float, uint32_t>)(
        xp.data(), xt.data(), gt.data(), mask.data(), tm.data(), tmask.data(), keys.data(), n, k, partials.data(),
        hist.data()));
    DBF_CHECK(keys == want_keys, "keys (order %d)", int(s.order));
    DBF_CHECK(hist == want_hist, "digit-0 histogram (order %d)", int(s.order));
    for (int j = 0; j < dbf::kNumSums; ++j) {
      double sum = 0.0;
      for (int b = 0; b < blocks; ++b) sum += partials[size_t(b * dbf::kNumSums + j)];
      DBF_CHECK(std::fabs(sum - want_sums[size_t(j)]) <= 1e-9 * (1.0 + std::fabs(want_sums[size_t(j)])),
                "sum %d (order %d): %.17g, want %.17g", j, int(s.order), sum, want_sums[size_t(j)]);
    }
  }
}

// fill_row's sorted crossings (and, past kRowCrossings, its per-pixel rule)
// against the even-odd rule evaluated on the host for every pixel.
__global__ void fill_rows_kernel(const dbf::FillEdge* fills, int64_t count, int height, int width, float* out) {
  DBF_SHARED(int64_t[dbf::targets_kernels::kRowCrossings], xs);
  DBF_SHARED(int, crossings);
  for (int y = int(blockIdx.x); y < height; y += int(gridDim.x)) {
    dbf::targets_kernels::fill_row(fills, count, y, width, 1.f, out + int64_t(y) * width, xs, &crossings);
  }
}

void test_fill_rows() {
  std::mt19937_64 rng(21);
  for (int t = 0; t < 40; ++t) {
    const int height = 5 + int(rng() % 60), width = 5 + int(rng() % 60);
    const int points = t % 10 == 9 ? 700 : 3 + int(rng() % 30);  // 700: some rows cross more than 256 edges
    const auto coordinate = [&](int size) { return int32_t(int(rng() % uint64_t(size + 20)) - 10); };
    std::vector<dbf::IPoint> polygon;
    for (int i = 0; i < points; ++i) {  // (the 700-point one zigzags from above the map to below)
      polygon.push_back({coordinate(width), t % 10 == 9 ? (i % 2 ? height + 5 : -5) : coordinate(height)});
    }
    std::vector<dbf::FillEdge> fills;
    for (int i = 0; i < points; ++i) {
      const dbf::Segment edge{polygon[size_t(i)], polygon[size_t((i + 1) % points)]};
      dbf::FillEdge e;
      if (dbf::make_fill_edge(edge, height, width, e)) fills.push_back(e);
    }
    std::vector<float> want(size_t(height) * width, 0.f);
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        int64_t below = 0, equal = 0, active = 0;
        for (const dbf::FillEdge& e : fills) {
          if (e.y0 > y || y >= e.y1) continue;
          const int64_t v = dbf::fill_x(e, y);
          ++active, below += v < int64_t(x) * 65536, equal += v == int64_t(x) * 65536;
        }
        if (dbf::even_odd_covers(below, equal, active)) want[size_t(y) * width + x] = 1.f;
      }
    }
    for (const Schedule& s : kSchedules) {
      dbf_emu::set_schedule(s);
      std::vector<float> out(want.size(), 0.f);
      CHECKED(LAUNCH(4, 64, 0, fill_rows_kernel)(fills.data(), int64_t(fills.size()), height, width, out.data()));
      DBF_CHECK(out == want, "polygon %d (%d points, %d x %d), order %d: the fill differs", t, points, height, width,
                int(s.order));
    }
  }
}

// The labelling kernels on random masks: each text pixel gets its component's first pixel.
void test_labelling() {
  std::mt19937_64 rng(17);
  for (int t = 0; t < 60; ++t) {
    const int h = 1 + int(rng() % 70), w = 1 + int(rng() % 90);
    const double density = std::uniform_real_distribution<double>(0.1, 1.0)(rng);
    std::vector<uint8_t> text(size_t(h) * w);
    for (uint8_t& v : text) v = std::uniform_real_distribution<double>(0, 1)(rng) < density;
    const std::vector<int32_t> want = dbf_test::flood_labels(text, h, w);
    for (const Schedule& s : kSchedules) {
      dbf_emu::set_schedule(s);
      const std::vector<int32_t> label = dbf_test::emulated_labels(text.data(), h, w);
      DBF_CHECK(label == want, "mask %d (%d x %d, density %.2f), order %d: labels differ from a flood fill", t, h, w,
                density, int(s.order));
    }
  }
}

// Random maps of blobs (some touching the border, some with holes) and noise.
void test_quad_pipeline() {
  std::mt19937_64 rng(33);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  size_t boxes = 0;
  for (int t = 0; t < 12; ++t) {
    const int h = 20 + int(rng() % 100), w = 20 + int(rng() % 140);
    std::vector<float> prob(size_t(h) * w);
    for (float& p : prob) p = 0.2f * unit(rng);
    for (int blob = 0; blob < 1 + int(rng() % 12); ++blob) {
      const float cx = unit(rng) * w, cy = unit(rng) * h, rx = 2 + unit(rng) * w / 4, ry = 1 + unit(rng) * h / 6;
      const float level = 0.5f + 0.5f * unit(rng), hole = unit(rng) < 0.3f ? 0.5f : 0.f;
      for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
          const float d = ((x - cx) / rx) * ((x - cx) / rx) + ((y - cy) / ry) * ((y - cy) / ry);
          if (d <= 1.f && d >= hole * hole) prob[size_t(y) * w + x] = level;
        }
      }
    }
    dbf::PostParams params;
    params.box_thresh = 0.3;
    params.dilate = t % 2 == 1;
    params.max_candidates = t % 4 == 0 ? 3 : 1000;
    params.unclip_ratio = t % 3 == 0 ? 40.0 : 1.5;  // 40: grown boxes reach far outside the map
    std::vector<float> first;
    for (const Schedule& s : kSchedules) {
      dbf_emu::set_schedule(s);
      const dbf_test::QuadPipeline run = dbf_test::run_quad_pipeline(prob.data(), h, w, params);
      DBF_CHECK(run.error == 0 && !run.non_finite, "map %d, order %d: error %d", t, int(s.order), run.error);
      bool sane = true;
      for (size_t r = 0; r < run.records.size(); r += dbf::kRecord) {
        for (int j = 0; j < 8; ++j) sane = sane && std::isfinite(run.records[r + size_t(j)]);
        sane = sane && run.records[r + 8] >= 0.3f && run.records[r + 8] <= 1.f;
      }
      DBF_CHECK(sane, "map %d, order %d: a box is not finite or its score out of range", t, int(s.order));
      if (&s == kSchedules) first = run.records;
      DBF_CHECK(same_bits(run.records, first), "map %d: order %d gives other boxes than raster", t, int(s.order));
    }
    DBF_CHECK(params.max_candidates != 3 || first.size() <= 3 * dbf::kRecord, "map %d: more than 3 boxes", t);
    boxes += first.size() / dbf::kRecord;
  }
  std::printf("quad pipeline: %zu boxes on 12 maps\n", boxes);
  DBF_CHECK(boxes >= 20, "only %zu boxes: the maps do not exercise the pipeline", boxes);
}

}  // namespace

int main() {
  try {
    test_binarize();
    test_block_sum();
    test_loss_pixels();
    test_fill_rows();
    test_labelling();
    test_quad_pipeline();
  } catch (const dbf_emu::Error& error) {  // a kernel the emulator stopped
    DBF_CHECK(false, "%s", error.what());
  }
  return dbf_test::finish("test_kernels");
}
