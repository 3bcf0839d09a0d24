// The "unclip" of DB post-processing: a closed polygon grown by `delta` with
// round joins, as pyclipper's PyclipperOffset (Clipper 6.4, ArcTolerance 0.25,
// integer coordinates) computes it before its clean-up union. The union only
// merges and drops non-extreme points of a convex input, so the convex hull of
// these points is the hull of pyclipper's result.
#pragma once

#include <cstdint>
#include <vector>

namespace dbf {

// `xy`: n integer points (interleaved). Appends the offset polygon's points to
// `out`; appends nothing when the path has fewer than 3 distinct points.
void offset_polygon_round(const int64_t* xy, int n, double delta, std::vector<int64_t>& out);

}  // namespace dbf
