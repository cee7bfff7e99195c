"""LSTM and GRU learn a task that needs memory: recall the token seen 20 steps earlier."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn, optim

TOKENS, STEPS = 4, 20


def _batch(rng, size):
    """The first step shows one of 4 tokens; the 19 after it are random distractors; the label is the first."""
    tokens = rng.integers(0, TOKENS, (size, STEPS))
    x = np.eye(TOKENS + 1, dtype=np.float32)[tokens]  # (N, T, 5); channel 4 marks "remember this"
    x[:, 0, TOKENS] = 1.0
    return cr.tensor(x), tokens[:, 0]


class Recaller(nn.Module):
    def __init__(self, kind, hidden=24):
        super().__init__()
        self.rnn = getattr(nn, kind)(TOKENS + 1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, TOKENS)
        if kind == "LSTM":  # forget gate open at the start (Gers et al.): memory survives 20 steps from step one
            self.rnn.bias_hh_l0.data[hidden : 2 * hidden] = 2.0

    def forward(self, x):
        output, _ = self.rnn(x)
        return self.head(output[:, -1])


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_recurrent_layer_remembers_a_token_for_20_steps(kind):
    cr.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Recaller(kind)
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    x_val, y_val = _batch(np.random.default_rng(1), 500)
    accuracy = 0.0
    for step in range(400):
        x, y = _batch(rng, 64)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 25 == 24:
            with cr.no_grad():
                accuracy = (model(x_val).argmax(axis=1).numpy() == y_val).mean()
            if accuracy > 0.97:
                break
    assert accuracy > 0.97, f"{kind} recalled only {accuracy:.0%} of held-out sequences"


def test_truncated_bptt_by_detaching_the_state():
    """Carry the state across chunks but cut the graph: gradients reach only the current chunk."""
    cr.manual_seed(0)
    lstm = nn.LSTM(3, 4)
    state = None
    for _chunk in range(3):
        x = cr.randn(5, 2, 3)
        output, state = lstm(x, state)
        output.sum().backward()
        state = (state[0].detach(), state[1].detach())
        assert not state[0].requires_grad
        lstm.zero_grad()
