"""Normalization layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chainrule import _checks as check
from chainrule.errors import ArgumentError, ShapeError
from chainrule.nn import functional as F
from chainrule.nn import init as nn_init
from chainrule.nn.module import Module, Parameter
from chainrule.tensor import Tensor, _wrap, as_dtype

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm"]


class _BatchNorm(Module):
    expected_dims: tuple[int, ...] = (2, 3)

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: object = np.float32,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = check.integer(name, "num_features", num_features, minimum=1)
        self.eps = check.real(name, "eps", eps, 0.0, low_open=True)
        self.momentum = check.real(name, "momentum", momentum, 0.0, 1.0)
        self.affine, self.track_running_stats = affine, track_running_stats
        dtype = as_dtype(dtype)
        self.weight = Parameter(np.ones(num_features, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype=dtype)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", _wrap(np.zeros(num_features, dtype=dtype)))
            self.register_buffer("running_var", _wrap(np.ones(num_features, dtype=dtype)))
            self.register_buffer("num_batches_tracked", _wrap(np.zeros((), dtype=np.int64)))
        else:
            self.running_mean = self.running_var = None

    def reset_parameters(self) -> None:
        """Weight 1, bias 0, running mean 0 and variance 1."""
        if self.weight is not None and self.bias is not None:
            nn_init.ones_(self.weight)
            nn_init.zeros_(self.bias)
        for name, value in (("running_mean", 0), ("running_var", 1), ("num_batches_tracked", 0)):
            buffer = self._buffers.get(name)
            if buffer is not None:
                buffer.data[...] = value
                buffer._mark_modified(f"{type(self).__name__}.reset_parameters")

    def forward(self, x: Tensor) -> Tensor:
        check.float_input(f"{type(self).__name__}({self.num_features})", x)
        if x.ndim not in self.expected_dims or x.shape[1] != self.num_features:
            raise ShapeError(
                f"{type(self).__name__}({self.num_features}): expected input with {self.expected_dims} "
                f"dimensions and {self.num_features} channels on axis 1, got shape {x.shape}"
            )
        use_batch = self.training or not self.track_running_stats
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            self.num_batches_tracked._mark_modified("BatchNorm's batch count")
        return F.batch_norm(
            x,
            self.running_mean if self.training or self.track_running_stats else None,
            self.running_var if self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            use_batch,
            self.momentum,
            self.eps,
        )

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


class BatchNorm1d(_BatchNorm):
    """Batch normalization over (N, C) or (N, C, L): per channel, batch statistics while training, running
    statistics (updated with ``momentum``) in eval mode.

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> out = nn.BatchNorm1d(3)(cr.randn(16, 3))
    >>> bool(abs(out.mean(axis=0)).max().item() < 1e-5)
    True
    """

    expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over (N, C, H, W), per channel."""

    expected_dims = (4,)


class LayerNorm(Module):
    """Normalize each sample over its trailing ``normalized_shape`` axes, then apply a learned scale and shift."""

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: object = np.float32,
    ) -> None:
        super().__init__()
        single = isinstance(normalized_shape, (int, np.integer)) and not isinstance(normalized_shape, bool)
        entries = (normalized_shape,) if single else normalized_shape
        if not isinstance(entries, (tuple, list)) or not entries:
            raise ArgumentError(
                f"LayerNorm: normalized_shape must be an int or a sequence of ints, got {normalized_shape!r}"
            )
        shape = tuple(check.integer("LayerNorm", "normalized_shape", n) for n in entries)
        if any(n < 1 for n in shape):
            raise ArgumentError(f"LayerNorm: normalized_shape must be positive, got {normalized_shape!r}")
        self.normalized_shape = shape
        self.eps = check.real("LayerNorm", "eps", eps, 0.0, low_open=True)
        dtype = as_dtype(dtype)
        self.weight = Parameter(np.ones(shape, dtype=dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, dtype=dtype)) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        check.float_input(f"LayerNorm({self.normalized_shape})", x)
        if x.shape[x.ndim - len(self.normalized_shape) :] != self.normalized_shape:
            raise ShapeError(
                f"LayerNorm({self.normalized_shape}): expected input of shape (*, "
                f"{', '.join(map(str, self.normalized_shape))}), got {x.shape}"
            )
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"
