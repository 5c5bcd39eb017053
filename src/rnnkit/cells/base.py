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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import Tensor

from ..activations import Activation

__all__ = ["Cell", "StepBackward", "StepForward"]

# step forward returns (carried tuple, saved for backward); m_t is written into the given buffer
StepForward = tuple[tuple[Tensor, ...], Any]
# step backward returns (d_r_prev_direct or None, d_carried_prev tuple)
StepBackward = tuple[Tensor | None, tuple[Tensor, ...]]


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
    """

    num_gates: int = 1
    num_carried: int = 0
    separate_hidden: bool = False
    output_activation: Activation | None = None

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

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
