"""The streaming step API of every rnnkit layer: `layer.step(x_t, state)` and `layer.stream()`.

Online inference feeds one time step at a time and carries the state between calls. Both entry
points run one fused numba kernel per call over the whole layer stack (rnnkit.stream.kernels),
reading the parameters' own memory, so every update of their values reaches the next call
(rnnkit.stream.weights).

Inference only, by design: the kernels record nothing for backward, so a call made while torch
would record gradients (grad mode on and the input or a parameter requiring grad) raises and
points to the ordinary layer call; run streaming under `torch.no_grad()` or
`torch.inference_mode()`. Dropout between layers is an inference no-op, so a layer in training
mode with dropout > 0 raises too (call `layer.eval()`). A bidirectional layer cannot stream: its
reverse direction needs the whole sequence.

Latency: the matrix products go through numba's BLAS (scipy's OpenBLAS), which may use a second
thread; on a busy machine that thread can wait for a core and stretch a call from microseconds
to milliseconds. For steady latency limit it to one (OPENBLAS_NUM_THREADS=1, or
`threadpoolctl.threadpool_limits(1, "blas")`).

Shapes: B batch, I input_size, L num_layers, R the recurrent width (H, proj_size or Jordan's
output_size), H hidden_size. The state has the layer call's format: h (L, B, R), or (h, c) with
c (L, B, H) for LSTM, or (L, R) / (L, H) for one unbatched sequence.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["LayerStream", "StreamingMixin"]


def _name(layer) -> str:
    return type(layer).__name__


def _check_streamable(layer) -> None:
    name = _name(layer)
    if layer.bidirectional:
        raise ValueError(
            f"{name}: a bidirectional layer cannot stream (its reverse direction needs the whole "
            "sequence); call the layer on the whole sequence instead"
        )
    if layer.training and layer.dropout and layer.num_layers > 1:
        raise ValueError(
            f"{name}: streaming is inference and applies no dropout, but the layer is in "
            f"training mode with dropout={layer.dropout}; call layer.eval() first"
        )


def _check_no_grad(layer, x_t, prepared) -> None:
    """Called only when grad mode is on: refuse when torch would expect a graph."""
    if getattr(x_t, "requires_grad", False) or any(p.requires_grad for p in prepared.params):
        raise RuntimeError(
            f"{_name(layer)}: step/stream is inference only and records no gradients; run it "
            "under torch.no_grad() or torch.inference_mode(), or train with the layer call "
            "layer(x_t.unsqueeze(0), state)"
        )


def _bad_input(layer, x_t, prepared, shape: tuple[int, ...]) -> Exception:
    """The one-line error for an x_t the fast path refused."""
    name = _name(layer)
    if not isinstance(x_t, Tensor):
        return TypeError(
            f"{name}: x_t must be a torch.Tensor of shape {shape}; got {type(x_t).__name__}"
        )
    if x_t.dtype != prepared.dtype:
        return TypeError(
            f"{name}: x_t is {x_t.dtype} but the layer's parameters are {prepared.dtype}; "
            f"convert it with x_t.to({prepared.dtype})"
        )
    if x_t.device.type != "cpu":
        return ValueError(f"{name}: streaming runs on the CPU; got x_t on {x_t.device}")
    return ValueError(
        f"{name}: x_t must have shape {shape} ((batch, input_size), or (input_size,) for one "
        f"unbatched sequence); got {tuple(x_t.shape)}"
    )


def _input_array(layer, x_t, prepared, shape: tuple[int, ...]) -> np.ndarray:
    """x_t of `shape` ((B, I) or (I,)) as a C-contiguous (B, I) array sharing its memory."""
    try:
        ok = x_t.dtype is prepared.dtype and x_t.shape == shape and x_t.device.type == "cpu"
    except AttributeError:
        ok = False
    if not ok:
        raise _bad_input(layer, x_t, prepared, shape)
    if x_t.requires_grad:
        x_t = x_t.detach()
    if len(shape) == 1:
        x_t = x_t.view(1, -1)
    array = x_t.numpy()
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def _dtype(prepared):
    return prepared.np_dtype


def _state_shapes(prepared, batch: int | None) -> tuple[tuple[int, ...], ...]:
    return prepared.shapes(batch)[1]


def _bad_state(layer, prepared, state, batch: int | None) -> Exception:
    """The one-line error for a state the fast path refused."""
    name = _name(layer)
    shapes = _state_shapes(prepared, batch)
    what = " and ".join(str(s) for s in shapes)
    tensors = [state] if isinstance(state, Tensor) else list(state)
    if len(tensors) != len(shapes) or not all(isinstance(t, Tensor) for t in tensors):
        form = "a tuple (h, c) of tensors" if len(shapes) == 2 else "one tensor"
        return TypeError(f"{name}: state must be {form} of shape {what} (or None for zeros)")
    for t in tensors:
        if t.dtype != prepared.dtype:
            return TypeError(
                f"{name}: state is {t.dtype} but the layer's parameters are {prepared.dtype}"
            )
    got = " and ".join(str(tuple(t.shape)) for t in tensors)
    return ValueError(f"{name}: state must have shape {what}; got {got}")


def _state_arrays(layer, prepared, state, batch: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Fresh (r (L, B, R), c (L, B, H or 0)) arrays holding a copy of `state` (the layer call's
    format), or zeros for None; the caller's tensors are never written."""
    L, B = prepared.num_layers, batch or 1
    dtype = _dtype(prepared)
    c_shape = (L, B, prepared.carried_size)
    if state is None:
        return np.zeros((L, B, prepared.recurrent_size), dtype), np.zeros(c_shape, dtype)
    shapes = _state_shapes(prepared, batch)
    tensors = (state,) if isinstance(state, Tensor) else state
    if not isinstance(tensors, (tuple, list)) or len(tensors) != len(shapes):
        raise _bad_state(layer, prepared, state, batch)
    arrays = []
    for t, shape in zip(tensors, shapes, strict=True):
        if not (
            isinstance(t, Tensor) and t.shape == shape and t.dtype is prepared.dtype and t.is_cpu
        ):
            raise _bad_state(layer, prepared, state, batch)
        arrays.append((t.detach() if t.requires_grad else t).numpy().reshape(L, B, -1).copy())
    return arrays[0], arrays[1] if len(arrays) == 2 else np.zeros(c_shape, dtype)


