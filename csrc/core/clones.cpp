#include "clones.h"

#include <cstdlib>
#include <cstring>
#include <string>

namespace dbf {
namespace {

constexpr const char* kVariantNames[] = {"baseline", "avx2", "avx512"};

struct Selection {
  CpuVariant variant = CpuVariant::kBaseline;
  std::string error;
};

Selection select_variant() {
  Selection s;
  s.variant = best_cpu_variant();
  const char* requested = std::getenv("DBNET_FAST_CPU_VARIANT");
  if (requested == nullptr || *requested == '\0' || std::strcmp(requested, "auto") == 0) return s;
  for (int v = 0; v < 3; ++v) {
    if (std::strcmp(requested, kVariantNames[v]) != 0) continue;
    if (v > int(s.variant)) {
      s.error = std::string("DBNET_FAST_CPU_VARIANT=") + requested + ": this CPU (or build) runs at most the '" +
                kVariantNames[int(s.variant)] + "' variant";
    } else {
      s.variant = CpuVariant(v);
    }
    return s;
  }
  s.error = std::string("DBNET_FAST_CPU_VARIANT must be one of auto, baseline, avx2, avx512; got '") +
            requested + "'";
  return s;
}

// Read once, when the library loads.
const Selection kSelection = select_variant();

}  // namespace

CpuVariant best_cpu_variant() {
#if DBF_CPU_VARIANTS
  __builtin_cpu_init();  // (may run before libgcc's own constructor)
  // (libgcc's checks include the OS saving the wider registers)
  if (__builtin_cpu_supports("x86-64-v4")) return CpuVariant::kAvx512;
  if (__builtin_cpu_supports("x86-64-v3")) return CpuVariant::kAvx2;
#endif
  return CpuVariant::kBaseline;
}

CpuVariant cpu_variant() { return kSelection.variant; }

const char* cpu_variant_name(CpuVariant variant) { return kVariantNames[int(variant)]; }

const char* cpu_variant_error() { return kSelection.error.c_str(); }

}  // namespace dbf
