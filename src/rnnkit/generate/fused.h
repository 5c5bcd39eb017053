// Fused token generation: the whole decoding loop of a language model in one library call.
//
// Per token: the input row (an embedding row, or for a one-hot input the token's column of
// layer 0's W_ih), the engine's forward sweep of one step for every layer (rnnkit::forward_sweep
// on the layers' prepared SweepArgs), the head's logits = W r + b, and the draw. The draw is
// rnnkit.generate.sample_next's distribution: banned ids masked; greedy = the first argmax;
// else softmax(logits / temperature) restricted to the top-k, then to the top-p nucleus (the
// fewest most probable tokens whose probabilities reach p, the first always kept), drawn with
// a splitmix64 stream seeded from Python.
//
// build.py compiles this after engine.h and the cell's source into every cell's library.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "engine.h"

namespace rnnkit {

struct GenerateArgs {
  int64_t num_layers, recurrent, carried_width, vocab;
  SweepArgs* layers;  // (num_layers) prepared for one step of batch 1; the call sets the buffers
  void* r_state;      // (L, R) in/out
  void* carried;      // (L, C) in/out
  const void* table;  // (V, width): embedding rows, or W_ih^T of layer 0 for a one-hot input
  int64_t table_width, projected;  // projected: table rows are layer 0's input projection
  const void *head_w, *head_b;     // (V, R), (V) or nullptr
  const int64_t* start;
  int64_t start_length, length, greedy, top_k;
  double temperature, top_p;
  const uint8_t* banned;  // (V) 1 = never drawn
  int64_t eos;            // drawing it ends the text (-1: none)
  uint64_t seed;
  int64_t* out;  // (length) the drawn ids
};

// splitmix64: a small, fast, well-mixed stream; uniform doubles in [0, 1).
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }
};

template <class T>
int64_t draw(const GenerateArgs& g, const T* logits, std::vector<double>& weights,
             std::vector<int64_t>& order, SplitMix64& rng) {
  const int64_t V = g.vocab;
  const double inf = std::numeric_limits<double>::infinity();
  if (g.greedy) {
    int64_t best = -1;
    for (int64_t v = 0; v < V; ++v)
      if (!g.banned[v] && (best < 0 || logits[v] > logits[best])) best = v;
    return best;
  }
  // scaled logits, banned ones at -inf
  for (int64_t v = 0; v < V; ++v)
    weights[v] = g.banned[v] ? -inf : double(logits[v]) / g.temperature;
  order.resize(V);
  std::iota(order.begin(), order.end(), int64_t(0));
  int64_t kept = V;
  auto larger = [&](int64_t a, int64_t b) { return weights[a] > weights[b]; };
  if (g.top_k > 0 && g.top_k < V) {
    std::nth_element(order.begin(), order.begin() + g.top_k, order.end(), larger);
    kept = g.top_k;
  }
  const bool nucleus = g.top_p < 1.0;
  if (nucleus) std::sort(order.begin(), order.begin() + kept, larger);
  double top = -inf;
  for (int64_t i = 0; i < kept; ++i) top = std::max(top, weights[order[i]]);
  double total = 0;
  for (int64_t i = 0; i < kept; ++i) {
    const double w = weights[order[i]];
    weights[order[i]] = w == -inf ? 0.0 : std::exp(w - top);
    total += weights[order[i]];
  }
  if (nucleus) {  // keep tokens while the mass ranked above them is below p
    double before = 0;
    int64_t i = 0;
    for (; i < kept; ++i) {
      if (before / total >= g.top_p) break;
      before += weights[order[i]];
    }
    kept = i;
    total = before;
  }
  double u = rng.uniform() * total;
  int64_t last = -1;
  for (int64_t i = 0; i < kept; ++i) {
    const double w = weights[order[i]];
    if (w <= 0) continue;
    last = order[i];
    if (u < w) return order[i];
    u -= w;
  }
  return last;  // rounding left u at the end: the last token with weight
}

template <class T, class Cell> int64_t generate_tokens(const GenerateArgs& g) {
  const int64_t L = g.num_layers, R = g.recurrent, C = g.carried_width, V = g.vocab;
  T* r = static_cast<T*>(g.r_state);
  T* c = static_cast<T*>(g.carried);
  const T* table = static_cast<const T*>(g.table);
  std::vector<T> row(g.table_width), logits(V);
  std::vector<std::vector<T>> outputs(L, std::vector<T>(R));
  std::vector<double> weights(V);
  std::vector<int64_t> order;
  SplitMix64 rng{g.seed};
  int64_t produced = 0, token = -1;
  for (int64_t step = 0; step < g.start_length + g.length; ++step) {
    if (step < g.start_length) {
      token = g.start[step];
    } else {
      gemm<T>(false, true, 1, V, R, T(1), r + (L - 1) * R, R, static_cast<const T*>(g.head_w),
              R, T(0), logits.data(), V);
      if (g.head_b) {
        const T* b = static_cast<const T*>(g.head_b);
        for (int64_t v = 0; v < V; ++v) logits[v] += b[v];
      }
      token = draw<T>(g, logits.data(), weights, order, rng);
      if (token < 0 || token == g.eos) break;
      g.out[produced++] = token;
      if (produced == g.length) break;
    }
    std::memcpy(row.data(), table + token * g.table_width, sizeof(T) * g.table_width);
    const T* x = row.data();
    for (int64_t l = 0; l < L; ++l) {
      SweepArgs a = g.layers[l];
      a.x = x;
      a.r_state = r + l * R;
      a.carried = C ? c + l * C : nullptr;
      a.outputs = outputs[l].data();
      a.gates = nullptr;
      a.gates_given = 0;
      if (l == 0 && g.projected) {  // the row is W_ih x already; the cell overwrites it
        a.gates = row.data();
        a.gates_given = 1;
      }
      forward_sweep<T, Cell>(a);
      x = outputs[l].data();
    }
  }
  return produced;
}

}  // namespace rnnkit

#define RNNKIT_EXPORT_GENERATION(CELL)                                             \
  extern "C" {                                                                     \
  int64_t rnnkit_generate_f32(const rnnkit::GenerateArgs* g) {                     \
    return rnnkit::generate_tokens<float, CELL>(*g);                               \
  }                                                                                \
  int64_t rnnkit_generate_f64(const rnnkit::GenerateArgs* g) {                     \
    return rnnkit::generate_tokens<double, CELL>(*g);                              \
  }                                                                                \
  }
