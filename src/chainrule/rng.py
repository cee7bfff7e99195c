"""The global random generator: one ``numpy.random.Generator`` that every random draw comes from.

:func:`manual_seed` reseeds it, which makes weight initialisation, ``rand``/``randn`` and everything else
that draws from :func:`default_generator` reproducible.

The generator is process-wide, as PyTorch's: threads that draw from it at the same time share one stream, so
neither's draws are reproducible, and :func:`manual_seed` in one thread reseeds the others' too. A thread that
needs its own reproducible stream (the playground's sessions, an estimator's fit) draws inside :func:`using`,
whose generator replaces the global one in that thread only.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np

from chainrule.errors import ArgumentError

__all__ = ["manual_seed", "default_generator", "get_state", "set_state", "using"]

# Made on first use: importing numpy.random (and the hashlib/secrets it pulls in) slows ``import chainrule``.
_generator: np.random.Generator | None = None


class _Override(threading.local):
    """The generator that :func:`using` put in place of the global one, in this thread (None outside)."""

    generator: np.random.Generator | None = None


_override = _Override()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator and return it.

    Process-wide: it reseeds the stream that every thread draws from. Inside :func:`using` it replaces this
    thread's generator instead, until the block ends.

    Parameters
    ----------
    seed : int
        A non-negative integer.

    Examples
    --------
    >>> import chainrule as cr
    >>> _ = cr.manual_seed(0)
    >>> a = cr.randn(3)
    >>> _ = cr.manual_seed(0)
    >>> bool((cr.randn(3) == a).all())
    True
    """
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ArgumentError(f"manual_seed: the seed must be a non-negative integer, got {seed!r}")
    generator = np.random.default_rng(int(seed))
    if _override.generator is not None:
        _override.generator = generator
    else:
        _generator = generator
    return generator


def default_generator() -> np.random.Generator:
    """The generator that chainrule's random functions draw from: the global one, or this thread's :func:`using`."""
    global _generator
    override = _override.generator
    if override is not None:
        return override
    if _generator is None:
        _generator = np.random.default_rng()
    return _generator


def get_state() -> dict:
    """The global generator's state (a JSON-serialisable dict), for checkpoints."""
    return dict(default_generator().bit_generator.state)


def set_state(state: dict) -> None:
    """Restore the global generator's state from :func:`get_state`."""
    default_generator().bit_generator.state = state


@contextlib.contextmanager
def using(generator: np.random.Generator) -> Iterator[np.random.Generator]:
    """Make ``generator`` the global generator inside the ``with`` block, then put the previous one back.

    Everything that draws from the global generator (initialisation, shuffling, dropout) draws from
    ``generator`` meanwhile, which gives an object such as an estimator its own reproducible stream. Only in
    this thread: other threads keep drawing from the global generator (or from their own ``using`` block), so
    two threads that each build or train a model inside ``using`` neither draw from nor replace each other's.

    Examples
    --------
    >>> import numpy as np, chainrule as cr
    >>> with using(np.random.default_rng(0)):
    ...     a = cr.randn(2)
    >>> with using(np.random.default_rng(0)):
    ...     b = cr.randn(2)
    >>> bool((a == b).all())
    True
    """
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"using: expected a numpy.random.Generator, got {type(generator).__name__}")
    previous, _override.generator = _override.generator, generator
    try:
        yield generator
    finally:
        _override.generator = previous
