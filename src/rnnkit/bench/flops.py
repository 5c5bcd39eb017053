"""Floating-point work of a training step, and the machine's measured GEMM peak.

Only the matrix products are counted (2 flops per multiply-add); pointwise gate math, layer
norms and bias sums are left out, so GFLOP/s measures how close a backend comes to the GEMM
floor. For one layer, one direction, T steps, batch B, input width I, a recurrence with
gate width G*H (G = 1 Elman, 3 GRU, 4 LSTM and LayerNormLSTM) fed back through width R
(R = H, or proj_size P for a projected LSTM), one training step (forward + backward) costs

    forward   input projection   x W_ih^T          2 T B I (G H)
              recurrent product  h W_hh^T          2 T B R (G H)
    backward  input gradient     dA W_ih           2 T B (G H) I
              state gradient     dA W_hh           2 T B (G H) R
              weight gradients   dA^T x, dA^T h    2 T B (G H) I + 2 T B (G H) R

    total = 6 T B (G H) (I + R)

A projected LSTM adds its projection h = W_hr (o * tanh c): forward, input gradient and weight
gradient, 6 T B H P. A Jordan network (h_t = f(W_x x_t + W_r y_{t-1} + b), y_t = g(W_y h_t +
b_y), output width O) has G = 1, R = O and the output product W_y (O x H): 6 T B H (I + O) +
6 T B O H = 6 T B H (I + 2 O). IndRNN (G = 1) and minGRU (G = 2) have no recurrent product:
6 T B (G H) I.
"""

from __future__ import annotations

import time

import torch

__all__ = ["GATES", "INPUT_ONLY", "gemm_peak", "training_flops"]

GATES = {"rnn": 1, "gru": 3, "lstm": 4, "lnlstm": 4, "lngru": 3, "jordan": 1}
# cells without a recurrent matrix: only the input products (forward, input and weight grads)
INPUT_ONLY = {"indrnn": 1, "mingru": 2}


def training_flops(
    cell: str,
    batch: int,
    steps: int,
    input_size: int,
    hidden_size: int,
    *,
    output_size: int = 0,
    proj_size: int = 0,
) -> int:
    """GEMM flops of one forward + backward over (steps, batch, input_size) (module docstring)."""
    if cell not in GATES and cell not in INPUT_ONLY:
        known = ", ".join([*GATES, *INPUT_ONLY])
        raise ValueError(f"cell must be one of {known}; got {cell!r}")
    T, B, I, H = steps, batch, input_size, hidden_size
    if cell in INPUT_ONLY:
        return 6 * T * B * INPUT_ONLY[cell] * H * I
    if cell == "jordan":
        return 6 * T * B * H * (I + 2 * output_size)
    gate_width = GATES[cell] * H
    recurrent = proj_size or H
    flops = 6 * T * B * gate_width * (I + recurrent)
    if proj_size:
        flops += 6 * T * B * H * proj_size
    return flops


def gemm_peak(size: int = 2048, repeats: int = 5) -> dict:
    """The float32 GEMM rate this process reaches: best of `repeats` torch.mm of two
    (size x size) matrices, with torch's current thread count. It is the ceiling the recurrent
    backends are judged against ("% of peak")."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)  # warm-up: threads, allocation
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    flops = 2 * size**3
    return {
        "size": size,
        "repeats": repeats,
        "best_s": best,
        "gflops": flops / best / 1e9,
        "threads": torch.get_num_threads(),
    }
