"""A linear path over a bag of hashed features: nn.EmbeddingBag (mode "sum") with its weights
starting at zero and, optionally, scaled per feature and output by fixed ratios.

With `ratios` the weight of feature j for output k is V[j, k] * R[j, k]: V is learned, R a
buffer the task fills before training (rnnkit.data.feature_ratios: naive-Bayes log-count
ratios, NBSVM's scaling) and saved with the weights. The optimizer moves V, so a feature whose
ratio is large learns fast and one whose ratio is near zero hardly moves. The parameter keeps
nn.EmbeddingBag's name, `weight`, so models saved before the ratios load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LinearBag"]


class LinearBag(nn.EmbeddingBag):
    """Call: (ids (N,), offsets (B,), per_sample_weights (N,) or None) -> (B, outputs)."""

    def __init__(self, features: int, outputs: int, ratios: bool = False) -> None:
        super().__init__(features, outputs, mode="sum")
        nn.init.zeros_(self.weight)
        # None: no ratios, and no entry in the state dict
        self.register_buffer("ratios", torch.ones(features, outputs) if ratios else None)

    def effective_weight(self) -> Tensor:
        """(features, outputs): the weight the bag is summed with, the ratios applied."""
        return self.weight if self.ratios is None else self.weight * self.ratios

    def forward(self, ids: Tensor, offsets: Tensor, per_sample_weights=None) -> Tensor:
        return F.embedding_bag(
            ids, self.effective_weight(), offsets, mode="sum", per_sample_weights=per_sample_weights
        )
