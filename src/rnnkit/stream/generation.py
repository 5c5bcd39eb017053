"""Fused token generation for rnnkit's LanguageModel: the whole decoding loop in one numba call.

Per token, one compiled step runs the layer stack (every layer and gate), the output layer and
the draw (greedy, temperature, top-k, top-p), with no Python in between (rnnkit.stream.kernels.
generate_tokens). The distribution is rnnkit.generate.sample_next's; the random stream is
numba's generator seeded from `seed`, so the same seed gives the same text, but not the text the
eager path draws with torch's generator. Without a seed the kernel's seed is drawn from torch's
global generator, so `torch.manual_seed` still makes a run reproducible.

Inference only (no autograd); dropout is not applied (generation runs in eval mode anyway).
`unavailable_reason(model)` says in one line why a model cannot take this path, or None.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["fused_decode", "unavailable_reason"]

_DTYPES = (torch.float32, torch.float64)


def unavailable_reason(model) -> str | None:
    """None when fused generation serves `model`, else a one-line reason."""
    from ..data import OneHot
    from ..models.language_model import LanguageModel
    from .weights import cell_codes

    if not isinstance(model, LanguageModel):
        return f"the model is a {type(model).__name__}, not an rnnkit LanguageModel"
    layers = model.layers
    if not hasattr(layers, "_weights_for"):
        return f"its layer stack is a {type(layers).__name__}, not an rnnkit layer"
    try:
        cell_codes(layers)
    except ValueError as error:
        return str(error)
    if layers.bidirectional:
        return "its layer stack is bidirectional"
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
    return None


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy())


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
    from . import kernels as K
    from .weights import prepared_stack

    reason = unavailable_reason(model)
    if reason is not None:
        raise ValueError(f"fused generation cannot serve this model: {reason}")
    if length == 0:
        return []
    start = np.asarray(list(start_ids), dtype=np.int64)
    V = model.head.weight.shape[0]
    if start.size == 0:
        raise ValueError("fused generation: start_ids must hold at least one token")
    if start.min() < 0 or start.max() >= V:
        raise ValueError(f"fused generation: start ids must lie in [0, {V}); got {start.tolist()}")
    with torch.no_grad():
        prepared = prepared_stack(model.layers)
        np_dtype = prepared.np_dtype
        if isinstance(model.embedding, OneHot):
            # W_ih x for a one-hot x is a column of W_ih: layer 0's input rows per token
            w_ih = model.layers._weights_for(0, 0)[0]  # (G, V)
            table, projected = _numpy(w_ih.t()), True  # (V, G)
        else:
            table, projected = _numpy(model.embedding.weight), False  # (V, E)
        head_w = _numpy(model.head.weight)  # (V, R)
        head_b = _numpy(model.head.bias) if model.head.bias is not None else np.zeros(V, np_dtype)
    banned_mask = np.zeros(V, dtype=np.bool_)
    banned_mask[list(banned)] = True
    L = prepared.num_layers
    r = np.zeros((L, 1, prepared.recurrent_size), dtype=np_dtype)
    c = np.zeros((L, 1, prepared.carried_size), dtype=np_dtype)
    if seed is None:  # greedy draws nothing, so it leaves torch's generator alone
        seed = 0 if greedy else int(torch.randint(0, 2**31 - 1, ()))
    out = np.empty(length, dtype=np.int64)
    n = K.generate_tokens(
        prepared.kind,
        prepared.act,
        prepared.out_act,
        prepared.addresses,
        prepared.input_sizes,
        prepared.hidden_size,
        r,
        c,
        table,
        projected,
        head_w,
        head_b,
        start,
        length,
        bool(greedy),
        float(temperature),
        0 if top_k is None else int(top_k),
        1.0 if top_p is None else float(top_p),
        banned_mask,
        -1 if eos_id is None else int(eos_id),
        int(seed) % 2**32,
        out,
    )
    return out[:n].tolist()
