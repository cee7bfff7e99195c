"""The numba kernels behind :mod:`chainrule.compiled` (imported on first use only: it imports numba).

Each kernel is compiled lazily on its first call and cached on disk (``cache=True``). They follow the NumPy
code they replace exactly, including NaN: PyTorch's rule, where a window's later value wins when it is
larger or NaN, so a window holding NaN gives NaN.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def max_pool_2x2(planes: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Maximum over each 2×2 window of stride 2: planes (P, H, W) -> out (P, H // 2, W // 2), in place.

    Written with selects only (no branches), so the compiler vectorizes it: one pass over the input, where
    NumPy makes one pass per window offset."""
    count, rows, cols = out.shape
    for p in range(count):
        for i in range(rows):
            top = planes[p, 2 * i]
            bottom = planes[p, 2 * i + 1]
            for j in range(cols):
                best = -np.inf
                for value in (top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1]):
                    best = value if (value > best) | (value != value) else best
                out[p, i, j] = best
