"""Recurrent layers: drop-in RNN, LSTM and GRU, and JordanRNN, over rnnkit's engine.

`RNN`, `LSTM` and `GRU` subclass torch.nn's classes and change only dispatch: the constructor
arguments, parameter names, init and state_dict are torch's, plus `backend=`:

    "native"     torch's own fused kernel
    "reference"  rnnkit's engine in plain torch ops, every step and gradient explicit
    "compiled"   rnnkit's fused CPU kernels (numba): the engine's math, the time loop compiled
    "auto"       per call, the fastest backend that serves it (rnnkit.engine.policy);
                 layer.explain() says which ran and why

Shapes: T time steps, B batch, I input_size, H hidden_size, D = 2 if bidirectional else 1,
L num_layers, R the recurrent width (H, or proj_size for a projected LSTM, or output_size for
Jordan).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ._checks import (
    autocast_enabled,
    check_backend,
    check_bool,
    check_dropout,
    check_positive_int,
    check_proj_size,
)
from ._inputs import check_call, from_packed_layout, to_packed_layout
from ._lengths import check_lengths, pack_with_lengths, unpack_output
from .activations import get_activation
from .cells import (
    Cell,
    ElmanCell,
    GRUCell,
    JordanCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    LSTMCell,
)
from .engine import run_stack, sweep
from .engine.compiled import compiled_sweep
from .engine.policy import CallShape, Choice, choose_backend, explicit_backend
from .stream import StreamingMixin

__all__ = ["GRU", "LSTM", "RNN", "JordanRNN", "LayerNormGRU", "LayerNormLSTM"]


def _check_common(
    owner, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, backend
) -> None:
    check_positive_int(owner, "input_size", input_size)
    check_positive_int(owner, "hidden_size", hidden_size)
    check_positive_int(owner, "num_layers", num_layers)
    check_bool(owner, "bias", bias)
    check_bool(owner, "batch_first", batch_first)
    check_bool(owner, "bidirectional", bidirectional)
    check_dropout(owner, dropout)
    check_backend(owner, backend)


class _EngineDispatch(StreamingMixin):  # + step() and stream(): rnnkit.stream
    """The one forward shared by every layer: validate, then run the chosen backend.

    A layer supplies `_cell()`, `state_names`, `state_sizes()`, `_weights_for(layer, direction)`
    and, when torch has a kernel for it, `_native_forward(input, hx)`.
    """

    _has_native = False
    _last_choice: Choice | None = None

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        owner = type(self).__name__
        check_backend(owner, value)
        if value == "native" and not self._has_native:
            raise ValueError(
                f"{owner}: backend='native' is not available, torch has no kernel "
                "for this cell; use backend='auto', 'compiled' or 'reference'"
            )
        if value == "compiled":
            weight = self.reference_weight()
            explicit_backend(owner, value, self._cell(), self._call_shape(1, 1, weight))
        self._backend = value
        self._last_choice = None

    def _call_shape(
        self, batch: int, steps: int, like: Tensor, packed: bool = False, hx=None
    ) -> CallShape:
        states = hx if isinstance(hx, (tuple, list)) else (hx,)
        grad = torch.is_grad_enabled() and (
            like.requires_grad
            or any(s is not None and s.requires_grad for s in states)
            or any(p.requires_grad for p in self.parameters())
        )
        dropout_active = self.training and self.dropout > 0 and self.num_layers > 1
        autocast = like.device.type == "cpu" and autocast_enabled(like.device)
        return CallShape(
            batch=batch,
            steps=steps,
            hidden=self.hidden_size,
            # under autocast the input may be in its lower precision; the weights' dtype is
            # what an engine that ignores autocast computes in
            dtype=self.reference_weight().dtype if autocast else like.dtype,
            device=like.device,
            grad=grad,
            streamable=not (packed or self.bidirectional or dropout_active),
            autocast=autocast,
        )

    def _choose(self, shape: CallShape) -> Choice:
        if self._backend == "auto":
            return choose_backend(self._cell(), self._has_native, shape)
        return explicit_backend(type(self).__name__, self._backend, self._cell(), shape)

    @property
    def resolved_backend(self) -> str:
        """The backend the last forward call ran (before any call: what a call of batch 32 and
        35 steps in the layer's dtype would run)."""
        if self._last_choice is not None:
            return self._last_choice.backend
        return self._choose(self._call_shape(32, 35, self.reference_weight())).backend

    def explain(self) -> str:
        """Which backend ran in the last call (or would run, before any call) and why."""
        choice = self._last_choice
        when = "last call"
        if choice is None:
            when = "a call of batch 32, 35 steps (no call yet)"
            choice = self._choose(self._call_shape(32, 35, self.reference_weight()))
        return f"backend={self._backend!r} -> {choice.backend!r} for {when}: {choice.reason}"

    def reference_weight(self) -> Tensor:
        return next(iter(self.parameters()))

    def _options_repr(self) -> str:
        """The non-default common options, for the layers rnnkit defines (not torch's)."""
        options = [
            (self.num_layers != 1, f"num_layers={self.num_layers}"),
            (not self.bias, "bias=False"),
            (self.batch_first, "batch_first=True"),
            (bool(self.dropout), f"dropout={self.dropout}"),
            (self.bidirectional, "bidirectional=True"),
            (self._backend != "auto", f"backend={self._backend!r}"),
        ]
        return "".join(f", {text}" for shown, text in options if shown)

    def forward(self, input, hx=None, lengths=None):
        """(input, hx=None, lengths=None) -> (output, final states). `lengths` (B,) makes a
        padded batch variable-length: see rnnkit._lengths."""
        if lengths is not None:
            lengths = check_lengths(type(self).__name__, input, lengths, self.batch_first)
            check_call(self, input, hx)
            steps = input.shape[1 if self.batch_first else 0]
            packed = pack_with_lengths(input, lengths, self.batch_first)
            output, finals = self._forward_checked(packed, hx)
            return unpack_output(output, self.batch_first, steps), finals
        check_call(self, input, hx)
        return self._forward_checked(input, hx)

    def _forward_checked(self, input, hx):
        packed = isinstance(input, PackedSequence)
        if packed:
            batch, steps, like = int(input.batch_sizes[0]), len(input.batch_sizes), input.data
        else:
            batched = input.dim() == 3
            batch = input.shape[0 if self.batch_first else 1] if batched else 1
            steps = input.shape[1 if self.batch_first and batched else 0]
            like = input
        shape = self._call_shape(batch, steps, like, packed, hx)
        choice = self._choose(shape)
        self._last_choice = choice
        if choice.backend == "native":
            return self._native_forward(input, hx)
        if shape.autocast:  # rnnkit's engines compute in the weights' dtype (policy.py)
            return self._forward_without_autocast(input, hx)
        if choice.route == "stream":
            return self._forward_by_steps(input, hx)
        call = to_packed_layout(self, input, hx)
        output, finals = run_stack(
            self._cell(),
            self._weights_for,
            call.data,
            call.batch_sizes,
            call.states,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            dropout=float(self.dropout),
            training=self.training,
            sweep_fn=compiled_sweep if choice.backend == "compiled" else sweep,
        )
        output, finals = from_packed_layout(call, output, finals)
        return output, (finals if len(finals) > 1 else finals[0])

    def _forward_without_autocast(self, input, hx):
        """The call in the weights' dtype, as autocast runs the ops it does not cover."""
        dtype = self.reference_weight().dtype
        if isinstance(hx, (tuple, list)):
            hx = tuple(state.to(dtype) for state in hx)
        elif hx is not None:
            hx = hx.to(dtype)
        with torch.autocast("cpu", enabled=False):
            return self._forward_checked(input.to(dtype), hx)

    def _forward_by_steps(self, input: Tensor, hx):
        """The call as a loop of `self.step` (the streaming kernel) over its few steps."""
        time_dim = 1 if self.batch_first and input.dim() == 3 else 0
        state = tuple(hx) if isinstance(hx, list) else hx
        outputs = []
        for x_t in input.unbind(time_dim):
            y_t, state = self.step(x_t, state)
            outputs.append(y_t)
        return torch.stack(outputs, time_dim), state


class _TorchLayer(_EngineDispatch):
    """Glue for the torch.nn subclasses: their parameters, named as torch names them."""

    _has_native = True

    def _weights_for(self, layer: int, direction: int):
        suffix = "_reverse" if direction == 1 else ""
        get = lambda name: getattr(self, f"{name}_l{layer}{suffix}", None)  # noqa: E731
        b_ih, b_hh = (get("bias_ih"), get("bias_hh")) if self.bias else (None, None)
        return (get("weight_ih"), get("weight_hh"), b_ih, b_hh, get("weight_hr"), None)

    def _native_forward(self, input, hx):
        if isinstance(hx, list):
            hx = tuple(hx)
        # Skip _EngineDispatch in the MRO: this reaches torch.nn's own forward.
        return super(_EngineDispatch, self).forward(input, hx)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self._backend == "auto" else f"{s}, backend={self._backend!r}"


class RNN(_TorchLayer, nn.RNN):
    """Elman RNN, drop-in for torch.nn.RNN: h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    Call: (input, h_0=None) -> (output (T, B, D*H), h_n (L*D, B, H)).
    """

    state_names = ("h_0",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
    ) -> None:
        _check_common(
            "RNN",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            backend,
        )
        get_activation(nonlinearity, allowed=("tanh", "relu"), owner="RNN")
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            nonlinearity,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
        )
        self.backend = backend

    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    def _cell(self) -> Cell:
        return ElmanCell(self.nonlinearity)


