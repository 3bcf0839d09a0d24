// The fuzz targets' view of libFuzzer's bytes: values taken in order, zero
// once the input runs out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

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

}  // namespace dbf_fuzz
