"""The compiled kernels (``chainrule.compiled``, the ``fast`` extra) give exactly what the NumPy code gives.

The op table's ``max_pool_2x2`` entry runs the kernel through every generic check when numba is installed;
here: kernel against NumPy on the edges (NaN, ±inf, ties, odd sizes, both memory layouts, both dtypes), the
switches, and that ``import chainrule`` still does not import numba (``test_import``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import compiled
from chainrule.ops import OPS

POOL = {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0), "dilation": (1, 1)}
needs_numba = pytest.mark.skipif(not compiled.available(), reason="numba not installed (pip install '.[fast]')")


def _numpy_only(x: np.ndarray) -> np.ndarray:
    previous = compiled.use_compiled(False)
    try:
        return OPS["max_pool"].forward(x, **POOL)
    finally:
        compiled.use_compiled(previous)


def _inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    edges = np.array([[np.nan, 1.0, 2.0, 2.0, -np.inf, -np.inf], [0.0, np.nan, 2.0, 2.0, -np.inf, -np.inf],
                      [np.inf, 1.0, 3.0, np.nan, 5.0, 5.0], [1.0, np.inf, np.nan, 3.0, 5.0, -1.0],
                      [7.0, 7.0, 7.0, 7.0, 0.0, -0.0]])  # fmt: skip
    channel_major = rng.standard_normal((3, 2, 6, 8)).swapaxes(0, 1)  # (N, C, H, W) stored as (C, N, H, W)
    return [
        edges[None, None],
        np.stack([edges, -edges])[None],
        rng.standard_normal((2, 3, 7, 9)).astype(np.float32),  # odd sizes: the last row and column are left out
        channel_major,
        channel_major.astype(np.float32),
        rng.standard_normal((2, 3, 8, 8))[:, :, ::-1],  # neither layout: copied first
    ]


@needs_numba
@pytest.mark.parametrize("index", range(len(_inputs())))
def test_max_pool_kernel_matches_numpy(index):
    x = _inputs()[index]
    with np.errstate(invalid="ignore"):
        expected = _numpy_only(x)
        got = OPS["max_pool"].forward(x, **POOL)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)  # NaN where NaN, -0.0 == 0.0 as in NumPy's maximum
    if min(x.shape[:2]) > 1:  # the input's memory order
        assert (got.strides[1] > got.strides[0]) == (x.strides[1] > x.strides[0])


@needs_numba
def test_layer_gradients_are_the_same_with_and_without_the_kernel():
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6))
    results = []
    for enabled in (True, False):
        previous = compiled.use_compiled(enabled)
        try:
            t = cr.tensor(x, requires_grad=True)
            out = cr.nn.functional.max_pool2d(t, 2)
            (out * out).sum().backward()
            results.append((out.data, t.grad.data))
        finally:
            compiled.use_compiled(previous)
    for with_kernel, without in zip(*results):
        np.testing.assert_array_equal(with_kernel, without)


def test_use_compiled_switches_and_returns_the_previous_setting():
    previous = compiled.use_compiled(False)
    try:
        assert not compiled.available() and compiled.kernel("max_pool_2x2") is None
        assert compiled.use_compiled(True) is False
    finally:
        compiled.use_compiled(previous)


def test_environment_variable_switches_the_kernels_off():
    src = str(Path(cr.__file__).parent.parent)
    code = "from chainrule import compiled; print(compiled.available(), compiled.kernel('max_pool_2x2'))"
    env = {**os.environ, "CHAINRULE_FAST": "0", "PYTHONPATH": src}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "None"]
