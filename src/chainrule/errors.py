"""Exceptions raised by chainrule.

Every error a user can trigger through the public API is one of these. Each also derives from the
built-in exception a Python user would expect (``ShapeError`` is a ``ValueError``, ``DTypeError`` a
``TypeError``), so ``except ValueError`` keeps working. Messages name the op or layer and the shapes.
"""

from __future__ import annotations

__all__ = [
    "ChainruleError",
    "ShapeError",
    "DTypeError",
    "ArgumentError",
    "IndexingError",
    "GradientError",
    "AnomalyError",
    "DataError",
    "CheckpointError",
    "DistributedError",
]


class ChainruleError(Exception):
    """Base class of every exception raised by chainrule."""


class ShapeError(ChainruleError, ValueError):
    """Shapes that do not fit the op, e.g. ``matmul: shapes (2, 3) and (4, 5) are not aligned``."""


class DTypeError(ChainruleError, TypeError):
    """A dtype the op cannot take, e.g. asking for the gradient of an integer tensor."""


class ArgumentError(ChainruleError, ValueError, TypeError):
    """An argument of the wrong kind or value, e.g. ``sum: axis must be an integer, got 1.0`` or
    ``Value.__truediv__: division by zero``. Both a ``ValueError`` and a ``TypeError``, so either
    ``except`` clause a caller already has keeps working."""


class IndexingError(ChainruleError, IndexError):
    """An index out of range or of a kind a tensor cannot be indexed with."""


class GradientError(ChainruleError, RuntimeError):
    """Misuse of the autodiff engine, e.g. a second ``backward()`` through a freed graph."""


class AnomalyError(GradientError):
    """NaN or Inf produced by an op's forward or backward pass while :func:`chainrule.autograd.detect_anomaly`
    is active; the message names the op, its input shapes and the line of user code that created it."""


class DataError(ChainruleError, ValueError):
    """A data file or data set that is missing, corrupt or inconsistent."""


class CheckpointError(ChainruleError, ValueError):
    """A checkpoint file that is missing, corrupt, or does not match the model."""


class DistributedError(ChainruleError, RuntimeError):
    """Data-parallel training failed across processes: a collective timed out waiting for another rank, the
    ranks disagree (model shapes, world size of a resumed run), or MPI is missing under ``mpiexec``."""
