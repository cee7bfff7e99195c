"""The training tests' small data set (``test_train_fit.py``, ``test_train_edges.py``)."""

from __future__ import annotations

import numpy as np


def three_blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points around three centres, spread 0.6: inputs ``(n, 2)`` float32, labels ``(n,)`` int64 in {0, 1, 2}."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
    x = (centers[y] + rng.normal(scale=0.6, size=(n, 2))).astype(np.float32)
    return x, y.astype(np.int64)