class LSTM(_TorchLayer, nn.LSTM):
    """LSTM, drop-in for torch.nn.LSTM (gate order i, f, g, o; optional proj_size).

    Call: (input, (h_0, c_0)=None) -> (output (T, B, D*R), (h_n (L*D, B, R), c_n (L*D, B, H)))
    with R = proj_size or H.
    """

    state_names = ("h_0", "c_0")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
    ) -> None:
        _check_common(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            backend,
        )
        check_proj_size("LSTM", proj_size, hidden_size)
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device=device,
            dtype=dtype,
        )
        self.backend = backend

    def state_sizes(self) -> tuple[int, ...]:
        return (self.proj_size or self.hidden_size, self.hidden_size)

    def _cell(self) -> Cell:
        return LSTMCell(projected=self.proj_size > 0)


class GRU(_TorchLayer, nn.GRU):
    """GRU, drop-in for torch.nn.GRU (gate order r, z, n; reset applied to W_hn h + b_hn).

    Call: (input, h_0=None) -> (output (T, B, D*H), h_n (L*D, B, H)).
    """

    state_names = ("h_0",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
    ) -> None:
        _check_common(
            "GRU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            backend,
        )
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
        )
        self.backend = backend

    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    def _cell(self) -> Cell:
        return GRUCell()


