"""Data: data sets, mini-batch loading, transforms, the IDX format, and ready-made data sets.

A data set is anything with ``len`` and indexing; :class:`TensorDataset` wraps arrays whose first
dimension counts samples. :class:`DataLoader` cuts one into batches of tensors. :func:`load` returns
the named data sets of :data:`DATASETS` as ``(train, test, info)``; :func:`describe` says which ones this
machine has.

Examples
--------
>>> import numpy as np
>>> from chainrule.data import DataLoader, TensorDataset, load
>>> train, test, info = load("spirals", n_samples=300, n_classes=3, seed=0)
>>> info.input_shape, info.num_classes
((2,), 3)
>>> loader = DataLoader(train, batch_size=64, shuffle=True, seed=0)
>>> inputs, labels = next(iter(loader))
>>> inputs.shape, labels.dtype
((64, 2), dtype('int64'))
>>> len(loader)
4
"""

from __future__ import annotations

from chainrule.data.catalog import DATASETS, DatasetStatus, available, describe, load
from chainrule.data.dataset import Dataset, Subset, TensorDataset, random_split
from chainrule.data.idx import read_idx, sha256_of_idx, write_idx
from chainrule.data.images import digits, fashion_mnist, locate, mnist
from chainrule.data.loader import DataLoader
from chainrule.data.preprocess import prepare_image, prepare_samples, read_array, read_image, save_image
from chainrule.data.splits import DatasetInfo, Splits
from chainrule.data.toy import blobs, circles, gaussian, linear_regression, moons, spirals, xor
from chainrule.data.transforms import Standardize, flatten, one_hot, scale_to_unit

__all__ = [
    "Dataset",
    "TensorDataset",
    "Subset",
    "random_split",
    "DataLoader",
    "scale_to_unit",
    "one_hot",
    "flatten",
    "Standardize",
    "read_idx",
    "write_idx",
    "sha256_of_idx",
    "xor",
    "moons",
    "circles",
    "spirals",
    "blobs",
    "gaussian",
    "linear_regression",
    "digits",
    "mnist",
    "fashion_mnist",
    "locate",
    "DatasetInfo",
    "Splits",
    "DATASETS",
    "load",
    "describe",
    "available",
    "DatasetStatus",
    "prepare_image",
    "prepare_samples",
    "read_image",
    "read_array",
    "save_image",
]
