"""Seed 003's numpy backpropagation through time, reproduced with rnnkit.

Seed 003 derives BPTT for the Elman cell s_t = tanh(U x_t + W s_{t-1} + ba) and writes it in
numpy (rnn_cell_forward, rnn_forward, rnn_cell_backward, rnn_backward). Its test draws, with
np.random.seed(1): x (3 features, batch 1, T = 4), s0, W, U, V, ba, by (V and by feed only the
softmax output, which the backward pass ignores), then ds, the upstream gradient dL/ds_t of every
step's hidden state, and prints the gradients dx, ds0, dU, dW and dba.

This script maps the seed's variables onto rnnkit.RNN(3, 5, backend="reference") in float64:

    weight_ih_l0 = U,  weight_hh_l0 = W,  bias_ih_l0 = ba,  bias_hh_l0 = 0,  h_0 = s0

runs the sequence forward, backpropagates ds into the output sequence with rnnkit's hand-written
BPTT, and prints the gradients in the seed's layout next to those of a numpy rnn_backward written
the seed's way, so the two can be compared digit by digit.

The seed's backward stops at ds; its forward also has the output layer o_t = softmax(V s_t + by)
and its text the cross-entropy E = -Σ_t log o_t[y_t] whose gradients for V and by it names but
does not write. The second part writes them by hand, in numpy (the seed prints no numbers for
them, so the targets y_t = TARGETS are this example's): dz_t = o_t - onehot(y_t), dV = Σ_t dz_t
s_t^T, dby = Σ_t dz_t, and ds_t = V^T dz_t, the gradient every step's hidden state gets from its
own output, which feeds the same rnn_backward. rnnkit computes all of them with an nn.Linear
head and F.cross_entropy(reduction="sum") on the RNN's output.

Layouts: the seed keeps time last, x (features, batch, T); torch keeps it first, (T, batch,
features). `seed_to_torch` and `torch_to_seed` convert between them.

Run from the repository root:

    .venv/bin/python examples/seed003_bptt.py
"""

from __future__ import annotations

import numpy as np
import torch

import rnnkit

GRADIENT_NAMES = ("dx", "ds0", "dU", "dW", "dba")
OUTPUT_GRADIENT_NAMES = ("dV", "dby", *GRADIENT_NAMES)
TARGETS = (2, 0, 1, 2)  # y_t, one of the 3 classes at each of the 4 steps


def seed_arrays(seed: int = 1) -> dict[str, np.ndarray]:
    """The seed's test inputs, drawn in the seed's order (the order fixes every value)."""
    rng_state = np.random.get_state()
    np.random.seed(seed)
    try:
        names = ("x", "s0", "W", "U", "V", "ba", "by", "ds")
        shapes = ((3, 1, 4), (5, 1), (5, 5), (5, 3), (3, 5), (5, 1), (3, 1), (5, 1, 4))
        return {name: np.random.randn(*shape) for name, shape in zip(names, shapes, strict=True)}
    finally:
        np.random.set_state(rng_state)  # leave numpy's global generator as the caller had it


def seed_to_torch(array: np.ndarray) -> torch.Tensor:
    """(features, batch, T) -> (T, batch, features), as a float64 tensor."""
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 1, 0)))


def torch_to_seed(tensor: torch.Tensor) -> np.ndarray:
    """(T, batch, features) -> (features, batch, T)."""
    return tensor.detach().numpy().transpose(2, 1, 0)


# ---------------------------------------------------------------- numpy, the seed's way


def numpy_rnn_forward(x, s0, U, W, ba) -> list[tuple[np.ndarray, ...]]:
    """Hidden states step by step; each step's cache is (s_next, s_prev, x_t)."""
    caches, s = [], s0
    for t in range(x.shape[2]):
        x_t = x[:, :, t]  # (3, 1)
        s_next = np.tanh(U @ x_t + W @ s + ba)  # (5, 1)
        caches.append((s_next, s, x_t))
        s = s_next
    return caches


