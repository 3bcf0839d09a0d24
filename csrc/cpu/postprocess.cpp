// CPU entry points of post-processing: whole batches (one image per task)
// and each step alone, on raw CSR buffers.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <vector>

#include "../core/components.h"
#include "../core/postprocess.h"
#include "../core/raster.h"
#include "../core/unclip.h"
#include "../entry_points.h"

namespace dbf {
namespace {

at::Tensor offsets_tensor(const std::vector<int64_t>& offsets) {
  at::Tensor t = at::empty({int64_t(offsets.size())}, at::kLong);
  std::copy(offsets.begin(), offsets.end(), t.mutable_data_ptr<int64_t>());
  return t;
}

// A CSR point set: CPU points (N, 2) of `type` (int32 or int64) within the
// coordinate range, CPU int64 offsets from 0 to N, never decreasing.
void check_csr(const char* op, const at::Tensor& points, const at::Tensor& offsets, at::ScalarType type) {
  TORCH_CHECK(points.dim() == 2 && points.size(1) == 2 && points.scalar_type() == type && points.is_cpu(), op,
              ": points must be a (N, 2) ", type, " CPU tensor, got ", points.sizes(), " ", points.scalar_type(),
              " on ", points.device());
  TORCH_CHECK(offsets.dim() == 1 && offsets.numel() >= 1 && offsets.scalar_type() == at::kLong && offsets.is_cpu(),
              op, ": offsets must be a 1-D int64 CPU tensor with at least one element");
  const at::Tensor o = offsets.contiguous();
  const int64_t* off = o.const_data_ptr<int64_t>();
  TORCH_CHECK(off[0] == 0 && off[o.numel() - 1] == points.size(0), op,
              ": offsets must start at 0 and end at the number of points");
  for (int64_t i = 0; i + 1 < o.numel(); ++i) {
    TORCH_CHECK(off[i] <= off[i + 1], op, ": offsets must not decrease");
  }
  check_coordinates(op, "points", points);
}

std::tuple<at::Tensor, at::Tensor> contours_tensors(const Contours& c) {
  at::Tensor points = at::empty({int64_t(c.xy.size() / 2), 2}, at::kInt);
  std::copy(c.xy.begin(), c.xy.end(), points.mutable_data_ptr<int32_t>());
  return {points, offsets_tensor(c.offsets)};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> boxes_cpu(const at::Tensor& prob,
                                                         const at::Tensor& dest_sizes,
                                                         const PostParams& params) {
  TORCH_CHECK(prob.dim() == 3 && prob.scalar_type() == at::kFloat && prob.is_cpu(),
              "db_boxes: prob must be a (B, H, W) float32 CPU tensor");
  const at::Tensor maps = prob.contiguous(), sizes = checked_dest_sizes("db_boxes", prob, dest_sizes);
  const int64_t batch = maps.size(0), height = maps.size(1), width = maps.size(2);
  TORCH_CHECK(height < (1 << 24) && width < (1 << 24), "db_boxes: map too large");
  std::vector<std::vector<ScoredQuad>> found(batch);
  std::vector<char> finite(batch);
  const float* base = maps.const_data_ptr<float>();
  at::parallel_for(0, batch, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      finite[b] = boxes_from_map(base + b * height * width, int(height), int(width), params, found[b]);
    }
  });
  for (int64_t b = 0; b < batch; ++b) {
    TORCH_CHECK_VALUE(finite[b], "db_boxes: prob holds NaN or inf (image ", b, ")");
  }
  int64_t total = 0;
  for (const auto& f : found) total += int64_t(f.size());
  at::Tensor boxes = at::empty({total, 4, 2}, at::kFloat), scores = at::empty({total}, at::kFloat);
  at::Tensor counts = at::empty({batch}, at::kLong);
  float* out = boxes.mutable_data_ptr<float>();
  float* score = scores.mutable_data_ptr<float>();
  const int64_t* dest = sizes.const_data_ptr<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    counts.mutable_data_ptr<int64_t>()[b] = int64_t(found[b].size());
    // To destination pixels as the reference: x / width * dest_width in float32, clipped.
    const float dest_h = float(dest[2 * b]), dest_w = float(dest[2 * b + 1]);
    for (const ScoredQuad& q : found[b]) {
      scale_quad(q.xy, int(height), int(width), dest_h, dest_w, out);
      out += 8;
      *score++ = q.score;
    }
  }
  return {boxes, scores, counts};
}

std::tuple<at::Tensor, at::Tensor> contours_cpu(const at::Tensor& mask, bool simple) {
  TORCH_CHECK(mask.dim() == 2 && mask.scalar_type() == at::kByte && mask.is_cpu(),
              "db_contours: mask must be a (H, W) uint8 CPU tensor");
  const at::Tensor m = mask.contiguous();
  return contours_tensors(trace_contours(m.const_data_ptr<uint8_t>(), int(m.size(0)), int(m.size(1)), simple));
}

std::tuple<at::Tensor, at::Tensor> map_contours_cpu(const at::Tensor& prob, double thresh, bool dilate) {
  TORCH_CHECK(prob.dim() == 2 && prob.scalar_type() == at::kFloat && prob.is_cpu(),
              "map_contours: prob must be a (H, W) float32 CPU tensor");
  TORCH_CHECK(prob.size(0) < (1 << 24) && prob.size(1) < (1 << 24), "map_contours: map too large");
  const at::Tensor p = prob.contiguous();
  bool finite = true;
  const Contours c =
      trace_map_contours(p.const_data_ptr<float>(), int(p.size(0)), int(p.size(1)), float(thresh), dilate, &finite);
  TORCH_CHECK_VALUE(finite, "map_contours: prob holds NaN or inf");
  return contours_tensors(c);
}

