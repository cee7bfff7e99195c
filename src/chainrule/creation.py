"""Functions that make tensors: from data, filled with a constant, ranges, identity, random."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule import _checks as check
from chainrule.errors import ArgumentError, ShapeError
from chainrule.rng import default_generator
from chainrule.tensor import Tensor, _wrap, as_dtype, float32

__all__ = [
    "tensor",
    "zeros",
    "ones",
    "full",
    "arange",
    "eye",
    "rand",
    "randn",
    "zeros_like",
    "ones_like",
    "full_like",
    "rand_like",
    "randn_like",
]


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Make a tensor from data (copied).

    Parameters
    ----------
    data : array_like
        A number, nested lists, a NumPy array or a tensor.
    dtype : dtype, optional
        float32 (default for floats), float64, int64 (default for integers) or bool.
    requires_grad : bool
        Track operations for ``backward()`` (floating point only).

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.tensor([[1, 2], [3, 4]]).dtype
    dtype('int64')
    >>> cr.tensor([0.5], requires_grad=True)
    tensor([0.5], requires_grad=True)
    """
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def _shape(shape: Sequence[Any], op: str, dtype: Any = float32) -> tuple[int, ...]:
    """Accept ``zeros(2, 3)`` and ``zeros((2, 3))``; reject negative and non-integer sizes (2.5 is not 2), and a
    shape whose array would not fit in this machine's memory (before NumPy tries to allocate it)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        result = tuple(operator.index(n) for n in shape)
    except TypeError:
        raise ArgumentError(f"{op}: a shape must be integers, got {shape!r}") from None
    if any(n < 0 for n in result):
        raise ShapeError(f"{op}: a shape cannot have negative sizes, got {result}")
    _fits(op, result, as_dtype(dtype))
    return result


def _fits(op: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    nbytes = math.prod(shape) * dtype.itemsize
    what = f"a tensor of shape {shape} ({dtype})"
    check.fits_in_memory(op, what, nbytes, budget=check.physical_memory(), hint="use a smaller shape")


def _make(data: np.ndarray, requires_grad: bool) -> Tensor:
    out = _wrap(data)
    if requires_grad:
        out.requires_grad_(True)
    return out


def zeros(*shape: Any, dtype: Any = float32, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros, e.g. ``zeros(2, 3)``."""
    return _make(np.zeros(_shape(shape, "zeros", dtype), dtype=as_dtype(dtype)), requires_grad)


def ones(*shape: Any, dtype: Any = float32, requires_grad: bool = False) -> Tensor:
    """A tensor of ones, e.g. ``ones(2, 3)``."""
    return _make(np.ones(_shape(shape, "ones", dtype), dtype=as_dtype(dtype)), requires_grad)


def full(shape: Sequence[int], fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value`` (dtype inferred from the value when not given)."""
    if dtype is None:
        dtype = float32 if isinstance(fill_value, float) else np.asarray(fill_value).dtype
        dtype = {"i": "int64", "u": "int64", "b": "bool"}.get(np.dtype(dtype).kind, dtype)
    return _make(np.full(_shape((shape,), "full"), fill_value, dtype=as_dtype(dtype)), requires_grad)


def arange(
    start: float, stop: float | None = None, step: float = 1, dtype: Any = None, requires_grad: bool = False
) -> Tensor:
    """Evenly spaced values in ``[start, stop)``; int64 for integer arguments, else float32.

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.arange(4)
    tensor([0, 1, 2, 3])
    """
    if step == 0:
        raise ArgumentError("arange: step must not be zero")
    for name, value in (("start", start), ("stop", stop), ("step", step)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))):
            raise ArgumentError(f"arange: {name} must be a number, got {type(value).__name__} {value!r}")
        if value is not None and not math.isfinite(value):
            raise ArgumentError(f"arange: {name} must be finite, got {value}")
    low, high = (0, start) if stop is None else (start, stop)
    _fits("arange", (max(0, math.ceil((high - low) / step)),), np.dtype(np.float64))
    values = np.arange(start, stop, step) if stop is not None else np.arange(start)
    if dtype is None:
        dtype = "int64" if values.dtype.kind in "iu" else float32
    return _make(values.astype(as_dtype(dtype)), requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = float32, requires_grad: bool = False) -> Tensor:
    """The ``n`` x ``m`` identity matrix (``m`` defaults to ``n``)."""
    return _make(np.eye(n, m, dtype=as_dtype(dtype)), requires_grad)


def rand(*shape: Any, dtype: Any = float32, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) from the global generator (see :func:`chainrule.manual_seed`)."""
    dtype = as_dtype(dtype)
    return _make(default_generator().random(_shape(shape, "rand", dtype), dtype=dtype), requires_grad)


def randn(*shape: Any, dtype: Any = float32, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from the global generator (see :func:`chainrule.manual_seed`)."""
    dtype = as_dtype(dtype)
    return _make(default_generator().standard_normal(_shape(shape, "randn", dtype), dtype=dtype), requires_grad)


def zeros_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape (and dtype, unless given) of ``x``."""
    x = _template(x)
    return zeros(x.shape, dtype=dtype or x.dtype, requires_grad=requires_grad)


def ones_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape (and dtype, unless given) of ``x``."""
    x = _template(x)
    return ones(x.shape, dtype=dtype or x.dtype, requires_grad=requires_grad)


def full_like(x: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` with the shape (and dtype, unless given) of ``x``."""
    x = _template(x)
    return full(x.shape, fill_value, dtype=dtype or x.dtype, requires_grad=requires_grad)


def rand_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) with the shape of ``x``."""
    x = _template(x)
    return rand(x.shape, dtype=dtype or _float_or(x.dtype), requires_grad=requires_grad)


def randn_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples with the shape of ``x``."""
    x = _template(x)
    return randn(x.shape, dtype=dtype or _float_or(x.dtype), requires_grad=requires_grad)


def _template(x: Any) -> Any:
    return x if isinstance(x, (Tensor, np.ndarray)) else np.asarray(x)


def _float_or(dtype: np.dtype) -> np.dtype:
    return dtype if dtype.kind == "f" else float32
