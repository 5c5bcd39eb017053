#!/usr/bin/env python
"""Character language-model sweep for choosing the default recipe of `rnnkit train`.

Self-contained: char vocabulary from the train part (first 90% of the file's characters),
held-out loss = mean cross-entropy in nats/char over the WHOLE held-out part (last 10%),
sequential batching with the recurrent state carried and detached across batches (d2l's
sequential iterator, with a random offset at the start of every epoch), layers are
rnnkit.LSTM / rnnkit.GRU / rnnkit.RNN with backend="native".

Three ways to set the training length (each run prints one JSON line per event on stdout):

  --steps N                 train exactly N optimizer steps (LR schedule spans N steps)
  --budget-seconds S --measure
                            first time the config's training step (best of --repeats timings
                            of --measure-steps steps each, i.e. the uncontended speed), then
                            train for the number of steps that fit in S seconds at that speed
  --budget-seconds S --step-time T
                            the same with an already measured step time (seconds per step)
  --time-budget S           true wall-clock run: train until S seconds have passed; the LR
                            schedule follows elapsed time / S

  --measure-only            only time the step (with --threads), print it and exit

Examples:
  python benchmarks/lm_sweep.py --data ../shared/data/tinyshakespeare/input.txt \
      --budget-seconds 100 --measure                     # the tuned-LSTM reference recipe
  python benchmarks/lm_sweep.py --hidden 512 --batch 64 --lr 8e-3 --steps 900
  python benchmarks/lm_sweep.py --seq-schedule 32:0.5,64 --time-budget 100
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

import rnnkit

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "tinyshakespeare", "input.txt")


# ----------------------------------------------------------------------------- data
def load_corpus(path: str, train_frac: float = 0.9):
    """Text -> (train ids, full-text ids, split index, vocab). Vocab = chars of the train part
    (+ one <unk> id if the held-out part has characters the train part lacks)."""
    if path.startswith("py:"):
        text = python_corpus(path[3:])
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    split = int(len(text) * train_frac)
    chars = sorted(set(text[:split]))
    stoi = {c: i for i, c in enumerate(chars)}
    unk = len(chars)
    n_unknown = sum(1 for c in text[split:] if c not in stoi)
    ids = torch.tensor([stoi.get(c, unk) for c in text], dtype=torch.long)
    vocab = len(chars) + (1 if n_unknown else 0)
    return ids, split, vocab, n_unknown


def python_corpus(name: str) -> str:
    """Corpora that ship with Python. 'pydoc_topics': the English text of pydoc_data.topics."""
    if name == "pydoc_topics":
        from pydoc_data.topics import topics

        return "\n".join(topics[k] for k in sorted(topics))
    raise ValueError(f"unknown python corpus {name!r}")


class SequentialBatches:
    """d2l's seq_data_iter_sequential, streaming: the train ids are cut (after a random offset
    drawn at each epoch start) into `batch` contiguous rows; successive batches are successive
    column windows, so the state of row b at the end of one batch continues row b of the next.
    The window length may change between calls (seq_len schedules); a batch-size change starts a
    new epoch. Returns (X, Y, new_epoch) with X, Y time-major (T, B)."""

    def __init__(self, ids: torch.Tensor, rng: random.Random):
        self.ids, self.rng = ids, rng
        self.batch = None
        self.pos = 0
        self.X = self.Y = None
        self.epochs = 0

    def _new_epoch(self, batch: int, seq_len: int) -> None:
        offset = self.rng.randint(0, seq_len)
        n = ((len(self.ids) - offset - 1) // batch) * batch
        self.X = self.ids[offset : offset + n].view(batch, -1)
        self.Y = self.ids[offset + 1 : offset + 1 + n].view(batch, -1)
        self.batch, self.pos = batch, 0
        self.epochs += 1

    def next(self, batch: int, seq_len: int):
        new = False
        if self.batch != batch or self.pos + seq_len > self.X.shape[1]:
            self._new_epoch(batch, seq_len)
            new = True
        sl = slice(self.pos, self.pos + seq_len)
        self.pos += seq_len
        return self.X[:, sl].t().contiguous(), self.Y[:, sl].t().contiguous(), new


# ----------------------------------------------------------------------------- model
class CharLM(nn.Module):
    def __init__(self, vocab: int, a) -> None:
        super().__init__()
        self.cell = a.cell
        self.emb = nn.Embedding(vocab, a.emb)
        layer = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}[a.cell]
        kw = dict(num_layers=a.layers, dropout=a.dropout if a.layers > 1 else 0.0, backend="native")
        if a.cell == "lstm" and a.proj:
            kw["proj_size"] = a.proj
        self.rnn = layer(a.emb, a.hidden, **kw)
        shifts = (a.input_bias, a.forget_bias, 0.0, a.output_bias)
        if a.cell == "lstm" and any(shifts):
            with torch.no_grad():  # gate order i, f, g, o: slices of b_ih
                for name, bias in self.rnn.named_parameters():
                    if name.startswith("bias_ih"):
                        for gate, shift in enumerate(shifts):
                            bias[gate * a.hidden : (gate + 1) * a.hidden] += shift
        if a.recurrent_init == "orthogonal":  # Keras' default: each gate's H x H block orthogonal
            with torch.no_grad():
                for name, weight in self.rnn.named_parameters():
                    if name.startswith("weight_hh"):
                        for block in weight.split(weight.shape[1]):
                            nn.init.orthogonal_(block)
        out = a.proj if (a.cell == "lstm" and a.proj) else a.hidden
        self.ln = nn.LayerNorm(out) if a.layernorm else nn.Identity()
        self.drop = nn.Dropout(a.dropout) if a.dropout > 0 else nn.Identity()
        self.locked = a.locked_dropout
        self.head_kind = a.head
        if a.head == "full":
            self.head = nn.Linear(out, vocab)
        elif a.head == "tied":  # logits = P h . E^T + b (P only when out != emb)
            self.pre = nn.Linear(out, a.emb, bias=False) if out != a.emb else nn.Identity()
            self.head_bias = nn.Parameter(torch.zeros(vocab))
        elif a.head == "factor":
            self.head = nn.Sequential(
                nn.Linear(out, a.head_dim, bias=False), nn.Linear(a.head_dim, vocab)
            )
        else:
            raise ValueError(a.head)

    def forward(self, x, state=None):
        h, state = self.rnn(self.emb(x), state)
        h = self.drop(self.ln(h))
        if self.locked and self.training:  # one mask per sequence, shared by its time steps
            keep = torch.empty_like(h[:1]).bernoulli_(1 - self.locked)
            h = h * keep / (1 - self.locked)
        if self.head_kind == "tied":
            logits = F.linear(self.pre(h), self.emb.weight, self.head_bias)
        else:
            logits = self.head(h)
        return logits, state


def detach(state):
    """Cut the graph between batches (and keep the carried state float32 under bf16 autocast)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach().float() for s in state)
    return state.detach().float()