def numpy_rnn_cell_backward(ds_next, cache, U, W) -> dict[str, np.ndarray]:
    """One step back through s_next = tanh(U x_t + W s_prev + ba), given dL/ds_next."""
    s_next, s_prev, x_t = cache
    dtanh = (1 - s_next**2) * ds_next  # tanh' written through its output
    return {
        "dx_t": U.T @ dtanh,
        "ds_prev": W.T @ dtanh,
        "dU": dtanh @ x_t.T,
        "dW": dtanh @ s_prev.T,
        "dba": dtanh.sum(axis=1, keepdims=True),
    }


def numpy_rnn_backward(ds, caches, U, W) -> dict[str, np.ndarray]:
    """BPTT as the seed writes it: walk back in time, feeding each step the gradient it gets
    from its own output (ds[:, :, t]) plus the one flowing back from step t + 1; weight
    gradients add up over the steps."""
    T = ds.shape[2]
    dx = np.zeros((U.shape[1], ds.shape[1], T))
    dU, dW = np.zeros_like(U), np.zeros_like(W)
    dba = np.zeros((W.shape[0], 1))
    ds_prev = np.zeros((W.shape[0], ds.shape[1]))
    for t in reversed(range(T)):
        step = numpy_rnn_cell_backward(ds[:, :, t] + ds_prev, caches[t], U, W)
        dx[:, :, t] = step["dx_t"]
        ds_prev = step["ds_prev"]
        dU += step["dU"]
        dW += step["dW"]
        dba += step["dba"]
    return {"dx": dx, "ds0": ds_prev, "dU": dU, "dW": dW, "dba": dba}


