// The compiled engine: one generic sweep over time, forward and backward, for any cell.
//
// A cell's kernel source (rnnkit.cells.CellKernel) defines a struct with two row functions,
//
//     template <class T> static void forward(const rnnkit::Forward<T>& row);
//     template <class T> static void backward(const rnnkit::Backward<T>& row);
//
// and rnnkit/engine/compiled/build.py compiles it after this header, followed by
// RNNKIT_EXPORT_CELL(Struct), into a shared library of its own. The engine knows no gate and
// no cell: it runs the time loop, the matrix products and the row loop, exactly as the
// reference engine (rnnkit/engine/reference.py) does in torch ops:
//
//     GI = X W_ih^T + b                one GEMM over all N rows before the loop (b = b_ih + b_hh
//                                      when the cell folds b_hh in, else b_ih)
//     per step t, rows 0..n_t-1:
//       GH = R_{t-1} W_hh^T (+ b_hh)   one GEMM: into GI (folded cells) or apart (separate ones)
//       cell forward, one call per row (rows in parallel when the step is large)
//       R_t = g(M_t W_out^T + b_out)   one GEMM, for cells with an output projection
//
// Backward sweeps the steps in the opposite order with the cell's hand-written row backward
// and one GEMM per step for dL/dR_{t-1} (and one for the projection), then forms every weight
// gradient as one GEMM over all steps. All matrix products go to the column-major BLAS of
// torch's own library (MKL's sgemm_/dgemm_ in libtorch_cpu, handed over at load time), so they
// run on torch's threads; the row loops use OpenMP, which resolves to torch's libgomp.
//
// Layout: packed, as torch's PackedSequence: step t owns rows offsets[t] .. offsets[t] + n_t of
// every (N, ·) buffer; the running state holds all B rows and a step updates its first n_t.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "vecmath.h"

namespace rnnkit {

constexpr int ABI_VERSION = 3;

// What a row of one step hands the cell's forward. Widths: H hidden, R recurrent vector,
// G gate pre-activations, and the cell's own C carried and S saved widths.
template <class T> struct Forward {
  int64_t H, R, G;
  T* gates;                // (G) this row's input side (+ W_hh r_{t-1} and b_hh for folded
                           // cells); the cell may overwrite it, and backward sees what it left
  const T* hidden;         // (G) W_hh r_{t-1} + b_hh for separate cells, else nullptr
  const T* r_prev;         // (R) the recurrent vector of the previous step
  T* carried;              // (C) in: carried_{t-1}; out: carried_t (in place)
  T* m;                    // (H) out: the cell's output m_t (r_t without a projection)
  T* saved;                // (S) out: what backward needs beyond gates, r_prev and m
  const T* const* params;  // the cell's own parameters (nullptr for an absent one)
  const int32_t* options;  // the cell's integer options (activation codes, ...)
};

// What a row of one step hands the cell's backward.
template <class T> struct Backward {
  int64_t H, R, G;
  const T* gates;          // (G) as the forward left it
  const T* r_prev;         // (R)
  const T* m;              // (H) m_t
  const T* saved;          // (S)
  const T* grad_m;         // (H) dL/dm_t
  T* grad_carried;         // (C) in: dL/dcarried_t; out: dL/dcarried_{t-1} (in place)
  T* grad_gates;           // (G) out: dL/d(this row's gates as forward received them)
  T* grad_hidden;          // (G) out: dL/d(hidden), separate cells; nullptr for folded ones
  T* grad_r_prev;          // (R) add (+=) the gradient reaching r_{t-1} other than through W_hh
  T* const* grad_params;   // add (+=) this row's share of each parameter's gradient
  const T* const* params;
  const int32_t* options;
};

// The call's arguments, one struct for both directions (mirrored by ctypes in library.py).
// Buffers are C-contiguous in the sweep's dtype; nullptr where a buffer is absent.
struct SweepArgs {
  int64_t steps, batch, input_size, hidden, recurrent, gate_width, saved_width, carried_width;
  int64_t reverse, separate, output_activation, num_params;
  const int64_t* sizes;    // (steps) rows active at each step, in time order
  const int64_t* offsets;  // (steps) first row of each step
  const int32_t* options;
  const void *x, *w_ih, *b_ih, *w_hh, *b_hh, *w_out, *b_out;
  const void* const* params;
  const int64_t* param_sizes;
  void* r_state;     // (B, R) in: r0, out: the final recurrent vector
  void* carried;     // (B, C) in: carried0, out: the final carried state
  void* gates;       // (N, G), kept for backward; nullptr in inference (scratch then)
  void* outputs;     // (N, R)
  void* m_all;       // (N, H) with a projection when training, else nullptr
  void* r_prev_all;  // (N, R) when training, else nullptr
  void* saved;       // (N, S) when training, else nullptr (per-step scratch then)
  // backward
  const void* grad_outputs;  // (N, R)
  void* grad_r;              // (B, R) in: dL/dr_final, out: dL/dr0
  void* grad_carried;        // (B, C) in: dL/dcarried_final, out: dL/dcarried0
  void *grad_gates, *grad_hidden, *grad_pre;  // (N, G), (N, G) separate only, (N, R) projection
  void *grad_x, *grad_w_ih, *grad_w_hh, *grad_b_ih, *grad_b_hh, *grad_w_out, *grad_b_out;
  void* const* grad_params;  // one per parameter, nullptr where not needed
  int64_t parallel_rows_from;  // a step's rows run in parallel from this many gate values
  int64_t gates_given;  // 1: `gates` already holds X W_ih^T (e.g. a one-hot input's column)
  void* grad_r_all;     // (N, R) out when given: dL/dr_t of every step (rnnkit.engine.probes)
};

// An uninitialized buffer (std::vector would zero it: megabytes of memset per call).
template <class T> class Buffer {
 public:
  explicit Buffer(int64_t n = 0) : data_(n > 0 ? new T[n] : nullptr) {}
  T* data() const { return data_.get(); }
  void resize(int64_t n) { data_.reset(n > 0 ? new T[n] : nullptr); }

 private:
  std::unique_ptr<T[]> data_;
};

// ---- BLAS ------------------------------------------------------------------------------

using sgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*,
                          const float*, const float*, const int*, const float*, const int*,
                          const float*, float*, const int*);