class JordanRNN(_EngineDispatch, nn.Module):
    """Jordan network (seed 002): the output, not the hidden state, is fed back.

        h_t = f(W_x x_t + W_r y_{t-1} + b)
        y_t = g(W_y h_t + b_y),        y_0 = 0 unless given

    Call: (input, y_0=None) -> (y (T, B, D*O), y_last (L*D, B, O)); input as for torch.nn.RNN
    (padded, batch_first, unbatched or PackedSequence). Stacked layers read the previous layer's
    y. Parameters per layer k (suffix _reverse for the backward direction):
    weight_ih_l{k} (H, I_k) = W_x, weight_yh_l{k} (H, O) = W_r, bias_h_l{k} (H) = b,
    weight_hy_l{k} (O, H) = W_y, bias_y_l{k} (O) = b_y; all start uniform in ±1/sqrt(H).
    """

    state_names = ("y_0",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        nonlinearity: str = "tanh",
        output_nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        backend: str = "auto",
        *,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        _check_common(
            "JordanRNN",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            backend,
        )
        check_positive_int("JordanRNN", "output_size", output_size)
        get_activation(nonlinearity, allowed=("tanh", "relu"), owner="JordanRNN")
        get_activation(
            output_nonlinearity,
            argument="output_nonlinearity",
            allowed=JordanCell.output_activations,
            owner="JordanRNN",
        )
        super().__init__()
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.nonlinearity, self.output_nonlinearity = nonlinearity, output_nonlinearity
        self.bias, self.batch_first = bias, batch_first
        self.num_layers, self.dropout, self.bidirectional = (
            num_layers,
            float(dropout),
            bidirectional,
        )
        factory = {"device": device, "dtype": dtype}
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else output_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {
                    "weight_ih": (hidden_size, layer_input),
                    "weight_yh": (hidden_size, output_size),
                    "weight_hy": (output_size, hidden_size),
                }
                if bias:
                    shapes.update(bias_h=(hidden_size,), bias_y=(output_size,))
                for name, shape in shapes.items():
                    self.register_parameter(
                        name + suffix, nn.Parameter(torch.empty(shape, **factory))
                    )
        self.reset_parameters()
        self.backend = backend

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def state_sizes(self) -> tuple[int, ...]:
        return (self.output_size,)

    def _cell(self) -> Cell:
        return JordanCell(self.nonlinearity, self.output_nonlinearity)

    def _weights_for(self, layer: int, direction: int):
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        get = lambda name: getattr(self, name + suffix, None)  # noqa: E731
        return (
            get("weight_ih"),
            get("weight_yh"),
            get("bias_h"),
            None,
            get("weight_hy"),
            get("bias_y"),
        )

    def forward(self, input, y_0=None, lengths=None):
        return super().forward(input, y_0, lengths=lengths)

    def extra_repr(self) -> str:
        s = (
            f"{self.input_size}, {self.hidden_size}, {self.output_size}, "
            f"nonlinearity={self.nonlinearity!r}, output_nonlinearity={self.output_nonlinearity!r}"
        )
        return s + self._options_repr()


class _LayerNormLayer(_EngineDispatch, nn.Module):
    """The layer-norm layers' shared body: parameters named per layer and direction, torch's
    uniform init for the weights, the cell's own init (γ = 1, β = 0, b = 0) for the rest."""

    _cell_type: type[Cell]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        backend: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        owner = type(self).__name__
        _check_common(
            owner,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            backend,
        )
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        factory = {"device": device, "dtype": dtype}
        directions = 2 if bidirectional else 1
        G = self._cell_type.num_gates * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = self._suffix(layer, direction)
                shapes = {"weight_ih": (G, layer_input), "weight_hh": (G, hidden_size)}
                for name, shape in shapes.items():
                    self.register_parameter(
                        name + suffix, nn.Parameter(torch.empty(shape, **factory))
                    )
                cell = self._cell()
                initial = cell.init_params(hidden_size, **factory)
                for name, value in zip(cell.param_names, initial, strict=True):
                    self.register_parameter(name + suffix, nn.Parameter(value))
        self.reset_parameters()
        self.backend = backend

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction == 1 else "")

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        cell = self._cell()
        for layer in range(self.num_layers):
            for direction in range(2 if self.bidirectional else 1):
                suffix = self._suffix(layer, direction)
                for name in ("weight_ih", "weight_hh"):
                    nn.init.uniform_(getattr(self, name + suffix), -bound, bound)
                weight = getattr(self, "weight_ih" + suffix)
                initial = cell.init_params(
                    self.hidden_size, device=weight.device, dtype=weight.dtype
                )
                with torch.no_grad():
                    for name, value in zip(cell.param_names, initial, strict=True):
                        getattr(self, name + suffix).copy_(value)

    def _cell(self) -> Cell:
        return self._cell_type(bias=self.bias)

    def _weights_for(self, layer: int, direction: int):
        suffix = self._suffix(layer, direction)
        own = (getattr(self, name + suffix) for name in self._cell().param_names)
        return (
            getattr(self, "weight_ih" + suffix),
            getattr(self, "weight_hh" + suffix),
            None,
            None,
            None,
            None,
            *own,
        )

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        return s + self._options_repr()