def numpy_gradients(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    a = arrays
    caches = numpy_rnn_forward(a["x"], a["s0"], a["U"], a["W"], a["ba"])
    return numpy_rnn_backward(a["ds"], caches, a["U"], a["W"])


def numpy_softmax(z: np.ndarray) -> np.ndarray:
    """Column-wise softmax, shifted by the maximum so exp cannot overflow."""
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def numpy_output_loss(arrays: dict[str, np.ndarray], targets=TARGETS) -> float:
    """E = -Σ_t log softmax(V s_t + by)[y_t], the seed's cross-entropy over the sequence."""
    a = arrays
    caches = numpy_rnn_forward(a["x"], a["s0"], a["U"], a["W"], a["ba"])
    return float(
        -sum(
            np.log(numpy_softmax(a["V"] @ s + a["by"])[y, 0])
            for (s, _, _), y in zip(caches, targets, strict=True)
        )
    )


def numpy_output_gradients(arrays: dict[str, np.ndarray], targets=TARGETS) -> dict:
    """Every gradient of E by hand: the softmax/cross-entropy step, then BPTT."""
    a = arrays
    caches = numpy_rnn_forward(a["x"], a["s0"], a["U"], a["W"], a["ba"])
    dV, dby = np.zeros_like(a["V"]), np.zeros_like(a["by"])
    ds = np.zeros((a["W"].shape[0], 1, len(caches)))
    for t, ((s, _, _), y) in enumerate(zip(caches, targets, strict=True)):
        dz = numpy_softmax(a["V"] @ s + a["by"])  # o_t
        dz[y] -= 1.0  # o_t - onehot(y_t): softmax and cross-entropy differentiated together
        dV += dz @ s.T
        dby += dz
        ds[:, :, t] = a["V"].T @ dz  # what s_t gets from its own output
    return {"dV": dV, "dby": dby, **numpy_rnn_backward(ds, caches, a["U"], a["W"])}


# ---------------------------------------------------------------- rnnkit


def build_rnn(arrays: dict[str, np.ndarray]) -> rnnkit.RNN:
    """rnnkit.RNN holding the seed's U, W and ba (float64 so the printed digits survive)."""
    rnn = rnnkit.RNN(3, 5, backend="reference", dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(arrays["U"]))  # (5, 3)
        rnn.weight_hh_l0.copy_(torch.from_numpy(arrays["W"]))  # (5, 5)
        rnn.bias_ih_l0.copy_(torch.from_numpy(arrays["ba"][:, 0]))  # (5,)
        rnn.bias_hh_l0.zero_()  # the seed has the single bias ba
    return rnn


def rnnkit_gradients(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The seed's gradients from rnnkit's reference backward, in the seed's layouts."""
    rnn = build_rnn(arrays)
    x = seed_to_torch(arrays["x"]).requires_grad_()  # (T=4, B=1, 3)
    h0 = torch.from_numpy(arrays["s0"].T.copy()).unsqueeze(0).requires_grad_()  # (1, B=1, 5)
    output, _ = rnn(x, h0)  # (4, 1, 5): s_1..s_4
    # The seed's ds is dL/ds_t for every t, exactly the gradient of the output sequence.
    output.backward(seed_to_torch(arrays["ds"]))  # (4, 1, 5)
    return {
        "dx": torch_to_seed(x.grad),  # (3, 1, 4)
        "ds0": h0.grad[0].T.numpy(),  # (5, 1)
        "dU": rnn.weight_ih_l0.grad.numpy(),  # (5, 3)
        "dW": rnn.weight_hh_l0.grad.numpy(),  # (5, 5)
        # bias_hh gets the same gradient; ba is bias_ih, so that is the one to report
        "dba": rnn.bias_ih_l0.grad.numpy()[:, None],  # (5, 1)
    }


def rnnkit_output_gradients(arrays: dict[str, np.ndarray], targets=TARGETS) -> dict:
    """E's gradients from rnnkit: the RNN's BPTT under a Linear head and cross-entropy."""
    rnn = build_rnn(arrays)
    head = torch.nn.Linear(5, 3, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(arrays["V"]))
        head.bias.copy_(torch.from_numpy(arrays["by"][:, 0]))
    x = seed_to_torch(arrays["x"]).requires_grad_()
    h0 = torch.from_numpy(arrays["s0"].T.copy()).unsqueeze(0).requires_grad_()
    output, _ = rnn(x, h0)  # (4, 1, 5)
    logits = head(output[:, 0])  # (4, 3)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(targets), reduction="sum")
    loss.backward()
    return {
        "loss": float(loss.detach()),
        "dV": head.weight.grad.numpy(),
        "dby": head.bias.grad.numpy()[:, None],
        "dx": torch_to_seed(x.grad),
        "ds0": h0.grad[0].T.numpy(),
        "dU": rnn.weight_ih_l0.grad.numpy(),
        "dW": rnn.weight_hh_l0.grad.numpy(),
        "dba": rnn.bias_ih_l0.grad.numpy()[:, None],
    }


def main() -> None:
    arrays = seed_arrays()
    kit = rnnkit_gradients(arrays)
    ref = numpy_gradients(arrays)
    print("Seed 003 BPTT, np.random.seed(1): gradients from rnnkit's reference backward")
    for name in GRADIENT_NAMES:
        print(f"{name} = {kit[name]}")
        print(f"{name}.shape = {kit[name].shape}")
    print("rnnkit vs the seed's numpy rnn_backward, max |difference|:")
    for name in GRADIENT_NAMES:
        print(f"  {name}: {np.abs(kit[name] - ref[name]).max():.1e}")

    kit = rnnkit_output_gradients(arrays)
    ref = numpy_output_gradients(arrays)
    print(f"\nWith the output layer softmax(V s_t + by) and cross-entropy on y = {TARGETS}:")
    print(f"E = {kit['loss']:.10f} (numpy: {numpy_output_loss(arrays):.10f})")
    for name in ("dV", "dby"):
        print(f"{name} = {kit[name]}")
    print("rnnkit vs numpy by hand, max |difference|:")
    for name in OUTPUT_GRADIENT_NAMES:
        print(f"  {name}: {np.abs(kit[name] - ref[name]).max():.1e}")


if __name__ == "__main__":
    main()
