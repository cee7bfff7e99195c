"""Tensor functions: thin calls of the primitives in :mod:`chainrule.ops`, and compositions of them.

Nothing here has a gradient rule of its own. ``mean`` is ``sum`` times a constant, ``var`` is a mean of
squares, ``gelu`` is built from ``erf``, ``stack`` from ``reshape`` and ``concatenate``; their gradients
come from the primitives they are made of. Every function takes tensors, NumPy arrays or numbers.

Each op is declared here once. ``__all__`` is what ``chainrule`` exports (``chainrule.exp is
chainrule.functions.exp``), and a function marked ``@_method`` is also the :class:`~chainrule.tensor.Tensor`
method of that name (``Tensor.exp is exp``): the loop at the end of this module attaches them, the way JAX
attaches its array methods in ``array_methods.py``. ``tests/test_declarations.py`` keeps the three in step.
"""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from chainrule import tensor as _tensor
from chainrule.backend import foreign_array, get_namespace, numpy_dtype
from chainrule.errors import ArgumentError, DTypeError, ShapeError
from chainrule.ops import ELEMENTWISE, OPS, normalize_axis
from chainrule.tensor import Tensor, _to_array, _wrap, apply

__all__ = [
    "as_tensor",
    "exp",
    "log",
    "sqrt",
    "abs",
    "sin",
    "cos",
    "atan",
    "tanh",
    "sigmoid",
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "softplus",
    "softsign",
    "silu",
    "erf",
    "clip",
    "clamp",
    "maximum",
    "minimum",
    "where",
    "matmul",
    "sum",
    "mean",
    "max",
    "min",
    "prod",
    "var",
    "std",
    "logsumexp",
    "softmax",
    "log_softmax",
    "argmax",
    "argmin",
    "reshape",
    "flatten",
    "transpose",
    "permute",
    "squeeze",
    "unsqueeze",
    "expand",
    "broadcast_to",
    "concatenate",
    "cat",
    "stack",
    "split",
    "pad",
]


_F = TypeVar("_F", bound=Callable[..., Any])

#: The Tensor methods declared below: method name -> the function (or, for a loose shape, its adapter).
_METHODS: dict[str, Callable[..., Any]] = {}


def _method(function: _F) -> _F:
    """Declare ``function`` also the :class:`Tensor` method of its name: ``x.exp()`` is ``exp(x)``.

    The method is the function object itself (``Tensor.exp is exp``), so calling it costs no extra call.
    """
    _METHODS[function.__name__] = function
    return function


def _method_as(*names: str, loose_shape: bool = False) -> Callable[[_F], _F]:
    """Declare the decorated function the :class:`Tensor` method(s) ``names`` (``clip`` and ``clamp``).

    With ``loose_shape`` the method takes the shape loose, as PyTorch does (``x.reshape(2, 3)``), as well as
    one sequence (``x.reshape((2, 3))``); that method is a one-line adapter, the only methods that are not
    the function itself.
    """

    def declare(function: _F) -> _F:
        for name in names:
            _METHODS[name] = _loose_shape_method(function, name) if loose_shape else function
        return function

    return declare


def _loose_shape_method(function: Callable[..., Tensor], name: str) -> Callable[..., Tensor]:
    """The method ``name`` that calls ``function(x, shape)`` with ``shape`` given loose or as one sequence."""

    def method(self: Tensor, *shape: Any) -> Tensor:
        return function(self, _shape_args(shape))

    method.__name__ = name
    method.__qualname__ = f"Tensor.{name}"
    method.__doc__ = (
        f"``x.{name}(*shape)``: :func:`{function.__name__}` with the shape given loose (``x.{name}(2, 3)``) "
        f"or as one sequence (``x.{name}((2, 3))``)."
    )
    return method


