"""Bad input to every layer: each mistake raises a ValueError or TypeError (NotImplementedError
for backend='compiled') whose one-line message names the argument and shows what came.

Validation runs before any backend, so every call case runs on both "native" and "reference"
(JordanRNN, LayerNormLSTM and LayerNormGRU have only rnnkit's engines: torch has no kernel for
them).
"""

from __future__ import annotations

import contextlib
import re

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnkit

IN, H, OUT = 4, 5, 3  # input_size, hidden_size, JordanRNN's output_size
T, B = 2, 3

KINDS = ["RNN", "LSTM", "GRU", "JordanRNN"]
TORCH_KINDS = ["RNN", "LSTM", "GRU"]
LAYER_NORM_KINDS = ["LayerNormLSTM", "LayerNormGRU"]  # call cases only (reference engine)
TWO_STATE_KINDS = ("LSTM", "LayerNormLSTM")  # hx = (h_0, c_0)
BACKENDS = ["native", "reference"]
# Every (layer, backend) pair a call can run on.
LAYER_BACKENDS = [
    pytest.param(kind, backend, id=f"{kind}-{backend}")
    for kind in KINDS + LAYER_NORM_KINDS
    for backend in BACKENDS
    if kind in TORCH_KINDS or backend != "native"
]
# How messages name the first initial state, per layer.
STATE0 = {
    "RNN": r"hx \(h_0\)",
    "GRU": r"hx \(h_0\)",
    "LSTM": r"hx\[0\] \(h_0\)",
    "JordanRNN": r"y_0",
    "LayerNormLSTM": r"hx\[0\] \(h_0\)",
    "LayerNormGRU": r"hx \(h_0\)",
}


def make(kind: str, backend: str = "auto", **kwargs):
    if kind == "JordanRNN":
        return rnnkit.JordanRNN(IN, H, OUT, backend=backend, **kwargs)
    return getattr(rnnkit, kind)(IN, H, backend=backend, **kwargs)


def width(kind: str) -> int:
    return OUT if kind == "JordanRNN" else H


def states(kind: str, shape: tuple[int, ...], dtype=torch.float32):
    """A well-typed hx whose (first) state has `shape`; LSTM's c_0 gets the same leading dims."""
    h = torch.zeros(shape, dtype=dtype)
    if kind in TWO_STATE_KINDS:
        return (h, torch.zeros((*shape[:-1], H), dtype=dtype))
    return h


def shape_text(shape) -> str:
    return re.escape(str(tuple(shape)))


@contextlib.contextmanager
def raises(exc: type[Exception], match: str):
    """pytest.raises(exc, match=...) that also requires a one-line message."""
    with pytest.raises(exc, match=match) as info:
        yield info
    message = str(info.value)
    assert "\n" not in message, f"message spans lines: {message!r}"


# --- the input tensor ------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(IN,), (T, B, 2, IN)], ids=["1-D", "4-D"])
@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_input_of_wrong_rank(kind, backend, shape):
    layer = make(kind, backend)
    with raises(
        ValueError, match=rf"input must be 3-D .* got {len(shape)}-D shape {shape_text(shape)}"
    ):
        layer(torch.randn(shape))


@pytest.mark.parametrize("batch_first", [False, True], ids=["TBI", "BTI"])
@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_input_of_wrong_feature_size(kind, backend, batch_first):
    layer = make(kind, backend, batch_first=batch_first)
    x = torch.randn(T, B, IN + 3)
    layout = r"\(B, T, input_size\)" if batch_first else r"\(T, B, input_size\)"
    with raises(
        ValueError,
        match=rf"input_size={IN}; got {IN + 3} \(input shape {shape_text(x.shape)}, "
        rf"expected {layout}",
    ):
        layer(x)


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_packed_input_of_wrong_feature_size(kind, backend):
    layer = make(kind, backend)
    packed = pack_padded_sequence(torch.randn(T, B, IN + 1), [T] * B)
    with raises(ValueError, match=rf"input_size={IN}; got {IN + 1}"):
        layer(packed)


