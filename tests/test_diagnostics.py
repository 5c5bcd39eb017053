"""rnnkit.diagnostics on every registered cell and engine, against autograd through the cell's
own equations (rnnkit.baselines.equations_loop) in float64."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from rnnkit import diagnostics
from rnnkit.baselines import equations_loop
from rnnkit.cells import CELLS
from rnnkit.diagnostics.gates import saturated
from rnnkit.engine.probes import claim_slot, listening

F64 = torch.float64
NAMES = list(CELLS)


def _layer(name, backend, seed=0, **kwargs):
    torch.manual_seed(seed)
    layer = rnnkit.make_layer(name, 3, 4, dtype=F64, backend=backend, **kwargs)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn(p.shape, dtype=F64, generator=generator))
    return layer.eval()


def _autograd_flow(layer, x, loss_fn, lengths=None):
    """‖dL/dr_t‖ per sweep and step, by autograd through the unrolled equations."""
    steps: dict = {}

    def observe(index, t, r_t, carried_t, probes):
        r_t.retain_grad()
        steps[index, t] = r_t

    output, _ = equations_loop(layer, x, lengths=lengths, observe=observe)
    loss_fn(output).backward()
    D = 2 if layer.bidirectional else 1
    T = x.shape[0]
    rows = []
    for index in range(layer.num_layers * D):
        norms = []
        for t in range(T):
            grad = steps[index, t].grad
            if lengths is not None:
                grad = grad[torch.as_tensor(lengths) > t]
            norms.append(torch.linalg.vector_norm(grad))
        rows.append(torch.stack(norms))
    return torch.stack(rows)


def _weighted_sum(output):
    """A loss that reads every step, so the flow mixes the output's own gradient and the
    recurrence's."""
    weights = torch.linspace(-1, 1, output.numel(), dtype=output.dtype).view_as(output)
    return (output * weights).sum() + output[-1].pow(2).sum()


