"""The step Jacobians ∂s_t/∂s_{t-1} and their products: why gradients vanish or explode.

Seed 001 and seed 003 explain it by the chain rule:
∂L/∂s_{t-d} = ∂L/∂s_t · J_t J_{t-1} ... J_{t-d+1}, so the gradient's size over a distance d
follows the product of d step Jacobians; when their largest singular value stays below 1 it
vanishes geometrically, above 1 it can explode.
`jacobian_spectrum` computes both for one sequence of a batch: the singular values of every
step's J_t and of the products over growing distance from the last step.

The state s is everything the step carries: the recurrent vector r and, for cells with more
state, the carried states (an LSTM's (h, c), of width 2H), because the gradient flows through
all of it. The Jacobians are autograd's, of the cell's own equations (rnnkit.baselines), exact
in the layer's dtype; the products are formed in float64 so that small values do not underflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ._layers import check_layer
from .gates import record

__all__ = ["JacobianSpectrum", "jacobian_spectrum"]


@dataclass
class JacobianSpectrum:
    """For every sweep k (layer * D + direction) of one sequence:

    step[k] (T, S): the singular values of J_t = ∂s_t/∂s_{t-1}, largest first, time order;
    product[k] (distance, S): those of ∂s_end/∂s_{end-d} for d = 1, 2, ..., where `end` is the
    sweep's last step (t = T-1 forward, t = 0 in reverse);
    names[k]: "layer 0", "layer 0 reverse", ...; state_width: S."""

    step: list[Tensor]
    product: list[Tensor]
    names: list[str]
    state_width: int

    def largest_step(self) -> Tensor:
        """(L * D, T) the largest singular value of each step Jacobian."""
        return torch.stack([s[:, 0] for s in self.step])

    def largest_product(self) -> Tensor:
        """(L * D, distance) the largest singular value of the product over each distance."""
        return torch.stack([p[:, 0] for p in self.product])


def _step_function(layer, index: int, x_t: Tensor):
    """s_{t-1} (S,) -> s_t (S,) for one sequence of sweep `index` at a step with input x_t."""
    cell = layer.cell
    depth, direction = divmod(index, 2 if layer.bidirectional else 1)
    weights = layer._weights_for(depth, direction)
    w_out, b_out = weights[4], weights[5]
    R, H, k = layer.recurrent_size, layer.hidden_size, cell.num_carried
    projection = cell.output_activation

    def step(state: Tensor) -> Tensor:
        r = state[:R].unsqueeze(0)
        carried = tuple(state[R + j * H : R + (j + 1) * H].unsqueeze(0) for j in range(k))
        m, new_carried = cell.equations(x_t.unsqueeze(0), r, carried, weights)
        new_r = m if projection is None else projection.forward(F.linear(m, w_out, b_out))
        return torch.cat([new_r[0], *(c[0] for c in new_carried)])

    return step


def jacobian_spectrum(
    layer, input, *, hx=None, lengths=None, sample: int = 0, max_distance: int | None = None
) -> JacobianSpectrum:
    """The singular values of the step Jacobians of sequence `sample` of the batch, and of
    their products over distances 1 .. max_distance (default: the sequence's length) back from
    the last step. Costs one Jacobian (S backward passes, vectorized) per step and one SVD per
    step and distance: meant for layers of a few hundred units and sequences of hundreds."""
    layer = check_layer("jacobian_spectrum", layer)
    recording = record(layer, input, hx=hx, lengths=lengths)
    B = recording.mask.shape[1]
    if not isinstance(sample, int) or not 0 <= sample < B:
        raise ValueError(f"jacobian_spectrum: sample must be an index into the batch of {B}")
    steps = int(recording.mask[:, sample].sum())
    distance = steps if max_distance is None else min(int(max_distance), steps)
    if distance < 1:
        raise ValueError("jacobian_spectrum: max_distance must be at least 1")
    D = recording.num_directions
    step_values, product_values, names = [], [], []
    for index in range(len(recording.hidden)):
        inputs = recording.layer_input(index)[:steps, sample]
        states = torch.cat(
            [recording.hidden[index][:steps, sample]]
            + [c[:steps, sample] for c in recording.carried[index]],
            dim=-1,
        )  # (steps, S): s_t in time order
        initial = torch.cat([s[sample] for s in recording.initial[index]])
        reverse = index % D == 1
        jacobians = []
        for t in range(steps):
            before = t + 1 if reverse else t - 1
            previous = initial if before in (-1, steps) else states[before]
            step = _step_function(layer, index, inputs[t])
            with torch.enable_grad():
                jacobians.append(torch.func.jacrev(step)(previous.detach()).detach())
        J = torch.stack(jacobians).to(torch.float64)  # (steps, S, S), time order
        step_values.append(torch.linalg.svdvals(J))
        visit = list(range(steps - 1, -1, -1)) if not reverse else list(range(steps))
        product = torch.eye(J.shape[-1], dtype=torch.float64)
        values = []
        for d in range(distance):
            product = product @ J[visit[d]]  # ∂s_end/∂s_{end-d-1}
            values.append(torch.linalg.svdvals(product))
        product_values.append(torch.stack(values))
        names.append(recording.sweep_name(index))
    return JacobianSpectrum(step_values, product_values, names, step_values[0].shape[-1])
