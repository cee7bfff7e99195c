"""DataLoader: a data set cut into mini-batches of tensors, optionally in a new random order each epoch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from chainrule import rng
from chainrule.data.dataset import Dataset, TensorDataset, as_generator, gather
from chainrule.errors import DataError
from chainrule.tensor import Tensor, _wrap

__all__ = ["DataLoader"]


def _batch_array(array: np.ndarray) -> np.ndarray:
    """The array a batch tensor holds: floats and bools as they are, integers as int64; read-only."""
    if array.dtype.kind in "iu" and array.dtype != np.int64:
        array = array.astype(np.int64)
    elif array.dtype.kind not in "fbiu":
        raise DataError(f"DataLoader: cannot batch an array of dtype {array.dtype}; use numbers or booleans")
    if array.flags.writeable:
        # A slice of the data set is a view: a read-only view keeps user code from editing the data set.
        array = array.view()
        array.flags.writeable = False
    return array


class DataLoader:
    """Iterate over a data set in mini-batches of :class:`~chainrule.Tensor`.

    Parameters
    ----------
    dataset : Dataset
        Any object with ``__len__`` and ``__getitem__``; a ``get_batch(indices)`` method, as on
        :class:`TensorDataset`, lets a batch be gathered with one NumPy index per array.
    batch_size : int
        Samples per batch (the last batch may be smaller unless ``drop_last``).
    shuffle : bool
        Visit the samples in a new random order every epoch.
    drop_last : bool
        Leave out the last batch when it is smaller than ``batch_size``.
    sampler : DistributedSampler, optional
        Takes this process's share of each epoch's order (see :class:`chainrule.distributed.DistributedSampler`):
        any object with ``indices(order) -> indices`` and ``len()`` (the samples it keeps per epoch).
    seed : int, numpy.random.Generator or None
        Source of the shuffling order. An int or a Generator gives the loader its own generator, which
        carries on from epoch to epoch. None uses :func:`chainrule.rng.default_generator`, fetched anew at
        the start of every epoch, so :func:`chainrule.manual_seed` (even after the loader is built)
        decides the order.

    Attributes
    ----------
    generator : numpy.random.Generator
        The generator the next epoch's order comes from (the global one when ``seed`` is None).

    Notes
    -----
    Each iteration yields a tuple with one tensor per array of the data set, even for one array.
    Floating arrays keep their dtype, integer arrays become int64 and booleans stay booleans. Batch
    tensors hold read-only arrays: without shuffling they are views into the data set itself.

    Shape: for a data set of arrays ``(N, *s_k)``, batch ``k`` holds tensors ``(B, *s_k)``.

    Examples
    --------
    >>> import numpy as np
    >>> ds = TensorDataset(np.ones((10, 3), np.float32), np.arange(10))
    >>> loader = DataLoader(ds, batch_size=4, shuffle=True, seed=0)
    >>> len(loader)
    3
    >>> [(x.shape, y.dtype) for x, y in loader]
    [((4, 3), dtype('int64')), ((4, 3), dtype('int64')), ((2, 3), dtype('int64'))]
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 32,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | np.random.Generator | None = None,
        sampler: Any = None,
    ) -> None:
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader: dataset must define __len__ and __getitem__, got {type(dataset).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        for name, flag in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"DataLoader: {name} must be True or False, got {flag!r}")
        if len(dataset) == 0:
            raise DataError(f"DataLoader: the data set ({type(dataset).__name__}) is empty")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.sampler = sampler
        self._own_generator = None if seed is None else as_generator(seed, "DataLoader")

    @property
    def generator(self) -> np.random.Generator:
        """The generator of the next epoch's order: the loader's own, or the current global one."""
        if self._own_generator is not None:
            return self._own_generator
        return rng.default_generator()

    def __len__(self) -> int:
        samples = len(self.dataset) if self.sampler is None else len(self.sampler)
        full, rest = divmod(samples, self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        # The order is drawn here, when the epoch starts, not at the first next().
        n = len(self.dataset)
        order = self.generator.permutation(n) if self.shuffle else None
        if self.sampler is not None:  # this process's share of the epoch's order
            order = self.sampler.indices(np.arange(n) if order is None else order)
            n = len(order)
        return self._batches(n, order)

    def _batches(self, n: int, order: np.ndarray | None) -> Iterator[tuple[Tensor, ...]]:
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            stop = min(start + self.batch_size, n)
            if order is None and isinstance(self.dataset, TensorDataset):
                arrays = tuple(array[start:stop] for array in self.dataset.arrays)
            else:
                indices = order[start:stop] if order is not None else np.arange(start, stop)
                arrays = gather(self.dataset, indices)
            yield tuple(_wrap(_batch_array(np.asarray(array))) for array in arrays)

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}, seed={self.seed!r})"
        )
