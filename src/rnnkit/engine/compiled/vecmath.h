// Activations and their derivatives written through the activation's output, for cell kernels.
//
// The C++ twin of rnnkit/activations.py (same codes, same convention: derivatives from
// y = f(x): tanh' = 1 - y², sigmoid' = y (1 - y), relu' = [y > 0]). Written so that gcc
// vectorizes a loop calling them (no libm calls, no branches: selects), with the engine's
// -O3 -fno-trapping-math -fno-math-errno. Accuracy: exp within 1 ulp in float32 and float64;
// tanh within a few ulp absolute (float64 parity with torch holds to 1e-12).
#pragma once

#include <cstdint>

// Before a loop over a row's units: its iterations are independent (gcc cannot prove it for
// pointers that come from a struct, and would leave the loop scalar).
#define RNNKIT_SIMD _Pragma("omp simd")
// The same for a loop that adds into one scalar, `RNNKIT_SUM(total) for (...) total += ...`.
#define RNNKIT_PRAGMA(text) _Pragma(#text)
#define RNNKIT_SUM(var) RNNKIT_PRAGMA(omp simd reduction(+ : var))

namespace rnnkit {

enum Activation : int { IDENTITY = 0, TANH = 1, RELU = 2, SIGMOID = 3 };

namespace detail {
template <class T> struct ExpTraits;
template <> struct ExpTraits<float> {
  using Int = int32_t;
  static constexpr int mantissa = 23, bias = 127;
  static constexpr float high = 88.3762626647949f, low = -87.3365478515625f;
};
template <> struct ExpTraits<double> {
  using Int = int64_t;
  static constexpr int mantissa = 52, bias = 1023;
  static constexpr double high = 709.0, low = -708.0;
};
}  // namespace detail

// e^x: x = n ln2 + r with |r| <= ln2 / 2, e^r by polynomial, 2^n through the exponent bits.
// Inputs are clamped to the range where 2^n is a normal number (e^-708 is 0 for any purpose).
template <class T> inline T exp(T x) {
  using E = detail::ExpTraits<T>;
  using Int = typename E::Int;
  x = x > E::high ? E::high : x;
  x = x < E::low ? E::low : x;
  const T v = x * T(1.4426950408889634);  // x / ln 2
  const Int n = (Int)(v + (v >= T(0) ? T(0.5) : T(-0.5)));
  const T fn = (T)n;
  const T r = x - fn * T(0.693145751953125) - fn * T(1.42860682030941723212e-6);
  T p;
  if constexpr (sizeof(T) == 4) {  // Cephes expf
    p = T(1.9875691500E-4);
    p = p * r + T(1.3981999507E-3);
    p = p * r + T(8.3334519073E-3);
    p = p * r + T(4.1665795894E-2);
    p = p * r + T(1.6666665459E-1);
    p = p * r + T(5.0000001201E-1);
    p = p * r * r + r + T(1);
  } else {  // Taylor to r^13: the remainder is below 1e-17 on |r| <= ln2 / 2
    p = T(1.0 / 6227020800.0);
    p = p * r + T(1.0 / 479001600.0);
    p = p * r + T(1.0 / 39916800.0);
    p = p * r + T(1.0 / 3628800.0);
    p = p * r + T(1.0 / 362880.0);
    p = p * r + T(1.0 / 40320.0);
    p = p * r + T(1.0 / 5040.0);
    p = p * r + T(1.0 / 720.0);
    p = p * r + T(1.0 / 120.0);
    p = p * r + T(1.0 / 24.0);
    p = p * r + T(1.0 / 6.0);
    p = p * r + T(0.5);
    p = p * r + T(1);
    p = p * r + T(1);
  }
  const Int bits = (n + E::bias) << E::mantissa;
  return p * __builtin_bit_cast(T, bits);
}

template <class T> inline T sigmoid(T x) { return T(1) / (T(1) + exp(-x)); }

// tanh: (1 - e) / (1 + e) with e = e^{-2|x|}, and its Taylor series near 0, where 1 - e would
// cancel (the series to x^15: its remainder there is below 1e-16 relative).
template <class T> inline T tanh(T x) {
  T a;
  if constexpr (sizeof(T) == 4) a = __builtin_fabsf(x); else a = __builtin_fabs(x);
  const T e = exp(T(-2) * a);
  const T far = (T(1) - e) / (T(1) + e);
  const T an = a < T(0.125) ? a : T(0.125);  // keeps the unused arm finite (for a = inf)
  const T a2 = an * an;
  T p = T(-929569.0 / 638512875.0);
  p = p * a2 + T(21844.0 / 6081075.0);
  p = p * a2 + T(-1382.0 / 155925.0);
  p = p * a2 + T(62.0 / 2835.0);
  p = p * a2 + T(-17.0 / 315.0);
  p = p * a2 + T(2.0 / 15.0);
  p = p * a2 + T(-1.0 / 3.0);
  const T near = an + an * a2 * p;
  // an arithmetic blend, not a select: gcc leaves a select of two long arms unvectorized
  const T w = (T)(a < T(0.125));
  const T t = far + w * (near - far);
  if constexpr (sizeof(T) == 4) return __builtin_copysignf(t, x); else return __builtin_copysign(t, x);
}

template <class T> inline T relu(T x) { return x > T(0) ? x : T(0); }

// f(x) for an activation code; `act` is the same for a whole loop, so the switch is hoisted.
template <class T> inline T activate(int act, T x) {
  switch (act) {
    case TANH: return tanh(x);
    case RELU: return relu(x);
    case SIGMOID: return sigmoid(x);
    default: return x;
  }
}

// f'(x) from y = f(x).
template <class T> inline T derivative(int act, T y) {
  switch (act) {
    case TANH: return T(1) - y * y;
    case RELU: return y > T(0) ? T(1) : T(0);
    case SIGMOID: return y * (T(1) - y);
    default: return T(1);
  }
}

// In-place loops over n values, the switch outside the loop so each case vectorizes.
template <class T> inline void activate_n(int act, T* __restrict x, int64_t n) {
  switch (act) {
    case TANH: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) x[j] = tanh(x[j]); break;
    case RELU: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) x[j] = relu(x[j]); break;
    case SIGMOID: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) x[j] = sigmoid(x[j]); break;
    default: break;
  }
}

