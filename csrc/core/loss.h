// The DB loss (5 BCE with OHEM + 1 Dice + 10 L1) as element math, exact top-k
// selection by radix select, and the final composition: shared by the CPU loops
// below (csrc/cpu/loss.cpp) and the CUDA kernels (csrc/cuda/loss.cu).
//
// Pass 1 computes per pixel P, T, B and the BCE loss, gathers the sums of
// LossSum and writes a sortable key for every OHEM negative. The k-th largest
// negative loss (k = min(#negatives, floor(ratio #positives))) is found by
// radix select over the keys (a histogram per 11-bit digit, no sort, nothing
// read back to the host); a last pass sums the losses above it. The backward
// recomputes the pixel math and reads the keys to know which pixels the OHEM
// selected (ties at the k-th value share the remainder evenly).
#pragma once

#include "binarize.h"

namespace dbf {

// Sums of the first pass (kept in double), in this order.
enum LossSum : int {
  kPositives,       // pixels with target > 1/2 inside the mask
  kNegatives,       // pixels with target <= 1/2 inside the mask
  kPositiveLoss,    // their BCE
  kIntersection,    // sum B gt m
  kBinaryMass,      // sum B m
  kTargetMass,      // sum gt m
  kL1Mass,          // sum |T - thresh_map| thresh_mask
  kThreshMaskMass,  // sum thresh_mask
  kNumSums
};

// What the forward knows at the end, for the backward: the sums, then these.
enum LossStat : int {
  kSelected = kNumSums,  // k, the number of negatives OHEM keeps
  kThreshold,            // the k-th largest negative loss (0 if k = 0)
  kAboveCount,           // negatives with a loss above it
  kTieCount,             // negatives with a loss equal to it
  kAboveLoss,            // the sum of the losses above it
  kBce,
  kDice,
  kL1,
  kTotal,
  kNumStats
};

struct LossConfig {
  double k, bce_weight, dice_weight, l1_weight, ohem_ratio, eps;
};

// ---- pixel math -------------------------------------------------------------

template <class A> struct LossPoint {
  Logistic<A> prob, thresh;  // P = sigmoid(prob logit), T = sigmoid(thresh logit)
  A binary;                  // B = sigmoid(k (P - T))
  A bce;                     // BCE of P against the shrink map
};

template <class A>
DBF_HOST_DEVICE LossPoint<A> loss_point(A prob_logit, A thresh_logit, A target, BinarizeGain<A> k) {
  LossPoint<A> q;
  q.prob = logistic(prob_logit);
  q.thresh = logistic(thresh_logit);
  q.binary = binarize_value(q.prob.value, q.thresh.value, k);
  q.bce = bce_from_logit(prob_logit, target, q.prob.exp_neg_abs);
  return q;
}

template <class A> DBF_HOST_DEVICE bool is_positive(A target, A mask) {
  return (target > A(0.5)) & (mask > A(0.5));
}
template <class A> DBF_HOST_DEVICE bool is_negative(A target, A mask) {
  return (target <= A(0.5)) & (mask > A(0.5));
}

// A pixel's share of each LossSum.
template <class A>
DBF_HOST_DEVICE void pixel_sums(const LossPoint<A>& q, A target, A mask, A thresh_target,
                                A thresh_mask, A (&out)[kNumSums]) {
  const bool positive = is_positive(target, mask);
  const A diff = q.thresh.value - thresh_target;
  out[kPositives] = positive ? A(1) : A(0);
  out[kNegatives] = is_negative(target, mask) ? A(1) : A(0);
  out[kPositiveLoss] = positive ? q.bce : A(0);
  out[kIntersection] = q.binary * target * mask;
  out[kBinaryMass] = q.binary * mask;
  out[kTargetMass] = target * mask;
  out[kL1Mass] = (diff < A(0) ? -diff : diff) * thresh_mask;
  out[kThreshMaskMass] = thresh_mask;
}

// ---- sortable keys of the negatives' losses ---------------------------------

template <class A> struct KeyType;
template <> struct KeyType<float> { using type = uint32_t; };
template <> struct KeyType<double> { using type = uint64_t; };
template <class A> using key_t = typename KeyType<A>::type;

// Non-negative floats order as their bit patterns; +1 leaves 0 for "not a
// negative". A NaN loss sorts above everything, so it reaches the sum.
DBF_HOST_DEVICE uint32_t loss_key(float loss) {
  return float_to_bits(loss <= 0.f ? 0.f : loss) + 1u;
}
DBF_HOST_DEVICE uint64_t loss_key(double loss) {
  return double_to_bits(loss <= 0.0 ? 0.0 : loss) + 1u;
}
DBF_HOST_DEVICE float key_loss(uint32_t key) { return bits_to_float(key - 1u); }
DBF_HOST_DEVICE double key_loss(uint64_t key) { return bits_to_double(key - 1u); }

// ---- radix select of the k-th largest key -----------------------------------
// Pass p builds the histogram of digit p over the keys that match the digits
// chosen so far, then radix_step fixes digit p. Pass 0 runs inside the pixel
// pass. Pass p >= 1 also sums the losses of the keys that the digit chosen in
// pass p - 1 put above the k-th value; after the last pass every key of a bin
// holds the same value, so its share follows from the counts. The sum above
// the k-th value thus needs no pass of its own.

constexpr int kRadixBits = 11;
constexpr int kRadixBins = 1 << kRadixBits;

template <class Key> constexpr int radix_passes() {
  return (8 * int(sizeof(Key)) + kRadixBits - 1) / kRadixBits;
}

// Digits from the most significant end; the last one may overlap bits that an
// earlier pass fixed already, which only leaves some bins empty.
template <class Key> DBF_HOST_DEVICE int radix_shift(int pass) {
  const int shift = 8 * int(sizeof(Key)) - kRadixBits * (pass + 1);
  return shift < 0 ? 0 : shift;
}

template <class Key> DBF_HOST_DEVICE int radix_digit(Key key, int pass) {
  return int((key >> radix_shift<Key>(pass)) & Key(kRadixBins - 1));
}

template <class Key> struct RadixState {
  Key prefix;           // the digits chosen so far
  Key fixed;            // the bits they cover
  int64_t rank;         // the rank (1 = largest) still wanted among keys with this prefix
  int64_t above_count;  // keys known to be above the k-th largest
  double above_loss;    // the sum of their losses
  int64_t tie_count;    // keys equal to the k-th largest (after the last pass)
};

template <class Key> DBF_HOST_DEVICE RadixState<Key> radix_start(int64_t k) {
  return {Key(0), Key(0), k, 0, 0.0, 0};
}

template <class Key> DBF_HOST_DEVICE bool radix_matches(Key key, const RadixState<Key>& s) {
  return (key & s.fixed) == s.prefix;
}

// In pass >= 1: whether the digit chosen in the previous pass puts key above
// the k-th largest (it matched the digits before it and its digit is larger).
template <class Key>
DBF_HOST_DEVICE bool radix_newly_above(Key key, const RadixState<Key>& s, int pass) {
  const Key digit = Key(kRadixBins - 1) << radix_shift<Key>(pass - 1);
  const Key before = s.fixed & ~digit;
  return ((key & before) == (s.prefix & before)) & ((key & digit) > (s.prefix & digit));
}

// Given the histogram of this pass's digit over the keys matching the prefix
// and the loss sum of the keys newly above (pass >= 1), fix this pass's digit.
// Does nothing when rank is 0 (k = 0).
template <class Key>
DBF_HOST_DEVICE void radix_step(const int64_t* histogram, double newly_above_loss,
                                RadixState<Key>& s, int pass) {
  if (s.rank <= 0) return;
  s.above_loss += newly_above_loss;
  const int shift = radix_shift<Key>(pass);
  const bool last = pass == radix_passes<Key>() - 1;
  int64_t above = 0;
  int bin = kRadixBins - 1;
  for (; bin > 0 && above + histogram[bin] < s.rank; --bin) {
    above += histogram[bin];
    if (last && histogram[bin] > 0) {
      s.above_loss += double(histogram[bin]) * double(key_loss(s.prefix | (Key(bin) << shift)));
    }
  }
  s.prefix |= Key(bin) << shift;
  s.fixed |= Key(kRadixBins - 1) << shift;
  s.rank -= above;
  s.above_count += above;
  if (last) s.tie_count = histogram[bin];
}

// The key of the k-th largest once every pass is done; with k = 0 a key that
// no loss reaches, so that nothing counts as selected.
template <class Key> DBF_HOST_DEVICE Key radix_result(const RadixState<Key>& s, int64_t k) {
  return k > 0 ? s.prefix : ~Key(0);
}

// The threshold key as the backward rebuilds it from the stats.
template <class A> DBF_HOST_DEVICE key_t<A> threshold_key(const double* stats) {
  return stats[kSelected] > 0 ? loss_key(A(stats[kThreshold])) : ~key_t<A>(0);
}

DBF_HOST_DEVICE int64_t ohem_count(double positives, double negatives, double ratio) {
  const double wanted = floor(positives * ratio);
  return int64_t(wanted < negatives ? wanted : negatives);
}

// Records the selection in the stats and composes the loss (see below).
template <class Key>
DBF_HOST_DEVICE void record_selection(double* stats, const RadixState<Key>& s, int64_t k) {
  stats[kSelected] = double(k);
  stats[kThreshold] = k > 0 ? double(key_loss(radix_result(s, k))) : 0.0;
  stats[kAboveCount] = double(s.above_count);
  stats[kTieCount] = double(s.tie_count);
  stats[kAboveLoss] = s.above_loss;
}

// ---- composition ------------------------------------------------------------

// Fills kBce .. kTotal of stats from the sums and the selection.
DBF_HOST_DEVICE void compose_loss(double* stats, const LossConfig& c) {
  const double selected = stats[kSelected];
  const double negative_loss =
      selected > 0 ? stats[kAboveLoss] + (selected - stats[kAboveCount]) * stats[kThreshold] : 0.0;
  stats[kBce] = (stats[kPositiveLoss] + negative_loss) / (stats[kPositives] + selected + c.eps);
  stats[kDice] = 1.0 - 2.0 * stats[kIntersection] /
                           (stats[kBinaryMass] + stats[kTargetMass] + c.eps);
  stats[kL1] = stats[kL1Mass] / (stats[kThreshMaskMass] + c.eps);
  stats[kTotal] = c.bce_weight * stats[kBce] + c.dice_weight * stats[kDice] + c.l1_weight * stats[kL1];
}

// ---- backward -----------------------------------------------------------------

// Per-pixel gradient factors, from the stats and the upstream gradients of
// (total, bce, dice, l1).
template <class A> struct LossGradFactors {
  A bce;          // per selected pixel: d bce / d loss_i times the upstream weight
  A tie_share;    // the share of a pixel whose loss equals the k-th value
  A dice_target;  // d dice / d B_i = m_i (dice_target gt_i + dice_mask)
  A dice_mask;
  A l1;           // per pixel of the threshold mask: d l1 / d |T - thresh_map|
};

template <class A>
DBF_HOST_DEVICE LossGradFactors<A> loss_grad_factors(const double* stats, const double* grad_terms,
                                                     const LossConfig& c) {
  const double bce_w = grad_terms[0] * c.bce_weight + grad_terms[1];
  const double dice_w = grad_terms[0] * c.dice_weight + grad_terms[2];
  const double l1_w = grad_terms[0] * c.l1_weight + grad_terms[3];
  const double selected = stats[kSelected];
  const double union_ = stats[kBinaryMass] + stats[kTargetMass] + c.eps;
  LossGradFactors<A> f;
  f.bce = A(bce_w / (stats[kPositives] + selected + c.eps));
  f.tie_share = A(stats[kTieCount] > 0 ? (selected - stats[kAboveCount]) / stats[kTieCount] : 0.0);
  f.dice_target = A(-2.0 * dice_w / union_);
  f.dice_mask = A(2.0 * dice_w * stats[kIntersection] / (union_ * union_));
  f.l1 = A(l1_w / (stats[kThreshMaskMass] + c.eps));
  return f;
}

template <class A, class Key>
DBF_HOST_DEVICE void loss_grad_point(A prob_logit, A thresh_logit, A target, A mask, A thresh_target,
                                     A thresh_mask, Key key, Key threshold,
                                     LossGradFactors<A> f, BinarizeGain<A> k,
                                     A& grad_prob_logit, A& grad_thresh_logit) {
  const LossPoint<A> q = loss_point(prob_logit, thresh_logit, target, k);
  const A negative_share = key > threshold ? A(1) : key == threshold ? f.tie_share : A(0);
  const A share = is_positive(target, mask) ? A(1) : is_negative(target, mask) ? negative_share : A(0);
  const A dice = (f.dice_target * target + f.dice_mask) * mask * k.hi * (q.binary * (A(1) - q.binary));
  const A diff = q.thresh.value - thresh_target;
  const A sign = diff > A(0) ? A(1) : diff < A(0) ? A(-1) : A(0);
  grad_prob_logit = share * f.bce * (q.prob.value - target) + dice * q.prob.slope;
  grad_thresh_logit = (f.l1 * sign * thresh_mask - dice) * q.thresh.slope;
}

// ---- host loops on raw buffers ---------------------------------------------------
// T: the logits' element type; targets are acc_t<T>. Each call handles one chunk.

// Sum of v[0, n) in double, through kLanes partial sums in A so that the loop
// vectorises without reassociation flags (and the order is fixed).
template <class A> DBF_FORCE_INLINE double lane_sum(const A* v, int64_t n) {
  constexpr int kLanes = 16;
  A lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += v[i + j];
  }
  double total = 0.0;
  for (int j = 0; j < kLanes; ++j) total += double(lanes[j]);
  for (; i < n; ++i) total += double(v[i]);
  return total;
}