@torch.no_grad()
def evaluate(model, ids, split, vocab, streams=64, chunk=512, burnin=100, autocast=False):
    """Mean CE (nats/char) over every held-out character ids[split:]. The held-out part is cut
    into `streams` contiguous pieces run as one batch with the state carried across chunks; each
    piece is preceded by `burnin` unscored characters of the text just before it (for the first
    piece: the end of the train part) so that no scored character is predicted from a cold state."""
    model.eval()
    n = len(ids) - split
    L = math.ceil(n / streams)
    total, count = 0.0, 0
    xs, ys, ms = [], [], []
    for s in range(streams):
        a, b = split + s * L, min(split + (s + 1) * L, len(ids))
        start = max(a - burnin, 1)
        x = ids[start - 1 : b - 1]
        y = ids[start:b]
        m = torch.zeros(len(y), dtype=torch.bool)
        m[a - start :] = True
        pad = (L + burnin) - len(y)
        xs.append(F.pad(x, (pad, 0)))  # left pad so that all pieces end aligned
        ys.append(F.pad(y, (pad, 0)))
        ms.append(F.pad(m, (pad, 0)))
    X, Y, M = torch.stack(xs, 1), torch.stack(ys, 1), torch.stack(ms, 1)  # (T, B)
    state = None
    for t in range(0, X.shape[0], chunk):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits, state = model(X[t : t + chunk], state)
        state = detach(state)
        loss = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            Y[t : t + chunk].reshape(-1),
            reduction="none",
        )
        mask = M[t : t + chunk].reshape(-1)
        total += loss[mask].double().sum().item()
        count += int(mask.sum())
    assert count == n, (count, n)
    model.train()
    return total / count


