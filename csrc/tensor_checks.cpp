#include <c10/util/Exception.h>

#include <utility>

#include "entry_points.h"

namespace dbf {

void check_same_floating(const char* op, const at::Tensor& a, const char* a_name,
                         const at::Tensor& b, const char* b_name) {
  TORCH_CHECK(a.is_floating_point(), op, ": ", a_name, " must be a floating-point tensor, got ",
              a.scalar_type());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), op, ": ", a_name, " and ", b_name,
              " must have the same dtype, got ", a.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK(a.device() == b.device(), op, ": ", a_name, " and ", b_name,
              " must be on the same device, got ", a.device(), " and ", b.device());
  TORCH_CHECK(a.sizes() == b.sizes(), op, ": ", a_name, " and ", b_name,
              " must have the same shape, got ", a.sizes(), " and ", b.sizes());
}

LossMaps::LossMaps(const char* op, const at::Tensor& prob, const at::Tensor& thresh,
                   const at::Tensor& gt, const at::Tensor& mask, const at::Tensor& tmap,
                   const at::Tensor& tmask) {
  check_same_floating(op, prob, "prob_logits", thresh, "thresh_logits");
  const auto label_type = prob.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const std::pair<const at::Tensor*, const char*> labels[] = {
      {&gt, "shrink_map"}, {&mask, "shrink_mask"}, {&tmap, "thresh_map"}, {&tmask, "thresh_mask"}};
  for (const auto& [tensor, name] : labels) {
    TORCH_CHECK(tensor->scalar_type() == label_type, op, ": ", name, " must be ", label_type,
                " for ", prob.scalar_type(), " logits, got ", tensor->scalar_type());
    TORCH_CHECK(tensor->device() == prob.device(), op, ": ", name,
                " must be on the device of prob_logits");
    TORCH_CHECK(tensor->sizes() == prob.sizes(), op, ": ", name,
                " must have the shape of prob_logits, got ", tensor->sizes(), " and ",
                prob.sizes());
  }
  prob_logits = prob.contiguous();
  thresh_logits = thresh.contiguous();
  shrink_map = gt.contiguous();
  shrink_mask = mask.contiguous();
  thresh_map = tmap.contiguous();
  thresh_mask = tmask.contiguous();
}

at::Tensor checked_dest_sizes(const char* op, const at::Tensor& prob, const at::Tensor& dest_sizes) {
  TORCH_CHECK(dest_sizes.dim() == 2 && dest_sizes.size(0) == prob.size(0) && dest_sizes.size(1) == 2 &&
                  dest_sizes.scalar_type() == at::kLong && dest_sizes.is_cpu(),
              op, ": dest_sizes must be a (B, 2) int64 CPU tensor for B = ", prob.size(0), ", got ",
              dest_sizes.sizes(), " ", dest_sizes.scalar_type(), " on ", dest_sizes.device());
  at::Tensor sizes = dest_sizes.contiguous();
  const int64_t* size = sizes.const_data_ptr<int64_t>();
  for (int64_t i = 0; i < sizes.numel(); ++i) {
    TORCH_CHECK_VALUE(size[i] >= 0, op, ": dest_sizes must be non-negative, got ", size[i]);
  }
  return sizes;
}

void check_loss_saved(const LossMaps& maps, const at::Tensor& grad_terms, const at::Tensor& keys,
                      const at::Tensor& stats) {
  const at::Tensor& prob = maps.prob_logits;
  const auto key_type = prob.scalar_type() == at::kDouble ? at::kLong : at::kInt;
  TORCH_CHECK(grad_terms.numel() == 4 && stats.numel() == kNumStats &&
                  stats.scalar_type() == at::kDouble && keys.sizes() == prob.sizes() &&
                  keys.scalar_type() == key_type,
              "db_loss_backward: grad_terms, keys or stats do not come from db_loss");
  for (const at::Tensor* t : {&grad_terms, &keys, &stats}) {
    TORCH_CHECK(t->device() == prob.device(),
                "db_loss_backward: grad_terms, keys and stats must be on the device of the logits");
  }
}

