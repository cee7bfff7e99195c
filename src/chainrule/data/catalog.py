"""The data set registry: every named data set, how to load it, and which ones this machine has."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass

from chainrule.data import images, toy
from chainrule.data.splits import Splits

__all__ = ["DATASETS", "load", "describe", "available", "DatasetStatus"]

#: Name -> the function that returns its :class:`Splits`.
DATASETS: dict[str, Callable[..., Splits]] = {
    "xor": toy.xor,
    "moons": toy.moons,
    "circles": toy.circles,
    "spirals": toy.spirals,
    "blobs": toy.blobs,
    "linear_regression": toy.linear_regression,
    "digits": images.digits,
    "mnist": images.mnist,
    "fashion_mnist": images.fashion_mnist,
}

_GENERATED = ("xor", "moons", "circles", "spirals", "blobs", "linear_regression")


def load(name: str, **kwargs: object) -> Splits:
    """Load the data set called ``name``, passing ``kwargs`` to its function in :data:`DATASETS`.

    Parameters
    ----------
    name : str
        One of ``DATASETS``: xor, moons, circles, spirals, blobs, linear_regression, digits, mnist,
        fashion_mnist.
    **kwargs
        Options of that data set, e.g. ``n_samples`` and ``seed`` for the generated ones, ``root`` and
        ``limit`` for mnist.

    Returns
    -------
    Splits
        ``(train, test, info)``.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the choices).
    TypeError
        For an option the data set does not take (the message lists those it does).

    Examples
    --------
    >>> train, test, info = load("moons", n_samples=200, noise=0.2)
    >>> len(train), info.input_shape
    (160, (2,))
    """
    if name not in DATASETS:
        raise ValueError(f"load: unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    function = DATASETS[name]
    signature = inspect.signature(function)
    unknown = sorted(set(kwargs) - set(signature.parameters))
    if unknown:
        raise TypeError(
            f"load: data set {name!r} does not take {', '.join(unknown)}; "
            f"its options are {', '.join(signature.parameters)}"
        )
    return function(**kwargs)


@dataclass
class DatasetStatus:
    """Whether one data set can be loaded here, and from where.

    Attributes
    ----------
    name : str
        The registry name.
    available : bool
        Whether ``load(name)`` works without a download.
    where : str
        "generated", "bundled with scikit-learn", the directory holding the files, or what to do.

    Examples
    --------
    >>> print(DatasetStatus("xor", True, "generated"))
    xor                available  generated
    """

    name: str
    available: bool
    where: str

    def __str__(self) -> str:
        return f"{self.name:<18} {'available' if self.available else 'missing':<10} {self.where}"


def describe(root: str | os.PathLike[str] | None = None) -> list[DatasetStatus]:
    """One :class:`DatasetStatus` per registered data set, in registry order.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Searched first for the MNIST-style files, as by :func:`~chainrule.data.mnist`.

    Examples
    --------
    >>> [str(status) for status in describe()][0]
    'xor                available  generated'
    """
    statuses = []
    for name in DATASETS:
        if name in _GENERATED:
            statuses.append(DatasetStatus(name, True, "generated"))
        elif name == "digits":
            if images.sklearn_available():
                statuses.append(DatasetStatus(name, True, "bundled with scikit-learn"))
            else:
                statuses.append(DatasetStatus(name, False, "not found: pip install 'chainrule[datasets]'"))
        else:
            directory = images.locate(name, root)
            if directory is not None:
                statuses.append(DatasetStatus(name, True, str(directory)))
            else:
                where = (
                    f"not found: put the files in {images.cache_dir(name)}/, in <dir>/{name}/ with "
                    f"CHAINRULE_DATA=<dir> or --data-dir <dir>, or run `chainrule train --data {name}` online"
                )
                statuses.append(DatasetStatus(name, False, where))
    return statuses


def available(root: str | os.PathLike[str] | None = None) -> list[str]:
    """The names of the data sets that load here without a download.

    Examples
    --------
    >>> "xor" in available()
    True
    """
    return [status.name for status in describe(root) if status.available]
