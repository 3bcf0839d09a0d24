// libFuzzer target for the label-generation core: arbitrary bytes become an
// image size, options and polygons (any float bit pattern: NaN, inf, huge,
// subnormal; or small integers and halves near and around the canvas), run
// through the host renderer and through the CUDA kernels' passes run on the
// host. Crashes, sanitizer reports, maps outside [0, 1] or not finite, masks
// other than 0 and 1, and any difference between the two are failures.
//   cmake -S . -B build/fuzz -DDBF_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14
//   cmake --build build/fuzz --target fuzz_targets && build/fuzz/fuzz_targets -max_total_time=60
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "../cpp/test_targets_steps.h"

namespace {

using dbf_fuzz::Reader;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in{data, size};
  const int height = 1 + in.take<uint8_t>() % 64, width = 1 + in.take<uint8_t>() % 64;
  const uint8_t flags = in.take<uint8_t>();
  const double shrink_ratio = (flags >> 5) * 0.125;  // 0 .. 0.875
  const dbf::TargetParams params{shrink_ratio, 0.3, 0.7, double(flags % 16), (flags & 16) != 0};
  std::vector<float> points;
  std::vector<int64_t> offsets{0};
  std::vector<char> ignore;
  while (in.size > 0 && offsets.size() < 16) {
    const int n = 1 + in.take<uint8_t>() % 12;
    ignore.push_back(char(in.take<uint8_t>() & 1));
    for (int i = 0; i < 2 * n; ++i) {
      // most coordinates on a half-pixel grid around the canvas, some any bit pattern
      const uint8_t kind = in.take<uint8_t>();
      points.push_back(kind % 4 != 0 ? float(in.take<int8_t>()) * 0.5f + 16.f : in.take<float>());
    }
    offsets.push_back(int64_t(points.size() / 2));
  }
  const auto host = dbf_test::host_render(points, offsets, ignore, height, width, params);
  const auto steps = dbf_test::kernel_steps(points, offsets, ignore, height, width, params);
  const size_t plane = size_t(height) * width;
  for (size_t i = 0; i < host.size(); ++i) {
    const float v = host[i];
    if (!(v >= 0.f && v <= 1.f) || v != steps[i]) std::abort();
    if ((i < 2 * plane || i >= 3 * plane) && v != 0.f && v != 1.f) std::abort();
  }
  return 0;
}