class LayerNormLSTM(_LayerNormLayer):
    """Layer-normalized LSTM (Ba, Kiros, Hinton 2016), gate order i, f, g, o:

        a   = LN(W_ih x_t; γ_x, β_x) + LN(W_hh h_{t-1}; γ_h, β_h) + b
        [i, f, g, o] = [σ, σ, tanh, σ](a)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(LN(c_t; γ_c, β_c))

    LN normalizes each row over its features (all 4H gate pre-activations together, or the H
    cell units) as torch.nn.LayerNorm does (biased variance, eps 1e-5); details and the backward
    in rnnkit.cells.layernorm_lstm. Call as torch.nn.LSTM: (input, (h_0, c_0)=None) ->
    (output (T, B, D*H), (h_n (L*D, B, H), c_n (L*D, B, H))), padded, batch_first, unbatched
    or PackedSequence. Parameters per layer k (suffix _reverse for the backward direction):
    weight_ih_l{k} (4H, I_k), weight_hh_l{k} (4H, H), bias_l{k} (4H) = b (bias=True only),
    ln_ih_weight_l{k}, ln_ih_bias_l{k} (4H) = γ_x, β_x, ln_hh_weight_l{k}, ln_hh_bias_l{k}
    (4H) = γ_h, β_h, ln_cell_weight_l{k}, ln_cell_bias_l{k} (H) = γ_c, β_c. Weights start
    uniform in ±1/sqrt(H), γ at 1, β and b at 0. backend: "auto" (compiled where it serves the
    call), "compiled" or "reference"; torch has no kernel for this cell, so "native" is refused.
    """

    _cell_type = LayerNormLSTMCell
    state_names = ("h_0", "c_0")

    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size, self.hidden_size)


