"""Datasets: indexable collections of samples, and the ways to cut one into parts.

A :class:`Dataset` answers ``len(ds)`` and ``ds[i]``. Datasets that can gather many samples at once
(:class:`TensorDataset`, :class:`Subset` of one) also offer ``get_batch(indices)``, which the
:class:`~chainrule.data.DataLoader` uses to build a batch with one NumPy gather per array instead of a
Python loop over samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule import rng
from chainrule.errors import ShapeError

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "gather", "as_generator"]


class Dataset:
    """Base class of data sets: subclasses define ``__len__`` and ``__getitem__``.

    A subclass may also define ``get_batch(indices) -> tuple[np.ndarray, ...]`` returning every array
    gathered at ``indices`` (shape ``(len(indices), ...)`` each); the loader then skips stacking samples.

    Examples
    --------
    >>> import numpy as np
    >>> class Squares(Dataset):
    ...     def __len__(self):
    ...         return 4
    ...     def __getitem__(self, i):
    ...         return (np.float32(i), np.float32(i * i))
    >>> Squares()[3]
    (np.float32(3.0), np.float32(9.0))
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")


def _as_array(value: Any) -> np.ndarray:
    """A NumPy array from an array, a ``chainrule.Tensor`` (its ``.data``) or anything array-like."""
    data = getattr(value, "data", None)
    if isinstance(data, np.ndarray):
        return data
    return np.asarray(value)


class TensorDataset(Dataset):
    """Samples taken along the first dimension of one or more arrays.

    Parameters
    ----------
    *arrays : numpy.ndarray or Tensor
        Each of shape ``(N, ...)`` with the same ``N``; tensors contribute their ``.data`` (not copied).

    Attributes
    ----------
    arrays : tuple of numpy.ndarray
        The arrays, in the order given.

    Raises
    ------
    ShapeError
        When the arrays do not all have the same first dimension, or one is a scalar.

    Examples
    --------
    >>> import numpy as np
    >>> ds = TensorDataset(np.zeros((5, 3), np.float32), np.arange(5))
    >>> len(ds), ds[2][1]
    (5, np.int64(2))
    >>> [a.shape for a in ds.get_batch(np.array([0, 4]))]
    [(2, 3), (2,)]
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ShapeError("TensorDataset: needs at least one array")
        converted = tuple(_as_array(a) for a in arrays)
        for position, array in enumerate(converted):
            if array.ndim == 0:
                raise ShapeError(f"TensorDataset: array {position} is a scalar; every array needs a first dimension")
        first = converted[0]
        for position, array in enumerate(converted[1:], start=1):
            if array.shape[0] != first.shape[0]:
                raise ShapeError(
                    f"TensorDataset: all arrays must have the same first dimension (the number of samples); "
                    f"array 0 has shape {first.shape} but array {position} has shape {array.shape}"
                )
        self.arrays: tuple[np.ndarray, ...] = converted

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return tuple(array[index] for array in self.arrays)

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """Every array gathered at ``indices``: a tuple of arrays of shape ``(len(indices), ...)``."""
        return tuple(array[indices] for array in self.arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(str(a.shape) for a in self.arrays)
        return f"TensorDataset({shapes})"


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    Parameters
    ----------
    dataset : Dataset
        The full data set.
    indices : sequence of int
        Positions in ``dataset``; stored as an int64 array.

    Examples
    --------
    >>> import numpy as np
    >>> part = Subset(TensorDataset(np.arange(10) * 10), [7, 2])
    >>> len(part), part[0]
    (2, (np.int64(70),))
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int] | np.ndarray) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """The wrapped data set's samples at ``self.indices[indices]``, gathered in one go when it can."""
        return gather(self.dataset, self.indices[indices])

    def __repr__(self) -> str:
        return f"Subset({self.dataset!r}, {len(self)} samples)"


