#include "unclip.h"

namespace dbf {

void offset_polygon_round(const int64_t* xy, int n, double delta, std::vector<int64_t>& out) {
  if (n <= 0) return;
  std::vector<int64_t> src(2 * size_t(n));
  const int len = prepare_offset_path(xy, n, src.data());
  if (len < 3 || !(delta > 0)) return;
  offset_round_path(src.data(), len, delta, [&](int64_t x, int64_t y) {
    out.push_back(x);
    out.push_back(y);
  });
}

}  // namespace dbf