class LayerNormGRU(_LayerNormLayer):
    """Layer-normalized GRU, torch.nn.GRU's step (gate order r, z, n) on normalized
    pre-activations, as haste's LayerNormGRU (with a shift β in each normalization):

        gi = LN(W_ih x_t; γ_x, β_x) + b_ih,   gh = LN(W_hh h_{t-1}; γ_h, β_h) + b_hh
        r = σ(gi_r + gh_r),   z = σ(gi_z + gh_z),   n = tanh(gi_n + r * gh_n)
        h_t = (1 - z) * n + z * h_{t-1}

    LN normalizes each row over all 3H pre-activations of its side, as torch.nn.LayerNorm does
    (biased variance, eps 1e-5); details and the backward in rnnkit.cells.layernorm_gru. Call
    as torch.nn.GRU: (input, h_0=None) -> (output (T, B, D*H), h_n (L*D, B, H)). Parameters per
    layer k (suffix _reverse for the backward direction): weight_ih_l{k} (3H, I_k),
    weight_hh_l{k} (3H, H), bias_ih_l{k}, bias_hh_l{k} (3H) (bias=True only), ln_ih_weight_l{k},
    ln_ih_bias_l{k} (3H) = γ_x, β_x, ln_hh_weight_l{k}, ln_hh_bias_l{k} (3H) = γ_h, β_h.
    Weights start uniform in ±1/sqrt(H), γ at 1, β and b at 0. backend: "auto", "compiled" or
    "reference" ("native" is refused).
    """

    _cell_type = LayerNormGRUCell
    state_names = ("h_0",)

    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)