def gather(dataset: Dataset, indices: np.ndarray) -> tuple[np.ndarray, ...]:
    """The samples of ``dataset`` at ``indices`` as a tuple of arrays of shape ``(len(indices), ...)``.

    Uses ``dataset.get_batch`` when it exists; otherwise stacks ``dataset[i]`` sample by sample.

    Examples
    --------
    >>> import numpy as np
    >>> [a.tolist() for a in gather(TensorDataset(np.arange(5)), np.array([4, 0]))]
    [[4, 0]]
    """
    get_batch = getattr(dataset, "get_batch", None)
    if get_batch is not None:
        return tuple(get_batch(indices))
    samples = [dataset[int(i)] for i in indices]
    if not samples:
        raise ValueError(f"gather: no indices given for {type(dataset).__name__}")
    if not isinstance(samples[0], (tuple, list)):
        samples = [(sample,) for sample in samples]
    return tuple(np.stack([_as_array(field) for field in fields]) for fields in zip(*samples))


def as_generator(seed: int | np.random.Generator | None, where: str) -> np.random.Generator:
    """The generator a ``seed`` argument asks for: its own for an int, itself, or the global one for None.

    Examples
    --------
    >>> int(as_generator(0, "example").integers(100)) == int(as_generator(0, "example").integers(100))
    True
    """
    if seed is None:
        return rng.default_generator()
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{where}: seed must be a non-negative int, a numpy Generator or None, got {seed!r}")
    return np.random.default_rng(int(seed))


def _split_lengths(total: int, lengths: Sequence[int | float]) -> list[int]:
    """Integer part sizes from ``lengths``: counts summing to ``total`` or fractions summing to 1."""
    if len(lengths) == 0:
        raise ValueError("random_split: lengths is empty; give counts or fractions, one per part")
    values = list(lengths)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        if any(v < 0 for v in values):
            raise ValueError(f"random_split: lengths must be non-negative, got {values}")
        if sum(values) != total:
            raise ValueError(
                f"random_split: the lengths {values} sum to {sum(values)} but the data set has {total} samples"
            )
        return [int(v) for v in values]
    if not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"random_split: lengths must be ints or floats, got {values!r}")
    if any(not 0 <= v <= 1 for v in values):
        raise ValueError(f"random_split: fractions must lie in [0, 1], got {values}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
        raise ValueError(f"random_split: the fractions {values} sum to {sum(values):g}, not 1")
    sizes = [math.floor(total * v) for v in values]
    # As PyTorch does: the samples lost to flooring go one each to the parts in order.
    for i in range(total - sum(sizes)):
        sizes[i % len(sizes)] += 1
    return sizes


def random_split(
    dataset: Dataset,
    lengths: Sequence[int | float],
    seed: int | np.random.Generator | None = None,
) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random parts.

    Parameters
    ----------
    dataset : Dataset
        The data set of ``N`` samples.
    lengths : sequence of int or float
        Sizes of the parts: ints summing to ``N``, or fractions summing to 1 (each part gets
        ``floor(N * fraction)`` samples and the remainder goes one by one to the parts in order).
    seed : int, numpy.random.Generator or None
        Where the permutation comes from; None draws from :func:`chainrule.rng.default_generator`.

    Returns
    -------
    list of Subset
        One per entry of ``lengths``.

    Raises
    ------
    ValueError
        When the counts do not sum to ``N`` or the fractions do not sum to 1.

    Examples
    --------
    >>> import numpy as np
    >>> train, val = random_split(TensorDataset(np.arange(10)), [0.8, 0.2], seed=0)
    >>> len(train), len(val)
    (8, 2)
    >>> sorted(np.concatenate([train.indices, val.indices]).tolist()) == list(range(10))
    True
    """
    total = len(dataset)
    sizes = _split_lengths(total, lengths)
    permutation = as_generator(seed, "random_split").permutation(total)
    parts = []
    start = 0
    for size in sizes:
        parts.append(Subset(dataset, permutation[start : start + size]))
        start += size
    return parts
