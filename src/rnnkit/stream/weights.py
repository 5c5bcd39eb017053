"""A layer stack's weights as the streaming kernels read them, prepared once and refreshed when
a parameter changes.

`prepared_stack(layer)` returns the layer's `PreparedStack`, cached on the layer. Every call
compares a fingerprint of the parameters (object, `_version`, storage address, dtype) with the
one the copy was made from: an optimizer step, `load_state_dict`, `layer.double()` or a
reassigned parameter all change it, so a training update is never silently ignored. The check
costs about a microsecond; the copy happens only when something changed.

Flat layout per layer k (rows of `offsets[k]`, see rnnkit.stream.kernels):
    w_ih (G, I_k), w_hh (G, R), b (G) = b_ih + b_hh (GRU: n row b_in only), b_hn (H, GRU),
    w_out (R, H), b_out (R) (zeros for LSTM's bias-free projection)
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from ..cells import ElmanCell, GRUCell, JordanCell, LSTMCell
from . import kernels as K

__all__ = ["PreparedStack", "cell_codes", "prepared_stack"]

_ACTIVATION_CODES = {"identity": K.IDENTITY, "tanh": K.TANH, "relu": K.RELU, "sigmoid": K.SIGMOID}
_DTYPES = (torch.float32, torch.float64)


def cell_codes(layer) -> tuple[int, int, int]:
    """(kind, hidden activation, output activation or NO_PROJECTION) of a layer's cell, or a
    one-line error for a cell the streaming kernels do not know."""
    cell = layer._cell()
    kind_of = type(cell)
    if kind_of is LSTMCell:
        return K.LSTM, K.TANH, K.IDENTITY if cell.projected else K.NO_PROJECTION
    if kind_of is GRUCell:
        return K.GRU, K.TANH, K.NO_PROJECTION
    if kind_of is JordanCell:
        return (
            K.ELMAN,
            _ACTIVATION_CODES[cell.activation.name],
            _ACTIVATION_CODES[cell.output_activation.name],
        )
    if kind_of is ElmanCell:
        return K.ELMAN, _ACTIVATION_CODES[cell.activation.name], K.NO_PROJECTION
    raise ValueError(
        f"{type(layer).__name__}: no streaming kernel for {type(cell).__name__}; use the layer "
        "call layer(x_t.unsqueeze(0), state) instead"
    )


def _fingerprint(params: tuple) -> tuple:
    """(parameter, version counter, storage address) per parameter: in-place updates bump the
    version; `.data =`, `.double()` and `load_state_dict(assign=True)` move the storage."""
    return tuple((p, p._version, p.data_ptr()) if p is not None else (None, 0, 0) for p in params)


@dataclass
class PreparedStack:
    """What the kernels need for one stack; `params` and `fingerprint` say what it was made of."""

    kind: int
    act: int
    out_act: int
    num_layers: int
    input_size: int
    hidden_size: int  # H
    recurrent_size: int  # R: H, proj_size or Jordan's output_size
    dtype: torch.dtype
    flat: np.ndarray  # (total,) every weight
    offsets: np.ndarray  # (L, 6) int64
    input_sizes: np.ndarray  # (L,) int64
    fingerprint: tuple

    @property
    def params(self) -> tuple:
        return tuple(entry[0] for entry in self.fingerprint if entry[0] is not None)

    @property
    def kernel(self):
        """The compiled one-step kernel (rnnkit.stream.kernels.stack_step)."""
        return K.stack_step

    @property
    def carried_size(self) -> int:
        """Width of the carried state c: H for LSTM, 0 for the other cells."""
        return self.hidden_size if self.kind == K.LSTM else 0

    @property
    def gate_size(self) -> int:
        return K.num_gates(self.kind) * self.hidden_size

    def is_current(self, layer) -> bool:
        """Whether the layer's parameters are still the ones (and the values) copied here.
        On the hot path of every streaming call, hence the plain loop."""
        params = layer._parameters
        if len(params) != len(self.fingerprint):
            return False
        for p, (q, version, address) in zip(params.values(), self.fingerprint, strict=True):
            if p is not q or (p is not None and (p._version != version or p.data_ptr() != address)):
                return False
        return True


def _as_array(t: torch.Tensor | None, shape: tuple[int, ...], dtype) -> np.ndarray:
    if t is None:
        return np.zeros(shape, dtype=dtype)
    return t.detach().cpu().numpy().astype(dtype, copy=False).reshape(shape)


def _build(layer, all_params: tuple) -> PreparedStack:
    name = type(layer).__name__
    params = tuple(p for p in all_params if p is not None)
    dtypes = {p.dtype for p in params}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _DTYPES:
        raise ValueError(
            f"{name}: streaming needs float32 or float64 parameters of one dtype; got "
            f"{sorted(str(d) for d in dtypes)}"
        )
    if any(p.device.type != "cpu" for p in params):
        raise ValueError(f"{name}: streaming runs on the CPU; move the layer with .cpu()")
    dtype = next(iter(dtypes))
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    kind, act, out_act = cell_codes(layer)
    L, H = layer.num_layers, layer.hidden_size
    G = K.num_gates(kind) * H
    R = layer.state_sizes()[0]
    pieces, offsets, input_sizes = [], np.zeros((L, 6), dtype=np.int64), []
    position = 0
    with torch.no_grad():
        for k in range(L):
            w_ih, w_hh, b_ih, b_hh, w_out, b_out = layer._weights_for(k, 0)[:6]
            n_in = w_ih.shape[1]
            input_sizes.append(n_in)
            b = _as_array(b_ih, (G,), np_dtype) + _as_array(b_hh, (G,), np_dtype)
            b_hn = np.zeros(H if kind == K.GRU else 0, dtype=np_dtype)
            if kind == K.GRU and b_hh is not None:
                b_hn = _as_array(b_hh, (G,), np_dtype)[2 * H :].copy()
                b[2 * H :] = _as_array(b_ih, (G,), np_dtype)[2 * H :]
            has_out = out_act != K.NO_PROJECTION
            layer_pieces = (
                _as_array(w_ih, (G, n_in), np_dtype),
                _as_array(w_hh, (G, R), np_dtype),
                b,
                b_hn,
                _as_array(w_out, (R, H), np_dtype) if has_out else np.zeros(0, np_dtype),
                _as_array(b_out, (R,), np_dtype) if has_out else np.zeros(0, np_dtype),
            )
            for column, piece in enumerate(layer_pieces):
                offsets[k, column] = position
                pieces.append(piece.reshape(-1))
                position += piece.size
    flat = np.ascontiguousarray(np.concatenate(pieces), dtype=np_dtype)
    return PreparedStack(
        kind=kind,
        act=act,
        out_act=out_act,
        num_layers=L,
        input_size=layer.input_size,
        hidden_size=H,
        recurrent_size=R,
        dtype=dtype,
        flat=flat,
        offsets=offsets,
        input_sizes=np.asarray(input_sizes, dtype=np.int64),
        fingerprint=_fingerprint(all_params),
    )


# layer -> its PreparedStack; weak, so a prepared copy never outlives (or pickles with) its layer
_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def prepared_stack(layer) -> PreparedStack:
    """The layer's prepared weights, rebuilt when any parameter changed since the last call."""
    prepared = _PREPARED.get(layer)
    if prepared is None or not prepared.is_current(layer):
        prepared = _build(layer, tuple(layer._parameters.values()))
        _PREPARED[layer] = prepared
    return prepared
