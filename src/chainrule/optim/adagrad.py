"""Adagrad: per-parameter learning rates shrinking with the sum of squared gradients."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from chainrule.backend import get_namespace
from chainrule.optim.optimizer import Optimizer

__all__ = ["Adagrad", "adagrad_update"]


def adagrad_update(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, Any],
    *,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
) -> None:
    """One Adagrad step on arrays, in place.

    .. math::
        \\tilde\\eta = \\eta / (1 + (t-1)\\,\\text{lr\\_decay}), \\quad s \\leftarrow s + g^2, \\quad
        w \\leftarrow w - \\tilde\\eta\\, g / (\\sqrt{s} + \\epsilon)
    """
    if maximize:
        grad = -grad
    state["step"] += 1
    if weight_decay:
        grad = grad + weight_decay * param
    clr = lr / (1 + (state["step"] - 1) * lr_decay)
    xp: Any = np if type(param) is np.ndarray else get_namespace(param)  # another array library: its functions
    if xp is not np and type(state["sum"]) is np.ndarray:  # the sum starts on NumPy: move it to the parameter's
        state["sum"] = xp.asarray(state["sum"], dtype=param.dtype, device=param.device)
    total = state["sum"]
    total += grad * grad
    param -= clr * grad / (xp.sqrt(total) + eps)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.). Args: lr (1e-2), lr_decay, weight_decay, initial_accumulator_value, eps (1e-10)."""

    ranges: ClassVar[dict[str, tuple[float, float, bool, bool]]] = {
        "lr": (0.0, math.inf, False, True),
        "lr_decay": (0.0, math.inf, False, True),
        "weight_decay": (0.0, math.inf, False, True),
        "initial_accumulator_value": (0.0, math.inf, False, True),
        "eps": (0.0, math.inf, False, True),
    }
    update_rule = staticmethod(adagrad_update)
    update_options = ("lr", "lr_decay", "weight_decay", "eps", "maximize")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group (see :meth:`Optimizer.add_param_group`) and start its parameters' sums at
        ``initial_accumulator_value``."""
        super().add_param_group(group)
        added = self.param_groups[-1]
        for p in added["params"]:
            self.state[p] = {"step": 0, "sum": np.full_like(p.data, added["initial_accumulator_value"])}
