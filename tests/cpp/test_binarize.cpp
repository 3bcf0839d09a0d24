// Native tests of csrc/core/binarize.h against long double references.
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "../../csrc/core/binarize.h"
#include "check.h"

namespace {

long double sigmoid_ref(long double z) {
  return z >= 0 ? 1.0L / (1.0L + std::exp(-z)) : std::exp(z) / (1.0L + std::exp(z));
}

// Relative error with the subnormal range measured in absolute terms.
double rel_err(double got, long double want) {
  const long double floor = std::numeric_limits<float>::min();
  return double(std::fabs(got - want) / std::max(std::fabs(want), floor));
}

void test_exp_nonpositive() {
  double worst = 0;
  for (int i = 0; i <= 2000000; ++i) {
    const float a = -104.f * float(i) / 2000000.f;
    const long double want = std::exp((long double)a);
    worst = std::max(worst, rel_err(dbf::exp_nonpositive(a, 0.f), want));
  }
  std::printf("exp_nonpositive worst relative error %g\n", worst);
  DBF_CHECK(worst < 2.5e-7, "exp_nonpositive worst relative error %g", worst);
  DBF_CHECK(dbf::exp_nonpositive(0.f, 0.f) == 1.f, "exp(0) = %g", dbf::exp_nonpositive(0.f, 0.f));
  DBF_CHECK(dbf::exp_nonpositive(-1e30f, 0.f) == 0.f, "exp(-1e30) not 0");
  DBF_CHECK(dbf::exp_nonpositive(-INFINITY, 0.f) == 0.f, "exp(-inf) not 0");
  DBF_CHECK(std::isnan(dbf::exp_nonpositive(NAN, 0.f)), "exp(NaN) not NaN");
}

void test_forward_float() {
  std::mt19937_64 rng(1234);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  const double gains[] = {50.0, 1.0, 0.1, 1e4, 3.7};
  double worst = 0;
  for (double k : gains) {
    const auto gain = dbf::BinarizeGain<float>::from(k);
    for (int i = 0; i < 500000; ++i) {
      float p = unit(rng), t = unit(rng);
      if (i % 4 == 1) t = p + (unit(rng) - 0.5f) * 1e-3f;  // near the steep part
      if (i % 7 == 2) p = 0.f;
      if (i % 11 == 3) t = 1.f;
      const long double z = (long double)k * ((long double)p - (long double)t);
      worst = std::max(worst, rel_err(dbf::binarize_value(p, t, gain), sigmoid_ref(z)));
    }
  }
  std::printf("binarize float worst relative error %g\n", worst);
  DBF_CHECK(worst < 5e-7, "binarize float worst relative error %g", worst);
}

void test_extremes_are_finite() {
  const float big = std::numeric_limits<float>::max();
  const float values[] = {0.f, 1.f, -1.f, big, -big, 1e-45f, -1e-45f, 1e20f, -1e20f};
  for (double k : {50.0, 1e30, -50.0, 0.0, 1e-30}) {
    const auto gain = dbf::BinarizeGain<float>::from(k);
    for (float p : values) {
      for (float t : values) {
        const float b = dbf::binarize_value(p, t, gain);
        DBF_CHECK(b >= 0.f && b <= 1.f, "B(%g, %g; k=%g) = %g", p, t, k, b);
        const double bd = dbf::binarize_value(double(p), double(t), dbf::BinarizeGain<double>::from(k));
        DBF_CHECK(bd >= 0.0 && bd <= 1.0, "double B(%g, %g; k=%g) = %g", p, t, k, bd);
      }
    }
  }
  const auto gain = dbf::BinarizeGain<float>::from(50.0);
  DBF_CHECK(dbf::binarize_value(big, -big, gain) == 1.f, "overflowing z must give 1");
  DBF_CHECK(dbf::binarize_value(-big, big, gain) == 0.f, "overflowing -z must give 0");
  DBF_CHECK(std::isnan(dbf::binarize_value(NAN, 0.5f, gain)), "NaN must propagate");
  DBF_CHECK(dbf::binarize_value(0.5f, 0.5f, gain) == 0.5f, "B(t, t) must be 1/2");
}

void test_backward() {
  const float k = 50.f;
  for (float b : {0.f, 1.f, 0.5f, 0.25f, 1e-30f}) {
    const float g = dbf::binarize_grad(2.f, b, k);
    const double want = 2.0 * 50.0 * double(b) * (1.0 - double(b));
    DBF_CHECK(std::fabs(g - want) <= 1e-6 * std::fabs(want), "grad at B=%g: %g vs %g", b, g, want);
  }
  std::vector<float> grad = {1.f, -2.f, 0.5f}, out = {0.5f, 0.1f, 1.f}, gp(3), gt(3);
  dbf::binarize_backward_span(grad.data(), out.data(), gp.data(), gt.data(), 3, k);
  for (int i = 0; i < 3; ++i) DBF_CHECK(gp[i] == -gt[i], "grad_thresh must be -grad_prob");
  DBF_CHECK(gp[2] == 0.f, "grad at B=1 must be 0");
}

}  // namespace

int main() {
  test_exp_nonpositive();
  test_forward_float();
  test_extremes_are_finite();
  test_backward();
  return dbf_test::finish("test_binarize");
}
