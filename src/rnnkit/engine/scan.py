"""The scan of a linear recurrence h_t = a_t ⊙ h_{t-1} + b_t over all steps at once.

For cells whose recurrence is linear in h with coefficients that depend on the input alone
(a cell says so by defining `linear_recurrence`, which returns a and b), the whole
sequence is a prefix scan under the associative composition

    (a2, b2) ∘ (a1, b1) = (a2 a1, a2 b1 + b2)

Two implementations, equal to rounding:

- `doubling_scan`: the parallel prefix (Blelloch's and Hillis & Steele's), log2(T) doubling rounds
  (Hillis & Steele) of whole-tensor torch ops, each combining every step with the one `shift`
  steps before it; autograd differentiates it. O(T log T) work: on a GPU the rounds run in
  parallel, on a CPU of two cores the extra work costs more than the parallelism gives back.
- `compiled_scan`: the compiled engine's scan (engine.h, linear_scan_forward/backward): the B x H
  recurrences are independent, so it is one pass over time vectorized along them and split by
  columns across torch's threads, O(T) work, with the hand-derived backward (the reverse scan
  s_t = dL/dh_t + a_{t+1} s_{t+1}; da_t = s_t h_{t-1}, db_t = s_t).

`linear_scan` takes the compiled one when it is given a library, the doubling one otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["compiled_scan", "doubling_scan", "linear_scan"]


class _CompiledScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, library, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        given = (a, b, h0)
        a, b, h0 = (t.detach().contiguous() for t in (a, b, h0))
        steps, columns = a.shape[0], h0.numel()
        h = torch.empty_like(a)
        library.scan_forward(
            a.dtype, steps, columns, a.data_ptr(), b.data_ptr(), h0.data_ptr(), h.data_ptr()
        )
        ctx.library = library
        ctx.save_for_backward(a, h0, h, *given)
        return h

    @staticmethod
    def backward(ctx, grad_h: Tensor):
        a, h0, h, *given = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph=True: the library's backward is not differentiable, so the
            # gradients come from autograd through the same recurrence in torch ops
            wanted = [t for t in given if t.requires_grad]
            with torch.enable_grad():
                found = iter(
                    torch.autograd.grad(
                        doubling_scan(*given), wanted, grad_h, create_graph=True, allow_unused=True
                    )
                )
            return (None, *(next(found) if t.requires_grad else None for t in given))
        grad_h = grad_h.contiguous()
        da, db, dh0 = torch.empty_like(a), torch.empty_like(a), torch.empty_like(h0)
        steps, columns = a.shape[0], h0.numel()
        ctx.library.scan_backward(
            a.dtype,
            steps,
            columns,
            a.data_ptr(),
            h0.data_ptr(),
            h.data_ptr(),
            grad_h.data_ptr(),
            da.data_ptr(),
            db.data_ptr(),
            dh0.data_ptr(),
        )
        return None, da, db, dh0


def compiled_scan(a: Tensor, b: Tensor, h0: Tensor, library) -> Tensor:
    """All h_t, for a, b (T, B, H) and h0 (B, H), on the compiled engine's scan."""
    return _CompiledScan.apply(library, a, b, h0)


def linear_scan(a: Tensor, b: Tensor, h0: Tensor, library=None) -> Tensor:
    """All h_t of h_t = a_t ⊙ h_{t-1} + b_t: compiled_scan given a compiled library (float32
    or float64 on the CPU), else doubling_scan."""
    if library is not None and a.dtype in (torch.float32, torch.float64) and a.device.type == "cpu":
        return compiled_scan(a, b, h0, library)
    return doubling_scan(a, b, h0)


def doubling_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """All h_t of h_t = a_t ⊙ h_{t-1} + b_t, for a, b (T, B, H) and h0 (B, H) -> (T, B, H)."""
    T = a.shape[0]
    shift = 1
    while shift < T:
        # step t takes in the composition of steps t - shift + 1 .. t - 2 shift + 1 (or from 0)
        b = torch.cat((b[:shift], torch.addcmul(b[shift:], a[shift:], b[:-shift])))
        a = torch.cat((a[:shift], a[shift:] * a[:-shift]))
        shift *= 2
    return torch.addcmul(b, a, h0.unsqueeze(0))
