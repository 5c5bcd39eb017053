"""Seed 000's SimpleRNN that learns to continue a sequence, trained with rnnkit.

Seed 000 ends with a PyTorch model: nn.RNN(1, hidden, batch_first=True) followed by nn.Linear on
the last step, trained with Adam (lr 0.01) and MSE for 1000 epochs on the single pair
[1, 2, 3, 4] -> 5, then asked to continue [2, 3, 4]; it answers about 5.

Here nn.RNN becomes rnnkit.RNN (backend "reference" by default, so every gradient comes from
rnnkit's hand-written backpropagation through time; "native" runs torch's kernel for comparison).
Two changes make the result dependable instead of lucky:

  * the data are all sliding windows of 3 and 4 numbers from 1..10, each followed by its next
    number, so the model sees "count on by one" from several starting points (the seed's own
    pair [1, 2, 3, 4] -> 5 and the query [2, 3, 4] -> 5 are both among them);
  * numbers are divided by 10 inside the model, which keeps tanh away from saturation; raw
    counts up to 10 would push tanh to ±1 and flatten its gradient.

With a fixed torch seed the run is deterministic; 300 full-batch Adam steps take well under a
second on the reference backend.

Run from the repository root:

    .venv/bin/python examples/seed000_next_number.py [--backend native] [--seed 3]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnkit

SCALE = 10.0  # numbers enter the network divided by this, and leave multiplied by it
SEQUENCE_END = 10  # windows are cut from 1, 2, ..., SEQUENCE_END
WINDOW_LENGTHS = (3, 4)  # the query has 3 numbers, the seed's training pair 4
HIDDEN_SIZE = 16
EPOCHS = 300
LR = 0.01  # the seed's Adam learning rate


class NextNumberRNN(nn.Module):
    """Elman RNN over a sequence of numbers, linear readout of the last hidden state.

    Call: numbers (B, T) -> the predicted next number (B,), both in the caller's units.
    """

    def __init__(self, hidden_size: int = HIDDEN_SIZE, backend: str = "reference") -> None:
        super().__init__()
        self.rnn = rnnkit.RNN(1, hidden_size, batch_first=True, backend=backend)
        self.fc = nn.Linear(hidden_size, 1)

    def forward(self, numbers: Tensor) -> Tensor:
        x = (numbers / SCALE).to(self.fc.weight.dtype).unsqueeze(-1)  # (B, T, 1)
        hidden, _ = self.rnn(x)  # (B, T, H); h_0 = zeros, as the seed passes explicitly
        return self.fc(hidden[:, -1, :]).squeeze(-1) * SCALE  # (B,)


def sliding_windows(length: int, end: int = SEQUENCE_END) -> tuple[Tensor, Tensor]:
    """Every run of `length` consecutive numbers from 1..end and the number after it.

    Returns inputs (B, length) and targets (B,), B = end - length.
    """
    starts = torch.arange(1, end - length + 1, dtype=torch.float64)  # (B,)
    inputs = starts.unsqueeze(1) + torch.arange(length, dtype=torch.float64)  # (B, length)
    return inputs, starts + length


def train(
    seed: int = 0,
    backend: str = "reference",
    epochs: int = EPOCHS,
    hidden_size: int = HIDDEN_SIZE,
    lr: float = LR,
    dtype: torch.dtype = torch.float32,
) -> NextNumberRNN:
    """Train from torch seed `seed` with full-batch Adam on MSE; returns the model in eval mode.

    Two runs with the same arguments give the same model. Runs that differ only in `backend`
    start from the same weights (the backend does not touch initialisation) and differ only by
    rounding: about 1e-6 in the prediction in float32, 1e-15 in float64.
    """
    # Only the initial weights are random (full batches, no dropout); seeding them inside
    # fork_rng makes the run reproducible without resetting the caller's global generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = NextNumberRNN(hidden_size, backend).to(dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    # One batch per window length: a padded batch needs one length, and two batches keep
    # the example free of packing.
    batches = [sliding_windows(length) for length in WINDOW_LENGTHS]
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = sum(_scaled_mse(model(x), y.to(dtype)) for x, y in batches) / len(batches)
        loss.backward()
        optimizer.step()
    return model.eval()


def _scaled_mse(prediction: Tensor, target: Tensor) -> Tensor:
    # The loss is measured in the network's units (divided by SCALE), so its size and Adam's
    # behaviour do not depend on how far the counts go.
    return F.mse_loss(prediction / SCALE, target / SCALE)


def predict(model: NextNumberRNN, sequence) -> float:
    """The model's guess for the number after `sequence` (a list of numbers)."""
    with torch.no_grad():
        return model(torch.tensor([list(sequence)], dtype=torch.float64)).item()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="reference", choices=("reference", "native"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = train(seed=args.seed, backend=args.backend)
    print(f"trained rnnkit.RNN(1, {HIDDEN_SIZE}, backend={args.backend!r}) for {EPOCHS} epochs")
    for sequence in ([2, 3, 4], [1, 2, 3, 4], [5, 6, 7]):
        print(f"Input: {sequence}, Predicted Next Number: {predict(model, sequence):.2f}")


if __name__ == "__main__":
    main()
