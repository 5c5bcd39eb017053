"""Seed 000's hand-worked Elman RNN, run through rnnkit and checked against the formula.

Seed 000 ("what is a recurrent network, with diagrams and examples") works one tiny network by
hand: 1 input, 1 hidden and 1 output unit, W_x = 0.5, W_h = 1.0, hidden bias 0, output weight 1
and bias 0 with an identity output, h_0 = 0, and the inputs 1, 2, 3:

    h_t = tanh(W_h h_{t-1} + W_x x_t + b_h),    y_t = W_y h_t + b_y

and reads off 0.984 as the network's guess for the number after 3. This script builds the same
network as `rnnkit.RNN(1, 1, backend="reference")` with those weights set explicitly, runs the
sequence, and prints rnnkit's hidden states and outputs next to the ones the formula gives when
evaluated by hand with math.tanh.

Run from the repository root:

    .venv/bin/python examples/seed000_worked_example.py
"""

from __future__ import annotations

import math

import torch

import rnnkit

# The seed's numbers. torch.nn.RNN splits the hidden bias into b_ih + b_hh; both are zero here.
W_X = 0.5  # input -> hidden
W_H = 1.0  # hidden -> hidden
B_H = 0.0  # hidden bias
W_Y = 1.0  # hidden -> output
B_Y = 0.0  # output bias; the output activation is the identity
INPUTS = (1.0, 2.0, 3.0)


def build_rnn() -> rnnkit.RNN:
    """The seed's 1-1 Elman layer on rnnkit's reference engine.

    float64, so that rnnkit and the hand formula (Python floats are doubles) agree to ~1e-16
    rather than to float32's ~1e-7.
    """
    rnn = rnnkit.RNN(1, 1, backend="reference", dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.fill_(W_X)
        rnn.weight_hh_l0.fill_(W_H)
        rnn.bias_ih_l0.fill_(B_H)
        rnn.bias_hh_l0.zero_()  # the seed has one hidden bias; keep torch's second one out
    return rnn


def run_rnnkit(inputs=INPUTS) -> tuple[list[float], list[float]]:
    """Hidden states h_1..h_T and outputs y_1..y_T from rnnkit."""
    rnn = build_rnn()
    x = torch.tensor(inputs, dtype=torch.float64).unsqueeze(-1)  # (T, 1): unbatched, 1 feature
    with torch.no_grad():
        hidden, _ = rnn(x)  # (T, 1); h_0 defaults to zeros, as in the seed
        outputs = W_Y * hidden + B_Y  # identity output activation
    return hidden.squeeze(-1).tolist(), outputs.squeeze(-1).tolist()


def run_by_hand(inputs=INPUTS) -> tuple[list[float], list[float]]:
    """The same recurrence written out as the seed does it, one scalar step at a time."""
    h = 0.0  # h_0
    hidden, outputs = [], []
    for x in inputs:
        h = math.tanh(W_H * h + W_X * x + B_H)
        hidden.append(h)
        outputs.append(W_Y * h + B_Y)
    return hidden, outputs


def main() -> None:
    kit_h, kit_y = run_rnnkit()
    hand_h, hand_y = run_by_hand()
    print("Seed 000 worked example: W_x = 0.5, W_h = 1.0, b = 0, h_0 = 0, inputs 1, 2, 3")
    print(f"{'t':>2} {'x_t':>4}  {'h_t (rnnkit)':>14}  {'h_t (by hand)':>14}  {'y_t':>7}")
    for t, x in enumerate(INPUTS, start=1):
        i = t - 1
        print(f"{t:>2} {x:>4.0f}  {kit_h[i]:>14.10f}  {hand_h[i]:>14.10f}  {kit_y[i]:>7.4f}")
    gap = max(abs(a - b) for a, b in zip(kit_y, hand_y, strict=True))
    print(f"prediction after 3: {kit_y[-1]:.3f} (seed: 0.984); rnnkit vs hand: max gap {gap:.1e}")


if __name__ == "__main__":
    main()
