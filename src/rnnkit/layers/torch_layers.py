"""Drop-in RNN, LSTM and GRU: torch.nn's classes on rnnkit's engines.

Each subclasses rnnkit.Recurrent and the torch.nn class: the constructor arguments, parameter
names, init and state_dict are torch's (torch's own constructor registers them), plus
`backend=`; `isinstance(rnnkit.LSTM(...), nn.LSTM)` holds, and backend="native" runs torch's
own kernel.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from .._checks import check_proj_size
from ..activations import get_activation
from ..cells import ElmanCell, GRUCell, LSTMCell
from .dispatch import Choice, NativeKernel
from .lengths import pad_packed
from .recurrent import Recurrent, check_common

# what explain() says of a traced call
TRACING_REASON = (
    "torch.jit.trace: torch's kernel is recorded as one operator, right for any batch and "
    "length (torch.compile and torch.export record it too)"
)

__all__ = ["GRU", "LSTM", "RNN"]


class _TorchLayer(Recurrent):
    """What the torch.nn subclasses share: torch's parameters, torch's kernel as `native`."""

    traces_as_torch_kernel = True

    def _native_forward(self, input, hx, call):
        if isinstance(hx, list):
            hx = tuple(hx)
        # Skip Recurrent in the MRO: this reaches torch.nn's own forward.
        output, finals = super(Recurrent, self).forward(input, hx)
        if call.padded_steps is not None:
            output = pad_packed(output, call.padded_steps, self.batch_first)
        return output, finals

    def _traced_forward(self, input, hx, lengths):
        # torch's kernel is one traced operator, right for any batch and length; the numbers
        # are those of every backend (tests/test_parity.py)
        if lengths is not None:
            raise RuntimeError(
                f"{type(self).__name__}: torch.jit.trace cannot record lengths= (the batch is "
                "packed in Python, so the trace would keep this call's lengths); trace calls "
                "without lengths, or run the layer eagerly for batches of varying lengths"
            )
        if isinstance(input, PackedSequence) and torch.onnx.is_in_onnx_export():
            # torch's exporter writes a packed LSTM/GRU/RNN as a graph that is wrong even on
            # the batch it was exported with (measured: off by 0.8); jit.trace records it right
            raise RuntimeError(
                f"{type(self).__name__}: torch.onnx.export cannot convert a packed batch (its "
                "ONNX graph would be wrong); export the padded batch without packing, as rnnkit "
                "export does for the task models (rnnkit.export.padded)"
            )
        if not torch.compiler.is_compiling():  # what explain() says, kept out of graphs
            self.__dict__["_last_choice"] = Choice("native", TRACING_REASON)
        if isinstance(hx, list):
            hx = tuple(hx)
        return super(Recurrent, self).forward(input, hx)

    def _setup(self, backend: str) -> None:
        """After torch's constructor: the cell, the projection width, the backend."""
        self.projection_size = getattr(self, "proj_size", 0)
        self.__dict__["_cell_instance"] = self._make_cell()
        self._register_cell()
        self.backend = backend

    def extra_repr(self) -> str:
        s = super(Recurrent, self).extra_repr()
        return s if self._backend == "auto" else f"{s}, backend={self._backend!r}"


class RNN(_TorchLayer, nn.RNN):
    """Elman RNN, drop-in for torch.nn.RNN: h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

    Call: (input, h_0=None) -> (output (T, B, D*H), h_n (L*D, B, H)).
    """

    native_kernel = NativeKernel(fused=False)  # a loop of per-step operators

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
    ) -> None:
        check_common(
            "RNN",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            backend,
        )
        get_activation(nonlinearity, allowed=("tanh", "relu"), owner="RNN")
        nn.RNN.__init__(
            self,
            input_size,
            hidden_size,
            num_layers,
            nonlinearity,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
        )
        self._setup(backend)

    def _make_cell(self) -> ElmanCell:
        return ElmanCell(self.nonlinearity)


class LSTM(_TorchLayer, nn.LSTM):
    """LSTM, drop-in for torch.nn.LSTM (gate order i, f, g, o; optional proj_size).

    Call: (input, (h_0, c_0)=None) -> (output (T, B, D*R), (h_n (L*D, B, R), c_n (L*D, B, H)))
    with R = proj_size or H.
    """

    @property
    def native_kernel(self) -> NativeKernel:
        return NativeKernel(fused=not self.proj_size)  # oneDNN refuses a projection

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
    ) -> None:
        check_common(
            "LSTM",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            backend,
        )
        check_proj_size("LSTM", proj_size, hidden_size)
        nn.LSTM.__init__(
            self,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device=device,
            dtype=dtype,
        )
        self._setup(backend)

    def _make_cell(self) -> LSTMCell:
        return LSTMCell(projected=self.proj_size > 0)


class GRU(_TorchLayer, nn.GRU):
    """GRU, drop-in for torch.nn.GRU (gate order r, z, n; reset applied to W_hn h + b_hn).

    Call: (input, h_0=None) -> (output (T, B, D*H), h_n (L*D, B, H)).
    """

    native_kernel = NativeKernel(fused=False)  # a loop of per-step operators on the CPU

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
    ) -> None:
        check_common(
            "GRU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            backend,
        )
        nn.GRU.__init__(
            self,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            device=device,
            dtype=dtype,
        )
        self._setup(backend)

    def _make_cell(self) -> GRUCell:
        return GRUCell()
