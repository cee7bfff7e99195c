"""Compiled kernels: the optional ``fast`` extra (``pip install 'chainrule[fast]'``, numba).

A kernel here is an alternative fast path of a primitive of :mod:`chainrule.ops` — a faster ``forward`` or
``fast_vjp`` of the same op, never a new op — kept only where it measures faster than the NumPy code it
replaces (see docs/design-speed.md for the figures), and checked against that NumPy code by the op-table
tests. Today: the forward of 2×2, stride-2 max pooling (a branch-free loop over each window; NumPy takes one
pass per window offset). Its backward stays NumPy's: a compiled one measured slower here.

Nothing is imported or compiled until a kernel is first asked for; numba then compiles it once and keeps
the machine code in its cache (``cache=True``), so later processes only load it. ``import chainrule``
never imports numba.

Switching off: set the environment variable ``CHAINRULE_FAST=0`` before the first use, or call
:func:`use_compiled` (``use_compiled(False)``); without numba installed everything runs on NumPy.

Examples
--------
>>> from chainrule import compiled
>>> previous = compiled.use_compiled(False)  # NumPy only from here on
>>> compiled.kernel("max_pool_2x2") is None
True
>>> _ = compiled.use_compiled(previous)
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

__all__ = ["use_compiled", "available", "kernel"]

_enabled = os.environ.get("CHAINRULE_FAST", "1").strip() not in ("0", "false", "no", "off")
_numba_found: bool | None = None
_kernels: dict[str, Callable[..., Any]] = {}


def use_compiled(enabled: bool = True) -> bool:
    """Turn the compiled kernels on or off for this process; returns the previous setting.

    Examples
    --------
    >>> from chainrule import compiled
    >>> previous = compiled.use_compiled(True)
    >>> compiled.use_compiled(previous)
    True
    """
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    return previous


def available() -> bool:
    """Whether the kernels are in use: switched on, and numba installed (checked once, without importing it).

    Examples
    --------
    >>> from chainrule import compiled
    >>> isinstance(compiled.available(), bool)
    True
    """
    global _numba_found
    if not _enabled:
        return False
    if _numba_found is None:
        _numba_found = importlib.util.find_spec("numba") is not None
    return _numba_found


def kernel(name: str) -> Callable[..., Any] | None:
    """The compiled kernel ``name`` (compiled or loaded from numba's cache on first use), or None where the
    kernels are off or numba is missing: the caller then runs its NumPy code.

    Examples
    --------
    >>> from chainrule import compiled
    >>> fn = compiled.kernel("max_pool_2x2")
    >>> fn is None or callable(fn)
    True
    """
    if not available():
        return None
    found = _kernels.get(name)
    if found is None:
        from chainrule import _numba_kernels  # imports numba

        found = _kernels[name] = getattr(_numba_kernels, name)
    return found