// The pixel pass: writes the keys, returns the LossSum sums in sums[] and adds
// the histogram of radix digit 0 to histogram[]. Pixels go in blocks: the
// vectorised loop stores each pixel's contributions, lane_sum adds them up.
constexpr int64_t kSumBlock = 256;

template <class T, class A = acc_t<T>, class Key = key_t<A>>
DBF_FORCE_INLINE void loss_forward_span(const T* DBF_RESTRICT prob_logit,
                                        const T* DBF_RESTRICT thresh_logit,
                                        const A* DBF_RESTRICT target, const A* DBF_RESTRICT mask,
                                        const A* DBF_RESTRICT thresh_target,
                                        const A* DBF_RESTRICT thresh_mask, Key* DBF_RESTRICT keys,
                                        int64_t n, BinarizeGain<A> k, double* sums,
                                        int64_t* histogram) {
  alignas(64) A contributions[kNumSums][kSumBlock];
  for (int s = 0; s < kNumSums; ++s) sums[s] = 0.0;
  for (int64_t start = 0; start < n; start += kSumBlock) {
    const int64_t count = n - start < kSumBlock ? n - start : kSumBlock;
    for (int64_t j = 0; j < count; ++j) {
      const int64_t i = start + j;
      const A gt = target[i], m = mask[i];
      const LossPoint<A> q = loss_point(A(prob_logit[i]), A(thresh_logit[i]), gt, k);
      keys[i] = is_negative(gt, m) ? loss_key(q.bce) : Key(0);
      A c[kNumSums];
      pixel_sums(q, gt, m, thresh_target[i], thresh_mask[i], c);
      for (int s = 0; s < kNumSums; ++s) contributions[s][j] = c[s];
    }
    for (int s = 0; s < kNumSums; ++s) sums[s] += lane_sum(contributions[s], count);
  }
  for (int64_t i = 0; i < n; ++i) ++histogram[radix_digit(keys[i], 0)];
}

