"""Padded batches with `lengths=`: variable-length sequences without building a PackedSequence.

`layer(x, hx, lengths=lengths)` takes the padded batch as it is (any order of lengths, no
sorting by the caller) and returns what the packed call would, padded back: outputs past a
sequence's length are zero (pad_packed_sequence's convention), final states are each sequence's
own last step, and the reverse direction starts at each sequence's last valid step. Internally
the batch goes through torch's packing, which every backend runs natively: the compiled kernels
and the reference engine shrink the active rows step by step, so padding costs nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .._checks import describe

__all__ = ["check_lengths", "pack_with_lengths", "unpack_output"]


def check_lengths(owner: str, input, lengths, batch_first: bool) -> Tensor:
    """`lengths` as a CPU int64 tensor, or a one-line error naming what is wrong."""
    if isinstance(input, PackedSequence):
        raise ValueError(
            f"{owner}: lengths= is for a padded batch; a PackedSequence already carries its "
            "lengths, so pass it without lengths="
        )
    if not isinstance(input, Tensor) or input.dim() != 3:
        got = describe(input)
        raise ValueError(
            f"{owner}: lengths= needs a batched 3-D padded input; got {got} (an unbatched "
            "sequence has one length: slice it instead)"
        )
    if isinstance(lengths, (list, tuple)):
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in lengths):
            raise TypeError(f"{owner}: lengths must be integers; got {list(lengths)!r}")
        lengths = torch.tensor(lengths, dtype=torch.int64)
    if not isinstance(lengths, Tensor):
        raise TypeError(
            f"{owner}: lengths must be a 1-D integer tensor or a list of ints; got "
            f"{describe(lengths)}"
        )
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"{owner}: lengths must have an integer dtype; got {lengths.dtype}")
    batch, steps = (input.shape[0], input.shape[1]) if batch_first else input.shape[1::-1]
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(
            f"{owner}: lengths must be 1-D with one entry per sequence (batch = {batch}); got "
            f"shape {tuple(lengths.shape)}"
        )
    lengths = lengths.to("cpu", torch.int64)
    low, high = int(lengths.min()), int(lengths.max())
    if low < 1 or high > steps:
        raise ValueError(
            f"{owner}: lengths must lie in 1..{steps} (the padded input has {steps} steps); "
            f"got values from {low} to {high}"
        )
    return lengths


def pack_with_lengths(input: Tensor, lengths: Tensor, batch_first: bool) -> PackedSequence:
    return pack_padded_sequence(input, lengths, batch_first=batch_first, enforce_sorted=False)


def unpack_output(output: PackedSequence, batch_first: bool, steps: int) -> Tensor:
    """The packed output as a padded tensor with the input's number of steps."""
    padded, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=steps)
    return padded
