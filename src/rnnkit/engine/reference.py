"""The reference engine: runs any cell over a sequence in plain torch ops, forward and backward.

One call sweeps one layer in one direction. The sequence arrives in packed layout, as torch's
PackedSequence holds it: `data` (N, I) is the time steps one after another, step t holding the
first `batch_sizes[t]` rows of the batch (sequences sorted longest first), N = sum(batch_sizes).
A padded batch is the special case batch_sizes = [B] * T, so one code path serves both.

Rows that are not active at a step keep their state: the new state is the step's rows followed
by the untouched rest. Forward in time, a sequence's state therefore stops changing after its last
step, which makes the final state the one torch returns; in reverse, a sequence starts from its
initial state at its own last step, because its row is not touched before then.

The forward pass hoists the input projection out of the loop (one GEMM), the backward pass
sweeps through time with the cells' hand-derived step backward and forms every weight gradient
as one GEMM after the sweep. Cells with parameters of their own (rnnkit.cells.base) get them after
the six engine weights, transform the input projection once before the loop and return their
parameters' gradients once after the sweep. No autograd runs inside; the whole sweep is one
torch.autograd.Function so autograd composes with everything around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..cells.base import Cell
from .gradients import SweepGrads, input_and_weight_grads
from .probes import claim_slot
from .second_order import differentiable_backward

__all__ = ["SweepSpec", "sweep"]


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep needs besides tensors: the cell, the time layout and the direction."""

    cell: Cell
    batch_sizes: tuple[int, ...]
    reverse: bool = False

    def visit_order(self) -> range:
        """Time indices in the order the forward pass visits them."""
        T = len(self.batch_sizes)
        return range(T - 1, -1, -1) if self.reverse else range(T)

    def blocks(self, tensor: Tensor | None) -> tuple[Tensor, ...] | None:
        """`tensor` (N, ...) in packed layout as one view per time step, made in one call."""
        return None if tensor is None else tensor.split(self.batch_sizes)


def _rows(tensors, n: int, batch: int):
    """The first n rows of each state (the states themselves when every row is active)."""
    return tuple(tensors) if n == batch else tuple(t[:n] for t in tensors)


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None, out: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, written into `out` when given."""
    if bias is None:
        return torch.mm(x, weight.t(), out=out) if out is not None else x @ weight.t()
    if out is not None:
        return torch.addmm(bias, x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t())


def _input_side(data: Tensor, w_ih: Tensor | None, bias: Tensor | None) -> Tensor:
    """GI = X W_ih^T + b for every step, in a new tensor the steps may use up in place; with
    w_ih None `data` already holds X W_ih^T (rnnkit.engine.lower_precision)."""
    if w_ih is not None:
        return _linear(data, w_ih, bias)
    return data + bias if bias is not None else data.clone()


def _merge_rows(new: Tensor, old: Tensor, n: int) -> Tensor:
    """The state after a step where only the first n rows were active (new has n rows)."""
    return new if n == old.shape[0] else torch.cat((new, old[n:]))


def _recurrent_weight_grad(grad_hidden: Tensor, outputs: Tensor, r0: Tensor, reverse: bool):
    """dW_hh = sum_t dgh_t^T r_{t-1} for a batch whose every step has all B rows: r_{t-1} is the
    previous step's output block (or r0), so two GEMMs replace a per-step copy of r_{t-1}."""
    B = r0.shape[0]
    if reverse:  # visited last block first: block j reads block j + 1, the last block reads r0
        return torch.addmm(grad_hidden[-B:].t() @ r0, grad_hidden[:-B].t(), outputs[B:])
    return torch.addmm(grad_hidden[:B].t() @ r0, grad_hidden[B:].t(), outputs[:-B])


