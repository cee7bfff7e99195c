"""Array transforms for preparing data: scaling, one-hot labels, flattening and standardisation.

They work on NumPy arrays (a :class:`~chainrule.Tensor` is read through its ``.data``) and return NumPy
arrays, so they fit in front of a :class:`~chainrule.data.TensorDataset`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.data.dataset import _as_array
from chainrule.errors import DataError, ShapeError

__all__ = ["scale_to_unit", "one_hot", "flatten", "Standardize"]


def scale_to_unit(x: Any, max_value: float | None = None) -> np.ndarray:
    """Scale non-negative values into ``[0, 1]`` as float32.

    Parameters
    ----------
    x : array_like
        Any shape. uint8 data (pixels) is divided by 255.
    max_value : float, optional
        The value that maps to 1; defaults to 255 for uint8 and to ``x.max()`` otherwise.

    Returns
    -------
    numpy.ndarray
        float32, same shape as ``x``.

    Examples
    --------
    >>> import numpy as np
    >>> scale_to_unit(np.array([0, 51, 255], np.uint8))
    array([0. , 0.2, 1. ], dtype=float32)
    >>> scale_to_unit(np.array([0, 8, 16]), max_value=16)
    array([0. , 0.5, 1. ], dtype=float32)
    """
    array = _as_array(x)
    if max_value is None:
        if array.dtype == np.uint8:
            max_value = 255.0
        elif array.size == 0:
            return array.astype(np.float32)
        else:
            max_value = float(array.max())
    if not np.isfinite(max_value) or max_value <= 0:
        raise ValueError(f"scale_to_unit: max_value must be a positive finite number, got {max_value!r}")
    return (array.astype(np.float32) / np.float32(max_value)).astype(np.float32)


def one_hot(labels: Any, num_classes: int | None = None) -> np.ndarray:
    """Class labels to one-hot rows.

    Parameters
    ----------
    labels : array_like of int
        Shape ``(N,)``, values in ``[0, num_classes)``.
    num_classes : int, optional
        Defaults to ``labels.max() + 1``.

    Returns
    -------
    numpy.ndarray
        float32 of shape ``(N, num_classes)``.

    Raises
    ------
    DataError
        When a label is not a non-negative integer below ``num_classes``.

    Examples
    --------
    >>> one_hot([0, 2, 1], num_classes=3)
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    """
    array = _as_array(labels)
    if array.ndim != 1:
        raise ShapeError(f"one_hot: labels must have shape (N,), got {array.shape}")
    if array.dtype.kind == "f":
        fractional = array[array != np.round(array)]
        if fractional.size:
            raise DataError(f"one_hot: labels must be integers, got {fractional[0]!r}")
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iu":
        raise DataError(f"one_hot: labels must be integers, got dtype {array.dtype}")
    if num_classes is None:
        num_classes = int(array.max()) + 1 if array.size else 0
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 0:
        raise ValueError(f"one_hot: num_classes must be a non-negative integer, got {num_classes!r}")
    bad = array[(array < 0) | (array >= num_classes)]
    if bad.size:
        position = int(np.flatnonzero((array < 0) | (array >= num_classes))[0])
        raise DataError(
            f"one_hot: label {int(bad[0])} at position {position} is outside [0, {num_classes}) "
            f"for num_classes={num_classes}"
        )
    out = np.zeros((array.shape[0], int(num_classes)), dtype=np.float32)
    out[np.arange(array.shape[0]), array.astype(np.int64)] = 1.0
    return out


def flatten(x: Any) -> np.ndarray:
    """Flatten every dimension after the first: ``(N, d1, d2, ...) -> (N, d1 * d2 * ...)``.

    Examples
    --------
    >>> import numpy as np
    >>> flatten(np.zeros((5, 1, 8, 8))).shape
    (5, 64)
    """
    array = _as_array(x)
    if array.ndim == 0:
        raise ShapeError("flatten: needs an array with a first (sample) dimension, got a scalar")
    return array.reshape(array.shape[0], -1)


class Standardize:
    """Shift and scale each feature to mean 0 and standard deviation 1, with statistics from ``fit``.

    Statistics are taken over axis 0 (the samples); a feature with standard deviation 0 is only shifted.

    Attributes
    ----------
    mean_ : numpy.ndarray or None
        Per-feature mean, shape ``x.shape[1:]``; None before ``fit``.
    std_ : numpy.ndarray or None
        Per-feature standard deviation (zeros replaced by 1), shape ``x.shape[1:]``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1.0, 10.0], [3.0, 10.0]], np.float32)
    >>> scaler = Standardize()
    >>> scaler.fit_transform(x)
    array([[-1.,  0.],
           [ 1.,  0.]], dtype=float32)
    >>> scaler.inverse_transform(scaler.transform(x))
    array([[ 1., 10.],
           [ 3., 10.]], dtype=float32)
    """

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None

    def fit(self, x: Any) -> Standardize:
        """Compute the per-feature mean and standard deviation of ``x`` (shape ``(N, ...)``); return self."""
        array = _as_array(x)
        if array.ndim == 0 or array.shape[0] == 0:
            raise DataError(f"Standardize.fit: needs at least one sample, got shape {array.shape}")
        dtype = array.dtype if array.dtype.kind == "f" else np.dtype(np.float32)
        mean = array.mean(axis=0, dtype=np.float64)
        std = array.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0
        self.mean_ = mean.astype(dtype)
        self.std_ = std.astype(dtype)
        return self

    def _check(self, x: Any, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``x`` as an array, with the fitted ``mean_`` and ``std_``."""
        if self.mean_ is None or self.std_ is None:
            raise DataError(f"Standardize.{where}: call fit(x) (or load_state_dict) before {where}")
        array = _as_array(x)
        if array.shape[1:] != self.mean_.shape:
            raise ShapeError(
                f"Standardize.{where}: fitted on samples of shape {self.mean_.shape}, "
                f"got an array of shape {array.shape}"
            )
        return array, self.mean_, self.std_

    def transform(self, x: Any) -> np.ndarray:
        """``(x - mean_) / std_``, same shape as ``x``."""
        array, mean, std = self._check(x, "transform")
        return ((array - mean) / std).astype(mean.dtype)

    def fit_transform(self, x: Any) -> np.ndarray:
        """``fit(x)`` then ``transform(x)``."""
        return self.fit(x).transform(x)

    def inverse_transform(self, x: Any) -> np.ndarray:
        """``x * std_ + mean_``: undo :meth:`transform`."""
        array, mean, std = self._check(x, "inverse_transform")
        return (array * std + mean).astype(mean.dtype)

    def state_dict(self) -> dict[str, Any]:
        """The fitted statistics as nested lists (JSON-serialisable), with their shape and dtype."""
        if self.mean_ is None or self.std_ is None:
            raise DataError("Standardize.state_dict: call fit(x) first")
        return {
            "mean": self.mean_.tolist(),
            "std": self.std_.tolist(),
            "shape": list(self.mean_.shape),
            "dtype": str(self.mean_.dtype),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore statistics saved by :meth:`state_dict`."""
        missing = {"mean", "std"} - set(state)
        if missing:
            raise DataError(f"Standardize.load_state_dict: missing keys {sorted(missing)}")
        dtype = np.dtype(state.get("dtype", "float32"))
        mean = np.asarray(state["mean"], dtype=dtype)
        std = np.asarray(state["std"], dtype=dtype)
        if "shape" in state:
            mean = mean.reshape(state["shape"])
            std = std.reshape(state["shape"])
        if mean.shape != std.shape:
            raise DataError(f"Standardize.load_state_dict: mean has shape {mean.shape} but std has shape {std.shape}")
        self.mean_, self.std_ = mean, std

    def __repr__(self) -> str:
        fitted = "unfitted" if self.mean_ is None else f"features={self.mean_.shape}"
        return f"Standardize({fitted})"
