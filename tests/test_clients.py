"""Outside code that uses torch.nn's recurrent layers keeps working with rnnkit's in their place.

The client here follows pytorch/examples' word_language_model (main.py and model.py): a model
class of its own holding `getattr(nn, rnn_type)(...)`, trained, saved whole with torch.save and
loaded back with torch.load under `torch.serialization.safe_globals` naming the client's class
and torch.nn's module classes (the list that example passes). Swapping in rnnkit's layers must
change nothing of that: rnnkit's layers pickle with nothing but tensors and plain values and
are declared safe for weights_only loading, so the example's own allowlist suffices.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit


class RNNModel(nn.Module):
    """Encoder, a recurrent module, decoder: the example's model, written here."""

    def __init__(self, rnn_type: str, ntoken: int, ninp: int, nhid: int, nlayers: int):
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(rnnkit, rnn_type)(ninp, nhid, nlayers, dropout=0.2)
        self.decoder = nn.Linear(nhid, ntoken)
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

    def forward(self, input, hidden):
        output, hidden = self.rnn(self.drop(self.encoder(input)), hidden)
        return self.decoder(self.drop(output)), hidden

    def init_hidden(self, batch):
        weight = next(self.parameters())
        zeros = weight.new_zeros(self.nlayers, batch, self.nhid)
        return (zeros, zeros.clone()) if self.rnn_type == "LSTM" else zeros


# the example's allowlist for its recurrent models: torch.nn's classes, not rnnkit's
EXAMPLE_SAFE_GLOBALS = [
    RNNModel,
    torch.nn.modules.dropout.Dropout,
    torch.nn.modules.linear.Linear,
    torch.nn.modules.rnn.GRU,
    torch.nn.modules.rnn.LSTM,
    torch.nn.modules.rnn.RNN,
    torch.nn.modules.sparse.Embedding,
]


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU", "RNN"])
def test_word_language_model_trains_saves_and_loads_the_best_model(rnn_type, tmp_path):
    torch.manual_seed(0)
    ntoken, batch, bptt = 30, 4, 7
    data = torch.randint(0, ntoken, (bptt * 6 + 1, batch))
    model = RNNModel(rnn_type, ntoken, 12, 16, 2)
    criterion = nn.NLLLoss()
    hidden = model.init_hidden(batch)
    losses = []
    for i in [*range(0, data.shape[0] - 1 - bptt, bptt)] * 5:  # five epochs
        if i == 0:
            hidden = model.init_hidden(batch)
        inputs, targets = data[i : i + bptt], data[i + 1 : i + 1 + bptt].reshape(-1)
        hidden = tuple(h.detach() for h in hidden) if isinstance(hidden, tuple) else hidden.detach()
        model.zero_grad()
        output, hidden = model(inputs, hidden)
        loss = criterion(torch.log_softmax(output.view(-1, ntoken), -1), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(p.grad, alpha=-5.0)
        losses.append(loss.item())
    assert sum(losses[-5:]) < sum(losses[:5])  # it learns (the last epoch against the first)
    path = tmp_path / "model.pt"
    with open(path, "wb") as f:
        torch.save(model, f)
    with open(path, "rb") as f, torch.serialization.safe_globals(EXAMPLE_SAFE_GLOBALS):
        loaded = torch.load(f)
    loaded.rnn.flatten_parameters()  # as the example does after loading
    assert type(loaded.rnn) is getattr(rnnkit, rnn_type)
    model.eval()
    loaded.eval()
    with torch.no_grad():
        expected, _ = model(data[:bptt], model.init_hidden(batch))
        got, _ = loaded(data[:bptt], loaded.init_hidden(batch))
    torch.testing.assert_close(got, expected)
    assert loaded.rnn.backend == "auto" and "-> " in loaded.rnn.explain()
