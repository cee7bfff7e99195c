"""Tools that show what the engine does: graph drawings, whole-model gradient checks, gradient monitoring.

Submodules are imported on use (``from chainrule.explain.graph import graph``), so ``import chainrule``
stays NumPy-only and fast.
"""

__all__ = ["graph", "check", "monitor", "vanishing"]
