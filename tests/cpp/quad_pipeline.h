// The kernels of the CUDA quad pipeline (csrc/cuda/postprocess_kernels.cuh)
// on one map through the host emulation, in the order and with the launch
// geometry of boxes_cuda, on plain buffers (the native tests and the fuzz
// target have no torch): the kept records (8 coordinates in map pixels and
// the score each; none for a map holding NaN or inf, which boxes_cuda
// refuses) and the status the device copies back.
#pragma once

#include <algorithm>
#include <vector>

#include "../../csrc/cuda/postprocess_kernels.cuh"

namespace dbf_test {

struct QuadPipeline {
  std::vector<float> records;  // kept boxes, kRecord floats each
  bool non_finite = false;
  int error = 0;  // the kernels' internal error bits
};

// The labelling kernels on a 0/1 mask: each text pixel's component as its first pixel, -1 for background.
inline std::vector<int32_t> emulated_labels(const uint8_t* text, int height, int width,
                                            std::vector<int32_t>* is_root = nullptr) {
  using namespace dbf::postprocess_kernels;
  const int64_t plane = int64_t(height) * width;
  const int grid = int(std::min<int64_t>((plane + kThreads - 1) / kThreads, 65535));
  std::vector<int32_t> label(static_cast<size_t>(plane)), roots(label.size());
  DBF_LAUNCH(grid, kThreads, 0, nullptr, init_kernel)(text, label.data(), plane, plane, width);
  dbf_emu::launch_checked();
  DBF_LAUNCH(grid, kThreads, 0, nullptr, merge_kernel)(text, label.data(), plane, plane, width);
  dbf_emu::launch_checked();
  DBF_LAUNCH(grid, kThreads, 0, nullptr, flatten_start_kernel)(text, label.data(), plane, plane, width);
  dbf_emu::launch_checked();
  DBF_LAUNCH(grid, kThreads, 0, nullptr, flatten_rest_kernel)(text, label.data(), roots.data(), plane, plane, width);
  dbf_emu::launch_checked();
  if (is_root) *is_root = std::move(roots);
  return label;
}

inline QuadPipeline run_quad_pipeline(const float* prob, int height, int width, const dbf::PostParams& params) {
  using namespace dbf::postprocess_kernels;
  const int64_t plane = int64_t(height) * width, slots = dbf::candidate_slots(height, width, params.max_candidates);
  const int grid = int(std::min<int64_t>((plane + kThreads - 1) / kThreads, 65535));
  const auto launch_checked = [] { dbf_emu::launch_checked(); };
  std::vector<uint8_t> text(static_cast<size_t>(plane));
  int non_finite = 0, error = 0;
  DBF_LAUNCH(grid, kThreads, 0, nullptr, text_kernel)(prob, text.data(), &non_finite, plane, plane, width,
                                                       params.thresh, params.dilate);
  launch_checked();
  std::vector<int32_t> is_root, rank(text.size());
  const std::vector<int32_t> label = emulated_labels(text.data(), height, width, &is_root);
  int32_t roots = 0;  // at::cumsum on the device
  for (int64_t i = 0; i < plane; ++i) rank[size_t(i)] = roots += is_root[size_t(i)];
  QuadPipeline out;
  out.non_finite = non_finite != 0;
  if (slots == 0) return out;
  std::vector<int32_t> slot_data(4 * static_cast<size_t>(slots));
  const int slot_grid = int(std::min<int64_t>((slots + kThreads - 1) / kThreads, 65535));
  DBF_LAUNCH(slot_grid, kThreads, 0, nullptr, slot_init_kernel)(slot_data.data(), int64_t(1), slots);
  launch_checked();
  DBF_LAUNCH(grid, kThreads, 0, nullptr, bounds_kernel)(text.data(), label.data(), rank.data(), slot_data.data(),
                                                         int64_t(1), slots, height, width);
  launch_checked();
  const int unclip_cap = dbf::unclip_capacity(height, width, params.unclip_ratio);
  const int chain_cap = std::max(dbf::convex_chain_capacity(height, width), unclip_cap);
  const size_t shared = CandidateShared::bytes(chain_cap, unclip_cap);
  cudaFuncAttributes attributes;
  cudaFuncGetAttributes(&attributes, candidates_kernel);
  if (shared > size_t(attributes.maxDynamicSharedSizeBytes)) {
    cudaFuncSetAttribute(candidates_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared));
  }
  std::vector<float> records(size_t(slots) * dbf::kRecord), dense(records.size());
  std::vector<uint8_t> kept(static_cast<size_t>(slots));
  const CandidateArgs args{prob, label.data(), slot_data.data(), 1, slots, height, width, params, chain_cap,
                           unclip_cap, records.data(), kept.data(), &error};
  DBF_LAUNCH(int(std::min<int64_t>(slots, 2048)), kThreads, shared, nullptr, candidates_kernel)(args);
  launch_checked();
  std::vector<int64_t> status(3);
  DBF_LAUNCH(1, kThreads, 0, nullptr, compact_kernel)(kept.data(), records.data(), &non_finite, &error, int64_t(1),
                                                       slots, status.data(), dense.data());
  launch_checked();
  if (!out.non_finite) out.records.assign(dense.begin(), dense.begin() + status[0] * dbf::kRecord);  // (else refused)
  out.error = int(status[2]);
  return out;
}

}  // namespace dbf_test
