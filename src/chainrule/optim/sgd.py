"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np

from chainrule.backend import get_namespace
from chainrule.errors import ArgumentError
from chainrule.optim.optimizer import Optimizer

__all__ = ["SGD", "sgd_step", "sgd_update"]


def sgd_update(
    param: np.ndarray,
    grad: np.ndarray,
    buffer: np.ndarray | None,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
    maximize: bool,
) -> np.ndarray | None:
    """One SGD step on arrays (NumPy's or another array-API library's), in place; returns the momentum buffer.

    .. math::
        g \\leftarrow g + \\lambda w, \\quad b \\leftarrow \\mu b + (1 - \\tau) g, \\quad
        w \\leftarrow w - \\eta\\,(g + \\mu b \\text{ if Nesterov else } b)

    The first step sets :math:`b = g` (no dampening), as PyTorch does.
    """
    if maximize:
        grad = -grad
    if weight_decay:
        grad = grad + weight_decay * param
    if momentum:
        if buffer is None:
            xp = np if type(grad) is np.ndarray else get_namespace(grad)
            buffer = xp.asarray(grad, copy=True)
        else:
            buffer *= momentum
            buffer += grad if dampening == 0 else (1 - dampening) * grad  # no product by 1: one pass less
        grad = grad + momentum * buffer if nesterov else buffer
    param -= lr * grad
    return buffer


def sgd_step(param: np.ndarray, grad: np.ndarray, state: dict[str, Any], **options: Any) -> None:
    """:func:`sgd_update` with its momentum buffer kept in ``state["momentum_buffer"]`` (absent while there is
    none), the way the other update functions keep their state; ``options`` are its keyword arguments."""
    buffer = sgd_update(param, grad, state.get("momentum_buffer"), **options)
    if buffer is None:
        state.pop("momentum_buffer", None)
    else:
        state["momentum_buffer"] = buffer


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay.

    Args:
        params: parameters or parameter groups.  lr: learning rate in [0, inf) (default 1e-3, as in PyTorch).
        momentum: momentum factor μ in [0, 1).  dampening: τ in [0, 1].
        weight_decay: L2 penalty λ (coupled: added to the gradient).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).  maximize: ascend instead.

    Examples
    --------
    >>> import chainrule as cr
    >>> w = cr.tensor([1.0], requires_grad=True)
    >>> opt = cr.optim.SGD([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> round(w.item(), 6)
    0.8
    """

    ranges: ClassVar[dict[str, tuple[float, float, bool, bool]]] = {
        "lr": (0.0, math.inf, False, True),
        "momentum": (0.0, 1.0, False, True),  # at 1 the buffer never forgets; above, it grows without bound
        "dampening": (0.0, 1.0, False, False),
        "weight_decay": (0.0, math.inf, False, True),
    }
    flags = ("nesterov", "maximize")
    update_rule = staticmethod(sgd_step)
    update_options = ("lr", "momentum", "dampening", "nesterov", "weight_decay", "maximize")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any], owner: str) -> None:
        super()._validate(group, owner)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ArgumentError(f"{owner}: Nesterov momentum needs momentum > 0 and dampening = 0")
