"""Weight initialization schemes for recurrent layers, applied by the trainer to every task's model.

The layers start as torch.nn's do (every weight uniform in ±1/sqrt(H)), so that they stay drop-in
replacements; `initialize_(model, Initialization(...))` then re-initializes every recurrent layer
inside a model (rnnkit's layers and torch.nn's RNN/LSTM/GRU), gate by gate:

- recurrent (hidden-to-hidden) weights:
  - "orthogonal": each gate's H x H block an independent random orthogonal matrix, as Keras does
    by default: it keeps the norm of the state it multiplies, so gradients through time neither
    vanish nor explode at the start (Saxe et al. 2014). Measured on tiny shakespeare it trains a
    character LSTM to a lower loss in the same steps (benchmarks/lm_sweep_results.md);
  - "uniform": as built (torch.nn's ±1/sqrt(H));
  - "xavier": Glorot & Bengio 2010's uniform ±sqrt(6 / (fan_in + fan_out)) per gate block;
  - "identity": each block the identity and every bias zero: with a ReLU Elman cell this is the
    IRNN of Le, Jaitly & Hinton 2015 ("A simple way to initialize recurrent networks of
    rectified linear units"), which copies the state forward until learning says otherwise;
  - "chrono": orthogonal blocks and the gate biases of Tallec & Ollivier 2018 ("Can recurrent
    neural networks warp time?"): an LSTM's forget bias log(u), u ~ U[1, T_max - 1], and its
    input bias -log(u); a GRU's update gate likewise, so that at the start the cell keeps its
    state for about u steps, spread over the range of dependencies the data has.
- input-to-hidden weights: "uniform" (as built), "xavier" or "orthogonal", per gate block.
- an LSTM's forget-gate bias shift (`forget_bias`, Keras' unit_forget_bias is +1).

Which gates chrono sets is the cell's to say (`Cell.chrono_gates`): pairs (gate index, sign) of
the gate whose sigmoid keeps the state (sign +1) and the gate that writes it (sign -1), in the
cell's gate order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._checks import is_int

__all__ = [
    "INPUT_INITS",
    "RECURRENT_INITS",
    "Initialization",
    "chrono_biases",
    "init_recurrent_",
    "initialize_",
    "recurrent_layers",
    "shift_forget_bias_",
]

RECURRENT_INITS = ("orthogonal", "uniform", "xavier", "identity", "chrono")
INPUT_INITS = ("uniform", "xavier", "orthogonal")

# torch.nn's RNN modes -> gates, for layers that are torch's own rather than rnnkit's
_TORCH_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
_TORCH_CHRONO = {"LSTM": ((1, 1.0), (0, -1.0)), "GRU": ((1, 1.0),)}


@dataclass(frozen=True)
class Initialization:
    """How a model's recurrent layers start (module docstring)."""

    recurrent: str = "orthogonal"
    input: str = "uniform"
    forget_bias: float = 0.0
    chrono_tmax: int | None = None  # "chrono": the longest dependency to keep, in steps

    def __post_init__(self) -> None:
        if self.recurrent not in RECURRENT_INITS:
            raise ValueError(
                f"recurrent init must be one of {', '.join(RECURRENT_INITS)}; got "
                f"{self.recurrent!r}"
            )
        if self.input not in INPUT_INITS:
            raise ValueError(
                f"input init must be one of {', '.join(INPUT_INITS)}; got {self.input!r}"
            )
        if self.recurrent == "chrono":
            tmax = self.chrono_tmax
            if not is_int(tmax) or tmax < 2:
                raise ValueError(f"chrono init needs chrono_tmax, an integer >= 2; got {tmax!r}")


def recurrent_layers(model: nn.Module) -> list[tuple[nn.Module, int, tuple]]:
    """(layer, gates, chrono gates) for every recurrent layer inside `model`."""
    from .layers import Recurrent

    found = []
    for module in model.modules():
        if isinstance(module, Recurrent):
            cell = module.cell
            found.append((module, cell.num_gates, getattr(cell, "chrono_gates", ())))
        elif isinstance(module, nn.RNNBase):
            found.append((module, _TORCH_GATES[module.mode], _TORCH_CHRONO.get(module.mode, ())))
    return found


def _parameters(layer: nn.Module, prefix: str) -> list[Tensor]:
    return [p for name, p in layer.named_parameters(recurse=False) if name.startswith(prefix)]