using dgemm_fn = void (*)(const char*, const char*, const int*, const int*, const int*,
                          const double*, const double*, const int*, const double*, const int*,
                          const double*, double*, const int*);
inline sgemm_fn blas_sgemm = nullptr;
inline dgemm_fn blas_dgemm = nullptr;
// MKL's packed float32 GEMM (cblas_sgemm_pack_get_size / _pack / _compute), or nullptr where
// torch's BLAS has none: a weight multiplied at every step is packed once per sweep.
using pack_size_fn = size_t (*)(int, int, int, int);
using pack_fn = void (*)(int, int, int, int, int, int, float, const float*, int, float*);
using compute_fn = void (*)(int, int, int, int, int, int, const float*, int, const float*, int,
                            float, float*, int);
inline pack_size_fn blas_pack_size = nullptr;
// MKL's MKL_Set_Num_Threads_Local (or nullptr): a product too small to share runs on the calling
// thread alone. Below SMALL_PRODUCT multiply-adds (a batch-1 step of H128) waking torch's other
// threads costs more than it saves: a streaming step of batch 1, H128 measured 25.3 us on 2
// threads, 21.9 on 1.
using set_threads_fn = int (*)(int);
inline set_threads_fn blas_set_threads_local = nullptr;
constexpr int64_t SMALL_PRODUCT = 1 << 17;

class SmallProductThreads {
 public:
  explicit SmallProductThreads(int64_t multiply_adds) {
    if (blas_set_threads_local && multiply_adds < SMALL_PRODUCT) previous_ = blas_set_threads_local(1);
  }
  ~SmallProductThreads() {
    if (previous_ >= 0) blas_set_threads_local(previous_);
  }

 private:
  int previous_ = -1;
};
inline pack_fn blas_pack = nullptr;
inline compute_fn blas_compute = nullptr;
enum : int { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112,
             CBLAS_PACKED = 151, CBLAS_B_MATRIX = 162 };

