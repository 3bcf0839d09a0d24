// Launchers of label generation's kernels (targets_kernels.cuh): the offsets
// are checked on the host, then uploaded; two host syncs size the outline and
// edge buffers.
#include <ATen/ops/cumsum.h>
#include <ATen/ops/empty.h>

#include <algorithm>

#include "../entry_points.h"
#include "runtime.h"
#include "targets_kernels.cuh"

namespace dbf {
namespace {

using namespace targets_kernels;

constexpr int kThreads = 256;

int blocks_for(int64_t items) {
  return int(std::max<int64_t>(1, std::min<int64_t>((items + kThreads - 1) / kThreads, 65535)));
}

// Room for `count` items of T in a byte tensor.
template <class T>
T* bytes_for(at::Tensor& holder, int64_t count, const at::TensorOptions& options) {
  holder = at::empty({std::max<int64_t>(1, count) * int64_t(sizeof(T))}, options.dtype(at::kByte));
  return reinterpret_cast<T*>(holder.mutable_data_ptr<uint8_t>());
}

// The last element of a device int64 vector, on the host (waits for the stream).
int64_t last_value(const at::Tensor& values, cudaStream_t stream) {
  int64_t value = 0;
  C10_CUDA_CHECK(cudaMemcpyAsync(&value, values.const_data_ptr<int64_t>() + values.numel() - 1,
                                 sizeof value, cudaMemcpyDeviceToHost, stream));
  C10_CUDA_CHECK(cudaStreamSynchronize(stream));
  return value;
}

}  // namespace

at::Tensor targets_cuda(const at::Tensor& points, const at::Tensor& polygon_offsets,
                        const at::Tensor& image_offsets, const at::Tensor& ignore, int64_t height,
                        int64_t width, const TargetParams& params) {
  TORCH_CHECK(on_device(points), "db_targets: expected CUDA tensors");
  check_targets_inputs(points, polygon_offsets, image_offsets, ignore, height, width);  // on the host
  const c10::cuda::CUDAGuard guard(points.device());
  const auto upload = [&](const at::Tensor& t) { return t.contiguous().to(points.device()); };
  const at::Tensor xy = points.contiguous(), offsets = upload(polygon_offsets);
  const at::Tensor images = upload(image_offsets), tags = upload(ignore);
  const int64_t polygons = offsets.numel() - 1, batch = images.numel() - 1;
  const int64_t plane_batch = batch * height * width;
  const auto options = xy.options();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor maps = at::empty({4, batch, height, width}, options);
  float* out = maps.mutable_data_ptr<float>();
  if (plane_batch == 0) return maps;
  DBF_LAUNCH(blocks_for(4 * plane_batch), kThreads, 0, stream, init_kernel)(out, plane_batch);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  TORCH_CHECK(polygons < (int64_t(1) << 31), "db_targets: at most 2^31 - 1 polygons per call");
  if (polygons > 0) {
    const int64_t* off = offsets.const_data_ptr<int64_t>();
    at::Tensor hold_clipped, hold_source, hold_preps, hold_plans, hold_outline, hold_splits,
        hold_edges, hold_fills;
    double* clipped = bytes_for<double>(hold_clipped, 2 * xy.size(0), options);
    IPoint* source = bytes_for<IPoint>(hold_source, xy.size(0), options);
    PolygonPrep* preps = bytes_for<PolygonPrep>(hold_preps, polygons, options);
    PolygonPlan* plans = bytes_for<PolygonPlan>(hold_plans, polygons, options);
    const at::Tensor room = at::empty({polygons}, options.dtype(at::kLong));
    DBF_LAUNCH(blocks_for(polygons), kThreads, 0, stream, plan_kernel)(
        xy.const_data_ptr<float>(), off, tags.const_data_ptr<bool>(), polygons, int(height),
        int(width), params, clipped, source, preps, plans, room.mutable_data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // the outlines' room: one host sync to size the buffer
    const at::Tensor room_end = at::cumsum(room, 0);
    const int64_t outline_total = last_value(room_end, stream);
    IPoint* outline = bytes_for<IPoint>(hold_outline, outline_total, options);
    Split* splits = bytes_for<Split>(hold_splits, 2 * outline_total, options);
    const at::Tensor edge_count = at::empty({polygons}, options.dtype(at::kLong));
    DBF_LAUNCH(blocks_for(polygons), kThreads, 0, stream, outline_kernel)(
        off, polygons, preps, source, room_end.const_data_ptr<int64_t>(), plans, outline, splits,
        edge_count.mutable_data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // the edges' room: a second sync
    const at::Tensor edges_end = at::cumsum(edge_count, 0);
    const int64_t edge_total = last_value(edges_end, stream);
    Segment* edges = bytes_for<Segment>(hold_edges, edge_total, options);
    FillEdge* fills = bytes_for<FillEdge>(hold_fills, edge_total, options);
    DBF_LAUNCH(blocks_for(polygons), kThreads, 0, stream, edge_kernel)(
        off, polygons, clipped, outline, splits, edges_end.const_data_ptr<int64_t>(), plans, edges,
        fills, int(height), int(width));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const dim3 grid(unsigned(polygons), kRowBlocks);
    DBF_LAUNCH(grid, kThreads, 0, stream, draw_kernel)(clipped, off, preps, plans, edges, fills,
                                                       images.const_data_ptr<int64_t>(), batch, int(height),
                                                       int(width), params.exact, out);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  DBF_LAUNCH(blocks_for(plane_batch), kThreads, 0, stream, finish_kernel)(
      out + 2 * plane_batch, plane_batch, float(params.thresh_min),
      float(params.thresh_max - params.thresh_min));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return maps;
}

}  // namespace dbf