def _blocks(weight: Tensor, gates: int) -> tuple[Tensor, ...]:
    return weight.split(weight.shape[0] // gates)


def _init_blocks_(weight: Tensor, gates: int, kind: str) -> None:
    for block in _blocks(weight, gates):
        if kind == "orthogonal":
            # a projected LSTM's blocks are (H, P): made semi-orthogonal
            nn.init.orthogonal_(block)
        elif kind == "xavier":
            nn.init.xavier_uniform_(block)
        elif kind == "identity":
            nn.init.eye_(block)


def chrono_biases(hidden: int, tmax: int, generator: torch.Generator | None = None) -> Tensor:
    """log(u), u ~ U[1, tmax - 1], one per unit (Tallec & Ollivier 2018, eq. 16)."""
    u = torch.rand(hidden, dtype=torch.float64, generator=generator) * (tmax - 2) + 1
    return u.log()


@torch.no_grad()
def initialize_(model: nn.Module, scheme: Initialization) -> nn.Module:
    """Re-initialize every recurrent layer inside `model` as `scheme` says; returns `model`.

    Layers without `weight_hh_l*` matrices keep their recurrent weights (an IndRNN's recurrence
    is a vector, a Jordan network's runs through its output weights, MinGRU has none). chrono on
    a layer whose cell names no chrono gates is an error.
    """
    for layer, gates, chrono in recurrent_layers(model):
        hidden = layer.hidden_size
        if scheme.input != "uniform":
            for weight in _parameters(layer, "weight_ih_l"):
                _init_blocks_(weight, gates, scheme.input)
        kind = "orthogonal" if scheme.recurrent == "chrono" else scheme.recurrent
        if kind != "uniform":
            for weight in _parameters(layer, "weight_hh_l"):
                if weight.dim() == 2:  # an IndRNN's weight_hh is a vector
                    _init_blocks_(weight, gates, kind)
        if scheme.recurrent == "identity":
            for bias in _parameters(layer, "bias_"):
                bias.zero_()
        if scheme.recurrent == "chrono":
            if not chrono:
                raise ValueError(
                    f"chrono init: {type(layer).__name__}'s cell has no gate that keeps its "
                    "state; use it with an LSTM or GRU cell"
                )
            _chrono_(layer, hidden, chrono, scheme.chrono_tmax)
        if scheme.forget_bias:
            shift_forget_bias_(layer, scheme.forget_bias)
    return model


def _chrono_(layer: nn.Module, hidden: int, chrono: tuple, tmax: int) -> None:
    """Per layer and direction: the keeping gate's bias log(u), the writing gate's -log(u),
    split so that b_ih + b_hh is that (b_hh's rows of those gates are zeroed)."""
    for bias_ih in _parameters(layer, "bias_ih_l"):
        values = chrono_biases(hidden, tmax).to(bias_ih.dtype)
        for gate, sign in chrono:
            bias_ih[gate * hidden : (gate + 1) * hidden] = sign * values
    for bias_hh in _parameters(layer, "bias_hh_l"):
        for gate, _ in chrono:
            bias_hh[gate * hidden : (gate + 1) * hidden] = 0.0


@torch.no_grad()
def init_recurrent_(layer: nn.Module, kind: str = "orthogonal") -> nn.Module:
    """Re-initialize the hidden-to-hidden weights of one layer (or every layer of a model) with
    `kind` from RECURRENT_INITS other than chrono (which needs chrono_tmax: use `initialize_`).
    Returns `layer`."""
    return initialize_(layer, Initialization(recurrent=kind))


@torch.no_grad()
def shift_forget_bias_(layer: nn.Module, shift: float) -> nn.Module:
    """Add `shift` to the forget-gate bias of every layer and direction of an LSTM.

    torch's gate order is (input, forget, cell, output), so the forget gate is rows H..2H of
    `bias_ih_l*`. Keras' `unit_forget_bias` adds +1 to remember longer from the start; a
    negative shift forgets faster, which measured better for short character-LM budgets
    (docs/benchmarks.md). Returns `layer`.
    """
    if not math.isfinite(shift):
        raise ValueError(f"shift_forget_bias_: the shift must be finite; got {shift}")
    hidden = layer.hidden_size
    biases = _parameters(layer, "bias_ih_l")
    if not biases:
        raise ValueError("shift_forget_bias_: the layer has no biases (built with bias=False)")
    for bias in biases:
        bias[hidden : 2 * hidden] += shift
    return layer
