"""Data-parallel training across processes: torch.distributed, launched by torchrun.

`torchrun --nproc_per_node N -m rnnkit train ...` starts N copies of the command with RANK and
WORLD_SIZE set; `train()` then joins them in one gloo process group (rnnkit trains on the CPU;
nccl would come with GPU training) and every rank runs the same loop:

- every rank draws the same global batch (--batch-size, seeded batch order) from the task's
  batch source and takes a contiguous share of it (`World.share`): rank r the r-th block of
  rows. A batch too small to give every rank an example (the last one of an epoch) gives the
  rank left out a stand-in example that weighs nothing;
- each rank's loss is its share's mean, scaled by its share's weight (`Task.loss_weight`: the
  examples or tokens the mean is over) over the global batch's, and after backward the ranks'
  gradients are summed (`Replicas`): the gradient of the global batch's mean loss, what one
  process computes. A 2-process run follows the 1-process run to float rounding (without
  dropout or other random masks, which each rank draws for its own rows);
- decisions are agreed, never taken apart: the loss that decides a skipped step is the global
  one, the time that counts against --max-time is the slowest rank's, and Ctrl-C on any rank
  stops every rank at the same step;
- only rank 0 evaluates, logs, plots and writes checkpoints (latest/ gathers the other ranks'
  carried state and random generators first, so it holds the whole run), and only rank 0
  shows progress.

A rank that stops (killed, or an error of its own) breaks the others' next collective: they
stop with `RankLostError`, one line, and latest/ stays as it was last written (atomically).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["SINGLE", "RankLostError", "World", "world_from_env"]


class RankLostError(ConnectionError):
    """Another rank of a data-parallel run stopped; this one cannot go on."""


@dataclass(frozen=True)
class World:
    """The processes of one run: this one's rank, how many there are, how many share its machine."""

    rank: int = 0
    size: int = 1
    local_size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that evaluates, writes the run directory and shows progress."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    def describe(self) -> str:
        return f"rank {self.rank} of {self.size}"

    # ------------------------------------------------------------ splitting batches

    def share(self, n: int) -> tuple[int, int]:
        """[start, stop) of this rank's rows among `n`: contiguous blocks in rank order, sizes
        differing by at most one (the first n % size ranks take one more)."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def rows(self, tensor: Tensor, dim: int = 0) -> Tensor:
        start, stop = self.share(tensor.shape[dim])
        return tensor.narrow(dim, start, stop - start)

    # ------------------------------------------------------------ collectives

    def _reduce(self, values: list[float], op) -> list[float]:
        if not self.parallel:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64)
        with _peers_alive(self):
            dist.all_reduce(tensor, op=op)
        return tensor.tolist()

    def sum(self, values: list[float]) -> list[float]:
        """The sum over ranks of each value (float64)."""
        return self._reduce(values, dist.ReduceOp.SUM)

    def max(self, values: list[float]) -> list[float]:
        """The largest over ranks of each value."""
        return self._reduce(values, dist.ReduceOp.MAX)

    def barrier(self) -> None:
        if self.parallel:
            with _peers_alive(self):
                dist.barrier()

    def from_main(self, value):
        """Rank 0's `value` on every rank (any picklable object: our own processes' data)."""
        if not self.parallel:
            return value
        box = [value]
        with _peers_alive(self):
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, tensor: Tensor) -> list[Tensor]:
        """Every rank's `tensor` (of equal shape on every rank), in rank order."""
        if not self.parallel:
            return [tensor]
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(self.size)]
        with _peers_alive(self):
            dist.all_gather(parts, tensor)
        return parts

    def gather_rows(self, tensor: Tensor, dim: int) -> Tensor:
        """The whole batch from every rank's rows along `dim` (the inverse of `rows`)."""
        if not self.parallel:
            return tensor
        return torch.cat(self.gather(tensor), dim=dim)


SINGLE = World()