# ----------------------------------------------------------------------------- schedules
def parse_schedule(spec: str | None, default: int):
    """'32:0.3,64' -> [(0.3, 32), (1.0, 64)]: value 32 until progress 0.3, then 64."""
    if not spec:
        return [(1.0, default)]
    out = []
    for part in spec.split(","):
        if ":" in part:
            v, end = part.split(":")
            out.append((float(end), int(v)))
        else:
            out.append((1.0, int(part)))
    if out[-1][0] != 1.0:
        raise ValueError("last schedule segment must run to the end (no ':frac')")
    return out


def value_at(schedule, progress: float) -> int:
    for end, v in schedule:
        if progress < end:
            return v
    return schedule[-1][1]


def phases(seq_sched, batch_sched):
    """[(fraction of training, seq_len, batch)] for the union of both schedules' breakpoints."""
    ends = sorted({e for e, _ in seq_sched} | {e for e, _ in batch_sched})
    out, start = [], 0.0
    for e in ends:
        mid = (start + e) / 2
        out.append((e - start, value_at(seq_sched, mid), value_at(batch_sched, mid)))
        start = e
    return out


def lr_at(a, step: int, progress: float) -> float:
    if a.warmup and step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    if a.schedule == "const":
        return a.lr
    # decay over the part of training after warm-up
    if a.warmup_frac_of is not None:
        p0 = a.warmup_frac_of
        q = min(max((progress - p0) / max(1e-9, 1 - p0), 0.0), 1.0)
    else:
        q = min(max(progress, 0.0), 1.0)
    floor = a.lr * a.final_lr_frac
    if a.schedule == "cosine":
        return floor + (a.lr - floor) * 0.5 * (1 + math.cos(math.pi * q))
    if a.schedule == "linear":
        return floor + (a.lr - floor) * (1 - q)
    raise ValueError(a.schedule)


# ----------------------------------------------------------------------------- training
def build(a, vocab):
    torch.manual_seed(a.seed)
    model = CharLM(vocab, a)
    betas = (a.beta1, a.beta2)
    if a.optim == "adamw":
        params = list(model.parameters())
        if a.wd_on == "matrices":  # nanoGPT's rule: no decay on biases
            params = [
                {"params": [q for q in params if q.dim() >= 2]},
                {"params": [q for q in params if q.dim() < 2], "weight_decay": 0.0},
            ]
        opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=a.wd, betas=betas, fused=True)
    elif a.optim == "adam":
        opt = torch.optim.Adam(
            model.parameters(), lr=a.lr, weight_decay=a.wd, betas=betas, foreach=True
        )
    elif a.optim == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=a.wd)
    else:
        raise ValueError(a.optim)
    return model, opt


def train_step(a, model, opt, X, Y, state, lr):
    for g in opt.param_groups:
        g["lr"] = lr
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
        logits, state = model(X, state)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), Y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if a.clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip, foreach=True)
    opt.step()
    return loss, detach(state)


