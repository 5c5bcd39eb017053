"""Layer-normalized LSTM cell (Ba, Kiros, Hinton 2016, "Layer Normalization", section 3.1 /
eq. 20-22), in torch.nn.LSTM's gate order (i, f, g, o), as TF-addons' LayerNormLSTMCell computes
it (haste's LayerNormLSTM is the case β_x = β_h = 0):

    a   = LN(W_ih x_t; γ_x, β_x) + LN(W_hh h_{t-1}; γ_h, β_h) + b          (n, 4H)
    [i, f, g, o] = [σ, σ, tanh, σ](a)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(LN(c_t; γ_c, β_c))

LN(v; γ, β) = γ * (v - mean(v)) / sqrt(var(v) + 1e-5) + β over the feature axis of each row
(torch.nn.LayerNorm, biased variance): the two gate normalizations run over all 4H
pre-activations of a row together, the cell one over its H units. The carried state c_t is the
un-normalized cell; only the output reads LN(c_t). The shifts β_x, β_h and b are redundant (they
add up), as in the paper; they are kept so the parameters match the paper's and TF-addons'.

Parameter layout: weight_ih (4H, I), weight_hh (4H, H) in the engine's w_ih, w_hh slots (no
engine biases); the cell's own parameters, in this order: bias (4H) = b (only with bias=True),
ln_ih_weight (4H) = γ_x, ln_ih_bias (4H) = β_x, ln_hh_weight (4H) = γ_h, ln_hh_bias (4H) = β_h,
ln_cell_weight (H) = γ_c, ln_cell_bias (H) = β_c. Initial values: γ = 1, β = 0, b = 0.

Where the work runs: the input side LN(W_ih x) + β_h + b is formed for all steps at once in
prepare_inputs; each step normalizes W_hh h_{t-1} and c_t. Backward, with x̂, ĥ, ĉ the
normalized vectors and LN' the layer-norm backward (rnnkit.cells._layer_norm):

    dy_c = dL/dm_t * o * (1 - tanh²(y_c))          y_c = LN(c_t; γ_c, β_c)
    dc   = dL/dc_t + LN'_c(dy_c)
    da   = [dc * g σ'(i), dc * c_{t-1} σ'(f), dc * i tanh'(g), dL/dm_t * tanh(y_c) σ'(o)]
    dL/dc_{t-1} = dc * f
    dL/d(W_hh h_{t-1}) = LN'_h(da),   dL/d(W_ih x_t) = LN'_x(da)   (the latter after the sweep)
    dγ_x = Σ da x̂,  dγ_h = Σ da ĥ,  dβ_x = dβ_h = db = Σ da,  dγ_c = Σ dy_c ĉ,  dβ_c = Σ dy_c
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._layer_norm import (
    OwnParameters,
    layer_norm_backward,
    layer_norm_backward_from_normalized,
    normalize,
)
from ._layer_norm import (
    equations_layer_norm as _ln,
)
from .base import Cell, CellKernel, StepBackward, StepForward
from .lstm import LSTM_PROBES, LSTMCell
from .registry import register_cell

__all__ = ["LayerNormLSTMCell"]

# The compiled engine's row step, the whole of the docstring's math per row (both gate
# normalizations included). params: [b, γ_x, β_x, γ_h, β_h, γ_c, β_c] (b may be absent);
# gates: W_ih x, left as the activated [i|f|g|o]; hidden: W_hh h_{t-1}; carried: c;
# saved: [x̂ (4H) | ĥ (4H) | c_{t-1} | ĉ | tanh(y_c) | rstd_x, rstd_h, rstd_c].
KERNEL = CellKernel(
    "LayerNormLSTM",
    r"""
