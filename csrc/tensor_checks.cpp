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

}  // namespace dbf