def _env_int(environ, name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(
            f"{name}={raw!r} is not a whole number; torchrun sets it (start the run with "
            "torchrun --nproc_per_node N -m rnnkit train ...)"
        ) from None


def world_from_env(environ=None) -> World:
    """The world torchrun describes in RANK, WORLD_SIZE and LOCAL_WORLD_SIZE (one process when
    they are not set)."""
    environ = os.environ if environ is None else environ
    size = _env_int(environ, "WORLD_SIZE", 1)
    rank = _env_int(environ, "RANK", 0)
    local_size = _env_int(environ, "LOCAL_WORLD_SIZE", 1 if size == 1 else size)
    if size < 1 or not 0 <= rank < size or not 1 <= local_size <= size:
        raise ValueError(
            f"RANK={rank}, WORLD_SIZE={size}, LOCAL_WORLD_SIZE={local_size} do not describe a "
            "set of processes; let torchrun set them"
        )
    return World(rank=rank, size=size, local_size=local_size)


def default_threads(world: World) -> int:
    """Torch threads of each rank when --threads is not given: the cores this process may use,
    shared among the ranks on its machine (torchrun's own default is one thread)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // world.local_size)


def on_every_rank(error: BaseException) -> BaseException:
    """Mark an error every rank raises alike (a setting, a divergence), so that only rank 0
    prints it (rnnkit.cli)."""
    error.every_rank = True
    return error


def check_batch_split(batch_size: int, world: World) -> None:
    """The global batch must split evenly, or ranks would weigh unequal rows every step."""
    if world.parallel and batch_size % world.size:
        lower = batch_size // world.size * world.size
        options = [n for n in (lower, lower + world.size) if n > 0]
        raise on_every_rank(
            ValueError(
                f"--batch-size {batch_size} does not split evenly across {world.size} processes "
                f"(WORLD_SIZE {world.size}); use a multiple of {world.size}, e.g. "
                + " or ".join(map(str, options))
            )
        )


@contextmanager
def process_group(world: World) -> Iterator[None]:
    """Join the ranks in one process group for the block (nothing for one process). A group the
    caller already set up (a script run under torchrun) is used and left to it."""
    if not world.parallel:
        yield
        return
    if dist.is_initialized():
        if dist.get_world_size() != world.size or dist.get_rank() != world.rank:
            raise ValueError(
                f"the process group has rank {dist.get_rank()} of {dist.get_world_size()}, but "
                f"RANK/WORLD_SIZE say {world.describe()}"
            )
        yield
        return
    try:
        dist.init_process_group("gloo")
    except (RuntimeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise RankLostError(
            f"{world.describe()}: could not join the other processes ({detail}); start the "
            "run with torchrun, which sets MASTER_ADDR and MASTER_PORT"
        ) from None
    try:
        yield
    finally:
        dist.destroy_process_group()


@contextmanager
def _peers_alive(world: World) -> Iterator[None]:
    """A collective fails when a peer has gone: say so in one line."""
    try:
        yield
    except RuntimeError as error:
        raise RankLostError(
            f"{world.describe()}: another rank stopped, so this one cannot go on; latest/ holds "
            f"the run as last saved: continue with --resume (gloo: {_gist(error)})"
        ) from None


def _gist(error: BaseException) -> str:
    """gloo's message without its source location and advice: 'Connection reset by peer'."""
    text = " ".join(str(error).split())
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)  # [.../pair.cc:537]
    text = re.sub(r"^Read error \[[^\]]*\]:\d+:\s*", "", text)
    return text.split(". ")[0][:120]


class Replicas:
    """The model on every rank: rank 0's weights at the start, and after each backward every
    rank's gradients summed (each rank's loss is pre-scaled by its share of the global batch).

    One all_reduce of the gradients, flattened, after backward, rather than
    DistributedDataParallel's hooks during it: tasks call their model's own methods (not only
    forward, which DDP must wrap), and a task may leave a path of its model out of a batch (a
    condition withheld), which DDP handles only by searching the autograd graph every step
    (find_unused_parameters, with a warning on every rank). Overlapping the communication with
    backward, DDP's gain, measured nothing here: the default language model, 2 gloo
    processes on 2 cores, 200 steps ran in 13.2-15.0 s this way and 14.6-14.7 s with DDP.
    A parameter no rank gave a gradient keeps none, as in one process, so the optimizer skips
    it alike."""

    def __init__(self, task, model: nn.Module, world: World) -> None:
        self.task, self.world, self.task_model = task, world, model
        self.params = [p for p in model.parameters() if p.requires_grad]
        state = [t for t in (*model.parameters(), *model.buffers())]
        with _peers_alive(world), torch.no_grad():
            for group in _by_dtype(state):
                flat = torch.cat([t.reshape(-1) for t in group])
                dist.broadcast(flat, src=0)
                _unflatten_into(flat, group)

    def forward(self, batch, carry):
        return self.task.train_loss(self.task_model, batch, carry)

    def combine(self, loss: Tensor, batch) -> tuple[float, Tensor, int]:
        """(the global batch's mean loss, what this rank backpropagates, the global tokens).

        The backpropagated loss is this rank's mean times its weight over the total weight:
        summed over the ranks, the gradients are those of the global batch's mean."""
        stand_in = batch.extra.get("stand_in", False)
        weight = 0.0 if stand_in else float(self.task.loss_weight(batch))
        local = loss.item()
        weighted = local * weight if weight else 0.0  # a stand-in's inf must not count
        tokens = 0 if stand_in else batch.tokens
        total_weight, total, total_tokens = self.world.sum([weight, weighted, float(tokens)])
        if total_weight == 0:  # no rank has anything to learn from (e.g. no known label)
            return 0.0, loss * 0.0, int(total_tokens)
        return total / total_weight, loss * (weight / total_weight), int(total_tokens)

    def backward(self, objective: Tensor) -> None:
        objective.backward()
        has_grad = [p.grad is not None for p in self.params]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        with _peers_alive(self.world):
            present = torch.tensor(has_grad, dtype=torch.float64)
            work = [dist.all_reduce(present, async_op=True)]
            groups = list(_by_dtype(grads))
            flats = [torch.cat([g.reshape(-1) for g in group]) for group in groups]
            work += [dist.all_reduce(flat, async_op=True) for flat in flats]
            for handle in work:
                handle.wait()
        for flat, group in zip(flats, groups, strict=True):
            _unflatten_into(flat, group)
        for p, grad, anywhere in zip(self.params, grads, present.tolist(), strict=True):
            p.grad = grad if anywhere else None


def _by_dtype(tensors: list[Tensor]):
    """The tensors grouped by dtype (one flat buffer each), in their order."""
    groups: dict[torch.dtype, list[Tensor]] = {}
    for t in tensors:
        groups.setdefault(t.dtype, []).append(t)
    return groups.values()


def _unflatten_into(flat: Tensor, tensors: list[Tensor]) -> None:
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def shard_carry(carry, world: World, dim: int):
    """This rank's rows of a carried state (a tensor or a tuple of them)."""
    if carry is None or not world.parallel:
        return carry
    if isinstance(carry, Tensor):
        return world.rows(carry, dim).clone()
    return type(carry)(world.rows(t, dim).clone() for t in carry)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank r's own random numbers (dropout masks); rank 0 keeps the run's stream."""
    return seed * 1_000_003 + rank
