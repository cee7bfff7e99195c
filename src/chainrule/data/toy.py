"""Small synthetic data sets, generated with NumPy: quick to train on and easy to plot.

Every generator takes ``n_samples``, ``noise``, ``test_fraction`` and ``seed`` and returns
:class:`~chainrule.data.Splits`. The same seed gives the same data, bit for bit. Classification sets have
inputs of shape ``(N, 2)`` (float32) and labels of shape ``(N,)`` (int64).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule.data.splits import DatasetInfo, Splits, split_arrays

__all__ = ["xor", "moons", "circles", "spirals", "blobs", "gaussian", "linear_regression"]


def _check(where: str, n_samples: int, noise: float, minimum: int = 2) -> None:
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < minimum:
        raise ValueError(f"{where}: n_samples must be an integer >= {minimum}, got {n_samples!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
        raise ValueError(f"{where}: noise must be a non-negative number, got {noise!r}")


def _classification(
    name: str,
    inputs: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    test_fraction: float,
    seed: int,
    metadata: dict[str, Any],
) -> Splits:
    inputs = inputs.astype(np.float32)  # (N, F)
    labels = labels.astype(np.int64)  # (N,)
    train, test = split_arrays((inputs, labels), test_fraction, seed, name)
    info = DatasetInfo(
        name=name,
        task="classification",
        input_shape=tuple(inputs.shape[1:]),
        num_classes=num_classes,
        class_names=[str(c) for c in range(num_classes)],
        source="generated",
        metadata={**metadata, "seed": seed, "test_fraction": test_fraction},
    )
    return Splits(train, test, info)


def _two_arcs(
    n_samples: int,
    noise: float,
    seed: int,
    end: float,
    inner: Callable[[np.ndarray], np.ndarray],
    endpoint: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Moons and circles: ``N // 2`` points on the unit arc ``(cos t, sin t)`` (label 0), the rest at
    ``inner(t)`` (label 1), ``t`` evenly spaced from 0 to ``end`` on each arc; then Gaussian noise on all.

    Returns points ``(N, 2)`` float64 and labels ``(N,)`` float64, converted by :func:`_classification`.
    """
    generator = np.random.default_rng(seed)
    n_outer = n_samples // 2
    outer = np.linspace(0, end, n_outer, endpoint=endpoint)
    inner_angle = np.linspace(0, end, n_samples - n_outer, endpoint=endpoint)
    points = np.concatenate([np.stack([np.cos(outer), np.sin(outer)], axis=1), inner(inner_angle)])
    labels = np.concatenate([np.zeros(n_outer), np.ones(n_samples - n_outer)])
    points += noise * generator.standard_normal(points.shape)
    return points, labels


def xor(n_samples: int = 400, noise: float = 0.1, test_fraction: float = 0.2, seed: int = 0) -> Splits:
    """Points in the square ``[-1, 1]²``, labelled 1 where exactly one coordinate is positive.

    Parameters
    ----------
    n_samples : int
        Total samples, train and test together.
    noise : float
        Standard deviation of Gaussian noise added to the points after labelling.
    test_fraction : float
        Share of samples held out for testing (``floor(N * test_fraction)``).
    seed : int
        Seeds both the points and the split.

    Returns
    -------
    Splits
        Inputs ``(N, 2)`` float32, labels ``(N,)`` int64 in {0, 1}.

    Examples
    --------
    >>> train, test, info = xor(n_samples=100)
    >>> train.arrays[0].shape, test.arrays[1].dtype, info.num_classes
    ((80, 2), dtype('int64'), 2)
    """
    _check("xor", n_samples, noise)
    generator = np.random.default_rng(seed)
    points = generator.uniform(-1.0, 1.0, size=(n_samples, 2))
    labels = (points[:, 0] > 0) != (points[:, 1] > 0)
    points += noise * generator.standard_normal(points.shape)
    return _classification("xor", points, labels, 2, test_fraction, seed, {"n_samples": n_samples, "noise": noise})


def moons(n_samples: int = 400, noise: float = 0.1, test_fraction: float = 0.2, seed: int = 0) -> Splits:
    """Two interleaving half circles, as in scikit-learn's ``make_moons``.

    Parameters
    ----------
    n_samples : int
        Total samples; the outer moon (label 0) gets ``N // 2``.
    noise : float
        Standard deviation of Gaussian noise added to the points.
    test_fraction : float
        Share of samples held out for testing.
    seed : int
        Seeds both the points and the split.

    Returns
    -------
    Splits
        Inputs ``(N, 2)`` float32, labels ``(N,)`` int64 in {0, 1}.

    Examples
    --------
    >>> moons(n_samples=50).train.arrays[0].shape
    (40, 2)
    """
    _check("moons", n_samples, noise)
    points, labels = _two_arcs(
        n_samples, noise, seed, np.pi, lambda t: np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    )
    return _classification("moons", points, labels, 2, test_fraction, seed, {"n_samples": n_samples, "noise": noise})


