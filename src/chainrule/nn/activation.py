"""Activation functions as modules (each calls its function form in :mod:`chainrule.nn.functional`)."""

from __future__ import annotations

import math

from chainrule import _checks as check
from chainrule.nn import functional as F
from chainrule.nn.module import Module
from chainrule.tensor import Tensor

__all__ = [
    "Sigmoid",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "GELU",
    "SiLU",
    "Softplus",
    "Softsign",
    "SigmoidFamily",
    "Softmax",
    "LogSoftmax",
]


class Sigmoid(Module):
    """Logistic sigmoid :math:`1/(1+e^{-x})`."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    """Hyperbolic tangent."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class ReLU(Module):
    """:math:`\\max(x, 0)`."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class LeakyReLU(Module):
    """``x`` for positive inputs, ``negative_slope * x`` otherwise."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = check.real(
            "LeakyReLU", "negative_slope", negative_slope, -math.inf, math.inf, low_open=True, high_open=True
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class ELU(Module):
    """``x`` for positive inputs, :math:`\\alpha(e^x - 1)` otherwise."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = check.real("ELU", "alpha", alpha, -math.inf, math.inf, low_open=True, high_open=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class GELU(Module):
    """:math:`x\\,\\Phi(x)` with the exact (erf) Gaussian CDF."""

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x)


class SiLU(Module):
    """:math:`x\\,\\sigma(x)` (swish)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x)


class Softplus(Module):
    """:math:`\\frac1\\beta\\log(1+e^{\\beta x})`, a smooth ReLU."""

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = check.real("Softplus", "beta", beta, 0.0, math.inf, low_open=True, high_open=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class Softsign(Module):
    """:math:`x/(1+|x|)`."""

    def forward(self, x: Tensor) -> Tensor:
        return F.softsign(x)


class SigmoidFamily(Module):
    """A member of the sigmoid family scaled to :math:`f(0) = 0`, :math:`f'(0) = 1` (see
    :func:`chainrule.nn.functional.sigmoid_family`): ``logistic`` (:math:`4\\sigma(x) - 2`), ``tanh``, ``arctan``,
    ``erf``, ``algebraic``, ``softsign`` or ``gudermannian``.

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> f = nn.SigmoidFamily("logistic")
    >>> [round(v, 6) for v in f(cr.tensor([0.0, 1e-4])).tolist()]
    [0.0, 0.0001]
    """

    def __init__(self, name: str = "logistic") -> None:
        super().__init__()
        members = F.sigmoid_family()
        check.one_of("SigmoidFamily", "name", name, tuple(members))
        self.name = name
        self._function = members[name]

    def forward(self, x: Tensor) -> Tensor:
        return self._function(x)

    def extra_repr(self) -> str:
        return repr(self.name)


class Softmax(Module):
    """Softmax along ``dim``."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = check.integer(type(self).__name__, "dim", dim)

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """Log-softmax along ``dim``, finite for any input."""

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.dim)
