"""Normalizing a layer call once, for every layer and backend: the one place a call is checked.

A recurrent layer can be called with a padded batch (T, B, I) or (B, T, I) with batch_first, an
unbatched sequence (T, I), or a PackedSequence, with or without initial states, and a padded
batch with `lengths=` (rnnkit.layers.lengths). `prepare_call` validates all of it with one-line
messages and turns it into the engine's single layout (packed data + batch sizes, states sorted
like the data); `finish_call` turns the engine's results back into what torch.nn would return
for the same call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from .._checks import check_floating, check_tensor_matches, describe
from .lengths import check_lengths, pack_with_lengths, pad_packed


class LayerSpec(Protocol):
    """What the plumbing needs to know about a layer."""

    input_size: int
    num_layers: int
    batch_first: bool
    bidirectional: bool

    @property
    def state_names(self) -> tuple[str, ...]: ...  # ("h_0",), ("h_0", "c_0"), ("y_0",)

    def state_sizes(self) -> tuple[int, ...]: ...  # feature width of each state

    def reference_weight(self) -> Tensor: ...  # any weight: its dtype and device rule the call


@dataclass
class Call:
    """One normalized call: the input in packed layout and how to give results back."""

    data: Tensor  # (N, I) packed layout
    batch_sizes: tuple[int, ...]  # (T,) rows active per step, non-increasing
    states: tuple[Tensor, ...]  # each (L * D, B, width), rows in the data's (sorted) order
    packed: PackedSequence | None  # the original PackedSequence, if one came
    unbatched: bool
    batch_first: bool
    batch: int
    padded_steps: int | None = None  # with lengths=: the padded input's T, to pad back to
    given: object = None  # the caller's input (what torch's own kernel is handed)
    hx: object = None  # the caller's hx, as given

    @property
    def steps(self) -> int:
        return len(self.batch_sizes)


def _owner(layer) -> str:
    return type(layer).__name__


def _state_argument(layer: LayerSpec) -> str:
    """The call's name for the initial state(s): `hx` for torch's layers, `y_0` for Jordan."""
    names = layer.state_names
    return names[0] if names == ("y_0",) else "hx"


def _state_labels(layer: LayerSpec) -> tuple[str, ...]:
    """How messages name each state: "hx (h_0)", "hx[1] (c_0)", "y_0"."""
    names, argument = layer.state_names, _state_argument(layer)
    if argument == names[0]:
        return names
    if len(names) == 1:
        return (f"{argument} ({names[0]})",)
    return tuple(f"{argument}[{i}] ({name})" for i, name in enumerate(names))


def _describe_sequence(value) -> str:
    """'tuple of 3: (Tensor of shape (1, 2, 3), int, ...)' for error messages."""
    items = ", ".join(describe(v) for v in value)
    return f"{type(value).__name__} of {len(value)}: ({items})"


def _hx_tuple(layer: LayerSpec, hx) -> tuple[Tensor, ...] | None:
    """hx as a tuple of tensors, checked for kind: a tuple for multi-state layers, else a tensor."""
    if hx is None:
        return None
    names, argument = layer.state_names, _state_argument(layer)
    if len(names) == 1:
        if not isinstance(hx, Tensor):
            got = _describe_sequence(hx) if isinstance(hx, tuple | list) else describe(hx)
            raise TypeError(
                f"{_owner(layer)}: {argument} must be a single Tensor {names[0]} (only LSTM "
                f"takes a tuple (h_0, c_0)); got {got}"
            )
        return (hx,)
    if (
        not isinstance(hx, tuple | list)
        or len(hx) != len(names)
        or not all(isinstance(h, Tensor) for h in hx)
    ):
        got = _describe_sequence(hx) if isinstance(hx, tuple | list) else describe(hx)
        raise TypeError(
            f"{_owner(layer)}: {argument} must be a tuple ({', '.join(names)}) of {len(names)} "
            f"tensors; got {got}"
        )
    return tuple(hx)


def check_call(layer: LayerSpec, input, hx) -> None:
    """Validate a layer call; raises TypeError/ValueError naming the argument and the fix."""
    owner = _owner(layer)
    weight = layer.reference_weight()
    states = _hx_tuple(layer, hx)
    if isinstance(input, PackedSequence):
        data, batch_sizes = input.data, input.batch_sizes
        if data.dim() != 2:
            raise ValueError(
                f"{owner}: PackedSequence data must be 2-D (N, input_size); got shape "
                f"{tuple(data.shape)}"
            )
        sizes = batch_sizes.tolist()
        if data.shape[0] != sum(sizes):
            raise ValueError(
                f"{owner}: PackedSequence data has {data.shape[0]} rows but its batch_sizes "
                f"{sizes} sum to {sum(sizes)}; build it with pack_padded_sequence or "
                "pack_sequence rather than by hand"
            )
        if any(size <= 0 for size in sizes):
            raise ValueError(
                f"{owner}: PackedSequence batch_sizes must all be positive (every step has at "
                f"least one sequence); got {sizes}"
            )
        if any(b < a for a, b in zip(sizes[1:], sizes, strict=False)):
            raise ValueError(
                f"{owner}: PackedSequence batch_sizes must be non-increasing (sequences sorted "
                f"longest first); got {sizes}. Build it with pack_padded_sequence(..., "
                "enforce_sorted=False) to sort unsorted lengths"
            )
        batch = sizes[0] if sizes else 0
        unbatched = False
        time_steps = len(sizes)
        shape_note = "PackedSequence data (N, input_size)"
    elif isinstance(input, Tensor):
        data = input
        layout = "(B, T, input_size)" if layer.batch_first else "(T, B, input_size)"
        if input.dim() not in (2, 3):
            raise ValueError(
                f"{owner}: input must be 3-D {layout} or 2-D (T, input_size) unbatched; got "
                f"{input.dim()}-D shape {tuple(input.shape)}"
            )
        unbatched = input.dim() == 2
        if unbatched:
            batch, time_steps = 1, input.shape[0]
        elif layer.batch_first:
            batch, time_steps = input.shape[0], input.shape[1]
        else:
            time_steps, batch = input.shape[0], input.shape[1]
        shape_note = layout
    else:
        raise TypeError(f"{owner}: input must be a Tensor or PackedSequence; got {describe(input)}")

    check_floating(owner, "input", data, weight.dtype)
    if data.shape[-1] != layer.input_size:
        raise ValueError(
            f"{owner}: input's last dimension must equal input_size={layer.input_size}; got "
            f"{data.shape[-1]} (input shape {tuple(data.shape)}, expected {shape_note})"
        )
    if time_steps == 0:
        raise ValueError(
            f"{owner}: input has zero time steps (shape {tuple(data.shape)}); every sequence "
            "needs at least one step"
        )
    check_tensor_matches(owner, "input", data, weight)

    if states is None:
        return
    directions = 2 if layer.bidirectional else 1
    layers_dirs = layer.num_layers * directions
    for label, name, state, width in zip(
        _state_labels(layer), layer.state_names, states, layer.state_sizes(), strict=True
    ):
        expected = (layers_dirs, width) if unbatched else (layers_dirs, batch, width)
        if tuple(state.shape) != expected:
            parts = [f"num_layers * num_directions = {layer.num_layers} * {directions}"]
            if not unbatched:
                parts.append(f"batch = {batch}")
            parts.append(f"{_width_name(layer, name)} = {width}")
            kind = "unbatched 2-D" if unbatched else "3-D"
            raise ValueError(
                f"{owner}: {label} must have shape {expected} = ({', '.join(parts)}) for this "
                f"{kind} input; got {state.dim()}-D shape {tuple(state.shape)}"
            )
        check_tensor_matches(owner, name, state, weight)


def _width_name(layer: LayerSpec, state_name: str) -> str:
    if state_name == "y_0":
        return "output_size"
    if state_name == "h_0" and getattr(layer, "proj_size", 0):
        return "proj_size"
    return "hidden_size"


def to_packed_layout(layer: LayerSpec, input, hx) -> Call:
    """The checked call in the engine's layout. Call `check_call` first."""
    states = _hx_tuple(layer, hx)
    packed = input if isinstance(input, PackedSequence) else None
    unbatched = packed is None and input.dim() == 2
    if packed is not None:
        data, batch_sizes = packed.data, tuple(packed.batch_sizes.tolist())
        batch = batch_sizes[0]
    else:
        x = input.unsqueeze(1) if unbatched else input
        if layer.batch_first and not unbatched:
            x = x.transpose(0, 1)
        T, batch = x.shape[0], x.shape[1]
        data = x.reshape(T * batch, x.shape[2])  # (T * B, I)
        batch_sizes = (batch,) * T

    if states is None:
        layers_dirs = layer.num_layers * (2 if layer.bidirectional else 1)
        states = tuple(data.new_zeros((layers_dirs, batch, width)) for width in layer.state_sizes())
    else:
        if unbatched:
            states = tuple(s.unsqueeze(1) for s in states)
        if packed is not None and packed.sorted_indices is not None:
            # Each row of hx belongs to the sequence the caller put there; the data is sorted.
            states = tuple(s.index_select(1, packed.sorted_indices) for s in states)
    return Call(data, batch_sizes, states, packed, unbatched, layer.batch_first, batch)


