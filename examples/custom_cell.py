"""A cell of your own, in your own file, on rnnkit's compiled engine (docs/cells.md).

The coupled-gate LSTM (CIFG; Greff et al. 2017, "LSTM: A Search Space Odyssey"): the input gate
is tied to the forget gate, i = 1 - f, so a step has three gates instead of four:

    [f, g, o] = [σ, tanh, σ](W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)        (B, 3H)
    c_t = f ⊙ c_{t-1} + (1 - f) ⊙ g
    h_t = o ⊙ tanh(c_t)

The file holds the four things a cell states: its textbook equations (plain torch), the
reference step and its hand-derived backward (torch ops, for backend="reference"), and the
fused row step in C++ (a CellKernel, for backend="compiled", compiled on first use and cached).
`rnnkit.Recurrent(CoupledGateLSTMCell(), input_size, hidden_size, ...)` then gives it stacking,
bidirection, packed input, lengths=, streaming and the backend choice, like any built-in cell.

Run it: python examples/custom_cell.py  (checks the three definitions agree, times the
compiled engine against the hand-written autograd loop).
"""

from __future__ import annotations

import time

import torch

import rnnkit
from rnnkit.baselines import equations_loop
from rnnkit.cells import Cell, CellKernel
from rnnkit.cells.base import affine

KERNEL = CellKernel(
    "CoupledGateLSTM",
    r"""
struct CoupledGateLSTM {
  // gates: [f | g | o] pre-activations, left activated for backward; carried: c;
  // saved: [c_{t-1} | tanh(c_t)]
  template <class T> static void forward(const rnnkit::Forward<T>& s) {
    const int64_t H = s.H;
    T* __restrict a = s.gates;
    T* __restrict c = s.carried;
    T* __restrict saved = s.saved;
    T* __restrict m = s.m;
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      const T f = rnnkit::sigmoid(a[j]), g = rnnkit::tanh(a[H + j]);
      const T o = rnnkit::sigmoid(a[2 * H + j]);
      a[j] = f;
      a[H + j] = g;
      a[2 * H + j] = o;
      saved[j] = c[j];
      c[j] = f * c[j] + (T(1) - f) * g;
      saved[H + j] = rnnkit::tanh(c[j]);
      m[j] = o * saved[H + j];
    }
  }
  template <class T> static void backward(const rnnkit::Backward<T>& s) {
    const int64_t H = s.H;
    const T* __restrict a = s.gates;
    const T* __restrict saved = s.saved;
    const T* __restrict dm = s.grad_m;
    T* __restrict dc = s.grad_carried;
    T* __restrict da = s.grad_gates;
    RNNKIT_SIMD
    for (int64_t j = 0; j < H; ++j) {
      const T f = a[j], g = a[H + j], o = a[2 * H + j];
      const T c_prev = saved[j], tc = saved[H + j];
      const T d = dc[j] + dm[j] * o * (T(1) - tc * tc);  // dL/dc_t
      da[j] = d * (c_prev - g) * f * (T(1) - f);
      da[H + j] = d * (T(1) - f) * (T(1) - g * g);
      da[2 * H + j] = dm[j] * tc * o * (T(1) - o);
      dc[j] = d * f;
    }
  }
};
""",
)


class CoupledGateLSTMCell(Cell):
    num_gates = 3
    num_carried = 1
    state_names = ("h_0", "c_0")
    kernel = KERNEL

    def saved_width(self, hidden_size: int, recurrent_size: int) -> int:
        return 2 * hidden_size

    def equations(self, x, r_prev, carried, weights):
        w_ih, w_hh, b_ih, b_hh = weights[:4]
        f, g, o = (affine(x, w_ih, b_ih) + affine(r_prev, w_hh, b_hh)).chunk(3, dim=-1)
        f, g, o = torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * carried[0] + (1 - f) * g
        return o * torch.tanh(c), (c,)

    def step(self, gates, hidden_gates, r_prev, carried_prev, m_out):
        (c_prev,) = carried_prev
        H = c_prev.shape[1]
        f = gates[:, :H].sigmoid_()
        g = gates[:, H : 2 * H].tanh_()
        o = gates[:, 2 * H :].sigmoid_()
        c = torch.lerp(g, c_prev, f)  # f c_prev + (1 - f) g
        tanh_c = torch.tanh(c)
        torch.mul(o, tanh_c, out=m_out)
        return (c,), (f, g, o, c_prev, tanh_c)

    def step_backward(self, grad_m, grad_carried, saved, grad_gates_out, grad_hidden_out):
        f, g, o, c_prev, tanh_c = saved
        H = f.shape[1]
        d = grad_carried[0] + grad_m * o * (1 - tanh_c**2)  # dL/dc_t
        grad_gates_out[:, :H] = d * (c_prev - g) * f * (1 - f)
        grad_gates_out[:, H : 2 * H] = d * (1 - f) * (1 - g**2)
        grad_gates_out[:, 2 * H :] = grad_m * tanh_c * o * (1 - o)
        return None, (d * f,)


def main() -> None:
    torch.manual_seed(0)
    layers = {
        backend: rnnkit.Recurrent(
            CoupledGateLSTMCell(), 32, 128, num_layers=2, dtype=torch.float64, backend=backend
        )
        for backend in ("compiled", "reference")
    }
    layers["reference"].load_state_dict(layers["compiled"].state_dict())
    x = torch.randn(50, 8, 32, dtype=torch.float64)
    outputs = {name: layer(x)[0] for name, layer in layers.items()}
    textbook = equations_loop(layers["compiled"], x)[0]
    for name, output in outputs.items():
        difference = (output - textbook).abs().max().item()
        print(f"{name:9s} vs the equations: max difference {difference:.1e}")
        assert difference < 1e-9
    print(layers["compiled"].explain())

    single = rnnkit.Recurrent(CoupledGateLSTMCell(), 32, 128)  # float32, backend="auto"
    x = torch.randn(200, 8, 32, requires_grad=True)

    def train_step(forward) -> float:
        start = time.perf_counter()
        forward().sum().backward()
        return time.perf_counter() - start

    for name, forward in (
        ("rnnkit", lambda: single(x)[0]),
        ("hand-written autograd loop", lambda: equations_loop(single, x)[0]),
    ):
        train_step(forward)
        best = min(train_step(forward) for _ in range(5))
        print(f"training step, B8 T200 I32 H128, {name}: {best * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
