"""What a data set loader returns: train and test :class:`TensorDataset` plus a :class:`DatasetInfo`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from chainrule.data.dataset import TensorDataset

__all__ = ["DatasetInfo", "Splits", "split_arrays"]


@dataclass
class DatasetInfo:
    """What a data set holds, for building a model and reporting results.

    Attributes
    ----------
    name : str
        The registry name, e.g. ``"mnist"``.
    task : {"classification", "regression"}
        What the targets are.
    input_shape : tuple of int
        The shape of one input sample, e.g. ``(1, 28, 28)``.
    num_classes : int or None
        The number of classes; None for regression.
    class_names : list of str
        One name per class (empty for regression).
    source : str
        Where the data came from: "generated", "scikit-learn", or a directory.
    metadata : dict
        Anything else: generator parameters, the true weights of a regression problem, file hashes.

    Examples
    --------
    >>> DatasetInfo("xor", "classification", (2,), 2, ["0", "1"], "generated").num_classes
    2
    """

    name: str
    task: Literal["classification", "regression"]
    input_shape: tuple[int, ...]
    num_classes: int | None
    class_names: list[str] = field(default_factory=list)
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


class Splits(NamedTuple):
    """A train/test split and its description; unpacks as ``train, test, info = load(name)``.

    Examples
    --------
    >>> from chainrule.data import load
    >>> train, test, info = load("xor", n_samples=100)
    >>> len(train), len(test), info.task
    (80, 20, 'classification')
    """

    train: TensorDataset
    test: TensorDataset
    info: DatasetInfo


def split_arrays(
    arrays: tuple[np.ndarray, ...], test_fraction: float, seed: int | np.random.Generator, where: str
) -> tuple[TensorDataset, TensorDataset]:
    """Shuffle the samples of ``arrays`` with ``seed`` and cut off ``floor(N * test_fraction)`` for testing.

    Examples
    --------
    >>> train, test = split_arrays((np.arange(10),), 0.3, seed=0, where="example")
    >>> len(train), len(test)
    (7, 3)
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 <= test_fraction < 1:
        raise ValueError(f"{where}: test_fraction must be a number in [0, 1), got {test_fraction!r}")
    n = arrays[0].shape[0]
    n_test = math.floor(n * test_fraction)
    order = np.random.default_rng(seed).permutation(n)
    train_idx, test_idx = order[n_test:], order[:n_test]
    return (
        TensorDataset(*(a[train_idx] for a in arrays)),
        TensorDataset(*(a[test_idx] for a in arrays)),
    )
