"""Language-model minibatches from one long id sequence, and padding/packing for many short ones.

LMBatchStream implements d2l 8.3's two partitionings of a corpus into (B, T) minibatches:
sequential (each batch row continues the previous batch's row, so the model's final state can be
carried, detached, into the next batch: truncated BPTT) and random (independent subsequences,
state reset per batch). An epoch's plan depends only on (seed, epoch), so a run resumed from
`state_dict()` sees exactly the batches it would have seen.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_sequence

from .._checks import is_int

__all__ = ["LMBatchStream", "detach_state", "pack", "pad_sequences"]

MODES = ("sequential", "random")


def _check_count(name: str, value) -> int:
    if not is_int(value) or value < 1:
        raise ValueError(f"LMBatchStream: {name} must be a positive int; got {value!r}")
    return value


class LMBatchStream:
    """An endless stream of (x, y) language-model batches over the token ids of one text.

    x, y: (B, T) long with y[b, t] = ids[p + 1] where x[b, t] = ids[p]: the next-token targets.

    Every epoch draws a random offset in [0, T) (fewer if the text is short), so batch boundaries
    fall on different tokens each epoch, and uses K = `batches_per_epoch` batches:

    - "sequential" (d2l seq_data_iter_sequential): ids[offset : offset + K·B·T + 1] is cut into B
      contiguous rows; batch k takes columns [k·T, (k+1)·T). Row b of batch k+1 starts where row b
      of batch k ended, so carry the state (detached) from batch to batch; reset it at
      `new_epoch`, where the offset, and so every row, jumps.
    - "random" (d2l seq_data_iter_random): the text after the offset is cut into subsequences of
      T tokens; each epoch visits K·B of them in a random order, B per batch. Rows of consecutive
      batches are unrelated, so start every batch from a fresh state.

    `next_batch()` returns (x, y, new_epoch), new_epoch being True for the first batch of an epoch;
    iterating yields (x, y).
    """

    def __init__(
        self,
        ids: Tensor,
        batch_size: int,
        seq_len: int,
        mode: str = "sequential",
        seed: int = 0,
    ):
        if not isinstance(ids, Tensor) or ids.is_floating_point() or ids.is_complex():
            got = ids.dtype if isinstance(ids, Tensor) else type(ids).__name__
            raise TypeError(
                f"LMBatchStream: ids must be an integer tensor of token ids (e.g. "
                f"torch.tensor(vocab.encode(tokens))); got {got}"
            )
        if ids.dim() != 1:
            raise ValueError(
                f"LMBatchStream: ids must be 1-D (N,), the whole text's ids; got shape "
                f"{tuple(ids.shape)}"
            )
        self.batch_size = _check_count("batch_size (--batch-size)", batch_size)
        self.seq_len = _check_count("seq_len (--seq-len)", seq_len)
        if mode not in MODES:
            raise ValueError(
                f"LMBatchStream: mode (--batching) must be one of "
                f"{', '.join(map(repr, MODES))}; got {mode!r}"
            )
        if not is_int(seed) or seed < 0:
            raise ValueError(f"LMBatchStream: seed must be a non-negative int; got {seed!r}")
        self.mode = mode
        self.seed = seed
        # Batches are cut in numpy: a (B, T) copy is too small to gain from threads, and torch's
        # threaded indexing stalls when other processes load the CPU (15 ms instead of 0.1 ms
        # per batch measured on a busy 2-core machine). A private copy: later writes to `ids`
        # cannot change the batches of a run.
        self._ids = ids.detach().to("cpu", torch.long).numpy().copy()

        num_tokens, B, T = len(self._ids), batch_size, seq_len
        # Every batch needs B·T inputs plus one more token for the last target.
        slack = num_tokens - 1 - B * T
        if slack < 0:
            raise ValueError(
                f"LMBatchStream: text has {num_tokens} tokens; at least {B * T + 1} needed for "
                f"--batch-size {B} --seq-len {T} (use a longer text or smaller values)"
            )
        # Offsets 0..T-1 shift every batch boundary; more would only skip text. Fixing the
        # largest offset up front makes K the same in every epoch.
        self._max_offset = min(T - 1, slack)
        self._num_subseqs = (num_tokens - 1 - self._max_offset) // T  # random mode's pool
        self._batches_per_epoch = self._num_subseqs // B
        self.epoch = 0
        self.index = 0  # the next batch's position within the epoch
        self._plan_epoch: int | None = None

    @property
    def batches_per_epoch(self) -> int:
        """K: the number of (B, T) batches in one epoch."""
        return self._batches_per_epoch

    @property
    def num_tokens(self) -> int:
        return len(self._ids)

    def _plan(self) -> None:
        """Lay out the current epoch: its offset and, in random mode, its subsequence order."""
        if self._plan_epoch == self.epoch:
            return
        # A generator per (seed, epoch): an epoch's batches never depend on earlier draws.
        rng = np.random.default_rng([self.seed, self.epoch])
        offset = int(rng.integers(0, self._max_offset + 1))
        B, T, K = self.batch_size, self.seq_len, self._batches_per_epoch
        if self.mode == "sequential":
            span = self._ids[offset : offset + K * B * T + 1]
            self._rows_x = span[:-1].reshape(B, K * T)  # (B, K·T): row b is a contiguous stretch
            self._rows_y = span[1:].reshape(B, K * T)
        else:
            order = rng.permutation(self._num_subseqs)[: K * B]
            self._starts = (offset + order * T).reshape(K, B)  # (K, B) first positions of rows
        self._plan_epoch = self.epoch

    def next_batch(self) -> tuple[Tensor, Tensor, bool]:
        """(x, y, new_epoch): the next batch, x and y (B, T) long; new_epoch: an epoch's first."""
        if self.index >= self._batches_per_epoch:
            self.epoch += 1
            self.index = 0
        self._plan()
        k, T = self.index, self.seq_len
        if self.mode == "sequential":
            x = self._rows_x[:, k * T : (k + 1) * T].copy()  # copies: callers may write to them
            y = self._rows_y[:, k * T : (k + 1) * T].copy()
        else:
            positions = self._starts[k][:, None] + np.arange(T)  # (B, T)
            x = self._ids[positions]
            y = self._ids[positions + 1]
        new_epoch = self.index == 0
        self.index += 1
        return torch.from_numpy(x), torch.from_numpy(y), new_epoch

    def __iter__(self):
        return self

    def __next__(self) -> tuple[Tensor, Tensor]:
        x, y, _ = self.next_batch()
        return x, y

    def state_dict(self) -> dict:
        """The position in the stream, JSON-able; the configuration is stored to check a resume."""
        return {
            "epoch": self.epoch,
            "index": self.index,
            "mode": self.mode,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "num_tokens": self.num_tokens,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state` (from `state_dict`): the next batch is the one that would have
        come next when the state was saved.

        Only "epoch" and "index" are required; the other keys, if present, must match this stream
        (resuming over a different text or batch shape would silently give other batches).
        """
        if not isinstance(state, dict) or not {"epoch", "index"} <= state.keys():
            raise ValueError(
                "LMBatchStream.load_state_dict: expected a dict with 'epoch' and 'index' (from "
                f"state_dict()); got {state!r:.80}"
            )
        mine = self.state_dict()
        for key in ("mode", "seed", "batch_size", "seq_len", "num_tokens"):
            if key in state and state[key] != mine[key]:
                raise ValueError(
                    f"LMBatchStream.load_state_dict: the saved stream had {key}={state[key]!r}, "
                    f"this one has {mine[key]!r}; resume with the same data and batch options"
                )
        epoch, index = state["epoch"], state["index"]
        for name, value in (("epoch", epoch), ("index", index)):
            if not is_int(value) or value < 0:
                raise ValueError(
                    f"LMBatchStream.load_state_dict: {name} must be a non-negative int; "
                    f"got {value!r}"
                )
        if index > self._batches_per_epoch:
            raise ValueError(
                f"LMBatchStream.load_state_dict: index {index} is past the "
                f"{self._batches_per_epoch} batches of an epoch; the state is from another stream"
            )
        self.epoch, self.index = epoch, index

    def __repr__(self) -> str:
        return (
            f"LMBatchStream(num_tokens={self.num_tokens}, batch_size={self.batch_size}, "
            f"seq_len={self.seq_len}, mode={self.mode!r}, seed={self.seed}, "
            f"batches_per_epoch={self.batches_per_epoch})"
        )


def detach_state(state, dtype: torch.dtype | None = None):
    """`state` cut from its graph: a tensor, or a (nested) tuple/list of tensors, or None;
    converted to `dtype` when one is given (autocast hands a state back in its lower precision).

    Truncated BPTT: the values carry into the next batch, the gradient stops at the boundary.
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach() if dtype is None else state.detach().to(dtype)
    if isinstance(state, tuple | list):
        return type(state)(detach_state(part, dtype) for part in state)
    raise TypeError(
        f"detach_state: state must be a tensor or a tuple of tensors; got {type(state).__name__}"
    )


def pad_sequences(
    seqs: list[Tensor], pad_id: int, batch_first: bool = True
) -> tuple[Tensor, Tensor]:
    """(padded, lengths): sequences of shape (L_i, *) padded with `pad_id` to the longest.

    padded: (B, L_max, *) if batch_first else (L_max, B, *); lengths: (B,) int64 on the CPU, as
    pack_padded_sequence wants them.
    """
    if not isinstance(seqs, list | tuple) or not seqs:
        raise ValueError(
            f"pad_sequences: seqs must be a non-empty list of tensors; got {seqs!r:.80}"
        )
    for i, seq in enumerate(seqs):
        if not isinstance(seq, Tensor) or seq.dim() == 0:
            got = "0-D tensor" if isinstance(seq, Tensor) else type(seq).__name__
            raise TypeError(f"pad_sequences: seqs[{i}] must be a tensor of shape (L, *); got {got}")
        if seq.shape[1:] != seqs[0].shape[1:]:
            raise ValueError(
                f"pad_sequences: every sequence must have the same trailing shape; seqs[0] is "
                f"{tuple(seqs[0].shape)}, seqs[{i}] is {tuple(seq.shape)}"
            )
    lengths = torch.tensor([len(seq) for seq in seqs], dtype=torch.long)
    padded = pad_sequence(list(seqs), batch_first=batch_first, padding_value=pad_id)
    return padded, lengths


def pack(padded: Tensor, lengths: Tensor, batch_first: bool = True) -> PackedSequence:
    """A PackedSequence of `padded` (as from pad_sequences); any order of lengths is fine."""
    lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()
    batch_axis = 0 if batch_first else 1
    if lengths.dim() != 1 or len(lengths) != padded.shape[batch_axis]:
        raise ValueError(
            f"pack: lengths must be (B,) with B = {padded.shape[batch_axis]} (the batch size of "
            f"padded {tuple(padded.shape)}); got shape {tuple(lengths.shape)}"
        )
    if lengths.numel() and (lengths.min() < 1 or lengths.max() > padded.shape[1 - batch_axis]):
        raise ValueError(
            f"pack: every length must be in 1..{padded.shape[1 - batch_axis]} (the padded length); "
            f"got lengths in [{int(lengths.min())}, {int(lengths.max())}] (drop empty sequences)"
        )
    return pack_padded_sequence(padded, lengths, batch_first=batch_first, enforce_sorted=False)
