// The CUDA quad pipeline (csrc/cuda/postprocess.cu) run on the host, each
// kernel as a loop over its threads one after another, calling the same
// host-device steps (components.h). For kernels without barriers any
// sequential order is a legal interleaving, so this checks the kernels'
// logic where no GPU is present (tests, fuzzing); `seed` picks the order:
// 0 raster, 1 reversed, else shuffled.
#pragma once

#include <cstdint>
#include <vector>

#include "postprocess.h"

namespace dbf {

std::vector<int32_t> thread_order(int32_t n, uint64_t seed);

// The labelling kernels on one mask (0/1 bytes): each text pixel ends with
// its component's first pixel (linear index), background with -1.
void label_sequential(const uint8_t* text, int32_t* label, int height, int width, uint64_t seed);

// The row-wise fast score of the device (box_score_fast's pixels).
double row_wise_quad_score(const float* prob, int height, int width, const float* quad);

struct SequentialResult {
  std::vector<float> records;   // kept boxes: 8 coordinates in map pixels, then the score
  std::vector<int64_t> counts;  // per image
  int64_t non_finite_image = -1;  // the first image holding NaN or inf (then no boxes)
  int internal_error = 0;         // buffer overflow bits, as the device reports them
};

// The whole pipeline on a batch of maps (batch x height x width floats).
SequentialResult boxes_sequential(const float* maps, int64_t batch, int height, int width,
                                  const PostParams& params, uint64_t seed);

}  // namespace dbf
