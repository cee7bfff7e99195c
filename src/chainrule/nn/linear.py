"""``Linear``: the affine map :math:`y = x W^\\top + b`."""

from __future__ import annotations

import math

import numpy as np

from chainrule import _checks as check
from chainrule.errors import ArgumentError, ShapeError
from chainrule.nn import functional as F
from chainrule.nn import init
from chainrule.nn.module import Module, Parameter
from chainrule.tensor import Tensor, as_dtype

__all__ = ["Linear"]


class Linear(Module):
    """Fully connected layer :math:`y = x W^\\top + b`.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias (default True).
        dtype: float32 (default) or float64.

    Shape:
        input (*, in_features) -> output (*, out_features).

    Attributes:
        weight: (out_features, in_features), initialised :math:`U(-1/\\sqrt{in}, 1/\\sqrt{in})` as in PyTorch.
        bias: (out_features,), same distribution.

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> layer = nn.Linear(20, 30)
    >>> layer(cr.randn(128, 20)).shape
    (128, 30)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: object = np.float32) -> None:
        super().__init__()
        in_features = check.integer("Linear", "in_features", in_features)
        out_features = check.integer("Linear", "out_features", out_features)
        if in_features < 1 or out_features < 1:
            raise ArgumentError(
                f"Linear: in_features and out_features must be positive, got {in_features}, {out_features}"
            )
        self.in_features, self.out_features = int(in_features), int(out_features)
        dtype = as_dtype(dtype)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: Kaiming-uniform with a = √5 for the weight, i.e. U(±1/√in) for both."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        check.float_input(self, x)
        if x.shape[-1:] != (self.in_features,):
            raise ShapeError(
                f"Linear({self.extra_repr()}): expected input of shape (*, {self.in_features}), got {x.shape}"
            )
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
