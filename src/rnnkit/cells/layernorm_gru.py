"""Layer-normalized GRU cell: torch.nn.GRU's step (gate order r, z, n; the reset gate multiplies
the hidden side of n) on layer-normalized pre-activations. This is haste's LayerNormGRU
(lmnt-com/haste, frameworks/pytorch/layer_norm_gru.py) with a shift β in each normalization,
following Ba, Kiros, Hinton 2016 ("Layer Normalization", section 3.1: normalize W_x x and W_h h
separately):

    gi = LN(W_ih x_t; γ_x, β_x) + b_ih                                   (n, 3H) [gi_r|gi_z|gi_n]
    gh = LN(W_hh h_{t-1}; γ_h, β_h) + b_hh                               (n, 3H) [gh_r|gh_z|gh_n]
    r = σ(gi_r + gh_r),   z = σ(gi_z + gh_z)
    n = tanh(gi_n + r * gh_n)
    h_t = (1 - z) * n + z * h_{t-1}

LN(v; γ, β) = γ * (v - mean(v)) / sqrt(var(v) + 1e-5) + β over each row's 3H pre-activations
together (torch.nn.LayerNorm, biased variance). The reset gate multiplies the normalized hidden
n-part gh_n, shift included, as torch's GRU multiplies W_hn h + b_hn. β_x and b_ih (and β_h and
b_hh) are redundant, as in the paper; b_ih and b_hh keep torch.nn.GRU's bias names.

Parameter layout: weight_ih (3H, I), weight_hh (3H, H) in the engine's w_ih, w_hh slots (no
engine biases); the cell's own parameters, in this order: bias_ih (3H), bias_hh (3H) (only with
bias=True), ln_ih_weight (3H) = γ_x, ln_ih_bias (3H) = β_x, ln_hh_weight (3H) = γ_h,
ln_hh_bias (3H) = β_h. Initial values: γ = 1, β = 0, b = 0.

The input side gi is formed for all steps at once in prepare_inputs; each step normalizes
W_hh h_{t-1} and then runs rnnkit.cells.gru's step on (gi, gh). Backward: the GRU step backward
gives dgi and dgh (rnnkit.cells.gru), then with x̂, ĥ the normalized vectors and LN' the
layer-norm backward (rnnkit.cells._layer_norm):

    dL/d(W_hh h_{t-1}) = LN'_h(dgh),   dL/d(W_ih x_t) = LN'_x(dgi)   (the latter after the sweep)
    dγ_x = Σ dgi x̂,  dβ_x = db_ih = Σ dgi,  dγ_h = Σ dgh ĥ,  dβ_h = db_hh = Σ dgh
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
from .gru import GRUCell
from .registry import register_cell

__all__ = ["LayerNormGRUCell"]

# The compiled engine's row step, both normalizations included. params: [b_ih, b_hh, γ_x, β_x,
# γ_h, β_h] (the biases may be absent); gates: W_ih x, left as the activated [r|z|n]; hidden:
# W_hh h_{t-1}; saved: [x̂ (3H) | ĥ (3H) | gh_n | rstd_x, rstd_h].
KERNEL = CellKernel(
    "LayerNormGRU",
    r"""
