"""The compiled engine's sweep: rnnkit.engine.reference.sweep with the whole loop in C++.

Same contract as the reference sweep (packed layout, one autograd.Function per layer and
direction, weights (w_ih, w_hh, b_ih, b_hh, w_out, b_out, *cell_params)). One call into the
cell's compiled library runs the forward: the input projection of all steps, the time loop with
its per-step GEMMs and the cell's row step. One call runs the backward: the sweep back through
time and every input and weight gradient. Python only allocates the buffers.
"""

from __future__ import annotations

import ctypes
import functools

import torch
from torch import Tensor

from ...cells.base import Cell
from ..probes import claim_slot
from ..reference import SweepSpec
from ..second_order import differentiable_backward
from .library import SweepArgs, library_for, unavailable

__all__ = ["PARALLEL_ROWS_FROM", "SweepPlan", "cannot_compile", "compiled_sweep"]

_DTYPES = (torch.float32, torch.float64)
# A step's rows run on all of torch's threads once the step has this many gate values
# (rows * G): below, waking the threads costs more than the rows (measured with rnnkit bench).
PARALLEL_ROWS_FROM = 1 << 13


def cannot_compile(cell: Cell, dtype: torch.dtype, device: torch.device) -> str | None:
    """Why the compiled engine cannot run a sweep of `cell` (None when it can)."""
    if cell.kernel is None:
        return f"no compiled kernel for {type(cell).__name__} (it defines no CellKernel)"
    if dtype not in _DTYPES:
        return f"compiled kernels run float32 and float64, not {dtype}"
    if device.type != "cpu":
        return f"compiled kernels run on the CPU, not {device.type}"
    return unavailable(cell.kernel)


@functools.lru_cache(maxsize=512)
def _packed_index(batch_sizes: tuple[int, ...]):
    """(sizes, offsets) of the packed layout as int64 arrays the library reads."""
    steps = len(batch_sizes)
    offsets, total = [], 0
    for n in batch_sizes:
        offsets.append(total)
        total += n
    return (ctypes.c_int64 * steps)(*batch_sizes), (ctypes.c_int64 * steps)(*offsets)


