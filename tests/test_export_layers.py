"""rnnkit.export.export_layer: every registered cell's layer as ONNX (a Scan per layer and
direction over the cell's step), run by onnxruntime on batches and lengths of its own, equal to
the layer's call within float32 rounding."""

from __future__ import annotations

import pytest
import torch

import rnnkit
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