struct LayerNormLSTM {
  template <class T> static void forward(const rnnkit::Forward<T>& s) {
    const int64_t H = s.H, G = 4 * H;
    const T *b = s.params[0], *gx = s.params[1], *bx = s.params[2], *gh = s.params[3],
            *bh = s.params[4], *gc = s.params[5], *bc = s.params[6];
    T* __restrict a = s.gates;
    T* __restrict sv = s.saved;
    T* __restrict c = s.carried;
    T* __restrict m = s.m;
    T* x_hat = sv;
    T* h_hat = sv + G;
    const T rstd_x = rnnkit::normalize_row<T>(a, x_hat, G);
    const T rstd_h = rnnkit::normalize_row<T>(s.hidden, h_hat, G);
    RNNKIT_SIMD
    for (int64_t j = 0; j < G; ++j)
      a[j] = gx[j] * x_hat[j] + bx[j] + gh[j] * h_hat[j] + bh[j] + (b ? b[j] : T(0));
    RNNKIT_SIMD
    for (int64_t j = 0; j < 2 * H; ++j) a[j] = rnnkit::sigmoid(a[j]);
    RNNKIT_SIMD
    for (int64_t j = 2 * H; j < 3 * H; ++j) a[j] = rnnkit::tanh(a[j]);
    RNNKIT_SIMD
    for (int64_t j = 3 * H; j < 4 * H; ++j) a[j] = rnnkit::sigmoid(a[j]);
    T* c_prev = sv + 2 * G;
    T* c_hat = c_prev + H;
    T* tanh_y = c_hat + H;
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      c_prev[j] = c[j];
      c[j] = a[H + j] * c[j] + a[j] * a[2 * H + j];
    }
    const T rstd_c = rnnkit::normalize_row<T>(c, c_hat, H);
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      tanh_y[j] = rnnkit::tanh(gc[j] * c_hat[j] + bc[j]);
      m[j] = a[3 * H + j] * tanh_y[j];
    }
    T* rstd = tanh_y + H;
    rstd[0] = rstd_x;
    rstd[1] = rstd_h;
    rstd[2] = rstd_c;
  }
  template <class T> static void backward(const rnnkit::Backward<T>& s) {
    const int64_t H = s.H, G = 4 * H;
    const T *gx = s.params[1], *gh = s.params[3], *gc = s.params[5];
    const T* __restrict a = s.gates;
    const T* __restrict sv = s.saved;
    const T* x_hat = sv;
    const T* h_hat = sv + G;
    const T* c_prev = sv + 2 * G;
    const T* c_hat = c_prev + H;
    const T* tanh_y = c_hat + H;
    const T* rstd = tanh_y + H;
    const T* __restrict dm = s.grad_m;
    T* __restrict dc = s.grad_carried;
    T* __restrict da = s.grad_gates;
    T* __restrict dgh = s.grad_hidden;
    T* const* dp = s.grad_params;
    T* dy = dgh;  // dL/dy_c, kept in the hidden gradient's first H values until it is written
    T sum_g = 0, sum_gc = 0;
    RNNKIT_PRAGMA(omp simd reduction(+ : sum_g, sum_gc))
    for (int64_t j = 0; j < H; ++j) {
      dy[j] = dm[j] * a[3 * H + j] * (T(1) - tanh_y[j] * tanh_y[j]);
      const T g = dy[j] * gc[j];
      sum_g += g;
      sum_gc += g * c_hat[j];
    }
    const T mean_g = sum_g / T(H), mean_gc = sum_gc / T(H);
    if (dp[5]) RNNKIT_SIMD for (int64_t j = 0; j < H; ++j) dp[5][j] += dy[j] * c_hat[j];
    if (dp[6]) RNNKIT_SIMD for (int64_t j = 0; j < H; ++j) dp[6][j] += dy[j];
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      const T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
      const T d = rstd[2] * (dy[j] * gc[j] - mean_g - c_hat[j] * mean_gc) + dc[j];  // dL/dc_t
      da[j] = d * g * i * (T(1) - i);
      da[H + j] = d * c_prev[j] * f * (T(1) - f);
      da[2 * H + j] = d * i * (T(1) - g * g);
      da[3 * H + j] = dm[j] * tanh_y[j] * o * (T(1) - o);
      dc[j] = d * f;
    }
    for (int k : {0, 2, 4})  // b, β_x and β_h all shift a
      if (dp[k]) RNNKIT_SIMD for (int64_t j = 0; j < G; ++j) dp[k][j] += da[j];
    if (dp[1]) RNNKIT_SIMD for (int64_t j = 0; j < G; ++j) dp[1][j] += da[j] * x_hat[j];
    if (dp[3]) RNNKIT_SIMD for (int64_t j = 0; j < G; ++j) dp[3][j] += da[j] * h_hat[j];
    rnnkit::layer_norm_backward_row<T>(da, gh, h_hat, rstd[1], dgh, G);
    rnnkit::layer_norm_backward_row<T>(da, gx, x_hat, rstd[0], da, G);
  }
};
""",
)

# The LSTM's gradient-independent backward factors are the same with tanh(y_c) for tanh(c_t).
_LSTM = LSTMCell()


class LayerNormLSTMCell(OwnParameters, Cell):
    num_gates = 4
    num_carried = 1
    separate_hidden = True  # W_hh h is normalized on its own
    initial_values = (  # (name, width in units of H, initial value)
        ("bias", 4, 0.0),
        ("ln_ih_weight", 4, 1.0),
        ("ln_ih_bias", 4, 0.0),
        ("ln_hh_weight", 4, 1.0),
        ("ln_hh_bias", 4, 0.0),
        ("ln_cell_weight", 1, 1.0),
        ("ln_cell_bias", 1, 0.0),
    )
    plain_biases = ("bias",)
    kernel = KERNEL
    engine_parameters = {"w_ih": "weight_ih", "w_hh": "weight_hh"}  # noqa: RUF012 (own biases)
    state_names = ("h_0", "c_0")

    def saved_width(self, hidden_size: int, recurrent_size: int) -> int:
        return 11 * hidden_size + 3

    def probe_kinds(self) -> dict[str, str]:
        return dict(LSTM_PROBES)

    def equations(self, x, r_prev, carried, weights, probes=None):
        w_ih, w_hh = weights[:2]
        own = dict(zip(self.param_names, weights[6:], strict=True))
        a = _ln(x @ w_ih.t(), own, "ln_ih") + _ln(r_prev @ w_hh.t(), own, "ln_hh")
        if "bias" in own:
            a = a + own["bias"]
        i, f, g, o = a.chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * carried[0] + i * g
        if probes is not None:
            probes.update(input=i, forget=f, candidate=g, output=o)
        return o * torch.tanh(_ln(c, own, "ln_cell")), (c,)

    def prepare_inputs(self, gates_all: Tensor) -> tuple[Tensor, Tensor]:
        """gates_all (N, 4H) = W_ih x for every step becomes γ_x x̂ + β_x + β_h + b in place:
        everything in `a` but the recurrent γ_h ĥ, which each step adds."""
        shift = self.param("ln_ih_bias") + self.param("ln_hh_bias")
        if self.param("bias") is not None:
            shift = shift + self.param("bias")
        x_hat, _, rstd = normalize(gates_all)
        torch.addcmul(shift, x_hat, self.param("ln_ih_weight"), out=gates_all)
        return x_hat, rstd

    def step(self, gates: Tensor, hidden_gates, r_prev, carried_prev, m_out) -> StepForward:
        (c_prev,) = carried_prev
        H = c_prev.shape[1]
        h_hat, h_mean, h_rstd = normalize(hidden_gates)  # (n, 4H), (n, 1), (n, 1)
        act = gates.addcmul_(h_hat, self.param("ln_hh_weight"))  # a, then activated in place
        act[:, : 2 * H].sigmoid_()
        act[:, 2 * H : 3 * H].tanh_()
        act[:, 3 * H :].sigmoid_()
        i, f, g, o = act[:, :H], act[:, H : 2 * H], act[:, 2 * H : 3 * H], act[:, 3 * H :]
        c = torch.addcmul(f * c_prev, i, g)  # f * c_prev + i * g
        c_hat, c_mean, c_rstd = normalize(c)
        tanh_y = torch.addcmul(self.param("ln_cell_bias"), c_hat, self.param("ln_cell_weight"))
        tanh_y.tanh_()  # tanh(LN(c))
        torch.mul(o, tanh_y, out=m_out)
        # W_hh h and c with their row statistics: the layer-norm backward reads its inputs
        saved = (act, c_prev, tanh_y, hidden_gates, h_mean, h_rstd, c, c_mean, c_rstd)
        return (c,), saved

    def prepare_backward(self, saved_steps: list) -> list:
        """The LSTM's factors K, P, Q, f (rnnkit.cells.lstm) with tanh(y_c) in place of
        tanh(c); a buffer for dy_c and the normalized cells ĉ of all steps, both in visit
        order, for γ_c and β_c; a list collecting each step's share of dγ_h. finish_backward
        reads these whole (the last entry of every step's tuple)."""
        factors = _LSTM.prepare_backward([step[:3] for step in saved_steps])
        sizes = [step[0].shape[0] for step in saved_steps]
        c, c_mean, c_rstd = (torch.cat([step[k] for step in saved_steps]) for k in (6, 7, 8))
        c_hat = (c - c_mean).mul_(c_rstd)  # (N, H)
        grad_y_c = torch.empty_like(c_hat)  # dL/dy_c of every step, written by step_backward
        whole = (c_hat, grad_y_c, [])
        return [
            (*lstm, *step[3:], gy, whole)
            for lstm, step, gy in zip(factors, saved_steps, grad_y_c.split(sizes), strict=True)
        ]

    def step_backward(
        self, grad_m, grad_carried, saved, grad_gates_out, grad_hidden_gates_out
    ) -> StepBackward:
        K, P, Q, f, gh, h_mean, h_rstd, c, c_mean, c_rstd, grad_y_c, whole = saved
        (grad_c_next,) = grad_carried
        n, H = f.shape
        torch.mul(grad_m, K, out=grad_y_c)  # dL/dy_c, kept for γ_c and β_c
        dc, _ = layer_norm_backward(grad_y_c, self.param("ln_cell_weight"), c, c_mean, c_rstd)
        dc.add_(grad_c_next)  # dL/dc_t
        grad_a = grad_gates_out  # da (n, 4H), the input side's gradient (finished later)
        torch.mul(dc.unsqueeze(1), P, out=grad_a[:, : 3 * H].view(n, 3, H))
        torch.mul(grad_m, Q, out=grad_a[:, 3 * H :])
        grad_gh, grad_gain_h = layer_norm_backward(
            grad_a, self.param("ln_hh_weight"), gh, h_mean, h_rstd
        )
        grad_hidden_gates_out.copy_(grad_gh)
        whole[2].append(grad_gain_h)  # this step's Σ da ĥ
        return None, (dc * f,)

    def finish_backward(self, prepared, grad_gates_all, grad_hidden_all, saved_inputs):
        x_hat, x_rstd = saved_inputs
        c_hat, grad_y_c, grad_gain_h_steps = prepared[0][-1]
        grad_a = grad_gates_all  # (N, 4H) da of every step, time order like x̂
        grad_shift = grad_a.sum(0)  # b, β_x and β_h all shift a
        grads = {
            "bias": grad_shift.clone(),
            "ln_ih_weight": (grad_a * x_hat).sum(0),
            "ln_ih_bias": grad_shift.clone(),
            "ln_hh_weight": torch.stack(grad_gain_h_steps).sum(0),
            "ln_hh_bias": grad_shift,
            "ln_cell_weight": (grad_y_c * c_hat).sum(0),  # both in visit order
            "ln_cell_bias": grad_y_c.sum(0),
        }
        # dL/d(W_ih x) in place, now that da has served the parameters
        layer_norm_backward_from_normalized(
            grad_a, self.param("ln_ih_weight"), x_hat, x_rstd, out=grad_a
        )
        return tuple(grads[name] for name in self.param_names)


register_cell(
    "lnlstm",
    LayerNormLSTMCell,
    layer="LayerNormLSTM",
    summary="layer-normalized LSTM (Ba, Kiros, Hinton 2016)",
)
