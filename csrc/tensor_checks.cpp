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

void check_loss_inputs(const char* op, const at::Tensor& prob_logits, const at::Tensor& thresh_logits,
                       const at::Tensor& shrink_map, const at::Tensor& shrink_mask,
                       const at::Tensor& thresh_map, const at::Tensor& thresh_mask) {
  check_same_floating(op, prob_logits, "prob_logits", thresh_logits, "thresh_logits");
  const auto target_type =
      prob_logits.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const std::pair<const at::Tensor*, const char*> targets[] = {
      {&shrink_map, "shrink_map"}, {&shrink_mask, "shrink_mask"},
      {&thresh_map, "thresh_map"}, {&thresh_mask, "thresh_mask"}};
  for (const auto& [tensor, name] : targets) {
    TORCH_CHECK(tensor->scalar_type() == target_type, op, ": ", name, " must be ", target_type,
                " for ", prob_logits.scalar_type(), " logits, got ", tensor->scalar_type());
    TORCH_CHECK(tensor->device() == prob_logits.device(), op, ": ", name,
                " must be on the device of prob_logits");
    TORCH_CHECK(tensor->sizes() == prob_logits.sizes(), op, ": ", name,
                " must have the shape of prob_logits, got ", tensor->sizes(), " and ",
                prob_logits.sizes());
  }
}

}  // namespace dbf
