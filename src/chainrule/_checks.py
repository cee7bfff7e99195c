"""Validation shared by layers, losses and optimizers: one place for the checks and the wording of their errors.

Every check takes ``owner``, the name the user called (``"Linear"``, ``"cross_entropy"``, ``"SGD"``), and puts it
first in the message, followed by what was expected and what was given. Checks compare shapes, dtypes and
Python values only; the one data scan is :func:`labels_in_range` (a ``min``/``max`` over the labels).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.errors import ArgumentError, DTypeError, ShapeError

__all__ = [
    "integer",
    "int_tuple",
    "real",
    "flag",
    "one_of",
    "finite_values",
    "loss_options",
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
    label: str | None = None,
) -> float:
    """``value`` as a ``float`` in the interval from ``low`` to ``high`` (closed unless ``*_open``); no NaN.

    An infinite end is excluded by making it open: ``real(owner, "lr", lr, 0.0, math.inf, high_open=True)``
    refuses ``inf``. Bools, strings and tensors are refused (``True`` is not a learning rate). With ``label``
    (optimizers) the message reads ``SGD: invalid learning rate nan (lr must be in [0, inf))``.

    Examples
    --------
    >>> real("Dropout", "p", 0.5, 0.0, 1.0)
    0.5
    >>> real("SGD", "lr", float("nan"), 0.0, math.inf, high_open=True, label="learning rate")
    Traceback (most recent call last):
    ...
    chainrule.errors.ArgumentError: SGD: invalid learning rate nan (lr must be in [0, inf))
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        if label is not None:
            raise ArgumentError(
                f"{owner}: invalid {label} {value!r} ({name} must be a number, got {type(value).__name__})"
            )
        raise ArgumentError(f"{owner}: {name} must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    below = number <= low if low_open else number < low
    above = number >= high if high_open else number > high
    if math.isnan(number) or below or above:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        if label is not None:
            raise ArgumentError(f"{owner}: invalid {label} {value!r} ({name} must be in {interval})")
        raise ArgumentError(f"{owner}: {name} must be in {interval}, got {value!r}")
    return number


def flag(owner: str, name: str, value: Any) -> bool:
    """``value`` as a ``bool``; refuses numbers and strings (``nesterov="False"`` would be true)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentError(f"{owner}: {name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def finite_values(owner: str, name: str, value: Any, ndim: int | None = None) -> None:
    """A tensor or array argument (class weights, ``pos_weight``) of real, finite numbers, ``ndim``-d if given."""
    array = value if isinstance(value, np.ndarray) else getattr(value, "data", value)  # a Tensor's array
    try:
        array = np.asarray(array)
    except (TypeError, ValueError):  # ragged lists
        array = np.asarray(None)
    if array.dtype.kind not in "iuf":
        raise ArgumentError(f"{owner}: {name} must hold real numbers, got {type(value).__name__} {value!r}"[:200])
    if ndim is not None and array.ndim != ndim:
        raise ShapeError(f"{owner}: {name} must be {ndim}-d (one entry per class), got shape {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ArgumentError(f"{owner}: {name} must be finite, got {array.tolist() if array.size <= 8 else array}")


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


# -- loss hyperparameters: one table, called by the loss modules at construction and the functions per call --
def _reduction(owner: str, value: Any) -> str:
    return one_of(owner, "reduction", value, ("mean", "sum", "none"))


def _delta(owner: str, value: Any) -> float:
    # inf is allowed: the loss is then 0.5 x^2 everywhere, as in PyTorch
    return real(owner, "delta", value, 0.0, math.inf, low_open=True)


def _margin(owner: str, value: Any) -> float:
    return real(owner, "margin", value, -math.inf, math.inf, low_open=True, high_open=True)


def _p(owner: str, value: Any) -> int:
    return one_of(owner, "p", value, (1, 2))


def _label_smoothing(owner: str, value: Any) -> float:
    return real(owner, "label_smoothing", value, 0.0, 1.0)


def _ignore_index(owner: str, value: Any) -> int:
    return integer(owner, "ignore_index", value)


def _class_weights(owner: str, value: Any) -> Any:
    if value is not None:
        finite_values(owner, "weight", value, ndim=1)
    return value


def _elementwise_weights(name: str) -> Callable[[str, Any], Any]:
    def check_weights(owner: str, value: Any) -> Any:
        if value is not None:
            finite_values(owner, name, value)
        return value

    return check_weights


_LOSS_OPTIONS = {
    "reduction": _reduction,
    "delta": _delta,
    "margin": _margin,
    "p": _p,
    "label_smoothing": _label_smoothing,
    "ignore_index": _ignore_index,
    "class_weight": _class_weights,
    "weight": _elementwise_weights("weight"),
    "pos_weight": _elementwise_weights("pos_weight"),
}


def loss_options(owner: str, **options: Any) -> dict[str, Any]:
    """Each loss hyperparameter checked by its one rule, returned normalised (``delta`` as a float ...).

    The loss modules call this in ``__init__`` and the functional forms on every call, so ``HuberLoss(delta=nan)``
    and ``huber_loss(x, y, delta=nan)`` fail alike. ``class_weight`` is a per-class weight (1-d); ``weight``
    and ``pos_weight`` are element-wise (any shape that broadcasts).

    Examples
    --------
    >>> loss_options("HuberLoss", reduction="sum", delta=2)
    {'reduction': 'sum', 'delta': 2.0}
    >>> loss_options("MultiMarginLoss", margin=float("nan"))
    Traceback (most recent call last):
    ...
    chainrule.errors.ArgumentError: MultiMarginLoss: margin must be in (-inf, inf), got nan
    """
    checked = {}
    for name, value in options.items():
        cacheable = value.__class__ in _CACHEABLE
        key = (name, value.__class__, value) if cacheable else None
        if key is not None and key in _PASSED:  # the functional forms run this on every call: keep it a lookup
            checked[name] = _PASSED[key]
            continue
        checked[name] = _LOSS_OPTIONS[name](owner, value)
        if key is not None and len(_PASSED) < 1024:
            _PASSED[key] = checked[name]
    return checked


_CACHEABLE = (str, int, float, type(None))
_PASSED: dict[tuple[str, type, Any], Any] = {}  # (option, type, value) -> normalised value, for values that passed


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


def physical_memory() -> int:
    """This machine's physical memory in bytes (16 GiB if it cannot be read)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # not POSIX
        return 16 * 2**30


def memory_budget() -> int:
    """Bytes one command may plan to allocate: half of this machine's physical memory."""
    return physical_memory() // 2


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


def fits_in_memory(
    owner: str, what: str, nbytes: int, budget: int | None = None, hint: str = "use smaller widths"
) -> None:
    """Refuse (``ArgumentError``) a plan to allocate about ``nbytes`` when it exceeds ``budget`` (default
    :func:`memory_budget`, half of the machine's memory), with both figures in the message, before anything is
    allocated.

    Examples
    --------
    >>> fits_in_memory("gradcheck", "an MLP 2-10**9-1", 96 * 2**30, budget=2**30)
    Traceback (most recent call last):
    ...
    chainrule.errors.ArgumentError: gradcheck: an MLP 2-10**9-1 would need about 96.0 GiB of memory, more than ...
    """
    limit = memory_budget() if budget is None else budget
    if nbytes > limit:
        allowed = "allowed (half of this machine's memory)" if budget is None else "allowed"
        if budget is not None and budget == physical_memory():
            allowed = "this machine has"
        raise ArgumentError(
            f"{owner}: {what} would need about {format_bytes(nbytes)} of memory, more than the "
            f"{format_bytes(limit)} {allowed}; {hint}"
        )