// Row-major C (m, n) = alpha op(A) op(B) + beta C, op(X) = X or X^T; ld* are row strides.
// Column-major BLAS sees every row-major matrix transposed, so it computes C^T = op(B)^T op(A)^T.
template <class T>
inline void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                 int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  const char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
  const int M = (int)n, N = (int)m, K = (int)k, LDA = (int)ldb, LDB = (int)lda, LDC = (int)ldc;
  const SmallProductThreads threads(m * n * k);
  if constexpr (sizeof(T) == 4)
    blas_sgemm(&tb, &ta, &M, &N, &K, &alpha, b, &LDA, a, &LDB, &beta, c, &LDC);
  else
    blas_dgemm(&tb, &ta, &M, &N, &K, &alpha, b, &LDA, a, &LDB, &beta, c, &LDC);
}

// C (m, n) = A (m, k) op(W) + beta C for a weight W used at every step of a sweep: op(W) = W^T
// for W (n, k), or W for W (k, n). Packed once (MKL, float32), it runs 1.5-2x faster than a
// plain GEMM at the small m of a step (measured B8 H128 to B64 H512); at m = 1 it runs a little
// slower than MKL's GEMV, so sweeps of batch 1 are not packed (packs_pay).
inline bool packs_pay(int64_t steps, int64_t batch) { return steps > 2 && batch >= 2; }

template <class T> class StepWeight {
 public:
  StepWeight(const T* w, bool transposed, int64_t n, int64_t k, int64_t max_rows, bool pack)
      : w_(w), transposed_(transposed), n_(n), k_(k) {
    if constexpr (sizeof(T) == 4) {
      if (pack && w && blas_pack && n > 0 && k > 0 && max_rows > 0) {
        const size_t bytes = blas_pack_size(CBLAS_B_MATRIX, (int)max_rows, (int)n, (int)k);
        packed_.resize(bytes / sizeof(float) + 16);
        // 64-byte alignment inside the buffer, as MKL recommends
        auto address = reinterpret_cast<uintptr_t>(packed_.data());
        aligned_ = reinterpret_cast<float*>((address + 63) & ~uintptr_t(63));
        blas_pack(CBLAS_ROW_MAJOR, CBLAS_B_MATRIX, transposed ? CBLAS_TRANS : CBLAS_NO_TRANS,
                  (int)max_rows, (int)n, (int)k, 1.0f, w, transposed ? (int)k : (int)n, aligned_);
      }
    }
  }
  void apply(int64_t m, const T* a, int64_t lda, T beta, T* c, int64_t ldc) const {
    if (m <= 0) return;
    if constexpr (sizeof(T) == 4) {
      if (aligned_) {
        const SmallProductThreads threads(m * n_ * k_);
        blas_compute(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_PACKED, (int)m, (int)n_, (int)k_, a,
                     (int)lda, aligned_, (int)n_, beta, c, (int)ldc);
        return;
      }
    }
    gemm<T>(false, transposed_, m, n_, k_, T(1), a, lda, w_, transposed_ ? k_ : n_, beta, c, ldc);
  }

 private:
  const T* w_;
  bool transposed_;
  int64_t n_, k_;
  Buffer<float> packed_;
  float* aligned_ = nullptr;
};

// Each of the first `rows` rows of `c` (width `width`) set to `bias`, or to zeros without one.
template <class T> inline void fill_rows(T* c, const T* bias, int64_t rows, int64_t width) {
  for (int64_t i = 0; i < rows; ++i) {
    if (bias)
      std::memcpy(c + i * width, bias, sizeof(T) * width);
    else
      std::memset(c + i * width, 0, sizeof(T) * width);
  }
}

// out (width) = the sum of the `rows` rows of a, as a GEMM with a ones vector (on BLAS threads).
template <class T> inline void column_sums(const T* a, int64_t rows, int64_t width, T* out) {
  std::vector<T> ones(std::max<int64_t>(rows, 1), T(1));
  gemm<T>(false, false, 1, width, rows, T(1), ones.data(), rows, a, width, T(0), out, width);
}

// fn(i) for i in 0..rows-1, in parallel on torch's OpenMP threads when the step is large
// enough to pay for waking them.
template <class Fn> inline void for_rows(int64_t rows, bool parallel, Fn fn) {
  if (parallel && rows > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; ++i) fn(i, omp_get_thread_num());
  } else {
    for (int64_t i = 0; i < rows; ++i) fn(i, 0);
  }
}

// ---- the sweeps ------------------------------------------------------------------------

