// libFuzzer target for the label-generation core: arbitrary bytes become an
// image size, options and polygons (any float bit pattern: NaN, inf, huge,
// subnormal), run through prepare_polygon and render_targets. Crashes,
// sanitizer reports and maps outside [0, 1] or non-finite are failures.
//   cmake -S . -B build/fuzz -DDBF_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14
//   cmake --build build/fuzz --target fuzz_targets && build/fuzz/fuzz_targets -max_total_time=60
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../csrc/core/targets.h"

namespace {

struct Reader {
  const uint8_t* data;
  size_t size;
  template <class T> T take() {
    T value{};
    const size_t n = size < sizeof(T) ? size : sizeof(T);
    std::memcpy(&value, data, n);
    data += n;
    size -= n;
    return value;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in{data, size};
  const int height = 1 + in.take<uint8_t>() % 64, width = 1 + in.take<uint8_t>() % 64;
  const uint8_t flags = in.take<uint8_t>();
  const dbf::TargetParams params{0.4, 0.3, 0.7, double(flags % 16), (flags & 16) != 0};
  std::vector<float> points;
  std::vector<int64_t> offsets{0};
  std::vector<bool> ignore;
  while (in.size > 0 && offsets.size() < 16) {
    const int n = 1 + in.take<uint8_t>() % 12;
    ignore.push_back((in.take<uint8_t>() & 1) != 0);
    for (int i = 0; i < 2 * n; ++i) {
      // half the coordinates near the canvas, half any bit pattern
      const uint8_t kind = in.take<uint8_t>();
      points.push_back(kind & 1 ? float(in.take<int8_t>()) + 32.f : in.take<float>());
    }
    offsets.push_back(int64_t(points.size() / 2));
  }
  const int64_t polygons = int64_t(offsets.size()) - 1;
  std::vector<double> clipped(points.size() + 2);
  std::vector<dbf::PolygonPrep> preps(polygons);
  for (int64_t p = 0; p < polygons; ++p) {
    preps[p] = dbf::prepare_polygon(points.data() + 2 * offsets[p], offsets[p + 1] - offsets[p],
                                    height, width, ignore[p], params, clipped.data() + 2 * offsets[p]);
  }
  const int64_t plane = int64_t(height) * width;
  std::vector<float> maps(4 * plane);
  float* m = maps.data();
  dbf::render_targets(clipped.data(), offsets.data(), preps.data(), polygons, height, width, params,
                      m, m + plane, m + 2 * plane, m + 3 * plane);
  for (float v : maps) {
    if (!(v >= 0.f && v <= 1.f)) std::abort();
  }
  return 0;
}
