// The fuzz targets' view of libFuzzer's bytes: values taken in order, zero
// once the input runs out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "../../csrc/core/postprocess.h"

namespace dbf_fuzz {

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

// A failed check: says which target and what, then aborts (libFuzzer keeps the input).
[[noreturn]] inline void fail(const char* target, const char* what) {
  std::fprintf(stderr, "%s: %s\n", target, what);
  std::abort();
}

// Post-processing settings from four bytes and the flags byte (bit 1:
// dilation, bits 4-7: min_size); slow_score is left to the caller.
inline dbf::PostParams take_params(Reader& in, uint8_t flags) {
  dbf::PostParams params;
  params.thresh = float(in.take<uint8_t>()) / 255.f;
  params.box_thresh = double(in.take<uint8_t>()) / 255.0;
  params.unclip_ratio = 0.1 + double(in.take<uint8_t>()) / 32.0;
  params.max_candidates = in.take<uint8_t>();
  params.dilate = flags & 2;
  params.min_size = double(flags >> 4);
  return params;
}

}  // namespace dbf_fuzz
