// Torch-facing entry points of each backend, bound by bindings.cpp.
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "core/loss.h"
#include "core/postprocess.h"
#include "core/targets.h"

namespace dbf {

// B = sigmoid(k (prob - thresh)); inputs of one shape, dtype and device.
at::Tensor binarize_forward_cpu(const at::Tensor& prob, const at::Tensor& thresh, double k);
// (dL/dprob, dL/dthresh) = (+-) grad * k * B * (1 - B), from the saved output B.
std::tuple<at::Tensor, at::Tensor> binarize_backward_cpu(const at::Tensor& grad,
                                                         const at::Tensor& out, double k);

// The fused DB loss. Returns (terms, keys, stats): terms = float32 [total, bce,
// dice, l1]; keys and stats (LossStat, float64) are what the backward needs.
std::tuple<at::Tensor, at::Tensor, at::Tensor> loss_forward_cpu(
    const at::Tensor& prob_logits, const at::Tensor& thresh_logits, const at::Tensor& shrink_map,
    const at::Tensor& shrink_mask, const at::Tensor& thresh_map, const at::Tensor& thresh_mask,
    const LossConfig& options);
// (d/dprob_logits, d/dthresh_logits) given the upstream gradients of the terms.
std::tuple<at::Tensor, at::Tensor> loss_backward_cpu(
    const at::Tensor& grad_terms, const at::Tensor& prob_logits, const at::Tensor& thresh_logits,
    const at::Tensor& shrink_map, const at::Tensor& shrink_mask, const at::Tensor& thresh_map,
    const at::Tensor& thresh_mask, const at::Tensor& keys, const at::Tensor& stats,
    const LossConfig& options);

// Label maps of a batch: points (N, 2) float32, polygon_offsets (P + 1) and
// image_offsets (B + 1) int64, ignore (P) bool; the offsets and flags are CPU
// tensors whatever the device of the points (they are checked on the host).
// Returns (4, B, H, W) float32: shrink_map, shrink_mask, thresh_map, thresh_mask.
at::Tensor targets_cpu(const at::Tensor& points, const at::Tensor& polygon_offsets,
                       const at::Tensor& image_offsets, const at::Tensor& ignore, int64_t height,
                       int64_t width, const TargetParams& params);

// Post-processing of a batch of maps prob (B, H, W) float32 with the
// destination sizes (B, 2) int64 (height, width): returns boxes (N, 4, 2)
// float32 in destination pixels, scores (N) float32 and per-image counts (B) int64.
std::tuple<at::Tensor, at::Tensor, at::Tensor> boxes_cpu(const at::Tensor& prob,
                                                         const at::Tensor& dest_sizes,
                                                         const PostParams& params);
// The steps alone (CPU): borders of a uint8 mask as CSR (int32 points, int64
// offsets); ordered min-area quads (K, 4, 2) and short sides (K) of int64 CSR
// point sets; fast and slow box scores (float64); round-join offsets of int64 CSR polygons.
std::tuple<at::Tensor, at::Tensor> contours_cpu(const at::Tensor& mask, bool simple);
// The same for the binary map prob > thresh of a (H, W) float32 map, optionally
// dilated 2x2 (simple chains); a map holding NaN or inf is refused (ValueError).
std::tuple<at::Tensor, at::Tensor> map_contours_cpu(const at::Tensor& prob, double thresh, bool dilate);
std::tuple<at::Tensor, at::Tensor> min_area_quads_cpu(const at::Tensor& points, const at::Tensor& offsets);
at::Tensor quad_scores_cpu(const at::Tensor& prob, const at::Tensor& quads);
at::Tensor contour_scores_cpu(const at::Tensor& prob, const at::Tensor& points, const at::Tensor& offsets);
std::tuple<at::Tensor, at::Tensor> offset_polygons_cpu(const at::Tensor& points, const at::Tensor& offsets,
                                                       const at::Tensor& distances);
// fillPoly masks (K, H, W) uint8 of int64 CSR polygons.
at::Tensor polygon_masks_cpu(const at::Tensor& points, const at::Tensor& offsets, int64_t height,
                             int64_t width);

// The CUDA launchers (csrc/cuda): built by nvcc into _C when DBF_WITH_CUDA, and
// by the host compiler into the test-only _C_emulated, where CPU tensors play
// the device's.
at::Tensor binarize_forward_cuda(const at::Tensor& prob, const at::Tensor& thresh, double k);
std::tuple<at::Tensor, at::Tensor> binarize_backward_cuda(const at::Tensor& grad,
                                                          const at::Tensor& out, double k);
at::Tensor targets_cuda(const at::Tensor& points, const at::Tensor& polygon_offsets,
                        const at::Tensor& image_offsets, const at::Tensor& ignore, int64_t height,
                        int64_t width, const TargetParams& params);
std::tuple<at::Tensor, at::Tensor, at::Tensor> loss_forward_cuda(
    const at::Tensor& prob_logits, const at::Tensor& thresh_logits, const at::Tensor& shrink_map,
    const at::Tensor& shrink_mask, const at::Tensor& thresh_map, const at::Tensor& thresh_mask,
    const LossConfig& options);
std::tuple<at::Tensor, at::Tensor> loss_backward_cuda(
    const at::Tensor& grad_terms, const at::Tensor& prob_logits, const at::Tensor& thresh_logits,
    const at::Tensor& shrink_map, const at::Tensor& shrink_mask, const at::Tensor& thresh_map,
    const at::Tensor& thresh_mask, const at::Tensor& keys, const at::Tensor& stats,
    const LossConfig& options);
// The quad pipeline on the device for CUDA maps; boxes_cpu's contract, results on the host.
std::tuple<at::Tensor, at::Tensor, at::Tensor> boxes_cuda(const at::Tensor& prob, const at::Tensor& dest_sizes,
                                                          const PostParams& params);

// Checks shared by both backends: the C++ side still guards what it indexes.
void check_same_floating(const char* op, const at::Tensor& a, const char* a_name,
                         const at::Tensor& b, const char* b_name);
// The six maps of the DB loss, checked and made contiguous: logits of one
// floating dtype, labels of the logits' compute dtype (float32, or float64 for
// float64 logits), all of one shape and device.
struct LossMaps {
  at::Tensor prob_logits, thresh_logits, shrink_map, shrink_mask, thresh_map, thresh_mask;
  LossMaps(const char* op, const at::Tensor& prob_logits, const at::Tensor& thresh_logits,
           const at::Tensor& shrink_map, const at::Tensor& shrink_mask,
           const at::Tensor& thresh_map, const at::Tensor& thresh_mask);
};

// The (B, 2) int64 CPU tensor of destination (height, width) of db_boxes for
// maps (B, H, W), checked (non-negative sizes) and contiguous.
at::Tensor checked_dest_sizes(const char* op, const at::Tensor& prob, const at::Tensor& dest_sizes);

// Values (int32, int64, float32 or float64) finite and within +-kMaxCoordinate,
// the range rule of point coordinates (ValueError otherwise).
void check_coordinates(const char* op, const char* name, const at::Tensor& values);
// The inputs of the box scores: prob (H, W) and boxes (K, 4, 2) float32 CPU
// tensors, the boxes' coordinates in range (their corners are cast to int32).
void check_quad_inputs(const char* op, const at::Tensor& prob, const at::Tensor& quads);

// The packed polygons of db_targets: dtypes, shapes, offsets (CPU) in range and in order.
void check_targets_inputs(const at::Tensor& points, const at::Tensor& polygon_offsets,
                          const at::Tensor& image_offsets, const at::Tensor& ignore,
                          int64_t height, int64_t width);

// What the backward gets besides the maps must come from db_loss on these maps.
void check_loss_saved(const LossMaps& maps, const at::Tensor& grad_terms, const at::Tensor& keys,
                      const at::Tensor& stats);

}  // namespace dbf
