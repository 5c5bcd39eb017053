"""The task models' recurrent encoder without packing, for export: the same numbers on a padded
batch, in operators every exporter turns into ONNX with dynamic batch and time.

rnnkit.models.encoder.RecurrentEncoder packs its variable-length batch, and torch's ONNX
exporter converts a packed LSTM into a graph that is wrong even on the input it was exported
with. `PaddedEncoder` computes the same outputs from the padded batch instead: each layer and
direction is one torch.nn kernel (LSTM, GRU or RNN, the layer's own weights) over the whole
padded batch. The forward direction reads padding only after each sequence's end, so its
outputs up to the end are exact; the backward direction runs on each sequence reversed within
its own length (padding stays at the end) and is turned back the same way. Outputs past each
length are zero, and the final state of each direction is its output at the sequence's last
step (its first, for the backward direction), as packing gives.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ..models.encoder import RecurrentEncoder

__all__ = ["AllRowsCharEncoder", "PaddedEncoder", "exportable_copy"]

KERNELS = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}


def _kernel_for(rnn: nn.Module, input_size: int, layer: int, suffix: str) -> nn.Module:
    """A one-layer, one-direction torch.nn layer holding `rnn`'s weights of that layer."""
    name = type(rnn).__name__
    options = {"batch_first": True, "bias": rnn.bias}
    if name == "RNN":
        options["nonlinearity"] = rnn.nonlinearity
    kernel = KERNELS[name](input_size, rnn.hidden_size, **options)
    with torch.no_grad():
        for weight in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if hasattr(kernel, f"{weight}_l0"):
                source = getattr(rnn, f"{weight}_l{layer}{suffix}")
                getattr(kernel, f"{weight}_l0").copy_(source)
    return kernel.to(rnn.weight_ih_l0.dtype)


class _SweepKernel(nn.Module):
    """One layer and direction of an rnnkit layer as the rnnkit::sweep operator over a padded
    batch (B, T, F) -> ((B, T, R), None), from zero states, in the forward direction (the
    encoder reverses each row itself)."""

    def __init__(self, rnn: nn.Module, layer: int, direction: int) -> None:
        super().__init__()
        self.rnn, self.layer, self.direction = rnn, layer, direction

    def forward(self, x: Tensor):
        from ..engine.custom_ops import library_sweep
        from ..engine.reference import SweepSpec

        rnn = self.rnn
        B, T, width = x.shape
        data = x.transpose(0, 1).reshape(T * B, width)
        zeros = tuple(x.new_zeros(B, size) for size in rnn.state_sizes())
        run = library_sweep(rnn.__dict__["_library_key"])
        out, _, _ = run(
            SweepSpec(rnn.cell, ()),
            data,
            zeros[0],
            zeros[1:],
            rnn._weights_for(self.layer, self.direction),
        )
        return out.view(T, B, -1).transpose(0, 1), None


def _along_time(x: Tensor, index: Tensor) -> Tensor:
    """x (B, T, F) with each row's steps taken in `index`'s (B, T) order."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class PaddedEncoder(nn.Module):
    """RecurrentEncoder's (outputs, last) from a padded batch, one torch kernel per layer and
    direction."""

    def __init__(self, encoder: RecurrentEncoder) -> None:
        super().__init__()
        rnn = encoder.rnn
        name = type(rnn).__name__
        if getattr(rnn, "proj_size", 0):
            raise NotImplementedError(
                f"a task model of {name} layers with proj_size cannot be exported to ONNX yet"
            )
        # torch's kernels where torch has one (every exporter knows them), else rnnkit::sweep
        as_operator = name not in KERNELS
        self.directions = encoder.directions
        self.output_size = encoder.output_size
        kernels = []
        width = rnn.input_size
        for layer in range(rnn.num_layers):
            for direction in range(self.directions):
                suffix = "_reverse" if direction else ""
                if as_operator:
                    kernels.append(_SweepKernel(rnn, layer, direction))
                else:
                    kernels.append(_kernel_for(rnn, width, layer, suffix))
            width = rnn.hidden_size * self.directions
        self.kernels = nn.ModuleList(kernels)
        self.num_layers = rnn.num_layers

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        B, T = features.shape[0], features.shape[1]
        steps = torch.arange(T, device=features.device).unsqueeze(0).expand(B, T)
        lengths = lengths.to(steps.device).unsqueeze(1)  # (B, 1)
        real = steps < lengths  # (B, T)
        # each row's real steps in reverse, padding where it was: an involution
        reverse = torch.where(real, lengths - 1 - steps, steps)
        last_step = (lengths - 1).clamp(min=0)  # (B, 1)
        x, finals = features, []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.directions):
                kernel = self.kernels[layer * self.directions + direction]
                source = x if direction == 0 else _along_time(x, reverse)
                out, _ = kernel(source)  # (B, T, H)
                finals.append(_along_time(out, last_step).squeeze(1))  # (B, H)
                outputs.append(out if direction == 0 else _along_time(out, reverse))
            x = outputs[0] if self.directions == 1 else torch.cat(outputs, dim=-1)
        outputs = x * real.unsqueeze(-1).to(x.dtype)
        last = torch.cat(finals[-self.directions :], dim=-1)
        return outputs, last


class AllRowsCharEncoder(nn.Module):
    """The tagger's CharEncoder on every word position at once: a position without characters
    (sentence padding) is read as one padding character and its encoding zeroed, where the
    model picks the real positions out first, a data-dependent shape torch.export cannot
    follow. The real positions' encodings are the same."""

    def __init__(self, chars: nn.Module) -> None:
        super().__init__()
        self.embedding, self.encoder = chars.embedding, chars.encoder
        self.output_size = chars.output_size

    def forward(self, chars: Tensor, char_lengths: Tensor) -> Tensor:
        B, T, C = chars.shape
        lengths = char_lengths.reshape(B * T)
        _, last = self.encoder(self.embedding(chars.reshape(B * T, C)), lengths.clamp(min=1))
        last = last * (lengths > 0).unsqueeze(1).to(last.dtype)
        return last.reshape(B, T, self.output_size)


def exportable_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` in eval mode with every RecurrentEncoder replaced by a PaddedEncoder
    and the tagger's character encoder by AllRowsCharEncoder."""
    from ..models.tagger import CharEncoder

    model = copy.deepcopy(model).eval()
    # the character encoders first: the second pass then reaches the encoders they hold
    for kind, replacement in ((CharEncoder, AllRowsCharEncoder), (RecurrentEncoder, PaddedEncoder)):
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, kind):
                    setattr(parent, name, replacement(child))
    return model
