"""Matplotlib, imported on demand, and PNG files written atomically: what every chainrule plot uses.

Matplotlib is optional (the ``plot`` extra: ``pip install 'chainrule[plot]'``); it is imported only when a
figure is drawn, with the non-interactive Agg backend, so ``import chainrule`` stays fast and plots work
without a display. :mod:`chainrule.train.plots` and :mod:`chainrule.explain` both draw through here.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from chainrule.errors import ChainruleError
from chainrule.io import atomic_write_bytes

__all__ = ["pyplot", "save_figure"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or a :class:`ChainruleError` that says how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ChainruleError("plots need matplotlib: pip install 'chainrule[plot]'") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``figure`` to ``path`` as a PNG (110 dpi, tight box) atomically, close it, and return the path."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    figure.clf()
    import matplotlib.pyplot as plt

    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