class _Buffers:
    """The running state (r, c) and scratch of one stream, all numpy, reused across calls."""

    def __init__(self, prepared, r: np.ndarray, c: np.ndarray) -> None:
        dtype, batch = _dtype(prepared), r.shape[1]
        self.r, self.c = r, c
        self.gi = np.empty((batch, prepared.gate_size), dtype=dtype)
        self.gh = np.empty((batch, prepared.gate_size), dtype=dtype)
        self.m = np.empty((batch, prepared.hidden_size), dtype=dtype)

    def run(self, prepared, x: np.ndarray) -> None:
        """One fused step of the whole stack on input x (B, I); the state advances in place."""
        prepared.kernel(
            prepared.kind,
            prepared.act,
            prepared.out_act,
            x,
            False,
            prepared.addresses,
            prepared.input_sizes,
            self.r,
            self.c,
            self.gi,
            self.gh,
            self.m,
        )


def _state_tensors(prepared, r: np.ndarray, c: np.ndarray, batch: int | None):
    """Tensors sharing r and c's memory, in the layer call's format."""
    arrays = (r, c) if prepared.carried_size else (r,)
    tensors = [torch.from_numpy(a[:, 0] if batch is None else a) for a in arrays]
    return tuple(tensors) if len(tensors) == 2 else tensors[0]


def _input_shape(prepared, batch: int | None) -> tuple[int, ...]:
    return prepared.shapes(batch)[0]