@pytest.mark.parametrize(
    "value",
    [[[0.0] * IN] * T, torch.randn(T, B, IN).numpy(), None],
    ids=["list", "ndarray", "None"],
)
@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_input_that_is_not_a_tensor(kind, backend, value):
    layer = make(kind, backend)
    name = re.escape(type(value).__name__)
    with raises(TypeError, match=rf"input must be a Tensor or PackedSequence; got {name}"):
        layer(value)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_integer_dtype_input(kind, backend, dtype):
    layer = make(kind, backend, dtype=torch.float64)
    x = torch.ones(T, B, IN, dtype=dtype)
    pattern = (
        rf"input must be a floating-point tensor; got dtype {dtype}.*input\.to\(torch\.float64\)"
    )
    with raises(TypeError, match=pattern):
        layer(x)


# --- initial states: shape -------------------------------------------------------------------


@pytest.mark.parametrize("wrong", ["layers", "batch", "width"])
@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_hx_of_wrong_shape(kind, backend, wrong):
    layer = make(kind, backend, num_layers=2)
    expected = (2, B, width(kind))
    shape = {
        "layers": (1, B, width(kind)),
        "batch": (2, B + 1, width(kind)),
        "width": (2, B, width(kind) + 2),
    }[wrong]
    pattern = (
        rf"{STATE0[kind]} must have shape {shape_text(expected)} = \(num_layers \* "
        rf"num_directions = 2 \* 1, batch = {B}, .*got 3-D shape {shape_text(shape)}"
    )
    with raises(ValueError, match=pattern):
        layer(torch.randn(T, B, IN), states(kind, shape))


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_bidirectional_hx_counts_both_directions(kind, backend):
    layer = make(kind, backend, bidirectional=True)
    shape = (1, B, width(kind))
    pattern = (
        rf"must have shape {shape_text((2, B, width(kind)))} = "
        r"\(num_layers \* num_directions = 1 \* 2"
    )
    with raises(ValueError, match=pattern + rf".*got 3-D shape {shape_text(shape)}"):
        layer(torch.randn(T, B, IN), states(kind, shape))


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_unbatched_input_with_3d_hx(kind, backend):
    layer = make(kind, backend)
    shape = (1, 1, width(kind))
    pattern = (
        rf"{STATE0[kind]} must have shape {shape_text((1, width(kind)))} .* unbatched 2-D input; "
        rf"got 3-D shape {shape_text(shape)}"
    )
    with raises(ValueError, match=pattern):
        layer(torch.randn(T, IN), states(kind, shape))


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_batched_input_with_2d_hx(kind, backend):
    layer = make(kind, backend)
    shape = (1, width(kind))
    with raises(ValueError, match=rf"3-D input; got 2-D shape {shape_text(shape)}"):
        layer(torch.randn(T, B, IN), states(kind, shape))


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_c0_of_wrong_shape(backend):
    layer = make("LSTM", backend)
    h0, c0 = torch.zeros(1, B, H), torch.zeros(1, B, H + 1)
    pattern = (
        rf"hx\[1\] \(c_0\) must have shape {shape_text((1, B, H))} .*hidden_size = {H}\)"
        rf".*{shape_text(c0.shape)}"
    )
    with raises(ValueError, match=pattern):
        layer(torch.randn(T, B, IN), (h0, c0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_projected_lstm_h0_must_be_proj_size_wide(backend):
    layer = rnnkit.LSTM(IN, H, proj_size=2, backend=backend)
    h0, c0 = torch.zeros(1, B, H), torch.zeros(1, B, H)
    pattern = (
        rf"hx\[0\] \(h_0\) must have shape {shape_text((1, B, 2))} .*proj_size = 2\)"
        rf".*{shape_text(h0.shape)}"
    )
    with raises(ValueError, match=pattern):
        layer(torch.randn(T, B, IN), (h0, c0))


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_packed_input_hx_batch_is_the_number_of_sequences(kind, backend):
    layer = make(kind, backend)
    packed = pack_padded_sequence(torch.randn(3, B, IN), [3, 2, 1])
    shape = (1, B - 1, width(kind))
    with raises(ValueError, match=rf"batch = {B}, .*got 3-D shape {shape_text(shape)}"):
        layer(packed, states(kind, shape))


# --- initial states: kind --------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_given_a_tensor_hx(backend):
    layer = make("LSTM", backend)
    h0 = torch.zeros(1, B, H)
    with raises(
        TypeError,
        match=rf"hx must be a tuple \(h_0, c_0\) of 2 tensors; got Tensor of shape "
        rf"{shape_text(h0.shape)}",
    ):
        layer(torch.randn(T, B, IN), h0)


@pytest.mark.parametrize("length", [1, 3])
@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_given_a_tuple_of_wrong_length(backend, length):
    layer = make("LSTM", backend)
    hx = tuple(torch.zeros(1, B, H) for _ in range(length))
    with raises(
        TypeError,
        match=rf"hx must be a tuple \(h_0, c_0\) of 2 tensors; "
        rf"got tuple of {length}: \(Tensor of shape",
    ):
        layer(torch.randn(T, B, IN), hx)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_given_a_tuple_holding_a_non_tensor(backend):
    layer = make("LSTM", backend)
    with raises(
        TypeError,
        match=r"hx must be a tuple \(h_0, c_0\) "
        r".*got tuple of 2: \(Tensor of shape \(1, 3, 5\), NoneType\)",
    ):
        layer(torch.randn(T, B, IN), (torch.zeros(1, B, H), None))


@pytest.mark.parametrize(
    ("kind", "backend"), [p for p in LAYER_BACKENDS if p.values[0] not in TWO_STATE_KINDS]
)
def test_single_state_layer_given_a_tuple(kind, backend):
    layer = make(kind, backend)
    arg = "y_0" if kind == "JordanRNN" else "hx"
    hx = (torch.zeros(1, B, width(kind)),)
    pattern = (
        rf"{arg} must be a single Tensor .*"
        rf"got tuple of 1: \(Tensor of shape {shape_text(hx[0].shape)}\)"
    )
    with raises(TypeError, match=pattern):
        layer(torch.randn(T, B, IN), hx)


# --- dtype and device ------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_float32_input_to_float64_layer(kind, backend):
    layer = make(kind, backend, dtype=torch.float64)
    pattern = (
        r"input has dtype torch\.float32 but the layer's weights are torch\.float64; "
        r"convert with input\.to\(torch\.float64\)"
    )
    with raises(ValueError, match=pattern):
        layer(torch.randn(T, B, IN))


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_hx_dtype_differs_from_weights(kind, backend):
    layer = make(kind, backend, dtype=torch.float64)
    x = torch.randn(T, B, IN, dtype=torch.float64)
    hx = states(kind, (1, B, width(kind)), dtype=torch.float32)
    with raises(
        ValueError,
        match=r"(h_0|y_0) has dtype torch\.float32 but the layer's weights are torch\.float64",
    ):
        layer(x, hx)


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_integer_hx(kind, backend):
    layer = make(kind, backend)
    hx = states(kind, (1, B, width(kind)), dtype=torch.int64)
    pattern = r"(h_0|y_0) has dtype torch\.int64 .*; convert with (h_0|y_0)\.to\(torch\.float32\)$"
    # No advice to convert the layer to an integer dtype: weights must stay floating point.
    with raises(ValueError, match=pattern):
        layer(torch.randn(T, B, IN), hx)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lstm_c0_dtype_differs_from_weights(backend):
    layer = make("LSTM", backend, dtype=torch.float64)
    x = torch.randn(T, B, IN, dtype=torch.float64)
    hx = (torch.zeros(1, B, H, dtype=torch.float64), torch.zeros(1, B, H))
    with raises(
        ValueError, match=r"c_0 has dtype torch\.float32 but the layer's weights are torch\.float64"
    ):
        layer(x, hx)


def _meta_layer(kind, backend):
    try:
        layer = make(kind, backend, device="meta")
    except Exception as error:  # pragma: no cover - depends on the torch build
        pytest.skip(f"cannot build a layer on the meta device: {error}")
    return layer


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_input_on_other_device_than_weights(kind, backend):
    layer = _meta_layer(kind, backend)
    with raises(
        ValueError, match=r"input is on device cpu but the layer's weights are on meta; move"
    ):
        layer(torch.randn(T, B, IN))


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_hx_on_other_device_than_weights(kind, backend):
    layer = make(kind, backend)
    x = torch.randn(T, B, IN)
    try:
        h = torch.zeros(1, B, width(kind), device="meta")
    except Exception as error:  # pragma: no cover - depends on the torch build
        pytest.skip(f"cannot make a tensor on the meta device: {error}")
    hx = (h, torch.zeros(1, B, H)) if kind in TWO_STATE_KINDS else h
    with raises(
        ValueError, match=r"(h_0|y_0) is on device meta but the layer's weights are on cpu"
    ):
        layer(x, hx)


# --- sequences -------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["padded", "batch_first", "unbatched"])
@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_zero_length_sequence(kind, backend, form):
    layer = make(kind, backend, batch_first=form == "batch_first")
    shape = {"padded": (0, B, IN), "batch_first": (B, 0, IN), "unbatched": (0, IN)}[form]
    with raises(ValueError, match=rf"input has zero time steps \(shape {shape_text(shape)}\)"):
        layer(torch.randn(shape))


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_empty_packed_sequence(kind, backend):
    layer = make(kind, backend)
    packed = PackedSequence(torch.randn(0, IN), torch.zeros(0, dtype=torch.int64))
    with raises(ValueError, match=r"input has zero time steps \(shape \(0, 4\)\)"):
        layer(packed)


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_hand_built_packed_sequence_with_increasing_batch_sizes(kind, backend):
    layer = make(kind, backend)
    packed = PackedSequence(torch.randn(5, IN), torch.tensor([2, 3]))
    pattern = (
        r"PackedSequence batch_sizes must be non-increasing .*got \[2, 3\].*enforce_sorted=False"
    )
    with raises(ValueError, match=pattern):
        layer(packed)


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_hand_built_packed_sequence_with_wrong_row_count(kind, backend):
    layer = make(kind, backend)
    packed = PackedSequence(torch.randn(6, IN), torch.tensor([3, 2]))
    pattern = r"PackedSequence data has 6 rows but its batch_sizes \[3, 2\] sum to 5"
    with raises(ValueError, match=pattern):
        layer(packed)


@pytest.mark.parametrize(("kind", "backend"), LAYER_BACKENDS)
def test_pack_padded_sequence_with_unsorted_lengths(kind, backend):
    x = torch.randn(4, B, IN)
    lengths = torch.tensor([2, 4, 3])
    # torch itself refuses unsorted lengths when enforce_sorted=True ...
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        pack_padded_sequence(x, lengths, enforce_sorted=True)
    # ... and with enforce_sorted=False the layer takes the packed batch.
    layer = make(kind, backend)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    output, finals = layer(packed)
    assert isinstance(output, PackedSequence)
    assert torch.equal(output.batch_sizes, packed.batch_sizes)
    assert torch.equal(output.unsorted_indices, packed.unsorted_indices)
    first = finals[0] if kind in TWO_STATE_KINDS else finals
    assert first.shape == (1, B, width(kind))


# --- constructor -----------------------------------------------------------------------------


def build(kind: str, input_size=IN, hidden_size=H, **kwargs):
    if kind == "JordanRNN":
        return rnnkit.JordanRNN(input_size, hidden_size, OUT, **kwargs)
    return getattr(rnnkit, kind)(input_size, hidden_size, **kwargs)


@pytest.mark.parametrize("value", [0, -1])
@pytest.mark.parametrize("kind", KINDS)
def test_hidden_size_not_positive(kind, value):
    with raises(ValueError, match=rf"{kind}: hidden_size must be a positive integer; got {value}"):
        build(kind, hidden_size=value)


@pytest.mark.parametrize("value", [2.0, "5", None, True])
@pytest.mark.parametrize("kind", KINDS)
def test_hidden_size_not_an_int(kind, value):
    pattern = (
        rf"{kind}: hidden_size must be an int; got {type(value).__name__} {re.escape(repr(value))}"
    )
    with raises(TypeError, match=pattern):
        build(kind, hidden_size=value)


@pytest.mark.parametrize("kind", KINDS)
def test_input_size_zero(kind):
    with raises(ValueError, match=rf"{kind}: input_size must be a positive integer; got 0"):
        build(kind, input_size=0)


@pytest.mark.parametrize("kind", KINDS)
def test_num_layers_zero(kind):
    with raises(ValueError, match=rf"{kind}: num_layers must be a positive integer; got 0"):
        build(kind, num_layers=0)


def test_jordan_output_size_zero():
    with raises(ValueError, match=r"JordanRNN: output_size must be a positive integer; got 0"):
        rnnkit.JordanRNN(IN, H, 0)


@pytest.mark.parametrize("proj_size", [H, H + 1, -1])
def test_proj_size_out_of_range(proj_size):
    pattern = (
        rf"LSTM: proj_size must be 0 \(no projection\) or in 1\.\.hidden_size-1 = 1\.\.{H - 1}; "
        rf"got proj_size={proj_size} with hidden_size={H}"
    )
    with raises(ValueError, match=pattern):
        rnnkit.LSTM(IN, H, proj_size=proj_size)


@pytest.mark.parametrize("proj_size", [2.0, True])
def test_proj_size_not_an_int(proj_size):
    pattern = rf"LSTM: proj_size must be an int .*got {type(proj_size).__name__} {proj_size!r}"
    with raises(TypeError, match=pattern):
        rnnkit.LSTM(IN, H, proj_size=proj_size)


@pytest.mark.parametrize("dropout", [-0.1, 1.5, "x", float("nan")])
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_not_a_probability(kind, dropout):
    # ValueError for every bad dropout, the exception torch.nn raises for it too.
    pattern = rf"{kind}: dropout must be a probability in \[0, 1\].*got {re.escape(repr(dropout))}"
    with raises(ValueError, match=pattern):
        build(kind, num_layers=2, dropout=dropout)


@pytest.mark.parametrize("name", ["bias", "batch_first", "bidirectional"])
@pytest.mark.parametrize("value", [1, "yes", None])
@pytest.mark.parametrize("kind", KINDS)
def test_flag_not_a_bool(kind, name, value):
    got = f"{type(value).__name__} {re.escape(repr(value))}"
    pattern = rf"{kind}: {name} must be True or False; got {got}"
    with raises(TypeError, match=pattern):
        build(kind, **{name: value})


def test_rnn_unknown_nonlinearity():
    with raises(
        ValueError, match=r"^RNN: nonlinearity must be one of 'tanh', 'relu'; got 'sigmoid'"
    ):
        rnnkit.RNN(IN, H, nonlinearity="sigmoid")


def test_jordan_unknown_output_nonlinearity():
    pattern = (
        r"^JordanRNN: output_nonlinearity must be one of "
        r"'tanh', 'relu', 'sigmoid', 'identity'; got 'foo'"
    )
    with raises(ValueError, match=pattern):
        rnnkit.JordanRNN(IN, H, OUT, output_nonlinearity="foo")


def test_jordan_unknown_nonlinearity():
    with raises(
        ValueError, match=r"^JordanRNN: nonlinearity must be one of 'tanh', 'relu'; got 'foo'"
    ):
        rnnkit.JordanRNN(IN, H, OUT, nonlinearity="foo")


@pytest.mark.parametrize("backend", ["bogus", "Native", None])
@pytest.mark.parametrize("kind", KINDS)
def test_unknown_backend(kind, backend):
    pattern = (
        rf"{kind}: backend must be one of 'auto', 'native', 'reference', 'compiled'; "
        rf"got {re.escape(repr(backend))}"
    )
    with raises(ValueError, match=pattern):
        build(kind, backend=backend)


@pytest.mark.parametrize("kind", KINDS)
def test_compiled_backend_refuses_a_dtype_it_has_no_kernel_for(kind):
    layer = build(kind, backend="reference").to(torch.bfloat16)
    pattern = (
        rf"{kind}: backend='compiled' cannot run this call: compiled kernels run float32 and "
        r"float64, not torch.bfloat16; use backend='auto'"
    )
    with raises(NotImplementedError, match=pattern):
        layer.backend = "compiled"
    assert layer.backend == "reference"  # a refused value leaves the layer as it was
    layer.backend = "auto"
    layer(torch.randn(T, B, IN, dtype=torch.bfloat16))
    assert "compiled kernels run float32 and float64" in layer.explain()


def test_jordan_refuses_native_backend():
    pattern = (
        r"JordanRNN: backend='native' is not available, torch has no kernel "
        r".*backend='auto', 'compiled' or 'reference'"
    )
    with raises(ValueError, match=pattern):
        rnnkit.JordanRNN(IN, H, OUT, backend="native")


@pytest.mark.parametrize("kind", KINDS)
def test_setting_unknown_backend_after_construction(kind):
    layer = build(kind, backend="reference")
    with raises(ValueError, match=rf"{kind}: backend must be one of .*got 'bogus'"):
        layer.backend = "bogus"
    assert layer.backend == "reference"  # a refused value leaves the layer as it was
    layer(torch.randn(T, B, IN))


def test_setting_native_backend_on_jordan_after_construction():
    layer = rnnkit.JordanRNN(IN, H, OUT)
    with raises(ValueError, match=r"backend='native' is not available"):
        layer.backend = "native"
    assert layer.backend == "auto"


# --- the same error on every backend ---------------------------------------------------------

BAD_CALLS = {
    "1-D input": lambda kind: (torch.randn(IN), None),
    "wide input": lambda kind: (torch.randn(T, B, IN + 1), None),
    "int input": lambda kind: (torch.ones(T, B, IN, dtype=torch.int64), None),
    "float64 input": lambda kind: (torch.randn(T, B, IN, dtype=torch.float64), None),
    "empty input": lambda kind: (torch.randn(0, B, IN), None),
    "bad hx": lambda kind: (torch.randn(T, B, IN), states(kind, (3, B, width(kind)))),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_native_and_reference_raise_the_same_error(kind, case):
    errors = []
    for backend in BACKENDS:
        layer = make(kind, backend)
        x, hx = BAD_CALLS[case](kind)
        with pytest.raises((ValueError, TypeError)) as info:
            layer(x, hx)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


# --- double backward -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_double_backward_through_an_engine_equals_native(kind, backend):
    """create_graph=True through rnnkit's engines (rnnkit.engine.second_order) gives torch's
    second derivatives; tests/test_second_order.py gradgradchecks every registered cell."""
    second = []
    for name in (backend, "native"):
        torch.manual_seed(0)
        layer = make(kind, name, dtype=torch.float64)
        x = torch.randn(T, B, IN, dtype=torch.float64, requires_grad=True)
        output, _ = layer(x)
        (grad_x,) = torch.autograd.grad(output.pow(3).sum(), x, create_graph=True)
        second.append(torch.autograd.grad(grad_x.pow(2).sum(), x)[0])
    torch.testing.assert_close(*second)


@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_double_backward_through_native_works(kind):
    torch.manual_seed(0)
    layer = make(kind, "native", dtype=torch.float64)
    x = torch.randn(T, B, IN, dtype=torch.float64, requires_grad=True)
    output, _ = layer(x)
    (grad_x,) = torch.autograd.grad(output.pow(2).sum(), x, create_graph=True)
    (grad_grad_x,) = torch.autograd.grad(grad_x.sum(), x)
    assert grad_grad_x.shape == x.shape
