"""The contenders of a training-step row, built with identical weights and the same input.

    compiled   the rnnkit layer with backend="compiled": the headline
    reference  the same layer with backend="reference" (rnnkit's engine in plain torch ops)
    native     the same layer with backend="native", i.e. torch.nn's own kernel
    naive      the loop a user writes by hand, under autograd: nn.RNNCell / nn.LSTMCell /
               nn.GRUCell called once per step; for the cells torch lacks, a hand-written loop
               (Jordan below; the layer-norm cells: rnnkit.baselines; any other registered
               cell: its own textbook equations, rnnkit.baselines.equations_loop)
    twin       torch.nn's layer of the same sizes for a cell judged against it though it
               computes something else (LayerNormLSTM: nn.LSTM, LayerNormGRU: nn.GRU): timed,
               not compared

A backend that cannot serve a cell (torch has no Jordan kernel; a cell without compiled
kernels) is left out of the row with its one-line reason, never replaced by something else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..baselines import equations_loop, layer_norm_gru_loop, layer_norm_lstm_loop
from ..cells import CELLS as REGISTRY
from ..layers import JordanRNN
from ..layers import make_layer as make_registered_layer
from .flops import training_flops
from .timing import Contender

__all__ = [
    "CELLS",
    "CONTENDERS",
    "STANDARD_CELLS",
    "TWINS",
    "CellKind",
    "LayerConfig",
    "build_train_contenders",
    "flatten",
    "make_layer",
    "oracle_of",
    "why_not",
]

CONTENDERS = ("compiled", "reference", "native", "naive", "twin")


@dataclass(frozen=True)
class CellKind:
    """What the benchmark needs to know about one recurrence."""

    label: str
    naive: str  # how the naive loop is written, for the report


_NAIVE = {
    "rnn": "nn.RNNCell loop",
    "lstm": "nn.LSTMCell loop",
    "gru": "nn.GRUCell loop",
    "jordan": "hand-written autograd loop",
    "lnlstm": "rnnkit.baselines autograd loop",
    "lngru": "rnnkit.baselines autograd loop",
}
CELLS = {
    name: CellKind(entry.layer, _NAIVE.get(name, "the cell's equations, autograd loop"))
    for name, entry in REGISTRY.items()
}
STANDARD_CELLS = tuple(n for n, e in REGISTRY.items() if e.torch_twin)  # torch has a kernel
TWINS = {"lnlstm": nn.LSTM, "lngru": nn.GRU}  # "layer norm nearly free": against torch's layer
_NN_CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


@dataclass(frozen=True)
class LayerConfig:
    """One benchmarked layer: one layer, one direction, float32 unless told."""

    cell: str  # a key of CELLS
    batch: int
    steps: int
    input_size: int
    hidden_size: int
    output_size: int = 0  # Jordan only
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {self.cell!r}")

    @property
    def label(self) -> str:
        sizes = f"B{self.batch} T{self.steps} I{self.input_size} H{self.hidden_size}"
        if self.cell == "jordan":
            sizes += f" O{self.output_size}"
        return f"{CELLS[self.cell].label} {sizes}"

    @property
    def flops(self) -> int:
        """GEMM flops of one training step (rnnkit.bench.flops)."""
        return training_flops(
            self.cell,
            self.batch,
            self.steps,
            self.input_size,
            self.hidden_size,
            output_size=self.output_size,
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "label": self.label, "flops": self.flops}


def why_not(error: Exception) -> str:
    """The reason in a layer's one-line refusal, without its owner and advice:
    "LSTM: backend='compiled' cannot run this call: X; use ..." -> "backend='compiled' ...: X"."""
    text = " ".join(str(error).split())
    return text.split(": ", 1)[-1].split("; ", 1)[0]


def flatten(result) -> tuple[Tensor, ...]:
    """(output, h_n) or (output, (h_n, c_n)) as a flat tuple of tensors."""
    output, finals = result
    return (output, *finals) if isinstance(finals, tuple) else (output, finals)


def oracle_of(names) -> str:
    """The contender the others are checked against: torch.nn's kernel where there is one,
    else rnnkit's reference engine, else the hand-written loop."""
    for name in ("native", "reference", "naive"):
        if name in names:
            return name
    return next(iter(names))


def make_layer(config: LayerConfig, backend: str, dtype: torch.dtype) -> nn.Module:
    if config.cell == "jordan":
        return JordanRNN(
            config.input_size,
            config.hidden_size,
            config.output_size,
            dtype=dtype,
            backend=backend,
        )
    return make_registered_layer(
        config.cell, config.input_size, config.hidden_size, dtype=dtype, backend=backend
    )