class LayerStream:
    """A layer's running state for online inference: `y_t = stream(x_t)` advances one step.

    Made by `layer.stream(batch_size=1, state=None)`; `batch_size=None` streams one unbatched
    sequence (x_t (I,) -> y_t (R,)). `stream.state` is the current state in the layer call's
    format (fresh tensors); `stream.reset(state=None)` starts again. Every call checks the
    layer's parameters, so an update between calls is used by the next one. A stream owns its
    state buffers: share one between threads only with a lock.
    """

    def __init__(self, layer, batch_size: int | None = 1, state=None) -> None:
        from .weights import prepared_stack

        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(
                f"{_name(layer)}.stream: batch_size must be an integer >= 1 or None (one "
                f"unbatched sequence); got {batch_size!r}"
            )
        _check_streamable(layer)
        self._layer = layer
        self._batch = batch_size
        self._prepare = prepared_stack
        self._prepared = prepared_stack(layer)
        self._shape = _input_shape(self._prepared, batch_size)
        r, c = _state_arrays(layer, self._prepared, state, batch_size)
        self._buffers = _Buffers(self._prepared, r, c)

    @property
    def batch_size(self) -> int | None:
        return self._batch

    @property
    def state(self):
        """The current state in the layer call's format (a copy: the stream goes on)."""
        buffers = self._buffers
        return _state_tensors(self._prepared, buffers.r.copy(), buffers.c.copy(), self._batch)

    def reset(self, state=None) -> None:
        """Start again from `state` (None: zeros)."""
        r, c = _state_arrays(self._layer, self._prepared, state, self._batch)
        self._buffers.r, self._buffers.c = r, c

    def __call__(self, x_t: Tensor) -> Tensor:
        layer = self._layer
        if layer.training:
            _check_streamable(layer)
        prepared = self._prepared
        if not prepared.is_current(layer):
            prepared = self._refit(self._prepare(layer))
        if torch.is_grad_enabled():
            _check_no_grad(layer, x_t, prepared)
        x = _input_array(layer, x_t, prepared, self._shape)
        buffers = self._buffers
        buffers.run(prepared, x)
        y = torch.from_numpy(buffers.r[-1].copy())
        return y if self._batch is not None else y[0]

    def _refit(self, prepared):
        """New weights: keep the state when its shapes and dtype still fit, else refuse."""
        old = self._prepared
        fits = (
            prepared.dtype == old.dtype
            and prepared.num_layers == old.num_layers
            and prepared.input_size == old.input_size
            and prepared.recurrent_size == old.recurrent_size
            and prepared.hidden_size == old.hidden_size
        )
        if not fits:
            raise ValueError(
                f"{_name(self._layer)}.stream: the layer's parameters changed dtype or shape "
                "since the stream began; start a new stream with layer.stream()"
            )
        self._prepared = prepared
        return prepared

    def __repr__(self) -> str:
        return f"LayerStream({_name(self._layer)}, batch_size={self._batch})"


class StreamingMixin:
    """Adds `step` and `stream` to a layer that has the engine's layer contract
    (`_cell()`, `_weights_for`, `state_sizes()`, num_layers, hidden_size, bidirectional)."""

    def step(self, x_t: Tensor, state=None):
        """One time step for online inference: (x_t (B, I) or (I,), state) -> (y_t, new_state).

        y_t is (B, R) (or (R,)); state and new_state have the layer call's format ((h, c) for
        LSTM, h otherwise; (L, B, ·), or (L, ·) for unbatched x_t; None starts from zeros), so
        `y, s = layer.step(x_t, s)` equals `out, s = layer(x_t.unsqueeze(0), s)` with
        y = out[0]. Inference only: no autograd (see rnnkit.stream.api); the given state is not
        modified. `layer.stream()` keeps the state for you and is a little faster.
        """
        from .weights import prepared_stack

        if self.training or self.bidirectional:
            _check_streamable(self)
        prepared = prepared_stack(self)
        if torch.is_grad_enabled():
            _check_no_grad(self, x_t, prepared)
        batch = x_t.shape[0] if isinstance(x_t, Tensor) and x_t.dim() == 2 else None
        x = _input_array(self, x_t, prepared, prepared.shapes(batch)[0])
        r, c = _state_arrays(self, prepared, state, batch)
        _Buffers(prepared, r, c).run(prepared, x)
        y = torch.from_numpy(r[-1].copy())
        return (y if batch is not None else y[0]), _state_tensors(prepared, r, c, batch)

    def stream(self, batch_size: int | None = 1, state=None) -> LayerStream:
        """A `LayerStream` over this layer: `y_t = stream(x_t)` carries the state for you."""
        return LayerStream(self, batch_size, state)
