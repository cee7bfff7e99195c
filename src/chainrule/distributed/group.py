"""The process group: this process's rank among ``size`` processes started by ``mpiexec``, and the few
collectives data-parallel training needs (broadcast, allreduce, allgather), each with a watchdog.

Every collective is started nonblocking (``Ibcast``, ``Iallreduce``, ``Iallgatherv``) and waited for by polling
``Request.Test`` against a deadline: a rank that died, hangs or raised without aborting makes the others raise
:class:`~chainrule.errors.DistributedError` after ``timeout`` seconds instead of waiting forever. A rank that
raises ends the whole job at once through ``MPI_Abort`` (:func:`init` installs the hook), after one line on
stderr naming it.

Without ``mpiexec`` (no MPI environment variables) the group has one rank and needs neither mpi4py nor an MPI
library: every collective is the identity, so the same script runs on one process or on N.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.errors import ArgumentError, DistributedError

__all__ = ["ProcessGroup", "init", "current", "launched_by_mpi", "DEFAULT_TIMEOUT"]

#: Seconds a collective waits for the other ranks before raising (``CHAINRULE_DIST_TIMEOUT`` overrides it).
DEFAULT_TIMEOUT = 300.0

#: Environment variables that MPI launchers set in every process they start: MPICH's Hydra (and Intel MPI)
#: the PMI ones, Open MPI its own, PMIx-based launchers and Slurm's ``srun --mpi`` the PMIx ones.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")

_group: ProcessGroup | None = None


def launched_by_mpi() -> bool:
    """Whether this process was started by an MPI launcher (``mpiexec``/``mpirun``/``srun``): its environment
    has a rank or size variable. Reads the environment only, so asking costs nothing.

    Examples
    --------
    >>> import os
    >>> launched_by_mpi() == any(name in os.environ for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"))
    True
    """
    return any(name in os.environ for name in _RANK_VARIABLES)


class ProcessGroup:
    """``size`` processes training one model together; this one is ``rank`` (0 is the leader).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm or None
        The communicator; None for a group of one process (no MPI at all).
    timeout : float
        Seconds each collective waits for the other ranks before raising ``DistributedError``.

    Attributes
    ----------
    rank, size : int
        This process's index and the number of processes.
    bytes_sent : int
        Payload bytes this rank handed to collectives so far (what the benchmark reports per step).
    comm_seconds : float
        Wall time spent inside collectives so far (waiting for slower ranks included).

    Examples
    --------
    >>> group = ProcessGroup(None)
    >>> group.rank, group.size
    (0, 1)
    >>> group.allreduce_sum(np.array([1.5, 2.0])).tolist()
    [1.5, 2.0]
    """

    def __init__(self, comm: Any = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ArgumentError(f"ProcessGroup: timeout must be a positive number of seconds, got {timeout!r}")
        self.comm = comm
        self.rank = 0 if comm is None else int(comm.Get_rank())
        self.size = 1 if comm is None else int(comm.Get_size())
        self.timeout = float(timeout)
        self.bytes_sent = 0
        self.comm_seconds = 0.0

    def __repr__(self) -> str:
        return f"ProcessGroup(rank={self.rank}, size={self.size}, timeout={self.timeout:g})"

    @property
    def is_leader(self) -> bool:
        """Rank 0: the process that prints, writes checkpoints and broadcasts the starting state."""
        return self.rank == 0

    # -- waiting with a deadline ---------------------------------------------------------------------------
    def wait(self, requests: Sequence[Any], what: str) -> None:
        """Wait for nonblocking requests; raise ``DistributedError`` naming ``what`` after ``timeout`` seconds.

        Polls ``Test`` in a tight loop first (a collective of a few MB finishes in microseconds to
        milliseconds), then with pauses growing to 2 ms, so a rank waiting for a slow one leaves the CPU
        to it."""
        started = time.perf_counter()
        deadline = started + self.timeout
        pending, polls = list(requests), 0
        while pending:
            pending = [request for request in pending if not request.Test()]
            if not pending:
                break
            polls += 1
            now = time.perf_counter()
            if now > deadline:
                raise DistributedError(
                    f"{what} timed out after {self.timeout:g} s waiting for the other ranks "
                    "(one of them died, hangs, or raised without aborting the job)"
                )
            if polls > 200:
                time.sleep(min(2e-3, 1e-5 * (polls - 200)))
        self.comm_seconds += time.perf_counter() - started

    # -- collectives ---------------------------------------------------------------------------------------
    def allreduce_sum(self, array: np.ndarray, what: str = "allreduce") -> np.ndarray:
        """The elementwise sum of ``array`` over all ranks, computed in place (``array`` must be contiguous)."""
        if self.comm is None:
            return array
        if not array.flags.c_contiguous or not array.flags.writeable:
            raise ArgumentError(f"allreduce_sum: needs a contiguous, writeable array, got {array.flags}")
        from mpi4py import MPI

        self.bytes_sent += array.nbytes
        self.wait([self.comm.Iallreduce(MPI.IN_PLACE, array, op=MPI.SUM)], what)
        return array

    def mean(self, value: float, what: str = "average") -> float:
        """``value`` averaged over the ranks (e.g. a batch loss, to print the loss of the whole batch).

        Examples
        --------
        >>> ProcessGroup(None).mean(0.25)
        0.25
        """
        if self.comm is None:
            return float(value)
        return float(self.allreduce_sum(np.array([value], np.float64), what)[0]) / self.size

    def broadcast(self, array: np.ndarray, what: str = "broadcast") -> np.ndarray:
        """Overwrite ``array`` on every rank with rank 0's values (in place)."""
        if self.comm is None:
            return array
        if self.is_leader:
            self.bytes_sent += array.nbytes
        self.wait([self.comm.Ibcast(array, root=0)], what)
        return array

    def allgather_rows(self, array: np.ndarray, what: str = "allgather") -> np.ndarray:
        """Every rank's ``array`` (same shape after the first axis, any length) stacked in rank order."""
        if self.comm is None:
            return array
        array = np.ascontiguousarray(array)
        counts = np.zeros(self.size, np.int64)
        counts[self.rank] = len(array)
        self.allreduce_sum(counts, what)
        row = int(np.prod(array.shape[1:], dtype=np.int64))
        gathered = np.empty((int(counts.sum()), *array.shape[1:]), array.dtype)
        sizes = counts * row
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.bytes_sent += array.nbytes
        request = self.comm.Iallgatherv(array.reshape(-1), [gathered.reshape(-1), (sizes.tolist(), offsets.tolist())])
        self.wait([request], what)
        return gathered

    def broadcast_json(self, value: Any, what: str = "broadcast") -> Any:
        """Rank 0's ``value`` (anything JSON can hold) on every rank; sent as UTF-8 bytes, never pickled."""
        if self.comm is None:
            return value
        payload = np.frombuffer(json.dumps(value).encode(), np.uint8) if self.is_leader else np.empty(0, np.uint8)
        length = np.array([payload.size], np.int64)
        self.broadcast(length, what)
        buffer = payload.copy() if self.is_leader else np.empty(int(length[0]), np.uint8)
        self.broadcast(buffer, what)
        return json.loads(buffer.tobytes().decode())

    # -- failure -------------------------------------------------------------------------------------------
    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (``MPI_Abort``); a group of one process just returns."""
        if self.comm is not None and self.size > 1:
            sys.stdout.flush()
            sys.stderr.flush()
            # mpiexec forwards each rank's output through a pipe asynchronously and stops forwarding once the
            # abort starts killing ranks: give it a moment to pass on the line that names this rank.
            time.sleep(0.25)
            self.comm.Abort(code)


def _timeout_from_environment() -> float:
    text = os.environ.get("CHAINRULE_DIST_TIMEOUT")
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ArgumentError(f"CHAINRULE_DIST_TIMEOUT must be a positive number of seconds, got {text!r}")
    return value


def init(timeout: float | None = None, abort_on_error: bool = True) -> ProcessGroup:
    """The process group of this job, from ``MPI.COMM_WORLD`` when started by ``mpiexec``, else one process.

    Calling it again returns the same group. Under ``mpiexec`` mpi4py is imported (``pip install
    'chainrule[distributed]'``); without it nothing beyond NumPy is needed and the group has one rank.

    Parameters
    ----------
    timeout : float, optional
        Seconds a collective waits for the other ranks before raising; default ``CHAINRULE_DIST_TIMEOUT`` or
        :data:`DEFAULT_TIMEOUT`.
    abort_on_error : bool
        With more than one rank, an exception that reaches the top of this process prints its traceback, then
        ``chainrule.distributed: rank R of N failed: ...`` and calls ``MPI_Abort``, so the other ranks stop at
        once instead of waiting in their next collective.

    Returns
    -------
    ProcessGroup

    Examples
    --------
    >>> group = init()  # without mpiexec: one rank
    >>> (group.rank, group.size) if not launched_by_mpi() else (0, 1)
    (0, 1)
    """
    global _group
    if _group is not None:
        return _group
    timeout = _timeout_from_environment() if timeout is None else timeout
    if not launched_by_mpi() or _launched_size() == 1:  # one process needs no MPI
        _group = ProcessGroup(None, timeout)
        return _group
    try:
        from mpi4py import MPI
    except ImportError:
        raise DistributedError(
            "distributed: this process was started by mpiexec but mpi4py is not installed: "
            "pip install 'chainrule[distributed]'"
        ) from None
    comm = MPI.COMM_WORLD
    _group = ProcessGroup(comm if comm.Get_size() > 1 else None, timeout)
    if abort_on_error and _group.size > 1:
        _install_abort_hook(_group)
    return _group


def _launched_size() -> int:
    """The number of ranks the launcher's environment announces (1 when it names none)."""
    for name in _SIZE_VARIABLES:
        text = os.environ.get(name, "")
        if text.isdigit():
            return int(text)
    return 1


def current() -> ProcessGroup | None:
    """The group :func:`init` made, or None before it was called."""
    return _group


def _install_abort_hook(group: ProcessGroup) -> None:
    previous = sys.excepthook

    def abort_on_uncaught(kind: type[BaseException], error: BaseException, traceback: Any) -> None:
        previous(kind, error, traceback)
        text = " ".join(str(error).split()) or kind.__name__
        print(f"chainrule.distributed: rank {group.rank} of {group.size} failed: {text}", file=sys.stderr)
        group.abort(1)

    sys.excepthook = abort_on_uncaught
