"""Adam and AdamW: adaptive moment estimation, with coupled or decoupled weight decay."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

from chainrule import _checks as check
from chainrule.backend import get_namespace
from chainrule.errors import ArgumentError
from chainrule.optim.optimizer import Optimizer

__all__ = ["Adam", "AdamW", "adam_update"]


def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    state: dict[str, Any],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
    amsgrad: bool,
    maximize: bool,
) -> None:
    """One Adam(W) step on arrays, in place.

    .. math::
        m \\leftarrow \\beta_1 m + (1-\\beta_1) g, \\quad v \\leftarrow \\beta_2 v + (1-\\beta_2) g^2, \\quad
        w \\leftarrow w - \\eta \\frac{m / (1-\\beta_1^t)}{\\sqrt{v / (1-\\beta_2^t)} + \\epsilon}

    Weight decay is added to the gradient (Adam) or applied as :math:`w \\leftarrow w(1 - \\eta\\lambda)`
    (AdamW, decoupled).
    """
    if maximize:
        grad = -grad
    if weight_decay:
        if decoupled:
            param *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * param
    xp: Any = np if type(param) is np.ndarray else get_namespace(param)
    if "step" not in state:
        state["step"] = 0
        state["exp_avg"] = xp.zeros_like(param)
        state["exp_avg_sq"] = xp.zeros_like(param)
        if amsgrad:
            state["max_exp_avg_sq"] = xp.zeros_like(param)
    state["step"] += 1
    step = state["step"]
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    exp_avg *= beta1
    exp_avg += (1 - beta1) * grad
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    second = exp_avg_sq
    if amsgrad:
        if xp is np:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
        else:
            state["max_exp_avg_sq"] = xp.maximum(state["max_exp_avg_sq"], exp_avg_sq)
        second = state["max_exp_avg_sq"]
    denominator = xp.sqrt(second) / math.sqrt(bias_correction2) + eps
    param -= (lr / bias_correction1) * exp_avg / denominator


class Adam(Optimizer):
    """Adam (Kingma & Ba), with optional AMSGrad and coupled L2 weight decay.

    Args:
        params: parameters or groups.  lr: learning rate (1e-3).  betas: (β1, β2) = (0.9, 0.999).
        eps: 1e-8.  weight_decay: L2 penalty added to the gradient.  amsgrad: use the running max of v.
    """

    decoupled = False
    ranges: ClassVar[dict[str, tuple[float, float, bool, bool]]] = {
        "lr": (0.0, math.inf, False, True),
        "eps": (0.0, math.inf, False, True),
        "weight_decay": (0.0, math.inf, False, True),
    }
    flags = ("amsgrad", "maximize")
    update_rule = staticmethod(adam_update)
    update_options = ("lr", "eps", "weight_decay", "amsgrad", "maximize")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any], owner: str) -> None:
        super()._validate(group, owner)
        betas = group["betas"]
        if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
            raise ArgumentError(f"{owner}: invalid betas {betas!r} (must be a pair (beta1, beta2), each in [0, 1))")
        group["betas"] = tuple(
            check.real(owner, f"betas[{i}]", beta, 0.0, 1.0, high_open=True, label="betas")
            for i, beta in enumerate(betas)
        )

    def _options(self, group: dict[str, Any]) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return {**super()._options(group), "beta1": beta1, "beta2": beta2, "decoupled": self.decoupled}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): :math:`w \\leftarrow w(1-\\eta\\lambda)` each step.

    The default ``weight_decay`` is 0.01, as in PyTorch.
    """

    decoupled = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
