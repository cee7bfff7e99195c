"""Weight initialisers, with PyTorch's names and distributions. They fill a tensor in place and return it.

Every draw comes from the global generator (:func:`chainrule.manual_seed`) unless a ``generator`` is given.
Gains, bounds and standard deviations must be finite (NaN or infinity would fill the weights with NaN):
an ``ArgumentError`` names the function and the value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chainrule import _checks as check
from chainrule.errors import ArgumentError, ShapeError
from chainrule.rng import default_generator
from chainrule.tensor import Tensor

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "zeros_",
    "ones_",
    "constant_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
    "fan_in_and_fan_out",
]


def _finite(owner: str, name: str, value: Any, low: float = -math.inf) -> float:
    """A finite number (``gain``, ``std``, a bound): NaN or infinity would fill the weights with NaN."""
    return check.real(owner, name, value, low, math.inf, low_open=low == -math.inf, high_open=True)


def _matrix(owner: str, tensor: Tensor) -> None:
    if tensor.ndim < 2:
        raise ShapeError(f"{owner}: needs a weight of at least 2 dimensions, got shape {tensor.shape}")


_LINEAR_LIKE = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "sigmoid")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for an activation.

    1 for linear maps and sigmoid, 5/3 for tanh, √2 for relu, √(2/(1+a²)) for leaky_relu with slope a,
    3/4 for selu.

    Examples
    --------
    >>> from chainrule.nn.init import calculate_gain
    >>> round(calculate_gain("relu"), 4)
    1.4142
    """
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else _finite("calculate_gain", "param", param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    known = ", ".join([*_LINEAR_LIKE, "tanh", "relu", "leaky_relu", "selu"])
    raise ArgumentError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r} (known: {known})")


def fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """Fan-in and fan-out of a weight: (in, out) for (out, in) matrices, times the kernel size for convolutions."""
    _matrix("fan_in_and_fan_out", tensor)
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    tensor.data[...] = values.astype(tensor.dtype, copy=False)
    tensor._mark_modified("an initialiser of chainrule.nn.init")
    return tensor


def _rng(generator: np.random.Generator | None) -> np.random.Generator:
    return generator or default_generator()


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: np.random.Generator | None = None) -> Tensor:
    """Fill with :math:`U(a, b)`, ``a <= b``."""
    a, b = _finite("uniform_", "a", a), _finite("uniform_", "b", b)
    if a > b:
        raise ArgumentError(f"uniform_: needs a <= b, got a={a} and b={b}")
    return _fill(tensor, _rng(generator).uniform(a, b, tensor.shape))


def normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Fill with :math:`N(\\text{mean}, \\text{std}^2)`, ``std >= 0``."""
    mean, std = _finite("normal_", "mean", mean), _finite("normal_", "std", std, low=0.0)
    return _fill(tensor, _rng(generator).normal(mean, std, tensor.shape))


def constant_(tensor: Tensor, value: float) -> Tensor:
    """Fill with ``value`` (a finite number)."""
    tensor.data[...] = _finite("constant_", "value", value)
    tensor._mark_modified("chainrule.nn.init.constant_")
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with 0."""
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with 1."""
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: np.random.Generator | None = None) -> Tensor:
    """Glorot uniform: :math:`U(-a, a)` with :math:`a = \\text{gain}\\sqrt{6/(\\text{fan\\_in}+\\text{fan\\_out})}`."""
    _matrix("xavier_uniform_", tensor)
    gain = _finite("xavier_uniform_", "gain", gain, low=0.0)
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: np.random.Generator | None = None) -> Tensor:
    """Glorot normal: :math:`N(0, \\sigma^2)`.

    With :math:`\\sigma = \\text{gain}\\sqrt{2/(\\text{fan\\_in}+\\text{fan\\_out})}`.
    """
    _matrix("xavier_normal_", tensor)
    gain = _finite("xavier_normal_", "gain", gain, low=0.0)
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(owner: str, tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    check.one_of(owner, "mode", mode, ("fan_in", "fan_out"))
    _matrix(owner, tensor)
    a = _finite(owner, "a", a)
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Tensor:
    """He uniform: :math:`U(-b, b)` with :math:`b = \\text{gain}\\sqrt{3/\\text{fan}}`."""
    bound = math.sqrt(3.0) * _kaiming_std("kaiming_uniform_", tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Tensor:
    """He normal: :math:`N(0, \\sigma^2)` with :math:`\\sigma = \\text{gain}/\\sqrt{\\text{fan}}`."""
    return normal_(tensor, 0.0, _kaiming_std("kaiming_normal_", tensor, a, mode, nonlinearity), generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator: np.random.Generator | None = None) -> Tensor:
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian matrix, times ``gain``."""
    _matrix("orthogonal_", tensor)
    gain = _finite("orthogonal_", "gain", gain)
    rows = tensor.shape[0]
    cols = tensor.data.size // rows
    flat = _rng(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))  # make the decomposition unique (uniform over orthogonal matrices)
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))