def _shape_args(args: tuple) -> tuple[int, ...]:
    """Accept both ``reshape(2, 3)`` and ``reshape((2, 3))``."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def as_tensor(value: Any) -> Tensor:
    """``value`` itself if it is a tensor, else a constant tensor made from it (no copy of arrays)."""
    if isinstance(value, Tensor):
        return value
    return _wrap(_to_array(value, copy=False))


def _unary(name: str, x: Any, **attrs: Any) -> Tensor:
    return apply(OPS[name], as_tensor(x), **attrs)


_DOMAIN_NOTES = {
    "real": "",
    "positive": "Differentiable for :math:`x > 0`.",
    "nonzero": "Not differentiable at 0; the gradient there is the one stated.",
}
_EXAMPLE_INPUTS = {"real": "[-0.5, 1.5]", "positive": "[0.5, 1.5]", "nonzero": "[-1.5, 0.5]"}


def _elementwise(name: str) -> Callable[[Any], Tensor]:
    """The function ``chainrule.<name>`` (and the Tensor method) of the elementwise row ``ops.ELEMENTWISE[name]``.

    The op is declared by its row in :mod:`chainrule.ops` (forward, chain-rule factor, domain, maths); this
    makes the function and its docstring from it, so nothing is written twice.
    """
    op = ELEMENTWISE[name]

    def function(x: Any) -> Tensor:
        return apply(op, as_tensor(x))

    function.__name__ = function.__qualname__ = name
    converted = "; integer and boolean inputs become float32 first" if op.float_only else ""
    function.__doc__ = f"""{op.__doc__}

    Elementwise: the output has the input's shape{converted}. {_DOMAIN_NOTES[op.domain]}

    Examples
    --------
    >>> import chainrule as cr
    >>> x = cr.tensor({_EXAMPLE_INPUTS[op.domain]}, dtype="float64", requires_grad=True)
    >>> cr.{name}(x).shape
    (2,)
    >>> cr.gradcheck(cr.{name}, [x])  # the chain-rule factor against central differences
    True
    """
    return _method(function)


# -- elementwise: the rows of ops.ELEMENTWISE (their maths is there) ---------------------------------
exp = _elementwise("exp")
log = _elementwise("log")
sqrt = _elementwise("sqrt")
abs = _elementwise("abs")
sin = _elementwise("sin")
cos = _elementwise("cos")
atan = _elementwise("atan")
tanh = _elementwise("tanh")
sigmoid = _elementwise("sigmoid")
relu = _elementwise("relu")
erf = _elementwise("erf")


@_method
def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """``x`` for :math:`x > 0`, else ``negative_slope * x``."""
    return _unary("leaky_relu", x, negative_slope=float(negative_slope))


@_method
def elu(x: Any, alpha: float = 1.0) -> Tensor:
    """``x`` for :math:`x > 0`, else :math:`\\alpha (e^x - 1)`."""
    return _unary("elu", x, alpha=float(alpha))


@_method
def gelu(x: Any) -> Tensor:
    """Gaussian error linear unit :math:`x \\Phi(x) = \\tfrac{x}{2}(1 + \\mathrm{erf}(x/\\sqrt2))` (composed)."""
    x = as_tensor(x)
    return x * 0.5 * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))


@_method
def softplus(x: Any, beta: float = 1.0) -> Tensor:
    """:math:`\\frac{1}{\\beta}\\log(1 + e^{\\beta x})`, finite for any input; derivative :math:`\\sigma(\\beta x)`."""
    if beta == 1.0:
        return _unary("softplus", x)
    return _unary("softplus", as_tensor(x) * float(beta)) * (1.0 / beta)


@_method
def softsign(x: Any) -> Tensor:
    """:math:`x / (1 + |x|)` (composed)."""
    x = as_tensor(x)
    return x / (1.0 + abs(x))


@_method
def silu(x: Any) -> Tensor:
    """:math:`x\\,\\sigma(x)`, also called swish (composed)."""
    x = as_tensor(x)
    return x * sigmoid(x)


@_method_as("clip", "clamp")
def clip(x: Any, min: Any = None, max: Any = None) -> Tensor:
    """Clamp into ``[min, max]``; the gradient is 1 inside the interval (ends included) and 0 outside."""
    if min is None and max is None:
        raise ArgumentError("clip: give min, max or both")
    return _unary("clip", x, min=min, max=max)


clamp = clip


@_method
def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum with broadcasting; ties share the gradient equally."""
    return apply(OPS["maximum"], _arg(a), _arg(b))