def _cell_loop(cell: nn.RNNCellBase, x: Tensor, is_lstm: bool) -> tuple[Tensor, ...]:
    """The loop a user writes by hand: one nn.*Cell call per step, outputs stacked."""
    h = x.new_zeros(x.shape[1], cell.hidden_size)
    c = h
    outputs = []
    for x_t in x:
        if is_lstm:
            h, c = cell(x_t, (h, c))
        else:
            h = cell(x_t, h)
        outputs.append(h)
    finals = (h.unsqueeze(0), c.unsqueeze(0)) if is_lstm else (h.unsqueeze(0),)
    return (torch.stack(outputs), *finals)


def _jordan_loop(w: dict[str, Tensor], x: Tensor) -> tuple[Tensor, ...]:
    """Jordan network by hand: h = tanh(x W_x^T + y W_r^T + b), y = tanh(h W_y^T + b_y)."""
    y = x.new_zeros(x.shape[1], w["weight_hy"].shape[0])
    outputs = []
    for x_t in x:
        h = torch.tanh(F.linear(x_t, w["weight_ih"], w["bias_h"]) + F.linear(y, w["weight_yh"]))
        y = torch.tanh(F.linear(h, w["weight_hy"], w["bias_y"]))
        outputs.append(y)
    return torch.stack(outputs), y.unsqueeze(0)


def _naive(config: LayerConfig, master: nn.Module, x: Tensor) -> Contender:
    """The hand-written loop over copies of `master`'s weights (same order as its parameters)."""
    if config.cell in _NN_CELLS:
        cell_class = _NN_CELLS[config.cell]
        extra = {"nonlinearity": "tanh"} if cell_class is nn.RNNCell else {}
        cell = cell_class(config.input_size, config.hidden_size, dtype=x.dtype, **extra)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(master, f"{name}_l0"))
        is_lstm = config.cell == "lstm"
        return Contender("naive", lambda: _cell_loop(cell, x, is_lstm), list(cell.parameters()))
    if config.cell not in ("jordan", "lnlstm", "lngru"):  # any other cell: its own equations
        copy = make_layer(config, "reference", x.dtype)
        copy.load_state_dict(master.state_dict())
        return Contender("naive", lambda: flatten(equations_loop(copy, x)), list(copy.parameters()))
    weights = {
        name.removesuffix("_l0"): p.detach().clone().requires_grad_()
        for name, p in master.named_parameters()
    }
    B, H = config.batch, config.hidden_size
    forward: Callable[[], tuple[Tensor, ...]]
    if config.cell == "jordan":
        forward = lambda: _jordan_loop(weights, x)  # noqa: E731
    elif config.cell == "lnlstm":
        zeros = x.new_zeros(B, H)

        def forward() -> tuple[Tensor, ...]:
            out, h, c = layer_norm_lstm_loop(x, zeros, zeros, weights)
            return out, h.unsqueeze(0), c.unsqueeze(0)

    else:  # lngru
        zeros = x.new_zeros(B, H)

        def forward() -> tuple[Tensor, ...]:
            out, h = layer_norm_gru_loop(x, zeros, weights)
            return out, h.unsqueeze(0)

    return Contender("naive", forward, list(weights.values()))


def _twin(config: LayerConfig, x: Tensor) -> Contender | None:
    twin_class = TWINS.get(config.cell)
    if twin_class is None:
        return None
    layer = twin_class(config.input_size, config.hidden_size, dtype=x.dtype)
    return Contender("twin", lambda: flatten(layer(x)), list(layer.parameters()), checked=False)


def build_train_contenders(
    config: LayerConfig, names=CONTENDERS, seed: int = 0
) -> tuple[list[Contender], Tensor, dict[str, str]]:
    """The contenders `names` for `config` with identical weights, their shared input
    x (T, B, I) (requires grad) and, for each contender that cannot run, why not."""
    torch.manual_seed(seed)
    dtype = getattr(torch, config.dtype)
    master = make_layer(config, "reference", dtype)
    x = torch.randn(config.steps, config.batch, config.input_size, dtype=dtype)
    x.requires_grad_()
    contenders, unavailable = [], {}
    for name in names:
        if name == "naive":
            contenders.append(_naive(config, master, x))
            continue
        if name == "twin":
            twin = _twin(config, x)
            if twin is not None:
                contenders.append(twin)
            continue
        try:
            layer = make_layer(config, name, dtype)
        except (NotImplementedError, ValueError) as error:
            unavailable[name] = why_not(error)
            continue
        layer.load_state_dict(master.state_dict())
        contenders.append(
            Contender(name, lambda layer=layer: flatten(layer(x)), list(layer.parameters()))
        )
    return contenders, x, unavailable