// Pass >= 1 of the radix select on n < 2^32 keys: adds the histogram of this
// pass's digit to histogram[] and returns the loss sum of the keys newly above.
// Branch-free (the keys are in no useful order): a key that does not match
// counts in a spare bin, and four copies of the histogram take turns so that
// runs of one bin do not wait on one counter. The sum goes through lane_sum.
template <class Key>
DBF_FORCE_INLINE double radix_pass_span(const Key* DBF_RESTRICT keys, int64_t n,
                                        const RadixState<Key>& s, int pass, int64_t* histogram) {
  using Loss = decltype(key_loss(Key(0)));
  uint32_t counts[4][kRadixBins + 1] = {};
  for (int64_t i = 0; i < n; ++i) {
    const Key key = keys[i];
    ++counts[i & 3][radix_matches(key, s) ? radix_digit(key, pass) : kRadixBins];
  }
  for (int b = 0; b < kRadixBins; ++b) {
    histogram[b] += int64_t(counts[0][b]) + counts[1][b] + counts[2][b] + counts[3][b];
  }
  alignas(64) Loss above[kSumBlock];
  double newly_above_loss = 0.0;
  for (int64_t start = 0; start < n; start += kSumBlock) {
    const int64_t count = n - start < kSumBlock ? n - start : kSumBlock;
    for (int64_t j = 0; j < count; ++j) {
      const Key key = keys[start + j];
      above[j] = radix_newly_above(key, s, pass) ? key_loss(key) : Loss(0);
    }
    newly_above_loss += lane_sum(above, count);
  }
  return newly_above_loss;
}

template <class T, class A = acc_t<T>, class Key = key_t<A>>
DBF_FORCE_INLINE void loss_backward_span(const T* DBF_RESTRICT prob_logit,
                                         const T* DBF_RESTRICT thresh_logit,
                                         const A* DBF_RESTRICT target, const A* DBF_RESTRICT mask,
                                         const A* DBF_RESTRICT thresh_target,
                                         const A* DBF_RESTRICT thresh_mask,
                                         const Key* DBF_RESTRICT keys, int64_t n, Key threshold,
                                         LossGradFactors<A> f, BinarizeGain<A> k,
                                         T* DBF_RESTRICT grad_prob, T* DBF_RESTRICT grad_thresh) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    A gp, gt;
    loss_grad_point(A(prob_logit[i]), A(thresh_logit[i]), target[i], mask[i], thresh_target[i],
                    thresh_mask[i], keys[i], threshold, f, k, gp, gt);
    grad_prob[i] = T(gp);
    grad_thresh[i] = T(gt);
  }
}

}  // namespace dbf
