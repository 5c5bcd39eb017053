"""torch.jit.trace of rnnkit layers records the real computation, for every cell.

A traced module replays what the trace recorded. The compiled engine runs outside torch's
operators, so a trace of it would replay the traced call's output as a constant; the reference
loop would be unrolled to the traced length. Layers torch has a kernel for trace as that kernel;
every other cell of the registry traces as a TorchScript loop over its traced step
(rnnkit.engine.traced_loop). Each traced module is fed inputs of another batch and length than
it was traced with.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import rnnkit
from rnnkit.cells import CELLS

NATIVE = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}


def _trace(module, example):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates tracing
        return torch.jit.trace(module, example, check_trace=False)


@pytest.mark.parametrize("name", sorted(NATIVE))
@pytest.mark.parametrize("backend", ["auto", "compiled"])
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize(
    "options",
    [{}, {"num_layers": 2, "bidirectional": True}, {"batch_first": True}],
    ids=["one", "stacked-bi", "batch-first"],
)
def test_a_traced_layer_is_right_on_new_inputs(name, backend, grad, options):
    torch.manual_seed(0)
    layer = NATIVE[name](4, 8, backend=backend, **options)
    example = torch.randn(2, 3, 4) if options.get("batch_first") else torch.randn(3, 2, 4)
    with torch.set_grad_enabled(grad):
        layer(example)
    if backend == "compiled":  # the engine whose trace replayed a constant
        assert layer.resolved_backend == "compiled"
    with torch.set_grad_enabled(grad):
        traced = _trace(layer, (example,))
    assert "torch.jit.trace" in layer.explain()
    for shape in [(9, 2, 4), (1, 6, 4)]:
        x = torch.randn(*shape)
        with torch.set_grad_enabled(grad):
            expected = layer(x)  # eager: rnnkit's engine
            got = traced(x)
        torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-6)
        finals = (got[1], expected[1]) if name != "lstm" else (got[1][1], expected[1][1])
        torch.testing.assert_close(*finals, rtol=1e-5, atol=1e-6)


def test_a_traced_language_model_is_right_on_new_inputs():
    from rnnkit.models import LanguageModel, LanguageModelConfig

    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=20, embedding_dim=8, hidden_size=16))
    model.eval()
    with torch.no_grad():
        traced = _trace(model, (torch.randint(0, 20, (2, 7)),))
        x = torch.randint(0, 20, (3, 11))
        torch.testing.assert_close(traced(x)[0], model(x)[0], rtol=1e-5, atol=1e-6)


LOOPED = [n for n in CELLS if n not in NATIVE]
OPTIONS = [{}, {"num_layers": 2, "bidirectional": True}, {"batch_first": True}]


def _grads(output, layer, x):
    return torch.autograd.grad(output.square().sum(), [x, *layer.parameters()])


@pytest.mark.parametrize("name", LOOPED)
@pytest.mark.parametrize("options", OPTIONS, ids=["one", "stacked-bi", "batch-first"])
def test_a_traced_layer_of_any_cell_is_right_on_new_inputs(name, options):
    """Outputs, final states and every gradient equal eager's in float64 on new batches and
    lengths; torch.jit.trace's own check (a second trace, compared) passes."""
    torch.manual_seed(0)
    layer = rnnkit.make_layer(name, 4, 8, dtype=torch.float64, **options)
    example = torch.randn(3, 2, 4, dtype=torch.float64)
    _trace(layer, (example,))
    assert "TorchScript loop" in layer.explain()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates tracing
        traced = torch.jit.trace(layer, (example,))  # check_trace on: it runs eager after
    for shape in [(9, 5, 4), (1, 1, 4)]:
        x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
        got, expected = traced(x), layer(x)
        torch.testing.assert_close(got[0], expected[0], rtol=1e-10, atol=1e-12)
        got_finals = got[1] if isinstance(got[1], tuple) else (got[1],)
        expected_finals = expected[1] if isinstance(expected[1], tuple) else (expected[1],)
        for a, b in zip(got_finals, expected_finals, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        for a, b in zip(_grads(got[0], layer, x), _grads(expected[0], layer, x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", LOOPED)
def test_a_traced_layer_takes_initial_states_and_unbatched_input(name):
    torch.manual_seed(0)
    layer = rnnkit.make_layer(name, 4, 8, num_layers=2).eval()

    class WithStates(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x, hx):
            return self.layer(x, hx)[0]

    def states(batch):
        made = tuple(torch.randn(2, batch, width) for width in layer.state_sizes())
        return made if len(made) > 1 else made[0]

    with torch.no_grad():
        traced = _trace(WithStates(), (torch.randn(3, 2, 4), states(2)))
        x, hx = torch.randn(7, 4, 4), states(4)
        torch.testing.assert_close(traced(x, hx), layer(x, hx)[0], rtol=1e-5, atol=1e-6)
        unbatched = _trace(layer, (torch.randn(3, 4),))
        x = torch.randn(6, 4)
        torch.testing.assert_close(unbatched(x)[0], layer(x)[0], rtol=1e-5, atol=1e-6)


def test_a_traced_layer_survives_save_and_load(tmp_path):
    """torch.jit.save writes the loops and steps (the load below reads them from the file)."""
    torch.manual_seed(0)
    layer = rnnkit.make_layer("lngru", 4, 8, num_layers=2, bidirectional=True).eval()
    with torch.no_grad():
        torch.jit.save(_trace(layer, (torch.randn(3, 2, 4),)), tmp_path / "layer.pt")
        loaded = torch.jit.load(tmp_path / "layer.pt")
        x = torch.randn(8, 3, 4)
        torch.testing.assert_close(loaded(x)[0], layer(x)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", LOOPED)
def test_a_traced_language_model_of_any_cell_is_right_on_new_inputs(name):
    from rnnkit.models import LanguageModel, LanguageModelConfig

    torch.manual_seed(0)
    config = LanguageModelConfig(vocab_size=20, embedding_dim=8, hidden_size=16, cell=name)
    model = LanguageModel(config).eval()
    with torch.no_grad():
        traced = _trace(model, (torch.randint(0, 20, (2, 7)),))
        x = torch.randint(0, 20, (3, 11))
        torch.testing.assert_close(traced(x)[0], model(x)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["lstm", "lnlstm"])
def test_lengths_under_a_trace_are_refused(name):
    layer = rnnkit.make_layer(name, 4, 8)
    with pytest.raises(RuntimeError, match="cannot record lengths=") as error:
        _trace(lambda x: layer(x, lengths=torch.tensor([5, 3]))[0], (torch.randn(5, 2, 4),))
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- export


def test_the_legacy_onnx_exporter_refuses_a_packed_batch():
    """Its graph of a packed LSTM is wrong even on the exported batch: refused in one line."""
    import io

    class Packed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = rnnkit.LSTM(4, 8, batch_first=True)

        def forward(self, x, lengths):
            pack = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True)
            out = self.layer(pack)[0]
            return torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0]

    packed = Packed().eval()
    example = (torch.randn(2, 5, 4), torch.tensor([5, 3]))
    with warnings.catch_warnings(), pytest.raises(RuntimeError) as caught:
        warnings.simplefilter("ignore")
        torch.onnx.export(packed, example, io.BytesIO(), dynamo=False)
    assert "torch.onnx.export cannot convert a packed batch" in str(caught.value)
    with torch.no_grad(), warnings.catch_warnings():  # jit.trace itself records it right
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(packed, example)
        other = (torch.randn(3, 6, 4), torch.tensor([6, 4, 2]))
        torch.testing.assert_close(traced(*other), packed(*other))


@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_legacy_onnx_exporter_gives_a_model_right_for_any_batch_and_length(name):
    """torch.onnx.export(dynamo=False) traces: the layer is recorded as torch's kernel or, for
    the other cells, as loops (ONNX Loop), so onnxruntime runs it on another batch and length
    than it was exported with."""
    import io

    import onnxruntime

    torch.manual_seed(0)
    layer = rnnkit.make_layer(name, 4, 8, num_layers=2, bidirectional=True).eval()
    buffer = io.BytesIO()
    axes = {"x": {0: "steps", 1: "batch"}, "y": {0: "steps", 1: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            layer, (torch.randn(5, 3, 4),), buffer, dynamo=False, input_names=["x"],
            output_names=["y"], dynamic_axes=axes,
        )  # fmt: skip
    session = onnxruntime.InferenceSession(buffer.getvalue())
    x = torch.randn(9, 2, 4)
    (got, *_) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        expected = layer(x)[0]
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_torch_export_records_the_layer(name):
    torch.manual_seed(0)
    layer = NATIVE[name](4, 8, num_layers=2).eval()
    program = torch.export.export(layer, (torch.randn(5, 3, 4),))
    x = torch.randn(5, 3, 4)  # new values; torch.export fixes the shapes unless told not to
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x)[0], layer(x)[0])
