// Rotated-rectangle geometry of DB post-processing, written to give OpenCV's
// float32 results bit for bit (minAreaRect by rotating calipers over a convex
// hull, boxPoints) so that the integer truncations that follow in the
// reference pipeline land on the same pixels. Host and device.
#pragma once

#include <cmath>

#include "common.h"

namespace dbf {

struct RotatedBox {
  float cx = 0.f, cy = 0.f, width = 0.f, height = 0.f, angle = 0.f;  // angle in degrees
};

// The minimum-area rectangle around a convex hull given as n float points
// (x, y interleaved) in OpenCV's hull order (see convex_hull), n >= 1, as
// cv::minAreaRect.
// The angle of side vector (x, y) in degrees, brought into [-90, 0) as OpenCV
// >= 4.5.1 reports it (in double, rounded once); a quarter turn swaps the sides.
DBF_HOST_DEVICE void set_angle(RotatedBox& box, double x, double y) {
  double degrees = atan2(y, x) * 180 / 3.14159265358979323846;
  if (degrees >= 90) degrees -= 180;
  else if (degrees < -90) degrees += 180;
  if (degrees >= 0) {
    degrees -= 90;
    const float w = box.width;
    box.width = box.height;
    box.height = w;
  }
  box.angle = float(degrees);
}

DBF_HOST_DEVICE RotatedBox min_area_rect(const float* hull, int n) {
  RotatedBox box;
  if (n == 1) {
    box.cx = hull[0];
    box.cy = hull[1];
    return box;
  }
  if (n == 2) {
    box.cx = (hull[0] + hull[2]) * 0.5f;
    box.cy = (hull[1] + hull[3]) * 0.5f;
    const double dx = double(hull[2]) - hull[0], dy = double(hull[3]) - hull[1];
    box.width = float(sqrt(mul_rn(dx, dx) + mul_rn(dy, dy)));
    set_angle(box, dx, dy);
    return box;
  }
  // Edge vectors and the extreme points that start the four calipers.
  int left = 0, bottom = 0, right = 0, top = 0;
  float left_x = hull[0], right_x = hull[0], top_y = hull[1], bottom_y = hull[1];
  for (int i = 0; i < n; ++i) {
    const float x = hull[2 * i], y = hull[2 * i + 1];
    if (x < left_x) left_x = x, left = i;
    if (x > right_x) right_x = x, right = i;
    if (y > top_y) top_y = y, top = i;
    if (y < bottom_y) bottom_y = y, bottom = i;
  }
  auto edge = [&](int i, float& vx, float& vy) {
    const int j = i + 1 < n ? i + 1 : 0;
    vx = float(double(hull[2 * j]) - hull[2 * i]);
    vy = float(double(hull[2 * j + 1]) - hull[2 * i + 1]);
  };
  auto inv_length = [&](int i) {  // 1 / |edge i|, only for the edge a caliper turns onto
    const int j = i + 1 < n ? i + 1 : 0;
    const double dx = double(hull[2 * j]) - hull[2 * i], dy = double(hull[2 * j + 1]) - hull[2 * i + 1];
    return float(1. / sqrt(mul_rn(dx, dx) + mul_rn(dy, dy)));
  };
  // The hull's orientation: the sign of the first non-zero turn.
  float orientation = 0.f;
  {
    float ax, ay;
    edge(n - 1, ax, ay);
    for (int i = 0; i < n; ++i) {
      float bx, by;
      edge(i, bx, by);
      const double turn = mul_rn(double(ax), double(by)) - mul_rn(double(ay), double(bx));
      if (turn != 0) {
        orientation = turn > 0 ? 1.f : -1.f;
        break;
      }
      ax = bx;
      ay = by;
    }
  }
  float base_a = orientation, base_b = 0.f;
  int seq[4] = {bottom, right, top, left};
  float min_area = 3.402823466e+38f, best_a = 0.f, best_b = 0.f, best_w = 0.f, best_h = 0.f;
  int best_left = 0, best_bottom = 0;
  for (int k = 0; k < n; ++k) {
    // The caliper whose side makes the smallest angle with its next hull edge
    // turns onto it; the edges, turned into the first caliper's frame, are
    // compared by the sign of a cross product (OpenCV >= 4.5.4).
    float vx[4], vy[4];
    for (int c = 0; c < 4; ++c) edge(seq[c], vx[c], vy[c]);
    const float rx[4] = {vx[0], vy[1], -vx[2], -vy[3]};
    const float ry[4] = {vy[0], -vx[1], -vy[2], vx[3]};
    int main = 0;
    for (int c = 1; c < 4; ++c) {
      if (mul_rn(ry[c], rx[main]) + mul_rn(-rx[c], ry[main]) < 0) main = c;  // edge c turns less
    }
    const float inv = inv_length(seq[main]);
    const float lead_x = vx[main] * inv, lead_y = vy[main] * inv;
    switch (main) {
      case 0: base_a = lead_x, base_b = lead_y; break;
      case 1: base_a = lead_y, base_b = -lead_x; break;
      case 2: base_a = -lead_x, base_b = -lead_y; break;
      default: base_a = -lead_y, base_b = lead_x; break;
    }
    seq[main] = seq[main] + 1 == n ? 0 : seq[main] + 1;
    const float wx = hull[2 * seq[1]] - hull[2 * seq[3]], wy = hull[2 * seq[1] + 1] - hull[2 * seq[3] + 1];
    const float width = mul_rn(wx, base_a) + mul_rn(wy, base_b);
    const float hx = hull[2 * seq[2]] - hull[2 * seq[0]], hy = hull[2 * seq[2] + 1] - hull[2 * seq[0] + 1];
    const float height = mul_rn(-hx, base_b) + mul_rn(hy, base_a);
    const float area = width * height;
    if (area <= min_area) {  // the last of equal areas wins, as in OpenCV
      min_area = area;
      best_left = seq[3], best_bottom = seq[0];
      best_a = base_a, best_b = base_b, best_w = width, best_h = height;
    }
  }
  // Corner from the two supporting lines, then the two side vectors.
  const float a1 = best_a, b1 = best_b, a2 = -best_b, b2 = best_a;
  const float c1 = mul_rn(a1, hull[2 * best_left]) + mul_rn(hull[2 * best_left + 1], b1);
  const float c2 = mul_rn(a2, hull[2 * best_bottom]) + mul_rn(hull[2 * best_bottom + 1], b2);
  const float idet = 1.f / (mul_rn(a1, b2) - mul_rn(a2, b1));
  const float px = mul_rn(mul_rn(c1, b2) - mul_rn(c2, b1), idet), py = mul_rn(mul_rn(a1, c2) - mul_rn(a2, c1), idet);
  const float v1x = mul_rn(a1, best_w), v1y = mul_rn(b1, best_w), v2x = mul_rn(a2, best_h), v2y = mul_rn(b2, best_h);
  box.cx = px + mul_rn(v1x + v2x, 0.5f);
  box.cy = py + mul_rn(v1y + v2y, 0.5f);
  box.width = float(sqrt(mul_rn(double(v1x), double(v1x)) + mul_rn(double(v1y), double(v1y))));
  box.height = float(sqrt(mul_rn(double(v2x), double(v2x)) + mul_rn(double(v2y), double(v2y))));
  set_angle(box, v1x, v1y);
  return box;
}

// The rectangle's corners (x, y interleaved) in OpenCV's boxPoints order.
DBF_HOST_DEVICE void box_points(const RotatedBox& box, float* pt) {
  const double angle = box.angle * 3.14159265358979323846 / 180.;
  const float b = float(cos(angle)) * 0.5f, a = float(sin(angle)) * 0.5f;
  const float ah = mul_rn(a, box.height), aw = mul_rn(a, box.width);
  const float bh = mul_rn(b, box.height), bw = mul_rn(b, box.width);
  pt[0] = box.cx - ah - bw;
  pt[1] = box.cy + bh - aw;
  pt[2] = box.cx + ah - bw;
  pt[3] = box.cy - bh - aw;
  // OpenCV 5 computes the opposite corners the same way (4.x took 2 c - p).
  pt[4] = box.cx + ah + bw;
  pt[5] = box.cy - bh + aw;
  pt[6] = box.cx - ah + bw;
  pt[7] = box.cy + bh + aw;
}

// Reorders the corners as PaddleOCR's get_mini_boxes: sorted by x (stably),
// the left pair and the right pair each split by y, giving TL, TR, BR, BL.
DBF_HOST_DEVICE void order_quad(const float* in, float* out) {
  int idx[4] = {0, 1, 2, 3};
  for (int i = 1; i < 4; ++i) {  // stable insertion sort on x
    const int v = idx[i];
    int j = i;
    while (j > 0 && in[2 * idx[j - 1]] > in[2 * v]) idx[j] = idx[j - 1], --j;
    idx[j] = v;
  }
  const bool first_above = in[2 * idx[1] + 1] > in[2 * idx[0] + 1];
  const int tl = first_above ? idx[0] : idx[1], bl = first_above ? idx[1] : idx[0];
  const bool third_above = in[2 * idx[3] + 1] > in[2 * idx[2] + 1];
  const int tr = third_above ? idx[2] : idx[3], br = third_above ? idx[3] : idx[2];
  const int order[4] = {tl, tr, br, bl};
  for (int i = 0; i < 4; ++i) out[2 * i] = in[2 * order[i]], out[2 * i + 1] = in[2 * order[i] + 1];
}

// The ordered min-area quad (TL, TR, BR, BL) of a hull given in the order of
// convex_hull (n >= 0 points; none gives a zero box), and its short side.
DBF_HOST_DEVICE float quad_of_hull(const float* hull, int n, float* quad) {
  RotatedBox box;
  if (n > 0) box = min_area_rect(hull, n);
  float corners[8];
  box_points(box, corners);
  order_quad(corners, quad);
  return box.height < box.width ? box.height : box.width;  // as std::min(width, height)
}

}  // namespace dbf