struct LayerNormGRU {
  template <class T> static void forward(const rnnkit::Forward<T>& s) {
    const int64_t H = s.H, G = 3 * H;
    const T *b_ih = s.params[0], *b_hh = s.params[1], *gx = s.params[2], *bx = s.params[3],
            *gh = s.params[4], *bh = s.params[5];
    T* __restrict a = s.gates;
    T* __restrict sv = s.saved;
    T* __restrict m = s.m;
    const T* __restrict h_prev = s.r_prev;
    T* x_hat = sv;
    T* h_hat = sv + G;
    T* hn = sv + 2 * G;
    const T rstd_x = rnnkit::normalize_row<T>(a, x_hat, G);
    const T rstd_h = rnnkit::normalize_row<T>(s.hidden, h_hat, G);
    RNNKIT_SIMD
    for (int64_t j = 0; j < G; ++j) a[j] = gx[j] * x_hat[j] + bx[j] + (b_ih ? b_ih[j] : T(0));
    RNNKIT_SIMD
    for (int64_t j = 0; j < 2 * H; ++j)
      a[j] = rnnkit::sigmoid(a[j] + gh[j] * h_hat[j] + bh[j] + (b_hh ? b_hh[j] : T(0)));
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      const int64_t k = 2 * H + j;
      hn[j] = gh[k] * h_hat[k] + bh[k] + (b_hh ? b_hh[k] : T(0));
      const T n = rnnkit::tanh(a[k] + a[j] * hn[j]);
      a[k] = n;
      m[j] = n + a[H + j] * (h_prev[j] - n);
    }
    hn[H] = rstd_x;
    hn[H + 1] = rstd_h;
  }
  template <class T> static void backward(const rnnkit::Backward<T>& s) {
    const int64_t H = s.H, G = 3 * H;
    const T *gx = s.params[2], *gh = s.params[4];
    const T* __restrict a = s.gates;
    const T* __restrict sv = s.saved;
    const T* x_hat = sv;
    const T* h_hat = sv + G;
    const T* hn = sv + 2 * G;
    const T* __restrict h_prev = s.r_prev;
    const T* __restrict dh = s.grad_m;
    T* __restrict dgi = s.grad_gates;
    T* __restrict dgh = s.grad_hidden;
    T* __restrict dh_prev = s.grad_r_prev;
    T* const* dp = s.grad_params;
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      const T r = a[j], z = a[H + j], n = a[2 * H + j];
      const T da_n = dh[j] * (T(1) - z) * (T(1) - n * n);
      const T da_z = dh[j] * (h_prev[j] - n) * z * (T(1) - z);
      const T da_r = da_n * hn[j] * r * (T(1) - r);
      dgi[j] = da_r;
      dgi[H + j] = da_z;
      dgi[2 * H + j] = da_n;
      dgh[j] = da_r;
      dgh[H + j] = da_z;
      dgh[2 * H + j] = da_n * r;
      dh_prev[j] += dh[j] * z;
    }
    for (int k : {0, 3})  // b_ih and β_x shift gi
      if (dp[k]) RNNKIT_SIMD for (int64_t j = 0; j < G; ++j) dp[k][j] += dgi[j];
    for (int k : {1, 5})  // b_hh and β_h shift gh
      if (dp[k]) RNNKIT_SIMD for (int64_t j = 0; j < G; ++j) dp[k][j] += dgh[j];
    if (dp[2]) RNNKIT_SIMD for (int64_t j = 0; j < G; ++j) dp[2][j] += dgi[j] * x_hat[j];
    if (dp[4]) RNNKIT_SIMD for (int64_t j = 0; j < G; ++j) dp[4][j] += dgh[j] * h_hat[j];
    rnnkit::layer_norm_backward_row<T>(dgh, gh, h_hat, hn[H + 1], dgh, G);
    rnnkit::layer_norm_backward_row<T>(dgi, gx, x_hat, hn[H], dgi, G);
  }
};
""",
)

_GRU = GRUCell()


class LayerNormGRUCell(OwnParameters, Cell):
    num_gates = 3
    separate_hidden = True
    initial_values = (  # (name, width in units of H, initial value)
        ("bias_ih", 3, 0.0),
        ("bias_hh", 3, 0.0),
        ("ln_ih_weight", 3, 1.0),
        ("ln_ih_bias", 3, 0.0),
        ("ln_hh_weight", 3, 1.0),
        ("ln_hh_bias", 3, 0.0),
    )
    plain_biases = ("bias_ih", "bias_hh")
    kernel = KERNEL
    engine_parameters = {"w_ih": "weight_ih", "w_hh": "weight_hh"}  # noqa: RUF012 (own biases)

    def saved_width(self, hidden_size: int, recurrent_size: int) -> int:
        return 7 * hidden_size + 2

    def probe_kinds(self) -> dict[str, str]:
        return {"reset": "sigmoid", "update": "sigmoid", "candidate": "tanh"}

    def equations(self, x, r_prev, carried, weights, probes=None):
        w_ih, w_hh = weights[:2]
        own = dict(zip(self.param_names, weights[6:], strict=True))
        gi = _ln(x @ w_ih.t(), own, "ln_ih") + own.get("bias_ih", 0.0)
        gh = _ln(r_prev @ w_hh.t(), own, "ln_hh") + own.get("bias_hh", 0.0)
        xr, xz, xn = gi.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        reset, update = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + reset * hn)
        if probes is not None:
            probes.update(reset=reset, update=update, candidate=n)
        return (1 - update) * n + update * r_prev, ()

    def _shift(self, side: str) -> Tensor:
        """β + b of one side ("ih" or "hh")."""
        shift = self.param(f"ln_{side}_bias")
        plain = self.param(f"bias_{side}")
        return shift if plain is None else shift + plain

    def prepare_inputs(self, gates_all: Tensor) -> tuple[Tensor, Tensor]:
        """gates_all (N, 3H) = W_ih x for every step becomes gi = γ_x x̂ + β_x + b_ih in place."""
        x_hat, _, rstd = normalize(gates_all)
        torch.addcmul(self._shift("ih"), x_hat, self.param("ln_ih_weight"), out=gates_all)
        return x_hat, rstd

    def step(self, gates: Tensor, hidden_gates: Tensor, r_prev, carried_prev, m_out) -> StepForward:
        h_hat, h_mean, h_rstd = normalize(hidden_gates)  # (n, 3H), (n, 1), (n, 1)
        gh = torch.addcmul(self._shift("hh"), h_hat, self.param("ln_hh_weight"))
        _, gru_saved = _GRU.step(gates, gh, r_prev, (), m_out)
        # W_hh h and its row statistics: the layer-norm backward reads its input
        return (), (gru_saved, hidden_gates, h_mean, h_rstd)

    def prepare_backward(self, saved_steps: list) -> list:
        """The GRU's factors; a buffer for dgh in visit order (for β_h and b_hh) and a list
        collecting each step's share of dγ_h, which finish_backward reads whole (the last entry
        of every step's tuple)."""
        factors = _GRU.prepare_backward([step[0] for step in saved_steps])
        sizes = [step[1].shape[0] for step in saved_steps]
        grad_gh = saved_steps[0][1].new_empty((sum(sizes), saved_steps[0][1].shape[1]))
        whole = (grad_gh, [])
        return [
            (gru, *step[1:], g, whole)
            for gru, step, g in zip(factors, saved_steps, grad_gh.split(sizes), strict=True)
        ]

    def step_backward(
        self, grad_m, grad_carried, saved, grad_gates_out, grad_hidden_gates_out
    ) -> StepBackward:
        gru, w_hh_h, h_mean, h_rstd, grad_gh, whole = saved
        grad_h_direct, _ = _GRU.step_backward(grad_m, (), gru, grad_gates_out, grad_gh)
        grad_raw, grad_gain_h = layer_norm_backward(
            grad_gh, self.param("ln_hh_weight"), w_hh_h, h_mean, h_rstd
        )
        grad_hidden_gates_out.copy_(grad_raw)
        whole[1].append(grad_gain_h)  # this step's Σ dgh ĥ
        return grad_h_direct, ()

    def finish_backward(self, prepared, grad_gates_all, grad_hidden_all, saved_inputs):
        x_hat, x_rstd = saved_inputs
        grad_gh, grad_gain_h_steps = prepared[0][-1]
        grad_gi = grad_gates_all  # (N, 3H) dgi of every step, time order like x̂
        grad_ih_shift, grad_hh_shift = grad_gi.sum(0), grad_gh.sum(0)
        grads = {
            "bias_ih": grad_ih_shift.clone(),
            "bias_hh": grad_hh_shift.clone(),
            "ln_ih_weight": (grad_gi * x_hat).sum(0),
            "ln_ih_bias": grad_ih_shift,
            "ln_hh_weight": torch.stack(grad_gain_h_steps).sum(0),
            "ln_hh_bias": grad_hh_shift,
        }
        # dL/d(W_ih x) in place, now that dgi has served the parameters
        layer_norm_backward_from_normalized(
            grad_gi, self.param("ln_ih_weight"), x_hat, x_rstd, out=grad_gi
        )
        return tuple(grads[name] for name in self.param_names)


register_cell(
    "lngru",
    LayerNormGRUCell,
    layer="LayerNormGRU",
    summary="layer-normalized GRU (haste's LayerNormGRU with shifts)",
)
