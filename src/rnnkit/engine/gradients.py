"""The GEMMs after a backward sweep: gradients of the input and of every weight, all steps at once.

Shared by the reference and the compiled engine, which differ in how they sweep, not in this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

__all__ = ["SweepGrads", "input_and_weight_grads"]


@dataclass(frozen=True)
class SweepGrads:
    """What the backward sweep produced, in packed layout (N rows, one per step and sequence).

    grad_gates: dL/dgi (N, G). grad_hidden: dL/dgh (N, G), the same tensor unless the cell keeps
    gh apart (separate_hidden). grad_pre: dL/d(pre-projection) (N, R) and m_all: m_t (N, H),
    for cells with an output projection, else None.
    """

    grad_gates: Tensor
    grad_hidden: Tensor
    separate: bool
    grad_pre: Tensor | None = None
    m_all: Tensor | None = None


def input_and_weight_grads(
    need_data: bool,
    need_w: Sequence[bool],
    data: Tensor,
    weights: Sequence[Tensor | None],
    grads: SweepGrads,
    recurrent_grad: Callable[[], Tensor],
) -> tuple[Tensor | None, ...]:
    """(dX, dW_ih, dW_hh, db_ih, db_hh, dW_out, db_out), each None when not needed.

    need_w: needs_input_grad of (w_ih, w_hh, b_ih, b_hh, w_out, b_out); weights: those six.
    recurrent_grad() forms dW_hh = dGH^T R_prev (the engines keep R_prev differently).
    """
    w_ih, _, b_ih, b_hh, w_out, b_out = weights[:6]
    grad_gates, grad_hidden = grads.grad_gates, grads.grad_hidden
    grad_data = None
    if need_data:  # (N, I); with w_ih None the data was X W_ih^T itself (N, G)
        grad_data = grad_gates @ w_ih if w_ih is not None else grad_gates
    grad_w_ih = grad_gates.t() @ data if w_ih is not None and need_w[0] else None
    grad_w_hh = recurrent_grad() if need_w[1] else None
    grad_b_ih = grad_gates.sum(0) if b_ih is not None and need_w[2] else None
    grad_b_hh = None
    if b_hh is not None and need_w[3]:
        # Folded cells saw b_ih + b_hh as one bias: the same gradient, summed once.
        grad_b_hh = grad_hidden.sum(0) if grads.separate or grad_b_ih is None else grad_b_ih.clone()
    grad_w_out = grad_b_out = None
    if w_out is not None:
        grad_w_out = grads.grad_pre.t() @ grads.m_all if need_w[4] else None
        grad_b_out = grads.grad_pre.sum(0) if b_out is not None and need_w[5] else None
    return grad_data, grad_w_ih, grad_w_hh, grad_b_ih, grad_b_hh, grad_w_out, grad_b_out
