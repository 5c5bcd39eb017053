"""rnnkit.Recurrent: any cell as a layer.

`Recurrent(cell, input_size, hidden_size, ...)` gives a cell (rnnkit.cells) everything a layer
needs, the same for every recurrence: its parameters per layer and direction, stacking with
dropout between layers, bidirection, padded / batch_first / unbatched / PackedSequence input,
`lengths=`, initial states, the choice of backend per call (`explain()` says which ran and why),
and the streaming API (`step`, `stream`). The built-in layers (rnnkit.RNN, LSTM, GRU, JordanRNN,
LayerNormLSTM, LayerNormGRU, IndRNN, MinGRU) are thin subclasses.

Shapes: T time steps, B batch, I input_size, H hidden_size, D = 2 if bidirectional else 1,
L num_layers, R the recurrent width (H, or the projection width for a cell with an output
projection: LSTM's proj_size, Jordan's output_size), G = num_gates * H.

Parameters of layer k (suffix `_reverse` for the backward direction), named by the cell's
`engine_parameters`: w_ih (G, I_k), w_hh (G, R), b_ih (G), b_hh (G) (bias=True only), w_out
(R, H) and b_out (R) (with a projection), then the cell's own parameters (param_names, shapes
from init_params). The engine weights start uniform in ±1/sqrt(H) (torch.nn's init), the cell's
own parameters at the cell's init.

A call runs one of three ways, all with the same results:
- inference (nothing needs gradients) on the compiled engine, padded input, one direction: the
  fast path, one library call per layer on plans kept between calls (streaming is this path);
- torch's own kernel (`native`), for the layers torch has;
- rnnkit.engine.run_stack with the compiled or the reference sweep, for everything else.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from .._checks import (
    autocast_enabled,
    check_backend,
    check_bool,
    check_dropout,
    check_positive_int,
    is_int,
)
from ..cells.base import Cell
from ..engine import run_stack, sweep
from ..engine.compiled import SweepPlan, cannot_compile, compiled_sweep
from ..engine.custom_ops import cell_key, library_sweep, onnx_translation_registered
from ..engine.lower_precision import lowering, projected_sweep
from ..engine.probes import claim_slot
from ..engine.reference import SweepSpec
from ..engine.traced_loop import traced_sweep
from .calls import finish_call, prepare_call
from .dispatch import CallShape, Choice, NativeKernel, choose_backend, explicit_backend

__all__ = ["Recurrent"]

_FAST_DTYPES = (torch.float32, torch.float64)
SLOTS = ("w_ih", "w_hh", "b_ih", "b_hh", "w_out", "b_out")
# The order a layer registers its engine parameters (weights, then biases); JordanRNN's and the
# layer-norm layers' state_dict order before the generic layer existed.
_REGISTRATION_ORDER = ("w_ih", "w_hh", "w_out", "b_ih", "b_hh", "b_out")
# what explain() says of a traced call of a cell torch has no kernel for
TRACED_LOOP_REASON = (
    "torch.jit.trace: each sweep is recorded as a TorchScript loop over time whose body is the "
    "cell's traced step (rnnkit.engine.traced_loop), right for any batch and length"
)
# Attributes a pickle leaves out (rebuilt on use), so that torch.load(weights_only=True) meets
# nothing but tensors and plain values.
_TRANSIENT = ("_cell_instance", "_plans", "_last_choice", "_fast_ok")


def check_common(
    owner, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, backend
) -> None:
    """The constructor arguments every layer takes, checked with one-line errors."""
    check_positive_int(owner, "input_size", input_size)
    check_positive_int(owner, "hidden_size", hidden_size)
    check_positive_int(owner, "num_layers", num_layers)
    check_bool(owner, "bias", bias)
    check_bool(owner, "batch_first", batch_first)
    check_bool(owner, "bidirectional", bidirectional)
    check_dropout(owner, dropout)
    check_backend(owner, backend)


class Recurrent(nn.Module):
    """Any cell as a layer (module docstring). Call: (input, hx=None, lengths=None) ->
    (output (T, B, D*R), final states (L*D, B, ·)), as torch.nn.LSTM for a cell that carries a
    state (hx and the finals are then tuples (r, *carried)), as torch.nn.RNN otherwise.

    cell: an rnnkit.cells.Cell instance (a user's own cell too: see docs/cells.md).
    projection_size: the width of the cell's output projection r = g(W_out m + b_out), for a
        cell that has one (cell.output_activation is not None); 0 otherwise.
    scan: run padded batches by the parallel scan over time (rnnkit.engine.scan), for a cell
        whose recurrence is linear in h (it defines `linear_recurrence`, as MinGRUCell does);
        packed input and lengths= then run the sequential engines, and explain() says so.
    backend: "auto" (per call, the fastest that serves it), "compiled", "reference", or
        "native" for the layers torch has a kernel for.
    """

    # torch's kernel for this layer, or None (the torch.nn subclasses set it)
    native_kernel: NativeKernel | None = None
    # whether torch.jit.trace, torch.compile and torch.export record torch's own kernel for it
    traces_as_torch_kernel = False

    def __init__(
        self,
        cell: Cell,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        backend: str = "auto",
        *,
        projection_size: int = 0,
        scan: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        owner = type(self).__name__
        if not isinstance(cell, Cell):
            raise TypeError(
                f"{owner}: cell must be an rnnkit.cells.Cell instance (e.g. "
                f"rnnkit.cells.LSTMCell()); got {type(cell).__name__}"
            )
        check_common(
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
        _check_projection(owner, cell, projection_size)
        _check_scan(owner, cell, scan)
        super().__init__()
        self.scan = scan
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.projection_size = projection_size
        self._cell_instance = cell
        self._register_cell()
        factory = {"device": device, "dtype": dtype}
        for layer in range(num_layers):
            for direction in range(2 if bidirectional else 1):
                for name, value in self._parameters_of(cell, layer, direction, factory):
                    self.register_parameter(name, nn.Parameter(value))
        self.reset_parameters()
        self.backend = backend

    # ---- the cell and its parameters --------------------------------------------------------

    @property
    def cell(self) -> Cell:
        """The layer's cell (the recurrence each sweep runs)."""
        cell = self.__dict__.get("_cell_instance")
        if cell is None:
            cell = self._make_cell()
            self.__dict__["_cell_instance"] = cell
        return cell

    def _register_cell(self) -> None:
        """Name the cell for the rnnkit::sweep operator (torch.compile and torch.export run the
        layer through it), outside any trace: when built and when unpickled."""
        key = self.__dict__.get("_library_key")
        self.__dict__["_library_key"] = cell_key(self.cell, key)

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        self._register_cell()

    def _make_cell(self) -> Cell:
        """The cell rebuilt from the layer's own attributes (after unpickling). The built-in
        layers override this, so their pickles hold no cell; a layer made from a user's cell
        keeps the cell itself in its pickle."""
        raise RuntimeError(f"{type(self).__name__}: the layer lost its cell")

    @property
    def recurrent_size(self) -> int:
        """R: the width of the fed-back vector r (the projection's, or H)."""
        return self.projection_size or self.hidden_size

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.cell.state_names

    def state_sizes(self) -> tuple[int, ...]:
        return (self.recurrent_size,) + (self.hidden_size,) * self.cell.num_carried

    def reference_weight(self) -> Tensor:
        return next(iter(self.parameters()))

    @staticmethod
    def _suffix(layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction == 1 else "")

    def _layer_input_size(self, layer: int) -> int:
        directions = 2 if self.bidirectional else 1
        return self.input_size if layer == 0 else self.recurrent_size * directions

    def _parameters_of(self, cell: Cell, layer: int, direction: int, factory):
        """(name, fresh tensor) of every parameter of one layer and direction."""
        H, R, P = self.hidden_size, self.recurrent_size, self.projection_size
        G = cell.num_gates * H
        shapes = {
            "w_ih": (G, self._layer_input_size(layer)),
            "w_hh": (G, R),
            "w_out": (P, H),
            "b_ih": (G,),
            "b_hh": (G,),
            "b_out": (P,),
        }
        suffix = self._suffix(layer, direction)
        for slot in _REGISTRATION_ORDER:
            name = cell.engine_parameters.get(slot)
            if name is None or (slot.startswith("b_") and not self.bias):
                continue
            if slot in ("w_out", "b_out") and not P:
                continue
            if slot == "w_hh" and not cell.recurrent_weight:
                continue
            yield name + suffix, torch.empty(shapes[slot], **factory)
        for name, value in zip(cell.param_names, cell.init_params(H, **factory), strict=True):
            yield name + suffix, value

    def reset_parameters(self) -> None:
        """torch.nn's init for the engine weights (uniform in ±1/sqrt(H), in registration
        order), the cell's own init for its parameters."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        cell = self.__dict__.get("_cell_instance")
        own = set()
        if cell is not None and cell.param_names:
            for layer in range(self.num_layers):
                for direction in range(2 if self.bidirectional else 1):
                    suffix = self._suffix(layer, direction)
                    reference = self._parameters[next(iter(self._parameters))]
                    initial = cell.init_params(
                        self.hidden_size, device=reference.device, dtype=reference.dtype
                    )
                    for name, value in zip(cell.param_names, initial, strict=True):
                        own.add(name + suffix)
                        with torch.no_grad():
                            self._parameters[name + suffix].copy_(value)
        for name, weight in self.named_parameters():
            if name not in own:
                nn.init.uniform_(weight, -bound, bound)

    def _weights_for(self, layer: int, direction: int) -> tuple[Tensor | None, ...]:
        """(w_ih, w_hh, b_ih, b_hh, w_out, b_out, *cell parameters) of one sweep."""
        suffix = self._suffix(layer, direction)
        cell = self.cell
        parameters = self._parameters
        engine = tuple(
            parameters.get(cell.engine_parameters[slot] + suffix)
            if slot in cell.engine_parameters
            else None
            for slot in SLOTS
        )
        return engine + tuple(parameters[name + suffix] for name in cell.param_names)

    # ---- backend choice ---------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        owner = type(self).__name__
        check_backend(owner, value)
        if value == "native" and self.native_kernel is None:
            raise ValueError(
                f"{owner}: backend='native' is not available, torch has no kernel "
                "for this cell; use backend='auto', 'compiled' or 'reference'"
            )
        if value == "compiled":
            explicit_backend(owner, value, self.cell, self._shape(1, 1, self.reference_weight()))
        self._backend = value
        self._forget_choices()

    def _forget_choices(self) -> None:
        self.__dict__["_last_choice"] = None
        self.__dict__["_fast_ok"] = {}

    def _grad_needed(self, like: Tensor, hx) -> bool:
        if not torch.is_grad_enabled():
            return False
        states = hx if isinstance(hx, (tuple, list)) else (hx,)
        return (
            like.requires_grad
            or any(isinstance(s, Tensor) and s.requires_grad for s in states)
            or any(p.requires_grad for p in self._parameters.values())
        )

    def _shape(self, batch: int, steps: int, like: Tensor, hx=None) -> CallShape:
        autocast = like.device.type == "cpu" and autocast_enabled(like.device)
        return CallShape(
            batch=batch,
            steps=steps,
            hidden=self.hidden_size,
            # under autocast the input may be in its lower precision; the weights' dtype is
            # what an engine that ignores autocast computes in
            dtype=self.reference_weight().dtype if autocast else like.dtype,
            device=like.device,
            grad=self._grad_needed(like, hx),
            autocast=autocast,
        )

    def _choose(self, shape: CallShape) -> Choice:
        if self._backend == "auto":
            return choose_backend(self.cell, self.native_kernel, shape)
        return explicit_backend(type(self).__name__, self._backend, self.cell, shape)

    @property
    def resolved_backend(self) -> str:
        """The backend the last call ran (before any call: what a training call of batch 32 and
        35 steps in the layer's dtype would run)."""
        choice = self.__dict__.get("_last_choice")
        if choice is not None:
            return choice.backend
        return self._choose(self._shape(32, 35, self.reference_weight())).backend

    def explain(self) -> str:
        """Which backend ran in the last call (or would run, before any call) and why."""
        choice = self.__dict__.get("_last_choice")
        when = "last call"
        if choice is None:
            when = "a call of batch 32, 35 steps (no call yet)"
            choice = self._choose(self._shape(32, 35, self.reference_weight()))
        return f"backend={self._backend!r} -> {choice.backend!r} for {when}: {choice.reason}"

    # ---- the call ---------------------------------------------------------------------------

    def forward(self, input, hx=None, lengths=None):
        """(input, hx=None, lengths=None) -> (output, final states). `lengths` (B,) makes a
        padded batch variable-length (rnnkit.layers.lengths)."""
        return self._call(input, hx, lengths)

    def _call(self, input, hx, lengths, projection: torch.dtype | None = None):
        """The call; `projection` is the dtype each sweep's input projection multiplies in
        when autocast asked for a lower one (rnnkit.engine.lower_precision)."""
        if torch.jit.is_tracing():
            return self._traced_forward(input, hx, lengths)
        if torch.compiler.is_compiling() and lengths is None:
            # torch's ONNX translation of its own kernels fixes the time dimension; once
            # rnnkit.export registered the operator's, every layer goes as rnnkit::sweep
            as_operator = torch.onnx.is_in_onnx_export() and onnx_translation_registered()
            if self.traces_as_torch_kernel and not as_operator:
                # torch.compile and torch.export record torch's kernel as one operator
                return self._traced_forward(input, hx, None)
            # (under torch.export the input is a FakeTensor: isinstance, not type)
            if isinstance(input, Tensor) and not self.__dict__.get("scan", False):
                # the other cells' sweeps as rnnkit::sweep operators: rnnkit's engines would
                # break the graph (the compiled one) or unroll into it (the reference)
                return self._padded_forward(input, hx, library_sweep(self.__dict__["_library_key"]))
        scan = self.__dict__.get("scan", False)
        if lengths is None and type(input) is Tensor and not scan and projection is None:
            result = self._fast_forward(input, hx)
            if result is not None:
                return result
        call = prepare_call(self, input, hx, lengths)
        if scan and call.packed is None and call.padded_steps is None:
            return self._scan_forward(call)
        shape = self._shape(call.batch, call.steps, call.data, hx)
        choice = self._choose(shape)
        if scan:
            choice = Choice(
                choice.backend,
                f"scan=True runs padded batches only; this packed call ran the sequential "
                f"sweep: {choice.reason}",
            )
        self.__dict__["_last_choice"] = choice
        if choice.backend == "native":
            return self._native_forward(call.given, hx, call)
        if shape.autocast:  # rnnkit.engine.lower_precision
            lower, how = lowering(shape.dtype, shape.device)
            result = self._without_autocast(input, hx, lengths, lower)
            self.__dict__["_last_choice"] = Choice(choice.backend, f"{choice.reason}; {how}")
            return result
        sweep_fn = compiled_sweep if choice.backend == "compiled" else sweep
        if projection is not None:
            sweep_fn = projected_sweep(sweep_fn, projection)
        output, finals = run_stack(
            self.cell,
            self._weights_for,
            call.data,
            call.batch_sizes,
            call.states,
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            dropout=float(self.dropout),
            training=self.training,
            sweep_fn=sweep_fn,
        )
        return finish_call(call, output, finals)

    def _padded_forward(self, input, hx, sweep_fn):
        """A padded call with each sweep run by `sweep_fn` on (T * B, I) rows: the
        rnnkit::sweep operator for torch.compile and torch.export (rnnkit.engine.custom_ops),
        a TorchScript loop under a trace (rnnkit.engine.traced_loop)."""
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        T, B = x.shape[0], x.shape[1]
        L, D = self.num_layers, 2 if self.bidirectional else 1
        if hx is None:
            states = tuple(x.new_zeros(L * D, B, width) for width in self.state_sizes())
        else:
            states = tuple(hx) if isinstance(hx, (tuple, list)) else (hx,)
            if not batched:
                states = tuple(s.unsqueeze(1) for s in states)
        output, finals = run_stack(
            self.cell,
            self._weights_for,
            x.reshape(T * B, x.shape[2]),
            # the padded sweeps read only the direction: a (B,) * T tuple would fix an
            # exported graph's length and batch
            (),
            states,
            num_layers=L,
            bidirectional=self.bidirectional,
            dropout=float(self.dropout),
            training=self.training,
            sweep_fn=sweep_fn,
        )
        output = output.view(T, B, output.shape[1])
        if not batched:
            output, finals = output.squeeze(1), tuple(f.squeeze(1) for f in finals)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (finals if len(finals) > 1 else finals[0])

    def _traced_forward(self, input, hx, lengths):
        """Under torch.jit.trace (and the legacy ONNX exporter, which traces) each sweep is a
        TorchScript loop over time (rnnkit.engine.traced_loop): rnnkit's engines are not
        recorded as what they are (the compiled sweep runs outside torch's operators, so the
        trace would replay this call's output as a constant; the reference loop would be
        unrolled to this call's length). Layers torch has a kernel for override this to run it."""
        owner = type(self).__name__
        if lengths is not None or isinstance(input, PackedSequence):
            raise RuntimeError(
                f"{owner}: torch.jit.trace cannot record lengths= or a packed batch (the batch "
                "is packed in Python, so the trace would keep this call's lengths); trace "
                "padded calls, or run the layer eagerly for batches of varying lengths"
            )
        self.__dict__["_last_choice"] = Choice("traced loop", TRACED_LOOP_REASON)
        return self._padded_forward(input, hx, traced_sweep)

    def _scan_forward(self, call):
        """Every layer and direction by the parallel scan of the cell's linear recurrence."""
        from ..engine.compiled.library import library_for
        from ..engine.scan import linear_scan

        T, B = call.steps, call.batch
        cell = self.cell
        why_not = cannot_compile(cell, call.data.dtype, call.data.device)
        library = library_for(cell.kernel) if why_not is None else None
        self.__dict__["_last_choice"] = (
            Choice("scan", "scan=True: the compiled engine's linear scan (rnnkit.engine.scan)")
            if library is not None
            else Choice(
                "scan",
                "scan=True: the doubling scan in torch ops, differentiated by autograd "
                f"(rnnkit.engine.scan; not compiled: {why_not})",
            )
        )
        directions = 2 if self.bidirectional else 1
        x = call.data.view(T, B, -1)
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                w_ih, _, b_ih = self._weights_for(layer, direction)[:3]
                gates = (
                    x @ w_ih.t()
                    if b_ih is None
                    else torch.addmm(b_ih, x.reshape(T * B, -1), w_ih.t()).view(T, B, -1)
                )
                a, b = cell.linear_recurrence(gates)
                if direction == 1:
                    a, b = a.flip(0), b.flip(0)
                _report_scan_gradient(b, direction == 1)
                h = linear_scan(a, b, call.states[0][index], library)
                finals.append(h[-1])
                outputs.append(h.flip(0) if direction == 1 else h)
            x = outputs[0] if directions == 1 else torch.cat(outputs, dim=2)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = torch.nn.functional.dropout(x, p=self.dropout, training=True)
        return finish_call(call, x.reshape(T * B, -1), (torch.stack(finals),))

    def _native_forward(self, input, hx, call):
        raise NotImplementedError(f"{type(self).__name__}: torch has no kernel for this layer")

    def _without_autocast(self, input, hx, lengths, projection):
        """The call in the weights' dtype, as autocast runs the ops it does not cover, but for
        the input projections in `projection` when given."""
        dtype = self.reference_weight().dtype
        if isinstance(hx, (tuple, list)):
            hx = tuple(state.to(dtype) for state in hx)
        elif hx is not None:
            hx = hx.to(dtype)
        if isinstance(input, PackedSequence):
            input = input._replace(data=input.data.to(dtype))
        else:
            input = input.to(dtype)
        with torch.autocast("cpu", enabled=False):
            return self._call(input, hx, lengths, projection)

    # ---- the fast path: inference on kept plans ---------------------------------------------

    def _fast_forward(self, input: Tensor, hx):
        """The call on the compiled engine's kept plans when nothing needs gradients and the
        input is padded and one-directional; None when it does not apply (the general path
        then checks the call and says what is wrong, if anything)."""
        if self.bidirectional or (self.training and self.dropout > 0 and self.num_layers > 1):
            return None
        batched = input.dim() == 3
        if not batched and input.dim() != 2:
            return None
        if self._grad_needed(input, hx) or torch.is_autocast_enabled("cpu"):
            return None
        if self.batch_first and batched:
            batch, steps = input.shape[0], input.shape[1]
        elif batched:
            steps, batch = input.shape[0], input.shape[1]
        else:
            steps, batch = input.shape[0], 1
        if steps == 0 or input.shape[-1] != self.input_size:
            return None
        states = self._fast_states(hx, batch, batched, input)
        if states is False:
            return None
        plans = self._fast_plans(batch, steps, input)
        if plans is None:
            return None
        # Addresses, not views: a streaming call is a few microseconds of work, and every torch
        # op on the way (a view, an index) costs about one.
        if self.batch_first and batched and steps > 1:
            input = input.transpose(0, 1).contiguous()
        elif not input.is_contiguous():
            input = input.contiguous()
        r_state, carried = states
        R = self.recurrent_size
        out = input.new_empty((steps, batch, R))
        x_address = input.data_ptr()
        r_address = r_state.data_ptr()
        c_address = None if carried is None else carried.data_ptr()
        r_stride = batch * R * r_state.element_size()
        c_stride = 0 if carried is None else carried.stride(0) * carried.element_size()
        last = len(plans) - 1
        for layer, plan in enumerate(plans):
            target = out if layer == last else input.new_empty((steps, batch, R))
            out_address = target.data_ptr()
            plan.run_addresses(
                x_address,
                r_address + layer * r_stride,
                None if c_address is None else c_address + layer * c_stride,
                out_address,
            )
            x_address, keep = out_address, target  # keep: the buffer the next layer reads
        del keep
        output = out
        if carried is None:
            finals = (r_state,)
        elif self.cell.num_carried == 1:
            finals = (r_state, carried)
        else:
            finals = (r_state, *carried.split(self.hidden_size, 2))
        if not batched:
            output, finals = output.view(steps, R), tuple(f.squeeze(1) for f in finals)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (finals if len(finals) > 1 else finals[0])

    def _fast_states(self, hx, batch: int, batched: bool, like: Tensor):
        """Fresh (r (L, B, R), carried (L, B, C) or None) holding hx, or False when hx is not
        what this call needs (the general path then names the problem). A streaming call
        spends most of its Python time here, so the common cases take no detour."""
        L = self.num_layers
        R, H, k = self.recurrent_size, self.hidden_size, self.cell.num_carried
        if hx is None:
            new = like.new_zeros
            return new((L, batch, R)), (new((L, batch, k * H)) if k else None)
        states = hx if type(hx) is tuple else tuple(hx) if isinstance(hx, list) else (hx,)
        if len(states) != 1 + k:
            return False
        lead = (L, batch) if batched else (L,)
        dtype, device = like.dtype, like.device
        for state, width in zip(states, (R,) + (H,) * k, strict=True):
            if not (
                type(state) is Tensor
                and state.dtype == dtype
                and tuple(state.shape) == (*lead, width)
                and state.device == device
            ):
                return False
        if batched and k <= 1:
            r = states[0].clone(memory_format=torch.contiguous_format)
            return r, (states[1].clone(memory_format=torch.contiguous_format) if k else None)
        r = states[0].reshape(L, batch, R).clone(memory_format=torch.contiguous_format)
        if not k:
            return r, None
        carried = torch.cat([s.reshape(L, batch, H) for s in states[1:]], 2)
        return r, carried if k > 1 else carried.clone(memory_format=torch.contiguous_format)

    def inference_plans(self, batch: int, steps: int, dtype: torch.dtype) -> list[SweepPlan] | None:
        """The compiled engine's kept plans, one per layer, for an inference call of `batch`
        padded sequences of `steps` steps (what the fast path runs, and fused generation
        whatever the layer's backend); None where the compiled engine cannot run the cell or
        a parameter is not contiguous in `dtype`."""
        if self.bidirectional or dtype not in _FAST_DTYPES:
            return None
        if self.reference_weight().device.type != "cpu":
            return None
        if cannot_compile(self.cell, dtype, self.reference_weight().device) is not None:
            return None
        return self._kept_plans(batch, steps, dtype)

    def _fast_plans(self, batch: int, steps: int, like: Tensor) -> list[SweepPlan] | None:
        """The kept plans of a (batch, steps) call in like's dtype when the layer's backend
        choice for it is the compiled engine; None otherwise. The choice is made once per
        (batch, steps, dtype) and kept with the plans (a parameter that moved remakes them)."""
        dtype = like.dtype
        key = (batch, steps, dtype)
        fast = self.__dict__.get("_fast_ok")
        if fast is None:
            fast = self.__dict__["_fast_ok"] = {}
        kept = fast.get(key)
        if kept is not None and kept[1] is not None:
            choice, plans, addresses = kept
            if addresses == tuple(p.data_ptr() for p in self._parameters.values()):
                self.__dict__["_last_choice"] = choice
                return plans
        if dtype not in _FAST_DTYPES or like.device.type != "cpu" or autocast_enabled(like.device):
            return None
        if self._backend not in ("auto", "compiled"):
            return None
        choice = kept[0] if kept is not None else self._choose(self._shape(batch, steps, like))
        plans = self._kept_plans(batch, steps, dtype) if choice.backend == "compiled" else None
        addresses = tuple(p.data_ptr() for p in self._parameters.values())
        if len(fast) > 64:
            fast.pop(next(iter(fast)))
        fast[key] = (choice, plans, addresses)
        if plans is not None:
            self.__dict__["_last_choice"] = choice
        return plans

    def _kept_plans(self, batch: int, steps: int, dtype: torch.dtype) -> list[SweepPlan] | None:
        """The plans of a (batch, steps) inference call, made on first use and again whenever
        a parameter moved (its memory address changed); None for a non-contiguous parameter
        or one of another dtype."""
        key = (batch, steps, dtype)
        addresses = tuple(p.data_ptr() for p in self._parameters.values())
        plans = self.__dict__.setdefault("_plans", {})
        kept = plans.get(key)
        if kept is not None and kept[0] == addresses:
            return kept[1]
        if any(p.dtype != dtype or not p.is_contiguous() for p in self._parameters.values()):
            return None
        cell = self.cell
        spec = SweepSpec(cell, (batch,) * steps)
        made = [
            SweepPlan(
                spec,
                self._weights_for(layer, 0),
                steps * batch,
                self._layer_input_size(layer),
                batch,
                self.recurrent_size,
                dtype,
            )
            for layer in range(self.num_layers)
        ]
        if len(plans) >= 16:
            plans.pop(next(iter(plans)))
        plans[key] = (addresses, made)
        return made

    # ---- streaming --------------------------------------------------------------------------

    def step(self, x_t: Tensor, state=None):
        """One time step for online inference: (x_t (B, I) or (I,), state) -> (y_t, new_state).

        y_t is (B, R) (or (R,)); state and new_state have the layer call's format ((h, c) for
        an LSTM, h otherwise; (L, B, ·), or (L, ·) for unbatched x_t; None starts from zeros),
        so `y, s = layer.step(x_t, s)` equals `out, s = layer(x_t.unsqueeze(0), s)` with
        y = out[0]. Inference only (see rnnkit.layers.streaming); the given state is not
        modified. `layer.stream()` keeps the state for you.
        """
        from .streaming import step

        return step(self, x_t, state)

    def stream(self, batch_size: int | None = 1, state=None):
        """A LayerStream over this layer: `y_t = stream(x_t)` carries the state for you."""
        from .streaming import LayerStream

        return LayerStream(self, batch_size, state)

    # ---- pickling ---------------------------------------------------------------------------

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        for name in _TRANSIENT:
            state.pop(name, None)
        if type(self)._make_cell is not Recurrent._make_cell:
            return state
        state["_cell_instance"] = self.cell  # a user's cell: pickled with the layer
        return state

    def _apply(self, fn, *args, **kwargs):
        result = super()._apply(fn, *args, **kwargs)
        self._forget_choices()
        self.__dict__["_plans"] = {}
        return result

    # ---- repr -------------------------------------------------------------------------------

    def _options_repr(self) -> str:
        """The non-default common options."""
        options = [
            (self.num_layers != 1, f"num_layers={self.num_layers}"),
            (not self.bias, "bias=False"),
            (self.batch_first, "batch_first=True"),
            (bool(self.dropout), f"dropout={self.dropout}"),
            (self.bidirectional, "bidirectional=True"),
            (self._backend != "auto", f"backend={self._backend!r}"),
        ]
        return "".join(f", {text}" for shown, text in options if shown)

    def extra_repr(self) -> str:
        s = f"{self.cell!r}, {self.input_size}, {self.hidden_size}"
        if self.projection_size:
            s += f", projection_size={self.projection_size}"
        if self.__dict__.get("scan"):
            s += ", scan=True"
        return s + self._options_repr()


def _report_scan_gradient(b: Tensor, reverse: bool) -> None:
    """Hand dL/dh_t to a listening gradient probe (rnnkit.engine.probes): in the scan
    h_t = a_t h_{t-1} + b_t, b_t reaches h_t alone and with slope 1, so dL/db_t is dL/dh_t."""
    steps, batch = b.shape[0], b.shape[1]
    slot = claim_slot((batch,) * steps, reverse)
    if slot is None or not b.requires_grad:
        return

    def keep(grad: Tensor) -> None:
        grad = grad.flip(0) if reverse else grad  # visit order back to time order
        slot.grad = grad.reshape(steps * batch, -1).detach()

    b.register_hook(keep)


def _check_scan(owner: str, cell: Cell, scan) -> None:
    check_bool(owner, "scan", scan)
    if scan and not (
        hasattr(cell, "linear_recurrence")
        and cell.num_carried == 0
        and not cell.has_output_projection
    ):
        raise ValueError(
            f"{owner}: scan=True needs a cell whose recurrence is linear in h (one that defines "
            f"linear_recurrence, such as MinGRUCell); {type(cell).__name__} is not; leave scan "
            "at False"
        )


def _check_projection(owner: str, cell: Cell, projection_size) -> None:
    if not is_int(projection_size):
        raise TypeError(
            f"{owner}: projection_size must be an int; got {type(projection_size).__name__}"
        )
    if cell.has_output_projection and projection_size < 1:
        raise ValueError(
            f"{owner}: {type(cell).__name__} has an output projection; give its width as "
            f"projection_size >= 1 (got {projection_size})"
        )
    if not cell.has_output_projection and projection_size:
        raise ValueError(
            f"{owner}: {type(cell).__name__} has no output projection; leave projection_size "
            f"at 0 (got {projection_size})"
        )
