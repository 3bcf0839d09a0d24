// The one Python module of the package: device dispatch of the entry points
// and the build description. Only dbnet_fast.ops calls into it.
#include <torch/extension.h>

#include "core/clones.h"
#include "entry_points.h"

#if !defined(DBF_VERSION) || !defined(DBF_TORCH_VERSION)
#error "setup.py defines DBF_VERSION and DBF_TORCH_VERSION"
#endif
#ifndef DBF_CUDA_ARCHS
#define DBF_CUDA_ARCHS ""
#endif

namespace dbf {
namespace {

#ifdef DBF_WITH_CUDA
constexpr bool kWithCuda = true;
#else
constexpr bool kWithCuda = false;
#endif

// Picks the backend of the first tensor's device; CUDA tensors in a build
// without CUDA kernels get a clear error rather than a missing symbol.
template <class CpuFn, class CudaFn>
auto dispatch(const char* op, const at::Tensor& first, CpuFn cpu, CudaFn cuda) {
  if (first.is_cpu()) return cpu();
  TORCH_CHECK(first.is_cuda(), op, ": tensors on ", first.device(),
              " are not supported (CPU and CUDA only)");
  TORCH_CHECK(kWithCuda, op, ": dbnet_fast was built without CUDA kernels; rebuild with "
              "DBNET_FAST_WITH_CUDA=1 or install a CUDA wheel");
  return cuda();
}

at::Tensor binarize_forward(const at::Tensor& prob, const at::Tensor& thresh, double k) {
  return dispatch("db_binarize", prob,
                  [&] { return binarize_forward_cpu(prob, thresh, k); },
                  [&] {
#ifdef DBF_WITH_CUDA
                    return binarize_forward_cuda(prob, thresh, k);
#else
                    return at::Tensor();
#endif
                  });
}

std::tuple<at::Tensor, at::Tensor> binarize_backward(const at::Tensor& grad, const at::Tensor& out,
                                                     double k) {
  return dispatch("db_binarize_backward", grad,
                  [&] { return binarize_backward_cpu(grad, out, k); },
                  [&] {
#ifdef DBF_WITH_CUDA
                    return binarize_backward_cuda(grad, out, k);
#else
                    return std::tuple<at::Tensor, at::Tensor>();
#endif
                  });
}

LossConfig loss_config(double k, double bce_weight, double dice_weight, double l1_weight,
                       double ohem_ratio, double eps) {
  return {k, bce_weight, dice_weight, l1_weight, ohem_ratio, eps};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> loss_forward(
    const at::Tensor& prob_logits, const at::Tensor& thresh_logits, const at::Tensor& shrink_map,
    const at::Tensor& shrink_mask, const at::Tensor& thresh_map, const at::Tensor& thresh_mask,
    double k, double bce_weight, double dice_weight, double l1_weight, double ohem_ratio,
    double eps) {
  const LossConfig config = loss_config(k, bce_weight, dice_weight, l1_weight, ohem_ratio, eps);
  return dispatch("db_loss", prob_logits,
                  [&] {
                    return loss_forward_cpu(prob_logits, thresh_logits, shrink_map, shrink_mask,
                                            thresh_map, thresh_mask, config);
                  },
                  [&] {
#ifdef DBF_WITH_CUDA
                    return loss_forward_cuda(prob_logits, thresh_logits, shrink_map, shrink_mask,
                                             thresh_map, thresh_mask, config);
#else
                    return std::tuple<at::Tensor, at::Tensor, at::Tensor>();
#endif
                  });
}

std::tuple<at::Tensor, at::Tensor> loss_backward(
    const at::Tensor& grad_terms, const at::Tensor& prob_logits, const at::Tensor& thresh_logits,
    const at::Tensor& shrink_map, const at::Tensor& shrink_mask, const at::Tensor& thresh_map,
    const at::Tensor& thresh_mask, const at::Tensor& keys, const at::Tensor& stats, double k,
    double bce_weight, double dice_weight, double l1_weight, double ohem_ratio, double eps) {
  const LossConfig config = loss_config(k, bce_weight, dice_weight, l1_weight, ohem_ratio, eps);
  return dispatch("db_loss_backward", prob_logits,
                  [&] {
                    return loss_backward_cpu(grad_terms, prob_logits, thresh_logits, shrink_map,
                                             shrink_mask, thresh_map, thresh_mask, keys, stats,
                                             config);
                  },
                  [&] {
#ifdef DBF_WITH_CUDA
                    return loss_backward_cuda(grad_terms, prob_logits, thresh_logits, shrink_map,
                                              shrink_mask, thresh_map, thresh_mask, keys, stats,
                                              config);
#else
                    return std::tuple<at::Tensor, at::Tensor>();
#endif
                  });
}

at::Tensor targets(const at::Tensor& points, const at::Tensor& polygon_offsets,
                   const at::Tensor& image_offsets, const at::Tensor& ignore, int64_t height,
                   int64_t width, double shrink_ratio, double thresh_min, double thresh_max,
                   double min_text_size, bool exact) {
  const TargetParams params{shrink_ratio, thresh_min, thresh_max, min_text_size, exact};
  return dispatch("db_targets", points,
                  [&] {
                    return targets_cpu(points, polygon_offsets, image_offsets, ignore, height,
                                       width, params);
                  },
                  [&] {
#ifdef DBF_WITH_CUDA
                    return targets_cuda(points, polygon_offsets, image_offsets, ignore, height,
                                        width, params);
#else
                    return at::Tensor();
#endif
                  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> boxes(const at::Tensor& prob, const at::Tensor& dest_sizes,
                                                     double thresh, double box_thresh, double unclip_ratio,
                                                     int64_t max_candidates, bool slow_score, bool dilate,
                                                     double min_size) {
  const PostParams params{float(thresh), box_thresh, unclip_ratio, max_candidates, slow_score, dilate, min_size};
  return dispatch("db_boxes", prob, [&] { return boxes_cpu(prob, dest_sizes, params); },
                  [&] {
#ifdef DBF_WITH_CUDA
                    return boxes_cuda(prob, dest_sizes, params);
#else
                    return std::tuple<at::Tensor, at::Tensor, at::Tensor>();
#endif
                  });
}

py::dict build_info() {
  py::dict info;
  info["version"] = DBF_VERSION;
  info["torch_version"] = DBF_TORCH_VERSION;
  info["with_cuda"] = kWithCuda;
#ifdef DBF_CUDA_VERSION
  info["cuda_version"] = DBF_CUDA_VERSION;
#else
  info["cuda_version"] = py::none();
#endif
  info["cuda_archs"] = DBF_CUDA_ARCHS;
  info["cxx_compiler"] = __VERSION__;
  return info;
}

// The CPU kernels' variant (csrc/core/clones.h) and those this CPU can run, lowest first.
py::tuple cpu_variants() {
  py::list runnable;
  for (int v = 0; v <= int(best_cpu_variant()); ++v) runnable.append(cpu_variant_name(CpuVariant(v)));
  return py::make_tuple(cpu_variant_name(cpu_variant()), runnable);
}

}  // namespace
}  // namespace dbf

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "dbnet_fast native kernels (use dbnet_fast.ops, not this module)";
  // A forced variant this CPU cannot run: refuse to load (ImportError) rather than crash later.
  if (*dbf::cpu_variant_error() != '\0') throw std::runtime_error(dbf::cpu_variant_error());
  m.def("binarize_forward", &dbf::binarize_forward, py::arg("prob"), py::arg("thresh"), py::arg("k"));
  m.def("binarize_backward", &dbf::binarize_backward, py::arg("grad"), py::arg("out"), py::arg("k"));
  m.def("loss_forward", &dbf::loss_forward);
  m.def("loss_backward", &dbf::loss_backward);
  m.def("loss_stats_size", [] { return int(dbf::kNumStats); });
  m.def("targets", &dbf::targets);
  m.def("boxes", &dbf::boxes);
  m.def("contours", &dbf::contours_cpu);
  m.def("map_contours", &dbf::map_contours_cpu);
  m.def("min_area_quads", &dbf::min_area_quads_cpu);
  m.def("quad_scores", &dbf::quad_scores_cpu);
  m.def("contour_scores", &dbf::contour_scores_cpu);
  m.def("offset_polygons", &dbf::offset_polygons_cpu);
  m.def("polygon_masks", &dbf::polygon_masks_cpu);
  m.def("build_info", &dbf::build_info);
  m.def("cpu_variants", &dbf::cpu_variants);
  m.attr("max_coordinate") = dbf::kMaxCoordinate;  // the range rule of point coordinates
}
