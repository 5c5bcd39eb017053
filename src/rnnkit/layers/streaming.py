"""The streaming step API of every rnnkit layer: `layer.step(x_t, state)` and `layer.stream()`.

Online inference feeds one time step at a time and carries the state between calls. Both run
the layer call on one step, which takes the compiled engine's fast path (kept plans, one
library call per layer; rnnkit.layers.recurrent) where the layer's backend allows, so a step
costs what the drop-in call `layer(x_t.unsqueeze(0), state)` costs.

Inference only, by design: a call made while torch would record gradients (grad mode on and the
input or a parameter requiring grad) raises and points to the ordinary layer call; run streaming
under `torch.no_grad()` or `torch.inference_mode()`. Dropout between layers is an inference
no-op, so a layer in training mode with dropout > 0 raises too (call `layer.eval()`). A
bidirectional layer cannot stream: its reverse direction needs the whole sequence.

Shapes: B batch, I input_size, L num_layers, R the recurrent width, H hidden_size. The state has
the layer call's format: h (L, B, R), or (h, c) with c (L, B, H) for an LSTM, or (L, R) / (L, H)
for one unbatched sequence.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import is_int

__all__ = ["LayerStream", "step"]


def _name(layer) -> str:
    return type(layer).__name__


def check_streamable(layer) -> None:
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


def _check_no_grad(layer, x_t) -> None:
    """Called only when grad mode is on: refuse when torch would expect a graph."""
    if getattr(x_t, "requires_grad", False) or any(p.requires_grad for p in layer.parameters()):
        raise RuntimeError(
            f"{_name(layer)}: step/stream is inference only and records no gradients; run it "
            "under torch.no_grad() or torch.inference_mode(), or train with the layer call "
            "layer(x_t.unsqueeze(0), state)"
        )


def _check_input(layer, x_t, shape: tuple[int, ...] | None) -> None:
    """x_t must be a (B, I) or (I,) tensor in the layer's dtype (of `shape` when given)."""
    name = _name(layer)
    weight = layer.reference_weight()
    expected = shape if shape is not None else "(batch, input_size)"
    if not isinstance(x_t, Tensor):
        raise TypeError(
            f"{name}: x_t must be a torch.Tensor of shape {expected}; got {type(x_t).__name__}"
        )
    if x_t.dtype != weight.dtype:
        raise TypeError(
            f"{name}: x_t is {x_t.dtype} but the layer's parameters are {weight.dtype}; "
            f"convert it with x_t.to({weight.dtype})"
        )
    fits = x_t.dim() in (1, 2) and x_t.shape[-1] == layer.input_size
    if shape is not None:
        fits = tuple(x_t.shape) == shape
    if not fits:
        want = shape if shape is not None else f"(batch, {layer.input_size})"
        raise ValueError(
            f"{name}: x_t must have shape {want} ((batch, input_size), or (input_size,) for one "
            f"unbatched sequence); got {tuple(x_t.shape)}"
        )


def _state_shapes(layer, batch: int | None) -> tuple[tuple[int, ...], ...]:
    lead = (layer.num_layers,) if batch is None else (layer.num_layers, batch)
    return tuple((*lead, width) for width in layer.state_sizes())


def _check_state(layer, state, batch: int | None) -> None:
    if state is None:
        return
    name = _name(layer)
    shapes = _state_shapes(layer, batch)
    what = " and ".join(str(s) for s in shapes)
    tensors = [state] if isinstance(state, Tensor) else list(state)
    if len(tensors) != len(shapes) or not all(isinstance(t, Tensor) for t in tensors):
        form = "a tuple (h, c) of tensors" if len(shapes) == 2 else "one tensor"
        raise TypeError(f"{name}: state must be {form} of shape {what} (or None for zeros)")
    dtype = layer.reference_weight().dtype
    for t in tensors:
        if t.dtype != dtype:
            raise TypeError(f"{name}: state is {t.dtype} but the layer's parameters are {dtype}")
    if any(tuple(t.shape) != s for t, s in zip(tensors, shapes, strict=True)):
        got = " and ".join(str(tuple(t.shape)) for t in tensors)
        raise ValueError(f"{name}: state must have shape {what}; got {got}")


def step(layer, x_t: Tensor, state=None, shape: tuple[int, ...] | None = None, own=False):
    """(x_t, state) -> (y_t, new_state): one step of the layer call (see Recurrent.step).
    `own`: the state is a LayerStream's, already checked."""
    if layer.training or layer.bidirectional:
        check_streamable(layer)
    if not (type(x_t) is Tensor and shape is not None and x_t.shape == shape):
        _check_input(layer, x_t, shape)
    if torch.is_grad_enabled():
        _check_no_grad(layer, x_t)
    batch = x_t.shape[0] if x_t.dim() == 2 else None
    if not own:
        _check_state(layer, state, batch)
    if isinstance(state, list):
        state = tuple(state)
    with torch.no_grad():
        if batch is not None and layer.batch_first:
            output, new_state = layer(x_t.unsqueeze(1), state)
            return output[:, 0], new_state
        output, new_state = layer(x_t.unsqueeze(0), state)
    return output[0], new_state


class LayerStream:
    """A layer's running state for online inference: `y_t = stream(x_t)` advances one step.

    Made by `layer.stream(batch_size=1, state=None)`; `batch_size=None` streams one unbatched
    sequence (x_t (I,) -> y_t (R,)). `stream.state` is the current state in the layer call's
    format; `stream.reset(state=None)` starts again. Every call reads the layer's parameters as
    they are then, so an update between calls is used by the next one.
    """

    def __init__(self, layer, batch_size: int | None = 1, state=None) -> None:
        if batch_size is not None and (not is_int(batch_size) or batch_size < 1):
            raise ValueError(
                f"{_name(layer)}.stream: batch_size must be an integer >= 1 or None (one "
                f"unbatched sequence); got {batch_size!r}"
            )
        check_streamable(layer)
        self._layer = layer
        self._batch = batch_size
        self._dtype = layer.reference_weight().dtype
        self._shapes = _state_shapes(layer, batch_size)
        lead = () if batch_size is None else (batch_size,)
        self._input_shape = (*lead, layer.input_size)
        self.reset(state)

    @property
    def batch_size(self) -> int | None:
        return self._batch

    @property
    def state(self):
        """The current state in the layer call's format (a copy: the stream goes on)."""
        if isinstance(self._state, tuple):
            return tuple(s.clone() for s in self._state)
        return self._state.clone()

    def reset(self, state=None) -> None:
        """Start again from `state` (None: zeros)."""
        _check_state(self._layer, state, self._batch)
        if state is None:
            weight = self._layer.reference_weight()
            zeros = tuple(weight.new_zeros(s) for s in self._shapes)
            state = zeros if len(zeros) > 1 else zeros[0]
        self._state = tuple(state) if isinstance(state, (tuple, list)) else state

    def __call__(self, x_t: Tensor) -> Tensor:
        layer = self._layer
        weight = layer.reference_weight()
        if weight.dtype != self._dtype or layer.input_size != self._input_shape[-1]:
            raise ValueError(
                f"{_name(layer)}.stream: the layer's parameters changed dtype or shape since the "
                "stream began; start a new stream with layer.stream()"
            )
        y, self._state = step(layer, x_t, self._state, self._input_shape, own=True)
        return y

    def __repr__(self) -> str:
        return f"LayerStream({_name(self._layer)}, batch_size={self._batch})"
