"""RMSprop: divide the gradient by a running root mean square, optionally centered and with momentum."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from chainrule.backend import get_namespace
from chainrule.optim.optimizer import Optimizer

__all__ = ["RMSprop", "rmsprop_update"]


def rmsprop_update(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, Any],
    *,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool,
) -> None:
    """One RMSprop step on arrays, in place.

    .. math::
        v \\leftarrow \\alpha v + (1-\\alpha) g^2, \\quad
        d = \\sqrt{v - \\bar g^2} + \\epsilon \\text{ (centered) or } \\sqrt{v} + \\epsilon, \\quad
        w \\leftarrow w - \\eta g / d \\text{ (or through a momentum buffer)}
    """
    if maximize:
        grad = -grad
    if weight_decay:
        grad = grad + weight_decay * param
    xp: Any = np if type(param) is np.ndarray else get_namespace(param)  # another array library: its functions
    if "step" not in state:
        state["step"] = 0
        state["square_avg"] = xp.zeros_like(param)
        if momentum > 0:
            state["momentum_buffer"] = xp.zeros_like(param)
        if centered:
            state["grad_avg"] = xp.zeros_like(param)
    state["step"] += 1
    square_avg = state["square_avg"]
    square_avg *= alpha
    square_avg += (1 - alpha) * grad * grad
    if centered:
        grad_avg = state["grad_avg"]
        grad_avg *= alpha
        grad_avg += (1 - alpha) * grad
        denominator = xp.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        denominator = xp.sqrt(square_avg) + eps
    if momentum > 0:
        buffer = state["momentum_buffer"]
        buffer *= momentum
        buffer += grad / denominator
        param -= lr * buffer
    else:
        param -= lr * grad / denominator


class RMSprop(Optimizer):
    """RMSprop (Hinton). Args: lr (1e-2), alpha (0.99, in [0, 1]), eps (1e-8), weight_decay, momentum (in [0, 1)),
    centered."""

    ranges: ClassVar[dict[str, tuple[float, float, bool, bool]]] = {
        "lr": (0.0, math.inf, False, True),
        "alpha": (0.0, 1.0, False, False),  # a running average: above 1 the weight of the new gradient is negative
        "eps": (0.0, math.inf, False, True),
        "weight_decay": (0.0, math.inf, False, True),
        "momentum": (0.0, 1.0, False, True),
    }
    flags = ("centered", "maximize")
    update_rule = staticmethod(rmsprop_update)
    update_options = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )
        super().__init__(params, defaults)