def _address(tensor: Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def _contiguous(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.detach().contiguous()


class SweepPlan:
    """One sweep's shapes, weights and the library call's fixed fields.

    Made per call by compiled_sweep, and kept by callers that run the same sweep again (a
    layer's inference path): `run(x, r_state, carried, outputs)` then sets four addresses and
    calls the library. The plan reads the weights where they are, so a kept plan sees in-place
    updates; `addresses` tells a keeper whether a weight was replaced (its memory moved).
    """

    def __init__(
        self,
        spec: SweepSpec,
        weights,
        rows: int,
        input_size: int,
        batch: int,
        recurrent_size: int,
        dtype: torch.dtype,
    ) -> None:
        cell = spec.cell
        w_ih, w_hh, b_ih, b_hh, w_out, b_out, *own = weights
        self.cell = cell.bind(tuple(own))
        self.library = library_for(cell.kernel)
        self.dtype = dtype
        self.N, self.I = rows, input_size
        self.B, self.R = batch, recurrent_size
        # w_ih None: the input x is the input projection X W_ih^T already (N, G)
        self.given = w_ih is None
        self.G = w_ih.shape[0] if w_ih is not None else input_size
        self.H = w_out.shape[1] if w_out is not None else self.R
        self.S = cell.saved_width(self.H, self.R)
        self.C = cell.num_carried * self.H
        self.weights = tuple(_contiguous(w) for w in (w_ih, w_hh, b_ih, b_hh, w_out, b_out))
        ordered = self.cell.kernel_params(tuple(own))
        self.params = tuple(_contiguous(p) for p in ordered)
        self.weight_shapes = tuple(None if w is None else w.shape for w in self.weights)
        self.param_shapes = tuple(None if p is None else p.shape for p in self.params)
        # where each kernel parameter sits among the cell's own (None for an absent one)
        positions = {id(p): i for i, p in enumerate(own)}
        self.param_index = tuple(None if p is None else positions[id(p)] for p in ordered)
        args = SweepArgs()
        sizes, offsets = _packed_index(spec.batch_sizes)
        self._keep = [sizes, offsets]  # the arrays args points into live as long as args
        args.steps, args.batch, args.input_size = len(spec.batch_sizes), self.B, self.I
        args.hidden, args.recurrent, args.gate_width = self.H, self.R, self.G
        args.saved_width, args.carried_width = self.S, self.C
        args.reverse, args.separate = int(spec.reverse), int(cell.separate_hidden)
        projection = cell.output_activation
        args.output_activation = projection.code if projection is not None else 0
        args.sizes, args.offsets = ctypes.addressof(sizes), ctypes.addressof(offsets)
        options = cell.kernel_options()
        if options:
            array = (ctypes.c_int32 * len(options))(*options)
            self._keep.append(array)
            args.options = ctypes.addressof(array)
        for name, tensor in zip(
            ("w_ih", "w_hh", "b_ih", "b_hh", "w_out", "b_out"), self.weights, strict=True
        ):
            setattr(args, name, _address(tensor))
        args.num_params = len(self.params)
        if self.params:
            pointers = (ctypes.c_void_p * len(self.params))(*map(_address, self.params))
            sizes_array = (ctypes.c_int64 * len(self.params))(
                *(p.numel() if p is not None else 0 for p in self.params)
            )
            self._keep += [pointers, sizes_array]
            args.params, args.param_sizes = (
                ctypes.addressof(pointers),
                ctypes.addressof(sizes_array),
            )
        args.parallel_rows_from = PARALLEL_ROWS_FROM
        args.gates_given = int(self.given)
        self.args = args
        self._args_ref = ctypes.byref(args)
        self._forward = self.library.forward_function(dtype)
        self._trained = False

    @property
    def addresses(self) -> tuple[int, ...]:
        """Where the plan reads each weight (0 for an absent one)."""
        return tuple(0 if t is None else t.data_ptr() for t in (*self.weights, *self.params))

    def release(self) -> None:
        """Drop the plan's references to the weights (autograd keeps them for backward)."""
        self.weights = self.params = ()

    def run_addresses(self, x: int, r_state: int, carried: int | None, outputs: int) -> None:
        """`run` on raw addresses (the buffers' data_ptr(), offsets included)."""
        args = self.args
        args.x, args.r_state, args.carried, args.outputs = x, r_state, carried, outputs
        if self._trained:
            args.gates = args.r_prev_all = args.saved = args.m_all = None
            self._trained = False
        self._forward(self._args_ref)

    def run(self, x: Tensor, r_state: Tensor, carried: Tensor | None, outputs: Tensor) -> None:
        """The forward without anything for backward, on contiguous buffers of the plan's
        shapes: x (N, I) in, r_state (B, R) and carried (B, C) advanced in place, outputs
        (N, R) written."""
        args = self.args
        args.x, args.r_state, args.outputs = x.data_ptr(), r_state.data_ptr(), outputs.data_ptr()
        args.carried = None if carried is None else carried.data_ptr()
        if self._trained:  # a plan a training call used holds its buffers' addresses
            args.gates = args.r_prev_all = args.saved = args.m_all = None
            self._trained = False
        self._forward(self._args_ref)

    def forward(self, data: Tensor, r0: Tensor, carried0, training: bool):
        """Run the forward; returns (outputs, r_final, carried_final, buffers for backward)."""
        args, new = self.args, data.new_empty
        x = data.detach().contiguous()
        r_state = r0.detach().clone(memory_format=torch.contiguous_format)
        if self.C:
            carried = torch.cat([c.detach() for c in carried0], 1) if carried0 else None
            carried = carried.contiguous() if len(carried0) > 1 else carried.clone()
        else:
            carried = None
        outputs = new((self.N, self.R))
        buffers = {}
        # given gates: the library adds the biases and activates them in place, in a copy
        gates = x.clone() if self.given else None
        if training:
            buffers = {
                "gates": gates if gates is not None else new((self.N, self.G)),
                "r_prev_all": new((self.N, self.R)),
                "saved": new((self.N, max(self.S, 1))),
            }
            if self.weights[4] is not None:
                buffers["m_all"] = new((self.N, self.H))
        args.x = x.data_ptr()
        args.r_state, args.carried, args.outputs = (
            r_state.data_ptr(),
            _address(carried),
            outputs.data_ptr(),
        )
        for name in ("gates", "r_prev_all", "saved", "m_all"):
            setattr(args, name, _address(buffers.get(name)))
        if gates is not None:
            args.gates = gates.data_ptr()
        self._trained = training
        self.library.forward(self.dtype, args)
        if carried is None:
            carried_final = ()
        elif len(carried0) == 1:
            carried_final = (carried,)
        else:
            carried_final = tuple(carried.split(self.H, 1))
        if not self.given:  # dW_ih reads X; given gates have no W_ih
            buffers["x"] = x
        return outputs, r_state, carried_final, buffers


class _CompiledSweep(torch.autograd.Function):
    """Forward: (spec, data, r0, *carried0, w_ih, w_hh, b_ih, b_hh, w_out, b_out, *params)
    -> (outputs (N, R), r_final (B, R), *carried_final), as reference._Sweep."""

    @staticmethod
    def forward(ctx, spec: SweepSpec, data, r0, *rest):
        k = spec.cell.num_carried
        plan = SweepPlan(spec, rest[k:], *data.shape, *r0.shape, data.dtype)
        outputs, r_final, carried_final, buffers = plan.forward(data, r0, rest[:k], True)
        ctx.plan = plan
        ctx.num_carried = k
        ctx.slot = claim_slot(spec.batch_sizes, spec.reverse)
        names = ("x", "gates", "r_prev_all", "saved", "m_all")
        ctx.buffer_names = [n for n in names if n in buffers]
        # Everything the library reads in backward, the weights too, so that an in-place change
        # before backward is caught by autograd's version check; the outputs as a saved output.
        tensors = [t for t in (*plan.weights, *plan.params) if t is not None]
        # and the inputs as given, for second derivatives only (rnnkit.engine.second_order)
        inputs = (data, r0, *rest)
        ctx.spec, ctx.num_inputs = spec, len(inputs)
        ctx.save_for_backward(outputs, *(buffers[n] for n in ctx.buffer_names), *tensors, *inputs)
        plan.release()
        return (outputs, r_final, *carried_final)

    @staticmethod
    def backward(ctx, grad_outputs, grad_r_final, *grad_carried_final):
        outputs, *saved = ctx.saved_tensors  # also checks that no input changed in place
        saved, inputs = saved[: -ctx.num_inputs], tuple(saved[-ctx.num_inputs :])
        if torch.is_grad_enabled():  # create_graph=True: a backward autograd can differentiate
            grads = (grad_outputs, grad_r_final, *grad_carried_final)
            return (None, *differentiable_backward(ctx.spec, inputs, grads))
        plan: SweepPlan = ctx.plan
        buffers = dict(zip(ctx.buffer_names, saved, strict=False))
        needs = ctx.needs_input_grad  # (spec, data, r0, *carried0, six weights, *own)
        k = ctx.num_carried
        need_w, need_own = needs[3 + k : 9 + k], needs[9 + k :]
        new = outputs.new_empty
        args = plan.args
        args.outputs = outputs.data_ptr()
        for name in ("x", "gates", "r_prev_all", "saved", "m_all"):
            setattr(args, name, _address(buffers.get(name)))
        grad_outputs = (
            torch.zeros_like(outputs) if grad_outputs is None else grad_outputs.contiguous()
        )
        grad_r = (
            outputs.new_zeros((plan.B, plan.R))
            if grad_r_final is None
            else grad_r_final.clone(memory_format=torch.contiguous_format)
        )
        grad_c = None
        if plan.C:
            parts = [
                g if g is not None else outputs.new_zeros((plan.B, plan.H))
                for g in grad_carried_final
            ]
            grad_c = (
                torch.cat(parts, 1)
                if len(parts) > 1
                else parts[0].clone(memory_format=torch.contiguous_format)
            )
        grad_gates = new((plan.N, plan.G))
        grad_hidden = new((plan.N, plan.G)) if plan.cell.separate_hidden else None
        grad_pre = new((plan.N, plan.R)) if plan.weight_shapes[4] is not None else None
        # given gates: dL/dX is dL/dGI itself, which the library writes into grad_gates
        grad_x = new((plan.N, plan.I)) if needs[1] and not plan.given else None
        grads = [
            new(shape) if need and shape is not None else None
            for need, shape in zip(need_w, plan.weight_shapes, strict=True)
        ]
        # the cell's own parameters: buffers in the kernel's order, returned in the cell's
        own_grads = [
            new(shape) if shape is not None and need_own[index] else None
            for shape, index in zip(plan.param_shapes, plan.param_index, strict=True)
        ]
        args.grad_outputs = grad_outputs.data_ptr()
        args.grad_r, args.grad_carried = grad_r.data_ptr(), _address(grad_c)
        args.grad_gates, args.grad_hidden = grad_gates.data_ptr(), _address(grad_hidden)
        args.grad_pre, args.grad_x = _address(grad_pre), _address(grad_x)
        (
            args.grad_w_ih,
            args.grad_w_hh,
            args.grad_b_ih,
            args.grad_b_hh,
            args.grad_w_out,
            args.grad_b_out,
        ) = map(_address, grads)
        pointers = None
        if own_grads:
            pointers = (ctypes.c_void_p * len(own_grads))(*map(_address, own_grads))
        args.grad_params = ctypes.addressof(pointers) if pointers is not None else None
        grad_r_all = new((plan.N, plan.R)) if ctx.slot is not None else None
        args.grad_r_all = _address(grad_r_all)
        plan.library.backward(plan.dtype, args)
        args.grad_r_all = None
        if ctx.slot is not None:
            ctx.slot.grad = grad_r_all
        in_cell_order: list[Tensor | None] = [None] * len(need_own)
        for grad, index in zip(own_grads, plan.param_index, strict=True):
            if index is not None:
                in_cell_order[index] = grad
        grad_carried = () if grad_c is None else tuple(grad_c.split(plan.H, 1))
        if plan.given and needs[1]:
            grad_x = grad_gates
        return (None, grad_x, grad_r, *grad_carried, *grads, *in_cell_order)


def compiled_sweep(
    spec: SweepSpec,
    data: Tensor,
    r0: Tensor,
    carried0: tuple[Tensor, ...],
    weights: tuple[Tensor | None, ...],
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """rnnkit.engine.reference.sweep on the cell's compiled kernel; raises NotImplementedError
    (with the reason) where the compiled engine cannot run it."""
    why_not = cannot_compile(spec.cell, data.dtype, data.device)
    if why_not is not None:
        raise NotImplementedError(f"the compiled engine cannot run this sweep: {why_not}")
    names = spec.cell.param_names
    if len(weights) != 6 + len(names):
        raise ValueError(
            f"weights must be the six engine weights and ({', '.join(names)}) for "
            f"{type(spec.cell).__name__}; got {len(weights)} entries"
        )
    if torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (data, r0, *carried0, *weights)
    ):
        outputs, r_final, *carried_final = _CompiledSweep.apply(spec, data, r0, *carried0, *weights)
        return outputs, r_final, tuple(carried_final)
    # Nothing to differentiate: no autograd node, no buffers for backward.
    plan = SweepPlan(spec, weights, *data.shape, *r0.shape, data.dtype)
    outputs, r_final, carried_final, _ = plan.forward(data, r0, carried0, False)
    return outputs, r_final, carried_final
