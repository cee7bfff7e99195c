"""Build a small fully-connected network from widths (and optional weights) and trace one step of it.

This is the work behind ``chainrule explain --model 2,3,1 ...``; the command line only parses arguments.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from chainrule import _checks, autograd, nn, rng
from chainrule.errors import ArgumentError, DataError
from chainrule.explain.trace import Trace, trace
from chainrule.io import read_json_strict
from chainrule.nn.registry import ACTIVATIONS, LOSS_FORMULAS

__all__ = ["ACTIVATIONS", "build_network", "load_weights", "explain_network", "trace_memory"]

# Measured: a traced parameter costs about 2.6 KiB (its table rows, their cells and the working copies);
# the activation's Jacobian, checked to be diagonal, is width × width float64s, held up to three times.
_BYTES_PER_TRACED_PARAMETER = 4096
_JACOBIAN_COPIES = 3


def build_network(
    widths: Sequence[int], activation: str = "tanh", output_activation: str = "identity"
) -> nn.Sequential:
    """``Linear(widths[0], widths[1]), activation, ..., Linear(widths[-2], widths[-1]), output_activation``.

    The weights are drawn from the global generator (seed it with :func:`chainrule.manual_seed`); the
    model is float64. Identity activations are left out.

    Examples
    --------
    >>> build_network([2, 3, 1], "tanh")
    Sequential(
      (0): Linear(in_features=2, out_features=3, bias=True)
      (1): Tanh()
      (2): Linear(in_features=3, out_features=1, bias=True)
    )
    """
    widths = [int(w) for w in widths]
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise ArgumentError(f"build_network: need at least two positive widths (inputs, outputs), got {widths}")
    count = _checks.mlp_parameter_count(widths)
    _checks.fits_in_memory("build_network", f"{_describe(widths)} ({count:,} parameters)", 8 * count)
    for name in (activation, output_activation):
        if name not in ACTIVATIONS:
            raise ArgumentError(f"build_network: unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    modules: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        modules.append(nn.Linear(fan_in, fan_out, dtype=np.float64))
        name = output_activation if index == len(widths) - 2 else activation
        if name != "identity":
            modules.append(ACTIVATIONS[name]())
    return nn.Sequential(*modules)


def _describe(widths: Sequence[int]) -> str:
    return "a network " + "-".join(str(w) for w in widths)


def trace_memory(widths: Sequence[int]) -> int:
    """Bytes :func:`explain_network` needs to trace a network of ``widths``, estimated before building it.

    Examples
    --------
    >>> trace_memory([2, 3, 1]) < 2**20
    True
    """
    widths = [int(w) for w in widths]
    count = _checks.mlp_parameter_count(widths)
    return count * _BYTES_PER_TRACED_PARAMETER + _JACOBIAN_COPIES * 8 * max(widths[1:], default=0) ** 2


def _read_json(path: str | os.PathLike, where: str) -> Any:
    """The JSON document in ``path``, strict (no NaN/Infinity, no key twice, at most 64 MiB); every way of
    failing is a ``DataError`` naming the file."""
    return read_json_strict(path, where, max_bytes=_MAX_WEIGHTS_BYTES, error=DataError)


_MAX_WEIGHTS_BYTES = 64 << 20


def _has_bool(value: Any) -> bool:
    """Whether a nesting of lists holds a ``bool`` (walked with a stack: JSON can nest deeper than recursion)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bool):
            return True
        if isinstance(item, list):
            stack.extend(item)
    return False


