// Reference labelling for the native tests and the fuzz target: an
// 8-connected flood fill, each text pixel named by its component's first
// pixel in raster order (the labels the union-find kernels must give).
#pragma once

#include <cstdint>
#include <vector>

namespace dbf_test {

inline std::vector<int32_t> flood_labels(const std::vector<uint8_t>& text, int h, int w) {
  std::vector<int32_t> label(text.size(), -1), todo;
  for (int32_t s = 0; s < h * w; ++s) {
    if (!text[s] || label[s] >= 0) continue;
    label[s] = s;
    todo.assign(1, s);
    while (!todo.empty()) {
      const int32_t p = todo.back();
      todo.pop_back();
      for (int dy = -1; dy <= 1; ++dy) {
        for (int dx = -1; dx <= 1; ++dx) {
          const int x = p % w + dx, y = p / w + dy;
          if (x < 0 || y < 0 || x >= w || y >= h) continue;
          const int32_t q = y * w + x;
          if (text[q] && label[q] < 0) label[q] = s, todo.push_back(q);
        }
      }
    }
  }
  return label;
}

}  // namespace dbf_test
