"""torch.compile and torch.export through rnnkit's layers: every registered cell torch has no
kernel for runs each sweep as the rnnkit::sweep operator (rnnkit.engine.custom_ops), so
torch.compile(fullgraph=True) captures the layer in one graph with the eager layer's outputs and
gradients, and torch.export produces a graph that runs it on new values."""

from __future__ import annotations

import copy
import io

import pytest
import torch

import rnnkit
from rnnkit.cells import CELLS


def _layer(name, **options):
    torch.manual_seed(0)
    layer = rnnkit.make_layer(name, 3, 6, **options)
    with torch.no_grad():  # off the init values (γ = 1, β = 0 would hide a wrong layer norm)
        for p in layer.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return layer


OWN_SWEEPS = [name for name in CELLS if not _layer(name).traces_as_torch_kernel]
FORMS = [
    {"num_layers": 2, "bidirectional": True, "batch_first": True},
    {"dropout": 0.0, "bias": False},
]


def _finals(value):
    return value if isinstance(value, tuple) else (value,)


@pytest.mark.parametrize("form", FORMS, ids=["stacked-bidirectional", "plain"])
@pytest.mark.parametrize("name", OWN_SWEEPS)
def test_compile_fullgraph_equals_the_eager_layer(name, form):
    layer = _layer(name, **form)
    torch._dynamo.reset()  # each test's layers compile afresh (dynamo's recompile limit is 8)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    for batch, steps in ((4, 5), (2, 9)):
        shape = (batch, steps, 3) if layer.batch_first else (steps, batch, 3)
        x = torch.randn(*shape, requires_grad=True)
        states = tuple(
            torch.randn(layer.num_layers * (1 + layer.bidirectional), batch, w, requires_grad=True)
            for w in layer.state_sizes()
        )
        hx = states if len(states) > 1 else states[0]
        want, want_finals = layer(x, hx)
        got, got_finals = compiled(x, hx)
        torch.testing.assert_close(got, want)
        for have, expect in zip(_finals(got_finals), _finals(want_finals), strict=True):
            torch.testing.assert_close(have, expect)
        leaves = [x, *states, *layer.parameters()]
        loss_of = lambda out, fin: out.square().sum() + sum(f.sum() for f in _finals(fin))  # noqa: E731
        expected = torch.autograd.grad(loss_of(want, want_finals), leaves)
        found = torch.autograd.grad(loss_of(got, got_finals), leaves)
        for have, expect in zip(found, expected, strict=True):
            torch.testing.assert_close(have, expect, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", OWN_SWEEPS)
def test_no_graph_break_and_torch_export_records_the_sweeps(name):
    layer = _layer(name, num_layers=2, bidirectional=True).eval()
    x = torch.randn(5, 3, 3)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(lambda x: layer(x)[0])(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    program = torch.export.export(layer, (x,))
    sweeps = [n for n in program.graph.nodes if "rnnkit.sweep" in str(n.target)]
    assert len(sweeps) == 4  # two layers, two directions
    other = torch.randn(5, 3, 3)  # torch.export fixes the shapes unless told not to
    with torch.no_grad():
        torch.testing.assert_close(program.module()(other)[0], layer(other)[0])


def test_a_copied_or_loaded_layer_compiles_too():
    """The operator names the cell by a key the layer registers when built and when unpickled."""
    layer = _layer(OWN_SWEEPS[0])
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    x = torch.randn(4, 2, 3)
    for other in (copy.deepcopy(layer), loaded):
        torch._dynamo.reset()
        got = torch.compile(other, fullgraph=True, backend="aot_eager")(x)[0]
        torch.testing.assert_close(got, layer(x)[0])