template <class T> inline const T* ptr(const void* p) { return static_cast<const T*>(p); }
template <class T> inline T* mut(void* p) { return static_cast<T*>(p); }

template <class T, class Cell> void forward_sweep(const SweepArgs& a) {
  const int64_t Tn = a.steps, B = a.batch, I = a.input_size, H = a.hidden, R = a.recurrent;
  const int64_t G = a.gate_width, S = a.saved_width, C = a.carried_width;
  const int64_t N = Tn > 0 ? a.offsets[Tn - 1] + a.sizes[Tn - 1] : 0;
  const bool separate = a.separate != 0, training = a.saved != nullptr;
  const T *x = ptr<T>(a.x), *w_ih = ptr<T>(a.w_ih), *w_hh = ptr<T>(a.w_hh);
  const T *b_ih = ptr<T>(a.b_ih), *b_hh = ptr<T>(a.b_hh);
  const T *w_out = ptr<T>(a.w_out), *b_out = ptr<T>(a.b_out);
  T *r_state = mut<T>(a.r_state), *carried = mut<T>(a.carried), *outputs = mut<T>(a.outputs);
  T* r_prev_all = mut<T>(a.r_prev_all);

  Buffer<T> gates_scratch, saved_scratch, m_scratch, hidden(separate ? B * G : 0);
  T* gates = mut<T>(a.gates);
  if (!gates) {
    gates_scratch.resize(N * G);
    gates = gates_scratch.data();
  }
  T* saved = mut<T>(a.saved);
  if (!training) {
    saved_scratch.resize(std::max<int64_t>(B * S, 1));
    saved = saved_scratch.data();
  }
  T* m_all = mut<T>(a.m_all);
  if (w_out && !m_all) {
    m_scratch.resize(B * H);
    m_all = m_scratch.data();
  }

  // The input side of every step at once: GI = X W_ih^T + b.
  std::vector<T> folded;
  const T* input_bias = b_ih;
  if (!separate && b_hh) {
    folded.assign(b_hh, b_hh + G);
    if (b_ih)
      for (int64_t j = 0; j < G; ++j) folded[j] += b_ih[j];
    input_bias = folded.data();
  }
  // The bias joins each step's rows just before the cell reads them (they are in cache then),
  // not in a pass over all N rows here.
  if (!a.gates_given) gemm<T>(false, true, N, G, I, T(1), x, I, w_ih, I, T(0), gates, G);

  const T* const* params = reinterpret_cast<const T* const*>(a.params);
  const bool pack = packs_pay(Tn, B);
  const StepWeight<T> recurrent(w_hh, true, G, R, B, pack), projection(w_out, true, R, H, B, pack);
  for (int64_t v = 0; v < Tn; ++v) {
    const int64_t t = a.reverse ? Tn - 1 - v : v;
    const int64_t n = a.sizes[t], off = a.offsets[t];
    T* gates_t = gates + off * G;
    if (r_prev_all) std::memcpy(r_prev_all + off * R, r_state, sizeof(T) * n * R);
    if (w_hh) {
      if (separate) {
        fill_rows(hidden.data(), b_hh, n, G);
        recurrent.apply(n, r_state, R, T(1), hidden.data(), G);
      } else {
        recurrent.apply(n, r_state, R, T(1), gates_t, G);
      }
    } else if (separate) {
      fill_rows(hidden.data(), b_hh, n, G);
    }
    T* m_t = w_out ? (training ? m_all + off * H : m_all) : outputs + off * R;
    T* saved_t = training ? saved + off * S : saved;
    const T* hidden_t = separate ? hidden.data() : nullptr;
    for_rows(n, n * G >= a.parallel_rows_from, [&](int64_t i, int) {
      T* __restrict gates_row = gates_t + i * G;
      if (input_bias) {
        RNNKIT_SIMD for (int64_t j = 0; j < G; ++j) gates_row[j] += input_bias[j];
      }
      Forward<T> row{H,
                     R,
                     G,
                     gates_row,
                     hidden_t ? hidden_t + i * G : nullptr,
                     r_state + i * R,
                     carried + i * C,
                     m_t + i * H,
                     saved_t + i * S,
                     params,
                     a.options};
      Cell::template forward<T>(row);
    });
    T* out_t = outputs + off * R;
    if (w_out) {
      fill_rows(out_t, b_out, n, R);
      projection.apply(n, m_t, H, T(1), out_t, R);
      activate_n<T>((int)a.output_activation, out_t, n * R);
    }
    std::memcpy(r_state, out_t, sizeof(T) * n * R);
  }
}

