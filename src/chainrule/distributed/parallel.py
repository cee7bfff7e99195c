"""Data parallelism: the same model on every rank, started from rank 0's state, stepped with averaged gradients.

Gradients are averaged with Horovod's *tensor fusion*: the gradients of consecutive parameters are copied
into flat buffers of at most ``bucket_bytes`` each (one per dtype, float32 for a float32 model), every buffer
is summed over the ranks by one ``Iallreduce``, then divided by the number of ranks and copied back. A
784-256-128-10 MLP (0.9 MB of gradients) costs two collectives per step: one buffer, and a small float64 one
holding which parameters had a gradient (and, for :class:`GradientAverager`, the losses to average).

Two ways to run it: :class:`DistributedDataParallel` starts each buffer's ``Iallreduce`` from gradient hooks
*during* ``backward()``, as soon as the buffer is full, and waits at the end of the sweep (communication
overlaps the rest of the backward); :class:`GradientAverager` (what ``fit`` uses, and
``DistributedDataParallel.average_gradients`` after a backward under ``no_sync``) packs and sums every buffer in
one call after ``backward()``.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from chainrule import autograd, rng
from chainrule.errors import ArgumentError, DistributedError
from chainrule.nn.module import Module
from chainrule.tensor import Tensor

from .group import ProcessGroup, init

__all__ = ["GradientAverager", "broadcast_module", "average_buffers", "DistributedDataParallel", "BUCKET_BYTES"]

#: Default size of one fused gradient buffer (PyTorch's DDP uses 25 MB buckets, Horovod a 64 MB fusion buffer).
BUCKET_BYTES = 25 * 2**20


def _flat_groups(arrays: Sequence[np.ndarray], bucket_bytes: float) -> list[list[int]]:
    """Indices of ``arrays`` cut into runs of one dtype, each at most ``bucket_bytes`` (a bigger array alone)."""
    buckets: list[list[int]] = []
    size, dtype = 0, None
    for index, array in enumerate(arrays):
        if not buckets or array.dtype != dtype or size + array.nbytes > bucket_bytes:
            buckets.append([])
            size, dtype = 0, array.dtype
        buckets[-1].append(index)
        size += array.nbytes
    return buckets


def _check_bucket_bytes(owner: str, bucket_bytes: Any) -> None:
    if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int) or bucket_bytes < 1:
        raise ArgumentError(f"{owner}: bucket_bytes must be a positive integer, got {bucket_bytes!r}")


def broadcast_module(module: Module, group: ProcessGroup | None = None, rng_state: bool = True) -> None:
    """Give every rank rank 0's parameters and buffers (and global random generator, with ``rng_state``).

    Checks first that every rank's model has the same number of values, so ranks that built different models
    fail with a ``DistributedError`` naming the counts instead of exchanging garbage.

    Examples
    --------
    >>> from chainrule import nn
    >>> broadcast_module(nn.Linear(2, 2))  # one process: nothing to do
    """
    group = init() if group is None else group
    if group.size == 1:
        return
    state = module.state_dict()
    arrays = [tensor.data for tensor in state.values()]
    counts = np.zeros((group.size,), np.float64)
    counts[group.rank] = sum(a.size for a in arrays)
    group.allreduce_sum(counts, "broadcast of the model")
    if np.any(counts != counts[0]):
        shown = ", ".join(f"rank {r}: {int(c):,}" for r, c in enumerate(counts))
        raise DistributedError(f"broadcast_module: the ranks built different models ({shown} values)")
    for bucket in _flat_groups(arrays, BUCKET_BYTES):
        flat = np.concatenate([arrays[i].reshape(-1) for i in bucket])
        group.broadcast(flat, "broadcast of the model")
        offset = 0
        for i in bucket:
            arrays[i][...] = flat[offset : offset + arrays[i].size].reshape(arrays[i].shape)
            offset += arrays[i].size
    for tensor in state.values():
        tensor._mark_modified("broadcast_module")
    if rng_state:  # every rank then draws the same shuffles (DistributedSampler takes its share of them)
        rng.set_state(group.broadcast_json(rng.get_state(), "broadcast of the random generator"))


def average_buffers(module: Module, group: ProcessGroup | None = None) -> None:
    """Replace each floating buffer (BatchNorm's running mean and variance) by its mean over the ranks.

    During training each rank's BatchNorm normalises with its own batch's statistics and updates its own
    running averages; averaging them (fit does it after every epoch) gives every rank, and the checkpoint, the
    same running statistics.
    """
    group = init() if group is None else group
    buffers = [b.data for b in module.buffers() if b.data.dtype.kind == "f"]
    if group.size == 1 or not buffers:
        return
    for bucket in _flat_groups(buffers, BUCKET_BYTES):
        flat = np.concatenate([buffers[i].reshape(-1) for i in bucket])
        group.allreduce_sum(flat, "average of the buffers")
        flat /= group.size
        offset = 0
        for i in bucket:
            buffers[i][...] = flat[offset : offset + buffers[i].size].reshape(buffers[i].shape)
            offset += buffers[i].size


class GradientAverager:
    """Average the gradients of ``parameters`` over the ranks, in a few fused collectives.

    ``averager()`` after ``backward()`` and before ``optimizer.step()`` replaces each ``p.grad`` by
    ``(1/N) Σ_r p.grad(r)``; a parameter without a gradient on some ranks counts as zero there, and one
    without a gradient on every rank keeps ``grad = None``. With equal batch sizes ``b`` on the N ranks and a
    loss that is a mean over the batch, this is the gradient of the mean loss over all ``N * b`` samples.

    Parameters
    ----------
    parameters : iterable of Tensor
        The model's parameters (in the same order on every rank).
    group : ProcessGroup, optional
        Default: :func:`chainrule.distributed.init`.
    bucket_bytes : int
        Most bytes fused into one buffer, hence one ``Iallreduce``.

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> model = nn.Linear(3, 1)
    >>> model(cr.ones(2, 3)).sum().backward()
    >>> GradientAverager(model.parameters())(0.25)  # one process: the gradients stay, the loss comes back
    [0.25]
    """

    def __init__(
        self, parameters: Iterable[Tensor], group: ProcessGroup | None = None, bucket_bytes: int = BUCKET_BYTES
    ) -> None:
        _check_bucket_bytes("GradientAverager", bucket_bytes)
        self.parameters = [p for p in parameters if p.requires_grad]
        self.group = init() if group is None else group
        self.buckets = _flat_groups([p.data for p in self.parameters], bucket_bytes)
        self.buffers = [
            np.empty(sum(self.parameters[i].data.size for i in bucket), self.parameters[bucket[0]].data.dtype)
            for bucket in self.buckets
        ]

    @property
    def collectives_per_step(self) -> int:
        """The ``Iallreduce`` calls one step makes: one per buffer, and one for the flags and losses."""
        return len(self.buckets) + 1

    @property
    def bytes_per_step(self) -> int:
        """Bytes each rank hands to the allreduce per step (the gradients, the flags and one loss)."""
        return sum(b.nbytes for b in self.buffers) + 8 * (len(self.parameters) + 1)

    def __call__(self, *values: float) -> list[float]:
        """Average the gradients; return ``values`` (e.g. the batch loss) averaged over the ranks too."""
        group, size = self.group, self.group.size
        if size == 1:
            return [float(v) for v in values]
        from mpi4py import MPI

        # Which parameters have a gradient here, and the values to average: one small float64 buffer.
        present = np.array([p.grad is not None for p in self.parameters] + [0.0] * len(values), np.float64)
        present[len(self.parameters) :] = values
        requests = []
        for bucket, flat in zip(self.buckets, self.buffers):  # pack each buffer and start its sum at once
            offset = 0
            for i in bucket:
                param = self.parameters[i]
                part = flat[offset : offset + param.data.size]
                if param.grad is None:
                    part[:] = 0
                else:
                    part[:] = param.grad.data.reshape(-1)
                offset += param.data.size
            requests.append(group.comm.Iallreduce(MPI.IN_PLACE, flat, op=MPI.SUM))
            group.bytes_sent += flat.nbytes
        requests.append(group.comm.Iallreduce(MPI.IN_PLACE, present, op=MPI.SUM))
        group.bytes_sent += present.nbytes
        group.wait(requests, "the gradient allreduce")

        scale = 1.0 / size
        for bucket, flat in zip(self.buckets, self.buffers):
            flat *= flat.dtype.type(scale)
            offset = 0
            for i in bucket:
                param = self.parameters[i]
                if present[i] > 0:
                    part = flat[offset : offset + param.data.size]
                    param.grad = Tensor(part.reshape(param.data.shape).copy())
                offset += param.data.size
        return [float(v) * scale for v in present[len(self.parameters) :]]


class DistributedDataParallel(Module):
    """``module`` trained data-parallel: rank 0's parameters, buffers and random state on every rank at the
    start, and every ``loss.backward()`` returning with gradients averaged over the ranks.

    The training loop is the one-process loop: ``zero_grad()``, ``backward()``, ``step()``. With N ranks each
    parameter carries a gradient hook. The reverse sweep calls it once the parameter's gradient of this
    backward is complete; it copies ``.grad + gradient`` into its slot of a flat buffer (a *bucket*, at most
    ``bucket_bytes``, parameters taken in reverse registration order, roughly the order backward reaches
    them), and when a bucket's last parameter arrives the hook starts that bucket's nonblocking
    ``Iallreduce`` at once, so the sum over the ranks travels while backward computes the gradients of the
    earlier layers. Buckets start in order (the same on every rank, as MPI requires). A callback the hooks
    queue with :func:`chainrule.autograd.queue_callback` runs when the sweep has finished: it starts the
    buckets not yet full (parameters that got no gradient in this backward send their ``.grad``, or zeros)
    with a small float64 buffer saying which parameters have a gradient anywhere, waits for all of them, and
    writes ``.grad = (1/N) Σ_r .grad(r)`` into every parameter, before ``backward()`` returns. So:

    - a parameter unused on some ranks counts as zero there; one without a gradient on every rank keeps
      ``grad = None``;
    - gradient accumulation: backward inside ``with ddp.no_sync():`` only accumulates this rank's ``.grad``;
      the next backward outside it averages the accumulated sums (each rank sends its whole ``.grad``);
    - a second backward (``retain_graph=True``) accumulates, and the average of ``ḡ + g_r`` is ``2 ḡ`` as on
      one process;
    - ``backward(create_graph=True)``: ``.grad`` holds the averaged value and stays differentiable through
      this rank's graph (value ``ḡ``, derivative this rank's); a second backward through this model averages
      again, so ``d(f(ḡ))/dθ`` comes out as the mean over the ranks of the local derivatives, the derivative
      of the averaged gradient;
    - :func:`chainrule.autograd.grad` sweeps are left alone (they accumulate nothing);
    - with one rank (no ``mpiexec``) no hook is registered: everything is the plain module.

    The forward pass is ``module``'s. BatchNorm layers normalise with each rank's own batch statistics (not
    synchronised); :meth:`average_buffers` makes their running statistics the mean over the ranks. The state
    dict is ``module``'s under the prefix ``module.``, as in PyTorch: save ``ddp.module.state_dict()`` to load
    the weights into the plain model.

    Parameters
    ----------
    module : Module
    group : ProcessGroup, optional
        Default: :func:`chainrule.distributed.init`.
    bucket_bytes : int
        Most bytes of gradients fused into one ``Iallreduce`` (default 25 MB).

    Attributes
    ----------
    overlap : dict
        About the last averaged backward: ``buckets`` (the ``Iallreduce`` calls on gradients),
        ``started_in_backward`` (how many of them a hook started, before the sweep ended) and
        ``pending_at_first_start`` (parameters still waiting for their gradient when the first one started).

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn, optim
    >>> model = DistributedDataParallel(nn.Linear(3, 1))  # under mpiexec: rank 0's weights everywhere
    >>> optimizer = optim.SGD(model.parameters(), lr=0.1)
    >>> loss = (model(cr.ones(4, 3)) ** 2).mean()  # each rank's own batch
    >>> optimizer.zero_grad()
    >>> loss.backward()  # under mpiexec: returns with the gradients averaged over the ranks
    >>> optimizer.step()
    >>> global_loss = model.group.mean(loss.item())  # the loss of the whole batch, for printing
    """

    def __init__(self, module: Module, group: ProcessGroup | None = None, bucket_bytes: int = BUCKET_BYTES) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise ArgumentError(f"DistributedDataParallel: expected a chainrule.nn.Module, got {type(module).__name__}")
        _check_bucket_bytes("DistributedDataParallel", bucket_bytes)
        self.module = module
        self.group = init() if group is None else group
        broadcast_module(module, self.group)
        self._bucket_bytes = bucket_bytes
        self._averager: GradientAverager | None = None  # the explicit path, made when first needed
        self._sync = True
        self._synced = True  # the gradients now in .grad are averaged (False after a backward under no_sync)
        self.overlap: dict[str, int] = {"buckets": 0, "started_in_backward": 0, "pending_at_first_start": 0}
        # Reverse registration order: the output layer first, as backward reaches it.
        self._params = [p for p in module.parameters() if p.requires_grad][::-1]
        self._bucketise(list(range(len(self._params))))
        self._arrival: list[int] = []  # the order the hooks fired in the first averaged backward
        self._rebuilt = False
        self._reset()
        self._handles = []
        if self.group.size > 1:  # the hook holds the wrapper weakly: a dropped wrapper leaves its parameters alone
            me = weakref.ref(self)
            hooks = [functools.partial(_parameter_hook, me, i) for i in range(len(self._params))]
            self._handles = [p.register_hook(hook) for p, hook in zip(self._params, hooks)]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    @property
    def averager(self) -> GradientAverager:
        """The explicit, blocking averager (:meth:`average_gradients` after a backward under :meth:`no_sync`)."""
        if self._averager is None:
            self._averager = GradientAverager(self.module.parameters(), self.group, self._bucket_bytes)
        return self._averager

    @property
    def collectives_per_step(self) -> int:
        """The ``Iallreduce`` calls one averaged backward makes: one per bucket and one for the flags."""
        return len(self._buckets) + 1

    @property
    def bytes_per_step(self) -> int:
        """Bytes each rank hands to the allreduce per averaged backward (the buckets and the flags)."""
        return sum(flat.nbytes for flat in self._flat) + 8 * len(self._params)

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes inside the block only accumulate this rank's gradients (no communication).

        Gradient accumulation over k micro-batches costs one averaging: ``backward()`` k - 1 times inside the
        block, then once outside it, which averages the sums accumulated in ``.grad``.
        """
        previous, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = previous

    def average_gradients(self, loss: float | None = None) -> float | None:
        """Kept for scripts written before ``backward()`` averaged: returns ``loss`` averaged over the ranks.

        The gradients are averaged only if the last backward did not (it ran under :meth:`no_sync`): a
        blocking average of every ``.grad``, fused as in the automatic path.
        """
        if self._synced:
            return None if loss is None else self.group.mean(loss, "the average of the loss")
        self._synced = True
        averaged = self.averager(*(() if loss is None else (loss,)))
        return averaged[0] if averaged else None

    def average_buffers(self) -> None:
        """Make BatchNorm's running statistics (every floating buffer) their mean over the ranks."""
        average_buffers(self.module, self.group)

    # -- the automatic path: hooks during backward, a callback at its end ---------------------------------------
    def _bucketise(self, order: list[int]) -> None:
        """Cut the parameters, taken in ``order`` (indices into ``_params``), into buckets and their buffers."""
        cuts = _flat_groups([self._params[i].data for i in order], self._bucket_bytes)
        self._buckets = [[order[k] for k in bucket] for bucket in cuts]
        self._flat = [
            np.empty(sum(self._params[i].data.size for i in bucket), self._params[bucket[0]].data.dtype)
            for bucket in self._buckets
        ]
        self._slot: list[tuple[int, int, int]] = [(0, 0, 0)] * len(self._params)  # bucket, start, stop
        for b, bucket in enumerate(self._buckets):
            offset = 0
            for i in bucket:
                self._slot[i] = (b, offset, offset + self._params[i].data.size)
                offset += self._params[i].data.size

    def _rebuild(self, present: np.ndarray) -> None:
        """After the first averaged backward, order the buckets as rank 0's gradients arrived (PyTorch's bucket
        rebuild): parameters unused on every rank last, where they hold up no bucket started during backward.
        One broadcast of ``len(parameters)`` integers, once, so that every rank cuts the same buckets."""
        self._rebuilt = True
        seen = set(self._arrival)
        order = np.array(self._arrival + [i for i in range(len(self._params)) if i not in seen], np.int64)
        self.group.broadcast(order, "the order of the gradient buckets")
        used = [int(i) for i in order if present[i] > 0]
        self._bucketise(used + [int(i) for i in order if present[i] == 0])

    def _reset(self) -> None:
        self._active = False  # a backward is filling the buckets and has queued _finish
        self._sweep: object = None  # that backward (its list of callbacks in chainrule.autograd)
        self._present = np.zeros(len(self._params), np.float64)  # which parameters have a gradient here
        self._ready = [0] * len(self._buckets)
        self._next = 0  # the next bucket to start (buckets start in order on every rank)
        self._requests: list[Any] = []

    def _gradient_ready(self, index: int, grad: Tensor) -> None:
        """Hook of parameter ``index``: its gradient of this backward is complete."""
        if not autograd.in_backward():  # a grad() sweep: nothing is accumulated, nothing to average
            return
        if not self._sync:
            self._synced = False
            return
        sweep = autograd._current_sweep()
        if self._active and self._sweep is not sweep:  # an earlier backward raised before its end: start afresh,
            # once the buckets it started are summed (the buffers are MPI's until then)
            self.group.wait(self._requests, "the gradient allreduce of a backward that raised")
            self._reset()
        if not self._active:
            self._active, self._sweep = True, sweep
            self.overlap = {"buckets": 0, "started_in_backward": 0, "pending_at_first_start": 0}
            autograd.queue_callback(self._finish)
        param = self._params[index]
        b, start, stop = self._slot[index]
        part = self._flat[b][start:stop]
        part[:] = np.asarray(grad.data).reshape(-1)
        if param.grad is not None:  # accumulated by earlier backwards: the average is of the whole .grad
            part += param.grad.data.reshape(-1)
        self._present[index] = 1.0
        self._ready[b] += 1
        if not self._rebuilt:
            self._arrival.append(index)
        while self._next < len(self._buckets) and self._ready[self._next] == len(self._buckets[self._next]):
            if self._next == 0:
                self.overlap["pending_at_first_start"] = len(self._params) - int(self._present.sum())
            self._start(self._next)
            self.overlap["started_in_backward"] += 1

    def _start(self, b: int) -> None:
        from mpi4py import MPI

        self._requests.append(self.group.comm.Iallreduce(MPI.IN_PLACE, self._flat[b], op=MPI.SUM))
        self.group.bytes_sent += self._flat[b].nbytes
        self.overlap["buckets"] += 1
        self._next += 1

    def _finish(self) -> None:
        """After the sweep: start the buckets left, wait for every sum, write the averages into ``.grad``."""
        from mpi4py import MPI

        try:
            for b in range(self._next, len(self._buckets)):  # buckets with a parameter that got no gradient
                for i in self._buckets[b]:
                    if not self._present[i]:
                        _, start, stop = self._slot[i]
                        grad = self._params[i].grad
                        self._flat[b][start:stop] = 0 if grad is None else grad.data.reshape(-1)
                        self._present[i] = grad is not None
                self._start(b)
            present = self._present
            self._requests.append(self.group.comm.Iallreduce(MPI.IN_PLACE, present, op=MPI.SUM))
            self.group.bytes_sent += present.nbytes
            self.group.wait(self._requests, "the gradient allreduce")
            scale = 1.0 / self.group.size
            for i, param in enumerate(self._params):
                if present[i] == 0:
                    continue
                b, start, stop = self._slot[i]
                flat = self._flat[b]
                mean = flat[start:stop].reshape(param.data.shape) * flat.dtype.type(scale)
                held = param.grad
                if held is not None and held.requires_grad:  # create_graph: the average, differentiable locally
                    with autograd.enable_grad():
                        param.grad = held + Tensor(mean - held.data)
                else:
                    param.grad = Tensor(mean)
            self._synced = True
            if not self._rebuilt:
                self._rebuild(present)
        finally:
            self._reset()


def _parameter_hook(owner: weakref.ref[DistributedDataParallel], index: int, grad: Tensor) -> None:
    ddp = owner()
    if ddp is not None:
        ddp._gradient_ready(index, grad)
