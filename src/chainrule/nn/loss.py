"""Losses as modules, with PyTorch's names and arguments; each calls its function form.

Constructors check their hyperparameters with :func:`chainrule._checks.loss_options`, the same rules the
functional forms apply on each call, so ``HuberLoss(delta=nan)`` fails at construction with an
``ArgumentError`` naming the loss, and ``huber_loss(x, y, delta=nan)`` fails alike.
"""

from __future__ import annotations

from typing import Any

from chainrule import _checks as check
from chainrule.nn import functional as F
from chainrule.nn.module import Module
from chainrule.tensor import Tensor

__all__ = [
    "MSELoss",
    "L1Loss",
    "HuberLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "MultiMarginLoss",
]


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check.loss_options(type(self).__name__, reduction=reduction)["reduction"]

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


class MSELoss(_Loss):
    """Mean squared error. Shape: input and target alike."""

    def forward(self, prediction: Tensor, target: Any) -> Tensor:
        return F.mse_loss(prediction, target, self.reduction)


class L1Loss(_Loss):
    """Mean absolute error. Shape: input and target alike."""

    def forward(self, prediction: Tensor, target: Any) -> Tensor:
        return F.l1_loss(prediction, target, self.reduction)


class HuberLoss(_Loss):
    """Quadratic within ``delta`` of the target, linear beyond (robust regression).

    ``delta`` is positive; ``delta=inf`` gives :math:`\\tfrac12 d^2` everywhere (half the squared error), as in
    PyTorch.
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = check.loss_options("HuberLoss", delta=delta)["delta"]

    def forward(self, prediction: Tensor, target: Any) -> Tensor:
        return F.huber_loss(prediction, target, self.reduction, self.delta)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities (prefer :class:`BCEWithLogitsLoss`)."""

    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.weight = check.loss_options("BCELoss", weight=weight)["weight"]

    def forward(self, probabilities: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy(probabilities, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy in one stable expression."""

    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None) -> None:
        super().__init__(reduction)
        options = check.loss_options("BCEWithLogitsLoss", weight=weight, pos_weight=pos_weight)
        self.weight, self.pos_weight = options["weight"], options["pos_weight"]

    def forward(self, logits: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits, target, self.weight, self.reduction, self.pos_weight)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from logits; targets are class indices or class probabilities.

    Args:
        weight: per-class weights (C,).  ignore_index: label to skip.  reduction: mean, sum or none.
        label_smoothing: mix targets with the uniform distribution by this amount.

    Shape: logits (N, C) or (N, C, d1, ...), target (N) / (N, d1, ...) of indices or probabilities like logits.

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> loss = nn.CrossEntropyLoss()(cr.tensor([[2.0, 0.0, 0.0]]), cr.tensor([0]))
    >>> round(loss.item(), 4)
    0.2395
    """

    def __init__(
        self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0
    ) -> None:
        super().__init__(reduction)
        options = check.loss_options(
            "CrossEntropyLoss", class_weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing
        )
        self.weight, self.ignore_index = weight, options["ignore_index"]
        self.label_smoothing = options["label_smoothing"]

    def forward(self, logits: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(logits, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)


class NLLLoss(_Loss):
    """Negative log-likelihood of class indices, from log-probabilities."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean") -> None:
        super().__init__(reduction)
        options = check.loss_options("NLLLoss", class_weight=weight, ignore_index=ignore_index)
        self.weight, self.ignore_index = weight, options["ignore_index"]

    def forward(self, log_probs: Tensor, target: Any) -> Tensor:
        return F.nll_loss(log_probs, target, self.weight, self.ignore_index, self.reduction)


class MultiMarginLoss(_Loss):
    """Multi-class hinge loss :math:`\\frac1C\\sum_{i\\ne y}\\max(0, m - s_y + s_i)^p` (max-margin classifier)."""

    def __init__(self, p: int = 1, margin: float = 1.0, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        options = check.loss_options("MultiMarginLoss", p=p, margin=margin, class_weight=weight)
        self.p, self.margin, self.weight = options["p"], options["margin"], weight

    def forward(self, scores: Tensor, target: Any) -> Tensor:
        return F.multi_margin_loss(scores, target, self.p, self.margin, self.weight, self.reduction)
