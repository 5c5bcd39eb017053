"""LayerNormLSTM and LayerNormGRU: rnnkit's engine against a hand-written autograd loop.

The oracle is rnnkit.baselines (F.layer_norm and plain ops, one step at a time, differentiated by
autograd), stacked and run in both directions here by hand. Outputs, final states and the
gradients of the input, the initial states and every parameter (γ and β included) must agree to
1e-9 in float64, for stacked, bidirectional, packed, lengths=, batch_first, unbatched input and
with hx. gradcheck checks the cells' hand-written backward (with the cells' own parameters)
through the engine, the compiled layer-norm sweeps are checked against the reference sweep, and
a short training run shows the layers learn.
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.baselines import layer_norm_gru_loop, layer_norm_lstm_loop
from rnnkit.cells import LayerNormGRUCell, LayerNormLSTMCell
from rnnkit.engine import SweepSpec, sweep

TOLERANCE = 1e-9
KINDS = ["LayerNormLSTM", "LayerNormGRU"]
F64 = torch.float64

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny sizes: one thread is fastest


def _perturb(layer: torch.nn.Module, generator: torch.Generator) -> None:
    """Move γ, β and b off their initial 1 and 0 so that every parameter matters."""
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.3 * torch.randn(p.shape, dtype=p.dtype, generator=generator))


def _oracle(layer, x: torch.Tensor, lengths, hx):
    """The layer's math by hand: x (T, B, I) padded, lengths (B,) or None, hx as the layer
    takes it (batched) or None. Returns (output (T, B, D*H), h_n, c_n or None)."""
    lstm = isinstance(layer, rnnkit.LayerNormLSTM)
    L, D, H = layer.num_layers, 2 if layer.bidirectional else 1, layer.hidden_size
    B = x.shape[1]
    if hx is None:
        zeros = x.new_zeros(L * D, B, H)
        hx = (zeros, zeros) if lstm else zeros
    h0, c0 = hx if lstm else (hx, None)
    names = ("weight_ih", "weight_hh", *layer.cell.param_names)
    layer_input, finals_h, finals_c = x, [], []
    for k in range(L):
        outputs = []
        for d in range(D):
            suffix = f"_l{k}" + ("_reverse" if d else "")
            params = {name: getattr(layer, name + suffix) for name in names}
            index, reverse = k * D + d, d == 1
            if lstm:
                out, h, c = layer_norm_lstm_loop(
                    layer_input, h0[index], c0[index], params, lengths=lengths, reverse=reverse
                )
                finals_c.append(c)
            else:
                out, h = layer_norm_gru_loop(
                    layer_input, h0[index], params, lengths=lengths, reverse=reverse
                )
            outputs.append(out)
            finals_h.append(h)
        layer_input = torch.cat(outputs, dim=-1)
    return layer_input, torch.stack(finals_h), torch.stack(finals_c) if lstm else None


CASES = [
    # (kind, constructor kwargs, input form, with hx)
    ("LayerNormLSTM", {}, "padded", False),
    ("LayerNormLSTM", {"num_layers": 2, "bidirectional": True}, "packed", True),
    ("LayerNormLSTM", {"num_layers": 3, "bias": False}, "padded", True),
    ("LayerNormLSTM", {"bidirectional": True, "batch_first": True}, "padded", True),
    ("LayerNormLSTM", {"num_layers": 2}, "unbatched", True),
    ("LayerNormLSTM", {"bidirectional": True, "bias": False}, "packed", False),
    ("LayerNormLSTM", {"num_layers": 2, "bidirectional": True}, "lengths", True),
    ("LayerNormGRU", {}, "padded", False),
    ("LayerNormGRU", {"num_layers": 2, "bidirectional": True}, "packed", True),
    ("LayerNormGRU", {"num_layers": 3, "bias": False}, "padded", True),
    ("LayerNormGRU", {"bidirectional": True, "batch_first": True}, "padded", True),
    ("LayerNormGRU", {"num_layers": 2}, "unbatched", True),
    ("LayerNormGRU", {"bidirectional": True, "bias": False}, "packed", False),
    ("LayerNormGRU", {"bidirectional": True, "batch_first": True}, "lengths", False),
]


@pytest.mark.parametrize("backend", ["reference", "compiled"])
@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"{c[0]}-{','.join(c[1]) or 'plain'}-{c[2]}-hx{int(c[3])}"
)
def test_layer_matches_hand_written_loop(case, backend):
    kind, kwargs, form, with_hx = case
    generator = torch.Generator().manual_seed(11)
    I, H, T = 3, 5, 6
    B = 1 if form == "unbatched" else 4
    torch.manual_seed(3)
    layer = getattr(rnnkit, kind)(I, H, dtype=F64, backend=backend, **kwargs)
    _perturb(layer, generator)
    L, D = layer.num_layers, 2 if layer.bidirectional else 1
    lstm = kind == "LayerNormLSTM"

    x = torch.randn(T, B, I, dtype=F64, generator=generator, requires_grad=True)
    lengths = torch.tensor([4, 6, 1, 3]) if form in ("packed", "lengths") else None
    hx = None
    if with_hx:
        hx = [torch.randn(L * D, B, H, dtype=F64, generator=generator) for _ in range(1 + lstm)]
        hx = [h.requires_grad_() for h in hx]

    # rnnkit's layer, called in the case's input form
    if form == "packed":
        call_input = pack_padded_sequence(x, lengths, enforce_sorted=False)
    elif form == "unbatched":
        call_input = x[:, 0]
    else:
        call_input = x.transpose(0, 1) if layer.batch_first else x
    if hx is None:
        call_hx = None
    elif form == "unbatched":
        call_hx = tuple(h[:, 0] for h in hx) if lstm else hx[0][:, 0]
    else:
        call_hx = tuple(hx) if lstm else hx[0]
    if form == "lengths":  # a padded batch made variable-length by lengths=, no packing
        output, finals = layer(call_input, call_hx, lengths=lengths)
    else:
        output, finals = layer(call_input, call_hx)
    if form == "packed":
        assert isinstance(output, PackedSequence)
        output, _ = pad_packed_sequence(output, total_length=T)
    elif form == "unbatched":
        output = output.unsqueeze(1)
    elif layer.batch_first:
        output = output.transpose(0, 1)
    h_n, c_n = finals if lstm else (finals, None)
    if form == "unbatched":
        h_n = h_n.unsqueeze(1)
        c_n = c_n.unsqueeze(1) if lstm else None

    expected, e_h, e_c = _oracle(
        layer, x, lengths, None if hx is None else (tuple(hx) if lstm else hx[0])
    )
    torch.testing.assert_close(output, expected, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(h_n, e_h, atol=TOLERANCE, rtol=0)
    if lstm:
        torch.testing.assert_close(c_n, e_c, atol=TOLERANCE, rtol=0)

    # gradients of a loss that reads every output and every final state
    weights = [torch.randn(t.shape, dtype=F64, generator=generator) for t in (output, h_n)]
    if lstm:
        weights.append(torch.randn(c_n.shape, dtype=F64, generator=generator))

    def loss(out, h, c):
        total = (out * weights[0]).sum() + (h * weights[1]).sum()
        return total + (c * weights[2]).sum() if lstm else total

    wrt = [x, *(hx or []), *layer.parameters()]
    ours = torch.autograd.grad(loss(output, h_n, c_n), wrt)
    theirs = torch.autograd.grad(loss(expected, e_h, e_c), wrt)
    names = ["x", *(f"hx[{i}]" for i in range(len(hx or []))), *dict(layer.named_parameters())]
    for name, a, e in zip(names, ours, theirs, strict=True):
        torch.testing.assert_close(a, e, atol=TOLERANCE, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


CELL_SETUPS = [
    pytest.param(cls, bias, id=f"{cls.__name__}-bias{int(bias)}")
    for cls in (LayerNormLSTMCell, LayerNormGRUCell)
    for bias in (True, False)
]


@pytest.mark.parametrize("layout", ["padded", "packed"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(("cell_type", "bias"), CELL_SETUPS)
def test_engine_gradcheck_with_cell_parameters(cell_type, bias, reverse, layout):
    """gradcheck of one sweep: input, initial states, weights and the cell's γ, β (and b)."""
    generator = torch.Generator().manual_seed(5)
    I, H = 3, 4
    cell = cell_type(bias=bias)
    G = cell.num_gates * H
    batch_sizes = (2, 2, 2) if layout == "padded" else (3, 2, 1)
    N, B = sum(batch_sizes), batch_sizes[0]

    def rand(*shape):
        return torch.randn(*shape, dtype=F64, generator=generator).requires_grad_()

    data, r0 = rand(N, I), rand(B, H)
    carried0 = tuple(rand(B, H) for _ in range(cell.num_carried))
    w_ih, w_hh = rand(G, I), rand(G, H)
    own = tuple(
        (p + 0.3 * torch.randn(p.shape, dtype=F64, generator=generator)).requires_grad_()
        for p in cell.init_params(H, dtype=F64)
    )
    assert (
        len(own)
        == len(cell.param_names)
        == (7 if cell_type is LayerNormLSTMCell else 6)
        - (0 if bias else (1 if cell_type is LayerNormLSTMCell else 2))
    )
    spec = SweepSpec(cell, batch_sizes, reverse=reverse)
    k = len(carried0)

    def run(data, r0, *rest):
        carried, (w_ih, w_hh), params = rest[:k], rest[k : k + 2], rest[k + 2 :]
        outputs, r_final, carried_final = sweep(
            spec, data, r0, carried, (w_ih, w_hh, None, None, None, None, *params)
        )
        return (outputs, r_final, *carried_final)

    assert gradcheck(run, (data, r0, *carried0, w_ih, w_hh, *own), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
def test_layer_gradcheck_stacked_bidirectional_packed(kind):
    """The whole layer (2 layers, both directions, packed input, hx) passes gradcheck."""
    torch.manual_seed(4)
    I, H = 2, 3
    layer = getattr(rnnkit, kind)(I, H, num_layers=2, bidirectional=True, dtype=F64)
    _perturb(layer, torch.Generator().manual_seed(1))
    lstm = kind == "LayerNormLSTM"
    sequences = [torch.randn(n, I, dtype=F64) for n in (3, 1, 2)]
    states = [torch.randn(4, 3, H, dtype=F64, requires_grad=True) for _ in range(1 + lstm)]
    names = [name for name, _ in layer.named_parameters()]

    def run(*tensors):
        seqs, hx, weights = tensors[:3], tensors[3 : 3 + len(states)], tensors[3 + len(states) :]
        packed = torch.nn.utils.rnn.pack_sequence(list(seqs), enforce_sorted=False)
        output, finals = torch.func.functional_call(
            layer, dict(zip(names, weights, strict=True)), (packed, tuple(hx) if lstm else hx[0])
        )
        finals = finals if isinstance(finals, tuple) else (finals,)
        return (output.data, *finals)

    inputs = (
        [s.requires_grad_() for s in sequences]
        + states
        + [p.detach().clone().requires_grad_() for p in layer.parameters()]
    )
    assert gradcheck(run, tuple(inputs), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
def test_parameters_names_shapes_and_initial_values(kind):
    layer = getattr(rnnkit, kind)(3, 4, num_layers=2, bidirectional=True)
    params = dict(layer.named_parameters())
    G = 16 if kind == "LayerNormLSTM" else 12
    expected = {
        "weight_ih_l0": (G, 3),
        "weight_hh_l0": (G, 4),
        "weight_ih_l1_reverse": (G, 8),
        "ln_ih_weight_l1_reverse": (G,),
        "ln_hh_bias_l0": (G,),
    }
    if kind == "LayerNormLSTM":
        expected.update(bias_l0=(G,), ln_cell_weight_l1=(4,), ln_cell_bias_l0_reverse=(4,))
    else:
        expected.update(bias_ih_l0=(G,), bias_hh_l1_reverse=(G,))
    for name, shape in expected.items():
        assert params[name].shape == shape, name
    per_sweep = 9 if kind == "LayerNormLSTM" else 8
    assert len(params) == 4 * per_sweep
    for name, p in params.items():
        if "ln_" in name and name.split("_")[2] == "weight":
            assert torch.equal(p, torch.ones_like(p)), name  # γ starts at 1
        elif name.startswith(("ln_", "bias")):
            assert torch.equal(p, torch.zeros_like(p)), name  # β and b start at 0
        else:
            assert p.abs().max() <= 0.5 and p.std() > 0.1, name  # uniform ±1/sqrt(4)
    without_bias = getattr(rnnkit, kind)(3, 4, bias=False)
    assert not any(n.startswith("bias") for n, _ in without_bias.named_parameters())
    assert any(n.startswith("ln_ih_bias") for n, _ in without_bias.named_parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_backend_choice_is_explained_and_native_is_refused(kind):
    layer = getattr(rnnkit, kind)(3, 4)
    layer(torch.randn(5, 2, 3))
    assert layer.resolved_backend == "compiled"
    assert "torch has none" in layer.explain() and "'compiled'" in layer.explain()
    layer.to(torch.bfloat16)(torch.randn(5, 2, 3, dtype=torch.bfloat16))
    assert layer.resolved_backend == "reference"
    assert "compiled kernels run float32 and float64" in layer.explain()
    with pytest.raises(ValueError, match=rf"{kind}: backend='native' is not available"):
        getattr(rnnkit, kind)(3, 4, backend="native")


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip(kind):
    torch.manual_seed(0)
    a = getattr(rnnkit, kind)(3, 4, num_layers=2, dtype=F64)
    _perturb(a, torch.Generator().manual_seed(2))
    b = getattr(rnnkit, kind)(3, 4, num_layers=2, dtype=F64)
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 2, 3, dtype=F64)
    torch.testing.assert_close(a(x)[0], b(x)[0], atol=0, rtol=0)


def test_sweep_names_the_cell_parameters_it_expects():
    cell = LayerNormLSTMCell()
    with pytest.raises(ValueError, match=r"weights must be \(w_ih, .*, ln_cell_bias\) for "):
        sweep(
            SweepSpec(cell, (1,)),
            torch.zeros(1, 2),
            torch.zeros(1, 3),
            (torch.zeros(1, 3),),
            (None,) * 6,
        )


@pytest.mark.parametrize("kind", KINDS)
def test_layer_learns_which_symbol_is_in_the_majority(kind):
    """A short Adam run on a task chance gets half right: which of two symbols (one-hot) fills
    most of an 11-step sequence? The layer's last output feeds a linear head. (One-hot input,
    not a scalar: LN of W_ih x for a scalar x keeps only the sign of x.)"""
    torch.manual_seed(0)
    T, H = 11, 16
    layer = getattr(rnnkit, kind)(2, H)
    head = torch.nn.Linear(H, 1)
    optimizer = torch.optim.Adam([*layer.parameters(), *head.parameters()], lr=0.02)

    def batch(size: int):
        symbols = torch.randint(0, 2, (T, size))
        x = torch.nn.functional.one_hot(symbols, 2).float()  # (T, B, 2)
        return x, (symbols.sum(0) * 2 > T).float().unsqueeze(1)  # (B, 1)

    for _ in range(100):
        x, y = batch(64)
        output, _ = layer(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(output[-1]), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        x, y = batch(1024)
        accuracy = ((head(layer(x)[0][-1]) > 0).float() == y).float().mean().item()
    assert accuracy > 0.95, accuracy
    initial = dict(getattr(rnnkit, kind)(2, H).named_parameters())
    for name, p in layer.named_parameters():  # γ and β learned too: they receive gradients
        assert not torch.equal(p, initial[name]), name


# --- the layer-norm cells on the compiled engine (rnnkit.engine.compiled) ---------------------


def _sweep_case(cell_type, bias, batch_sizes, generator, I=3, H=4):
    cell = cell_type(bias=bias)
    G, N, B = cell.num_gates * H, sum(batch_sizes), batch_sizes[0]

    def rand(*shape):
        return torch.randn(*shape, dtype=F64, generator=generator).requires_grad_()

    own = tuple(
        (p + 0.3 * torch.randn(p.shape, dtype=F64, generator=generator)).requires_grad_()
        for p in cell.init_params(H, dtype=F64)
    )
    carried0 = tuple(rand(B, H) for _ in range(cell.num_carried))
    return cell, (rand(N, I), rand(B, H), *carried0, rand(G, I), rand(G, H), *own)


def _run(sweep_fn, cell, batch_sizes, reverse, tensors):
    k = cell.num_carried
    data, r0, carried0 = tensors[0], tensors[1], tensors[2 : 2 + k]
    w_ih, w_hh, own = tensors[2 + k], tensors[3 + k], tensors[4 + k :]
    outputs, r_final, carried_final = sweep_fn(
        SweepSpec(cell, batch_sizes, reverse=reverse),
        data,
        r0,
        carried0,
        (w_ih, w_hh, None, None, None, None, *own),
    )
    return (outputs, r_final, *carried_final)


@pytest.mark.parametrize("layout", ["padded", "packed"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(("cell_type", "bias"), CELL_SETUPS)
def test_compiled_sweep_matches_reference(cell_type, bias, reverse, layout):
    """Outputs, final states and every gradient (γ, β included) equal the reference sweep's."""
    from rnnkit.engine.compiled import compiled_sweep as layernorm_compiled_sweep

    generator = torch.Generator().manual_seed(8)
    batch_sizes = (3, 3, 3, 3) if layout == "padded" else (4, 3, 3, 1)
    cell, tensors = _sweep_case(cell_type, bias, batch_sizes, generator, I=3, H=5)
    ours = _run(layernorm_compiled_sweep, cell, batch_sizes, reverse, tensors)
    expected = _run(sweep, cell, batch_sizes, reverse, tensors)
    for a, e in zip(ours, expected, strict=True):
        torch.testing.assert_close(a, e, atol=TOLERANCE, rtol=0)
    weights = [torch.randn(t.shape, dtype=F64, generator=generator) for t in ours]
    grads = [
        torch.autograd.grad(sum((t * w).sum() for t, w in zip(out, weights, strict=True)), tensors)
        for out in (ours, expected)
    ]
    for a, e in zip(*grads, strict=True):
        torch.testing.assert_close(a, e, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cell_type", [LayerNormLSTMCell, LayerNormGRUCell])
def test_compiled_sweep_gradcheck(cell_type, reverse):
    from rnnkit.engine.compiled import compiled_sweep as layernorm_compiled_sweep

    generator = torch.Generator().manual_seed(9)
    batch_sizes = (3, 2, 1)
    cell, tensors = _sweep_case(cell_type, True, batch_sizes, generator)

    def run(*tensors):
        return _run(layernorm_compiled_sweep, cell, batch_sizes, reverse, tensors)

    assert gradcheck(run, tensors, eps=1e-6, atol=1e-7)


def test_compiled_sweep_refuses_other_cells_and_weights():
    from rnnkit.engine.compiled import cannot_compile, compiled_sweep

    cpu = torch.device("cpu")
    assert cannot_compile(LayerNormGRUCell(), torch.float32, cpu) is None
    assert "bfloat16" in cannot_compile(LayerNormLSTMCell(), torch.bfloat16, cpu)
    cell = LayerNormGRUCell(bias=False)
    x, h = torch.zeros(1, 2), torch.zeros(1, 3)
    with pytest.raises(ValueError, match=r"weights must be the six engine weights and \(ln_ih"):
        compiled_sweep(SweepSpec(cell, (1,)), x, h, (), (None,) * 6)


@pytest.mark.parametrize("cell_type", [LayerNormLSTMCell, LayerNormGRUCell])
def test_compiled_sweep_in_float32_agrees_with_float64(cell_type):
    """float32 kernels (vectorized exp, float32 lanes) stay within float32 rounding of the
    float64 reference."""
    from rnnkit.engine.compiled import compiled_sweep as layernorm_compiled_sweep

    generator = torch.Generator().manual_seed(10)
    batch_sizes = (4, 4, 3, 2, 2)
    cell, tensors = _sweep_case(cell_type, True, batch_sizes, generator, I=6, H=16)
    single = tuple(t.detach().float().requires_grad_() for t in tensors)
    ours = _run(layernorm_compiled_sweep, cell, batch_sizes, True, single)
    expected = _run(sweep, cell, batch_sizes, True, tensors)
    for a, e in zip(ours, expected, strict=True):
        torch.testing.assert_close(a.double(), e, atol=2e-5, rtol=1e-4)
    ours_grads = torch.autograd.grad(ours[0].sum(), single)
    expected_grads = torch.autograd.grad(expected[0].sum(), tensors)
    for a, e in zip(ours_grads, expected_grads, strict=True):
        torch.testing.assert_close(a.double(), e, atol=1e-4, rtol=1e-4)
