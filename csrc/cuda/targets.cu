// CUDA kernels of label generation for a batch: polygons packed as CSR are
// prepared one thread each, then every polygon is drawn by a row of blocks
// over its pixel box with the geometry of csrc/core/targets.h. Writes of 0/1
// are idempotent; the threshold canvas takes the maximum with atomicMax on the
// float bits (non-negative floats order as integers).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

#include "../core/targets.h"
#include "../entry_points.h"

namespace dbf {
namespace {

constexpr int kThreads = 256;
constexpr int kRowBlocks = 16;  // blocks sharing one polygon's rows

__global__ void prepare_kernel(const float* points, const int64_t* offsets, const bool* ignore,
                               int64_t polygons, int height, int width, TargetParams params,
                               double* clipped, PolygonPrep* preps) {
  for (int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; p < polygons;
       p += int64_t(gridDim.x) * blockDim.x) {
    preps[p] = prepare_polygon(points + 2 * offsets[p], offsets[p + 1] - offsets[p], height,
                               width, ignore[p], params, clipped + 2 * offsets[p]);
  }
}

// Visits the pixels of polygon blockIdx.x's box, rows split over blockIdx.y.
template <class Visit>
__device__ void for_each_pixel(const PolygonPrep& prep, const Visit& visit) {
  const int columns = prep.x1 - prep.x0 + 1;
  for (int y = prep.y0 + int(blockIdx.y); y <= prep.y1; y += gridDim.y) {
    for (int x = prep.x0 + int(threadIdx.x); x < prep.x0 + columns; x += blockDim.x) visit(x, y);
  }
}

__global__ void probe_shrink_kernel(const double* clipped, const int64_t* offsets,
                                    const PolygonPrep* preps, int* has_shrink) {
  const int64_t p = blockIdx.x;
  const PolygonPrep prep = preps[p];
  if (prep.role != kPolygonUsed) return;
  const double* xy = clipped + 2 * offsets[p];
  const int64_t n = offsets[p + 1] - offsets[p];
  for_each_pixel(prep, [&](int x, int y) {
    float mask2;
    double canvas2;
    polygon_distances2(x, y, xy, n, prep.d, true, mask2, canvas2);
    if (mask2 >= shrink_threshold2(prep.d) && point_inside(x, y, xy, n)) has_shrink[p] = 1;
  });
}

__global__ void init_kernel(float* maps, int64_t plane_batch) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < 4 * plane_batch;
       i += int64_t(gridDim.x) * blockDim.x) {
    maps[i] = (i >= plane_batch && i < 2 * plane_batch) ? 1.f : 0.f;  // shrink_mask starts at 1
  }
}

__global__ void draw_kernel(const double* clipped, const int64_t* offsets, const PolygonPrep* preps,
                            const int* has_shrink, const int64_t* image_offsets, int64_t batch,
                            int height, int width, bool exact, float* maps) {
  const int64_t p = blockIdx.x;
  PolygonPrep prep = preps[p];
  if (prep.role == kPolygonSkipped) return;
  if (prep.role == kPolygonUsed && !has_shrink[p]) prep.role = kPolygonIgnored;
  int64_t image = 0;  // the image whose polygon range holds p
  while (image + 1 < batch && image_offsets[image + 1] <= p) ++image;
  const int64_t plane = int64_t(height) * width, stride = batch * plane;
  float* shrink_map = maps + image * plane;
  float* shrink_mask = shrink_map + stride;
  float* canvas = shrink_map + 2 * stride;
  float* thresh_mask = shrink_map + 3 * stride;
  const double* xy = clipped + 2 * offsets[p];
  const int64_t n = offsets[p + 1] - offsets[p];
  const bool ignored = prep.role == kPolygonIgnored;
  const double reach = (ignored ? 0.0 : prep.d) + kFillMargin;
  for_each_pixel(prep, [&](int x, int y) {
    float mask2;
    double canvas2;
    polygon_distances2(x, y, xy, n, reach, exact || ignored, mask2, canvas2);
    const bool inside = point_inside(x, y, xy, n);
    const int64_t at = int64_t(y) * width + x;
    if (ignored) {
      if (inside || mask2 <= float(kFillMargin * kFillMargin)) shrink_mask[at] = 0.f;
      return;
    }
    if (inside && mask2 >= shrink_threshold2(prep.d)) shrink_map[at] = 1.f;
    if (inside || mask2 <= dilate_threshold2(prep.d)) thresh_mask[at] = 1.f;
    const float value = canvas_value(canvas2, prep.d);
    if (value > 0.f) atomicMax(reinterpret_cast<int*>(canvas + at), __float_as_int(value));
  });
}

