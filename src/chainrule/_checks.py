"""Validation shared by layers, losses and optimizers: one place for the checks and the wording of their errors.

Every check takes ``owner``, the name the user called (``"Linear"``, ``"cross_entropy"``, ``"SGD"``), and puts it
first in the message, followed by what was expected and what was given. Checks compare shapes, dtypes and
Python values only; the one data scan is :func:`labels_in_range` (a ``min``/``max`` over the labels).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.errors import ArgumentError, DTypeError, ShapeError

__all__ = [
    "integer",
    "int_tuple",
    "real",
    "one_of",
    "float_input",
    "not_empty",
    "same_shape",
    "class_target",
    "labels_in_range",
    "class_weight",
    "mlp_parameter_count",
    "memory_budget",
    "format_bytes",
    "fits_in_memory",
]


# -- hyperparameters ----------------------------------------------------------------------------------
def integer(owner: str, name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an ``int``; refuses bools, floats (even ``3.0``) and strings, and values below ``minimum``.

    Examples
    --------
    >>> integer("Linear", "in_features", 3)
    3
    >>> integer("Linear", "in_features", 2.5)
    Traceback (most recent call last):
    ...
    chainrule.errors.ArgumentError: Linear: in_features must be an integer, got float 2.5
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ArgumentError(f"{owner}: {name} must be an integer, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        wanted = "positive" if minimum == 1 else f">= {minimum}"
        raise ArgumentError(f"{owner}: {name} must be {wanted}, got {value}")
    return int(value)


def int_tuple(owner: str, name: str, value: Any, n: int, minimum: int = 0) -> tuple[int, ...]:
    """An int or ``n`` ints (kernel sizes, strides, paddings) as a tuple of ``n`` ints, each ``>= minimum``."""
    values = (value,) * n if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if (
        isinstance(values, (str, bytes))
        or not isinstance(values, Sequence)
        or len(values) != n
        or any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) for v in values)
        or any(v < minimum for v in values)
    ):
        raise ArgumentError(f"{owner}: {name} must be an int >= {minimum} or {n} of them, got {value!r}")
    return tuple(int(v) for v in values)


def real(
    owner: str,
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a ``float`` in the interval from ``low`` to ``high`` (closed unless ``*_open``); no NaN."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ArgumentError(f"{owner}: {name} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    below = number <= low if low_open else number < low
    above = number >= high if high_open else number > high
    if math.isnan(number) or below or above:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ArgumentError(f"{owner}: {name} must be in {interval}, got {value!r}")
    return number


def one_of(owner: str, name: str, value: Any, options: Sequence[Any]) -> Any:
    """``value`` if it is one of ``options``, else an ``ArgumentError`` listing them."""
    if isinstance(value, np.integer):
        value = int(value)
    if not any(type(value) is type(option) and value == option for option in options):
        listed = ", ".join(repr(option) for option in options)
        raise ArgumentError(f"{owner}: {name} must be one of {listed}, got {value!r}")
    return value


# -- layer inputs -------------------------------------------------------------------------------------
def float_input(owner: Any, x: Any) -> None:
    """A layer with floating-point parameters takes floating-point input (integers are usually labels).

    ``owner`` is a name, or the layer itself: then its name is built (``Linear(in_features=...)``) only for
    the error, not on every forward call.
    """
    if x.dtype.kind != "f":
        if not isinstance(owner, str):
            owner = f"{type(owner).__name__}({owner.extra_repr()})"
        raise DTypeError(
            f"{owner}: expected floating-point input, got {x.dtype} of shape {x.shape}; "
            "convert with x.to(chainrule.float32) if the values are features"
        )


# -- losses -------------------------------------------------------------------------------------------
def not_empty(owner: str, x: Any) -> None:
    """A loss over an empty batch would be NaN (a mean over nothing): refuse it."""
    if x.data.size == 0:
        raise ShapeError(f"{owner}: empty batch: input of shape {x.shape} has no elements")


def same_shape(owner: str, prediction: Any, target: Any) -> None:
    """Prediction and target of one shape: broadcasting ``(N, 1)`` against ``(N,)`` would train on ``(N, N)``."""
    if prediction.shape != target.shape:
        if prediction.ndim and target.ndim and prediction.shape[0] != target.shape[0]:
            raise ShapeError(
                f"{owner}: expected target batch size {prediction.shape[0]}, got {target.shape[0]} "
                f"(input shape {prediction.shape}, target shape {target.shape})"
            )
        raise ShapeError(
            f"{owner}: input of shape {prediction.shape} and target of shape {target.shape} differ; "
            "they must have the same shape"
        )


def class_target(owner: str, inputs: Any, labels: np.ndarray) -> None:
    """Class-index targets fit inputs ``(N, C, d1, ...)`` (or unbatched ``(C,)``): shape ``(N, d1, ...)``."""
    if inputs.ndim == 0:
        raise ShapeError(f"{owner}: input must have a class axis, got a 0-d tensor (shape ())")
    expected = inputs.shape[:1] + inputs.shape[2:] if inputs.ndim > 1 else ()
    if labels.shape != expected:
        if inputs.ndim >= 2 and labels.ndim >= 1 and labels.shape[0] != inputs.shape[0]:
            raise ShapeError(
                f"{owner}: expected target batch size {inputs.shape[0]}, got {labels.shape[0]} "
                f"(input shape {inputs.shape}, target shape {labels.shape})"
            )
        raise ShapeError(
            f"{owner}: input of shape {inputs.shape} needs class indices of shape {expected}, "
            f"got target shape {labels.shape}"
        )
    not_empty(owner, inputs)


def labels_in_range(owner: str, labels: np.ndarray, num_classes: int, ignore_index: int | None = None) -> None:
    """Integer labels in ``[0, num_classes)`` (``ignore_index`` excepted): one ``min``/``max`` over the labels."""
    if labels.dtype.kind not in "iu":
        raise DTypeError(f"{owner}: class labels must be integers, got {labels.dtype}")
    if not labels.size:
        return
    low, high = labels.min(), labels.max()
    if low >= 0 and high < num_classes:
        return
    valid = labels if ignore_index is None else labels[labels != ignore_index]
    if valid.size and (valid.min() < 0 or valid.max() >= num_classes):
        bad = valid[(valid < 0) | (valid >= num_classes)][0]
        raise ShapeError(
            f"{owner}: label {bad} is out of range for {num_classes} classes (expected 0..{num_classes - 1})"
        )


def class_weight(owner: str, weight: Any, num_classes: int) -> None:
    """Per-class weights, when given, have one entry per class: shape ``(num_classes,)``."""
    if weight is not None and np.shape(weight) != (num_classes,):
        raise ShapeError(f"{owner}: weight must have shape ({num_classes},), one per class, got {np.shape(weight)}")


# -- memory before allocating ---------------------------------------------------------------------------
def mlp_parameter_count(widths: Sequence[int], bias: bool = True) -> int:
    """Parameters of fully-connected layers ``widths[0] -> ... -> widths[-1]`` (Python ints: no overflow).

    Examples
    --------
    >>> mlp_parameter_count([2, 3, 1])
    13
    >>> mlp_parameter_count([784, 256, 10], bias=False)
    203264
    """
    sizes = [int(w) for w in widths]
    return sum(fan_in * fan_out + (fan_out if bias else 0) for fan_in, fan_out in itertools.pairwise(sizes))


def memory_budget() -> int:
    """Bytes one command may plan to allocate: half of this machine's physical memory (8 GiB if unknown)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        total = 16 * 2**30
    return int(total) // 2


