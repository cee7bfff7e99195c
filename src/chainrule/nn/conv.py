"""Convolution layers: ``Conv1d`` and ``Conv2d`` (im2col and one matrix product per call)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from chainrule import _checks as check
from chainrule.errors import ArgumentError, ShapeError
from chainrule.nn import functional as F
from chainrule.nn import init
from chainrule.nn.module import Module, Parameter
from chainrule.tensor import Tensor, as_dtype

__all__ = ["Conv1d", "Conv2d"]


class _ConvNd(Module):
    spatial = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | str = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        dtype: object = np.float32,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        in_channels = check.integer(name, "in_channels", in_channels)
        out_channels = check.integer(name, "out_channels", out_channels)
        if in_channels < 1 or out_channels < 1:
            raise ArgumentError(
                f"{name}: in_channels and out_channels must be positive, got {in_channels}, {out_channels}"
            )
        if groups != 1:
            raise ArgumentError(f"{name}: only groups=1 is supported, got {groups}")
        if padding_mode != "zeros":
            raise ArgumentError(f"{name}: only padding_mode='zeros' is supported, got {padding_mode!r}")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ArgumentError(f"{name}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = check.int_tuple(name, "kernel_size", kernel_size, self.spatial, 1)
        self.stride = check.int_tuple(name, "stride", stride, self.spatial, 1)
        self.padding = padding if isinstance(padding, str) else check.int_tuple(name, "padding", padding, self.spatial)
        self.dilation = check.int_tuple(name, "dilation", dilation, self.spatial, 1)
        dtype = as_dtype(dtype)
        self.weight = Parameter(np.empty((out_channels, in_channels, *self.kernel_size), dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: U(±1/√fan_in) with fan_in = in_channels × kernel size, for weight and bias."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init.fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def _check(self, x: Tensor) -> None:
        check.float_input(self, x)
        if x.ndim != self.spatial + 2 or x.shape[1] != self.in_channels:
            dims = "N, C, H, W" if self.spatial == 2 else "N, C, L"
            raise ShapeError(
                f"{type(self).__name__}({self.extra_repr()}): expected input ({dims}) with C = "
                f"{self.in_channels}, got shape {x.shape}"
            )

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0,) * self.spatial, "valid"):
            text += f", padding={self.padding}"
        if self.dilation != (1,) * self.spatial:
            text += f", dilation={self.dilation}"
        return text + ("" if self.bias is not None else ", bias=False")


class Conv2d(_ConvNd):
    """2-d convolution over (N, C, H, W) images.

    Args:
        in_channels, out_channels: channels of the input and output.
        kernel_size, stride, padding, dilation: ints or pairs; ``padding`` may also be ``"same"`` or ``"valid"``.
        groups: only 1.  bias: learn a bias per output channel.

    Shape:
        (N, C_in, H, W) -> (N, C_out, H_out, W_out), ``H_out = (H + 2p - d (k - 1) - 1) // s + 1``.

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> nn.Conv2d(1, 16, 5, padding=2)(cr.randn(8, 1, 28, 28)).shape
    (8, 16, 28, 28)
    """

    spatial = 2

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)


class Conv1d(_ConvNd):
    """1-d convolution over (N, C, L) sequences. Shape: (N, C_in, L) -> (N, C_out, L_out)."""

    spatial = 1

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