namespace {
template <class T>
void check_values_in_range(const char* op, const char* name, const at::Tensor& values) {
  const at::Tensor c = values.contiguous();
  const T* v = c.const_data_ptr<T>();
  for (int64_t i = 0; i < c.numel(); ++i) {  // (NaN fails both comparisons)
    TORCH_CHECK_VALUE(v[i] >= T(-kMaxCoordinate) && v[i] <= T(kMaxCoordinate), op, ": ", name,
                      " must be finite and within +-", kMaxCoordinate, ", got ", v[i]);
  }
}
}  // namespace

void check_coordinates(const char* op, const char* name, const at::Tensor& values) {
  TORCH_CHECK(values.is_cpu(), op, ": ", name, " must be a CPU tensor");
  switch (values.scalar_type()) {
    case at::kInt: return check_values_in_range<int32_t>(op, name, values);
    case at::kLong: return check_values_in_range<int64_t>(op, name, values);
    case at::kFloat: return check_values_in_range<float>(op, name, values);
    case at::kDouble: return check_values_in_range<double>(op, name, values);
    default: TORCH_CHECK(false, op, ": ", name, " must be int32, int64, float32 or float64, got ",
                         values.scalar_type());
  }
}

void check_quad_inputs(const char* op, const at::Tensor& prob, const at::Tensor& quads) {
  TORCH_CHECK(prob.dim() == 2 && prob.scalar_type() == at::kFloat && prob.is_cpu(), op,
              ": prob must be a (H, W) float32 CPU tensor");
  TORCH_CHECK(quads.dim() == 3 && quads.size(1) == 4 && quads.size(2) == 2 &&
                  quads.scalar_type() == at::kFloat && quads.is_cpu(),
              op, ": boxes must be a (K, 4, 2) float32 CPU tensor");
  check_coordinates(op, "boxes", quads);
}

namespace {
// offsets: int64, 1-D, starts at 0, never decreases, ends at `total`.
void check_offsets(const at::Tensor& offsets, const char* name, int64_t total) {
  TORCH_CHECK(offsets.scalar_type() == at::kLong && offsets.dim() == 1 && offsets.numel() >= 1,
              "db_targets: ", name, " must be a 1-D int64 tensor with at least one element");
  const at::Tensor o = offsets.contiguous();
  const int64_t* v = o.const_data_ptr<int64_t>();
  TORCH_CHECK(v[0] == 0 && v[o.numel() - 1] == total, "db_targets: ", name,
              " must start at 0 and end at ", total);
  for (int64_t i = 1; i < o.numel(); ++i) {
    TORCH_CHECK(v[i] >= v[i - 1], "db_targets: ", name, " must not decrease");
  }
}
}  // namespace

void check_targets_inputs(const at::Tensor& points, const at::Tensor& polygon_offsets,
                          const at::Tensor& image_offsets, const at::Tensor& ignore,
                          int64_t height, int64_t width) {
  TORCH_CHECK(points.scalar_type() == at::kFloat && points.dim() == 2 && points.size(1) == 2,
              "db_targets: points must be a float32 (N, 2) tensor");
  TORCH_CHECK(height >= 1 && width >= 1 && height <= (1 << 20) && width <= (1 << 20),
              "db_targets: size must be positive (and at most 2^20), got ", height, " x ", width);
  // Checked where they are read, before any upload (the CUDA path copies them to the device).
  for (const at::Tensor* t : {&polygon_offsets, &image_offsets, &ignore}) {
    TORCH_CHECK(t->is_cpu(), "db_targets: polygon_offsets, image_offsets and ignore must be CPU tensors, got ",
                t->device());
  }
  check_offsets(polygon_offsets, "polygon_offsets", points.size(0));
  check_offsets(image_offsets, "image_offsets", polygon_offsets.numel() - 1);
  TORCH_CHECK(ignore.scalar_type() == at::kBool && ignore.dim() == 1 &&
                  ignore.numel() == polygon_offsets.numel() - 1,
              "db_targets: ignore must be a bool tensor with one flag per polygon");
}

}  // namespace dbf
