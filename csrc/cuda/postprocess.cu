// Launcher of the quad pipeline on the device (postprocess_kernels.cuh
// describes its kernels): only the kept boxes (and per-image counts) are
// copied to the host.
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <algorithm>

#include "../entry_points.h"
#include "postprocess_kernels.cuh"
#include "runtime.h"

namespace dbf {
namespace {

using namespace postprocess_kernels;

constexpr int kMaxCandidateBlocks = 2048;

int blocks_for(int64_t items) {
  return int(std::max<int64_t>(1, std::min<int64_t>((items + kThreads - 1) / kThreads, 65535)));
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> boxes_cuda(const at::Tensor& prob, const at::Tensor& dest_sizes,
                                                          const PostParams& params) {
  TORCH_CHECK(prob.dim() == 3 && prob.scalar_type() == at::kFloat && on_device(prob),
              "db_boxes: prob must be a (B, H, W) float32 CUDA tensor");
  TORCH_CHECK_NOT_IMPLEMENTED(!params.slow_score,
                              "db_boxes: score_mode='slow' has no CUDA implementation; use 'fast' or CPU maps");
  const c10::cuda::CUDAGuard guard(prob.device());
  const at::Tensor maps = prob.contiguous(), sizes = checked_dest_sizes("db_boxes", prob, dest_sizes);
  const int64_t batch = maps.size(0), height = maps.size(1), width = maps.size(2), plane = height * width;
  TORCH_CHECK(height < (1 << 24) && width < (1 << 24) && plane < (int64_t(1) << 31),
              "db_boxes: map too large for the CUDA pipeline (H * W must be below 2^31)");
  const int64_t slots = candidate_slots(height, width, params.max_candidates);
  TORCH_CHECK(batch * ((height + 1) / 2) * ((width + 1) / 2) < (int64_t(1) << 31),
              "db_boxes: batch too large for the CUDA pipeline (its components are counted in int32); split it");
  const auto host = at::TensorOptions().dtype(at::kFloat);
  if (batch == 0 || plane == 0) {
    return {at::empty({0, 4, 2}, host), at::empty({0}, host), at::zeros({batch}, host.dtype(at::kLong))};
  }
  const int unclip_cap = unclip_capacity(height, width, params.unclip_ratio);
  const int chain_cap = std::max(convex_chain_capacity(height, width), unclip_cap);
  const size_t shared = CandidateShared::bytes(chain_cap, unclip_cap);  // dynamic, beside the kernel's static
  int device = 0, shared_optin = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&shared_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  cudaFuncAttributes kernel;
  C10_CUDA_CHECK(cudaFuncGetAttributes(&kernel, candidates_kernel));
  TORCH_CHECK(shared + kernel.sharedSizeBytes <= size_t(shared_optin), "db_boxes: the maps (", height, " x ",
              width, ") or unclip_ratio (", params.unclip_ratio, ") are too large for the CUDA pipeline's buffers (",
              shared + kernel.sharedSizeBytes, " bytes of shared memory per block, the device has ", shared_optin, ")");
  // The kernel's dynamic limit is 48 KB less its static shared memory until
  // it opts in (large maps or unclip ratios).
  if (shared > size_t(kernel.maxDynamicSharedSizeBytes)) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(candidates_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)));
  }

