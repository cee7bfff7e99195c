"""chainrule: backpropagation you can read, on NumPy.

The public names: :class:`Tensor` and the functions that make and combine tensors, the scalar engine
:class:`Value`, grad-mode switches, the function transforms in :mod:`chainrule.func`, and gradient
checks. Optional extras are imported only by the functions that need them, so ``import chainrule``
needs NumPy alone.

The modules beyond the tensor engine (:mod:`~chainrule.nn`, :mod:`~chainrule.optim`,
:mod:`~chainrule.func`, :mod:`~chainrule.data`, :mod:`~chainrule.io`, :mod:`~chainrule.scalar`,
:mod:`~chainrule.train`, :mod:`~chainrule.explain`, and with them :func:`save`, :func:`load` and
:class:`Value`) are imported on first use, which keeps ``import chainrule`` fast; ``chainrule.nn`` and
``from chainrule import data`` work as usual.
"""

# F405: __all__ lists names made lazily by __getattr__ below; ruff cannot tell them from star-imported ones.
# ruff: noqa: F405

from __future__ import annotations

from typing import Any

from chainrule import autograd, creation, errors, functions, ops
from chainrule.autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from chainrule.creation import *  # noqa: F403 - the tensor makers, declared in chainrule.creation (its __all__)
from chainrule.errors import *  # noqa: F403 - the exceptions, declared in chainrule.errors (its __all__)
from chainrule.functions import *  # noqa: F403 - the ops, declared once in chainrule.functions (its __all__)
from chainrule.gradcheck import gradcheck, gradgradcheck
from chainrule.rng import default_generator, manual_seed
from chainrule.tensor import Tensor, bool_, float32, float64, int64

__version__ = "0.1.0"

# Imported on first access by __getattr__ (PEP 562) rather than here; listed for dir().
_LAZY = ("curvature", "data", "explain", "func", "io", "nn", "optim", "scalar", "train", "save", "load", "Value")


def __getattr__(name: str) -> Any:
    # One fixed import per name, never a module named by a string (tests/test_io_safety.py checks this).
    if name == "data":
        import chainrule.data as value
    elif name == "curvature":
        import chainrule.curvature as value  # type: ignore[no-redef]
    elif name == "explain":
        import chainrule.explain as value  # type: ignore[no-redef]
    elif name == "func":
        import chainrule.func as value  # type: ignore[no-redef]
    elif name == "io":
        import chainrule.io as value  # type: ignore[no-redef]
    elif name == "nn":
        import chainrule.nn as value  # type: ignore[no-redef]
    elif name == "optim":
        import chainrule.optim as value  # type: ignore[no-redef]
    elif name == "scalar":
        import chainrule.scalar as value  # type: ignore[no-redef]
    elif name == "train":
        import chainrule.train as value  # type: ignore[no-redef]
    elif name == "save":
        from chainrule.io import save as value  # type: ignore[no-redef]
    elif name == "load":
        from chainrule.io import load as value  # type: ignore[no-redef]
    elif name == "Value":
        from chainrule.scalar import Value

        value = Value  # type: ignore[assignment]
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups find it without calling __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Tensor",
    "Value",
    "manual_seed",
    "default_generator",
    "float32",
    "float64",
    "int64",
    "bool_",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "autograd",
    "data",
    "func",
    "nn",
    "optim",
    "ops",
    "gradcheck",
    "gradgradcheck",
    "save",
    "load",
]
__all__ += creation.__all__
__all__ += errors.__all__
__all__ += functions.__all__
