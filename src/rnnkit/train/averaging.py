"""The exponential moving average of the weights (`--ema-decay`): evaluated and kept in best/.

Polyak averaging: the average of the weights over the last steps of a noisy optimizer sits
nearer the minimum than any one step's weights. torch's AveragedModel keeps the copy and the
count of updates; the update is an EMA whose decay ramps up from (1 + n) / (10 + n) to the
given one (TensorFlow's ExponentialMovingAverage with num_updates), so in the first steps the
average follows the weights instead of staying near their initial values. The training
continues on the model's own weights; every held-out evaluation, best/ and the end-of-run
evaluation read the average. latest/ stores it, so a resumed run continues the same average.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

__all__ = ["WeightAverage"]

PREFIX = "ema."  # the average's tensors among latest/'s trainer tensors


def _ramped_ema(decay: float):
    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        n = int(num_averaged)
        step_decay = min(decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(averaged, current, 1.0 - step_decay)

    return update


class WeightAverage:
    """The EMA of `model`'s parameters, updated after each step."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema-decay must be in (0, 1), or 0 for off; got {decay}")
        self.decay = decay
        # the first update copies the weights, the later ones average; the models' buffers
        # are constants (the CRF's masks of allowed transitions), copied once here
        self.averaged = AveragedModel(model, multi_avg_fn=_ramped_ema(decay))

    @property
    def model(self) -> nn.Module:
        """The averaged copy, the model's class with the average's weights."""
        return self.averaged.module

    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)

    def state_tensors(self) -> dict[str, Tensor]:
        """What latest/ keeps of the average: its weights and the count of updates."""
        tensors = {PREFIX + name: t for name, t in self.model.state_dict().items()}
        tensors[PREFIX + "n_averaged"] = self.averaged.n_averaged
        return tensors

    def load_state_tensors(self, tensors: dict[str, Tensor], where: str) -> None:
        """Restore the average from latest/'s trainer tensors (`where` names the checkpoint)."""
        mine = {k[len(PREFIX) :]: t for k, t in tensors.items() if k.startswith(PREFIX)}
        if "n_averaged" not in mine:
            raise ValueError(
                f"{where}: the run was saved without the weights' average that --ema-decay "
                "needs; resume with the --ema-decay it was started with"
            )
        count = mine.pop("n_averaged")
        try:
            self.model.load_state_dict(mine)
        except RuntimeError as error:
            detail = " ".join(str(error).split())[:200]
            raise ValueError(
                f"{where}: the weights' average does not fit the model ({detail})"
            ) from None
        self.averaged.n_averaged.copy_(count)