def circles(
    n_samples: int = 400, noise: float = 0.05, test_fraction: float = 0.2, seed: int = 0, factor: float = 0.5
) -> Splits:
    """A small circle (label 1) inside a large one (label 0), as in scikit-learn's ``make_circles``.

    Parameters
    ----------
    n_samples : int
        Total samples; the outer circle gets ``N // 2``.
    noise : float
        Standard deviation of Gaussian noise added to the points.
    test_fraction : float
        Share of samples held out for testing.
    seed : int
        Seeds both the points and the split.
    factor : float
        Radius of the inner circle relative to the outer one (radius 1), in ``(0, 1)``.

    Returns
    -------
    Splits
        Inputs ``(N, 2)`` float32, labels ``(N,)`` int64 in {0, 1}.

    Examples
    --------
    >>> circles(n_samples=50).info.input_shape
    (2,)
    """
    _check("circles", n_samples, noise)
    if not 0 < factor < 1:
        raise ValueError(f"circles: factor must lie in (0, 1), got {factor!r}")
    points, labels = _two_arcs(
        n_samples, noise, seed, 2 * np.pi, lambda t: factor * np.stack([np.cos(t), np.sin(t)], axis=1), endpoint=False
    )
    metadata = {"n_samples": n_samples, "noise": noise, "factor": factor}
    return _classification("circles", points, labels, 2, test_fraction, seed, metadata)


def spirals(
    n_samples: int = 300, noise: float = 0.2, test_fraction: float = 0.2, seed: int = 0, n_classes: int = 3
) -> Splits:
    """Interleaved spiral arms, one per class (the CS231n spiral data).

    Arm ``k`` has radius ``r`` growing from 0 to 1 and angle ``4k + 4r`` plus Gaussian noise.

    Parameters
    ----------
    n_samples : int
        Total samples, split as evenly as possible over the arms.
    noise : float
        Standard deviation of the noise added to each point's angle (radians).
    test_fraction : float
        Share of samples held out for testing.
    seed : int
        Seeds both the points and the split.
    n_classes : int
        The number of arms (classes), at least 2.

    Returns
    -------
    Splits
        Inputs ``(N, 2)`` float32, labels ``(N,)`` int64 in ``[0, n_classes)``.

    Examples
    --------
    >>> train, test, info = spirals(n_samples=90, n_classes=3)
    >>> sorted(set(train.arrays[1].tolist())), info.num_classes
    ([0, 1, 2], 3)
    """
    _check("spirals", n_samples, noise)
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or not 2 <= n_classes <= n_samples:
        raise ValueError(f"spirals: n_classes must be an integer in [2, n_samples], got {n_classes!r}")
    generator = np.random.default_rng(seed)
    per_class = [n_samples // n_classes + (1 if k < n_samples % n_classes else 0) for k in range(n_classes)]
    points, labels = [], []
    for k, count in enumerate(per_class):
        radius = np.linspace(0.0, 1.0, count)
        angle = np.linspace(4.0 * k, 4.0 * (k + 1), count) + noise * generator.standard_normal(count)
        points.append(np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1))
        labels.append(np.full(count, k))
    metadata = {"n_samples": n_samples, "noise": noise, "n_classes": n_classes}
    return _classification(
        "spirals", np.concatenate(points), np.concatenate(labels), n_classes, test_fraction, seed, metadata
    )