def prepare_call(layer: LayerSpec, input, hx, lengths=None) -> Call:
    """The call checked (one-line errors naming the argument and the fix) and normalized."""
    if lengths is None:
        check_call(layer, input, hx)
        call = to_packed_layout(layer, input, hx)
    else:
        lengths = check_lengths(type(layer).__name__, input, lengths, layer.batch_first)
        check_call(layer, input, hx)
        steps = input.shape[1 if layer.batch_first else 0]
        packed = pack_with_lengths(input, lengths, layer.batch_first)
        call = to_packed_layout(layer, packed, hx)
        call.padded_steps = steps
    call.given = input if lengths is None else packed
    call.hx = hx
    return call


def finish_call(call: Call, output: Tensor, finals: tuple[Tensor, ...]):
    """(output, final states) in the caller's layout; one state alone, several as a tuple."""
    output, finals = from_packed_layout(call, output, finals)
    if call.padded_steps is not None:
        output = pad_packed(output, call.padded_steps, call.batch_first)
    return output, (finals if len(finals) > 1 else finals[0])


def from_packed_layout(call: Call, output: Tensor, finals: tuple[Tensor, ...]):
    """(output, finals) in the caller's layout: PackedSequence, padded or unbatched."""
    if call.packed is not None:
        packed = call.packed
        out = PackedSequence(
            output, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices
        )
        if packed.unsorted_indices is not None:
            finals = tuple(f.index_select(1, packed.unsorted_indices) for f in finals)
        return out, finals
    T = len(call.batch_sizes)
    out = output.view(T, call.batch, output.shape[-1])  # (T, B, D * R)
    if call.unbatched:
        return out.squeeze(1), tuple(f.squeeze(1) for f in finals)
    if call.batch_first:
        out = out.transpose(0, 1)  # (B, T, D * R)
    return out, finals


__all__ = [
    "Call",
    "LayerSpec",
    "check_call",
    "finish_call",
    "from_packed_layout",
    "prepare_call",
    "to_packed_layout",
]