def format_bytes(count: float) -> str:
    """``count`` bytes in the largest binary unit below it: ``'1.5 GiB'``.

    Examples
    --------
    >>> format_bytes(3 * 2**30 // 2), format_bytes(512)
    ('1.5 GiB', '512 B')
    """
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        scale = 2 ** (10 * ("KMGT".index(unit[0]) + 1))
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{int(count)} B"


def fits_in_memory(owner: str, what: str, nbytes: int, budget: int | None = None) -> None:
    """Refuse (``ArgumentError``) a plan to allocate about ``nbytes`` when it exceeds ``budget`` (default
    :func:`memory_budget`), with both figures in the message, before anything is allocated.

    Examples
    --------
    >>> fits_in_memory("gradcheck", "an MLP 2-10**9-1", 96 * 2**30, budget=2**30)
    Traceback (most recent call last):
    ...
    chainrule.errors.ArgumentError: gradcheck: an MLP 2-10**9-1 would need about 96.0 GiB of memory, more than ...
    """
    budget = memory_budget() if budget is None else budget
    if nbytes > budget:
        raise ArgumentError(
            f"{owner}: {what} would need about {format_bytes(nbytes)} of memory, more than the "
            f"{format_bytes(budget)} allowed (half of this machine's memory); use smaller widths"
        )