__global__ void finish_kernel(float* canvas, int64_t count, float low, float span) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    canvas[i] = canvas[i] * span + low;
  }
}

int blocks_for(int64_t items) {
  return int(std::max<int64_t>(1, std::min<int64_t>((items + kThreads - 1) / kThreads, 65535)));
}

}  // namespace

at::Tensor targets_cuda(const at::Tensor& points, const at::Tensor& polygon_offsets,
                        const at::Tensor& image_offsets, const at::Tensor& ignore, int64_t height,
                        int64_t width, const TargetParams& params) {
  TORCH_CHECK(points.is_cuda(), "db_targets: expected CUDA tensors");
  check_targets_inputs(points, polygon_offsets, image_offsets, ignore, height, width);
  const c10::cuda::CUDAGuard guard(points.device());
  const at::Tensor xy = points.contiguous(), offsets = polygon_offsets.contiguous();
  const at::Tensor images = image_offsets.contiguous(), tags = ignore.contiguous();
  const int64_t polygons = offsets.numel() - 1, batch = images.numel() - 1;
  const int64_t plane_batch = batch * height * width;
  const auto options = xy.options();
  at::Tensor maps = at::empty({4, batch, height, width}, options);
  at::Tensor clipped = at::empty({std::max<int64_t>(1, 2 * xy.size(0))}, options.dtype(at::kDouble));
  at::Tensor preps = at::empty({std::max<int64_t>(1, polygons) * int64_t(sizeof(PolygonPrep))},
                               options.dtype(at::kByte));
  at::Tensor has_shrink = at::zeros({std::max<int64_t>(1, polygons)}, options.dtype(at::kInt));
  auto* prep = reinterpret_cast<PolygonPrep*>(preps.mutable_data_ptr<uint8_t>());
  double* cl = clipped.mutable_data_ptr<double>();
  const int64_t* off = offsets.const_data_ptr<int64_t>();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (plane_batch > 0) {
    init_kernel<<<blocks_for(4 * plane_batch), kThreads, 0, stream>>>(
        maps.mutable_data_ptr<float>(), plane_batch);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  TORCH_CHECK(polygons < (int64_t(1) << 31), "db_targets: at most 2^31 - 1 polygons per call");
  if (polygons > 0 && plane_batch > 0) {
    prepare_kernel<<<blocks_for(polygons), kThreads, 0, stream>>>(
        xy.const_data_ptr<float>(), off, tags.const_data_ptr<bool>(), polygons, int(height),
        int(width), params, cl, prep);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const dim3 grid(unsigned(polygons), kRowBlocks);
    probe_shrink_kernel<<<grid, kThreads, 0, stream>>>(cl, off, prep,
                                                       has_shrink.mutable_data_ptr<int>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    draw_kernel<<<grid, kThreads, 0, stream>>>(cl, off, prep, has_shrink.const_data_ptr<int>(),
                                               images.const_data_ptr<int64_t>(), batch,
                                               int(height), int(width), params.exact,
                                               maps.mutable_data_ptr<float>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (plane_batch > 0) {
    finish_kernel<<<blocks_for(plane_batch), kThreads, 0, stream>>>(
        maps.mutable_data_ptr<float>() + 2 * plane_batch, plane_batch, float(params.thresh_min),
        float(params.thresh_max - params.thresh_min));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return maps;
}

}  // namespace dbf
