// CPU entry point of label generation: polygons packed as CSR, one image per
// task (images in parallel, each one on one thread).
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <vector>

#include "../core/targets.h"
#include "../entry_points.h"

namespace dbf {

at::Tensor targets_cpu(const at::Tensor& points, const at::Tensor& polygon_offsets,
                       const at::Tensor& image_offsets, const at::Tensor& ignore, int64_t height,
                       int64_t width, const TargetParams& params) {
  check_targets_inputs(points, polygon_offsets, image_offsets, ignore, height, width);
  TORCH_CHECK(points.is_cpu(), "db_targets: expected CPU tensors");
  const at::Tensor xy = points.contiguous(), poly = polygon_offsets.contiguous();
  const at::Tensor images = image_offsets.contiguous(), tags = ignore.contiguous();
  const int64_t polygons = poly.numel() - 1, batch = images.numel() - 1;
  const float* pts = xy.const_data_ptr<float>();
  const int64_t* off = poly.const_data_ptr<int64_t>();
  const bool* tag = tags.const_data_ptr<bool>();
  std::vector<double> clipped(2 * xy.size(0));
  std::vector<PolygonPrep> preps(polygons);
  for (int64_t p = 0; p < polygons; ++p) {
    preps[p] = prepare_polygon(pts + 2 * off[p], off[p + 1] - off[p], int(height), int(width),
                               tag[p], params, clipped.data() + 2 * off[p]);
  }
  at::Tensor maps = at::empty({4, batch, height, width}, xy.options());
  float* out = maps.mutable_data_ptr<float>();
  const int64_t plane = height * width, stride = batch * plane;
  const int64_t* first = images.const_data_ptr<int64_t>();
  at::parallel_for(0, batch, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      float* image = out + b * plane;
      render_targets(clipped.data(), off + first[b], preps.data() + first[b],
                     first[b + 1] - first[b], int(height), int(width), params, image,
                     image + stride, image + 2 * stride, image + 3 * stride);
    }
  });
  return maps;
}

}  // namespace dbf
