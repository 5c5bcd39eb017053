"""explorer.html: a self-contained page to read a text through one hidden unit at a time.

In the spirit of Karpathy, Johnson & Fei-Fei's "Visualizing and understanding recurrent
networks" and Strobelt et al.'s LSTMVis: the text is drawn token by token, each token coloured by
the chosen unit's activation after reading it (red above zero, blue below); the units are listed
by how selective they are; a click or the arrow keys change the unit; a search box lists the
units that best tell a pattern's positions from the rest of the text.

The page needs no network: its script, style and data are inline. The text is the user's, so it
never reaches the page as markup: the data travels as JSON inside a <script type=
"application/json"> element with every character that could end or open an element escaped
(<, >, & and the two JavaScript line separators), and the script draws it with textContent only.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["explorer_html", "selectivity", "write_explorer"]

TEMPLATE = Path(__file__).with_name("explorer_page.html")
DATA_MARK = "/*RNNKIT_DATA*/"


def selectivity(activations: Tensor) -> Tensor:
    """How selective each unit is over a text, (units,): the standard deviation of its
    activation across the tokens (a unit that stays put tells nothing apart). `activations` is
    (tokens, units)."""
    return (
        activations.std(dim=0, unbiased=False)
        if activations.shape[0] > 1
        else (activations.new_zeros(activations.shape[1]))
    )


def _script_safe_json(value) -> str:
    """JSON that cannot end or open an element when placed inside a <script> element."""
    text = json.dumps(value, ensure_ascii=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


def explorer_html(tokens: list[str], activations: Tensor, *, title: str, layer: str) -> str:
    """The page for `tokens` and their activations (tokens, units), values in [-1, 1] for tanh
    units (others are scaled by their largest magnitude for colour, shown as they are)."""
    if activations.dim() != 2 or activations.shape[0] != len(tokens):
        raise ValueError(
            f"explorer: activations must be (tokens, units) with {len(tokens)} tokens; got "
            f"{tuple(activations.shape)}"
        )
    values = activations.detach().to(torch.float32).cpu().contiguous()
    scale = float(values.abs().max()) if values.numel() else 1.0
    scale = scale if scale > 0 else 1.0
    # int8 of value / scale: a byte per value keeps a page of thousands of tokens x hundreds
    # of units a few megabytes, and 1/127 of the range is finer than a colour step
    quantized = torch.round(values / scale * 127).clamp(-127, 127).to(torch.int8)
    order = torch.argsort(selectivity(values), descending=True)
    data = {
        "title": title,
        "layer": layer,
        "tokens": tokens,
        "units": values.shape[1],
        "scale": scale,
        "values": base64.b64encode(quantized.numpy().tobytes()).decode("ascii"),
        "ranked": order.tolist(),
        "selectivity": [round(float(v), 5) for v in selectivity(values)],
    }
    page = TEMPLATE.read_text(encoding="utf-8")
    if DATA_MARK not in page:
        raise RuntimeError(f"{TEMPLATE} has lost its data mark {DATA_MARK}")
    return page.replace(DATA_MARK, _script_safe_json(data))


def write_explorer(path: Path, tokens: list[str], activations: Tensor, **labels) -> Path:
    path.write_text(explorer_html(tokens, activations, **labels), encoding="utf-8")
    return path