def load_weights(model: nn.Sequential, source: str | os.PathLike | Mapping[str, Any]) -> nn.Sequential:
    """Set the weights of ``model``'s Linear layers from ``{"layers": [{"weight": [[...]], "bias": [...]}, ...]}``.

    ``source`` is that mapping or a JSON file holding it. Every shape is checked before anything is set;
    errors (:class:`~chainrule.errors.DataError`) name the layer and the expected shape.

    Examples
    --------
    >>> model = build_network([2, 1], "sigmoid")
    >>> _ = load_weights(model, {"layers": [{"weight": [[1.0, 2.0]], "bias": [0.5]}]})
    >>> model[0].weight.tolist()
    [[1.0, 2.0]]
    """
    where = "weights"
    if not isinstance(source, Mapping):
        where = f"weights file {os.fspath(source)!r}"
        source = _read_json(source, where)
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    entries = source.get("layers") if isinstance(source, Mapping) else None
    if not isinstance(entries, list):
        raise DataError(f'{where}: expected an object {{"layers": [{{"weight": [[...]], "bias": [...]}}, ...]}}')
    if len(entries) != len(linears):
        raise DataError(f"{where}: has {len(entries)} layers but the model has {len(linears)}")
    arrays = []
    for number, (entry, linear) in enumerate(zip(entries, linears), start=1):
        expected = {"weight": (linear.out_features, linear.in_features), "bias": (linear.out_features,)}
        if not isinstance(entry, Mapping) or set(entry) != set(expected):
            raise DataError(
                f'{where}: layer {number} must be {{"weight": shape {expected["weight"]}, '
                f'"bias": shape {expected["bias"]}}}'
            )
        pair = {}
        for key, shape in expected.items():
            try:
                if _has_bool(entry[key]):  # NumPy would read true/false as 1/0
                    raise TypeError("true/false are not weights")
                array = np.array(entry[key], dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(f"{where}: layer {number} {key} must be numbers of shape {shape}") from None
            if array.shape != shape:
                raise DataError(f"{where}: layer {number} {key} has shape {array.shape}, expected {shape}")
            if not np.isfinite(array).all():
                raise DataError(f"{where}: layer {number} {key} has a non-finite value")
            pair[key] = array
        arrays.append(pair)
    with autograd.no_grad():
        for linear, pair in zip(linears, arrays):
            linear.weight.copy_(pair["weight"])
            if linear.bias is not None:
                linear.bias.copy_(pair["bias"])
    return model


def explain_network(
    widths: Sequence[int],
    inputs: Sequence[float],
    target: Sequence[float] | int,
    *,
    activation: str = "tanh",
    output_activation: str | None = None,
    loss: str = "mse",
    lr: float = 0.1,
    seed: int = 0,
    weights: str | os.PathLike | Mapping[str, Any] | None = None,
    steps: int = 0,
) -> Trace:
    """Build a network, seed or load its weights, and :func:`~chainrule.explain.trace` one step of it.

    Parameters
    ----------
    widths : sequence of int
        Layer widths from the inputs to the outputs, e.g. ``[2, 3, 1]``.
    inputs, target :
        One sample and its target (a class index for ``loss="cross_entropy"``).
    activation, output_activation : str
        Names in :data:`ACTIVATIONS`; the output activation defaults to sigmoid for ``"bce"`` and
        identity otherwise.
    loss, lr :
        As in :func:`~chainrule.explain.trace`.
    seed : int
        Seed of :func:`chainrule.manual_seed` before the weights are drawn.
    weights : path or mapping, optional
        Weights to use instead (see :func:`load_weights`).
    steps : int
        Also record the error after this many training steps (0: none).

    Examples
    --------
    >>> t = explain_network([2, 3, 1], [1.0, 0.0], [1.0], activation="tanh", seed=0)
    >>> len(t.forward_rows), len(t.backward_rows)
    (4, 13)
    """
    if loss not in LOSS_FORMULAS:
        raise ArgumentError(f"explain_network: unknown loss {loss!r}; choose one of {', '.join(LOSS_FORMULAS)}")
    if output_activation is None:
        output_activation = "sigmoid" if loss == "bce" else "identity"
    if len(widths) >= 2 and all(int(w) >= 1 for w in widths):
        count = _checks.mlp_parameter_count(widths)
        what = f"tracing {_describe(widths)} ({count:,} parameters, a row each)"
        _checks.fits_in_memory("explain", what, trace_memory(widths))
    rng.manual_seed(seed)
    model = build_network(widths, activation, output_activation)
    if weights is not None:
        load_weights(model, weights)
    if loss == "cross_entropy":
        values = np.ravel(np.asarray(target, dtype=np.float64))
        target = int(values[0]) if values.size == 1 and values[0] == int(values[0]) else target
    record = trace(model, inputs, target, loss=loss, lr=lr)
    if steps:
        record.step_losses(steps)
    return record
