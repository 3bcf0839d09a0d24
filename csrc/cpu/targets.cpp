// CPU entry point of label generation: polygons packed as CSR, one image per
// task (images in parallel, each one on one thread).
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <atomic>
#include <cstdint>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "../core/targets.h"
#include "../entry_points.h"

namespace dbf {
namespace {

// Fresh output memory costs a page fault per 4 KiB page (more time than the
// rendering for a batch); on Linux ask for 2 MiB pages where it is aligned.
// Only for blocks that malloc maps on their own (at least 32 MiB on glibc):
// marking parts of its heap would split it.
void prefer_huge_pages(void* data, size_t bytes) {
#ifdef __linux__
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (bytes < (size_t(32) << 20)) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data;
  (void)bytes;
#endif
}

}  // namespace

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
  prefer_huge_pages(out, size_t(maps.numel()) * sizeof(float));
  const int64_t plane = height * width, stride = batch * plane;
  const int64_t* first = images.const_data_ptr<int64_t>();
  // images are taken one at a time by whichever thread is free: their costs differ
  std::atomic<int64_t> next{0};
  at::parallel_for(0, batch, 1, [&](int64_t, int64_t) {
    for (int64_t b = next++; b < batch; b = next++) {
      float* image = out + b * plane;
      render_targets(clipped.data(), off + first[b], preps.data() + first[b],
                     first[b + 1] - first[b], int(height), int(width), params, image,
                     image + stride, image + 2 * stride, image + 3 * stride);
    }
  });
  return maps;
}

}  // namespace dbf
