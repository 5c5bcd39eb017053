"""Fused token generation for rnnkit's LanguageModel: the whole decoding loop in one call into
the layer cell's compiled library (rnnkit/generate/fused.h).

Per token, one library call runs the layer stack on the compiled engine's forward sweep (the
layers' own kept plans), the output layer and the draw (greedy, temperature, top-k, top-p),
with no Python in between. The distribution is rnnkit.generate.sample_next's; the random stream
is a splitmix64 seeded from `seed`, so the same seed gives the same text, but not the text the
eager path draws with torch's generator. Without a seed the stream's seed is drawn from torch's
global generator, so `torch.manual_seed` still makes a run reproducible.

Inference only (no autograd); dropout is not applied (generation runs in eval mode anyway).
`unavailable_reason(model)` says in one line why a model cannot take this path, or None.
"""

from __future__ import annotations

import ctypes

import torch
from torch import nn

from ..engine.compiled import cannot_compile
from ..engine.compiled.library import GenerateArgs, SweepArgs

__all__ = ["fused_decode", "unavailable_reason"]

_DTYPES = (torch.float32, torch.float64)


def unavailable_reason(model) -> str | None:
    """None when fused generation serves `model`, else a one-line reason."""
    from ..data import OneHot
    from ..layers import Recurrent
    from ..models.language_model import LanguageModel

    if not isinstance(model, LanguageModel):
        return f"the model is a {type(model).__name__}, not an rnnkit LanguageModel"
    layers = model.layers
    if not isinstance(layers, Recurrent):
        return f"its layer stack is a {type(layers).__name__}, not an rnnkit layer"
    if layers.bidirectional:
        return "its layer stack is bidirectional (it cannot stream)"
    embedding = model.embedding
    if isinstance(embedding, nn.Embedding):
        if embedding.max_norm is not None:
            return "its embedding has max_norm (renormalized on lookup)"
    elif not isinstance(embedding, OneHot):
        return f"its input encoding is a {type(embedding).__name__}"
    if not isinstance(model.head, nn.Linear):
        return f"its head is a {type(model.head).__name__}, not nn.Linear"
    tokens_in = getattr(embedding, "num_embeddings", None) or embedding.num_classes
    tokens_out = model.head.out_features
    if tokens_in != tokens_out:
        return f"its input encoding has {tokens_in} tokens but its head predicts {tokens_out}"
    params = list(model.parameters())
    dtypes = {p.dtype for p in params}
    if len(dtypes) != 1 or next(iter(dtypes)) not in _DTYPES:
        return f"its parameters are {sorted(str(d) for d in dtypes)}, not one of float32/float64"
    if any(p.device.type != "cpu" for p in params):
        return "it is not on the CPU"
    why_not = cannot_compile(layers.cell, next(iter(dtypes)), torch.device("cpu"))
    if why_not is not None:
        return f"the compiled engine cannot run its cell: {why_not}"
    return None


def _contiguous(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().contiguous()


def fused_decode(
    model,
    start_ids,
    length: int,
    *,
    banned=(),
    eos_id: int | None = None,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
) -> list[int]:
    """Prime `model` with start_ids, then generate up to `length` ids (see module docstring).

    The arguments mean what they mean for rnnkit.generate's step-by-step decoder: `banned` ids
    are never generated, drawing `eos_id` ends the text (it is not returned).
    """
    from ..data import OneHot

    reason = unavailable_reason(model)
    if reason is not None:
        raise ValueError(f"fused generation cannot serve this model: {reason}")
    if length == 0:
        return []
    start = torch.tensor(list(start_ids), dtype=torch.int64)
    V = model.head.weight.shape[0]
    if start.numel() == 0:
        raise ValueError("fused generation: start_ids must hold at least one token")
    if start.min() < 0 or start.max() >= V:
        raise ValueError(f"fused generation: start ids must lie in [0, {V}); got {start.tolist()}")
    layers = model.layers
    dtype = model.head.weight.dtype
    with torch.no_grad():
        plans = layers.inference_plans(1, 1, dtype)
        if plans is None:
            raise ValueError(
                "fused generation cannot serve this model: its layers cannot keep compiled "
                "plans (a non-contiguous parameter or a backend other than auto/compiled)"
            )
        if isinstance(model.embedding, OneHot):
            # W_ih x for a one-hot x is a column of W_ih: layer 0's input projection per token
            table, projected = _contiguous(layers._weights_for(0, 0)[0].t()), 1  # (V, G)
        else:
            table, projected = _contiguous(model.embedding.weight), 0  # (V, E)
        head_w = _contiguous(model.head.weight)  # (V, R)
        head_b = None if model.head.bias is None else _contiguous(model.head.bias)
    L, R, H = layers.num_layers, layers.recurrent_size, layers.hidden_size
    C = layers.cell.num_carried * H
    banned_mask = torch.zeros(V, dtype=torch.uint8)
    banned_mask[list(banned)] = 1
    r = torch.zeros(L, R, dtype=dtype)
    c = torch.zeros(L, max(C, 1), dtype=dtype)
    out = torch.empty(length, dtype=torch.int64)
    if seed is None:  # greedy draws nothing, so it leaves torch's generator alone
        seed = 0 if greedy else int(torch.randint(0, 2**31 - 1, ()))
    layer_args = (SweepArgs * L)(*(plan.args for plan in plans))
    args = GenerateArgs(
        num_layers=L,
        recurrent=R,
        carried_width=C,
        vocab=V,
        layers=ctypes.addressof(layer_args),
        r_state=r.data_ptr(),
        carried=c.data_ptr(),
        table=table.data_ptr(),
        table_width=table.shape[1],
        projected=projected,
        head_w=head_w.data_ptr(),
        head_b=None if head_b is None else head_b.data_ptr(),
        start=start.data_ptr(),
        start_length=start.numel(),
        length=length,
        greedy=int(bool(greedy)),
        top_k=0 if top_k is None else int(top_k),
        temperature=float(temperature),
        top_p=1.0 if top_p is None else float(top_p),
        banned=banned_mask.data_ptr(),
        eos=-1 if eos_id is None else int(eos_id),
        seed=int(seed) % 2**64,
        out=out.data_ptr(),
    )
    produced = plans[0].library.generate(dtype, args)
    return out[:produced].tolist()
