"""Recordings of a layer's steps and the saturation of its gates.

`record` runs the layer step by step through its cell's own equations (rnnkit.baselines), the
definition both engines are tested against, and keeps every step's recurrent vector and every
activation the cell reports as a probe (`Cell.probe_kinds`: the names are the cell's, such as
an LSTM's input/forget/candidate/output). `gate_stats` counts, per gate, the units that sit in
the flat ends of their nonlinearity, where the gradient through them is nearly zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from ..baselines import equations_loop
from ._layers import check_layer

__all__ = ["SATURATION", "GateStats", "Recording", "gate_stats", "record", "saturated"]

# A unit is saturated where its activation's slope is below about a tenth of its largest:
# sigmoid outside [0.05, 0.95] (σ' < 0.048 of 0.25), tanh beyond ±0.95 (tanh' < 0.098 of 1);
# a relu unit at 0 passes no gradient at all.
SATURATION = {
    "sigmoid": "v < 0.05 or v > 0.95",
    "tanh": "|v| > 0.95",
    "relu": "v == 0",
}


def saturated(values: Tensor, kind: str) -> Tensor:
    """A bool tensor: which of `values` (the output of a `kind` activation) are saturated."""
    if kind == "sigmoid":
        return (values < 0.05) | (values > 0.95)
    if kind == "tanh":
        return values.abs() > 0.95
    if kind == "relu":
        return values == 0
    return torch.zeros_like(values, dtype=torch.bool)  # identity and kinds with no flat part


@dataclass
class Recording:
    """Every step of a layer: `hidden[k]` (T, B, R) is sweep k's recurrent vector r_t (k =
    layer * D + direction), `carried[k]` its carried states (each (T, B, H); an LSTM's c),
    `gates[k][name]` (T, B, H) each probe, `kinds[name]` its kind, `mask` (T, B) which steps
    of each sequence are real (all True for an equal-length batch), `inputs` (T, B, I) what
    the first layer read and `initial[k]` the states sweep k started from, (r_0, *carried_0)."""

    hidden: list[Tensor]
    carried: list[tuple[Tensor, ...]]
    gates: list[dict[str, Tensor]]
    kinds: dict[str, str]
    mask: Tensor
    num_directions: int
    inputs: Tensor
    initial: list[tuple[Tensor, ...]]

    def layer_input(self, index: int) -> Tensor:
        """(T, B, ·) what sweep `index` read: the input, or the layer below's outputs."""
        layer = index // self.num_directions
        if layer == 0:
            return self.inputs
        below = range((layer - 1) * self.num_directions, layer * self.num_directions)
        return torch.cat([self.hidden[k] for k in below], dim=-1)

    def sweep_name(self, index: int) -> str:
        layer, direction = divmod(index, self.num_directions)
        return f"layer {layer}" + (" reverse" if direction else "")


def _time_first(layer, input, lengths) -> tuple[Tensor, Tensor | None]:
    if isinstance(input, PackedSequence):
        padded, lengths = pad_packed_sequence(input)
        return padded, lengths
    if not isinstance(input, Tensor):
        raise TypeError(f"record: input must be a Tensor or PackedSequence; got {type(input)}")
    if not input.is_floating_point():
        raise TypeError(
            f"record: input must be a floating-point tensor (the layer's input features); got "
            f"{input.dtype}: embed token ids first"
        )
    if input.dim() == 2:
        return input.unsqueeze(1), lengths
    return (input.transpose(0, 1) if layer.batch_first else input), lengths


def record(layer, input, *, hx=None, lengths=None) -> Recording:
    """Every step's recurrent vector and gates of `layer` on `input` (padded as the layer
    takes it, packed, or with lengths=), computed without gradients."""
    layer = check_layer("record", layer)
    x, lengths = _time_first(layer, input, lengths)
    D = 2 if layer.bidirectional else 1
    count = layer.num_layers * D
    T, B = x.shape[0], x.shape[1]
    steps: list[list] = [[None] * T for _ in range(count)]
    carried: list[list] = [[None] * T for _ in range(count)]
    probes: list[list] = [[None] * T for _ in range(count)]

    def observe(index, t, r_t, carried_t, step_probes):
        steps[index][t] = r_t
        carried[index][t] = carried_t
        probes[index][t] = step_probes

    with torch.no_grad():
        equations_loop(layer, x, hx, lengths, observe=observe)
    kinds = layer.cell.probe_kinds()
    hidden = [torch.stack(s) for s in steps]
    k = layer.cell.num_carried
    carried_all = [tuple(torch.stack([c[j] for c in cs]) for j in range(k)) for cs in carried]
    initial = _initial_states(layer, x, hx)
    gates = [{name: torch.stack([p[name] for p in ps]) for name in kinds} for ps in probes]
    if lengths is None:
        mask = torch.ones(T, B, dtype=torch.bool)
    else:
        mask = torch.arange(T).unsqueeze(1) < torch.as_tensor(lengths).view(1, B)
    return Recording(hidden, carried_all, gates, kinds, mask, D, x, initial)


def _initial_states(layer, x: Tensor, hx) -> list[tuple[Tensor, ...]]:
    """(r_0, *carried_0) of every sweep, as the layer call would start them."""
    D = 2 if layer.bidirectional else 1
    count, B = layer.num_layers * D, x.shape[1]
    k = layer.cell.num_carried
    if hx is None:
        r0 = x.new_zeros(count, B, layer.recurrent_size)
        states = [r0] + [x.new_zeros(count, B, layer.hidden_size) for _ in range(k)]
    else:
        states = list(hx) if isinstance(hx, (tuple, list)) else [hx]
    return [tuple(s[i] for s in states) for i in range(count)]


@dataclass
class GateStats:
    """Per sweep (k = layer * D + direction) and gate: `saturated[k][gate]` the fraction of
    saturated values over the real steps, sequences and units, `mean[k][gate]` their mean,
    `over_time[k][gate]` (T,) the saturated fraction at each step; `kinds[gate]` the gate's
    activation and SATURATION the rule used."""

    saturated: list[dict[str, float]]
    mean: list[dict[str, float]]
    over_time: list[dict[str, Tensor]]
    kinds: dict[str, str]
    names: list[str]

    def rows(self) -> list[dict]:
        """One row per sweep and gate, for a table or report.json."""
        return [
            {
                "sweep": self.names[k],
                "gate": gate,
                "kind": self.kinds[gate],
                "rule": SATURATION.get(self.kinds[gate], "none"),
                "saturated": self.saturated[k][gate],
                "mean": self.mean[k][gate],
            }
            for k in range(len(self.names))
            for gate in self.kinds
        ]


def gate_stats(layer, input, *, hx=None, lengths=None) -> GateStats:
    """The saturation and mean of every gate the layer's cell reports (see SATURATION)."""
    recording = record(layer, input, hx=hx, lengths=lengths)
    return stats_of(recording)


def stats_of(recording: Recording) -> GateStats:
    """gate_stats of a recording already made."""
    mask = recording.mask.unsqueeze(-1)  # (T, B, 1)
    saturated_frac, means, over_time = [], [], []
    for gates in recording.gates:
        s_k, m_k, o_k = {}, {}, {}
        for name, values in gates.items():
            real = mask.expand_as(values)
            flat = saturated(values, recording.kinds[name]) & real
            count = max(int(real.sum()), 1)
            s_k[name] = int(flat.sum()) / count
            m_k[name] = float(values.masked_fill(~real, 0).double().sum()) / count
            per_step = real.flatten(1).sum(1).clamp_min(1)
            o_k[name] = flat.flatten(1).sum(1) / per_step
        saturated_frac.append(s_k)
        means.append(m_k)
        over_time.append(o_k)
    names = [recording.sweep_name(k) for k in range(len(recording.gates))]
    return GateStats(saturated_frac, means, over_time, dict(recording.kinds), names)
