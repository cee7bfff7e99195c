"""Pooling layers: max and average over windows, and adaptive average pooling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chainrule import _checks as check
from chainrule.errors import ArgumentError
from chainrule.nn import functional as F
from chainrule.nn.module import Module
from chainrule.tensor import Tensor

__all__ = ["MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool2d"]


class _Pool(Module):
    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
    ) -> None:
        super().__init__()
        self._check_window(kernel_size, stride, padding, dilation)
        self.kernel_size, self.stride, self.padding = (
            kernel_size,
            stride if stride is not None else kernel_size,
            padding,
        )
        self.dilation = dilation  # max pooling reads it; average pooling takes none (always 1)

    def _check_window(self, kernel_size: Any, stride: Any, padding: Any, dilation: Any) -> None:
        """The checks of the functional form, at construction: a bad window fails where it was written."""
        name = type(self).__name__
        spatial = 1 if name.endswith("1d") else 2
        kernel = check.int_tuple(name, "kernel_size", kernel_size, spatial, 1)
        if stride is not None:
            check.int_tuple(name, "stride", stride, spatial, 1)
        padding = check.int_tuple(name, "padding", padding, spatial)
        check.int_tuple(name, "dilation", dilation, spatial, 1)
        if any(2 * p > k for p, k in zip(padding, kernel)):
            raise ArgumentError(f"{name}: padding {padding} must be at most half the kernel size {kernel}")

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool):
    """Maximum over windows of (N, C, H, W); stride defaults to kernel_size. The first maximum of a window
    (row-major) takes its gradient, as in PyTorch.

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> nn.MaxPool2d(2)(cr.randn(1, 3, 28, 28)).shape
    (1, 3, 14, 14)
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation)


class MaxPool1d(MaxPool2d):
    """Maximum over windows of (N, C, L)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation)


class AvgPool2d(_Pool):
    """Mean over windows of (N, C, H, W); zero padding counts towards the mean (PyTorch's default).

    No ``dilation``, as in PyTorch (whose fourth argument here is ``ceil_mode``, not supported): a window
    setting this layer would ignore is refused by the signature rather than silently dropped.

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> nn.AvgPool2d(2)(cr.ones((1, 1, 4, 4))).shape
    (1, 1, 2, 2)
    """

    def __init__(
        self,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0,
    ) -> None:
        super().__init__(kernel_size, stride, padding)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)


class AvgPool1d(AvgPool2d):
    """Mean over windows of (N, C, L)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding)


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (e.g. 1 for global average pooling)."""

    def __init__(self, output_size: int | Sequence[int | None]) -> None:
        super().__init__()
        sizes = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
        if len(sizes) != 2 or any(
            o is not None and check.integer("AdaptiveAvgPool2d", "output_size", o) < 1 for o in sizes
        ):
            raise ArgumentError(f"AdaptiveAvgPool2d: output_size must be positive, got {output_size!r}")
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
