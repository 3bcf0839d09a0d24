// Border following (Suzuki & Abe 1985) on a binary map, with the conventions
// of OpenCV's findContours(RETR_LIST): outer borders of 8-connected
// foreground components and borders of their 4-connected holes, each traced
// from its first pixel in raster order, listed in reverse order of discovery.
#pragma once

#include <cstdint>
#include <vector>

namespace dbf {

struct Contours {
  std::vector<int32_t> xy;       // (x, y) pairs of every contour, back to back
  std::vector<int64_t> offsets;  // contour c is points [offsets[c], offsets[c + 1])
  int64_t count() const { return int64_t(offsets.size()) - 1; }
};

// Traces every border of `mask` (height x width, nonzero = foreground).
// `simple`: keep only the ends of straight runs (CHAIN_APPROX_SIMPLE), else
// every border pixel (CHAIN_APPROX_NONE).
Contours trace_contours(const uint8_t* mask, int height, int width, bool simple);

// The same on the binary map prob > thresh (compared in float32; NaN is
// background), optionally dilated by a 2x2 kernel as cv2.dilate(ones((2, 2)))
// (anchor at the kernel's centre: a pixel is set when it or its left, upper
// or upper-left neighbour is). Chains are simple. A map holding NaN or inf
// gives no contour and *finite = false.
Contours trace_map_contours(const float* prob, int height, int width, float thresh, bool dilate,
                            bool* finite);

}  // namespace dbf
