"""Naive-Bayes log-count ratios of hashed features: how strongly each feature points to each
class, the scaling of a linear path's features in NBSVM (Wang and Manning 2012).

classify's n-gram path and tag's token-feature path multiply each feature's learned weight by
its ratio (`--ngram-scaling nb`, `--feature-scaling nb`), computed once from the training set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["log_count_ratios"]


def log_count_ratios(
    bags: Sequence[Sequence[int]],
    labels: Sequence[int],
    buckets: int,
    classes: int,
    alpha: float = 1.0,
) -> torch.Tensor:
    """(buckets, classes) float32: for each class, the log-count ratio of every bucket, that
    class's texts against the other classes' (Wang and Manning 2012, one class against the
    rest; two classes give r and -r):

        p = alpha + number of the class's texts holding the bucket,  q = the same of the rest
        r = log(p / sum(p)) - log(q / sum(q))

    A text counts once per bucket however often it holds it (the binarized counts NBSVM found
    best). Labels < 0 (unlabelled texts) are left out."""
    if buckets < 1 or classes < 1:
        raise ValueError(
            f"log_count_ratios: buckets and classes must be >= 1; got {buckets}, {classes}"
        )
    held = [(ids, label) for ids, label in zip(bags, labels, strict=True) if label >= 0]
    flat = torch.tensor([i for ids, _ in held for i in ids], dtype=torch.long)
    owner = torch.tensor([label for ids, label in held for _ in ids], dtype=torch.long)
    present = torch.zeros(classes, buckets, dtype=torch.float64)
    present.index_put_((owner, flat), torch.ones(len(flat), dtype=torch.float64), accumulate=True)
    p = present + alpha
    q = present.sum(0, keepdim=True) - present + alpha
    ratios = (p / p.sum(1, keepdim=True)).log() - (q / q.sum(1, keepdim=True)).log()
    return ratios.T.float().contiguous()
