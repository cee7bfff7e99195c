"""Gradient clipping and weight penalties."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from chainrule import _checks as check
from chainrule.errors import ArgumentError, GradientError
from chainrule.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "l1_penalty", "l2_penalty"]


def _grad_arrays(parameters: Iterable[Tensor] | Tensor) -> list[np.ndarray]:
    """The gradient arrays of the parameters that have one (updated in place by the clipping functions)."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    return [p.grad.data for p in params if p.grad is not None]


def clip_grad_norm_(
    parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> float:
    """Scale all gradients together so that their joint norm is at most ``max_norm``; return the norm before.

    :math:`g \\leftarrow g \\cdot \\min(1, \\text{max\\_norm} / (\\lVert g \\rVert + 10^{-6}))`, the norm taken over
    all gradients as one vector (``norm_type`` 2 by default, ``inf`` for the largest absolute value).

    ``max_norm`` is a number >= 0 (``inf`` only measures); ``norm_type`` is > 0 or ``inf`` (PyTorch's
    ``norm_type=0`` counts non-zero entries, which is no norm to clip by).

    Raises
    ------
    ArgumentError
        If ``max_norm`` or ``norm_type`` is NaN, negative, or not a number.
    GradientError
        If the norm is NaN or infinite and ``error_if_nonfinite`` is set.
    """
    max_norm = check.real("clip_grad_norm_", "max_norm", max_norm, 0.0, math.inf)  # inf: measure, never clip
    norm_type = check.real("clip_grad_norm_", "norm_type", norm_type, 0.0, math.inf, low_open=True)
    grads = _grad_arrays(parameters)
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        total = float(sum(float(np.sum(np.abs(g.astype(np.float64)) ** norm_type)) for g in grads))
        total = total ** (1.0 / norm_type)
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise GradientError(
                f"clip_grad_norm_: the total gradient norm is {total}; the gradients contain NaN or "
                "infinity (lower the learning rate, or pass error_if_nonfinite=False)"
            )
        return total
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in grads:
            g *= scale
    return total


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]`` in place."""
    clip_value = check.real("clip_grad_value_", "clip_value", clip_value, 0.0, math.inf)
    for g in _grad_arrays(parameters):
        np.clip(g, -clip_value, clip_value, out=g)


def l1_penalty(parameters: Iterable[Tensor], weight: float = 1.0) -> Tensor:
    """:math:`\\lambda \\sum_i |w_i|` over the parameters, to add to the loss (L1 regularisation, sparsity)."""
    weight = check.real("l1_penalty", "weight", weight, -math.inf, math.inf, low_open=True, high_open=True)
    params = list(parameters)
    if not params:
        raise ArgumentError("l1_penalty: no parameters given")
    total = params[0].abs().sum()
    for p in params[1:]:
        total = total + p.abs().sum()
    return total * weight


def l2_penalty(parameters: Iterable[Tensor], weight: float = 1.0) -> Tensor:
    """:math:`\\frac{\\lambda}{2} \\sum_i w_i^2`, to add to the loss (same gradient as ``weight_decay=λ``)."""
    weight = check.real("l2_penalty", "weight", weight, -math.inf, math.inf, low_open=True, high_open=True)
    params = list(parameters)
    if not params:
        raise ArgumentError("l2_penalty: no parameters given")
    total = (params[0] * params[0]).sum()
    for p in params[1:]:
        total = total + (p * p).sum()
    return total * (0.5 * weight)