ENGINES = ["reference", "compiled"]
FORMS = [
    ({}, "default"),
    ({"num_layers": 2, "bidirectional": True}, "weighted"),
]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f"{','.join(f[0]) or 'plain'}-{f[1]}")
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", NAMES)
def test_gradient_flow_equals_autograd_through_the_equations(name, engine, form):
    kwargs, loss = form
    layer = _layer(name, engine, **kwargs)
    x = torch.randn(6, 2, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    loss_fn = None if loss == "default" else _weighted_sum
    got = diagnostics.gradient_flow(layer, x, loss_fn)
    assert all(p.grad is None for p in layer.parameters())  # the diagnostic left no .grad
    expected = _autograd_flow(
        layer,
        x,
        loss_fn or (lambda out: diagnostics.default_loss(out)),
    )
    D = 2 if layer.bidirectional else 1
    assert got.shape == (layer.num_layers * D, 6)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
    assert layer.backend == engine  # the diagnostic gave the layer back as it found it


@pytest.mark.parametrize("engine", ENGINES)
def test_gradient_flow_of_packed_sequences_counts_each_step_s_active_rows(engine):
    layer = _layer("lstm", engine, bidirectional=True)
    x = torch.randn(5, 3, 3, dtype=F64, generator=torch.Generator().manual_seed(4))
    lengths = [5, 3, 2]
    got = diagnostics.gradient_flow(layer, pack_padded_sequence(x, lengths), _packed_sum)
    expected = _autograd_flow(layer, x, lambda out: (out * _mask(lengths, out)).sum(), lengths)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


def _packed_sum(output):
    return output.data.sum()


def _mask(lengths, out):
    T = out.shape[0]
    return (torch.arange(T).view(T, 1) < torch.tensor(lengths).view(1, -1)).unsqueeze(-1)


def test_gradient_flow_of_a_native_layer_runs_on_rnnkit_s_engine_and_says_so():
    layer = _layer("lstm", "auto")
    x = torch.randn(7, 2, 3, dtype=F64)
    got = diagnostics.gradient_flow(layer, x)
    expected = _autograd_flow(layer, x, diagnostics.default_loss)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
    assert "compiled" in layer.explain()
    assert layer.backend == "auto"


def test_gradient_flow_of_the_scan_equals_the_sequential_sweep():
    layer = _layer("mingru", "auto", num_layers=2, bidirectional=True)
    x = torch.randn(9, 2, 3, dtype=F64)
    sequential = diagnostics.gradient_flow(layer, x, _weighted_sum)
    layer.scan = True
    scanned = diagnostics.gradient_flow(layer, x, _weighted_sum)
    torch.testing.assert_close(scanned, sequential, rtol=1e-9, atol=1e-12)
    assert "scan" in layer.explain()


def test_a_plain_rnn_s_gradient_vanishes_with_distance_and_an_lstm_s_less():
    """Seed 001's claim, as the numbers show it: small recurrent weights shrink ‖dL/dh_t‖
    geometrically with the distance from the loss."""
    torch.manual_seed(0)
    rnn = rnnkit.RNN(8, 32, dtype=F64)
    with torch.no_grad():
        rnn.weight_hh_l0.mul_(0.5)
    x = torch.randn(40, 4, 8, dtype=F64)
    flow = diagnostics.gradient_flow(rnn, x)[0]
    assert flow[0] < 1e-6 * flow[-1]
    ratios = flow[1:] / flow[:-1]
    assert (ratios > 1).all()  # growing toward the loss at every step


def test_a_sweep_the_loss_does_not_read_gets_zeros():
    layer = _layer("gru", "compiled", bidirectional=True)
    x = torch.randn(4, 2, 3, dtype=F64)
    flow = diagnostics.gradient_flow(layer, x, lambda out: out[..., :4].sum())
    assert flow[0].gt(0).all() and flow[1].eq(0).all()


def test_probes_are_silent_unless_listened_to():
    assert claim_slot((2, 2), False) is None
    with listening() as probe:
        assert claim_slot((2, 1), True) is probe.sweeps[0]
        with listening() as inner:
            claim_slot((1,), False)
        assert len(inner.sweeps) == 1 and len(probe.sweeps) == 1


@pytest.mark.parametrize("bad", [torch.nn.LSTM(3, 4), torch.nn.Linear(3, 4), "lstm"])
def test_a_layer_that_is_not_rnnkit_s_gets_one_line(bad):
    with pytest.raises(TypeError) as info:
        diagnostics.gradient_flow(bad, torch.randn(2, 1, 3))
    message = str(info.value)
    assert "\n" not in message and "rnnkit" in message
    if isinstance(bad, torch.nn.LSTM):
        assert "rnnkit.LSTM" in message and "load_state_dict" in message


def test_token_ids_and_non_scalar_losses_get_one_line():
    layer = _layer("gru", "compiled")
    with pytest.raises(TypeError, match="embed token ids first"):
        diagnostics.gradient_flow(layer, torch.zeros(3, 1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="scalar"):
        diagnostics.gradient_flow(layer, torch.randn(3, 1, 3, dtype=F64), lambda out: out)


# ---------------------------------------------------------------- record and gate_stats


@pytest.mark.parametrize("name", NAMES)
def test_every_cell_reports_the_probes_it_declares(name):
    layer = _layer(name, "reference", num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, 3, dtype=F64)
    recording = diagnostics.record(layer, x)
    kinds = layer.cell.probe_kinds()
    output, _ = layer(x)
    D = 2
    for k in range(layer.num_layers * D):
        assert set(recording.gates[k]) == set(kinds)
        for gate, values in recording.gates[k].items():
            assert values.shape == (5, 2, layer.hidden_size)
            if kinds[gate] == "sigmoid":
                assert values.gt(0).all() and values.lt(1).all()
            elif kinds[gate] == "tanh":
                assert values.abs().le(1).all()
            elif kinds[gate] == "relu":
                assert values.ge(0).all()
    # the recording's top layer is the layer's output, as the engine computes it
    top = torch.cat(recording.hidden[-D:], dim=-1)
    torch.testing.assert_close(top, output, rtol=1e-9, atol=1e-12)


def test_lstm_gates_are_the_textbook_ones():
    layer = _layer("lstm", "reference")
    x = torch.randn(3, 1, 3, dtype=F64)
    recording = diagnostics.record(layer, x)
    w_ih, w_hh = layer.weight_ih_l0, layer.weight_hh_l0
    b = layer.bias_ih_l0 + layer.bias_hh_l0
    a = x[0, 0] @ w_ih.t() + b  # h_0 = 0
    i, f, g, o = a.chunk(4)
    gates = {g_: v[0, 0] for g_, v in recording.gates[0].items()}
    torch.testing.assert_close(gates["input"], torch.sigmoid(i))
    torch.testing.assert_close(gates["forget"], torch.sigmoid(f))
    torch.testing.assert_close(gates["candidate"], torch.tanh(g))
    torch.testing.assert_close(gates["output"], torch.sigmoid(o))
    h1 = recording.hidden[0][0, 0]
    a2 = x[1, 0] @ w_ih.t() + h1 @ w_hh.t() + b
    torch.testing.assert_close(recording.gates[0]["forget"][1, 0], torch.sigmoid(a2.chunk(4)[1]))


def test_gate_stats_count_saturation_by_the_stated_rule():
    layer = _layer("gru", "reference")
    with torch.no_grad():
        layer.bias_ih_l0[4:8] = 10.0  # the update gate z: pinned at 1
    x = torch.randn(6, 3, 3, dtype=F64)
    stats = diagnostics.gate_stats(layer, x)
    assert stats.saturated[0]["update"] == 1.0
    assert stats.mean[0]["update"] > 0.95
    recording = diagnostics.record(layer, x)
    for gate, kind in stats.kinds.items():
        values = recording.gates[0][gate]
        assert math.isclose(
            stats.saturated[0][gate], float(saturated(values, kind).double().mean())
        )
        assert stats.over_time[0][gate].shape == (6,)
    rows = stats.rows()
    assert {r["gate"] for r in rows} == {"reset", "update", "candidate"}


def test_gate_stats_skip_the_padding_of_short_sequences():
    layer = _layer("lstm", "reference")
    x = torch.randn(4, 2, 3, dtype=F64)
    x[2:, 1] = 1e6  # the padding of the second sequence: would saturate every gate
    stats = diagnostics.gate_stats(layer, x, lengths=torch.tensor([4, 2]))
    alone = diagnostics.gate_stats(layer, x[:, :1])
    short = diagnostics.gate_stats(layer, x[:2, 1:])
    for gate in stats.kinds:
        n_long, n_short = 4, 2
        expected = (alone.saturated[0][gate] * n_long + short.saturated[0][gate] * n_short) / 6
        assert math.isclose(stats.saturated[0][gate], expected, rel_tol=1e-9)


def test_saturation_rules():
    v = torch.tensor([0.01, 0.5, 0.99])
    assert saturated(v, "sigmoid").tolist() == [True, False, True]
    assert saturated(torch.tensor([-0.99, 0.0, 0.96]), "tanh").tolist() == [True, False, True]
    assert saturated(torch.tensor([0.0, 2.0]), "relu").tolist() == [True, False]


# ---------------------------------------------------------------- the Jacobian spectrum


@pytest.mark.parametrize("name", NAMES)
def test_jacobian_spectrum_products_bound_the_gradient_flow(name):
    """‖∂L/∂s_{T-d}‖ = ‖g^T ∂s_T/∂s_{T-d}‖ <= ‖g‖ σ_max(∂s_T/∂s_{T-d}): the products' spectrum
    is the gradient's envelope, for every cell."""
    layer = _layer(name, "reference")
    x = torch.randn(6, 1, 3, dtype=F64)
    spectrum = diagnostics.jacobian_spectrum(layer, x)
    S = spectrum.state_width
    assert spectrum.step[0].shape == (6, S)
    assert spectrum.product[0].shape == (6, S)
    # the first product is the last step's Jacobian itself
    torch.testing.assert_close(spectrum.product[0][0], spectrum.step[0][-1])
    # submultiplicativity: σ_max(AB) <= σ_max(A) σ_max(B)
    largest = spectrum.largest_step()[0]
    bound = torch.cumprod(largest.flip(0), 0)
    assert (spectrum.largest_product()[0] <= bound * (1 + 1e-9)).all()


def test_jacobian_of_an_elman_step_is_diag_tanh_prime_times_w():
    layer = _layer("rnn", "reference")
    x = torch.randn(3, 1, 3, dtype=F64)
    spectrum = diagnostics.jacobian_spectrum(layer, x)
    recording = diagnostics.record(layer, x)
    h = recording.hidden[0][:, 0]
    J2 = torch.diag(1 - h[2] ** 2) @ layer.weight_hh_l0
    torch.testing.assert_close(spectrum.step[0][2], torch.linalg.svdvals(J2))
    J1 = torch.diag(1 - h[1] ** 2) @ layer.weight_hh_l0
    torch.testing.assert_close(spectrum.product[0][1], torch.linalg.svdvals(J2 @ J1))


def test_jacobian_of_a_reverse_sweep_runs_from_its_own_end():
    layer = _layer("rnn", "reference", bidirectional=True)
    x = torch.randn(3, 1, 3, dtype=F64)
    spectrum = diagnostics.jacobian_spectrum(layer, x)
    h = diagnostics.record(layer, x).hidden[1][:, 0]
    w = layer.weight_hh_l0_reverse
    J0 = torch.diag(1 - h[0] ** 2) @ w  # ∂h_0/∂h_1 in reverse
    J1 = torch.diag(1 - h[1] ** 2) @ w
    torch.testing.assert_close(spectrum.product[1][0], torch.linalg.svdvals(J0))
    torch.testing.assert_close(spectrum.product[1][1], torch.linalg.svdvals(J0 @ J1))


def test_an_lstm_state_includes_its_cell_state():
    layer = _layer("lstm", "reference")
    spectrum = diagnostics.jacobian_spectrum(layer, torch.randn(4, 2, 3, dtype=F64), sample=1)
    assert spectrum.state_width == 2 * layer.hidden_size
    with pytest.raises(ValueError, match="sample"):
        diagnostics.jacobian_spectrum(layer, torch.randn(4, 2, 3, dtype=F64), sample=2)