std::tuple<at::Tensor, at::Tensor> min_area_quads_cpu(const at::Tensor& points, const at::Tensor& offsets) {
  check_csr("min_area_quads", points, offsets, at::kLong);
  const at::Tensor pts = points.contiguous(), off_t = offsets.contiguous();
  const int64_t count = off_t.numel() - 1;
  const int64_t* off = off_t.const_data_ptr<int64_t>();
  at::Tensor quads = at::empty({count, 4, 2}, at::kFloat), sides = at::empty({count}, at::kFloat);
  HullScratch scratch;
  for (int64_t c = 0; c < count; ++c) {
    const int64_t n = off[c + 1] - off[c];
    float* q = quads.mutable_data_ptr<float>() + 8 * c;
    if (n == 0) {
      std::fill(q, q + 8, 0.f);
      sides.mutable_data_ptr<float>()[c] = 0.f;
      continue;
    }
    sides.mutable_data_ptr<float>()[c] =
        min_area_quad(pts.const_data_ptr<int64_t>() + 2 * off[c], int(n), q, scratch);
  }
  return {quads, sides};
}

at::Tensor quad_scores_cpu(const at::Tensor& prob, const at::Tensor& quads) {
  check_quad_inputs("box_scores", prob, quads);
  const at::Tensor p = prob.contiguous(), q = quads.contiguous();
  at::Tensor out = at::empty({q.size(0)}, at::kDouble);
  RasterScratch scratch;
  for (int64_t k = 0; k < q.size(0); ++k) {
    out.mutable_data_ptr<double>()[k] = quad_score(p.const_data_ptr<float>(), int(p.size(0)), int(p.size(1)),
                                                   q.const_data_ptr<float>() + 8 * k, scratch);
  }
  return out;
}

at::Tensor contour_scores_cpu(const at::Tensor& prob, const at::Tensor& points, const at::Tensor& offsets) {
  TORCH_CHECK(prob.dim() == 2 && prob.scalar_type() == at::kFloat && prob.is_cpu(),
              "contour_scores: prob must be a (H, W) float32 CPU tensor");
  check_csr("contour_scores", points, offsets, at::kInt);
  const at::Tensor p = prob.contiguous(), pts = points.contiguous(), off_t = offsets.contiguous();
  const int64_t count = off_t.numel() - 1;
  const int64_t* off = off_t.const_data_ptr<int64_t>();
  at::Tensor out = at::empty({count}, at::kDouble);
  RasterScratch scratch;
  for (int64_t c = 0; c < count; ++c) {
    out.mutable_data_ptr<double>()[c] =
        off[c + 1] == off[c] ? 0.0
                             : contour_score(p.const_data_ptr<float>(), int(p.size(0)), int(p.size(1)),
                                             pts.const_data_ptr<int32_t>() + 2 * off[c], int(off[c + 1] - off[c]),
                                             scratch);
  }
  return out;
}

std::tuple<at::Tensor, at::Tensor> offset_polygons_cpu(const at::Tensor& points, const at::Tensor& offsets,
                                                       const at::Tensor& distances) {
  check_csr("offset_polygons", points, offsets, at::kLong);
  const int64_t count = offsets.numel() - 1;
  TORCH_CHECK(distances.dim() == 1 && distances.numel() == count && distances.scalar_type() == at::kDouble &&
                  distances.is_cpu(),
              "offset_polygons: distances must be a (K,) float64 CPU tensor, one per polygon");
  check_coordinates("offset_polygons", "distances", distances);  // the grown points stay in int64
  const at::Tensor pts = points.contiguous(), off_t = offsets.contiguous(), d = distances.contiguous();
  const int64_t* off = off_t.const_data_ptr<int64_t>();
  std::vector<int64_t> xy, out_off{0};
  for (int64_t c = 0; c < count; ++c) {
    offset_polygon_round(pts.const_data_ptr<int64_t>() + 2 * off[c], int(off[c + 1] - off[c]),
                         d.const_data_ptr<double>()[c], xy);
    out_off.push_back(int64_t(xy.size() / 2));
  }
  at::Tensor grown = at::empty({int64_t(xy.size() / 2), 2}, at::kLong);
  std::copy(xy.begin(), xy.end(), grown.mutable_data_ptr<int64_t>());
  return {grown, offsets_tensor(out_off)};
}

at::Tensor polygon_masks_cpu(const at::Tensor& points, const at::Tensor& offsets, int64_t height,
                             int64_t width) {
  check_csr("polygon_masks", points, offsets, at::kLong);
  TORCH_CHECK(height >= 0 && width >= 0 && height <= INT32_MAX && width <= INT32_MAX,
              "polygon_masks: size must be in [0, 2^31), got ", height, " x ", width);
  const at::Tensor pts = points.contiguous(), off_t = offsets.contiguous();
  const int64_t count = off_t.numel() - 1;
  const int64_t* off = off_t.const_data_ptr<int64_t>();
  at::Tensor masks = at::zeros({count, height, width}, at::kByte);
  for (int64_t c = 0; c < count; ++c) {
    fill_polygon_mask(masks.mutable_data_ptr<uint8_t>() + c * height * width, int(height), int(width),
                      pts.const_data_ptr<int64_t>() + 2 * off[c], int(off[c + 1] - off[c]));
  }
  return masks;
}

}  // namespace dbf
