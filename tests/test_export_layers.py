"""rnnkit.export.export_layer: every registered cell's layer as ONNX (a Scan per layer and
direction over the cell's step), run by onnxruntime on batches and lengths of its own, equal to
the layer's call within float32 rounding."""

from __future__ import annotations

import pytest
import torch

import rnnkit
import rnnkit.export
from rnnkit.cells import CELLS
from rnnkit.export.onnx_layer import export_layer, run_layer

pytest.importorskip("onnxruntime")

FORMS = [{}, {"num_layers": 2, "bidirectional": True}, {"batch_first": True, "bias": False}]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: ",".join(f) or "plain")
@pytest.mark.parametrize("name", list(CELLS))
def test_an_exported_layer_equals_the_layer_for_any_batch_and_length(name, form, tmp_path):
    torch.manual_seed(0)
    layer = rnnkit.make_layer(name, 3, 4, **form).eval()
    with torch.no_grad():  # off the init values (γ = 1, β = 0 would hide a wrong layer norm)
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    path = tmp_path / "layer.onnx"
    export_layer(layer, path)
    D = 2 if layer.bidirectional else 1
    for steps, batch in ((7, 5), (1, 1), (12, 3)):
        x = torch.randn(batch, steps, 3) if layer.batch_first else torch.randn(steps, batch, 3)
        states = tuple(
            torch.randn(layer.num_layers * D, batch, width) for width in layer.state_sizes()
        )
        with torch.no_grad():
            output, finals = layer(x, states if len(states) > 1 else states[0])
        finals = finals if isinstance(finals, tuple) else (finals,)
        got = run_layer(path, x, states)
        assert len(got) == 1 + len(finals)
        for have, want in zip(got, (output, *finals), strict=True):
            torch.testing.assert_close(torch.from_numpy(have), want, rtol=1e-4, atol=1e-5)


def test_only_rnnkit_layers_are_taken(tmp_path):
    with pytest.raises(TypeError, match="takes an rnnkit layer"):
        export_layer(torch.nn.LSTM(3, 4), tmp_path / "x.onnx")


DYNAMO_FORMS = [{"num_layers": 2, "bidirectional": True}, {"batch_first": True, "bias": False}]


@pytest.mark.parametrize("form", DYNAMO_FORMS, ids=lambda f: ",".join(f))
@pytest.mark.parametrize("name", list(CELLS))
def test_torchs_default_exporter_writes_every_layer_with_rnnkits_translation(name, form, tmp_path):
    """torch.onnx.export (its default, torch.export-based exporter) writes every layer, each
    sweep an rnnkit::sweep operator turned into a Scan, with dynamic batch and time, run on
    other batches and lengths than the export's: by the plain call (importing rnnkit.export
    registered the translation) and with the table given explicitly."""
    pytest.importorskip("onnxscript")
    import onnxruntime

    torch.manual_seed(0)
    layer = rnnkit.make_layer(name, 3, 4, **form).eval()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 5, 3) if layer.batch_first else torch.randn(5, 2, 3)
    axes = {0: torch.export.Dim("B"), 1: torch.export.Dim("T")}
    if not layer.batch_first:
        axes = {0: torch.export.Dim("T"), 1: torch.export.Dim("B")}
    path = tmp_path / "layer.onnx"
    if layer.batch_first:  # the table given to the call
        table = {"custom_translation_table": rnnkit.export.onnx_translations()}
    else:  # the plain call
        assert rnnkit.export.register_with_torch()
        table = {}
    torch.onnx.export(layer, (x,), path, dynamic_shapes=(axes,), verbose=False, **table)
    session = onnxruntime.InferenceSession(str(path))
    (feed,) = session.get_inputs()
    for steps, batch in ((9, 3), (1, 1)):
        x = torch.randn(batch, steps, 3) if layer.batch_first else torch.randn(steps, batch, 3)
        with torch.no_grad():
            output, finals = layer(x)
        finals = finals if isinstance(finals, tuple) else (finals,)
        got = session.run(None, {feed.name: x.numpy()})
        assert len(got) == 1 + len(finals)
        for have, want in zip(got, (output, *finals), strict=True):
            torch.testing.assert_close(torch.from_numpy(have), want, rtol=1e-4, atol=1e-5)
