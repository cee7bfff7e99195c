"""DistributedSampler: each rank's share of every epoch's order, for ``DataLoader(..., sampler=...)``."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.errors import ArgumentError

__all__ = ["DistributedSampler"]


class DistributedSampler:
    """The samples rank ``rank`` of ``num_replicas`` trains on: every ``num_replicas``-th position of the epoch's
    order, starting at ``rank``.

    The order itself is the :class:`~chainrule.data.DataLoader`'s: a permutation drawn each epoch from the
    same generator as on one process (the global one that ``seed=``/:func:`chainrule.manual_seed` set, or the
    loader's own). Every rank draws the same permutation, because data-parallel training starts every rank
    from rank 0's generator state (:func:`chainrule.distributed.broadcast_module` with ``rng=True``), and takes
    its own positions of it; so no ``set_epoch`` is needed, and the ranks' shards of one epoch never overlap.

    Taking positions ``rank, rank + N, ...`` makes batch ``k`` of all N ranks together (each of ``b``
    samples) exactly batch ``k`` of one process with batch size ``N * b``: the first ``N * b`` positions of
    the order. With gradients averaged over the ranks, N processes then take the same steps as one.

    Parameters
    ----------
    dataset : sized
        The data set (only its length is used).
    num_replicas, rank : int, optional
        Default: the size and rank of :func:`chainrule.distributed.init`'s group.
    drop_last : bool
        Leave out the last ``len(dataset) % num_replicas`` positions of each order, so no sample is seen twice.
    pad : bool
        Otherwise (the default) repeat the first positions to make the order a multiple of ``num_replicas``, so
        every rank gets the same number of samples, hence the same number and sizes of batches (as in PyTorch).
        ``pad=False`` gives uneven shards: for evaluation, where no collective runs per batch.

    Examples
    --------
    >>> sampler = DistributedSampler(range(10), num_replicas=3, rank=1)
    >>> sampler.indices(np.arange(10)).tolist(), len(sampler)
    ([1, 4, 7, 0], 4)
    >>> DistributedSampler(range(10), num_replicas=3, rank=1, pad=False).indices(np.arange(10)).tolist()
    [1, 4, 7]
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        pad: bool = True,
    ) -> None:
        if num_replicas is None or rank is None:
            from chainrule.distributed.group import init

            group = init()
            num_replicas = group.size if num_replicas is None else num_replicas
            rank = group.rank if rank is None else rank
        if isinstance(num_replicas, bool) or not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
            raise ArgumentError(f"DistributedSampler: num_replicas must be a positive integer, got {num_replicas!r}")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ArgumentError(f"DistributedSampler: rank must be an integer in [0, {num_replicas}), got {rank!r}")
        self.length = len(dataset)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.drop_last, self.pad = bool(drop_last), bool(pad)

    def _total(self) -> int:
        """Positions of the order that are shared out (a multiple of ``num_replicas`` unless ``pad=False``)."""
        full, rest = divmod(self.length, self.num_replicas)
        if self.drop_last:
            return full * self.num_replicas
        return self.length + (self.num_replicas - rest) % self.num_replicas if self.pad else self.length

    def __len__(self) -> int:
        """Samples this rank gets per epoch."""
        return len(range(self.rank, self._total(), self.num_replicas))

    def indices(self, order: np.ndarray) -> np.ndarray:
        """This rank's positions of ``order`` (the epoch's order of all ``len(dataset)`` sample indices)."""
        order = np.asarray(order)
        if len(order) != self.length:
            raise ArgumentError(
                f"DistributedSampler: the order has {len(order)} indices, the data set {self.length} samples"
            )
        total = self._total()
        order = np.resize(order, total) if total > len(order) else order[:total]  # resize repeats from the start
        return order[self.rank :: self.num_replicas]

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(<{self.length} samples>, num_replicas={self.num_replicas}, rank={self.rank}, "
            f"drop_last={self.drop_last}, pad={self.pad})"
        )
