// Native tests of csrc/core/loss.h and the elementary functions it uses:
// the radix select against a sort, on host loops that mirror the CUDA passes.
#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "../../csrc/core/loss.h"
#include "check.h"

namespace {

void test_log1p_unit() {
  double worst = 0;
  for (int i = 0; i <= 1000000; ++i) {
    const float y = float(i) / 1000000.f;
    const long double want = std::log1p((long double)y);
    const double err = double(std::fabs(dbf::log1p_unit(y) - want) / std::max(want, 1e-30L));
    worst = std::max(worst, i == 0 ? 0.0 : err);
  }
  DBF_CHECK(worst < 3e-7, "log1p_unit worst relative error %g", worst);
  DBF_CHECK(dbf::log1p_unit(0.f) == 0.f, "log1p(0) must be 0");
}

void test_logistic_and_bce() {
  double worst_value = 0, worst_slope = 0, worst_bce = 0;
  for (int i = -160000; i <= 160000; ++i) {
    const float x = float(i) / 2000.f;  // [-80, 80]: results stay normal floats
    const long double e = std::exp(-std::fabs((long double)x));
    const long double value = x >= 0 ? 1 / (1 + e) : e / (1 + e);
    const long double slope = e / ((1 + e) * (1 + e));
    const auto got = dbf::logistic(x);
    worst_value = std::max(worst_value, double(std::fabs(got.value - value) / value));
    worst_slope = std::max(worst_slope, double(std::fabs(got.slope - slope) / slope));
    for (float y : {0.f, 1.f}) {
      const long double bce = std::max((long double)x, 0.0L) - y * x + std::log1p(e);
      const float got_bce = dbf::bce_from_logit(x, y, got.exp_neg_abs);
      worst_bce = std::max(worst_bce, double(std::fabs(got_bce - bce) / std::max(bce, 1e-30L)));
    }
  }
  DBF_CHECK(worst_value < 5e-7, "logistic value worst relative error %g", worst_value);
  DBF_CHECK(worst_slope < 1e-6, "logistic slope worst relative error %g", worst_slope);
  DBF_CHECK(worst_bce < 1e-6, "bce worst relative error %g", worst_bce);
}

// The selection as db_loss runs it: digit-0 histogram, then radix passes in
// chunks of `chunk` keys (as the CPU threads and CUDA blocks split them).
template <class Key>
dbf::RadixState<Key> select(const std::vector<Key>& keys, int64_t k, int64_t chunk) {
  std::vector<int64_t> histogram(dbf::kRadixBins, 0);
  for (Key key : keys) ++histogram[dbf::radix_digit(key, 0)];
  auto state = dbf::radix_start<Key>(k);
  dbf::radix_step(histogram.data(), 0.0, state, 0);
  for (int pass = 1; pass < dbf::radix_passes<Key>(); ++pass) {
    std::fill(histogram.begin(), histogram.end(), 0);
    double newly_above = 0;
    for (int64_t begin = 0; begin < int64_t(keys.size()); begin += chunk) {
      const int64_t n = std::min<int64_t>(chunk, int64_t(keys.size()) - begin);
      newly_above += dbf::radix_pass_span(keys.data() + begin, n, state, pass, histogram.data());
    }
    dbf::radix_step(histogram.data(), newly_above, state, pass);
  }
  return state;
}

template <class Loss, class Key>
void check_selection(const std::vector<Loss>& losses, int64_t k, const char* what) {
  std::vector<Key> keys;
  for (Loss l : losses) keys.push_back(l < 0 ? Key(0) : dbf::loss_key(l));  // l < 0: not a negative
  std::vector<Loss> sorted;
  for (Loss l : losses) if (l >= 0) sorted.push_back(l);
  std::sort(sorted.begin(), sorted.end(), std::greater<Loss>());
  k = std::min<int64_t>(k, int64_t(sorted.size()));
  const auto state = select(keys, k, 1000);
  const Key threshold = dbf::radix_result(state, k);
  if (k == 0) {
    DBF_CHECK(threshold == ~Key(0) && state.above_count == 0, "%s: k = 0 selects nothing", what);
    return;
  }
  const Loss tau = sorted[k - 1];
  int64_t above = 0, ties = 0;
  double above_sum = 0;
  for (Loss l : sorted) {
    above += l > tau;
    ties += l == tau;
    above_sum += l > tau ? double(l) : 0.0;
  }
  DBF_CHECK(dbf::key_loss(threshold) == tau, "%s: k-th value %g, want %g", what,
            double(dbf::key_loss(threshold)), double(tau));
  DBF_CHECK(state.above_count == above, "%s: %lld above, want %lld", what,
            (long long)state.above_count, (long long)above);
  DBF_CHECK(state.tie_count == ties, "%s: %lld ties, want %lld", what, (long long)state.tie_count,
            (long long)ties);
  // float losses are added in float over 16 at a time (lane_sum), then in double
  const double tolerance = sizeof(Loss) == 4 ? 1e-6 : 1e-12;
  DBF_CHECK(std::fabs(state.above_loss - above_sum) <= tolerance * std::max(1.0, above_sum),
            "%s: sum above %.17g, want %.17g", what, state.above_loss, above_sum);
}

template <class Loss, class Key> void test_radix_select(const char* what) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> unit(0, 1);
  for (int round = 0; round < 30; ++round) {
    const int n = 1 + int(unit(rng) * 5000);
    std::vector<Loss> losses(n);
    const int style = round % 5;
    for (auto& l : losses) {
      const double u = unit(rng);
      if (u < 0.2) {
        l = Loss(-1);  // not a negative
      } else if (style == 0) {
        l = Loss(unit(rng) * 15);
      } else if (style == 1) {
        l = Loss(int(unit(rng) * 4));  // heavy ties, zeros included
      } else if (style == 2) {
        l = Loss(std::exp(unit(rng) * 60 - 50));  // many binades, tiny values
      } else if (style == 3) {
        l = Loss(1.25);  // all equal
      } else {
        l = Loss(unit(rng) < 0.5 ? 0.0 : 1e30 * unit(rng));
      }
    }
    for (int64_t k : {int64_t(0), int64_t(1), int64_t(2), int64_t(n / 3), int64_t(n)}) {
      check_selection<Loss, Key>(losses, k, what);
    }
  }
}