  const auto options = maps.options();
  const int64_t total = batch * plane, candidates = batch * slots;
  at::Tensor text = at::empty({batch, plane}, options.dtype(at::kByte));
  at::Tensor label = at::empty({batch, plane}, options.dtype(at::kInt));
  at::Tensor is_root = at::empty({batch * plane}, options.dtype(at::kInt));
  at::Tensor non_finite = at::zeros({batch}, options.dtype(at::kInt));
  at::Tensor error = at::zeros({1}, options.dtype(at::kInt));
  at::Tensor slot_data = at::empty({4, candidates}, options.dtype(at::kInt));
  at::Tensor records = at::empty({candidates, kRecord}, options);
  at::Tensor kept = at::empty({candidates}, options.dtype(at::kByte));
  at::Tensor dense = at::empty({candidates, kRecord}, options);
  at::Tensor status = at::empty({2 * batch + 1}, options.dtype(at::kLong));

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  uint8_t* text_p = text.mutable_data_ptr<uint8_t>();
  int32_t* label_p = label.mutable_data_ptr<int32_t>();
  const int grid = blocks_for(total), w = int(width), h = int(height);
  DBF_LAUNCH(grid, kThreads, 0, stream, text_kernel)(maps.const_data_ptr<float>(), text_p,
                                                     non_finite.mutable_data_ptr<int>(), total, plane, w,
                                                     params.thresh, params.dilate);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  DBF_LAUNCH(grid, kThreads, 0, stream, init_kernel)(text_p, label_p, total, plane, w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  DBF_LAUNCH(grid, kThreads, 0, stream, merge_kernel)(text_p, label_p, total, plane, w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  DBF_LAUNCH(grid, kThreads, 0, stream, flatten_start_kernel)(text_p, label_p, total, plane, w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  DBF_LAUNCH(grid, kThreads, 0, stream, flatten_rest_kernel)(text_p, label_p, is_root.mutable_data_ptr<int32_t>(),
                                                             total, plane, w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  // Ranks of the roots over the whole batch (a 1-D scan runs on all of the
  // GPU); slot_bounds only uses differences within an image.
  const at::Tensor rank = at::cumsum(is_root, 0, at::kInt);  // on the current stream
  DBF_LAUNCH(blocks_for(candidates), kThreads, 0, stream, slot_init_kernel)(slot_data.mutable_data_ptr<int32_t>(),
                                                                             batch, slots);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  DBF_LAUNCH(grid, kThreads, 0, stream, bounds_kernel)(text_p, label_p, rank.const_data_ptr<int32_t>(),
                                                       slot_data.mutable_data_ptr<int32_t>(), batch, slots, h, w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  CandidateArgs args{maps.const_data_ptr<float>(), label_p, slot_data.const_data_ptr<int32_t>(), batch, slots, h, w,
                     params, chain_cap, unclip_cap, records.mutable_data_ptr<float>(), kept.mutable_data_ptr<uint8_t>(),
                     error.mutable_data_ptr<int>()};
  if (candidates > 0) {  // none when max_candidates is 0 (the maps are still checked for NaN)
    const int candidate_grid = int(std::min<int64_t>(candidates, kMaxCandidateBlocks));
    DBF_LAUNCH(candidate_grid, kThreads, shared, stream, candidates_kernel)(args);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  DBF_LAUNCH(1, kThreads, 0, stream, compact_kernel)(kept.const_data_ptr<uint8_t>(), records.const_data_ptr<float>(),
                                                     non_finite.const_data_ptr<int>(), error.const_data_ptr<int>(),
                                                     batch, slots, status.mutable_data_ptr<int64_t>(),
                                                     dense.mutable_data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  // The only transfers: counts and flags, then the kept records.
  const at::Tensor status_host = status.cpu();
  const int64_t* st = status_host.const_data_ptr<int64_t>();
  TORCH_CHECK(st[2 * batch] == 0, "db_boxes: internal error in the CUDA pipeline (buffer overflow, code ",
              st[2 * batch], "); please report it with the map size and settings");
  at::Tensor counts = at::empty({batch}, host.dtype(at::kLong));
  int64_t kept_total = 0;
  for (int64_t b = 0; b < batch; ++b) {
    TORCH_CHECK_VALUE(st[batch + b] == 0, "db_boxes: prob holds NaN or inf (image ", b, ")");
    kept_total += counts.mutable_data_ptr<int64_t>()[b] = st[b];
  }
  at::Tensor boxes = at::empty({kept_total, 4, 2}, host), scores = at::empty({kept_total}, host);
  if (kept_total > 0) {
    const at::Tensor packed = dense.narrow(0, 0, kept_total).cpu();
    const float* rec = packed.const_data_ptr<float>();
    const int64_t* dest = sizes.const_data_ptr<int64_t>();
    float* out = boxes.mutable_data_ptr<float>();
    float* score = scores.mutable_data_ptr<float>();
    // To destination pixels on the host, with the CPU path's arithmetic.
    for (int64_t b = 0, n = 0; b < batch; ++b) {
      for (int64_t e = 0; e < st[b]; ++e, ++n) {
        scale_quad(rec + n * kRecord, h, w, float(dest[2 * b]), float(dest[2 * b + 1]), out + 8 * n);
        score[n] = rec[n * kRecord + 8];
      }
    }
  }
  return {boxes, scores, counts};
}

}  // namespace dbf
