"""rnnkit.Dropout: torch.nn.Dropout with its mask drawn by the compiled engine
(rnnkit.engine.dropout: a hashed mask on every core, recomputed in backward; torch's own
dropout where the engine cannot serve, which `explain()` names)."""

from __future__ import annotations

from torch import Tensor, nn

from ..engine.dropout import dropout, explain_dropout

__all__ = ["Dropout"]


class Dropout(nn.Dropout):
    """torch.nn.Dropout (same argument, same behaviour in eval mode) with the compiled mask.

    `inplace=True` is accepted for drop-in use and computes out of place (the mask is applied
    into a new tensor; autograd needs the input of nothing here, so nothing is lost)."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def explain(self, x: Tensor | None = None) -> str:
        return explain_dropout(x)