template <class T, class Cell> void backward_sweep(const SweepArgs& a) {
  const int64_t Tn = a.steps, B = a.batch, I = a.input_size, H = a.hidden, R = a.recurrent;
  const int64_t G = a.gate_width, S = a.saved_width, C = a.carried_width;
  const int64_t N = Tn > 0 ? a.offsets[Tn - 1] + a.sizes[Tn - 1] : 0;
  const bool separate = a.separate != 0;
  const T *x = ptr<T>(a.x), *w_ih = ptr<T>(a.w_ih), *w_hh = ptr<T>(a.w_hh);
  const T* w_out = ptr<T>(a.w_out);
  const T *gates = ptr<T>(a.gates), *outputs = ptr<T>(a.outputs), *m_all = ptr<T>(a.m_all);
  const T *r_prev_all = ptr<T>(a.r_prev_all), *saved = ptr<T>(a.saved);
  const T* grad_outputs = ptr<T>(a.grad_outputs);
  T *grad_r = mut<T>(a.grad_r), *grad_carried = mut<T>(a.grad_carried);
  T *grad_gates = mut<T>(a.grad_gates), *grad_pre = mut<T>(a.grad_pre);
  T* grad_r_all = mut<T>(a.grad_r_all);
  T* grad_hidden = separate ? mut<T>(a.grad_hidden) : grad_gates;
  const T* const* params = reinterpret_cast<const T* const*>(a.params);

  // Each thread adds the cell's parameter gradients into its own row of `accumulators`.
  const int threads = std::max(1, omp_get_max_threads());
  std::vector<int64_t> param_offsets(a.num_params + 1, 0);
  for (int64_t k = 0; k < a.num_params; ++k)
    param_offsets[k + 1] = param_offsets[k] + (params[k] ? a.param_sizes[k] : 0);
  const int64_t P = param_offsets[a.num_params];
  std::vector<T> accumulators(threads * P, T(0));
  std::vector<T*> grad_param_rows(threads * std::max<int64_t>(a.num_params, 1), nullptr);
  for (int th = 0; th < threads; ++th)
    for (int64_t k = 0; k < a.num_params; ++k)
      if (params[k])
        grad_param_rows[th * a.num_params + k] = accumulators.data() + th * P + param_offsets[k];

  Buffer<T> grad_m(B * std::max(H, R));
  const bool pack = packs_pay(Tn, B);
  const StepWeight<T> recurrent(w_hh, false, R, G, B, pack), projection(w_out, false, H, R, B, pack);
  for (int64_t v = Tn - 1; v >= 0; --v) {
    const int64_t t = a.reverse ? Tn - 1 - v : v;
    const int64_t n = a.sizes[t], off = a.offsets[t];
    const T* grad_out_t = grad_outputs + off * R;
    if (w_out) {  // through r = g(W_out m + b_out): dL/dpre, then dL/dm = dL/dpre W_out
      T* grad_pre_t = grad_pre + off * R;
      for (int64_t e = 0; e < n * R; ++e) grad_pre_t[e] = grad_out_t[e] + grad_r[e];
      if (grad_r_all) std::memcpy(grad_r_all + off * R, grad_pre_t, sizeof(T) * n * R);
      times_derivative_n<T>((int)a.output_activation, grad_pre_t, outputs + off * R, n * R);
      projection.apply(n, grad_pre_t, R, T(0), grad_m.data(), H);
    } else {
      for (int64_t e = 0; e < n * R; ++e) grad_m.data()[e] = grad_out_t[e] + grad_r[e];
      if (grad_r_all) std::memcpy(grad_r_all + off * R, grad_m.data(), sizeof(T) * n * R);
    }
    std::memset(grad_r, 0, sizeof(T) * n * R);  // the cell adds its direct path, W_hh the rest
    const T* m_t = w_out ? m_all + off * H : outputs + off * R;
    for_rows(n, n * G >= a.parallel_rows_from, [&](int64_t i, int th) {
      const int64_t row = off + i;
      Backward<T> back{H,
                       R,
                       G,
                       gates + row * G,
                       r_prev_all + row * R,
                       m_t + i * H,
                       saved + row * S,
                       grad_m.data() + i * H,
                       grad_carried + i * C,
                       grad_gates + row * G,
                       separate ? grad_hidden + row * G : nullptr,
                       grad_r + i * R,
                       grad_param_rows.data() + th * a.num_params,
                       params,
                       a.options};
      Cell::template backward<T>(back);
    });
    if (w_hh) recurrent.apply(n, grad_hidden + off * G, G, T(1), grad_r, R);
  }

  // Every input and weight gradient as one GEMM over all N rows.
  if (a.grad_x) gemm<T>(false, false, N, I, G, T(1), grad_gates, G, w_ih, I, T(0), mut<T>(a.grad_x), I);
  if (a.grad_w_ih) gemm<T>(true, false, G, I, N, T(1), grad_gates, G, x, I, T(0), mut<T>(a.grad_w_ih), I);
  if (a.grad_w_hh)
    gemm<T>(true, false, G, R, N, T(1), grad_hidden, G, r_prev_all, R, T(0), mut<T>(a.grad_w_hh), R);
  if (a.grad_b_ih) column_sums<T>(grad_gates, N, G, mut<T>(a.grad_b_ih));
  if (a.grad_b_hh) column_sums<T>(grad_hidden, N, G, mut<T>(a.grad_b_hh));
  if (a.grad_w_out)
    gemm<T>(true, false, R, H, N, T(1), grad_pre, R, m_all, H, T(0), mut<T>(a.grad_w_out), H);
  if (a.grad_b_out) column_sums<T>(grad_pre, N, R, mut<T>(a.grad_b_out));
  T* const* grad_params = reinterpret_cast<T* const*>(a.grad_params);
  for (int64_t k = 0; k < a.num_params; ++k) {
    if (!params[k] || !grad_params || !grad_params[k]) continue;
    T* out = grad_params[k];
    const int64_t size = a.param_sizes[k];
    std::memset(out, 0, sizeof(T) * size);
    for (int th = 0; th < threads; ++th) {
      const T* part = accumulators.data() + th * P + param_offsets[k];
      for (int64_t j = 0; j < size; ++j) out[j] += part[j];
    }
  }
  (void)B;
}

