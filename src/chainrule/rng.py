"""The global random generator: one ``numpy.random.Generator`` that every random draw comes from.

:func:`manual_seed` reseeds it, which makes weight initialisation, ``rand``/``randn`` and everything else
that draws from :func:`default_generator` reproducible.
"""

from __future__ import annotations

import numpy as np

__all__ = ["manual_seed", "default_generator", "get_state", "set_state"]

_generator: np.random.Generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator and return it.

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
        raise ValueError(f"manual_seed: the seed must be a non-negative integer, got {seed!r}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator() -> np.random.Generator:
    """The global generator that chainrule's random functions draw from."""
    return _generator


def get_state() -> dict:
    """The global generator's state (a JSON-serialisable dict), for checkpoints."""
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    """Restore the global generator's state from :func:`get_state`."""
    _generator.bit_generator.state = state
