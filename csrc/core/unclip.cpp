#include "unclip.h"

#include <algorithm>
#include <cmath>

namespace dbf {
namespace {

constexpr double kPi = 3.141592653589793238;
constexpr double kArcTolerance = 0.25;

int64_t round_half_away(double v) { return v < 0 ? int64_t(v - 0.5) : int64_t(v + 0.5); }

struct Normal {
  double x, y;
};

Normal unit_normal(int64_t x1, int64_t y1, int64_t x2, int64_t y2) {
  if (x1 == x2 && y1 == y2) return {0.0, 0.0};
  const double dx = double(x2 - x1), dy = double(y2 - y1);
  const double f = 1.0 / std::sqrt(dx * dx + dy * dy);
  return {dy * f, -dx * f};
}

}  // namespace

void offset_polygon_round(const int64_t* xy, int n, double delta, std::vector<int64_t>& out) {
  // Drop repeated points (and a closing copy of the first one).
  if (n <= 0) return;
  std::vector<int64_t> src;
  int high = n - 1;
  while (high > 0 && xy[0] == xy[2 * high] && xy[1] == xy[2 * high + 1]) --high;
  src.push_back(xy[0]);
  src.push_back(xy[1]);
  for (int i = 1; i <= high; ++i) {
    if (xy[2 * i] != src[src.size() - 2] || xy[2 * i + 1] != src.back()) {
      src.push_back(xy[2 * i]);
      src.push_back(xy[2 * i + 1]);
    }
  }
  const int len = int(src.size() / 2);
  if (len < 3 || !(delta > 0)) return;
  // Clipper offsets polygons of positive area (its sign convention); reverse the others.
  double area2 = 0;
  for (int i = 0, j = len - 1; i < len; j = i++) {
    area2 += (double(src[2 * j]) + double(src[2 * i])) * (double(src[2 * j + 1]) - double(src[2 * i + 1]));
  }
  if (-area2 * 0.5 < 0) {
    for (int i = 0, j = len - 1; i < j; ++i, --j) {
      std::swap(src[2 * i], src[2 * j]);
      std::swap(src[2 * i + 1], src[2 * j + 1]);
    }
  }
  // Arc steps from the tolerance, as Clipper's DoOffset.
  const double y = kArcTolerance > delta * kArcTolerance ? delta * kArcTolerance : kArcTolerance;
  double steps = kPi / std::acos(1 - y / delta);
  if (steps > delta * kPi) steps = delta * kPi;
  const double step_sin = std::sin(2 * kPi / steps), step_cos = std::cos(2 * kPi / steps);
  const double steps_per_rad = steps / (2 * kPi);

  std::vector<Normal> normals(len);
  for (int j = 0; j < len; ++j) {
    const int k = j + 1 < len ? j + 1 : 0;
    normals[j] = unit_normal(src[2 * j], src[2 * j + 1], src[2 * k], src[2 * k + 1]);
  }
  auto push = [&](int j, double nx, double ny) {
    out.push_back(round_half_away(double(src[2 * j]) + nx * delta));
    out.push_back(round_half_away(double(src[2 * j + 1]) + ny * delta));
  };
  int k = len - 1;
  for (int j = 0; j < len; ++j) {
    const Normal nk = normals[k], nj = normals[j];
    double sin_a = nk.x * nj.y - nj.x * nk.y;
    if (std::fabs(sin_a * delta) < 1.0) {
      if (nk.x * nj.x + nj.y * nk.y > 0) {  // nearly straight: one point, k kept
        push(j, nk.x, nk.y);
        continue;
      }
    } else if (sin_a > 1.0) {
      sin_a = 1.0;
    } else if (sin_a < -1.0) {
      sin_a = -1.0;
    }
    if (sin_a * delta < 0) {  // concave corner
      push(j, nk.x, nk.y);
      out.push_back(src[2 * j]);
      out.push_back(src[2 * j + 1]);
      push(j, nj.x, nj.y);
    } else {  // round join: an arc from normal k to normal j
      const double a = std::atan2(sin_a, nk.x * nj.x + nk.y * nj.y);
      const int arc_steps = std::max(int(round_half_away(steps_per_rad * std::fabs(a))), 1);
      double x = nk.x, yv = nk.y;
      for (int i = 0; i < arc_steps; ++i) {
        push(j, x, yv);
        const double x2 = x;
        x = x * step_cos - step_sin * yv;
        yv = x2 * step_sin + yv * step_cos;
      }
      push(j, nj.x, nj.y);
    }
    k = j;
  }
}

}  // namespace dbf