@_method
def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum with broadcasting; ties share the gradient equally."""
    return apply(OPS["minimum"], _arg(a), _arg(b))


def where(condition: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``condition`` is true, else ``b`` (broadcast together); no gradient to the condition.

    :math:`y_i = a_i` if :math:`c_i` else :math:`b_i`; shape: the broadcast of the three shapes.

    Raises
    ------
    DTypeError
        If ``condition`` is not boolean (``where: the condition must be boolean, got dtype float32``).

    Examples
    --------
    >>> import chainrule as cr
    >>> x = cr.tensor([-1.0, 2.0])
    >>> cr.where(x > 0, x, 0.0).tolist()
    [0.0, 2.0]
    """
    if isinstance(condition, Tensor):
        cond, dtype = condition.data, condition.dtype  # a NumPy dtype whatever the library
    else:
        cond = condition if foreign_array(condition) else np.asarray(condition)
        dtype = numpy_dtype(cond.dtype)
    if dtype != np.bool_:
        raise DTypeError(f"where: the condition must be boolean, got dtype {dtype}; compare first, e.g. x > 0")
    a, b = _arg(a), _arg(b)
    if type(cond) is np.ndarray:  # a NumPy condition meets another library's values in that library
        for value in (a, b):
            data = value.data if isinstance(value, Tensor) else value
            if type(data) is not np.ndarray and foreign_array(data):
                cond = get_namespace(data).asarray(cond, device=data.device)
                break
    return apply(OPS["where"], cond, a, b)


