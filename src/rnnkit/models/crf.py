"""Linear-chain conditional random field over K tags (Lafferty et al. 2001; Lample et al. 2016).

The score of a tag sequence y (length n) given emission scores e (T, K):

    s(y) = start[y_0] + Σ_{t<n} e_t[y_t] + Σ_{0<t<n} trans[y_{t-1}, y_t] + end[y_{n-1}]

and p(y | x) = exp(s(y)) / Z with Z = Σ_y' exp(s(y')) over all K^n sequences. The forward
algorithm computes log Z in O(n K²):

    α_0 = start + e_0,   α_t[j] = logsumexp_i(α_{t-1}[i] + trans[i, j]) + e_t[j],
    log Z = logsumexp_j(α_{n-1}[j] + end[j])

and Viterbi replaces logsumexp by max (keeping the argmax for the backtrace).

Constraints: `allowed` (K, K) bool says which transitions i -> j may occur, `allowed_start` (K,)
which tags may open a sequence. A forbidden move scores IMPOSSIBLE (a large negative number
rather than -inf, so no nan can arise in the gradients) in the loss and in decoding alike, so
the model never spends probability on, nor predicts, a forbidden sequence. `bio_constraints`
builds them for BIO tags: I-X only after B-X or I-X, never first.

Batches: emissions (B, T, K), tags (B, T) long, mask (B, T) bool with each row's True steps a
prefix (the sequence's length, at least 1); padded steps are skipped by every computation.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from .._checks import is_int

IMPOSSIBLE = -1e4  # the score of a forbidden transition or start


def bio_constraints(tags: list[str]) -> tuple[list[list[bool]], list[bool]]:
    """(allowed (K, K), allowed_start (K,)) for BIO tags: I-X only after B-X or I-X.

    Tags that are not I-X (O, B-X, or any tag without a BIO prefix) are allowed everywhere.
    """

    def inside_type(tag: str) -> str | None:
        return tag[2:] if tag.startswith(("I-", "I_")) else None

    def entity_type(tag: str) -> str | None:
        return tag[2:] if tag[:2] in ("B-", "I-", "B_", "I_") else None

    allowed = []
    for previous in tags:
        row = []
        for tag in tags:
            kind = inside_type(tag)
            row.append(kind is None or entity_type(previous) == kind)
        allowed.append(row)
    allowed_start = [inside_type(tag) is None for tag in tags]
    return allowed, allowed_start


def violates(sequence: list[str], allowed_pairs: set[tuple[str, str]], starts: set[str]) -> bool:
    """Whether a tag sequence uses a forbidden start or transition."""
    if sequence and sequence[0] not in starts:
        return True
    return any((a, b) not in allowed_pairs for a, b in itertools.pairwise(sequence))


class CRF(nn.Module):
    """Call: (emissions (B, T, K), tags (B, T), mask (B, T)) -> negative log-likelihood (B,)."""

    def __init__(
        self,
        num_tags: int,
        allowed: list[list[bool]] | None = None,
        allowed_start: list[bool] | None = None,
    ) -> None:
        super().__init__()
        if not is_int(num_tags) or num_tags < 1:
            raise ValueError(f"CRF: num_tags must be an int >= 1; got {num_tags!r}")
        K = num_tags
        self.num_tags = K
        self.start = nn.Parameter(torch.empty(K).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(K).uniform_(-0.1, 0.1))
        self.transitions = nn.Parameter(torch.empty(K, K).uniform_(-0.1, 0.1))  # [from, to]
        allowed_t = torch.ones(K, K, dtype=torch.bool)
        start_t = torch.ones(K, dtype=torch.bool)
        if allowed is not None:
            allowed_t = torch.as_tensor(allowed, dtype=torch.bool)
            if allowed_t.shape != (K, K):
                raise ValueError(f"CRF: allowed must be ({K}, {K}); got {tuple(allowed_t.shape)}")
        if allowed_start is not None:
            start_t = torch.as_tensor(allowed_start, dtype=torch.bool)
            if start_t.shape != (K,) or not start_t.any():
                raise ValueError(f"CRF: allowed_start must be ({K},) with some True entry")
        # Constraints are part of the architecture (from the config), not learned: not saved.
        self.register_buffer("allowed", allowed_t, persistent=False)
        self.register_buffer("allowed_start", start_t, persistent=False)

    # ------------------------------------------------------------ scores with constraints

    def _scores(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        """(start (K,), transitions (K, K), end (K,)) with forbidden entries set IMPOSSIBLE."""
        start = self.start.to(dtype).masked_fill(~self.allowed_start, IMPOSSIBLE)
        trans = self.transitions.to(dtype).masked_fill(~self.allowed, IMPOSSIBLE)
        return start, trans, self.end.to(dtype)

    @staticmethod
    def _check(emissions: Tensor, mask: Tensor, tags: Tensor | None = None) -> None:
        if emissions.dim() != 3:
            raise ValueError(f"CRF: emissions must be (B, T, K); got {tuple(emissions.shape)}")
        if mask.shape != emissions.shape[:2] or mask.dtype != torch.bool:
            raise ValueError(
                f"CRF: mask must be a bool tensor of shape {tuple(emissions.shape[:2])}; got "
                f"{mask.dtype} {tuple(mask.shape)}"
            )
        if not mask[:, 0].all():
            raise ValueError("CRF: every sequence needs at least one step (mask[:, 0] all True)")
        if tags is not None and tags.shape != mask.shape:
            raise ValueError(f"CRF: tags must be {tuple(mask.shape)}; got {tuple(tags.shape)}")

    # ------------------------------------------------------------ training

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """s(y) of the given tag sequences: (B,)."""
        self._check(emissions, mask, tags)
        start, trans, end = self._scores(emissions.dtype)
        T = emissions.shape[1]
        m = mask.to(emissions.dtype)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        total = start[tags[:, 0]] + (emit * m).sum(1)
        if T > 1:
            moves = trans[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
            total = total + (moves * m[:, 1:]).sum(1)
        last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)  # (B,)
        return total + end[last]

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """log Z by the forward algorithm: (B,)."""
        self._check(emissions, mask)
        start, trans, end = self._scores(emissions.dtype)
        alpha = start + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.shape[1]):
            # (B, K_from, 1) + (K_from, K_to) -> logsumexp over from -> (B, K_to)
            step = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t : t + 1], step, alpha)  # padded steps keep α
        return torch.logsumexp(alpha + end, dim=1)

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Negative log-likelihood -log p(tags | x) per sequence: (B,)."""
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)

    # ------------------------------------------------------------ decoding

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor) -> list[list[int]]:
        """The highest-scoring allowed tag sequence of each row (Viterbi), cut to its length."""
        self._check(emissions, mask)
        start, trans, end = self._scores(emissions.dtype)
        B, T, K = emissions.shape
        delta = start + emissions[:, 0]  # (B, K)
        pointers = []
        for t in range(1, T):
            candidates = delta.unsqueeze(2) + trans  # (B, K_from, K_to)
            best, arg = candidates.max(dim=1)  # (B, K_to)
            step = best + emissions[:, t]
            live = mask[:, t : t + 1]
            delta = torch.where(live, step, delta)
            # a padded step points each tag at itself, so the backtrace passes through it
            identity = torch.arange(K, device=emissions.device).expand(B, K)
            pointers.append(torch.where(live, arg, identity))
        delta = delta + end
        lengths = mask.sum(1).tolist()
        tag = delta.argmax(1)  # (B,)
        path = [tag]
        for arg in reversed(pointers):
            tag = arg.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        path = torch.stack(path[::-1], dim=1)  # (B, T)
        return [path[b, : lengths[b]].tolist() for b in range(B)]