def measure_step_time(a, train_ids, vocab):
    """Best (minimum over --repeats) mean time of --measure-steps training steps, per shape."""
    out = {}
    for _, seq, batch in phases(a.seq_sched, a.batch_sched):
        if (seq, batch) in out:
            continue
        model, opt = build(a, vocab)
        data = SequentialBatches(train_ids, random.Random(a.seed))
        state = None
        for _ in range(a.measure_warmup):
            X, Y, new = data.next(batch, seq)
            _, state = train_step(a, model, opt, X, Y, None if new else state, a.lr * 0.1)
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            for _ in range(a.measure_steps):
                X, Y, new = data.next(batch, seq)
                loss, state = train_step(a, model, opt, X, Y, None if new else state, a.lr * 0.1)
            loss.item()
            times.append((time.perf_counter() - t0) / a.measure_steps)
        out[(seq, batch)] = {
            "best": min(times),
            "median": sorted(times)[len(times) // 2],
            "all": times,
        }
    return out


def loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def emit(obj):
    print(json.dumps(obj), flush=True)
    if getattr(emit, "file", None):
        with open(emit.file, "a") as f:
            f.write(json.dumps(obj) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default=DEFAULT_DATA, help="text file, or py:pydoc_topics")
    p.add_argument("--tag", default="")
    p.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    p.add_argument("--emb", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--proj", type=int, default=0, help="LSTM proj_size (0: none)")
    p.add_argument(
        "--layernorm", action="store_true", help="LayerNorm on the RNN output before the head"
    )
    p.add_argument("--head", choices=["full", "tied", "factor"], default="full")
    p.add_argument("--head-dim", type=int, default=128, help="bottleneck of --head factor")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument(
        "--locked-dropout",
        type=float,
        default=0.0,
        help="dropout on the RNN output with one mask per sequence for all time steps",
    )
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument(
        "--seq-schedule", default=None, help="e.g. 32:0.5,64 (seq 32 for the first half)"
    )
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batch-schedule", default=None, help="e.g. 16:0.2,32")
    p.add_argument("--optim", choices=["adamw", "adam", "sgd"], default="adamw")
    p.add_argument("--lr", type=float, default=6e-3)
    p.add_argument("--wd", type=float, default=0.01)
    p.add_argument(
        "--wd-on", choices=["all", "matrices"], default="all", help="which weights decay"
    )
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    p.add_argument("--schedule", choices=["cosine", "linear", "const"], default="cosine")
    p.add_argument("--final-lr-frac", type=float, default=0.0, help="decay to lr * this")
    p.add_argument("--clip", type=float, default=1.0, help="grad-norm clipping (0: off)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPU)")
    p.add_argument(
        "--forget-bias", type=float, default=0.0, help="LSTM: add to the forget-gate bias at init"
    )
    p.add_argument(
        "--recurrent-init",
        choices=["default", "orthogonal"],
        default="default",
        help="recurrent weights: torch's uniform(±1/sqrt(H)) or orthogonal per gate block",
    )
    p.add_argument(
        "--ema", type=float, default=0.0, help="also evaluate an EMA of the weights (decay)"
    )
    p.add_argument("--input-bias", type=float, default=0.0, help="LSTM: input-gate bias shift")
    p.add_argument("--output-bias", type=float, default=0.0, help="LSTM: output-gate bias shift")
    p.add_argument("--matmul-precision", choices=["highest", "high", "medium"], default="highest")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--budget-seconds", type=float, default=None)
    p.add_argument("--step-time", type=float, default=None, help="s/step (with --budget-seconds)")
    p.add_argument("--measure", action="store_true")
    p.add_argument("--measure-only", action="store_true")
    p.add_argument("--measure-steps", type=int, default=30)
    p.add_argument("--measure-warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--time-budget", type=float, default=None, help="true wall-clock training seconds"
    )
    p.add_argument("--eval-streams", type=int, default=64)
    p.add_argument("--eval-burnin", type=int, default=100)
    p.add_argument("--log-every", type=int, default=0)
    p.add_argument("--out", default=None, help="also append the JSON lines to this file")
    a = p.parse_args(argv)
    a.warmup_frac_of = None
    emit.file = a.out

    torch.set_num_threads(a.threads)
    with contextlib.suppress(RuntimeError):  # fails once the interop pool has started
        torch.set_num_interop_threads(1)
    torch.set_float32_matmul_precision(a.matmul_precision)
    a.seq_sched = parse_schedule(a.seq_schedule, a.seq_len)
    a.batch_sched = parse_schedule(a.batch_schedule, a.batch)

    ids, split, vocab, n_unknown = load_corpus(a.data)
    train_ids = ids[:split]
    config = {
        k: v
        for k, v in vars(a).items()
        if k not in ("seq_sched", "batch_sched", "warmup_frac_of", "out")
    }
    config["data"] = os.path.basename(a.data)
    base = {
        "tag": a.tag,
        "config": config,
        "vocab": vocab,
        "n_train": split,
        "n_heldout": len(ids) - split,
        "heldout_unknown_chars": n_unknown,
        "torch": torch.__version__,
    }

    steps, timing = a.steps, None
    if a.measure or a.measure_only:
        load0 = loadavg()
        timing = measure_step_time(a, train_ids, vocab)
        tm = {f"{s}x{b}": v for (s, b), v in timing.items()}
        emit(
            {
                **base,
                "event": "measure",
                "step_time": tm,
                "loadavg_before": load0,
                "loadavg_after": loadavg(),
            }
        )
        if a.measure_only:
            return 0
    if a.budget_seconds is not None and steps is None and a.time_budget is None:
        per_phase = []
        for frac, seq, batch in phases(a.seq_sched, a.batch_sched):
            t = timing[(seq, batch)]["best"] if timing else a.step_time
            if t is None:
                p.error("--budget-seconds needs --measure or --step-time")
            per_phase.append(frac * t)
        mean_t = sum(per_phase)
        steps = int(a.budget_seconds / mean_t)
    if steps is None and a.time_budget is None:
        p.error("give --steps, --budget-seconds with --measure/--step-time, or --time-budget")

    model, opt = build(a, vocab)
    ema = (
        torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(a.ema)
        )
        if a.ema
        else None
    )
    n_params = sum(p_.numel() for p_ in model.parameters())
    data = SequentialBatches(train_ids, random.Random(a.seed + 1))
    state = None
    step, recent, t_start = 0, [], time.perf_counter()
    tokens = 0
    load_start = loadavg()
    while True:
        elapsed = time.perf_counter() - t_start
        if a.time_budget is not None:
            progress = elapsed / a.time_budget
            if progress >= 1.0:
                break
        else:
            if step >= steps:
                break
            progress = step / steps
        seq, batch = value_at(a.seq_sched, progress), value_at(a.batch_sched, progress)
        X, Y, new = data.next(batch, seq)
        loss, state = train_step(
            a, model, opt, X, Y, None if new else state, lr_at(a, step, progress)
        )
        if ema is not None:
            ema.update_parameters(model)
        tokens += seq * batch
        step += 1
        if a.log_every and step % a.log_every == 0:
            recent.append(loss.item())
            print(
                json.dumps(
                    {
                        "event": "progress",
                        "step": step,
                        "t": round(elapsed, 1),
                        "loss": round(recent[-1], 4),
                        "lr": lr_at(a, step, progress),
                    }
                ),
                file=sys.stderr,
                flush=True,
            )
    last_loss = loss.item()
    train_time = time.perf_counter() - t_start
    load_end = loadavg()
    t0 = time.perf_counter()
    heldout = evaluate(
        model, ids, split, vocab, streams=a.eval_streams, burnin=a.eval_burnin, autocast=a.bf16
    )
    # rnnkit train evaluates in float32; the bf16-autocast figure is kept for older rows
    heldout_fp32 = (
        evaluate(model, ids, split, vocab, streams=a.eval_streams, burnin=a.eval_burnin)
        if a.bf16
        else heldout
    )
    heldout_ema = None
    if ema is not None:
        heldout_ema = evaluate(
            ema.module,
            ids,
            split,
            vocab,
            streams=a.eval_streams,
            burnin=a.eval_burnin,
            autocast=a.bf16,
        )
    emit(
        {
            **base,
            "event": "result",
            "params": n_params,
            "steps": step,
            "tokens": tokens,
            "epochs": data.epochs,
            "train_seconds": round(train_time, 2),
            "wall_step_time": round(train_time / max(step, 1), 5),
            "step_time_used": (
                None
                if a.time_budget is not None
                else round((a.budget_seconds / steps) if a.budget_seconds else float("nan"), 5)
            ),
            "last_train_loss": round(last_loss, 4),
            "heldout_loss": round(heldout, 4),
            "heldout_loss_fp32": round(heldout_fp32, 4),
            "heldout_loss_ema": None if heldout_ema is None else round(heldout_ema, 4),
            "eval_seconds": round(time.perf_counter() - t0, 2),
            "loadavg_start": load_start,
            "loadavg_end": load_end,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
