"""The micrograd demo (2-16-16-1 ReLU net, hinge loss) on the tensor engine and on the scalar engine."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import data, nn
from chainrule.autograd import no_grad
from chainrule.creation import tensor
from chainrule.demo import gradient_descent
from chainrule.scalar import MLP, Value

__all__ = ["MoonsResult", "moons_max_margin", "moons_scalar_engine"]


@dataclass
class MoonsResult:
    """What :func:`moons_max_margin` and :func:`moons_scalar_engine` return.

    Attributes
    ----------
    engine : str
        ``"tensor"`` or ``"scalar"``.
    losses, accuracies : list of float
        Loss and training accuracy before each step (the scores of that step's forward pass).
    final_accuracy : float
        Training accuracy after the last update.
    seconds : float
        Wall time of the training loop.
    n_samples, n_parameters : int
    model : object
        The trained network (an ``nn.Module`` or a scalar :class:`~chainrule.scalar.MLP`).
    plot : Path or None
        The decision-boundary PNG, if one was written.
    """

    engine: str
    losses: list[float]
    accuracies: list[float]
    final_accuracy: float
    seconds: float
    n_samples: int
    n_parameters: int
    model: Any = field(repr=False, default=None)
    plot: Path | None = None

    def __str__(self) -> str:
        steps = len(self.losses)
        marks = sorted({0, min(9, steps - 1), min(19, steps - 1), steps // 2, steps - 1})
        lines = [
            f"moons, {self.n_samples} points, MLP 2-16-16-1 ReLU ({self.n_parameters} parameters) on the "
            f"{self.engine} engine",
            "loss = mean(relu(1 − y·score)) + 1e-4·Σw², full-batch SGD, lr = 1 − 0.9·k/100",
        ]
        for k in marks:
            lines.append(f"  step {k:3d}  loss {self.losses[k]:.6f}  accuracy {self.accuracies[k]:.0%}")
        lines.append(
            f"after {steps} steps: training accuracy {self.final_accuracy:.0%} "
            f"({self.seconds:.2f} s, {self.seconds / steps * 1000:.1f} ms per step)"
        )
        if self.plot is not None:
            lines.append(f"plot: {self.plot}")
        return "\n".join(lines)


def _moons(n_samples: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 2) float64 and labels (N,) in {-1, +1}."""
    train = data.load("moons", n_samples=n_samples, noise=noise, test_fraction=0.0, seed=seed).train
    points, labels = train.arrays
    return points.astype(np.float64), 2.0 * labels.astype(np.float64) - 1.0


def _check_moons(where: str, n_samples: int, steps: int) -> None:
    if n_samples < 2 or steps < 1:
        raise ValueError(f"{where}: need n_samples >= 2 and steps >= 1, got {n_samples}, {steps}")


def _micrograd_lr(step: int) -> float:
    """micrograd's schedule: 1.0 at the first step, falling linearly by 0.009 a step."""
    return 1.0 - 0.9 * step / 100


def _tensor_copy(scalar_net: MLP) -> nn.Sequential:
    """An ``nn.Sequential`` of float64 ``Linear`` + ``ReLU`` with the scalar MLP's weights, row per neuron."""
    layers: list[nn.Module] = []
    for index, layer in enumerate(scalar_net.layers):
        linear = nn.Linear(len(layer.neurons[0].w), len(layer.neurons), dtype=np.float64)
        with no_grad():
            linear.weight.copy_(np.array([[w.data for w in neuron.w] for neuron in layer.neurons]))  # (out, in)
            if linear.bias is not None:
                linear.bias.copy_(np.array([neuron.b.data for neuron in layer.neurons]))  # (out,)
        layers.append(linear)
        if index < len(scalar_net.layers) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def moons_max_margin(
    n_samples: int = 100,
    noise: float = 0.1,
    steps: int = 100,
    alpha: float = 1e-4,
    seed: int = 0,
    plot: str | os.PathLike[str] | None = None,
) -> MoonsResult:
    """The micrograd demo on the tensor engine: a 2-16-16-1 ReLU MLP separates the two moons by max margin.

    With labels :math:`y_i = \\pm 1` and scores :math:`s_i` (one number per point), the loss is the SVM
    hinge plus L2, :math:`L = \\frac1N \\sum_i \\max(0, 1 - y_i s_i) + \\alpha \\sum_p p^2`: a point stops
    pushing once it is on the right side with margin 1. (``nn.functional.multi_margin_loss`` on two scores
    ``[0, s]`` is half this hinge.) Training is full-batch SGD with
    :math:`\\eta_k = 1 - 0.9\\,k/100`, as in micrograd's ``demo.ipynb``. The weights start as micrograd's,
    :math:`U(-1, 1)` with zero biases, copied from ``chainrule.scalar.MLP(2, [16, 16, 1], "relu", seed)``,
    so :func:`moons_scalar_engine` with the same arguments computes the same numbers.

    Parameters
    ----------
    n_samples, noise, seed : int, float, int
        The data, ``chainrule.data.load("moons", ...)`` (all points used for training); the seed also
        seeds the weights.
    steps : int
        SGD steps (the schedule is defined for up to 100: it reaches 0.1 at step 100).
    alpha : float
        L2 strength.
    plot : path, optional
        Write the decision boundary PNG (``chainrule.train.plots.plot_decision_boundary``).

    Returns
    -------
    MoonsResult
        Shapes: points (N, 2), scores (N, 1).

    Examples
    --------
    >>> from chainrule.explain.demos import moons_max_margin
    >>> result = moons_max_margin(n_samples=40, steps=30)
    >>> result.losses[-1] < result.losses[0], result.final_accuracy > 0.9
    (True, True)
    """
    _check_moons("moons_max_margin", n_samples, steps)
    points, labels = _moons(n_samples, noise, seed)
    model = _tensor_copy(MLP(2, [16, 16, 1], activation="relu", seed=seed))
    parameters = list(model.parameters())
    x, y = tensor(points), tensor(labels.reshape(-1, 1))  # (N, 2), (N, 1)
    accuracies: list[float] = []

    def max_margin_loss() -> Any:
        scores = model(x)  # (N, 1)
        accuracies.append(float(np.mean((scores.numpy()[:, 0] > 0) == (labels > 0))))
        hinge = (1.0 - y * scores).relu().mean()
        penalty = alpha * sum((p * p).sum() for p in parameters)
        return hinge + penalty

    start = time.perf_counter()
    losses = gradient_descent(max_margin_loss, parameters, steps, _micrograd_lr)
    seconds = time.perf_counter() - start
    with no_grad():
        final = model(x).numpy()[:, 0]  # (N,)
    result = MoonsResult(
        engine="tensor",
        losses=losses,
        accuracies=accuracies,
        final_accuracy=float(np.mean((final > 0) == (labels > 0))),
        seconds=seconds,
        n_samples=n_samples,
        n_parameters=sum(p.numel() for p in parameters),
        model=model,
    )
    if plot is not None:
        from chainrule.train.plots import plot_decision_boundary

        result.plot = plot_decision_boundary(model, points, (labels > 0).astype(int), plot)
    return result


def moons_scalar_engine(
    n_samples: int = 100, noise: float = 0.1, steps: int = 100, alpha: float = 1e-4, seed: int = 0
) -> MoonsResult:
    """The micrograd demo as micrograd wrote it: the same net, one :class:`~chainrule.Value` per number.

    Same data, initial weights, loss and schedule as :func:`moons_max_margin`, so the losses agree with it
    to float64 rounding; what differs is speed. The graph has one node per multiply and add (about
    :math:`N \\cdot 600` for this net), built and walked in Python: about 0.6 s a step for 100 points on an
    idle CPU core (1.5 s on a busy one), 1 to 2.5 min for the full 100 steps, which reach 100% training
    accuracy with the losses of the tensor engine to 1e-15 (the tensor engine takes 0.1 to 0.4 s).

    Parameters
    ----------
    n_samples, noise, steps, alpha, seed
        As for :func:`moons_max_margin`.

    Returns
    -------
    MoonsResult
        ``model`` is the trained :class:`chainrule.scalar.MLP`.

    Examples
    --------
    >>> from chainrule.explain.demos import moons_scalar_engine
    >>> result = moons_scalar_engine(n_samples=20, steps=5)
    >>> result.losses[-1] < 0.5 < result.losses[0]   # lr = 1 overshoots at first (steps 1-2), then falls
    True
    """
    _check_moons("moons_scalar_engine", n_samples, steps)
    points, labels = _moons(n_samples, noise, seed)
    rows = points.tolist()
    model = MLP(2, [16, 16, 1], activation="relu", seed=seed)
    parameters = model.parameters()
    losses, accuracies = [], []
    start = time.perf_counter()
    for k in range(steps):
        scores = [model(row) for row in rows]  # N Values
        hinge = sum(((1.0 - float(label) * score).relu() for label, score in zip(labels, scores)), Value(0.0))
        penalty = alpha * sum((p * p for p in parameters), Value(0.0))
        loss = hinge * (1.0 / len(rows)) + penalty
        model.zero_grad()
        loss.backward()
        for p in parameters:
            p.data -= _micrograd_lr(k) * p.grad
        losses.append(loss.data)
        accuracies.append(sum((s.data > 0) == (label > 0) for s, label in zip(scores, labels)) / len(rows))
    seconds = time.perf_counter() - start
    final = np.array([model(row).data for row in rows])
    return MoonsResult(
        engine="scalar",
        losses=losses,
        accuracies=accuracies,
        final_accuracy=float(np.mean((final > 0) == (labels > 0))),
        seconds=seconds,
        n_samples=n_samples,
        n_parameters=len(parameters),
        model=model,
    )