@_method
def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy's rules (batched stacks broadcast; 1-d vectors allowed).

    Shape: ``(..., m, k) @ (..., k, n) -> (..., m, n)``.

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.matmul(cr.ones((2, 3)), cr.ones(3))
    tensor([3., 3.])
    """
    return apply(OPS["matmul"], _arg(a), _arg(b))


def _arg(value: Any) -> Any:
    """Tensors and Python numbers pass through; everything else becomes an array."""
    if isinstance(value, (Tensor, int, float, bool)):
        return value
    return _to_array(value, copy=False)


# -- reductions --------------------------------------------------------------------------------------
# Every reduction takes NumPy's ``axis=``/``keepdims=`` and PyTorch's ``dim=``/``keepdim=`` spellings.
def _reduction(
    op: str, x: Tensor, axis: Any, keepdims: Any, dim: Any = None, keepdim: Any = None
) -> tuple[tuple[int, ...] | None, bool]:
    """Resolve the axis and keepdims of reduction ``op`` on ``x``: ``(None or sorted axes, keepdims)``."""
    if dim is not None:
        if axis is not None and _axis_key(axis) != _axis_key(dim):
            raise ArgumentError(f"{op}: got axis={axis!r} and dim={dim!r}; they are aliases, pass one")
        axis = dim
    if keepdim is not None:
        if keepdims is not None and bool(keepdims) != bool(keepdim):
            raise ArgumentError(f"{op}: got keepdims={keepdims!r} and keepdim={keepdim!r}; they are aliases, pass one")
        keepdims = keepdim
    if keepdims is not None and not isinstance(keepdims, (bool, np.bool_)):
        raise ArgumentError(f"{op}: keepdims must be True or False, got {keepdims!r}")
    axes = None if axis is None else normalize_axis(axis, x.ndim, op)
    return axes, bool(keepdims)


def _reduce(op: str, x: Any, axis: Any, keepdims: Any, dim: Any, keepdim: Any) -> Tensor:
    """Apply the reduction primitive ``op`` over ``axis`` (or its alias ``dim``)."""
    x = as_tensor(x)
    axes, keep = _reduction(op, x, axis, keepdims, dim, keepdim)
    return apply(OPS[op], x, axis=axes, keepdims=keep)


def _axis_key(axis: Any) -> Any:
    """A comparable form of an axis argument (``1`` and ``(1,)`` agree)."""
    return tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)


def _one_axis(op: str, x: Tensor, axis: Any, dim: Any, default: int = -1) -> int:
    """The single axis of ``softmax``-like ops: ``axis`` or its alias ``dim`` (``default`` when neither)."""
    axes, _ = _reduction(op, x, axis, None, dim)
    if axes is None:
        axes = normalize_axis(default, x.ndim, op)
    if len(axes) != 1:
        raise ArgumentError(f"{op}: takes one axis, got {axis if dim is None else dim!r}")
    return axes[0]


@_method
def sum(
    x: Any, axis: Any = None, keepdims: bool | None = None, *, dim: Any = None, keepdim: bool | None = None
) -> Tensor:
    """Sum over ``axis`` (all axes by default): :math:`y = \\sum_{i \\in \\text{axis}} x_i`.

    Parameters
    ----------
    x : Tensor or array_like
        Input of any shape.
    axis : int or sequence of int, optional
        Axes to reduce (any integer-like, negative counts from the end); ``dim`` is an alias.
    keepdims : bool
        Keep reduced axes with size 1; ``keepdim`` is an alias.

    Returns
    -------
    Tensor
        ``x.shape`` without the reduced axes (or with size 1 there when ``keepdims``).

    Raises
    ------
    ShapeError
        For an axis out of range or repeated; ``ArgumentError`` for a non-integer axis or conflicting aliases.

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.sum(cr.tensor([[1.0, 2.0], [3.0, 4.0]]), dim=0).tolist()
    [4.0, 6.0]
    """
    return _reduce("sum", x, axis, keepdims, dim, keepdim)


def _count(x: Tensor, axis: Any) -> int:
    return math.prod(x.shape[a] for a in normalize_axis(axis, x.ndim))


@_method
def mean(
    x: Any, axis: Any = None, keepdims: bool | None = None, *, dim: Any = None, keepdim: bool | None = None
) -> Tensor:
    """Arithmetic mean over ``axis``: ``sum / count`` (composed). Integers are averaged as float32.

    Takes ``axis``/``keepdims`` or their aliases ``dim``/``keepdim``, as :func:`sum`.

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.mean(cr.tensor([[1.0, 2.0], [3.0, 4.0]]), axis=1, keepdims=True).tolist()
    [[1.5], [3.5]]
    """
    x = as_tensor(x)
    axes, keep = _reduction("mean", x, axis, keepdims, dim, keepdim)
    count = _count(x, axes)
    if count == 0:
        raise ShapeError(f"mean: cannot average over an empty axis of a tensor of shape {x.shape}")
    if x.dtype.kind != "f":
        x = x.to(np.float32)
    return sum(x, axes, keep) * (1.0 / count)


@_method
def var(
    x: Any,
    axis: Any = None,
    keepdims: bool | None = None,
    *,
    correction: int = 1,
    dim: Any = None,
    keepdim: bool | None = None,
) -> Tensor:
    """Variance :math:`\\frac{1}{N - c}\\sum (x - \\bar x)^2` over ``axis`` (composed).

    ``correction=1`` (PyTorch's default) gives the unbiased estimate, ``correction=0`` the population variance.
    Takes ``axis``/``keepdims`` or their aliases ``dim``/``keepdim``, as :func:`sum`.

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.var(cr.tensor([1.0, 2.0, 3.0, 4.0]), dim=0, correction=0).item()
    1.25
    """
    x = as_tensor(x)
    axes, keep = _reduction("var", x, axis, keepdims, dim, keepdim)
    count = _count(x, axes)
    if count - correction <= 0:
        raise ShapeError(f"var: {count} elements with correction={correction} leave no degrees of freedom")
    centered = x - mean(x, axes, keepdims=True)
    return sum(centered * centered, axes, keep) * (1.0 / (count - correction))


@_method
def std(
    x: Any,
    axis: Any = None,
    keepdims: bool | None = None,
    *,
    correction: int = 1,
    dim: Any = None,
    keepdim: bool | None = None,
) -> Tensor:
    """Standard deviation: the square root of :func:`var` (same arguments).

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.std(cr.tensor([1.0, 3.0]), dim=0).item()
    1.4142135381698608
    """
    x = as_tensor(x)
    axes, keep = _reduction("std", x, axis, keepdims, dim, keepdim)
    return sqrt(var(x, axes, keep, correction=correction))


@_method
def max(
    x: Any, axis: Any = None, keepdims: bool | None = None, *, dim: Any = None, keepdim: bool | None = None
) -> Tensor:
    """Largest element over ``axis`` (PyTorch's ``amax``): values only, never an ``(values, indices)`` pair.

    :math:`y = \\max_{i \\in \\text{axis}} x_i`. NaN propagates: a group holding a NaN has the maximum
    NaN. Gradient: split evenly among the elements equal to the maximum (as ``torch.amax``); in a group
    whose maximum is NaN it is split among the NaN elements (as ``torch.max()`` without ``dim``).
    Takes ``axis``/``keepdims`` or their aliases ``dim``/``keepdim``; use :func:`argmax` for indices.

    Shape: ``x.shape`` without the reduced axes (size 1 there with ``keepdims``).

    Examples
    --------
    >>> import chainrule as cr
    >>> x = cr.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    >>> x.max(dim=1).sum().backward()
    >>> x.grad.tolist()
    [[0.0, 0.5, 0.5]]
    """
    return _reduce("max", x, axis, keepdims, dim, keepdim)


@_method
def min(
    x: Any, axis: Any = None, keepdims: bool | None = None, *, dim: Any = None, keepdim: bool | None = None
) -> Tensor:
    """Smallest element over ``axis`` (PyTorch's ``amin``): values only; NaN and ties as in :func:`max`.

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.min(cr.tensor([[4.0, 2.0], [1.0, 5.0]]), dim=1).tolist()
    [2.0, 1.0]
    """
    return _reduce("min", x, axis, keepdims, dim, keepdim)


@_method
def prod(
    x: Any, axis: Any = None, keepdims: bool | None = None, *, dim: Any = None, keepdim: bool | None = None
) -> Tensor:
    """Product over ``axis``: :math:`y = \\prod_i x_i`, with :math:`\\partial y/\\partial x_i = \\prod_{j \\ne i} x_j`.

    The gradient is exact at zeros too: with one zero only that element gets a nonzero gradient (the
    product of the others), with two or more every gradient is 0; second derivatives are exact as well.
    Takes ``axis``/``keepdims`` or their aliases ``dim``/``keepdim``.

    Examples
    --------
    >>> import chainrule as cr
    >>> x = cr.tensor([2.0, 0.0, 3.0], requires_grad=True)
    >>> x.prod().backward()
    >>> x.grad.tolist()
    [0.0, 6.0, 0.0]
    """
    return _reduce("prod", x, axis, keepdims, dim, keepdim)


@_method
def logsumexp(
    x: Any, axis: Any = None, keepdims: bool | None = None, *, dim: Any = None, keepdim: bool | None = None
) -> Tensor:
    """:math:`\\log\\sum e^{x}` over ``axis``, finite for any finite input (``dim``/``keepdim`` accepted).

    Examples
    --------
    >>> import chainrule as cr
    >>> round(cr.logsumexp(cr.tensor([0.0, 0.0]), dim=0).item(), 6)
    0.693147
    """
    return _reduce("logsumexp", x, axis, keepdims, dim, keepdim)


@_method
def softmax(x: Any, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """:math:`e^{x_i}/\\sum_j e^{x_j}` along ``axis`` (default -1; ``dim`` is an alias). Same shape as ``x``.

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.softmax(cr.tensor([0.0, 0.0])).tolist()
    [0.5, 0.5]
    >>> cr.softmax(cr.zeros(2, 2), dim=0).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    x = as_tensor(x)
    return apply(OPS["softmax"], x, axis=_one_axis("softmax", x, axis, dim))


@_method
def log_softmax(x: Any, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """:math:`x_i - \\log\\sum_j e^{x_j}` along ``axis`` (default -1; ``dim`` is an alias), finite for finite input.

    Examples
    --------
    >>> import chainrule as cr
    >>> round(cr.log_softmax(cr.tensor([0.0, 0.0]), dim=-1)[0].item(), 6)
    -0.693147
    """
    x = as_tensor(x)
    return apply(OPS["log_softmax"], x, axis=_one_axis("log_softmax", x, axis, dim))


@_method
def argmax(
    x: Any,
    axis: int | None = None,
    keepdims: bool | None = None,
    *,
    dim: int | None = None,
    keepdim: bool | None = None,
) -> Tensor:
    """Index of the largest element (of the flattened tensor when ``axis`` is None); no gradient."""
    return _arg_extremum("argmax", np.argmax, x, axis, keepdims, dim, keepdim)


@_method
def argmin(
    x: Any,
    axis: int | None = None,
    keepdims: bool | None = None,
    *,
    dim: int | None = None,
    keepdim: bool | None = None,
) -> Tensor:
    """Index of the smallest element (of the flattened tensor when ``axis`` is None); no gradient."""
    return _arg_extremum("argmin", np.argmin, x, axis, keepdims, dim, keepdim)


def _arg_extremum(op: str, find: Any, x: Any, axis: Any, keepdims: Any, dim: Any, keepdim: Any) -> Tensor:
    x = as_tensor(x)
    if x.data.size == 0:
        raise ShapeError(f"{op}: cannot take the {op} of an empty tensor of shape {x.shape}")
    axes, keep = _reduction(op, x, axis, keepdims, dim, keepdim)
    if axes is not None and len(axes) != 1:
        raise ArgumentError(f"{op}: takes one axis, got {axis if dim is None else dim!r}")
    return _wrap(np.asarray(find(x.data, axis=None if axes is None else axes[0], keepdims=keep), dtype=np.int64))


# -- shape ops ---------------------------------------------------------------------------------------
def _int_shape(op: str, shape: Any) -> tuple[int, ...]:
    """A shape (or axis order) as a tuple of ints; a float such as 2.5 is refused rather than truncated."""
    entries = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        return tuple(operator.index(n) for n in entries)
    except TypeError:
        raise ArgumentError(f"{op}: a shape must be a sequence of integers, got {shape!r}") from None


@_method_as("reshape", "view", loose_shape=True)
def reshape(x: Any, shape: Sequence[int]) -> Tensor:
    """The same elements in a new shape (one entry may be -1)."""
    x = as_tensor(x)
    shape = _int_shape("reshape", shape)
    if shape == x.shape:
        return x
    return apply(OPS["reshape"], x, shape=shape)


@_method
def flatten(x: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim..end_dim`` into one."""
    x = as_tensor(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = normalize_axis(start_dim, x.ndim, "flatten")[0], normalize_axis(end_dim, x.ndim, "flatten")[0]
    if start > end:
        raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}")
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1 :])


@_method_as("permute", loose_shape=True)
def permute(x: Any, dims: Sequence[int]) -> Tensor:
    """Reorder the axes: ``dims[i]`` is the input axis that becomes axis ``i``."""
    x = as_tensor(x)
    dims = _int_shape("permute", dims)
    if sorted(a % x.ndim if x.ndim else a for a in dims) != list(range(x.ndim)):
        raise ShapeError(f"permute: {dims} is not a permutation of the {x.ndim} axes of a tensor of shape {x.shape}")
    return apply(OPS["permute"], x, axes=tuple(a % x.ndim for a in dims))


@_method
def transpose(x: Any, dim0: int = 0, dim1: int = 1) -> Tensor:
    """Swap two axes (PyTorch's ``transpose``)."""
    x = as_tensor(x)
    (a,), (b,) = normalize_axis(dim0, x.ndim, "transpose"), normalize_axis(dim1, x.ndim, "transpose")
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return permute(x, axes)


@_method
def squeeze(x: Any, axis: Any = None) -> Tensor:
    """Remove axes of size 1 (all of them, or those in ``axis``)."""
    x = as_tensor(x)
    axes = [i for i, n in enumerate(x.shape) if n == 1] if axis is None else normalize_axis(axis, x.ndim, "squeeze")
    for a in axes:
        if x.shape[a] != 1:
            raise ShapeError(f"squeeze: axis {a} has size {x.shape[a]}, not 1, in shape {x.shape}")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


@_method
def unsqueeze(x: Any, axis: int) -> Tensor:
    """Insert an axis of size 1 at position ``axis``."""
    x = as_tensor(x)
    (a,) = normalize_axis(axis, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:a] + (1,) + x.shape[a:])


@_method
def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    """Repeat size-1 (and missing leading) axes to reach ``shape``; the gradient sums them back."""
    x = as_tensor(x)
    shape = _int_shape("broadcast_to", shape)
    if shape == x.shape:
        return x
    return apply(OPS["broadcast_to"], x, shape=shape)


@_method_as("expand", loose_shape=True)
def expand(x: Any, shape: Sequence[int]) -> Tensor:
    """PyTorch's ``expand``: :func:`broadcast_to` where -1 keeps a dimension's size."""
    x = as_tensor(x)
    shape = _int_shape("expand", shape)
    lead = len(shape) - x.ndim
    resolved = tuple(x.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(shape))
    return broadcast_to(x, resolved)


def _sequence(op: str, tensors: Any) -> list[Tensor]:
    """The tensors of a ``cat``/``stack`` call, refusing a lone tensor (it would be split along axis 0)."""
    if isinstance(tensors, (Tensor, np.ndarray)) or not isinstance(tensors, Sequence):
        raise ArgumentError(
            f"{op}: expects a sequence (list or tuple) of tensors, got a {type(tensors).__name__}; "
            f"write {op}([a, b]) rather than {op}(a)"
        )
    return [as_tensor(t) for t in tensors]


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing ``axis``; shapes must agree on every other axis.

    Dtypes are promoted as in PyTorch (``float32`` with ``float64`` gives ``float64``).

    Parameters
    ----------
    tensors : list or tuple of Tensor
        At least one; a single tensor is refused (``ArgumentError``).
    axis : int
        The axis to join along.

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.cat([cr.ones(1, 2), cr.zeros(2, 2)]).shape
    (3, 2)
    """
    tensors = _sequence("concatenate", tensors)
    if not tensors:
        raise ShapeError("concatenate: needs at least one tensor")
    ndim = tensors[0].ndim
    if ndim == 0:
        raise ShapeError("concatenate: 0-d tensors cannot be concatenated; use stack")
    (a,) = normalize_axis(axis, ndim, "concatenate")
    for t in tensors[1:]:
        if t.ndim != ndim or t.shape[:a] + t.shape[a + 1 :] != tensors[0].shape[:a] + tensors[0].shape[a + 1 :]:
            shapes = ", ".join(str(t.shape) for t in tensors)
            raise ShapeError(f"concatenate: shapes {shapes} differ outside axis {axis}")
    return apply(OPS["concatenate"], *tensors, axis=a)


cat = concatenate


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join equally shaped tensors along a new ``axis`` (composed from unsqueeze and concatenate).

    Shape: ``k`` tensors of shape ``s`` give ``s`` with ``k`` inserted at ``axis``. A single tensor
    instead of a list is refused (``ArgumentError``).

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.stack([cr.ones(3), cr.zeros(3)], axis=1).shape
    (3, 2)
    """
    tensors = _sequence("stack", tensors)
    if not tensors:
        raise ShapeError("stack: needs at least one tensor")
    first = tensors[0].shape
    normalize_axis(axis, len(first) + 1, "stack")
    if any(t.shape != first for t in tensors):
        raise ShapeError(f"stack: all tensors need the same shape, got {', '.join(str(t.shape) for t in tensors)}")
    return concatenate([unsqueeze(t, axis) for t in tensors], axis=axis)


@_method
def split(x: Any, split_size_or_sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """Split along ``axis`` into pieces of ``split_size`` (last may be smaller) or of the given sizes.

    PyTorch's convention: an int is the size of each piece, a list the sizes of all pieces.
    """
    x = as_tensor(x)
    (a,) = normalize_axis(axis, x.ndim, "split")
    length = x.shape[a]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections <= 0:
            raise ShapeError(f"split: split size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (length // split_size_or_sections)
        if length % split_size_or_sections:
            sizes.append(length % split_size_or_sections)
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if builtins.sum(sizes) != length or any(s < 0 for s in sizes):
            raise ShapeError(f"split: sizes {sizes} do not add up to {length}, the length of axis {axis}")
    pieces, start = [], 0
    for size in sizes:
        pieces.append(x[(slice(None),) * a + (slice(start, start + size),)])
        start += size
    return pieces


def pad(x: Any, pad_width: int | Sequence[Any], value: float = 0.0) -> Tensor:
    """Pad with a constant, NumPy-style: ``pad_width`` is an int or one ``(before, after)`` pair per axis."""
    x = as_tensor(x)
    try:
        widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    except ValueError:
        raise ShapeError(
            f"pad: pad_width {pad_width!r} does not fit a tensor of shape {x.shape}; "
            "give one (before, after) pair per axis"
        ) from None
    if np.any(widths < 0):
        raise ShapeError(f"pad: negative pad widths {pad_width!r}")
    return apply(OPS["pad"], x, pad_width=tuple((int(b), int(e)) for b, e in widths), value=float(value))


# The one loop that makes the declared functions Tensor methods; Tensor's error for a NumPy function on a
# tensor in the graph suggests the function of the same name here.
for _name, _function in _METHODS.items():
    setattr(Tensor, _name, _function)
del _name, _function
_tensor._FUNCTION_NAMES = frozenset(__all__)