// y[j] = f(x[j]) into another buffer.
template <class T>
inline void activate_into_n(int act, const T* __restrict x, T* __restrict y, int64_t n) {
  switch (act) {
    case TANH: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) y[j] = tanh(x[j]); break;
    case RELU: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) y[j] = relu(x[j]); break;
    case SIGMOID: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) y[j] = sigmoid(x[j]); break;
    default: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) y[j] = x[j]; break;
  }
}

// out[j] = grad[j] f'(x_j) from y = f(x), into another buffer.
template <class T>
inline void times_derivative_into_n(int act, const T* __restrict grad, const T* __restrict y,
                                    T* __restrict out, int64_t n) {
  switch (act) {
    case TANH: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) out[j] = grad[j] * (T(1) - y[j] * y[j]); break;
    case RELU: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) out[j] = y[j] > T(0) ? grad[j] : T(0); break;
    case SIGMOID: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) out[j] = grad[j] * y[j] * (T(1) - y[j]); break;
    default: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) out[j] = grad[j]; break;
  }
}

// grad[j] *= f'(x_j) from y = f(x), in place.
template <class T>
inline void times_derivative_n(int act, T* __restrict grad, const T* __restrict y, int64_t n) {
  switch (act) {
    case TANH: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) grad[j] *= T(1) - y[j] * y[j]; break;
    case RELU: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) grad[j] = y[j] > T(0) ? grad[j] : T(0); break;
    case SIGMOID: RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) grad[j] *= y[j] * (T(1) - y[j]); break;
    default: break;
  }
}

// Layer normalization of one row of n values (torch.nn.LayerNorm: biased variance, eps 1e-5
// inside the root): writes x̂ = (x - mean) * rstd and returns rstd.
template <class T>
inline T normalize_row(const T* __restrict x, T* __restrict x_hat, int64_t n, T eps = T(1e-5)) {
  T sum = 0;
  RNNKIT_SUM(sum) for (int64_t j = 0; j < n; ++j) sum += x[j];
  const T mean = sum / T(n);
  T sq = 0;
  RNNKIT_SUM(sq) for (int64_t j = 0; j < n; ++j) {
    const T d = x[j] - mean;
    sq += d * d;
  }
  const T var = sq / T(n) + eps;
  T root;
  if constexpr (sizeof(T) == 4) root = __builtin_sqrtf(var); else root = __builtin_sqrt(var);
  const T rstd = T(1) / root;
  RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) x_hat[j] = (x[j] - mean) * rstd;
  return rstd;
}

// The layer-norm backward for one row: out = dL/dx of y = γ x̂ + β from grad = dL/dy,
//     out = rstd (g - mean(g) - x̂ mean(g x̂)),   g = grad γ (γ = nullptr: 1)
// `out` may be `grad` itself (each value is read before it is written).
template <class T>
inline void layer_norm_backward_row(const T* grad, const T* __restrict gamma,
                                    const T* __restrict x_hat, T rstd, T* out, int64_t n) {
  T sum_g = 0, sum_gx = 0;
  RNNKIT_PRAGMA(omp simd reduction(+ : sum_g, sum_gx))
  for (int64_t j = 0; j < n; ++j) {
    const T g = gamma ? grad[j] * gamma[j] : grad[j];
    sum_g += g;
    sum_gx += g * x_hat[j];
  }
  const T mean_g = sum_g / T(n), mean_gx = sum_gx / T(n);
  RNNKIT_SIMD for (int64_t j = 0; j < n; ++j) {
    const T g = gamma ? grad[j] * gamma[j] : grad[j];
    out[j] = rstd * (g - mean_g - x_hat[j] * mean_gx);
  }
}

}  // namespace rnnkit
