"""The playground's whole state as a small set of named values: what the URL holds, checked one by one.

A lesson is a link: :meth:`Config.from_query` reads the URL's query parameters (every value a string) and
:meth:`Config.to_query` writes them back, so ``Config.from_query(c.to_query()) == c``. Every bad value is an
:class:`~chainrule.errors.ArgumentError` naming the parameter, the value and what is allowed.

Examples
--------
>>> from chainrule.playground.config import Config
>>> config = Config.from_query({"data": "spirals", "hidden": "8,8", "act": "relu"})
>>> config.hidden, config.activation, config.task
((8, 8), 'relu', 'classification')
>>> Config.from_query(config.to_query()) == config
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from chainrule.errors import ArgumentError
from chainrule.nn.functional import sigmoid_family
from chainrule.nn.registry import ACTIVATIONS as _REGISTRY_ACTIVATIONS

__all__ = ["Config", "DATASETS", "FEATURES", "ACTIVATIONS", "LOSSES", "OPTIMIZERS", "MAX_LAYERS", "MAX_WIDTH"]

#: The 2-D toy sets of :mod:`chainrule.data.toy` by playground name ("csv" is an uploaded file).
DATASETS: tuple[str, ...] = ("xor", "moons", "circles", "spirals", "blobs", "gaussian", "regression", "csv")
#: Input features as in TensorFlow Playground, computed from the point (x, y).
FEATURES: tuple[str, ...] = ("x", "y", "x2", "y2", "xy", "sinx", "siny")
#: Activation names: the registry's, then the sigmoid family at slope 1 (``family:NAME``).
ACTIVATIONS: tuple[str, ...] = tuple(name for name in _REGISTRY_ACTIVATIONS) + tuple(
    f"family:{name}" for name in sigmoid_family()
)
#: Losses the playground trains with; both are ones :func:`chainrule.explain.trace` works out term by term.
LOSSES: tuple[str, ...] = ("cross_entropy", "mse")
OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "adam")
REGULARIZATION: tuple[str, ...] = ("none", "l1", "l2")
INITS: tuple[str, ...] = ("xavier", "he")
MAX_LAYERS, MAX_WIDTH = 8, 8
MAX_SAMPLES = 2000

# URL key -> field name, in the order the URL shows them.
_KEYS: dict[str, str] = {
    "data": "dataset",
    "noise": "noise",
    "n": "n_samples",
    "test": "test_fraction",
    "features": "features",
    "hidden": "hidden",
    "act": "activation",
    "loss": "loss",
    "opt": "optimizer",
    "lr": "lr",
    "batch": "batch_size",
    "reg": "regularization",
    "rate": "reg_rate",
    "init": "init",
    "seed": "seed",
    "upload": "upload",
}


@dataclass(frozen=True)
class Config:
    """Data, features, network, hyperparameters and seed of one playground run.

    Attributes
    ----------
    dataset : str
        One of :data:`DATASETS`.
    noise : float
        The generator's noise in ``[0, 2]`` (its own unit: a standard deviation).
    n_samples : int
        Points generated, train and test together, in ``[20, 2000]``.
    test_fraction : float
        Share held out for the test loss, in ``[0.1, 0.9]``.
    features : tuple of str
        The inputs, a non-empty subset of :data:`FEATURES`.
    hidden : tuple of int
        Hidden widths, at most 8 layers of 1 to 8 neurons (empty: a linear model).
    activation, loss, optimizer : str
        From :data:`ACTIVATIONS`, :data:`LOSSES` (regression always uses ``"mse"``), :data:`OPTIMIZERS`.
    lr : float
        Learning rate in ``(0, 10]``.
    batch_size : int
        Mini-batch size in ``[1, 64]``.
    regularization : {"none", "l1", "l2"}, reg_rate : float
        A penalty on the weights (not the biases) added to the loss: :math:`\\lambda\\sum|w|` or
        :math:`\\frac\\lambda2\\sum w^2`, with :math:`\\lambda` = ``reg_rate`` in ``[0, 1]``.
    init : {"xavier", "he"}
        Xavier (Glorot) or He (Kaiming) uniform weights; biases start at 0.
    seed : int
        Seeds the data, the split, the initial weights and the batch order.
    upload : str
        The id of an uploaded CSV (with ``dataset="csv"``), else empty.
    """

    dataset: str = "spirals"
    noise: float = 0.1
    n_samples: int = 400
    test_fraction: float = 0.5
    features: tuple[str, ...] = ("x", "y")
    hidden: tuple[int, ...] = (6, 6)
    activation: str = "tanh"
    loss: str = "cross_entropy"
    optimizer: str = "adam"
    lr: float = 0.03
    batch_size: int = 10
    regularization: str = "none"
    reg_rate: float = 0.001
    init: str = "xavier"
    seed: int = 0
    upload: str = ""

    def __post_init__(self) -> None:
        _choice("data", self.dataset, DATASETS)
        _real("noise", self.noise, 0.0, 2.0)
        _integer("n", self.n_samples, 20, MAX_SAMPLES)
        _real("test", self.test_fraction, 0.1, 0.9)
        if not self.features or len(set(self.features)) != len(self.features):
            raise ArgumentError(f"playground: features must be a non-empty list without repeats, got {self.features}")
        for name in self.features:
            _choice("features", name, FEATURES)
        if len(self.hidden) > MAX_LAYERS:
            raise ArgumentError(f"playground: hidden has {len(self.hidden)} layers; at most {MAX_LAYERS}")
        for width in self.hidden:
            _integer("hidden", width, 1, MAX_WIDTH)
        _choice("act", self.activation, ACTIVATIONS)
        _choice("loss", self.loss, LOSSES)
        _choice("opt", self.optimizer, OPTIMIZERS)
        _real("lr", self.lr, 0.0, 10.0, low_open=True)
        _integer("batch", self.batch_size, 1, 64)
        _choice("reg", self.regularization, REGULARIZATION)
        _real("rate", self.reg_rate, 0.0, 1.0)
        _choice("init", self.init, INITS)
        _integer("seed", self.seed, 0, 2**32 - 1)
        if self.dataset == "csv" and not self.upload:
            raise ArgumentError("playground: data=csv needs an uploaded file (upload=ID); upload a CSV first")

    @property
    def task(self) -> str:
        """``"regression"`` for the regression set, and for an upload with real-valued labels; else classification."""
        return "regression" if self.dataset == "regression" else "classification"

    @property
    def effective_loss(self) -> str:
        """The loss trained with: ``"mse"`` for regression, the chosen one otherwise."""
        return "mse" if self.task == "regression" else self.loss

    def with_changes(self, **changes: Any) -> Config:
        """A copy with some fields changed (checked again)."""
        return replace(self, **changes)

    def to_query(self) -> dict[str, str]:
        """The URL query parameters, as strings (the upload id only when the data is an upload)."""
        query = {}
        for key, name in _KEYS.items():
            value = getattr(self, name)
            if name == "upload" and not value:
                continue
            if isinstance(value, tuple):
                text = ",".join(str(v) for v in value)
            elif isinstance(value, float):
                text = repr(value)
            else:
                text = str(value)
            query[key] = text
        return query

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> Config:
        """Read the URL's query parameters (missing ones take their defaults; unknown ones are an error).

        Values may be strings (from a URL) or already numbers/lists (from JSON).
        """
        unknown = sorted(set(query) - set(_KEYS))
        if unknown:
            raise ArgumentError(f"playground: unknown setting {unknown[0]!r}; known: {', '.join(_KEYS)}")
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in query.items():
            name = _KEYS[key]
            kind = types[name]
            try:
                if kind == "tuple[str, ...]":
                    values[name] = tuple(_split(raw))
                elif kind == "tuple[int, ...]":
                    values[name] = tuple(int(v) for v in _split(raw))
                elif kind == "int":
                    values[name] = _parse_int(raw)
                elif kind == "float":
                    values[name] = float(raw)
                else:
                    values[name] = str(raw)
            except (TypeError, ValueError):
                raise ArgumentError(f"playground: {key}={str(raw)[:40]!r} is not a valid {kind}") from None
        return cls(**values)


def _split(raw: Any) -> list[str]:
    if isinstance(raw, (list, tuple)):
        return [str(v).strip() for v in raw]
    text = str(raw).strip()
    return [part.strip() for part in text.split(",")] if text else []


def _parse_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError
    if isinstance(raw, float):
        if not raw.is_integer():
            raise ValueError
        return int(raw)
    return int(str(raw).strip())


def _choice(key: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ArgumentError(f"playground: {key}={str(value)[:40]!r} is not one of {', '.join(options)}")


def _real(key: str, value: Any, low: float, high: float, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value > high or value < low or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise ArgumentError(f"playground: {key}={value!r} must be a number in {bracket}{low:g}, {high:g}]")


def _integer(key: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ArgumentError(f"playground: {key}={value!r} must be an integer in [{low}, {high}]")
