"""Data parallelism: the same model on every rank, started from rank 0's state, stepped with averaged gradients.

Gradients are averaged with Horovod's *tensor fusion*: the gradients of consecutive parameters are copied
into flat buffers of at most ``bucket_bytes`` each (one per dtype, float32 for a float32 model), every buffer
is summed over the ranks by one ``Iallreduce`` (all of them in flight together), then divided by the number of
ranks and copied back. A 784-256-128-10 MLP (0.9 MB of gradients) costs two collectives per step: one buffer,
and a small float64 one holding which parameters had a gradient and the losses to average.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from chainrule import rng
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
        if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int) or bucket_bytes < 1:
            raise ArgumentError(f"GradientAverager: bucket_bytes must be a positive integer, got {bucket_bytes!r}")
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
    start, and :meth:`average_gradients` to call between ``backward()`` and ``optimizer.step()``.

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

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn, optim
    >>> model = DistributedDataParallel(nn.Linear(3, 1))  # under mpiexec: rank 0's weights everywhere
    >>> optimizer = optim.SGD(model.parameters(), lr=0.1)
    >>> loss = (model(cr.ones(4, 3)) ** 2).mean()
    >>> optimizer.zero_grad(); loss.backward()
    >>> global_loss = model.average_gradients(loss.item())  # one Iallreduce per bucket; the mean loss back
    >>> optimizer.step()
    """

    def __init__(self, module: Module, group: ProcessGroup | None = None, bucket_bytes: int = BUCKET_BYTES) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise ArgumentError(f"DistributedDataParallel: expected a chainrule.nn.Module, got {type(module).__name__}")
        self.module = module
        self.group = init() if group is None else group
        broadcast_module(module, self.group)
        self.averager = GradientAverager(module.parameters(), self.group, bucket_bytes)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def average_gradients(self, loss: float | None = None) -> float | None:
        """Average every parameter's gradient over the ranks; return ``loss`` averaged over the ranks too."""
        averaged = self.averager(*(() if loss is None else (loss,)))
        return averaged[0] if averaged else None

    def average_buffers(self) -> None:
        """Make BatchNorm's running statistics (every floating buffer) their mean over the ranks."""
        average_buffers(self.module, self.group)
