"""``import chainrule`` loads the tensor engine only; the rest is imported on first use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import chainrule as cr

# Modules that ``import chainrule`` must leave unloaded: chainrule's own extras, and what they pull in.
LAZY = [
    "chainrule.curvature",
    "chainrule.data",
    "chainrule.distributed",
    "chainrule.explain",
    "chainrule.func",
    "chainrule.io",
    "chainrule.nn",
    "chainrule.optim",
    "chainrule.scalar",
    "chainrule.train",
    "numpy.random",
    "gzip",
    "hashlib",
    "json",
    "matplotlib",
    "mpi4py",
    "numba",
    "safetensors",
    "scipy",
    "tqdm",
    "urllib.request",
]


def test_import_chainrule_leaves_the_extras_unloaded():
    code = f"import chainrule, sys; print(' '.join(m for m in {LAZY!r} if m in sys.modules))"
    src = str(Path(cr.__file__).parent.parent)  # the same chainrule as this test imported
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


def test_lazy_names_are_attributes_and_importable():
    from chainrule import Value, data, load, nn, save

    assert cr.data is data and cr.nn is nn and cr.optim.SGD is not None and cr.func.grad is not None
    assert save is cr.io.save and load is cr.io.load and Value is cr.scalar.Value
    assert {"data", "nn", "optim", "func", "io", "scalar", "train", "explain", "save", "load", "Value"} <= set(dir(cr))
    assert all(hasattr(cr, name) for name in cr.__all__)
    assert not hasattr(cr, "no_such_name")
