"""Gradient descent on one linear neuron reaches the least-squares solution."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chainrule import data, nn
from chainrule.creation import tensor
from chainrule.demo import gradient_descent
from chainrule.nn import functional as F
from chainrule.rng import manual_seed

__all__ = ["LinearNeuronResult", "linear_regression_neuron"]


@dataclass
class LinearNeuronResult:
    """What :func:`linear_regression_neuron` returns.

    Attributes
    ----------
    weight, bias : ndarray, shapes (F,) and (1,)
        The neuron after gradient descent.
    lstsq_weight, lstsq_bias : ndarray, shapes (F,) and (1,)
        ``numpy.linalg.lstsq`` on the same data, the exact minimizer of the MSE.
    true_weight, true_bias : ndarray
        The line the data were drawn from (before noise).
    losses : list of float
        MSE before each step.
    lstsq_loss : float
        MSE of the least-squares solution, the smallest possible.
    max_error : float
        Largest absolute difference between the neuron's parameters and least squares.
    """

    weight: np.ndarray
    bias: np.ndarray
    lstsq_weight: np.ndarray
    lstsq_bias: np.ndarray
    true_weight: np.ndarray
    true_bias: np.ndarray
    losses: list[float]
    lstsq_loss: float
    max_error: float
    lr: float

    def __str__(self) -> str:
        def show(array: np.ndarray) -> str:
            return "[" + ", ".join(f"{v:+.5f}" for v in np.ravel(array)) + "]"

        return "\n".join(
            [
                f"One linear neuron y = w·x + b, full-batch gradient descent on the MSE (lr {self.lr}, "
                f"{len(self.losses)} steps)",
                f"  loss: {self.losses[0]:.5f} at the start, {self.losses[-1]:.8f} at the end, "
                f"least squares {self.lstsq_loss:.8f}",
                f"  w  gradient descent {show(self.weight)}   b {show(self.bias)}",
                f"  w  least squares    {show(self.lstsq_weight)}   b {show(self.lstsq_bias)}",
                f"  w  true (no noise)  {show(self.true_weight)}   b {show(self.true_bias)}",
                f"  largest |gradient descent − least squares| = {self.max_error:.2e}",
            ]
        )


def linear_regression_neuron(
    n_samples: int = 200, n_features: int = 3, noise: float = 0.1, lr: float = 0.1, steps: int = 300, seed: int = 0
) -> LinearNeuronResult:
    """Fit one linear neuron by gradient descent and compare with the least-squares solution.

    The MSE :math:`L(w, b) = \\frac1N \\lVert Xw + b - y\\rVert^2` is a convex quadratic with gradient
    :math:`\\frac2N X^\\top (Xw + b - y)`; gradient descent with a learning rate below
    :math:`1/\\lambda_{max}` of its Hessian :math:`\\frac2N [X, 1]^\\top [X, 1]` converges to its unique
    minimizer, the solution of the normal equations that ``numpy.linalg.lstsq`` returns. With standard
    normal inputs the Hessian is near :math:`2I`, so ``lr = 0.1`` shrinks the error by about 0.8 a step.

    Parameters
    ----------
    n_samples, n_features, noise, seed : int, int, float, int
        Passed to ``chainrule.data.load("linear_regression", ...)`` (all samples used for training).
    lr : float
        Learning rate of plain SGD on the full batch.
    steps : int
        Gradient-descent steps.

    Returns
    -------
    LinearNeuronResult
        Shapes: inputs (N, F), targets (N, 1); the neuron is ``nn.Linear(F, 1)`` in float64.

    Examples
    --------
    >>> from chainrule.explain.demos import linear_regression_neuron
    >>> linear_regression_neuron(steps=150).max_error < 1e-6
    True
    """
    if steps < 1 or not lr > 0:
        raise ValueError(f"linear_regression_neuron: need steps >= 1 and lr > 0, got {steps}, {lr}")
    train, _, info = data.load(
        "linear_regression", n_samples=n_samples, n_features=n_features, noise=noise, test_fraction=0.0, seed=seed
    )
    inputs = train.arrays[0].astype(np.float64)  # (N, F)
    targets = train.arrays[1].astype(np.float64)  # (N, 1)

    # The exact answer: least squares on [X, 1], the column of ones carrying the bias.
    design = np.hstack([inputs, np.ones((len(inputs), 1))])  # (N, F + 1)
    solution = np.linalg.lstsq(design, targets[:, 0], rcond=None)[0]  # (F + 1,)
    lstsq_loss = float(np.mean((design @ solution - targets[:, 0]) ** 2))

    manual_seed(seed)
    neuron = nn.Linear(n_features, 1, dtype=np.float64)
    x, y = tensor(inputs), tensor(targets)
    # (N, 1) predictions against (N, 1) targets
    losses = gradient_descent(lambda: F.mse_loss(neuron(x), y), list(neuron.parameters()), steps, lr)

    weight, bias = neuron.weight.numpy()[0].copy(), np.array(neuron.bias)  # a copy of the values
    error = float(np.max(np.abs(np.concatenate([weight, bias]) - solution)))
    return LinearNeuronResult(
        weight=weight,
        bias=bias,
        lstsq_weight=solution[:-1],
        lstsq_bias=solution[-1:],
        true_weight=np.asarray(info.metadata["weight"]),
        true_bias=np.asarray(info.metadata["bias"]),
        losses=losses,
        lstsq_loss=lstsq_loss,
        max_error=error,
        lr=lr,
    )
