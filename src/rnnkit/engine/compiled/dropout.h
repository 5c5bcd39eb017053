// Dropout with a counter-based mask, for every compiled library (rnnkit/layers/dropout.py).
//
// torch's CPU dropout draws its mask from one mt19937 stream, about 7 ns an element on one
// thread: 6 ms of a 16 ms training step of the default language model. Here element i of a call
// is kept when a 32-bit draw of hash(seed, i) is at least `threshold` = p * 2^32, so the mask
// costs a multiply-xorshift hash per two elements, runs on every core, and is recomputed from
// the seed in backward instead of being stored. The seed comes from torch's generator, one draw
// per call, so torch.manual_seed and a checkpoint's RNG state fix the masks as they fix torch's.
#pragma once

#include <cstdint>
#include <cstring>

namespace rnnkit {

// splitmix64's finalizer: a bijection of 64-bit words that mixes every input bit into every
// output bit (Steele, Lea & Flood 2014).
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline float bf16_to_float(uint16_t bits) {
  const uint32_t word = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &word, sizeof value);
  return value;
}

inline uint16_t float_to_bf16(float value) {  // round to nearest even, as torch does
  uint32_t word;
  std::memcpy(&word, &value, sizeof word);
  if ((word & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((word >> 16) | 0x40u);
  word += 0x7fffu + ((word >> 16) & 1u);
  return static_cast<uint16_t>(word >> 16);
}

template <class T>
struct Elements {  // float and double: the values themselves
  using Compute = T;
  static Compute load(T v) { return v; }
  static T store(Compute v) { return v; }
};

template <>
struct Elements<uint16_t> {  // bfloat16, as its bits
  using Compute = float;
  static float load(uint16_t v) { return bf16_to_float(v); }
  static uint16_t store(float v) { return float_to_bf16(v); }
};

// y[i] = x[i] * (keep(i) ? scale : 0); x and y may be the same buffer. A dropped element is
// x * 0, as torch's, so nan and inf stay visible to the trainer's guard.
template <class T>
void dropout_apply(int64_t n, const T* x, T* y, uint64_t seed, uint32_t threshold, double scale) {
  using E = Elements<T>;
  using C = typename E::Compute;
  const C keep_scale = static_cast<C>(scale);
  const int64_t pairs = n / 2;
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
  for (int64_t k = 0; k < pairs; ++k) {
    const uint64_t r = mix64(seed + static_cast<uint64_t>(k) * 0x9e3779b97f4a7c15ULL);
    const C s0 = static_cast<uint32_t>(r) >= threshold ? keep_scale : C(0);
    const C s1 = static_cast<uint32_t>(r >> 32) >= threshold ? keep_scale : C(0);
    y[2 * k] = E::store(E::load(x[2 * k]) * s0);
    y[2 * k + 1] = E::store(E::load(x[2 * k + 1]) * s1);
  }
  if (n % 2) {
    const uint64_t r = mix64(seed + static_cast<uint64_t>(pairs) * 0x9e3779b97f4a7c15ULL);
    const C s0 = static_cast<uint32_t>(r) >= threshold ? keep_scale : C(0);
    y[n - 1] = E::store(E::load(x[n - 1]) * s0);
  }
}

}  // namespace rnnkit

#define RNNKIT_EXPORT_DROPOUT()                                                              \
  extern "C" {                                                                               \
  void rnnkit_dropout_f32(int64_t n, const float* x, float* y, uint64_t seed, uint32_t t,    \
                          double scale) {                                                    \
    rnnkit::dropout_apply<float>(n, x, y, seed, t, scale);                                   \
  }                                                                                          \
  void rnnkit_dropout_f64(int64_t n, const double* x, double* y, uint64_t seed, uint32_t t,  \
                          double scale) {                                                    \
    rnnkit::dropout_apply<double>(n, x, y, seed, t, scale);                                  \
  }                                                                                          \
  void rnnkit_dropout_bf16(int64_t n, const uint16_t* x, uint16_t* y, uint64_t seed,         \
                           uint32_t t, double scale) {                                       \
    rnnkit::dropout_apply<uint16_t>(n, x, y, seed, t, scale);                                \
  }                                                                                          \
  }
