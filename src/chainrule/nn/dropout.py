"""``Dropout``: randomly zero activations while training (inverted dropout)."""

from __future__ import annotations

from chainrule import _checks as check
from chainrule.nn import functional as F
from chainrule.nn.module import Module
from chainrule.tensor import Tensor

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability ``p`` in training and scale the rest by ``1/(1-p)``; identity in eval.

    The masks come from the global generator, so :func:`chainrule.manual_seed` makes them reproducible.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = check.real("Dropout", "p", p, 0.0, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
