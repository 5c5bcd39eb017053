"""The parallel scan of a linear recurrence h_t = a_t ⊙ h_{t-1} + b_t over all steps at once.

For cells whose recurrence is linear in h with coefficients that depend on the input alone
(minGRU: a = 1 - z, b = z ⊙ h̃; a cell says so by defining `linear_recurrence`), the whole
sequence is a prefix scan under the associative composition

    (a2, b2) ∘ (a1, b1) = (a2 a1, a2 b1 + b2)

computed here in log2(T) doubling rounds (Hillis & Steele) of whole-tensor torch ops: every
round combines each step with the one `shift` steps before it. Autograd differentiates it, so
the scan needs no backward of its own. Work is O(T log T) against the sequential sweep's O(T),
in a few large vectorized ops instead of T small steps.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["linear_scan"]


def linear_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """All h_t of h_t = a_t ⊙ h_{t-1} + b_t, for a, b (T, B, H) and h0 (B, H) -> (T, B, H)."""
    T = a.shape[0]
    shift = 1
    while shift < T:
        # step t takes in the composition of steps t - shift + 1 .. t - 2 shift + 1 (or from 0)
        b = torch.cat((b[:shift], torch.addcmul(b[shift:], a[shift:], b[:-shift])))
        a = torch.cat((a[:shift], a[shift:] * a[:-shift]))
        shift *= 2
    return torch.addcmul(b, a, h0.unsqueeze(0))
