"""The contract between a cell and the engine.

A cell says what one time step does and nothing else: no loop over time, no stacking, no dispatch.
The engine (rnnkit.engine) owns everything that is the same for every recurrence:

    gi_t = W_ih x_t + b_ih                       one GEMM over all steps, before the loop
    gh_t = W_hh r_{t-1} + b_hh                   one GEMM per step (the recurrence)
    carried_t = cell.step(gi_t, gh_t, r_{t-1}, carried_{t-1}, m_t)   (the cell writes m_t)
    r_t = g(W_out m_t + b_out)                   only for cells with an output projection
                                                 (LSTM proj_size, Jordan's output layer)

`r_t` is the recurrent vector: the cell's output at step t and what W_hh multiplies at step t+1
(h for Elman, GRU and LSTM, y for Jordan). `carried` holds any further state the cell threads
through time without a weight (the LSTM cell state c). The engine never looks inside `saved`.

Backward, the engine hands the cell dL/dm_t and dL/dcarried_t and receives the gradients of the
pre-activations gi_t and gh_t (the engine turns them into dx, dr_{t-1} and the weight gradients
with GEMMs), any direct gradient to r_{t-1} that does not pass through W_hh (GRU's z * h term),
and dL/dcarried_{t-1}.

Shapes use n for the rows active at this step (n <= B with packed sequences), H for hidden_size,
G = num_gates * H for the pre-activation width, R for the recurrent vector's width.

Cells with parameters of their own (the layer-norm cells' gains and shifts) name them in
`param_names`; a sweep's weights are then (w_ih, w_hh, b_ih, b_hh, w_out, b_out, *cell_params),
the first six as for every cell (w_hh is None for cells whose recurrence has no matrix:
`recurrent_weight = False`). Four hooks, all no-ops for cells without parameters, serve them:

    cell = cell.bind(cell_params)                the cell for one sweep, holding its parameters
    saved_inputs = cell.prepare_inputs(GI)       once, on the input projection of all steps (N, G),
                                                 before the loop; may transform GI in place
    ... the steps, the backward sweep (step_backward writes dL/d of the transformed GI) ...
    grads = cell.finish_backward(prepared, dGI, dGH, saved_inputs)
                                                 after the sweep: maps dGI back through the
                                                 transform in place, returns the parameters'
                                                 gradients summed over all steps

The compiled engine (rnnkit.engine.compiled) runs the same recurrence from the cell's `kernel`:
C++ source, beside the reference step in the cell's own file, of one row's fused pointwise step
forward and backward (the contract is rnnkit/engine/compiled/engine.h). With it the cell states
`saved_width` (what its row forward keeps for backward beyond the gates, r_{t-1} and m_t),
`kernel_options` (integers the row functions read, such as an activation code) and
`kernel_params` (its own parameters in the fixed order the C++ reads them, None where absent).
A cell without a kernel runs on the reference engine only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from ..activations import Activation

__all__ = ["Cell", "CellKernel", "StepBackward", "StepForward", "affine"]


def affine(x: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor | float:
    """x W^T + b for the equations; 0 for an absent weight, no bias for an absent one."""
    if weight is None:
        return 0.0
    out = x @ weight.t()
    return out if bias is None else out + bias


# step forward returns (carried tuple, saved for backward); m_t is written into the given buffer
StepForward = tuple[tuple[Tensor, ...], Any]
# step backward returns (d_r_prev_direct or None, d_carried_prev tuple)
StepBackward = tuple[Tensor | None, tuple[Tensor, ...]]


@dataclass(frozen=True)
class CellKernel:
    """A cell's row step for the compiled engine: C++ `source` defining `struct <name>` with

        template <class T> static void forward(const rnnkit::Forward<T>& row);
        template <class T> static void backward(const rnnkit::Backward<T>& row);

    (rnnkit/engine/compiled/engine.h documents every field of a row, vecmath.h the activations).
    The engine compiles it once per source text into a library of its own and caches it."""

    name: str
    source: str


class Cell(ABC):
    """One recurrence step and its hand-derived backward step.

    Class attributes a cell sets:
        num_gates: weight_ih and weight_hh have num_gates * hidden_size rows.
        num_carried: how many weightless states the cell threads through time (LSTM: 1, c).
        separate_hidden: True when the step needs gh_t apart from gi_t (GRU's reset gate
            multiplies W_hn h + b_hn). Otherwise the engine folds b_hh into the input projection
            and passes the sum gi_t + gh_t as `gates`, which saves one add and one buffer per step.
        output_activation: g of the output projection r = g(W_out m + b_out), or None when the
            cell has no output projection and r_t = m_t.
        param_names: the cell's own parameters, in the order they follow the six engine
            weights (empty for the standard cells; may be set per instance in __init__).
        recurrent_weight: False when the recurrence has no matrix W_hh (the step reads r_{t-1}
            itself, elementwise): the engine then runs no per-step GEMM and w_hh is None.
        kernel: the compiled engine's row step (CellKernel), or None for reference only.
        engine_parameters: what a layer calls the engine weights this cell uses, by slot
            (w_ih, w_hh, b_ih, b_hh, w_out, b_out); a slot left out is None in every sweep.
            Biases exist only in layers built with bias=True, w_out/b_out only with a
            projection. rnnkit.Recurrent names layer k's parameter `{name}_l{k}[_reverse]`.
        state_names: the layer call's names for (r_0, *carried_0).
        chrono_gates: for the chrono initialization (rnnkit.initializers), pairs (gate
            index, sign): the gate whose bias keeps the state (+1) and the one that writes it
            (-1); empty for cells without such gates.
    """

    num_gates: int = 1
    num_carried: int = 0
    separate_hidden: bool = False
    output_activation: Activation | None = None
    param_names: tuple[str, ...] = ()
    recurrent_weight: bool = True
    kernel: CellKernel | None = None
    engine_parameters: dict[str, str] = {  # noqa: RUF012 (read-only by convention)
        "w_ih": "weight_ih",
        "w_hh": "weight_hh",
        "b_ih": "bias_ih",
        "b_hh": "bias_hh",
    }
    state_names: tuple[str, ...] = ("h_0",)
    chrono_gates: tuple[tuple[int, float], ...] = ()

    def equations(
        self,
        x: Tensor,
        r_prev: Tensor,
        carried: tuple[Tensor, ...],
        weights: tuple,
        probes: dict | None = None,
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The step as a textbook writes it, in plain differentiable torch ops (no in-place):
        (x_t (B, I), r_{t-1} (B, R), carried_{t-1}, weights) -> (m_t (B, H), carried_t), with
        weights (w_ih, w_hh, b_ih, b_hh, w_out, b_out, *own) as a sweep gets them. Given a dict
        `probes`, it also stores there the activations `probe_kinds` names. It defines
        the cell independently of the engines: the tests hold both engines to it, and the
        benchmarks time it as the loop a user would write by hand (rnnkit.baselines)."""
        raise NotImplementedError(f"{type(self).__name__} states no equations")

    def advance(
        self, x: Tensor, r_prev: Tensor, carried: tuple[Tensor, ...], weights: tuple
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One step of the recurrence through `equations`: (r_t, carried_t), where r_t is the
        output projection g(W_out m_t + b_out) for a cell that has one and m_t otherwise."""
        m, new_carried = self.equations(x, r_prev, carried, weights)
        projection = self.output_activation
        if projection is not None:
            m = projection.forward(F.linear(m, weights[4], weights[5]))
        return m, new_carried

    def probe_kinds(self) -> dict[str, str]:
        """The cell's probes: the activations its `equations` reports by name when given a dict
        (`equations(..., probes=d)` fills d[name] with a (B, H) tensor), each with its kind:
        "sigmoid" (a gate in (0, 1)), "tanh" (in (-1, 1)) or "relu" (>= 0). rnnkit.diagnostics
        reads them (gate_stats counts the saturated units, record keeps every step's values);
        the names are the cell's own, the engine knows none of them. Empty: no probes."""
        return {}

    def saved_width(self, hidden_size: int, recurrent_size: int) -> int:
        """How many values per row the kernel's forward writes to `saved` for its backward."""
        return 0

    def kernel_options(self) -> tuple[int, ...]:
        """The integers the kernel's row functions read from `options` (e.g. activation codes)."""
        return ()

    def kernel_params(self, params: tuple[Tensor, ...]) -> tuple[Tensor | None, ...]:
        """The cell's own parameters (param_names order) in the order the kernel reads them,
        None for one the cell was built without."""
        return tuple(params)

    @property
    def has_output_projection(self) -> bool:
        return self.output_activation is not None

    @abstractmethod
    def step(
        self,
        gates: Tensor,
        hidden_gates: Tensor | None,
        r_prev: Tensor,
        carried_prev: tuple[Tensor, ...],
        m_out: Tensor,
    ) -> StepForward:
        """One step forward.

        gates: (n, G) = gi_t, plus gh_t when not `separate_hidden`.
        hidden_gates: (n, G) = gh_t when `separate_hidden`, else None.
        r_prev: (n, R) the previous recurrent vector. carried_prev: the cell's own states.
        m_out: (n, H) where to write m_t (a row block of the engine's output buffer, so the
            step's result lands in place; it is not written again, so the cell may save it).
        `gates` and `hidden_gates` belong to this step: the cell may overwrite them (activate in
        place and save them). r_prev and carried_prev must not be modified.
        Returns the new carried states and what step_backward needs.
        """

    @abstractmethod
    def step_backward(
        self,
        grad_m: Tensor,
        grad_carried: tuple[Tensor, ...],
        saved: Any,
        grad_gates_out: Tensor,
        grad_hidden_gates_out: Tensor | None,
    ) -> StepBackward:
        """One step backward.

        grad_m: (n, H) dL/dm_t. grad_carried: dL/dcarried_t.
        Writes dL/dgi_t into grad_gates_out (n, G) and, for `separate_hidden` cells, dL/dgh_t
        into grad_hidden_gates_out (n, G); for the others dL/dgh_t equals dL/dgi_t.
        Returns the gradient reaching r_{t-1} other than through W_hh (or None; a fresh tensor
        the engine adds the W_hh path into) and dL/dcarried_{t-1}.
        """

    def prepare_backward(self, saved_steps: list) -> list:
        """Turn the per-step `saved` values (in forward visit order) into what step_backward
        reads, before the backward sweep starts. A cell overrides this to compute, for all steps
        in a few large ops, the factors that do not depend on the incoming gradient (the LSTM
        does); by default the saved values pass through unchanged."""
        return saved_steps

    def init_params(self, hidden_size: int, *, device=None, dtype=None) -> tuple[Tensor, ...]:
        """Fresh tensors for the cell's own parameters, in `param_names` order, holding their
        initial values (layers wrap them in nn.Parameter). Cells without parameters: ()."""
        return ()

    def bind(self, params: tuple[Tensor, ...]) -> Cell:
        """The cell for one sweep, holding the cell's own parameters (one tensor per
        `param_names` entry). A cell without parameters is its own bound cell."""
        if params:
            raise ValueError(f"{type(self).__name__} has no parameters; got {len(params)}")
        return self

    def prepare_inputs(self, gates_all: Tensor) -> Any:
        """Called once per sweep on the input projection of all steps, gates_all (N, G), before
        the loop. A cell may transform it in place (the layer-norm cells normalize each row, so
        the input side's normalization runs once over N rows instead of once per step); `step`
        then receives rows of the transformed values. A cell that transforms GI sets
        `separate_hidden`, so GI holds the input side alone (b_hh is not folded into it).
        Returns what finish_backward needs."""
        return None

    def finish_backward(
        self,
        prepared: list,
        grad_gates_all: Tensor,
        grad_hidden_all: Tensor,
        saved_inputs: Any,
    ) -> tuple[Tensor, ...]:
        """Called once after the backward sweep. `prepared` is prepare_backward's list, in
        forward visit order (reversed time for the reverse direction); grad_gates_all and
        grad_hidden_all are in packed layout (time order), like the prepare_inputs values.
        grad_gates_all (N, G) holds dL/d(transformed gi) as step_backward wrote it; the cell
        rewrites it in place into dL/d(gi) through the prepare_inputs transform (the engine
        then forms dx, dW_ih and db_ih from it).
        grad_hidden_all (N, G) is dL/dgh. Returns the gradients of the cell's own parameters,
        summed over all steps, in `param_names` order. Cells without parameters: ()."""
        return ()

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