def blobs(
    n_samples: int = 300,
    noise: float = 1.0,
    test_fraction: float = 0.2,
    seed: int = 0,
    n_features: int = 2,
    centers: int = 3,
) -> Splits:
    """Gaussian clusters around random centres, one class per centre (like ``make_blobs``).

    Parameters
    ----------
    n_samples : int
        Total samples, split as evenly as possible over the clusters.
    noise : float
        Standard deviation of each cluster.
    test_fraction : float
        Share of samples held out for testing.
    seed : int
        Seeds the centres, the points and the split.
    n_features : int
        Dimension of each point.
    centers : int
        The number of clusters (classes); centres are drawn uniformly from ``[-10, 10]^n_features``.

    Returns
    -------
    Splits
        Inputs ``(N, n_features)`` float32, labels ``(N,)`` int64 in ``[0, centers)``; the centres are in
        ``info.metadata["centers"]``.

    Examples
    --------
    >>> blobs(n_samples=60, n_features=4, centers=5).train.arrays[0].shape
    (48, 4)
    """
    _check("blobs", n_samples, noise)
    for name, value in (("n_features", n_features), ("centers", centers)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"blobs: {name} must be a positive integer, got {value!r}")
    generator = np.random.default_rng(seed)
    centres = generator.uniform(-10.0, 10.0, size=(centers, n_features))
    labels = np.arange(n_samples) % centers
    points = centres[labels] + noise * generator.standard_normal((n_samples, n_features))
    metadata = {"n_samples": n_samples, "noise": noise, "centers": centres.tolist()}
    return _classification("blobs", points, labels, int(centers), test_fraction, seed, metadata)


def gaussian(n_samples: int = 400, noise: float = 0.5, test_fraction: float = 0.2, seed: int = 0) -> Splits:
    """Two round Gaussian clusters centred at ``(1, 1)`` (label 1) and ``(-1, -1)`` (label 0).

    TensorFlow Playground's "Gaussian" set: linearly separable when ``noise`` (the clusters' standard
    deviation) is small, overlapping as it grows.

    Parameters
    ----------
    n_samples : int
        Total samples; label 0 gets ``N // 2``.
    noise : float
        Standard deviation of each cluster.
    test_fraction : float
        Share of samples held out for testing.
    seed : int
        Seeds both the points and the split.

    Returns
    -------
    Splits
        Inputs ``(N, 2)`` float32, labels ``(N,)`` int64 in {0, 1}.

    Examples
    --------
    >>> train, test, info = gaussian(n_samples=100, noise=0.1)
    >>> x, y = train.arrays
    >>> bool(((x.sum(axis=1) > 0) == (y == 1)).all())
    True
    """
    _check("gaussian", n_samples, noise)
    generator = np.random.default_rng(seed)
    labels = (np.arange(n_samples) >= n_samples // 2).astype(np.int64)  # (N,)
    centres = np.where(labels[:, None] == 1, 1.0, -1.0)  # (N, 2)
    points = centres + noise * generator.standard_normal((n_samples, 2))
    return _classification("gaussian", points, labels, 2, test_fraction, seed, {"n_samples": n_samples, "noise": noise})


def linear_regression(
    n_samples: int = 500, n_features: int = 5, noise: float = 0.1, test_fraction: float = 0.2, seed: int = 0
) -> Splits:
    """A noisy linear model ``y = x @ weight + bias + noise * eps`` with random true weights.

    Parameters
    ----------
    n_samples : int
        Total samples.
    n_features : int
        Dimension of each input.
    noise : float
        Standard deviation of the Gaussian noise on the targets.
    test_fraction : float
        Share of samples held out for testing.
    seed : int
        Seeds the weights, the inputs, the noise and the split.

    Returns
    -------
    Splits
        Inputs ``(N, n_features)`` float32, targets ``(N, 1)`` float32; ``info.metadata["weight"]``
        (``n_features`` numbers) and ``info.metadata["bias"]`` (one number, in a list) are the truth.

    Examples
    --------
    >>> train, test, info = linear_regression(n_samples=100, n_features=3)
    >>> train.arrays[1].shape, len(info.metadata["weight"]), info.task
    ((80, 1), 3, 'regression')
    """
    _check("linear_regression", n_samples, noise)
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise ValueError(f"linear_regression: n_features must be a positive integer, got {n_features!r}")
    generator = np.random.default_rng(seed)
    weight = generator.standard_normal(n_features)  # (F,)
    bias = generator.standard_normal(1)  # (1,)
    inputs = generator.standard_normal((n_samples, n_features))  # (N, F)
    targets = inputs @ weight[:, None] + bias + noise * generator.standard_normal((n_samples, 1))  # (N, 1)
    train, test = split_arrays(
        (inputs.astype(np.float32), targets.astype(np.float32)), test_fraction, seed, "linear_regression"
    )
    info = DatasetInfo(
        name="linear_regression",
        task="regression",
        input_shape=(int(n_features),),
        num_classes=None,
        class_names=[],
        source="generated",
        metadata={
            "weight": weight.tolist(),
            "bias": bias.tolist(),
            "n_samples": n_samples,
            "noise": noise,
            "seed": seed,
            "test_fraction": test_fraction,
        },
    )
    return Splits(train, test, info)
