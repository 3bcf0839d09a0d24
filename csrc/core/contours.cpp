#include "contours.h"

#include "clones.h"

#include <algorithm>
#include <cstring>
#if defined(_MSC_VER)
#include <intrin.h>
#endif

namespace dbf {
namespace {

// Label values in the padded copy of the mask.
constexpr int8_t kUnvisited = 1;   // foreground not yet on a traced border
constexpr int8_t kVisited = 2;     // on a traced border
constexpr int8_t kRightBound = -2; // on a traced border whose right neighbour is background

// Chain codes 0..7 counter-clockwise on screen, starting at +x (y grows down).
constexpr int kStepX[8] = {1, 1, 0, -1, -1, -1, 0, 1};
constexpr int kStepY[8] = {0, -1, -1, -1, 0, 1, 1, 1};

// Reused per thread: a fresh buffer per map would cost page faults. The
// caller writes every interior row, so only the frame is cleared here.
std::vector<int8_t>& label_buffer(int height, int width) {
  thread_local std::vector<int8_t> buffer;
  const size_t stride = size_t(width) + 2;
  buffer.resize(size_t(height + 2) * stride);
  std::memset(buffer.data(), 0, stride);
  std::memset(buffer.data() + size_t(height + 1) * stride, 0, stride);
  for (int y = 1; y <= height; ++y) buffer[y * stride] = buffer[y * stride + stride - 1] = 0;
  return buffer;
}

std::vector<uint8_t>& row_flags_buffer(int height) {
  thread_local std::vector<uint8_t> flags;
  flags.resize(size_t(height));
  return flags;
}

// prob > thresh as 0/1 bytes into rows of labels `stride` apart, and for
// each row whether any pixel is set; false if the map holds NaN or inf
// (v - v is then NaN). Wide variants: this pass reads the whole map.
DBF_FORCE_INLINE bool threshold_map_impl(const float* prob, int height, int width, float thresh,
                                         int8_t* labels, int64_t stride, uint8_t* has_foreground) {
  int non_finite = 0;
  for (int y = 0; y < height; ++y) {
    const float* in = prob + size_t(y) * width;
    int8_t* out = labels + y * stride;
    int any = 0;
    for (int x = 0; x < width; ++x) {
      const int8_t v = in[x] > thresh;
      out[x] = v;
      any |= v;
      non_finite |= (in[x] - in[x]) != 0.f;
    }
    has_foreground[y] = any != 0;
  }
  return non_finite == 0;
}

DBF_CPU_DISPATCH(bool, threshold_map,
                 (const float* prob, int height, int width, float thresh, int8_t* labels, int64_t stride,
                  uint8_t* has_foreground),
                 threshold_map_impl, (prob, height, width, thresh, labels, stride, has_foreground))

// Eight pixels as one word, the first pixel in the lowest byte (whatever the
// machine's byte order), so that first_set_byte finds the first that differs.
uint64_t load8(const int8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

int first_set_byte(uint64_t v) {  // v != 0
#if defined(_MSC_VER)
  unsigned long bit;
  _BitScanForward64(&bit, v);
  return int(bit) >> 3;
#else
  return __builtin_ctzll(v) >> 3;
#endif
}

int last_set_byte(uint64_t v) {  // v != 0
#if defined(_MSC_VER)
  unsigned long bit;
  _BitScanReverse64(&bit, v);
  return int(bit) >> 3;
#else
  return (63 - __builtin_clzll(v)) >> 3;
#endif
}

// 0x80 in each byte of v that is zero, and only there.
uint64_t zero_bytes(uint64_t v) {
  constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7full;
  return ~(((v & kLow7) + kLow7) | v | kLow7);
}

// The first t' >= t below end whose label is zero (find_zero) or not; end if none.
int scan_forward(const int8_t* row, int t, int end, bool find_zero) {
  for (; t + 16 <= end; t += 16) {  // two words per test: long runs are common
    const uint64_t a = load8(row + t), b = load8(row + t + 8);
    if ((find_zero ? zero_bytes(a) | zero_bytes(b) : a | b) != 0) break;
  }
  for (; t + 8 <= end; t += 8) {
    const uint64_t v = load8(row + t), hit = find_zero ? zero_bytes(v) : v;
    if (hit != 0) return t + first_set_byte(hit);
  }
  for (; t < end; ++t) {
    if ((row[t] == 0) == find_zero) return t;
  }
  return end;
}

// The last t' <= t not below begin whose label is zero (find_zero) or not; begin - 1 if none.
int scan_backward(const int8_t* row, int t, int begin, bool find_zero) {
  for (; t - 7 >= begin; t -= 8) {
    const uint64_t v = load8(row + t - 7), hit = find_zero ? zero_bytes(v) : v;
    if (hit != 0) return t - 7 + last_set_byte(hit);
  }
  for (; t >= begin; --t) {
    if ((row[t] == 0) == find_zero) return t;
  }
  return begin - 1;
}

class BorderTracer {
 public:
  // Labels: the map with a frame of background, 1 = foreground.
  BorderTracer(int height, int width, bool simple)
      : height_(height), width_(width), stride_(width + 2), simple_(simple),
        label_(label_buffer(height, width)), has_foreground_(row_flags_buffer(height)) {
    for (int s = 0; s < 16; ++s) step_[s] = kStepX[s & 7] + int64_t(kStepY[s & 7]) * stride_;
  }

  int8_t* row(int y) { return &label_[size_t(y + 1) * stride_ + 1]; }

  void fill_from_mask(const uint8_t* mask) {
    for (int y = 0; y < height_; ++y) {
      const uint8_t* in = mask + size_t(y) * width_;
      int8_t* out = row(y);
      uint8_t any = 0;
      for (int x = 0; x < width_; ++x) any |= out[x] = in[x] != 0;
      has_foreground_[y] = any;
    }
  }

  // False if the map holds NaN or inf.
  bool fill_from_map(const float* prob, float thresh, bool dilate) {
    if (!threshold_map(prob, height_, width_, thresh, row(0), stride_, has_foreground_.data())) return false;
    if (!dilate) return true;
    // Bottom-up so that the row above is still undilated; the frame reads as 0.
    std::vector<int8_t> dilated(width_);
    for (int y = height_ - 1; y >= 0; --y) {
      const bool above = y > 0 && has_foreground_[y - 1];
      if (!has_foreground_[y] && !above) continue;  // stays empty
      has_foreground_[y] = 1;
      int8_t* cur = row(y);
      const int8_t* up = cur - stride_;
      for (int x = 0; x < width_; ++x) dilated[x] = cur[x] | cur[x - 1] | up[x] | up[x - 1];
      std::memcpy(cur, dilated.data(), size_t(width_));
    }
    return true;
  }

  // Raster scan: a border starts at an unvisited pixel after background
  // (outer border) or at background after a pixel not marked as a right
  // bound (hole border, traced from that pixel). Both happen where a row
  // turns from background to foreground or back, so the scan jumps from one
  // such change to the next (tracing changes labels, never whether a pixel
  // is foreground).
  void run(std::vector<int32_t>& xy, std::vector<int64_t>& starts) {
    for (int y = 0; y < height_; ++y) {
      // An empty row starts no border (tracing only marks foreground pixels).
      if (!has_foreground_[y]) continue;
      int8_t* line = row(y);
      for (int x = 0;;) {
        x = scan_forward(line, x, width_, false);  // the next foreground pixel
        if (x >= width_) break;
        if (line[x] == kUnvisited) {
          starts.push_back(int64_t(xy.size() / 2));
          follow(int64_t(y + 1) * stride_ + x + 1, x, y, false, xy);
        }
        x = scan_forward(line, x + 1, width_, true);  // the background after it
        if (x >= width_) break;  // (the frame is no hole)
        if (line[x - 1] >= 1) {
          starts.push_back(int64_t(xy.size() / 2));
          follow(int64_t(y + 1) * stride_ + x, x - 1, y, true, xy);
        }
      }
    }
  }

 private:
  void emit(std::vector<int32_t>& xy, int x, int y) {
    xy.push_back(x);
    xy.push_back(y);
  }

  // Follows one border from pixel i0 = (x, y), keeping the object on the left.
  void follow(int64_t i0, int x, int y, bool hole, std::vector<int32_t>& xy) {
    int8_t* lab = label_.data();
    int s_end = hole ? 0 : 4, s = s_end;
    int64_t i1;
    do {  // clockwise from the background neighbour to the first object pixel
      s = (s - 1) & 7;
      i1 = i0 + step_[s];
    } while (lab[i1] == 0 && s != s_end);
    if (s == s_end) {  // an isolated pixel
      lab[i0] = kRightBound;
      emit(xy, x, y);
      return;
    }
    int64_t i3 = i0;
    int prev_s = s ^ 4;
    for (;;) {
      if (simple_) skip_straight_run(i0, i3, x, s, prev_s);
      s_end = s;
      int64_t i4 = i3;
      while (s < 15) {  // counter-clockwise from the pixel we came from
        i4 = i3 + step_[++s];
        if (lab[i4] != 0) break;
      }
      s &= 7;
      if (unsigned(s - 1) < unsigned(s_end)) {
        lab[i3] = kRightBound;  // the search passed the background right neighbour
      } else if (lab[i3] == kUnvisited) {
        lab[i3] = kVisited;
      }
      if (!simple_ || s != prev_s) {
        emit(xy, x, y);
        prev_s = s;
      }
      x += kStepX[s];
      y += kStepY[s];
      if (i4 == i0 && i3 == i1) break;
      i3 = i4;
      s = (s + 4) & 7;
    }
  }

  // Along a horizontal edge the search takes the same turn pixel after pixel:
  // straight right while the three pixels below are background (the search
  // starts at 4, left: 5, 6, 7 are empty, 0 is not), straight left while the
  // three above are. Such a run emits no point in simple mode and only marks
  // its pixels visited, so whole runs are taken at once with word scans. The
  // run stops before it would step onto the start pixel i0 (where the trace
  // may end). Moves i3 and x to the last pixel of the run.
  void skip_straight_run(int64_t i0, int64_t& i3, int& x, int s, int prev_s) {
    int8_t* lab = label_.data();
    const int8_t* line = lab + i3 - x;  // column 0 of the current row (frame at -1 and width)
    int steps;
    // Only worth its scans when the next eight steps go straight (cheap to test).
    if (s == 4 && prev_s == 0) {  // came from the left, heading right
      if (x + 10 > width_ || zero_bytes(load8(line + x + 1)) != 0 || load8(line + stride_ + x - 1) != 0 ||
          load8(line + stride_ + x + 2) != 0) {
        return;
      }
      const int below_blocked = scan_forward(line + stride_, x - 1, width_ + 1, false);
      const int object_ends = scan_forward(line, x + 1, width_ + 1, true);
      steps = std::min(below_blocked, object_ends) - 1 - x;
      if (i0 > i3 && i0 <= i3 + steps) steps = int(i0 - i3) - 1;
      for (int j = 0; j < steps; ++j) lab[i3 + j] = lab[i3 + j] == kUnvisited ? kVisited : lab[i3 + j];
      if (steps > 0) i3 += steps, x += steps;
    } else if (s == 0 && prev_s == 4) {  // came from the right, heading left
      if (x < 10 || zero_bytes(load8(line + x - 8)) != 0 || load8(line - stride_ + x - 6) != 0 ||
          load8(line - stride_ + x - 9) != 0) {
        return;
      }
      const int above_blocked = scan_backward(line - stride_, x + 1, -1, false);
      const int object_ends = scan_backward(line, x - 1, -1, true);
      steps = std::min(x - 2 - above_blocked, x - 1 - object_ends);
      if (i0 < i3 && i0 >= i3 - steps) steps = int(i3 - i0) - 1;
      for (int j = 0; j < steps; ++j) lab[i3 - j] = lab[i3 - j] == kUnvisited ? kVisited : lab[i3 - j];
      if (steps > 0) i3 -= steps, x -= steps;
    }
  }

  int height_, width_;
  int64_t stride_;
  bool simple_;
  std::vector<int8_t>& label_;
  std::vector<uint8_t>& has_foreground_;  // per row, after the fill (and dilation)
  int64_t step_[16];
};

// OpenCV lists the borders last-found first.
Contours reversed(const std::vector<int32_t>& xy, std::vector<int64_t>& starts) {
  Contours out;
  const int64_t count = int64_t(starts.size());
  starts.push_back(int64_t(xy.size() / 2));
  out.xy.reserve(xy.size());
  out.offsets.reserve(count + 1);
  out.offsets.push_back(0);
  for (int64_t c = count - 1; c >= 0; --c) {
    out.xy.insert(out.xy.end(), xy.begin() + 2 * starts[c], xy.begin() + 2 * starts[c + 1]);
    out.offsets.push_back(int64_t(out.xy.size() / 2));
  }
  return out;
}

}  // namespace

Contours trace_contours(const uint8_t* mask, int height, int width, bool simple) {
  std::vector<int32_t> xy;
  std::vector<int64_t> starts;
  if (height > 0 && width > 0) {
    BorderTracer tracer(height, width, simple);
    tracer.fill_from_mask(mask);
    tracer.run(xy, starts);
  }
  return reversed(xy, starts);
}

Contours trace_map_contours(const float* prob, int height, int width, float thresh, bool dilate,
                            bool* finite) {
  std::vector<int32_t> xy;
  std::vector<int64_t> starts;
  *finite = true;
  if (height > 0 && width > 0) {
    BorderTracer tracer(height, width, true);
    *finite = tracer.fill_from_map(prob, thresh, dilate);
    if (*finite) tracer.run(xy, starts);
  }
  return reversed(xy, starts);
}

}  // namespace dbf