// ---- the linear scan h_t = a_t ⊙ h_{t-1} + b_t (for cells whose recurrence is linear in h) ----
//
// a, b, h: (steps, M) time-major, M independent recurrences (batch x units); h0: (M). The M
// recurrences are independent, so the work splits across threads by columns and vectorizes
// along them; each column is one pass over time: O(steps * M), memory-bound.
constexpr int64_t SCAN_BLOCK = 512;  // columns per task: a few cache lines per time step

template <class T>
void linear_scan_forward(int64_t steps, int64_t M, const T* a, const T* b, const T* h0, T* h) {
  const int64_t blocks = (M + SCAN_BLOCK - 1) / SCAN_BLOCK;
#pragma omp parallel for schedule(static) if (steps * M >= (1 << 16))
  for (int64_t k = 0; k < blocks; ++k) {
    const int64_t lo = k * SCAN_BLOCK, hi = std::min(M, lo + SCAN_BLOCK);
    const T* prev = h0;
    for (int64_t t = 0; t < steps; ++t) {
      const T* __restrict at = a + t * M;
      const T* __restrict bt = b + t * M;
      T* __restrict ht = h + t * M;
      const T* __restrict pt = prev;
      RNNKIT_SIMD for (int64_t j = lo; j < hi; ++j) ht[j] = at[j] * pt[j] + bt[j];
      prev = ht;
    }
  }
}

