// Tensor entry points of the sequential run of the CUDA quad pipeline
// (csrc/core/sequential.h). Only tests use them.
#include <ATen/ops/empty.h>

#include <algorithm>
#include <vector>

#include "../core/components.h"
#include "../core/sequential.h"
#include "../entry_points.h"

namespace dbf {

at::Tensor label_components_emulated(const at::Tensor& mask, int64_t seed) {
  TORCH_CHECK(mask.dim() == 2 && mask.scalar_type() == at::kByte && mask.is_cpu(),
              "label_components: mask must be a (H, W) uint8 CPU tensor");
  TORCH_CHECK(mask.numel() < (int64_t(1) << 31), "label_components: map too large");
  const at::Tensor m = mask.contiguous();
  std::vector<uint8_t> text(m.const_data_ptr<uint8_t>(), m.const_data_ptr<uint8_t>() + m.numel());
  for (uint8_t& t : text) t = t != 0;
  at::Tensor labels = at::empty(m.sizes(), at::kInt);
  label_sequential(text.data(), labels.mutable_data_ptr<int32_t>(), int(m.size(0)), int(m.size(1)), uint64_t(seed));
  return labels;
}

at::Tensor quad_row_scores(const at::Tensor& prob, const at::Tensor& quads) {
  check_quad_inputs("box_scores", prob, quads);
  const at::Tensor p = prob.contiguous(), q = quads.contiguous();
  at::Tensor out = at::empty({q.size(0)}, at::kDouble);
  for (int64_t k = 0; k < q.size(0); ++k) {
    out.mutable_data_ptr<double>()[k] = row_wise_quad_score(p.const_data_ptr<float>(), int(p.size(0)),
                                                            int(p.size(1)), q.const_data_ptr<float>() + 8 * k);
  }
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> boxes_emulated(const at::Tensor& prob, const at::Tensor& dest_sizes,
                                                              const PostParams& params, int64_t seed) {
  TORCH_CHECK(prob.dim() == 3 && prob.scalar_type() == at::kFloat && prob.is_cpu(),
              "boxes_emulated: prob must be a (B, H, W) float32 CPU tensor");
  TORCH_CHECK(!params.slow_score, "boxes_emulated: the CUDA pipeline scores boxes in fast mode only");
  const at::Tensor maps = prob.contiguous(), sizes = checked_dest_sizes("boxes_emulated", prob, dest_sizes);
  const int64_t batch = maps.size(0), height = maps.size(1), width = maps.size(2);
  TORCH_CHECK(height < (1 << 24) && width < (1 << 24) && height * width < (int64_t(1) << 31),
              "boxes_emulated: map too large");
  const SequentialResult run = boxes_sequential(maps.const_data_ptr<float>(), batch, int(height), int(width),
                                                params, uint64_t(seed));
  TORCH_CHECK_VALUE(run.non_finite_image < 0, "db_boxes: prob holds NaN or inf (image ", run.non_finite_image, ")");
  TORCH_CHECK(run.internal_error == 0, "boxes_emulated: buffer overflow (internal error ", run.internal_error, ")");
  const int64_t total = int64_t(run.records.size()) / kRecord;
  at::Tensor boxes = at::empty({total, 4, 2}, at::kFloat), scores = at::empty({total}, at::kFloat);
  at::Tensor counts = at::empty({batch}, at::kLong);
  std::copy(run.counts.begin(), run.counts.end(), counts.mutable_data_ptr<int64_t>());
  // To destination pixels as boxes_cuda does after its copy to the host.
  const int64_t* dest = sizes.const_data_ptr<int64_t>();
  for (int64_t b = 0, n = 0; b < batch; ++b) {
    for (int64_t e = 0; e < run.counts[b]; ++e, ++n) {
      scale_quad(run.records.data() + n * kRecord, int(height), int(width), float(dest[2 * b]),
                 float(dest[2 * b + 1]), boxes.mutable_data_ptr<float>() + 8 * n);
      scores.mutable_data_ptr<float>()[n] = run.records[n * kRecord + 8];
    }
  }
  return {boxes, scores, counts};
}

}  // namespace dbf
