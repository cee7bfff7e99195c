"""Data-parallel training over MPI (``pip install 'chainrule[distributed]'``: mpi4py and the mpich wheel).

Start N copies of a script or of ``chainrule train`` with ``mpiexec -n N``; each copy is one *rank*. Every rank
holds the whole model, trains on its share of each batch, and the ranks average their gradients after
``backward()``, so the N ranks take the steps one process would take with an N times larger batch.

- :func:`init`: the :class:`ProcessGroup` (rank, size) from ``MPI.COMM_WORLD``; one rank without ``mpiexec``.
- :class:`DistributedSampler`: each rank's share of every epoch's shuffle, for ``DataLoader(sampler=...)``.
- :class:`DistributedDataParallel`: rank 0's weights everywhere at the start, and ``backward()`` returns with
  the gradients averaged (Horovod's tensor fusion: one ``Iallreduce`` per 25 MB of gradients, each started by
  gradient hooks as soon as its bucket is full; ``no_sync()`` for gradient accumulation).
- ``chainrule.train.fit(..., distributed=True)`` does all of it, and only rank 0 prints and writes files.

Importing this package needs only NumPy; mpi4py is imported by :func:`init` under ``mpiexec``.
"""

from .group import DEFAULT_TIMEOUT, ProcessGroup, current, init, launched_by_mpi
from .parallel import BUCKET_BYTES, DistributedDataParallel, GradientAverager, average_buffers, broadcast_module
from .sampler import DistributedSampler

__all__ = [
    "init",
    "current",
    "launched_by_mpi",
    "ProcessGroup",
    "DistributedSampler",
    "DistributedDataParallel",
    "GradientAverager",
    "broadcast_module",
    "average_buffers",
    "BUCKET_BYTES",
    "DEFAULT_TIMEOUT",
]