// From g = dL/dh (steps, M): s_t = g_t + a_{t+1} ⊙ s_{t+1}; da_t = s_t ⊙ h_{t-1}, db_t = s_t,
// dh0 = a_0 ⊙ s_0. `s` may be `db` itself.
template <class T>
void linear_scan_backward(int64_t steps, int64_t M, const T* a, const T* h0, const T* h,
                          const T* g, T* da, T* db, T* dh0) {
  const int64_t blocks = (M + SCAN_BLOCK - 1) / SCAN_BLOCK;
#pragma omp parallel for schedule(static) if (steps * M >= (1 << 16))
  for (int64_t k = 0; k < blocks; ++k) {
    const int64_t lo = k * SCAN_BLOCK, hi = std::min(M, lo + SCAN_BLOCK);
    for (int64_t t = steps - 1; t >= 0; --t) {
      const T* __restrict gt = g + t * M;
      T* __restrict st = db + t * M;
      const T* __restrict hp = t > 0 ? h + (t - 1) * M : h0;
      T* __restrict dat = da + t * M;
      if (t + 1 < steps) {
        const T* __restrict an = a + (t + 1) * M;
        const T* __restrict sn = db + (t + 1) * M;
        RNNKIT_SIMD for (int64_t j = lo; j < hi; ++j) st[j] = gt[j] + an[j] * sn[j];
      } else {
        RNNKIT_SIMD for (int64_t j = lo; j < hi; ++j) st[j] = gt[j];
      }
      RNNKIT_SIMD for (int64_t j = lo; j < hi; ++j) dat[j] = st[j] * hp[j];
    }
    RNNKIT_SIMD for (int64_t j = lo; j < hi; ++j) dh0[j] = a[j] * db[j];
  }
}

}  // namespace rnnkit

// The library's entry points for one cell struct, in float32 and float64.
#define RNNKIT_EXPORT_CELL(CELL)                                                              \
  extern "C" {                                                                                \
  int rnnkit_abi_version() { return rnnkit::ABI_VERSION; }                                    \
  void rnnkit_set_blas(void* sgemm, void* dgemm, void* size, void* pack, void* compute,       \
                       void* set_threads) {                                                   \
    rnnkit::blas_set_threads_local = reinterpret_cast<rnnkit::set_threads_fn>(set_threads);    \
    rnnkit::blas_sgemm = reinterpret_cast<rnnkit::sgemm_fn>(sgemm);                           \
    rnnkit::blas_dgemm = reinterpret_cast<rnnkit::dgemm_fn>(dgemm);                           \
    rnnkit::blas_pack_size = reinterpret_cast<rnnkit::pack_size_fn>(size);                    \
    rnnkit::blas_pack = reinterpret_cast<rnnkit::pack_fn>(pack);                              \
    rnnkit::blas_compute = reinterpret_cast<rnnkit::compute_fn>(compute);                     \
  }                                                                                           \
  void rnnkit_forward_f32(const rnnkit::SweepArgs* a) { rnnkit::forward_sweep<float, CELL>(*a); } \
  void rnnkit_forward_f64(const rnnkit::SweepArgs* a) { rnnkit::forward_sweep<double, CELL>(*a); } \
  void rnnkit_backward_f32(const rnnkit::SweepArgs* a) { rnnkit::backward_sweep<float, CELL>(*a); } \
  void rnnkit_backward_f64(const rnnkit::SweepArgs* a) { rnnkit::backward_sweep<double, CELL>(*a); } \
  void rnnkit_scan_forward_f32(int64_t t, int64_t m, const float* a, const float* b,           \
                               const float* h0, float* h) {                                     \
    rnnkit::linear_scan_forward<float>(t, m, a, b, h0, h);                                      \
  }                                                                                             \
  void rnnkit_scan_forward_f64(int64_t t, int64_t m, const double* a, const double* b,         \
                               const double* h0, double* h) {                                   \
    rnnkit::linear_scan_forward<double>(t, m, a, b, h0, h);                                     \
  }                                                                                             \
  void rnnkit_scan_backward_f32(int64_t t, int64_t m, const float* a, const float* h0,         \
                                const float* h, const float* g, float* da, float* db,           \
                                float* dh0) {                                                   \
    rnnkit::linear_scan_backward<float>(t, m, a, h0, h, g, da, db, dh0);                        \
  }                                                                                             \
  void rnnkit_scan_backward_f64(int64_t t, int64_t m, const double* a, const double* h0,       \
                                const double* h, const double* g, double* da, double* db,       \
                                double* dh0) {                                                  \
    rnnkit::linear_scan_backward<double>(t, m, a, h0, h, g, da, db, dh0);                       \
  }                                                                                             \
  }
