"""A small network that really learns: XOR with a 2-4-1 tanh MLP, on the tensor or the scalar engine.

XOR is the classic function that no single linear neuron can represent and a network with one hidden
layer can. :func:`gradient_descent` is plain full-batch gradient descent written out: forward, loss,
backward, update; the teaching demos in :mod:`chainrule.explain.demos` train with it too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.autograd import no_grad
from chainrule.creation import tensor
from chainrule.rng import manual_seed
from chainrule.tensor import Tensor

__all__ = ["XOR_INPUTS", "XOR_TARGETS", "XorResult", "train_xor", "gradient_descent"]

#: The four XOR cases (inputs 00, 01, 10, 11) and their targets.
XOR_INPUTS = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
XOR_TARGETS = [0.0, 1.0, 1.0, 0.0]


def gradient_descent(
    loss_of: Callable[[], Tensor], parameters: Sequence[Tensor], steps: int, lr: float | Callable[[int], float]
) -> list[float]:
    """Full-batch gradient descent, written out: ``steps`` times loss, backward, ``p -= lr * p.grad``.

    Parameters
    ----------
    loss_of : callable
        Runs the forward pass on the whole batch and returns the scalar loss.
    parameters : sequence of Tensor
        The tensors to update (``requires_grad=True``), changed in place.
    steps : int
        Number of updates.
    lr : float or callable
        Learning rate, or a schedule: a function of the step number (0, 1, ...) giving the rate.

    Returns
    -------
    list of float
        The loss before each update.

    Examples
    --------
    >>> from chainrule import tensor
    >>> w = tensor([1.0], requires_grad=True)
    >>> [round(v, 4) for v in gradient_descent(lambda: (w * w).sum(), [w], steps=3, lr=0.25)]
    [1.0, 0.25, 0.0625]
    """
    losses = []
    for step in range(steps):
        loss = loss_of()
        for p in parameters:
            p.grad = None
        loss.backward()
        rate = lr(step) if callable(lr) else lr
        with no_grad():
            for p in parameters:
                if p.grad is not None:
                    p -= rate * p.grad
        losses.append(loss.item())
    return losses


@dataclass
class XorResult:
    """What :func:`train_xor` returns: the loss after each step and the final outputs."""

    losses: list[float] = field(default_factory=list)
    predictions: list[float] = field(default_factory=list)


def train_xor(steps: int = 500, lr: float = 0.2, hidden: int = 4, seed: int = 0, engine: str = "tensor") -> XorResult:
    """Train a 2-``hidden``-1 tanh network on XOR with full-batch gradient descent on the MSE.

    Parameters
    ----------
    steps : int
        Gradient-descent steps.
    lr : float
        Learning rate.
    hidden : int
        Width of the hidden layer.
    seed : int
        Seed of the initial weights.
    engine : {"tensor", "scalar"}
        Train with :class:`chainrule.Tensor` (matrices) or :class:`chainrule.Value` (one number at a time).

    Returns
    -------
    XorResult
        ``losses[i]`` is the mean squared error before step ``i``; ``predictions`` the final outputs.

    Examples
    --------
    >>> from chainrule.demo import train_xor
    >>> result = train_xor(steps=300)
    >>> result.losses[-1] < 0.01 < result.losses[0]
    True
    """
    if steps < 1 or lr <= 0 or hidden < 1:
        raise ValueError(f"train_xor: need steps >= 1, lr > 0 and hidden >= 1, got {steps}, {lr}, {hidden}")
    from chainrule import _checks

    count = _checks.mlp_parameter_count([2, hidden, 1])
    per_parameter = 2048 if engine == "scalar" else 64  # a Value graph per step, or a few float64 arrays of (4, hidden)
    _checks.fits_in_memory("train_xor", f"a 2-{hidden}-1 network ({count:,} parameters)", per_parameter * count)
    if engine == "scalar":
        return _train_xor_scalar(steps, lr, hidden, seed)
    if engine != "tensor":
        raise ValueError(f"train_xor: engine must be 'tensor' or 'scalar', got {engine!r}")
    rng = manual_seed(seed)
    x = tensor(XOR_INPUTS)  # (4, 2)
    y = tensor(XOR_TARGETS).reshape(4, 1)  # (4, 1)
    w1 = tensor(rng.uniform(-1, 1, (2, hidden)), requires_grad=True)
    b1 = tensor(np.zeros(hidden), requires_grad=True)
    w2 = tensor(rng.uniform(-1, 1, (hidden, 1)), requires_grad=True)
    b2 = tensor(np.zeros(1), requires_grad=True)

    def mse() -> Tensor:
        hidden_out = (x @ w1 + b1).tanh()  # (4, hidden)
        out = hidden_out @ w2 + b2  # (4, 1)
        return ((out - y) ** 2).mean()

    result = XorResult(losses=gradient_descent(mse, [w1, b1, w2, b2], steps, lr))
    with no_grad():
        result.predictions = (((x @ w1 + b1).tanh() @ w2 + b2).reshape(4)).tolist()
    return result


def _train_xor_scalar(steps: int, lr: float, hidden: int, seed: int) -> XorResult:
    from chainrule.scalar import MLP

    net = MLP(2, [hidden, 1], activation="tanh", seed=seed)
    result = XorResult()
    for _ in range(steps):
        outs = [net(x) for x in XOR_INPUTS]
        loss: Any = sum(((o - t) ** 2 for o, t in zip(outs, XOR_TARGETS)), 0.0) * (1.0 / len(XOR_TARGETS))
        net.zero_grad()
        loss.backward()
        for p in net.parameters():
            p.data -= lr * p.grad
        result.losses.append(loss.data)
    result.predictions = [net(x).data for x in XOR_INPUTS]
    return result
