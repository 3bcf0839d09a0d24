// A minimal assertion helper for the native tests: each test is an executable
// that prints what failed and exits non-zero.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace dbf_test {
inline int& failures() {
  static int count = 0;
  return count;
}
inline int finish(const char* name) {
  if (failures() == 0) std::printf("%s: all checks passed\n", name);
  return failures() == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
}  // namespace dbf_test

#define DBF_CHECK(cond, ...)                                          \
  do {                                                                \
    if (!(cond)) {                                                    \
      ++dbf_test::failures();                                         \
      std::printf("%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      std::printf(__VA_ARGS__);                                       \
      std::printf("\n");                                              \
    }                                                                 \
  } while (0)
