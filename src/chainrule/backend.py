"""Which array library holds these arrays: the engine's one answer (the array-API ``get_namespace``).

NumPy arrays, NumPy scalars and Python numbers belong to :mod:`numpy`; any other array answers through its
``__array_namespace__()`` (the array-API standard's protocol, as in scikit-learn's and SciPy's
``get_namespace``). The engine asks only where an input is not already a NumPy array, so the common path
costs one ``type(x) is np.ndarray`` check.

>>> import numpy as np
>>> get_namespace(np.ones(2), 1.0) is np
True
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from chainrule.errors import DTypeError

__all__ = ["get_namespace", "is_numpy"]


def get_namespace(*arrays: Any) -> Any:
    """The array library (its array-API namespace) of ``arrays``; :mod:`numpy` for NumPy data and numbers.

    Parameters
    ----------
    *arrays : array or Python scalar
        Arrays of one library, with Python numbers (and ``None``) beside them.

    Returns
    -------
    module
        :mod:`numpy` itself for NumPy arrays, NumPy scalars and Python numbers, else the namespace the
        arrays' ``__array_namespace__()`` returns.

    Raises
    ------
    DTypeError
        If the arrays come from two different libraries.
    """
    found: Any = None
    for value in arrays:
        if type(value) is np.ndarray or value is None or isinstance(value, (int, float, bool, np.generic)):
            continue
        method = getattr(value, "__array_namespace__", None)
        if method is None or isinstance(value, np.ndarray):
            continue
        namespace = method()
        if found is None:
            found = namespace
        elif namespace is not found:
            raise DTypeError(
                f"get_namespace: arrays from two array libraries ({_name(found)} and {_name(namespace)}) "
                "cannot be mixed; convert them to one first"
            )
    return np if found is None else found


def is_numpy(namespace: Any) -> bool:
    """Whether ``namespace`` is NumPy (the namespace of the engine's fast paths)."""
    return namespace is np


def _name(namespace: Any) -> str:
    return namespace.__name__ if isinstance(namespace, ModuleType) else type(namespace).__name__


def numpy_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype named like another library's ``dtype`` (``array_api_strict.float32`` -> float32).

    chainrule spells every dtype as a NumPy dtype, whichever library holds the values.
    """
    if isinstance(dtype, np.dtype):
        return dtype
    try:
        return np.dtype(str(dtype).rsplit(".", 1)[-1])
    except TypeError:
        raise DTypeError(
            f"dtype {dtype!r} has no NumPy equivalent; chainrule computes in float32, float64, int64 and bool"
        ) from None


def foreign_array(value: Any) -> bool:
    """Whether ``value`` is an array of another library than NumPy (it has ``__array_namespace__``)."""
    return (
        type(value) is not np.ndarray
        and hasattr(value, "__array_namespace__")
        and not isinstance(value, (np.ndarray, np.generic))
        and not hasattr(value, "_ctx")  # a chainrule Tensor is not an array library's array
    )