void test_compose() {
  double stats[dbf::kNumStats] = {};
  stats[dbf::kPositives] = 10;
  stats[dbf::kNegatives] = 100;
  stats[dbf::kPositiveLoss] = 5;
  stats[dbf::kSelected] = 30;
  stats[dbf::kThreshold] = 0.5;
  stats[dbf::kAboveCount] = 20;
  stats[dbf::kAboveLoss] = 40;
  stats[dbf::kIntersection] = 3;
  stats[dbf::kBinaryMass] = 4;
  stats[dbf::kTargetMass] = 6;
  stats[dbf::kL1Mass] = 2;
  stats[dbf::kThreshMaskMass] = 8;
  const dbf::LossConfig config{50, 5, 1, 10, 3, 0};
  dbf::compose_loss(stats, config);
  const double bce = (5 + 40 + 10 * 0.5) / 40.0, dice = 1 - 6.0 / 10, l1 = 0.25;
  DBF_CHECK(std::fabs(stats[dbf::kBce] - bce) < 1e-15, "bce %g want %g", stats[dbf::kBce], bce);
  DBF_CHECK(std::fabs(stats[dbf::kDice] - dice) < 1e-15, "dice %g", stats[dbf::kDice]);
  DBF_CHECK(std::fabs(stats[dbf::kL1] - l1) < 1e-15, "l1 %g", stats[dbf::kL1]);
  DBF_CHECK(std::fabs(stats[dbf::kTotal] - (5 * bce + dice + 10 * l1)) < 1e-14, "total");
  DBF_CHECK(dbf::ohem_count(10, 100, 3) == 30 && dbf::ohem_count(10, 7, 3) == 7 &&
                dbf::ohem_count(0, 7, 3) == 0 && dbf::ohem_count(3, 100, 0.5) == 1,
            "ohem_count");
}

}  // namespace

int main() {
  test_log1p_unit();
  test_logistic_and_bce();
  test_radix_select<float, uint32_t>("float keys");
  test_radix_select<double, uint64_t>("double keys");
  test_compose();
  return dbf_test::finish("test_loss");
}