class _Sweep(torch.autograd.Function):
    """Forward: (spec, data, r0, *carried0, w_ih, w_hh, b_ih, b_hh, w_out, b_out, *cell_params)
    -> (outputs (N, R), r_final (B, R), *carried_final). Absent biases and projection are None."""

    @staticmethod
    def forward(ctx, spec: SweepSpec, data, r0, *rest):
        k = spec.cell.num_carried
        carried0, (w_ih, w_hh, b_ih, b_hh, w_out, b_out) = rest[:k], rest[k : k + 6]
        cell_params = rest[k + 6 :]
        cell = spec.cell.bind(cell_params)
        separate = cell.separate_hidden
        projection = cell.output_activation
        uniform = len(set(spec.batch_sizes)) <= 1  # every step has all B rows

        # Input projection for all steps at once; b_hh joins it unless the cell needs gh alone.
        input_bias = b_ih
        if not separate and b_hh is not None:
            input_bias = b_hh if b_ih is None else b_ih + b_hh
        gates_all = _input_side(data, w_ih, input_bias)  # (N, G)
        saved_inputs = cell.prepare_inputs(gates_all)  # a no-op unless the cell transforms GI

        N, R = data.shape[0], r0.shape[1]
        outputs = data.new_empty((N, R))  # r_t for every step and row, packed layout
        m_all = data.new_empty((N, w_out.shape[1])) if projection else None  # (N, H)
        # With packed sequences r_{t-1} is not one block of `outputs`: keep a copy per step.
        r_prev_all = None if uniform else data.new_empty((N, R))
        # States are replaced, never written in place: cells keep views of them for backward.
        r, carried = r0, tuple(carried0)
        B = r0.shape[0]
        gate_blocks, out_blocks = spec.blocks(gates_all), spec.blocks(outputs)
        m_blocks = spec.blocks(m_all) if projection else out_blocks
        r_prev_blocks = spec.blocks(r_prev_all)
        saved = []
        for t in spec.visit_order():
            n = spec.batch_sizes[t]
            r_prev = r if n == B else r[:n]
            if r_prev_blocks is not None:
                r_prev_blocks[t].copy_(r_prev)
            if separate:
                gates = gate_blocks[t]
                hidden_gates = _linear(r_prev, w_hh, b_hh)  # (n, G)
            elif w_hh is not None:
                # gi_t + W_hh r_{t-1} in place: the block is this step's to use up
                gates = gate_blocks[t].addmm_(r_prev, w_hh.t())  # (n, G)
                hidden_gates = None
            else:  # an elementwise recurrence: the cell reads r_{t-1} itself
                gates, hidden_gates = gate_blocks[t], None
            out, m = out_blocks[t], m_blocks[t]
            new_carried, step_saved = cell.step(
                gates, hidden_gates, r_prev, _rows(carried, n, B), m
            )
            if projection:
                _linear(m, w_out, b_out, out=out)
                if not projection.is_identity:
                    projection.forward(out, out=out)
            saved.append(step_saved)
            r = _merge_rows(out, r, n)
            carried = tuple(
                _merge_rows(c, old, n) for c, old in zip(new_carried, carried, strict=True)
            )

        ctx.spec = spec
        ctx.slot = claim_slot(spec.batch_sizes, spec.reverse)
        ctx.uniform = uniform
        ctx.step_saved = saved
        ctx.saved_inputs = saved_inputs
        ctx.carried_shapes = [c.shape for c in carried0]
        ctx.save_for_backward(
            data,
            r0,
            r_prev_all,
            outputs,
            m_all,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            w_out,
            b_out,
            *cell_params,
            *carried0,  # for second derivatives only (rnnkit.engine.second_order)
        )
        # Copies: the finals may be views of what backward reads, and callers may edit them.
        # A view of outputs, not outputs itself: the per-step saved values are views of it, and
        # had ctx reached the returned tensor (which holds this node, which holds ctx) the cycle
        # would keep every step's buffers alive until the garbage collector runs.
        return (outputs.view_as(outputs), r.clone(), *(c.clone() for c in carried))

    @staticmethod
    def backward(ctx, grad_outputs, grad_r_final, *grad_carried_final):
        spec: SweepSpec = ctx.spec
        k = spec.cell.num_carried
        (data, r0, r_prev_all, outputs, m_all, w_ih, w_hh, b_ih, b_hh, w_out, b_out, *params) = (
            ctx.saved_tensors
        )
        params, carried0 = params[: len(params) - k], params[len(params) - k :]
        if torch.is_grad_enabled():  # create_graph=True: a backward autograd can differentiate
            weights = (w_ih, w_hh, b_ih, b_hh, w_out, b_out, *params)
            grads = (grad_outputs, grad_r_final, *grad_carried_final)
            return (None, *differentiable_backward(spec, (data, r0, *carried0, *weights), grads))
        cell = spec.cell.bind(tuple(params))
        separate = cell.separate_hidden
        projection = cell.output_activation
        N = data.shape[0]

        if grad_outputs is None:
            grad_outputs = torch.zeros_like(outputs)
        grad_r = grad_r_final if grad_r_final is not None else torch.zeros_like(r0)
        grad_carried = tuple(
            g if g is not None else outputs.new_zeros(shape)
            for g, shape in zip(grad_carried_final, ctx.carried_shapes, strict=True)
        )

        G = w_ih.shape[0] if w_ih is not None else data.shape[1]
        grad_gates_all = data.new_empty((N, G))  # dL/dgi for every step
        grad_hidden_all = data.new_empty((N, G)) if separate else grad_gates_all  # dL/dgh
        grad_pre_out_all = data.new_empty((N, w_out.shape[0])) if projection else None

        B = r0.shape[0]
        grad_out_blocks, out_blocks = spec.blocks(grad_outputs), spec.blocks(outputs)
        grad_gate_blocks = spec.blocks(grad_gates_all)
        grad_hidden_blocks = spec.blocks(grad_hidden_all)
        grad_pre_blocks = spec.blocks(grad_pre_out_all)
        grad_r_all = data.new_empty((N, r0.shape[1])) if ctx.slot is not None else None
        grad_r_blocks = spec.blocks(grad_r_all)
        prepared = cell.prepare_backward(ctx.step_saved)
        for t, step_saved in zip(reversed(spec.visit_order()), reversed(prepared), strict=True):
            n = spec.batch_sizes[t]
            grad_r_rows = grad_r if n == B else grad_r[:n]
            if projection:
                # dL/dr_t, then through r = g(pre): dL/dpre, kept for dW_out
                grad_pre = torch.add(grad_out_blocks[t], grad_r_rows, out=grad_pre_blocks[t])
                if grad_r_blocks is not None:
                    grad_r_blocks[t].copy_(grad_pre)  # dL/dr_t, before r = g(pre)
                if not projection.is_identity:
                    projection.backward(grad_pre, out_blocks[t], out=grad_pre)
                grad_m = grad_pre @ w_out  # (n, H)
            else:
                grad_m = grad_out_blocks[t] + grad_r_rows  # (n, R) dL/dr_t
                if grad_r_blocks is not None:
                    grad_r_blocks[t].copy_(grad_m)
            grad_r_direct, grad_carried_prev = cell.step_backward(
                grad_m,
                _rows(grad_carried, n, B),
                step_saved,
                grad_gate_blocks[t],
                grad_hidden_blocks[t] if separate else None,
            )
            recurrent_grad = grad_hidden_blocks[t]
            if w_hh is None:
                new_grad_r = grad_r_direct if grad_r_direct is not None else grad_r_rows * 0
            elif grad_r_direct is None:
                new_grad_r = torch.mm(recurrent_grad, w_hh)
            else:
                new_grad_r = grad_r_direct.addmm_(recurrent_grad, w_hh)
            grad_r = _merge_rows(new_grad_r, grad_r, n)
            grad_carried = tuple(
                _merge_rows(g, old, n)
                for g, old in zip(grad_carried_prev, grad_carried, strict=True)
            )

        if ctx.slot is not None:
            ctx.slot.grad = grad_r_all
        # The cell's own parameters, and dGI back through its input transform (if any).
        grad_params = cell.finish_backward(
            prepared, grad_gates_all, grad_hidden_all, ctx.saved_inputs
        )

        # Input and weight gradients as single GEMMs over all steps.
        needs = ctx.needs_input_grad  # (spec, data, r0, *carried0, w_ih, w_hh, b_ih, ...)
        need_w = needs[3 + cell.num_carried :]

        def recurrent_grad() -> Tensor:
            if ctx.uniform:
                return _recurrent_weight_grad(grad_hidden_all, outputs, r0, spec.reverse)
            return grad_hidden_all.t() @ r_prev_all

        sweep_grads = SweepGrads(grad_gates_all, grad_hidden_all, separate, grad_pre_out_all, m_all)
        grad_data, *weight_grads = input_and_weight_grads(
            needs[1],
            need_w,
            data,
            (w_ih, w_hh, b_ih, b_hh, w_out, b_out),
            sweep_grads,
            recurrent_grad,
        )
        return (
            None,
            grad_data,
            grad_r,
            *grad_carried,
            *weight_grads,
            *(g if need else None for g, need in zip(grad_params, need_w[6:], strict=True)),
        )


def sweep(
    spec: SweepSpec,
    data: Tensor,
    r0: Tensor,
    carried0: tuple[Tensor, ...],
    weights: tuple[Tensor | None, ...],
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """Run `spec.cell` over the packed sequence `data` (N, I) from the states r0 (B, R) and
    carried0, with weights (w_ih, w_hh, b_ih, b_hh, w_out, b_out, *cell_params): the cell's own
    parameters, one per `spec.cell.param_names` entry, follow the six engine weights. With
    w_ih None, `data` (N, G) is the input projection X W_ih^T already made.

    Returns the outputs (N, R) in packed layout, the final recurrent vector (B, R) and the final
    carried states.
    """
    names = spec.cell.param_names
    if len(weights) != 6 + len(names):
        own = "".join(f", {name}" for name in names)
        raise ValueError(
            f"weights must be (w_ih, w_hh, b_ih, b_hh, w_out, b_out{own}) for "
            f"{type(spec.cell).__name__}; got {len(weights)} entries"
        )
    outputs, r_final, *carried_final = _Sweep.apply(spec, data, r0, *carried0, *weights)
    return outputs, r_final, tuple(carried_final)
