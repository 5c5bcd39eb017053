"""A layer stack's weights as the streaming kernels read them: the addresses of torch's own
parameter memory, prepared once per layer and re-prepared when a parameter moves.

No copy: the kernels read the parameters in place (rnnkit.stream.kernels), so any change of
their values (an optimizer step, `load_state_dict`, writes through `.data`) reaches the next call.
`prepared_stack(layer)` returns the layer's `PreparedStack`, kept per layer (weakly). Every call
compares each parameter's object and storage address with those the addresses were taken from:
a reassigned parameter, `.data = ...` or `layer.double()` re-prepares it (about a microsecond for
the check). A parameter that is not C-contiguous is the one exception: the kernels read a
contiguous copy of it, refreshed when its version counter moves (writes through `.data` do not
move it; call `layer.stream()` again after those).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

from ..cells import ElmanCell, GRUCell, JordanCell, LayerNormGRUCell, LayerNormLSTMCell, LSTMCell
from . import kernels as K

__all__ = ["PreparedStack", "cell_codes", "prepared_stack"]

_ACTIVATION_CODES = {"identity": K.IDENTITY, "tanh": K.TANH, "relu": K.RELU, "sigmoid": K.SIGMOID}
_DTYPES = (torch.float32, torch.float64)
# where the layer-norm cells' own parameters go (LayerNormLSTMCell's `bias` is its one b)
_LAYER_NORM_SLOTS = {
    K.B_IH: "bias",
    K.GAIN_X: "ln_ih_weight",
    K.SHIFT_X: "ln_ih_bias",
    K.GAIN_H: "ln_hh_weight",
    K.SHIFT_H: "ln_hh_bias",
    K.GAIN_C: "ln_cell_weight",
    K.SHIFT_C: "ln_cell_bias",
}


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
    if kind_of is LayerNormLSTMCell:
        return K.LN_LSTM, K.TANH, K.NO_PROJECTION
    if kind_of is LayerNormGRUCell:
        return K.LN_GRU, K.TANH, K.NO_PROJECTION
    raise ValueError(
        f"{type(layer).__name__}: no streaming kernel for {type(cell).__name__}; use the layer "
        "call layer(x_t.unsqueeze(0), state) instead"
    )


def _fingerprint(params: tuple) -> tuple:
    """(parameter, storage address, shape, version counter or None) per parameter; the version
    counts only for a parameter read through a copy (not C-contiguous). Address and shape are
    what the kernels' memory reads rely on."""
    return tuple(
        (None, 0, None, None)
        if p is None
        else (p, p.data_ptr(), p.shape, None if p.is_contiguous() else p._version)
        for p in params
    )


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
    np_dtype: np.dtype
    addresses: np.ndarray  # (L, 6) int64: w_ih, w_hh, b_ih, b_hh, w_out, b_out of each layer
    input_sizes: np.ndarray  # (L,) int64
    fingerprint: tuple  # (parameter, storage address, shape, version or None) per parameter
    keep_alive: tuple  # the zeros and contiguous copies the addresses point into

    @property
    def params(self) -> tuple:
        return tuple(entry[0] for entry in self.fingerprint if entry[0] is not None)

    @property
    def kernel(self):
        """The compiled one-step kernel (rnnkit.stream.kernels.stack_step)."""
        return K.stack_step

    def __post_init__(self) -> None:
        # plain attributes, read on every call
        self.carried_size = self.hidden_size if self.kind in (K.LSTM, K.LN_LSTM) else 0
        self.gate_size = K.num_gates(self.kind) * self.hidden_size
        self._shapes: dict = {}

    def shapes(self, batch: int | None) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
        """(x_t's shape, the state tensors' shapes) of a call with `batch` rows (None:
        unbatched), in the layer call's format."""
        known = self._shapes.get(batch)
        if known is None:
            L = self.num_layers
            lead = (L,) if batch is None else (L, batch)
            widths = (self.recurrent_size, self.hidden_size)[: 2 if self.carried_size else 1]
            x_shape = (self.input_size,) if batch is None else (batch, self.input_size)
            known = self._shapes[batch] = (x_shape, tuple((*lead, w) for w in widths))
        return known

    def is_current(self, layer) -> bool:
        """Whether the layer's parameters are still the ones (and the values) copied here.
        On the hot path of every streaming call, hence the plain loop."""
        params = layer._parameters
        if len(params) != len(self.fingerprint):
            return False
        for p, (q, address, shape, version) in zip(params.values(), self.fingerprint, strict=True):
            if p is not q:
                return False
            if p is not None and (
                p.data_ptr() != address
                or p.shape != shape
                or (version is not None and p._version != version)
            ):
                return False
        return True


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
    np_dtype = np.dtype(np.float32 if dtype == torch.float32 else np.float64)
    kind, act, out_act = cell_codes(layer)
    L, H = layer.num_layers, layer.hidden_size
    G = K.num_gates(kind) * H
    R = layer.state_sizes()[0]
    zeros = np.zeros(max(G, R), dtype=np_dtype)  # what an absent bias reads
    keep_alive: list = [zeros]

    def address(t: torch.Tensor | None) -> int:
        if t is None:
            return zeros.ctypes.data
        if not t.is_contiguous():
            t = t.detach().contiguous()
            keep_alive.append(t)
        return t.data_ptr()

    addresses = np.zeros((L, K.NUM_ADDRESSES), dtype=np.int64)
    input_sizes = np.zeros(L, dtype=np.int64)
    for k in range(L):
        weights = layer._weights_for(k, 0)
        w_ih, w_hh, b_ih, b_hh, w_out, b_out = weights[:6]
        input_sizes[k] = w_ih.shape[1]
        has_out = out_act != K.NO_PROJECTION
        pieces = [w_ih, w_hh, b_ih, b_hh, w_out if has_out else None, b_out if has_out else None]
        pieces += [None] * (K.NUM_ADDRESSES - 6)
        if kind in (K.LN_LSTM, K.LN_GRU):  # the cell's own parameters, by name
            own = dict(zip(layer._cell().param_names, weights[6:], strict=True))
            for column, name in _LAYER_NORM_SLOTS.items():
                pieces[column] = own.get(name)
            if kind == K.LN_GRU:  # torch.nn.GRU's two biases
                pieces[K.B_IH], pieces[K.B_HH] = own.get("bias_ih"), own.get("bias_hh")
        addresses[k] = [address(t) for t in pieces]
    return PreparedStack(
        kind=kind,
        act=act,
        out_act=out_act,
        num_layers=L,
        input_size=layer.input_size,
        hidden_size=H,
        recurrent_size=R,
        dtype=dtype,
        np_dtype=np_dtype,
        addresses=addresses,
        input_sizes=input_sizes,
        fingerprint=_fingerprint(all_params),
        keep_alive=tuple(keep_alive),
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
