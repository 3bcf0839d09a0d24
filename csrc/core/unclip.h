// The "unclip" of DB post-processing: a closed polygon grown by `delta` with
// round joins, as pyclipper's PyclipperOffset (Clipper 6.4, ArcTolerance 0.25,
// integer coordinates) computes it before its clean-up union. The union only
// merges and drops non-extreme points of a convex input, so the convex hull of
// these points is the hull of pyclipper's result. The point generation is
// shared by the host and the device (fixed-size buffers there).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "common.h"

namespace dbf {

// `xy`: n integer points (interleaved). Appends the offset polygon's points to
// `out`; appends nothing when the path has fewer than 3 distinct points.
void offset_polygon_round(const int64_t* xy, int n, double delta, std::vector<int64_t>& out);

DBF_HOST_DEVICE int64_t round_half_away(double v) { return v < 0 ? int64_t(v - 0.5) : int64_t(v + 0.5); }

// Clipper's clean-up of the input path: repeated points (and a closing copy of
// the first one) dropped, then reversed unless its area is positive in
// Clipper's convention. Writes at most n points to `src`; returns their count.
DBF_HOST_DEVICE int prepare_offset_path(const int64_t* xy, int n, int64_t* src) {
  if (n <= 0) return 0;
  int high = n - 1;
  while (high > 0 && xy[0] == xy[2 * high] && xy[1] == xy[2 * high + 1]) --high;
  int len = 1;
  src[0] = xy[0], src[1] = xy[1];
  for (int i = 1; i <= high; ++i) {
    if (xy[2 * i] != src[2 * len - 2] || xy[2 * i + 1] != src[2 * len - 1]) {
      src[2 * len] = xy[2 * i], src[2 * len + 1] = xy[2 * i + 1];
      ++len;
    }
  }
  double area2 = 0;
  for (int i = 0, j = len - 1; i < len; j = i++) {
    area2 += mul_rn(double(src[2 * j]) + double(src[2 * i]), double(src[2 * j + 1]) - double(src[2 * i + 1]));
  }
  if (-area2 * 0.5 < 0) {
    for (int i = 0, j = len - 1; i < j; ++i, --j) {
      const int64_t x = src[2 * i], y = src[2 * i + 1];
      src[2 * i] = src[2 * j], src[2 * i + 1] = src[2 * j + 1];
      src[2 * j] = x, src[2 * j + 1] = y;
    }
  }
  return len;
}

// The arc steps of Clipper's DoOffset for a round join: how many points a full
// turn gets at this delta (the most any join can emit is steps / 2 + 2).
DBF_HOST_DEVICE double offset_arc_steps(double delta) {
  const double pi = 3.141592653589793238, tolerance = 0.25;
  const double y = tolerance > mul_rn(delta, tolerance) ? mul_rn(delta, tolerance) : tolerance;
  const double steps = pi / acos(1 - y / delta);
  return steps > mul_rn(delta, pi) ? mul_rn(delta, pi) : steps;
}

// Clipper's offset of a prepared path (len >= 3, delta > 0): emit(x, y) for
// each point of the grown polygon, in Clipper's order.
template <class Emit>
DBF_HOST_DEVICE void offset_round_path(const int64_t* src, int len, double delta, Emit&& emit) {
  const double pi = 3.141592653589793238;
  const double steps = offset_arc_steps(delta);
  const double step_sin = sin(2 * pi / steps), step_cos = cos(2 * pi / steps);
  const double steps_per_rad = steps / (2 * pi);
  // The unit normal of edge j (from point j to the next one).
  auto normal = [&](int j, double& nx, double& ny) {
    const int k = j + 1 < len ? j + 1 : 0;
    nx = ny = 0.0;
    if (src[2 * j] == src[2 * k] && src[2 * j + 1] == src[2 * k + 1]) return;
    const double dx = double(src[2 * k] - src[2 * j]), dy = double(src[2 * k + 1] - src[2 * j + 1]);
    const double f = 1.0 / sqrt(mul_rn(dx, dx) + mul_rn(dy, dy));
    nx = dy * f, ny = -dx * f;
  };
  auto push = [&](int j, double nx, double ny) {
    emit(round_half_away(double(src[2 * j]) + mul_rn(nx, delta)),
         round_half_away(double(src[2 * j + 1]) + mul_rn(ny, delta)));
  };
  double kx, ky;  // normal of edge k, the last edge joined
  normal(len - 1, kx, ky);
  for (int j = 0; j < len; ++j) {
    double jx, jy;
    normal(j, jx, jy);
    double sin_a = mul_rn(kx, jy) - mul_rn(jx, ky);
    const double cos_a = mul_rn(kx, jx) + mul_rn(jy, ky);
    if (fabs(mul_rn(sin_a, delta)) < 1.0) {
      if (cos_a > 0) {  // nearly straight: one point, k kept
        push(j, kx, ky);
        continue;
      }
    } else if (sin_a > 1.0) {
      sin_a = 1.0;
    } else if (sin_a < -1.0) {
      sin_a = -1.0;
    }
    if (mul_rn(sin_a, delta) < 0) {  // concave corner
      push(j, kx, ky);
      emit(src[2 * j], src[2 * j + 1]);
      push(j, jx, jy);
    } else {  // round join: an arc from normal k to normal j
      const double a = atan2(sin_a, mul_rn(kx, jx) + mul_rn(ky, jy));
      const int64_t rounded = round_half_away(mul_rn(steps_per_rad, fabs(a)));
      const int arc_steps = rounded > 1 ? int(rounded) : 1;
      double x = kx, y = ky;
      for (int i = 0; i < arc_steps; ++i) {
        push(j, x, y);
        const double x2 = x;
        x = mul_rn(x, step_cos) - mul_rn(step_sin, y);
        y = mul_rn(x2, step_sin) + mul_rn(y, step_cos);
      }
      push(j, jx, jy);
    }
    kx = jx, ky = jy;
  }
}

// The unclip distance of a float quad: area * ratio / perimeter, in double as
// the reference (shapely's area and length of the float box).
DBF_HOST_DEVICE double unclip_distance(const float* quad, double ratio) {
  double area2 = 0, perimeter = 0;
  for (int i = 0, j = 3; i < 4; j = i++) {
    area2 += mul_rn(double(quad[2 * j]), double(quad[2 * i + 1])) -
             mul_rn(double(quad[2 * i]), double(quad[2 * j + 1]));
    perimeter += hypot(double(quad[2 * i]) - quad[2 * j], double(quad[2 * i + 1]) - quad[2 * j + 1]);
  }
  return fabs(area2) * 0.5 * ratio / perimeter;
}

}  // namespace dbf
