"""The primitive table: every differentiable op, with its forward, VJP and JVP side by side.

Each primitive is a small class registered in :data:`OPS`:

``forward(*inputs, **attrs) -> array``
    NumPy in, NumPy out.
``vjp(xp, grad_out, needs, out, *inputs, **attrs) -> tuple``
    reverse mode: one gradient per input (``None`` where ``needs[i]`` is False or the input is constant).
    The gradient may still have the broadcast shape of the output: the engine sums it back to the
    input's shape in exactly one place (``Tensor._vjp``).
``jvp(xp, tangents, out, *inputs, **attrs) -> tangent``
    forward mode: the output's tangent, given one tangent per input (``None`` for a constant input).

Rules are written once against the namespace ``xp`` and never ask which namespace they got. The engine
passes :data:`numpy_namespace` (each name is the primitive's NumPy forward) or, with ``create_graph=True``,
a namespace whose names build graph nodes, so the very same rule differentiates its own backward pass
(Hessian-vector products, gradient of gradient). Rules therefore use only Python operators and names of
this table, and may reuse the forward output ``out`` (``exp``'s gradient is ``grad_out * out``) so nothing
is computed twice. Values a rule only compares or counts (a ReLU mask, a max's winners) are constants of
the rule; :func:`_raw` gives their values outside any graph: NumPy's for NumPy arrays and tensors, another
library's own arrays for that library, and the constants are computed on the library that holds them
(:func:`_library_of`; a NumPy constant such as a one-hot matrix is copied in by :func:`_constant`).

Fast paths are the engine's choice, not the rule's. A primitive may also define

``fast_vjp(grad_out, needs, out, *inputs, **attrs) -> tuple``
    the same gradients as ``vjp`` (no ``xp``), computed with NumPy arrays in and NumPy arrays out, free to
    use ``out=``, in-place updates, strided views and anything else NumPy offers;
``fast_jvp(tangents, out, *inputs, **attrs) -> tangent``
    likewise for ``jvp``.

When no graph is recorded (``create_graph=False``, every ordinary ``backward()``), ``Tensor._vjp`` and
``Tensor._jvp`` call the fast rule where one exists and the generic rule with :data:`numpy_namespace`
otherwise; recording a graph always runs the generic rule. The two must agree: the op-table tests run
both on every entry of the table and compare them, and check both against the ``saves_inputs`` /
``saves_output`` declaration. This is where compiled kernels plug in: a kernel is a ``fast_vjp`` (or a
faster ``forward``) of the op it speeds up, and nothing else in the engine changes. Today ``relu``,
``sigmoid``, ``max_pool``, ``lstm_layer``, ``gru_layer``, ``conv`` (speed), ``prod`` (products of the others at
zeros in O(n) memory) and ``binary_cross_entropy`` (``log1p``, which the table has no primitive for) have one.
The optional compiled kernels (:mod:`chainrule.compiled`, numba) plug in the same way: ``max_pool``'s forward
runs the 2×2 kernel where numba is installed and the kernels are on, its NumPy code otherwise.

Another array library is the engine's choice too (:mod:`chainrule.backend`). A primitive may define

``array_forward(xp, *inputs, **attrs) -> array``
    its forward on any array-API namespace ``xp`` (``array_api_strict``, CuPy …), using only the standard's
    functions and Python operators.

When ``apply`` gets arrays of a library other than NumPy (a ``type(x) is np.ndarray`` check on the first
input decides, and on the last where the first is a Python number: NumPy's path costs nothing more), it
runs ``array_forward`` on their namespace, and the backward runs the generic rules with
:func:`array_namespace` (each name is that primitive's ``array_forward``), never the NumPy fast rules.
An op without one raises a ``DTypeError`` naming the op and the library. Today every primitive has one,
written with the standard's functions only (``pad`` as a ``concat`` of filled blocks, ``unfold`` as strided
slices, ``fold`` without item assignment, ``erf`` as a series): the whole op table runs on
``array_api_strict`` but for indexing with integer arrays or masks (``getitem``/``scatter_add``: the
standard has no scatter-add). ``tests/test_backend.py`` lists what runs and what does not.

For elementwise one-input ops the Jacobian is diagonal, so the JVP is the VJP applied to the tangent;
each is one row of :func:`elementwise` (its forward, its chain-rule factor ``g * dy/dx``, what that reads, its
array-API forward, where it is smooth, its maths), from which the primitive class, ``chainrule.<name>`` and
its Tensor method, and its op-table test case follow. One-input linear maps (``reshape``, ``sum``,
``getitem`` …) subclass :class:`LinearMap`: they read no values and their JVP is the map itself, so they
write only ``forward`` and the adjoint ``vjp``.

Everything else (``mean``, ``var``, ``gelu``, ``softsign``, ``stack``, ``split``, ``squeeze`` …) is a
composition of these primitives in :mod:`chainrule.functions` and has no rule of its own.
"""

from __future__ import annotations

import math
import operator
import sys
import threading
from collections.abc import Callable, Sequence
from functools import partial
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np

from chainrule import compiled
from chainrule.backend import get_namespace
from chainrule.errors import ArgumentError, DTypeError, ShapeError

__all__ = [
    "Primitive",
    "Elementwise",
    "LinearMap",
    "elementwise",
    "ELEMENTWISE",
    "DOMAINS",
    "OPS",
    "numpy_namespace",
    "array_namespace",
    "normalize_axis",
]

OPS: dict[str, type[Primitive]] = {}


class Primitive:
    """Base of every table entry. Subclasses set ``name`` and write the three rules as staticmethods."""

    name: str = ""
    differentiable: bool = True
    #: integer or boolean inputs are converted to floating point before the forward
    float_only: bool = False
    #: inputs from this position on take part in dtype promotion (``where`` leaves its condition alone)
    promote_from: int = 0
    #: which inputs' values the VJP reads (True: all; else their positions) and whether it reads the output.
    #: The engine records their version counters and refuses a backward after they were changed in place;
    #: shapes and dtypes never change in place, so a rule that only reads those saves nothing.
    saves_inputs: Literal[True] | tuple[int, ...] = True
    saves_output: bool = True
    #: optional NumPy-only rules, ``fast_vjp(grad_out, needs, out, *inputs, **attrs)`` and
    #: ``fast_jvp(tangents, out, *inputs, **attrs)``: the generic rules' results, computed the fastest way
    #: NumPy allows. The engine calls them instead of ``vjp``/``jvp`` when it records no graph.
    fast_vjp: Callable[..., tuple] | None = None
    #: optional forward on any array-API namespace, ``array_forward(xp, *inputs, **attrs)``: what the engine
    #: runs when the inputs belong to another array library (see :mod:`chainrule.backend`); None: NumPy only
    array_forward: Callable[..., Any] | None = None
    fast_jvp: Callable[..., Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            OPS[cls.name] = cls

    @staticmethod
    def forward(*inputs: Any, **attrs: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def vjp(xp: Any, grad_out: Any, needs: Sequence[bool], out: Any, *inputs: Any, **attrs: Any) -> tuple:
        raise NotImplementedError

    @staticmethod
    def jvp(xp: Any, tangents: Sequence[Any], out: Any, *inputs: Any, **attrs: Any) -> Any:
        raise NotImplementedError


class Elementwise(Primitive):
    """A one-input elementwise op: its Jacobian is diagonal, so ``jvp(t) == vjp(t)``.

    Each is declared by one row of :func:`elementwise`."""

    float_only = True
    #: where the op is smooth (see :data:`DOMAINS`): the op-table tests draw its inputs there
    domain: str = "real"

    @classmethod
    def jvp(cls, xp: Any, tangents: Sequence[Any], out: Any, x: Any, **attrs: Any) -> Any:  # type: ignore[override]
        (grad,) = cls.vjp(xp, tangents[0], (True,), out, x, **attrs)
        return grad


class LinearMap(Primitive):
    """A primitive linear in its one input (affine for a fill value): ``reshape``, ``sum``, ``getitem``, ``pad`` ….

    It reads no values, only shapes, and its JVP is the map itself applied to the tangent, with the attributes
    named in ``fill_attrs`` (a constant the map writes, ``pad``'s value) set to 0: subclasses write ``forward``
    and ``vjp``, the adjoint map."""

    saves_inputs = ()
    saves_output = False
    #: attributes that add a constant (an affine map): the tangent map uses 0 for them
    fill_attrs: tuple[str, ...] = ()

    @classmethod
    def jvp(cls, xp: Any, tangents: Sequence[Any], out: Any, x: Any, **attrs: Any) -> Any:
        for key in cls.fill_attrs:
            if key in attrs:
                attrs[key] = 0.0
        return getattr(xp, cls.name)(tangents[0], **attrs)


def _plus(a: Any, b: Any) -> Any:
    """Sum of two tangent contributions where ``None`` stands for zero."""
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def normalize_axis(axis: Any, ndim: int, op: str = "") -> tuple[int, ...]:
    """Return ``axis`` as a sorted tuple of non-negative axes (all axes for ``None``).

    Any integer-like (``int``, ``np.int64``, a one-element integer tensor) is accepted through
    :func:`operator.index`; ``bool`` and ``float`` are not axes.

    Raises
    ------
    ArgumentError
        For an axis that is not an integer (or a sequence of integers).
    ShapeError
        For an axis out of range for ``ndim`` dimensions, or one given twice.

    Examples
    --------
    >>> normalize_axis(-1, 3), normalize_axis((2, 0), 3), normalize_axis(None, 2)
    ((2,), (0, 2), (0, 1))
    """
    if axis is None:
        return tuple(range(ndim))
    prefix = f"{op}: " if op else ""
    parts = axis if isinstance(axis, (tuple, list)) else (axis,)
    result = []
    for part in parts:
        if isinstance(part, (bool, np.bool_)):
            raise ArgumentError(f"{prefix}axis must be an integer, got the bool {part!r}")
        try:
            index = operator.index(part)
        except TypeError:
            raise ArgumentError(f"{prefix}axis must be an integer, got {type(part).__name__} {part!r}") from None
        if not -ndim <= index < ndim:
            raise ShapeError(f"{prefix}axis {index} is out of range for a tensor of {ndim} dimensions")
        result.append(index % ndim)
    if len(set(result)) != len(result):
        raise ShapeError(f"{prefix}axis {tuple(parts)} repeats an axis (tensor of {ndim} dimensions)")
    return tuple(sorted(result))


def _keepdims_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    """The shape a reduction over ``axis`` has with ``keepdims=True``."""
    axes = normalize_axis(axis, len(shape))
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _as_kept(xp: Any, value: Any, in_shape: tuple[int, ...], axis: Any, keepdims: bool) -> Any:
    """Reshape a reduction result (or its gradient) so that it broadcasts against the input."""
    return value if keepdims else xp.reshape(value, shape=_keepdims_shape(in_shape, axis))


# ===================================================================================================
# Arithmetic
# ===================================================================================================
class Add(Primitive):
    name = "add"
    saves_inputs = ()
    saves_output = False

    @staticmethod
    def array_forward(xp, a, b):
        return a + b

    @staticmethod
    def forward(a, b):
        return np.add(a, b)

    @staticmethod
    def vjp(xp, grad_out, needs, out, a, b):
        return grad_out, grad_out

    @staticmethod
    def jvp(xp, tangents, out, a, b):
        return _plus(*tangents)


class Sub(Primitive):
    name = "sub"
    saves_inputs = ()
    saves_output = False

    @staticmethod
    def array_forward(xp, a, b):
        return a - b

    @staticmethod
    def forward(a, b):
        return np.subtract(a, b)

    @staticmethod
    def vjp(xp, grad_out, needs, out, a, b):
        return grad_out, (-grad_out if needs[1] else None)

    @staticmethod
    def jvp(xp, tangents, out, a, b):
        ta, tb = tangents
        return _plus(ta, None if tb is None else -tb)


class Mul(Primitive):
    name = "mul"
    saves_output = False

    @staticmethod
    def array_forward(xp, a, b):
        return a * b

    @staticmethod
    def forward(a, b):
        return np.multiply(a, b)

    @staticmethod
    def vjp(xp, grad_out, needs, out, a, b):
        return (grad_out * b if needs[0] else None), (grad_out * a if needs[1] else None)

    @staticmethod
    def jvp(xp, tangents, out, a, b):
        ta, tb = tangents
        return _plus(None if ta is None else ta * b, None if tb is None else a * tb)


class Div(Primitive):
    name = "div"
    saves_inputs = (1,)
    float_only = True

    @staticmethod
    def array_forward(xp, a, b):
        return a / b

    @staticmethod
    def forward(a, b):
        return np.divide(a, b)

    @staticmethod
    def vjp(xp, grad_out, needs, out, a, b):
        grad_a = grad_out / b if needs[0] else None
        grad_b = -grad_out * out / b if needs[1] else None
        return grad_a, grad_b

    @staticmethod
    def jvp(xp, tangents, out, a, b):
        ta, tb = tangents
        return _plus(None if ta is None else ta / b, None if tb is None else -tb * out / b)


class Pow(Primitive):
    """``a ** b``. Integers stay integers (``int64 ** 2`` is int64, as in PyTorch).

    Gradients, as PyTorch defines them where the formulas meet ``0 * inf``:
    :math:`\\partial/\\partial a = b\\,a^{b-1}`, taken as 0 wherever ``b == 0`` (so ``0 ** 0`` has slope 0);
    :math:`\\partial/\\partial b = a^b \\log a`, taken as 0 wherever ``a == 0`` and ``b >= 0``.
    ``0 ** 0.5`` has slope inf and ``0 ** -1`` slope -inf, as in PyTorch. The exponent's gradient is only
    formed when it is needed.
    """

    name = "pow"

    @staticmethod
    def array_forward(xp, a, b):
        return a**b

    @staticmethod
    def forward(a, b):
        return np.power(a, b)

    @staticmethod
    def _grad_base(xp, scale, a, b):
        if isinstance(b, (int, float)):  # a Python exponent: decide in Python, no mask
            return scale * 0.0 if b == 0 else scale * b * a ** (b - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return xp.where(_raw(b) == 0, 0.0, scale * b * a ** (b - 1))

    @staticmethod
    def _grad_exponent(xp, scale, out, a, b):
        at_zero = (_raw(a) == 0) & (_raw(b) >= 0)
        if isinstance(a, (int, float)):  # a Python base: another library's log takes only its own arrays
            a = _constant(out, a)
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = scale * out * xp.log(a)
        return xp.where(at_zero, 0.0, grad) if np.any(at_zero) else grad

    @staticmethod
    def vjp(xp, grad_out, needs, out, a, b):
        grad_a = Pow._grad_base(xp, grad_out, a, b) if needs[0] else None
        grad_b = Pow._grad_exponent(xp, grad_out, out, a, b) if needs[1] else None
        return grad_a, grad_b

    @staticmethod
    def jvp(xp, tangents, out, a, b):
        ta, tb = tangents
        return _plus(
            None if ta is None else Pow._grad_base(xp, ta, a, b),
            None if tb is None else Pow._grad_exponent(xp, tb, out, a, b),
        )


class _Select(Primitive):
    """Elementwise max/min of two inputs (NaN propagates); at ties the gradient is split evenly between them.

    ``_wins(a, b)`` says where ``a`` alone is the result (``a > b`` for maximum); the subclass names the op."""

    saves_output = False
    _wins: Callable[[Any, Any], Any]
    _numpy: np.ufunc

    @classmethod
    def array_forward(cls, xp, a, b):
        return getattr(xp, cls.name)(a, b)

    @classmethod
    def forward(cls, a, b):
        return cls._numpy(a, b)

    @classmethod
    def vjp(cls, xp, grad_out, needs, out, a, b):
        raw_a, raw_b = _raw(a), _raw(b)
        return _select_vjp(xp, grad_out, needs, a, b, cls._wins(raw_b, raw_a), cls._wins(raw_a, raw_b))

    @classmethod
    def jvp(cls, xp, tangents, out, a, b):
        return _select_jvp(xp, tangents, a, b, cls._wins(a, b))


class Maximum(_Select):
    name, _wins, _numpy = "maximum", staticmethod(operator.gt), np.maximum


class Minimum(_Select):
    name, _wins, _numpy = "minimum", staticmethod(operator.lt), np.minimum


def _select_vjp(xp, grad_out, needs, a, b, a_loses, b_loses):
    """Gradient of an elementwise max/min: the winner takes ``grad_out``, a tie splits it in half, and
    where a NaN is involved neither input loses, so both get it (PyTorch's rule)."""
    ties = _raw(a) == _raw(b)
    half = grad_out * 0.5
    grad_a = xp.where(a_loses, 0.0, xp.where(ties, half, grad_out)) if needs[0] else None
    grad_b = xp.where(b_loses, 0.0, xp.where(ties, half, grad_out)) if needs[1] else None
    return grad_a, grad_b


def _select_jvp(xp, tangents, a, b, a_wins):
    ta, tb = (0.0 if t is None else t for t in tangents)
    return xp.where(a_wins, ta, xp.where(a == b, (ta + tb) * 0.5, tb))


class Where(Primitive):
    """``where(condition, a, b)``: ``a`` where the (boolean, constant) condition holds, else ``b``."""

    name = "where"
    saves_inputs = (0,)
    saves_output = False
    promote_from = 1

    @staticmethod
    def array_forward(xp, condition, a, b):
        return xp.where(condition, a, b)

    @staticmethod
    def forward(condition, a, b):
        return np.where(condition, a, b)

    @staticmethod
    def vjp(xp, grad_out, needs, out, condition, a, b):
        grad_a = xp.where(condition, grad_out, 0.0) if needs[1] else None
        grad_b = xp.where(condition, 0.0, grad_out) if needs[2] else None
        return None, grad_a, grad_b

    @staticmethod
    def jvp(xp, tangents, out, condition, a, b):
        _, ta, tb = tangents
        return xp.where(condition, 0.0 if ta is None else ta, 0.0 if tb is None else tb)


class Matmul(Primitive):
    """Matrix product with NumPy's rules: batched (broadcast) stacks, and 1-d vectors on either side."""

    name = "matmul"
    saves_output = False
    float_only = True

    @staticmethod
    def array_forward(xp, a, b):
        return xp.matmul(a, b)

    @staticmethod
    def forward(a, b):
        a_shape, b_shape = np.shape(a), np.shape(b)
        if not a_shape or not b_shape:
            raise ShapeError(f"matmul: both operands need at least 1 dimension, got shapes {a_shape} and {b_shape}")
        inner_b = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
        if a_shape[-1] != inner_b:
            raise ShapeError(f"matmul: shapes {a_shape} and {b_shape} are not aligned")
        return np.matmul(a, b)

    @staticmethod
    def vjp(xp, grad_out, needs, out, a, b):
        # Promote 1-d operands to matrices, (k,) -> (1, k) on the left and (k,) -> (k, 1) on the right.
        a_vector, b_vector = a.ndim == 1, b.ndim == 1
        a2 = xp.reshape(a, shape=(1, a.shape[0])) if a_vector else a
        b2 = xp.reshape(b, shape=(b.shape[0], 1)) if b_vector else b
        g_shape = tuple(grad_out.shape)
        if a_vector:
            g_shape = g_shape[:-1] + (1,) + g_shape[-1:] if not b_vector else (1, 1)
        if b_vector:
            g_shape = g_shape + (1,) if not a_vector else (1, 1)
        grad2 = xp.reshape(grad_out, shape=g_shape)
        grad_a = grad_b = None
        if needs[0]:
            grad_a = xp.matmul(grad2, _swap_last(xp, b2))  # (..., m, k)
            if a_vector:  # drop the promoted row; the engine sums any batch axes
                grad_a = xp.reshape(grad_a, shape=grad_a.shape[:-2] + grad_a.shape[-1:])
        if needs[1]:
            grad_b = xp.matmul(_swap_last(xp, a2), grad2)  # (..., k, n)
            if b_vector:
                grad_b = xp.reshape(grad_b, shape=grad_b.shape[:-1])
        return grad_a, grad_b

    @staticmethod
    def jvp(xp, tangents, out, a, b):
        ta, tb = tangents
        return _plus(None if ta is None else xp.matmul(ta, b), None if tb is None else xp.matmul(a, tb))


def _swap_last(xp: Any, x: Any) -> Any:
    axes = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return xp.permute(x, axes=axes)


# ===================================================================================================
# Elementwise functions: one row each
# ===================================================================================================
#: The one-input elementwise primitives declared by :func:`elementwise`, by name (also in :data:`OPS`).
ELEMENTWISE: dict[str, type[Elementwise]] = {}

#: Where an elementwise op is smooth, the values the op-table tests draw its inputs from (away from kinks).
DOMAINS = ("real", "positive", "nonzero")


def elementwise(
    name: str,
    forward: Callable[..., Any],
    vjp: Callable[..., Any],
    *,
    reads: Literal["", "x", "y", "xy"],
    array: str | Callable[..., Any] | None = None,
    fast_vjp: Callable[..., Any] | None = None,
    float_only: bool = True,
    domain: str = "real",
    doc: str = "",
) -> type[Elementwise]:
    """Declare a one-input elementwise primitive by its forward and its chain-rule factor, in one row.

    The row is the whole op: the primitive class is built from it and registered in :data:`OPS` and
    :data:`ELEMENTWISE`; :mod:`chainrule.functions` turns it into ``chainrule.<name>`` and ``Tensor.<name>``;
    the op-table tests (``tests/helpers.py``) draw inputs from ``domain`` and check it against central
    differences and PyTorch. Because the Jacobian is diagonal, the JVP is the same rule applied to the tangent.

    Parameters
    ----------
    name : str
        The op's name in the table, the function and the method.
    forward : callable
        ``forward(x, **attrs) -> y`` on NumPy arrays.
    vjp : callable
        ``vjp(xp, g, x, y, **attrs) -> g * dy/dx``, the incoming gradient ``g`` times the local derivative,
        written against the namespace ``xp`` (see the module docstring) from the input ``x`` and output ``y``.
    reads : {"", "x", "y", "xy"}
        What ``vjp`` reads besides ``g`` (the engine refuses a backward after either was changed in place).
    array : str or callable, optional
        The forward on another array library: the name of the array-API function (``"exp"``) or
        ``array(xp, x, **attrs)``; None: NumPy only.
    fast_vjp : callable, optional
        ``fast_vjp(g, x, y, **attrs)``: the same gradient, NumPy only, computed the fastest way.
    float_only : bool
        Convert integer and boolean inputs to floating point first.
    domain : {"real", "positive", "nonzero"}
        Where the op is smooth: anywhere, for ``x > 0`` (``log``) or away from a kink at 0 (``abs``).
    doc : str
        One line of maths for the docstring: the function and its derivative.

    Examples
    --------
    >>> from chainrule.ops import ELEMENTWISE
    >>> ELEMENTWISE["tanh"].saves_output, ELEMENTWISE["tanh"].saves_inputs
    (True, ())
    """
    if reads not in ("", "x", "y", "xy") or domain not in DOMAINS:
        raise ArgumentError(f"elementwise {name}: reads must be '', 'x', 'y' or 'xy' and domain one of {DOMAINS}")

    def rule(xp: Any, grad_out: Any, needs: Sequence[bool], out: Any, x: Any, **attrs: Any) -> tuple:
        return (vjp(xp, grad_out, x, out, **attrs),)

    body: dict[str, Any] = {
        "__doc__": doc,
        "__module__": __name__,
        "name": name,
        "domain": domain,
        "float_only": float_only,
        "saves_inputs": True if "x" in reads else (),
        "saves_output": "y" in reads,
        "forward": staticmethod(forward),
        "vjp": staticmethod(rule),
    }
    if array is not None:
        body["array_forward"] = staticmethod(array if callable(array) else _array_function(array))
    if fast_vjp is not None:

        def fast_rule(grad_out: Any, needs: Sequence[bool], out: Any, x: Any, **attrs: Any) -> tuple:
            return (fast_vjp(grad_out, x, out, **attrs),)

        body["fast_vjp"] = staticmethod(fast_rule)
    op = type("".join(part.title() for part in name.split("_")), (Elementwise,), body)
    ELEMENTWISE[name] = op
    globals()[op.__name__] = op  # ops.Exp, as a class statement would bind it (pickle finds classes by name)
    return op


def _array_function(function: str) -> Callable[..., Any]:
    def array_forward(xp: Any, x: Any) -> Any:
        return getattr(xp, function)(x)

    return array_forward


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return _logistic(x, out=np.empty_like(x))  # out: an array even for 0-d input


def _logistic(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``1 / (1 + e^-x)`` into ``out``, accurate to a few ulp. Below about -88 (float32) e^-x overflows to
    inf and the result is 0, as in PyTorch (the true value is a subnormal number there). Four passes in
    place, no branches (a ``where`` between two stable forms is several times slower)."""
    np.negative(x, out=out)
    with np.errstate(over="ignore", under="ignore"):
        np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


def _array_sigmoid(xp: Any, x: Any) -> Any:
    """The logistic function on array library ``xp``."""
    return 1.0 / (1.0 + xp.exp(-x))


def _sigmoid_fast_vjp(g: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    grad = g * y  # the generic rule's products in the same order, one temporary fewer
    grad *= 1.0 - y
    return grad


def _masked(value: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``value`` where ``mask`` holds, else 0: ``np.where(mask, value, 0)``, for the fast rules.

    On the random masks of ReLU and max pooling NumPy's ``where`` branches per element and is several times
    slower than a product, so finite values are multiplied by the mask; a non-finite one goes through
    ``where``, since a product would turn ``inf · 0`` into NaN.
    """
    if np.isfinite(value).all():
        return value * mask
    return np.where(mask, value, 0.0)


def _softplus(x: np.ndarray) -> np.ndarray:
    with np.errstate(under="ignore"):
        return np.logaddexp(0, x)


_erf_scalar = np.frompyfunc(math.erf, 1, 1)


def _erf(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return np.asarray(_erf_scalar(x), dtype=x.dtype)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _array_erf(xp: Any, x: Any) -> Any:
    r"""The error function on array library ``xp``, which the standard has no function for.

    :math:`\mathrm{erf}(a) = \frac{2a}{\sqrt\pi} e^{-a^2} \sum_{n \ge 0} \frac{(2a^2)^n}{1 \cdot 3 \cdots (2n+1)}`
    (Abramowitz and Stegun 7.1.6) for :math:`a = |x|`, then the sign of x. Every term is positive, so the
    sum loses nothing to cancellation. Past a = 6 (float64) or 4 (float32) erf rounds to 1, so ``a`` is
    clipped there, and 100 or 48 terms reach the sum's last digit at the clip. Against ``math.erf`` on a
    grid over [-7, 7]: within 18 ulp (2e-15) in float64 and 13 ulp (8e-7) in float32; NaN stays NaN, -0.0 too."""
    wide = xp.finfo(x.dtype).bits == 64
    limit, terms = (6.0, 100) if wide else (4.0, 48)
    a = xp.clip(xp.abs(x), 0.0, limit)
    square = a * a
    twice = 2.0 * square
    term, total = xp.ones_like(a), xp.ones_like(a)
    for n in range(1, terms):
        term = term * twice / (2 * n + 1)
        total = total + term
    return xp.copysign(xp.minimum(_TWO_OVER_SQRT_PI * a * xp.exp(-square) * total, 1.0), x)


# fmt: off
elementwise("neg", np.negative, lambda xp, g, x, y: -g, reads="", array=lambda xp, x: -x, float_only=False,
            doc=r":math:`-x`, the ``-`` operator; derivative :math:`-1`.")
elementwise("exp", np.exp, lambda xp, g, x, y: g * y, reads="y", array="exp",
            doc=r":math:`e^x`; derivative :math:`e^x` (the output itself).")
elementwise("log", np.log, lambda xp, g, x, y: g / x, reads="x", array="log", domain="positive",
            doc=r"The natural logarithm :math:`\ln x`; derivative :math:`1/x`.")
elementwise("sqrt", np.sqrt, lambda xp, g, x, y: g * 0.5 / y, reads="y", array="sqrt", domain="positive",
            doc=r":math:`\sqrt{x}`; derivative :math:`1 / (2\sqrt{x})`.")
elementwise("abs", np.abs, lambda xp, g, x, y: g * xp.sign(x), reads="x", array="abs", float_only=False,
            domain="nonzero", doc=r":math:`|x|`; derivative :math:`\mathrm{sign}(x)`, 0 at 0 as in PyTorch.")
elementwise("sin", np.sin, lambda xp, g, x, y: g * xp.cos(x), reads="x", array="sin",
            doc=r":math:`\sin x`; derivative :math:`\cos x`.")
elementwise("cos", np.cos, lambda xp, g, x, y: -g * xp.sin(x), reads="x", array="cos",
            doc=r":math:`\cos x`; derivative :math:`-\sin x`.")
elementwise("atan", np.arctan, lambda xp, g, x, y: g / (1.0 + x * x), reads="x", array="atan",
            doc=r"The inverse tangent :math:`\arctan x`; derivative :math:`1 / (1 + x^2)`.")
elementwise("tanh", np.tanh, lambda xp, g, x, y: g * (1.0 - y * y), reads="y", array="tanh",
            doc=r":math:`\tanh x`; derivative :math:`1 - \tanh^2 x`.")
elementwise("sigmoid", _sigmoid, lambda xp, g, x, y: g * y * (1.0 - y), reads="y",
            array=_array_sigmoid, fast_vjp=_sigmoid_fast_vjp,
            doc=r"The logistic function :math:`\sigma(x) = 1 / (1 + e^{-x})`, finite for any input; "
                r"derivative :math:`\sigma(x)(1 - \sigma(x))`.")
elementwise("relu", lambda x: np.maximum(x, 0), lambda xp, g, x, y: xp.where(~(x <= 0), g, 0.0), reads="x",
            array=lambda xp, x: xp.maximum(x, xp.zeros_like(x)), fast_vjp=lambda g, x, y: _masked(g, ~(x <= 0)),
            float_only=False, domain="nonzero",
            doc=r":math:`\max(x, 0)`; derivative 1 for :math:`x > 0` and NaN inputs, else 0 (also for a "
                "non-finite incoming gradient), as in PyTorch.")
elementwise("leaky_relu", lambda x, *, negative_slope: np.where(x > 0, x, x * negative_slope),
            lambda xp, g, x, y, *, negative_slope: xp.where(x > 0, g, g * negative_slope), reads="x",
            array=lambda xp, x, *, negative_slope: xp.where(x > 0, x, x * negative_slope), domain="nonzero",
            doc=r":math:`x` for :math:`x > 0`, else :math:`a x` (``negative_slope``); derivative 1 or :math:`a`.")
elementwise("elu", lambda x, *, alpha: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))),
            lambda xp, g, x, y, *, alpha: xp.where(x > 0, g, g * (y + alpha)), reads="xy",
            array=lambda xp, x, *, alpha: xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, xp.zeros_like(x)))),
            domain="nonzero",
            doc=r":math:`x` for :math:`x > 0`, else :math:`\alpha (e^x - 1)`; derivative 1 or :math:`y + \alpha`.")
elementwise("softplus", _softplus, lambda xp, g, x, y: g * xp.sigmoid(x), reads="x",
            array=lambda xp, x: xp.logaddexp(xp.zeros_like(x), x),
            doc=r":math:`\log(1 + e^x)`, computed as ``logaddexp(0, x)`` so it is finite for any input; "
                r"derivative :math:`\sigma(x)`.")
elementwise("erf", _erf, lambda xp, g, x, y: g * _TWO_OVER_SQRT_PI * xp.exp(-(x * x)), reads="x", array=_array_erf,
            doc=r"The error function :math:`\frac{2}{\sqrt\pi}\int_0^x e^{-t^2} dt`; derivative "
                r":math:`\frac{2}{\sqrt\pi} e^{-x^2}`.")
elementwise("clip", lambda x, *, min, max: np.clip(x, min, max), lambda xp, g, x, y, *, min, max:
            xp.where(_inside(x, min, max), g, 0.0), reads="x", array=lambda xp, x, *, min, max: xp.clip(x, min, max),
            float_only=False,
            doc=r"Clamp into ``[min, max]`` (either may be None); derivative 1 inside (ends included), else 0.")
# fmt: on


def _inside(x: Any, low: Any, high: Any) -> Any:
    """Where ``low <= x <= high``, a missing bound left out (True when both are)."""
    inside: Any = True
    if low is not None:
        inside = x >= low
    if high is not None:
        inside = (x <= high) if low is None else inside & (x <= high)
    return inside


class Cast(LinearMap):
    """Change the dtype; the gradient is cast back to the input's dtype."""

    name = "cast"
    float_only = False

    @staticmethod
    def array_forward(xp, x, *, dtype):
        return xp.astype(x, _dtype_in(xp, dtype))

    @staticmethod
    def forward(x, *, dtype):
        return np.asarray(x).astype(dtype, copy=False)

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, dtype):
        return (xp.cast(grad_out, dtype=x.dtype),)


# ===================================================================================================
# Reductions
# ===================================================================================================
_SMALL = 4096  # elements: below this a fast rule may pay a copy to save NumPy's per-call overhead


class Sum(LinearMap):
    name = "sum"

    @staticmethod
    def array_forward(xp, x, *, axis=None, keepdims=False):
        return xp.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def forward(x, *, axis=None, keepdims=False):
        # the array's method: np.sum reaches the same reduction through a few microseconds of dispatch
        return np.asarray(x).sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, axis=None, keepdims=False):
        return (xp.broadcast_to(_as_kept(xp, grad_out, x.shape, axis, keepdims), shape=x.shape),)

    @staticmethod
    def fast_vjp(grad_out, needs, out, x, *, axis=None, keepdims=False):
        # the generic rule without the namespace's checks (the forward has validated axis against x already)
        if axis is not None and not keepdims:
            grad_out = np.expand_dims(grad_out, axis)
        if x.size <= _SMALL:  # filling a few numbers is cheaper than broadcast_to's setup of a view
            return (np.full(x.shape, grad_out),)
        return (np.broadcast_to(grad_out, x.shape),)


def _reduce_few(ufunc: np.ufunc, x: Any, axis: Any, keepdims: bool, dtype: Any = None) -> np.ndarray | None:
    """``ufunc.reduce`` over ``axis`` as a loop of elementwise ops when the reduced axes are short, else None.

    NumPy reduces short inner axes (a pooling window's 2 × 2) one tiny row at a time, several times slower
    than a memory bandwidth-bound pass. Here each of the few index combinations of the reduced axes is one
    strided view of ``x``, and ``ufunc(result, view, out=result)`` streams through it. Used for max/min
    (exact, NaN propagates as in ``np.max``) and for counting, on large arrays only.
    """
    if axis is None or not isinstance(x, np.ndarray):
        return None
    axes = normalize_axis(axis, x.ndim)
    combinations = math.prod(x.shape[a] for a in axes)
    if not axes or combinations > 16 or x.size < 4096 * combinations or len(axes) == x.ndim:
        return None
    result: Any = None  # the running result, made from the first part
    for combination in np.ndindex(*(x.shape[a] for a in axes)):
        index = [slice(None)] * x.ndim
        for a, i in zip(axes, combination):
            index[a] = slice(i, i + 1)
        part = x[tuple(index)]
        if result is None:
            result = part.astype(dtype or x.dtype)  # a copy: the running result
        else:
            ufunc(result, part, out=result)
    return result if keepdims else result.reshape([n for a, n in enumerate(x.shape) if a not in axes])


class _Extremum(Primitive):
    """max/min over axes; ties share the gradient evenly (the subgradient PyTorch's ``amax`` uses).

    A group whose result is NaN shares the gradient among its NaN elements (as ``torch.max()``), rather
    than making every gradient of the group NaN.
    """

    float_only = False
    _pairwise: np.ufunc  # np.maximum
    _reduce: Callable[..., Any]  # np.max

    @classmethod
    def forward(cls, x, *, axis=None, keepdims=False):
        if np.size(x) == 0:
            raise ShapeError(f"{cls.name}: cannot reduce an empty tensor of shape {np.shape(x)}")
        few = _reduce_few(cls._pairwise, x, axis, keepdims)  # pooling windows: a few elementwise passes
        return cls._reduce(x, axis=axis, keepdims=keepdims) if few is None else few

    @classmethod
    def array_forward(cls, xp, x, *, axis=None, keepdims=False):
        if math.prod(x.shape) == 0:
            raise ShapeError(f"{cls.name}: cannot reduce an empty tensor of shape {tuple(x.shape)}")
        return getattr(xp, cls.name)(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def _winners(xp, out, x, axis, keepdims):
        # Constants of the rule (no gradient flows through a comparison), so computed on the raw arrays.
        values, result = _raw(x), _raw(out)
        lib = None if type(values) is np.ndarray else _library_of(values)  # NumPy's path: one type check
        if lib is not None:  # another library's arrays: the same constants with its functions
            return _extremum_winners(lib, values, result, axis, keepdims)
        result = result if keepdims else result.reshape(_keepdims_shape(values.shape, axis))
        wins = values == result
        if np.isnan(result).any():  # only then: NaN groups share among their NaNs
            wins |= np.isnan(values) & np.isnan(result)
        count = _reduce_few(np.add, wins, axis, True, dtype=values.dtype)
        if count is None:
            count = np.sum(wins, axis=axis, keepdims=True).astype(values.dtype)
        return wins, count

    @classmethod
    def vjp(cls, xp, grad_out, needs, out, x, *, axis=None, keepdims=False):
        wins, count = cls._winners(xp, out, x, axis, keepdims)
        return (xp.where(wins, _as_kept(xp, grad_out, x.shape, axis, keepdims) / count, 0.0),)

    @classmethod
    def jvp(cls, xp, tangents, out, x, *, axis=None, keepdims=False):
        wins, count = cls._winners(xp, out, x, axis, keepdims)
        shared = xp.sum(xp.where(wins, tangents[0], 0.0), axis=axis, keepdims=True) / count
        return shared if keepdims else xp.reshape(shared, shape=out.shape)


def _extremum_winners(lib: Any, values: Any, result: Any, axis: Any, keepdims: bool) -> tuple[Any, Any]:
    """:meth:`_Extremum._winners` with the array-API functions of ``lib``, the library holding the values."""
    result = result if keepdims else lib.reshape(result, _keepdims_shape(tuple(values.shape), axis))
    wins = values == result
    nan = lib.isnan(result)
    if bool(lib.any(nan)):
        wins = wins | (lib.isnan(values) & nan)
    return wins, lib.sum(lib.astype(wins, values.dtype), axis=axis, keepdims=True)


class Max(_Extremum):
    name, _pairwise, _reduce = "max", np.maximum, staticmethod(np.max)


class Min(_Extremum):
    name, _pairwise, _reduce = "min", np.minimum, staticmethod(np.min)


class Prod(Primitive):
    """Product over axes. The gradient is the product of the other elements, exact at zeros too.

    Without zeros it is ``out / x``. With zeros the product of the others is formed directly: the generic
    rules by a differentiable composition (so second derivatives at zeros are exact too, at n² memory per
    group), the fast NumPy rules by exclusive cumulative products.
    """

    name = "prod"

    @staticmethod
    def array_forward(xp, x, *, axis=None, keepdims=False):
        return xp.prod(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def forward(x, *, axis=None, keepdims=False):
        return np.prod(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, axis=None, keepdims=False):
        kept_grad = _as_kept(xp, grad_out, x.shape, axis, keepdims)
        if _all_nonzero(x):
            return (kept_grad * _as_kept(xp, out, x.shape, axis, keepdims) / x,)
        return (kept_grad * _product_of_others(xp, x, axis),)

    @staticmethod
    def jvp(xp, tangents, out, x, *, axis=None, keepdims=False):
        if _all_nonzero(x):
            return xp.sum(tangents[0] * _as_kept(xp, out, x.shape, axis, keepdims) / x, axis=axis, keepdims=keepdims)
        return xp.sum(tangents[0] * _product_of_others(xp, x, axis), axis=axis, keepdims=keepdims)

    @staticmethod
    def fast_vjp(grad_out, needs, out, x, *, axis=None, keepdims=False):
        if np.all(x != 0):
            return Prod.vjp(numpy_namespace, grad_out, needs, out, x, axis=axis, keepdims=keepdims)
        kept_grad = grad_out if keepdims else np.reshape(grad_out, _keepdims_shape(x.shape, axis))
        return (kept_grad * _product_of_others_numpy(x, axis),)

    @staticmethod
    def fast_jvp(tangents, out, x, *, axis=None, keepdims=False):
        if np.all(x != 0):
            return Prod.jvp(numpy_namespace, tangents, out, x, axis=axis, keepdims=keepdims)
        return np.sum(tangents[0] * _product_of_others_numpy(x, axis), axis=axis, keepdims=keepdims)


def _raw(x: Any) -> Any:
    """The NumPy value behind ``x`` (an array or number already, or a tensor in a create_graph rule).

    For the constants of a rule (masks, winners, which piece of a formula applies): they are compared or
    counted, never differentiated, so they are computed on NumPy values whichever namespace runs the rule.
    """
    if isinstance(x, (np.ndarray, int, float)):
        return x
    return np.asarray(x.data) if hasattr(x, "_ctx") else x  # a tensor; else another array library's array


def _library_of(values: Any) -> Any:
    """The array library of a rule's raw values (see :func:`_raw`): None for NumPy's, else its namespace.

    A rule's constants are computed on the library that holds the values: NumPy's code as it always was,
    another library's through its array-API functions (no copy to NumPy and back)."""
    return None if isinstance(values, (np.ndarray, np.generic, int, float)) else get_namespace(values)


def _all_nonzero(x: Any) -> bool:
    """Whether no element of ``x`` is 0 (a constant of the rule)."""
    values = _raw(x)
    lib = _library_of(values)
    return bool(np.all(values != 0) if lib is None else lib.all(values != 0))


def _constant(like: Any, value: Any) -> Any:
    """A rule's constant ``value`` (a fixed NumPy mask, a Python number) where it can meet ``like``: itself when
    ``like`` holds NumPy values (an array, or a tensor of a recorded graph), else copied into ``like``'s library
    (a Python float becomes a 0-d array of its default floating dtype, float64 where it has one)."""
    lib = _library_of(_raw(like))
    return value if lib is None else lib.asarray(value, device=_raw(like).device)


def _group_order(ndim: int, axis: Any) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Axes order that moves the reduced ``axis`` last, the order that moves them back, and how many are kept."""
    axes = normalize_axis(axis, ndim)
    kept = [i for i in range(ndim) if i not in axes]
    order = tuple(kept + list(axes))
    return order, tuple(np.argsort(order).tolist()), len(kept)


def _product_of_others(xp: Any, x: Any, axis: Any) -> Any:
    """For each element, the product of the other elements of its reduction group (same shape as ``x``).

    Row i of an (n, n) matrix is the group with element i replaced by 1; its product is the product of
    the others, and differentiable (n² memory; :func:`_product_of_others_numpy` is the O(n) fast form).
    """
    order, back, kept = _group_order(x.ndim, axis)
    moved = xp.permute(x, axes=order)
    group_shape = tuple(moved.shape[:kept])
    n = int(np.prod(moved.shape[kept:], dtype=np.int64))
    rows = xp.reshape(moved, shape=group_shape + (1, n))  # (..., 1, n)
    rows = xp.where(_constant(x, np.eye(n, dtype=bool)), 1.0, rows)  # (..., n, n)
    others = xp.prod(rows, axis=(len(group_shape) + 1,))  # (..., n)
    return xp.permute(xp.reshape(others, shape=tuple(moved.shape)), axes=back)


def _product_of_others_numpy(x: np.ndarray, axis: Any) -> np.ndarray:
    """:func:`_product_of_others` by exclusive cumulative products from both ends (O(n), NumPy only)."""
    order, back, kept = _group_order(x.ndim, axis)
    moved = np.transpose(x, order)
    flat = moved.reshape(moved.shape[:kept] + (-1,))
    ones = np.ones(flat.shape[:-1] + (1,), dtype=x.dtype)
    before = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    after = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    return np.transpose((before * after).reshape(moved.shape), back)


class Logsumexp(Primitive):
    """:math:`\\log \\sum_i e^{x_i}`, shifted by the maximum so it is finite for any finite input."""

    name = "logsumexp"
    float_only = True

    @staticmethod
    def array_forward(xp, x, *, axis=None, keepdims=False):
        shift = xp.max(x, axis=axis, keepdims=True)
        shift = xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))
        total = xp.sum(xp.exp(x - shift), axis=axis, keepdims=keepdims)
        return xp.log(total) + xp.reshape(shift, total.shape)

    @staticmethod
    def forward(x, *, axis=None, keepdims=False):
        if np.size(x) == 0:
            raise ShapeError(f"logsumexp: cannot reduce an empty tensor of shape {np.shape(x)}")
        result = _logsumexp_kept(x, axis)
        return result if keepdims else np.squeeze(result, axis=normalize_axis(axis, np.ndim(x)))

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, axis=None, keepdims=False):
        softmax = xp.exp(x - _as_kept(xp, out, x.shape, axis, keepdims))
        return (_as_kept(xp, grad_out, x.shape, axis, keepdims) * softmax,)

    @staticmethod
    def jvp(xp, tangents, out, x, *, axis=None, keepdims=False):
        softmax = xp.exp(x - _as_kept(xp, out, x.shape, axis, keepdims))
        return xp.sum(softmax * tangents[0], axis=axis, keepdims=keepdims)


def _logsumexp_kept(x: np.ndarray, axis: Any) -> np.ndarray:
    """``log Σ exp(x)`` over ``axis`` with kept dimensions, shifted by the maximum (by 0 where that is infinite)."""
    shift = np.max(x, axis=axis, keepdims=True)
    if not np.isfinite(shift).all():
        shift = np.where(np.isfinite(shift), shift, 0)
    with np.errstate(under="ignore"):
        total = np.sum(np.exp(x - shift), axis=axis, keepdims=True)
    return np.log(total) + shift


class Softmax(Primitive):
    """:math:`e^{x_i} / \\sum_j e^{x_j}` along ``axis``; VJP :math:`y \\odot (g - \\langle g, y\\rangle)`."""

    name = "softmax"
    saves_inputs = ()
    float_only = True

    @staticmethod
    def array_forward(xp, x, *, axis=-1):
        exps = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
        return exps / xp.sum(exps, axis=axis, keepdims=True)

    @staticmethod
    def forward(x, *, axis=-1):
        with np.errstate(under="ignore"):
            exps = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return exps / np.sum(exps, axis=axis, keepdims=True)

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, axis=-1):
        return (out * (grad_out - xp.sum(grad_out * out, axis=axis, keepdims=True)),)

    @staticmethod
    def jvp(xp, tangents, out, x, *, axis=-1):
        tangent = tangents[0]
        return out * (tangent - xp.sum(out * tangent, axis=axis, keepdims=True))


class LogSoftmax(Primitive):
    """:math:`x_i - \\log\\sum_j e^{x_j}` along ``axis``; VJP :math:`g - e^{y} \\sum_j g_j`."""

    name = "log_softmax"
    saves_inputs = ()
    float_only = True

    @staticmethod
    def array_forward(xp, x, *, axis=-1):
        shifted = x - xp.max(x, axis=axis, keepdims=True)
        return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))

    @staticmethod
    def forward(x, *, axis=-1):
        shifted = x - np.max(x, axis=axis, keepdims=True)
        with np.errstate(under="ignore"):
            return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, axis=-1):
        return (grad_out - xp.exp(out) * xp.sum(grad_out, axis=axis, keepdims=True),)

    @staticmethod
    def jvp(xp, tangents, out, x, *, axis=-1):
        tangent = tangents[0]
        return tangent - xp.sum(xp.exp(out) * tangent, axis=axis, keepdims=True)


class SoftmaxCrossEntropy(Primitive):
    """Weighted softmax cross-entropy of class indices, from logits, in one node.

    :math:`\\ell_i = w_i \\big(\\log\\sum_c e^{z_{ic}} - z_{i y_i}\\big)`, and the gradient
    :math:`\\partial \\ell_i / \\partial z_{ic} = w_i\\,(\\mathrm{softmax}(z_i)_c - [c = y_i])`: neither the
    (M, C) log-probabilities nor the gather of the label's entry become nodes of the graph.

    Shapes: logits (M, C); attributes ``labels`` (M,) integer class indices and ``weights`` (M,) in the
    logits' dtype (class weights, 0 for ignored samples, and the 1/Σw of a mean already folded in). The
    result is :math:`\\sum_i \\ell_i` when ``reduce`` is true, else the (M,) vector of :math:`\\ell_i`.
    """

    name = "softmax_cross_entropy"
    saves_output = False
    float_only = True

    @staticmethod
    def array_forward(xp, logits, *, labels, weights, reduce):
        hot = _label_mask(xp, labels, logits.shape[1], logits.device)  # (M, C), True at each row's label
        picked = xp.sum(xp.where(hot, logits, 0.0), axis=1)  # the label's logit, exact (no 0 * inf)
        losses = (Logsumexp.array_forward(xp, logits, axis=1) - picked) * _sample_weights(logits, weights)
        return xp.sum(losses) if reduce else losses

    @staticmethod
    def forward(logits, *, labels, weights, reduce):
        losses = _logsumexp_kept(logits, 1)[:, 0] - logits[np.arange(len(labels)), labels]
        losses *= weights.astype(logits.dtype, copy=False)
        return np.sum(losses) if reduce else losses

    @staticmethod
    def vjp(xp, grad_out, needs, out, logits, *, labels, weights, reduce):
        residual = xp.softmax(logits, axis=1) - _one_hot(labels, logits)  # (M, C)
        weights = _sample_weights(logits, weights)
        scale = xp.reshape(grad_out * weights, shape=(-1, 1))  # (M, 1); grad_out is 0-d when reduced
        return (residual * scale,)

    @staticmethod
    def jvp(xp, tangents, out, logits, *, labels, weights, reduce):
        residual = xp.softmax(logits, axis=1) - _one_hot(labels, logits)
        per_sample = xp.sum(residual * tangents[0], axis=1) * _sample_weights(logits, weights)
        return xp.sum(per_sample) if reduce else per_sample


class LSTMCell(Primitive):
    """The elementwise part of an LSTM step, from gate pre-activations to the new state, in one node.

    ``gates`` (N, 4H) in PyTorch's order (input, forget, cell, output) and ``c_prev`` (N, H) -> (7, N, H):
    the rows are :math:`h_t = o \\odot k`, :math:`c_t = f \\odot c_{t-1} + i \\odot g`, then the activations
    :math:`i, f, g, o` and :math:`k = \\tanh c_t`, where :math:`i, f, o = \\sigma(\\cdot)` and
    :math:`g = \\tanh(\\cdot)` of the four column blocks. The layer reads rows 0 and 1; the others are there
    so the backward reuses the activations (NumPy's exp and tanh are the cell's main cost) instead of
    computing them again.

    VJP, with the output's gradient rows :math:`a, b, \\bar i, \\bar f, \\bar g, \\bar o, \\bar k`:
    :math:`\\delta c = b + (a \\odot o + \\bar k)(1 - k^2)`, then
    :math:`\\partial\\text{gates} = [(\\delta c\\, g + \\bar i)\\, i(1-i),\\;
    (\\delta c\\, c_{t-1} + \\bar f) f(1-f),\\; (\\delta c\\, i + \\bar g)(1-g^2),\\; (a\\, k + \\bar o)\\, o(1-o)]` and
    :math:`\\partial c_{t-1} = \\delta c \\odot f`. One node instead of fourteen keeps the per-time-step Python
    work of a recurrent layer small.
    """

    name = "lstm_cell"
    float_only = True

    @staticmethod
    def array_forward(xp, gates, c_prev):
        i, f, g, o = _lstm_blocks(gates)
        i, f, g, o = _array_sigmoid(xp, i), _array_sigmoid(xp, f), xp.tanh(g), _array_sigmoid(xp, o)
        c = f * c_prev + i * g
        k = xp.tanh(c)
        return xp.stack([o * k, c, i, f, g, o, k])

    @staticmethod
    def forward(gates, c_prev):
        out = np.empty((7, gates.shape[0], gates.shape[1] // 4), dtype=gates.dtype)
        _lstm_cell_into(gates, c_prev, out)
        return out

    @staticmethod
    def vjp(xp, grad_out, needs, out, gates, c_prev):
        grad_gates, grad_c_prev = _lstm_cell_vjp(xp, grad_out[0, ...], grad_out[1, ...], grad_out, out, c_prev)
        return grad_gates, (grad_c_prev if needs[1] else None)

    @staticmethod
    def jvp(xp, tangents, out, gates, c_prev):
        t_gates = np.zeros(np.shape(gates), dtype=gates.dtype) if tangents[0] is None else tangents[0]
        t_c_prev = np.zeros(np.shape(c_prev), dtype=gates.dtype) if tangents[1] is None else tangents[1]
        rows = _lstm_cell_jvp(t_gates, t_c_prev, out, c_prev)
        return xp.concatenate(*(xp.reshape(row, shape=(1, *np.shape(c_prev))) for row in rows), axis=0)


def _lstm_blocks(gates: Any) -> tuple:
    """The four (N, H) column blocks of (N, 4H) gate values: input, forget, cell, output."""
    size = gates.shape[1] // 4
    return tuple(gates[:, j * size : (j + 1) * size] for j in range(4))


def _lstm_cell_into(gates: np.ndarray, c_prev: np.ndarray, rows: np.ndarray) -> None:
    """The LSTM step's seven rows (h, c, i, f, g, o, tanh c), each (N, H), written into ``rows`` (7, N, H)."""
    size = gates.shape[1] // 4
    h, c, i, f, g, o, k = rows
    _logistic(gates[:, :size], out=i)
    _logistic(gates[:, size : 2 * size], out=f)
    np.tanh(gates[:, 2 * size : 3 * size], out=g)
    _logistic(gates[:, 3 * size :], out=o)
    np.multiply(f, c_prev, out=c)
    c += i * g
    np.tanh(c, out=k)
    np.multiply(o, k, out=h)


def _lstm_cell_vjp(xp: Any, grad_h: Any, grad_c: Any, grad_rows: Any, rows: Any, c_prev: Any) -> tuple[Any, Any]:
    """One LSTM step backwards: (∂gates (N, 4H), ∂c_prev) from the gradients of h_t and c_t (``grad_h``,
    ``grad_c``: the step's own plus what flows back from the later steps) and of the activation rows 2-6 of
    ``grad_rows`` (None: zero); ``rows`` are the step's forward rows (h, c, i, f, g, o, tanh c)."""
    i, f, g, o, k = (rows[row, ...] for row in range(2, 7))
    if grad_rows is None:  # no gradient on the activation rows (a whole layer's step)
        delta_c = grad_c + grad_h * o * (1.0 - k * k)
        grad_gates = xp.concatenate(
            delta_c * g * i * (1.0 - i),
            delta_c * c_prev * f * (1.0 - f),
            delta_c * i * (1.0 - g * g),
            grad_h * k * o * (1.0 - o),
            axis=1,
        )
        return grad_gates, delta_c * f
    grad_i, grad_f, grad_g, grad_o, grad_k = (grad_rows[row, ...] for row in range(2, 7))
    delta_c = grad_c + (grad_h * o + grad_k) * (1.0 - k * k)
    grad_gates = xp.concatenate(
        (delta_c * g + grad_i) * i * (1.0 - i),
        (delta_c * c_prev + grad_f) * f * (1.0 - f),
        (delta_c * i + grad_g) * (1.0 - g * g),
        (grad_h * k + grad_o) * o * (1.0 - o),
        axis=1,
    )
    return grad_gates, delta_c * f


def _lstm_cell_jvp(t_gates: Any, t_c_prev: Any, rows: Any, c_prev: Any) -> tuple:
    """One LSTM step forwards in tangents: the tangents of the seven rows, from those of the gates and c_prev."""
    i, f, g, o, k = (rows[row, ...] for row in range(2, 7))
    t_i, t_f, t_g, t_o = _lstm_blocks(t_gates)
    t_i, t_f, t_g, t_o = t_i * i * (1.0 - i), t_f * f * (1.0 - f), t_g * (1.0 - g * g), t_o * o * (1.0 - o)
    t_c = t_f * c_prev + f * t_c_prev + t_i * g + i * t_g
    t_k = (1.0 - k * k) * t_c
    return (t_o * k + o * t_k, t_c, t_i, t_f, t_g, t_o, t_k)


# ===================================================================================================
# Whole recurrent layers: one node per layer, the loop over time steps inside the rules
# ===================================================================================================
# Each layer's forward keeps, besides its output, the per-step activations its backward reuses (NumPy's exp
# and tanh are a recurrent step's main cost): the output is a view of a larger buffer, ``out.base``, whose
# other rows hold them. Only the NumPy fast rules read that buffer; the generic rules, which must also
# differentiate themselves under ``create_graph=True``, recompute the activations step by step with the
# table's own ops (``linear``, ``lstm_cell`` …), the per-step composition the layers used to record.
def _check_recurrent(op: str, gates: int, x: Any, h0: Any, w_ih: Any, w_hh: Any, *rest: Any) -> None:
    """Shapes of a recurrent layer's inputs: x (T, N, in), states (N, H), weights (G·H, in), (G·H, H),
    biases (G·H,); ``rest`` holds c0 (LSTM) and the biases, None where absent."""
    x_shape, h_shape = np.shape(x), np.shape(h0)
    if len(x_shape) != 3 or len(h_shape) != 2:
        raise ShapeError(f"{op}: expected input (T, N, in) and state (N, H), got shapes {x_shape} and {h_shape}")
    batch, size = h_shape
    expected: list[tuple[int, ...]] = [(x_shape[1], size), (gates * size, x_shape[2]), (gates * size, size)]
    actual: list[tuple[int, ...]] = [h_shape, np.shape(w_ih), np.shape(w_hh)]
    for value in rest:
        if value is not None:
            actual.append(np.shape(value))
            expected.append((batch, size) if np.ndim(value) == 2 else (gates * size,))
    if actual != expected or x_shape[0] == 0:
        raise ShapeError(
            f"{op}: input shapes {[x_shape, *actual]} do not fit together (expected state {expected[0]}, "
            f"weights {expected[1]} and {expected[2]}, biases ({gates * size},), a sequence of at least one step)"
        )


def _input_projection(x: np.ndarray, w_ih: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``x @ w_ihᵀ + bias`` for every time step at once: (T, N, in) -> (T, N, G·H), one GEMM."""
    steps, batch, features = x.shape
    projected = np.matmul(x.reshape(steps * batch, features), w_ih.T)
    if bias is not None:
        projected += bias
    return projected.reshape(steps, batch, w_ih.shape[0])


def _weight_gradient(grads: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """``gradsᵀ @ inputs`` over all (time step, sample) rows: (R, G·H), (R, K) -> (G·H, K), one GEMM.

    Computed as ``(inputsᵀ @ grads)ᵀ``: OpenBLAS runs that orientation faster for these tall, narrow
    operands (see docs/design-speed.md); the result is the transposed view, which every consumer accepts."""
    return np.matmul(inputs.T, grads).T


def _previous_rows(first: np.ndarray, states: np.ndarray) -> np.ndarray:
    """The state each step starts from, h_0 then ``states[:-1]``, as the (T·N, H) rows of a weight gradient."""
    return np.concatenate((first[None], states[:-1])).reshape(-1, first.shape[-1])


def _saved_rows(out: np.ndarray, rows: int, recompute: Callable[[], np.ndarray]) -> np.ndarray:
    """The forward's buffer (rows, T, N, H) behind ``out`` (see above), or the same recomputed where ``out``
    is not a view of one (a copy of the output handed to the rule directly)."""
    base = out.base
    if isinstance(base, np.ndarray) and base.shape == (rows, *out.shape[-3:]) and base.dtype == out.dtype:
        return base
    return recompute()


def _sequence(xp: Any, steps: Sequence[Any]) -> Any:
    """Arrays (N, K) stacked into one (len, N, K), with the table's ops (so it records a graph when it must)."""
    return xp.concatenate(*(xp.reshape(step, shape=(1, *step.shape)) for step in steps), axis=0)


def _sequence_weight_grad(xp: Any, grads: Any, inputs: Any) -> Any:
    """Σ_t grads_tᵀ inputs_t for (T, N, G·H) and (T, N, K): one matrix product over all T·N rows."""
    rows = xp.reshape(grads, shape=(-1, grads.shape[-1]))
    columns = xp.reshape(inputs, shape=(-1, inputs.shape[-1]))
    return xp.matmul(xp.permute(rows, axes=(1, 0)), columns)


def _input_tangent(xp: Any, tx: Any, x: Any, w_ih: Any, tw_ih: Any) -> Any:
    """Tangent of the input projection ``x @ w_ihᵀ`` of all steps, (T, N, G·H) (None where both are None)."""
    result = None if tx is None else xp.matmul(tx, xp.permute(w_ih, axes=(1, 0)))
    return _plus(result, None if tw_ih is None else xp.matmul(x, xp.permute(tw_ih, axes=(1, 0))))


def _hidden_tangent(xp: Any, th: Any, h_prev: Any, w_hh: Any, tw_hh: Any, tb: Any, like: tuple, dtype: Any) -> Any:
    """Tangent of ``h_prev @ w_hhᵀ (+ b)`` for one step, zeros of shape ``like`` where no tangent flows."""
    result = None if th is None else xp.matmul(th, xp.permute(w_hh, axes=(1, 0)))
    result = _plus(result, None if tw_hh is None else xp.matmul(h_prev, xp.permute(tw_hh, axes=(1, 0))))
    if result is None:
        result = np.zeros(like, dtype=dtype)
    return _plus(result, tb)


def _slope_times(value: np.ndarray, y: np.ndarray, scratch: np.ndarray, kind: str) -> None:
    """``value *= σ'`` or ``tanh'`` written through the output ``y``: y (1 - y) or 1 - y², in place."""
    np.multiply(y, y, out=scratch)
    np.subtract(y if kind == "sigmoid" else 1.0, scratch, out=scratch)
    value *= scratch


def _lstm_steps(xp: Any, x: Any, h0: Any, c0: Any, w_ih: Any, w_hh: Any, bias: Any) -> list:
    """The LSTM layer's forward as the per-step composition of table ops: T arrays (7, N, H) of
    :class:`LSTMCell` rows (differentiable when ``xp`` records a graph)."""
    weight = xp.concatenate(w_ih, w_hh, axis=1)  # (4H, in + H)
    rows, h, c = [], h0, c0
    for t in range(x.shape[0]):
        joined = xp.concatenate(x[t, ...], h, axis=1)
        gates = xp.linear(joined, weight) if bias is None else xp.linear(joined, weight, bias)
        rows.append(xp.lstm_cell(gates, c))
        h, c = rows[-1][0, ...], rows[-1][1, ...]
    return rows


class LSTMLayer(Primitive):
    """A whole LSTM layer over a sequence, one direction, in one node.

    Inputs: x (T, N, in), h_0 and c_0 (N, H), ``w_ih`` (4H, in), ``w_hh`` (4H, H) and the summed bias
    :math:`b_{ih} + b_{hh}` (4H,) or nothing. Output (2, T, N, H): :math:`h_t` and :math:`c_t` of every step, with
    the gates :math:`x_t W_{ih}^T + h_{t-1} W_{hh}^T + b` of :class:`LSTMCell` (order i, f, g, o) at each step.

    The forward computes the input projection of all T steps as one GEMM, then loops over the steps (one
    (N, H) × (H, 4H) product and the cell each). The VJP runs the same loop backwards, one
    :math:`\\partial h_{t-1} = \\partial\\text{gates}_t W_{hh}` product per step, and then the input gradient
    :math:`\\partial\\text{gates}\\, W_{ih}`, :math:`\\partial W_{ih} = \\sum_t \\partial\\text{gates}_t^T x_t`,
    :math:`\\partial W_{hh} = \\sum_t \\partial\\text{gates}_t^T h_{t-1}` and the bias gradient as one GEMM (or
    sum) each over all T·N rows. One node instead of about 5 T keeps the Python work per step small. The
    activations :math:`i, f, g, o, \\tanh c_t` stay in the output's buffer for the fast VJP (see above).

    Examples
    --------
    >>> import numpy as np
    >>> out = LSTMLayer.forward(np.zeros((5, 2, 3)), np.zeros((2, 4)), np.zeros((2, 4)), np.ones((16, 3)),
    ...                         np.ones((16, 4)))
    >>> out.shape, float(out.base[2, 0, 0, 0])  # sigmoid(0): the input gate, kept for the backward
    ((2, 5, 2, 4), 0.5)
    """

    name = "lstm_layer"
    float_only = True
    # every input: the generic rules recompute the activations (the fast VJP reads all but the biases)
    saves_inputs = True

    @staticmethod
    def array_forward(xp, x, h0, c0, w_ih, w_hh, bias=None):
        # the generic rules' per-step composition, run on the library's table namespace
        _check_recurrent("lstm_layer", 4, x, h0, w_ih, w_hh, c0, bias)
        rows = _lstm_steps(array_namespace(xp), x, h0, c0, w_ih, w_hh, bias)
        return xp.stack([xp.stack([step[0, ...] for step in rows]), xp.stack([step[1, ...] for step in rows])])

    @staticmethod
    def forward(x, h0, c0, w_ih, w_hh, bias=None):
        _check_recurrent("lstm_layer", 4, x, h0, w_ih, w_hh, c0, bias)
        return LSTMLayer.all_rows(x, h0, c0, w_ih, w_hh, bias)[:2]

    @staticmethod
    def all_rows(x, h0, c0, w_ih, w_hh, bias=None):
        """The forward's buffer (7, T, N, H): per step the rows of :class:`LSTMCell` (h, c, i, f, g, o, tanh c)."""
        projected = _input_projection(x, w_ih, bias)  # (T, N, 4H)
        steps, batch, size = x.shape[0], h0.shape[0], h0.shape[1]
        rows = np.empty((7, steps, batch, size), dtype=projected.dtype)
        gates = np.empty((batch, 4 * size), dtype=projected.dtype)
        h, c = h0, c0
        for t in range(steps):
            np.matmul(h, w_hh.T, out=gates)
            gates += projected[t]
            _lstm_cell_into(gates, c, rows[:, t])
            h, c = rows[0, t], rows[1, t]
        return rows

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, h0, c0, w_ih, w_hh, bias=None):
        rows = _lstm_steps(xp, x, h0, c0, w_ih, w_hh, bias)
        steps = len(rows)
        grad_h = grad_c = None  # what flows back into step t from the steps after it
        grad_gates: list = [None] * steps
        for t in reversed(range(steps)):
            own_h = grad_out[0, t, ...] if grad_h is None else grad_out[0, t, ...] + grad_h
            own_c = grad_out[1, t, ...] if grad_c is None else grad_out[1, t, ...] + grad_c
            c_prev = c0 if t == 0 else rows[t - 1][1, ...]
            grad_gates[t], grad_c = _lstm_cell_vjp(xp, own_h, own_c, None, rows[t], c_prev)
            grad_h = xp.matmul(grad_gates[t], w_hh)
        gates = _sequence(xp, grad_gates)  # (T, N, 4H)
        h_prev = _sequence(xp, [h0] + [step[0, ...] for step in rows[:-1]])  # (T, N, H)
        return (
            xp.matmul(gates, w_ih) if needs[0] else None,
            grad_h if needs[1] else None,
            grad_c if needs[2] else None,
            _sequence_weight_grad(xp, gates, x) if needs[3] else None,
            _sequence_weight_grad(xp, gates, h_prev) if needs[4] else None,
            *((xp.sum(gates, axis=(0, 1)) if needs[5] else None,) if len(needs) > 5 else ()),
        )

    @staticmethod
    def jvp(xp, tangents, out, x, h0, c0, w_ih, w_hh, bias=None):
        rows = _lstm_steps(xp, x, h0, c0, w_ih, w_hh, bias)
        tx, th, tc, tw_ih, tw_hh = tangents[:5]
        t_projected = _input_tangent(xp, tx, x, w_ih, tw_ih)
        t_bias = tangents[5] if len(tangents) > 5 else None
        batch, size = h0.shape
        if tc is None:
            tc = np.zeros((batch, size), dtype=out.dtype)
        t_hs, t_cs = [], []
        for t in range(x.shape[0]):
            h_prev, c_prev = (h0, c0) if t == 0 else (rows[t - 1][0, ...], rows[t - 1][1, ...])
            t_gates = _hidden_tangent(xp, th, h_prev, w_hh, tw_hh, t_bias, (batch, 4 * size), out.dtype)
            if t_projected is not None:
                t_gates = t_gates + t_projected[t, ...]
            th, tc = _lstm_cell_jvp(t_gates, tc, rows[t], c_prev)[:2]
            t_hs.append(th)
            t_cs.append(tc)
        return _sequence(xp, [_sequence(xp, t_hs), _sequence(xp, t_cs)])

    @staticmethod
    def fast_vjp(grad_out, needs, out, x, h0, c0, w_ih, w_hh, bias=None):
        rows = _saved_rows(out, 7, lambda: LSTMLayer.all_rows(x, h0, c0, w_ih, w_hh, bias))
        _, steps, batch, size = rows.shape
        dtype = rows.dtype
        grad_gates = np.empty((steps, batch, 4 * size), dtype=dtype)
        grad_h, grad_c = np.zeros((batch, size), dtype=dtype), np.zeros((batch, size), dtype=dtype)
        delta_c, scratch = np.empty((batch, size), dtype=dtype), np.empty((batch, size), dtype=dtype)
        for t in reversed(range(steps)):
            _, _, i, f, g, o, k = rows[:, t]
            grad_i, grad_f, grad_g, grad_o = _lstm_blocks(grad_gates[t])
            c_prev = c0 if t == 0 else rows[1, t - 1]
            grad_h += grad_out[0, t]
            np.multiply(grad_h, o, out=delta_c)  # δc = ∂c_t + ∂h_t o (1 - tanh² c_t)
            _slope_times(delta_c, k, scratch, "tanh")
            delta_c += grad_c
            delta_c += grad_out[1, t]
            for target, first, second, gate, kind in (
                (grad_o, grad_h, k, o, "sigmoid"),  # ∂o = ∂h_t tanh c_t
                (grad_i, delta_c, g, i, "sigmoid"),  # ∂i = δc g
                (grad_f, delta_c, c_prev, f, "sigmoid"),  # ∂f = δc c_{t-1}
                (grad_g, delta_c, i, g, "tanh"),  # ∂g = δc i
            ):
                np.multiply(first, second, out=target)
                _slope_times(target, gate, scratch, kind)
            np.multiply(delta_c, f, out=grad_c)
            np.matmul(grad_gates[t], w_hh, out=grad_h)
        flat = grad_gates.reshape(steps * batch, 4 * size)
        return (
            np.matmul(flat, w_ih).reshape(x.shape) if needs[0] else None,
            grad_h if needs[1] else None,
            grad_c if needs[2] else None,
            _weight_gradient(flat, x.reshape(steps * batch, x.shape[2])) if needs[3] else None,
            _weight_gradient(flat, _previous_rows(h0, rows[0])) if needs[4] else None,
            *((flat.sum(axis=0) if needs[5] else None,) if len(needs) > 5 else ()),
        )


def _gru_step(xp: Any, x_t: Any, h: Any, w_ih: Any, w_hh: Any, b_ih: Any, b_hh: Any) -> tuple:
    """One GRU step as a composition of table ops: (h_t, r, z, n, m_n) (see :class:`GRULayer`)."""
    size = h.shape[1]
    a = xp.linear(x_t, w_ih) if b_ih is None else xp.linear(x_t, w_ih, b_ih)  # (N, 3H)
    m = xp.linear(h, w_hh) if b_hh is None else xp.linear(h, w_hh, b_hh)
    reset_update = xp.sigmoid(a[:, : 2 * size] + m[:, : 2 * size])
    r, z = reset_update[:, :size], reset_update[:, size:]
    m_n = m[:, 2 * size :]
    n = xp.tanh(a[:, 2 * size :] + r * m_n)
    return n + z * (h - n), r, z, n, m_n


class GRULayer(Primitive):
    r"""A whole GRU layer over a sequence, one direction, in one node (PyTorch's gate order r, z, n).

    Inputs: x (T, N, in), h_0 (N, H), ``w_ih`` (3H, in), ``w_hh`` (3H, H), and the biases ``b_ih``, ``b_hh``
    (3H,) both or neither. With :math:`a = x_t W_{ih}^T + b_{ih}` and :math:`m = h_{t-1} W_{hh}^T + b_{hh}` split
    into blocks (r, z, n): :math:`r = \sigma(a_r + m_r)`, :math:`z = \sigma(a_z + m_z)`,
    :math:`n = \tanh(a_n + r \odot m_n)`, :math:`h_t = n + z \odot (h_{t-1} - n)`. Output (T, N, H), the states;
    r, z, n and :math:`m_n` of every step stay in the output's buffer for the fast VJP.

    VJP per step, with :math:`\delta h` the gradient reaching :math:`h_t`: :math:`\delta a_n = \delta h (1 - z)
    (1 - n^2)`, :math:`\delta a_z = \delta h (h_{t-1} - n)\, z (1 - z)`, :math:`\delta a_r = \delta a_n m_n\,
    r (1 - r)`, :math:`\delta m_n = \delta a_n r`, and :math:`\delta h_{t-1} = \delta h\, z + [\delta a_r,
    \delta a_z, \delta m_n] W_{hh}`; then one GEMM each for the input and weight gradients over all T·N
    rows, as in :class:`LSTMLayer`.

    Examples
    --------
    >>> import numpy as np
    >>> out = GRULayer.forward(np.zeros((4, 2, 3)), np.ones((2, 5)), np.zeros((15, 3)), np.zeros((15, 5)))
    >>> out.shape, float(out[0, 0, 0])  # z = 1/2, n = 0: h_1 = h_0 / 2
    ((4, 2, 5), 0.5)
    """

    name = "gru_layer"
    float_only = True
    # every input: the generic rules recompute the activations (the fast VJP reads all but the biases)
    saves_inputs = True

    @staticmethod
    def array_forward(xp, x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
        # the generic rules' per-step composition, run on the library's table namespace
        _check_recurrent("gru_layer", 3, x, h0, w_ih, w_hh, b_ih, b_hh)
        table, states, h = array_namespace(xp), [], h0
        for t in range(x.shape[0]):
            h = _gru_step(table, x[t, ...], h, w_ih, w_hh, b_ih, b_hh)[0]
            states.append(h)
        return xp.stack(states)

    @staticmethod
    def forward(x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
        _check_recurrent("gru_layer", 3, x, h0, w_ih, w_hh, b_ih, b_hh)
        return GRULayer.all_rows(x, h0, w_ih, w_hh, b_ih, b_hh)[0]

    @staticmethod
    def all_rows(x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
        """The forward's buffer (5, T, N, H): per step h_t, r, z, n and m_n."""
        projected = _input_projection(x, w_ih, b_ih)  # (T, N, 3H)
        steps, batch, size = x.shape[0], h0.shape[0], h0.shape[1]
        rows = np.empty((5, steps, batch, size), dtype=projected.dtype)
        hidden = np.empty((batch, 3 * size), dtype=projected.dtype)
        h = h0
        for t in range(steps):
            h_t, r, z, n, hidden_n = rows[:, t]
            np.matmul(h, w_hh.T, out=hidden)
            if b_hh is not None:
                hidden += b_hh
            from_input = projected[t]
            _logistic(np.add(from_input[:, :size], hidden[:, :size], out=r), out=r)
            _logistic(np.add(from_input[:, size : 2 * size], hidden[:, size : 2 * size], out=z), out=z)
            hidden_n[...] = hidden[:, 2 * size :]
            np.multiply(r, hidden_n, out=n)
            n += from_input[:, 2 * size :]
            np.tanh(n, out=n)
            np.subtract(h, n, out=h_t)  # h_t = n + z (h_{t-1} - n)
            h_t *= z
            h_t += n
            h = h_t
        return rows

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
        steps = x.shape[0]
        rows, h = [], h0
        for t in range(steps):
            rows.append(_gru_step(xp, x[t, ...], h, w_ih, w_hh, b_ih, b_hh))
            h = rows[-1][0]
        grad_h = None
        from_input: list = [None] * steps
        from_hidden: list = [None] * steps
        for t in reversed(range(steps)):
            _, r, z, n, hidden_n = rows[t]
            h_prev = h0 if t == 0 else rows[t - 1][0]
            delta_h = grad_out[t, ...] if grad_h is None else grad_out[t, ...] + grad_h
            delta_n = delta_h * (1.0 - z) * (1.0 - n * n)
            delta_z = delta_h * (h_prev - n) * z * (1.0 - z)
            delta_r = delta_n * hidden_n * r * (1.0 - r)
            from_input[t] = xp.concatenate(delta_r, delta_z, delta_n, axis=1)  # (N, 3H)
            from_hidden[t] = xp.concatenate(delta_r, delta_z, delta_n * r, axis=1)
            grad_h = delta_h * z + xp.matmul(from_hidden[t], w_hh)
        inputs, hiddens = _sequence(xp, from_input), _sequence(xp, from_hidden)  # (T, N, 3H)
        h_prev_all = _sequence(xp, [h0] + [step[0] for step in rows[:-1]])
        biases = len(needs) > 4
        return (
            xp.matmul(inputs, w_ih) if needs[0] else None,
            grad_h if needs[1] else None,
            _sequence_weight_grad(xp, inputs, x) if needs[2] else None,
            _sequence_weight_grad(xp, hiddens, h_prev_all) if needs[3] else None,
            *((xp.sum(inputs, axis=(0, 1)) if needs[4] else None,) if biases else ()),
            *((xp.sum(hiddens, axis=(0, 1)) if needs[5] else None,) if biases else ()),
        )

    @staticmethod
    def jvp(xp, tangents, out, x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
        tx, th, tw_ih, tw_hh = tangents[:4]
        tb_ih, tb_hh = tangents[4:6] if len(tangents) > 4 else (None, None)
        t_projected = _input_tangent(xp, tx, x, w_ih, tw_ih)
        batch, size = h0.shape
        if th is None:
            th = np.zeros((batch, size), dtype=out.dtype)
        t_states, h_prev = [], h0
        for t in range(x.shape[0]):
            h_t, r, z, n, hidden_n = _gru_step(xp, x[t, ...], h_prev, w_ih, w_hh, b_ih, b_hh)
            t_hidden = _hidden_tangent(xp, th, h_prev, w_hh, tw_hh, tb_hh, (batch, 3 * size), out.dtype)
            t_input = np.zeros((batch, 3 * size), dtype=out.dtype) if t_projected is None else t_projected[t, ...]
            t_input = _plus(t_input, tb_ih)
            t_r = (t_input[:, :size] + t_hidden[:, :size]) * r * (1.0 - r)
            t_z = (t_input[:, size : 2 * size] + t_hidden[:, size : 2 * size]) * z * (1.0 - z)
            t_n = (t_input[:, 2 * size :] + t_r * hidden_n + r * t_hidden[:, 2 * size :]) * (1.0 - n * n)
            th = t_n + t_z * (h_prev - n) + z * (th - t_n)
            t_states.append(th)
            h_prev = h_t
        return _sequence(xp, t_states)

    @staticmethod
    def fast_vjp(grad_out, needs, out, x, h0, w_ih, w_hh, b_ih=None, b_hh=None):
        rows = _saved_rows(out, 5, lambda: GRULayer.all_rows(x, h0, w_ih, w_hh, b_ih, b_hh))
        _, steps, batch, size = rows.shape
        dtype = rows.dtype
        from_input = np.empty((steps, batch, 3 * size), dtype=dtype)  # ∂a per step: (∂a_r, ∂a_z, ∂a_n)
        hidden_n_grads = np.empty((steps, batch, size), dtype=dtype)  # ∂m_n; ∂m = (∂a_r, ∂a_z, ∂m_n)
        grad_h, recurrent = np.zeros((batch, size), dtype=dtype), np.empty((batch, size), dtype=dtype)
        scratch = np.empty((batch, size), dtype=dtype)
        w_hh_rz, w_hh_n = w_hh[: 2 * size], w_hh[2 * size :]
        for t in reversed(range(steps)):
            _, r, z, n, hidden_n = rows[:, t]
            h_prev = h0 if t == 0 else rows[0, t - 1]
            grad_r, grad_z, grad_n = (from_input[t][:, j * size : (j + 1) * size] for j in range(3))
            grad_h += grad_out[t]
            np.subtract(1.0, z, out=grad_n)  # ∂a_n = δh (1 - z)(1 - n²)
            grad_n *= grad_h
            _slope_times(grad_n, n, scratch, "tanh")
            np.subtract(h_prev, n, out=grad_z)  # ∂a_z = δh (h_{t-1} - n) z (1 - z)
            grad_z *= grad_h
            _slope_times(grad_z, z, scratch, "sigmoid")
            np.multiply(grad_n, hidden_n, out=grad_r)  # ∂a_r = ∂a_n m_n r (1 - r)
            _slope_times(grad_r, r, scratch, "sigmoid")
            np.multiply(grad_n, r, out=hidden_n_grads[t])  # ∂m_n = ∂a_n r
            # δh_{t-1} = δh z + ∂m W_hh, with ∂m's r, z blocks those of ∂a
            np.matmul(from_input[t][:, : 2 * size], w_hh_rz, out=recurrent)
            recurrent += hidden_n_grads[t] @ w_hh_n
            grad_h *= z
            grad_h += recurrent
        flat_input = from_input.reshape(steps * batch, 3 * size)
        flat_hidden = from_input.copy()
        flat_hidden[:, :, 2 * size :] = hidden_n_grads
        flat_hidden = flat_hidden.reshape(steps * batch, 3 * size)
        biases = len(needs) > 4
        return (
            np.matmul(flat_input, w_ih).reshape(x.shape) if needs[0] else None,
            grad_h if needs[1] else None,
            _weight_gradient(flat_input, x.reshape(steps * batch, x.shape[2])) if needs[2] else None,
            _weight_gradient(flat_hidden, _previous_rows(h0, rows[0])) if needs[3] else None,
            *((flat_input.sum(axis=0) if needs[4] else None,) if biases else ()),
            *((flat_hidden.sum(axis=0) if needs[5] else None,) if biases else ()),
        )


class RNNLayer(Primitive):
    r"""A whole Elman RNN layer over a sequence, one direction, in one node:
    :math:`h_t = \phi(x_t W_{ih}^T + h_{t-1} W_{hh}^T + b)`, :math:`\phi` = tanh or relu (``nonlinearity``).

    Inputs: x (T, N, in), h_0 (N, H), ``w_ih`` (H, in), ``w_hh`` (H, H), the summed bias (H,) or nothing.
    Output (T, N, H), the states. The slope comes from the output (:math:`1 - h^2`, or :math:`h > 0`), so
    nothing else is kept; VJP per step :math:`\delta a_t = (\partial h_t + \delta a_{t+1} W_{hh})\,
    \phi'`, then one GEMM each for the input and weight gradients, as in :class:`LSTMLayer`.

    Examples
    --------
    >>> import numpy as np
    >>> RNNLayer.forward(np.ones((3, 1, 1)), np.zeros((1, 1)), np.ones((1, 1)), np.zeros((1, 1)),
    ...                  nonlinearity="relu")[:, 0, 0].tolist()
    [1.0, 1.0, 1.0]
    """

    name = "rnn_layer"
    float_only = True
    saves_inputs = (0, 1, 2, 3)

    @staticmethod
    def array_forward(xp, x, h0, w_ih, w_hh, bias=None, *, nonlinearity="tanh"):
        _check_recurrent("rnn_layer", 1, x, h0, w_ih, w_hh, bias)
        weight = xp.concat([w_ih, w_hh], axis=1)  # (H, in + H): one product per step, as Linear
        states, h = [], h0
        for t in range(x.shape[0]):
            pre = Linear.array_forward(xp, xp.concat([x[t, ...], h], axis=1), weight, bias)
            h = xp.tanh(pre) if nonlinearity == "tanh" else xp.maximum(pre, xp.zeros_like(pre))
            states.append(h)
        return xp.stack(states)

    @staticmethod
    def forward(x, h0, w_ih, w_hh, bias=None, *, nonlinearity="tanh"):
        _check_recurrent("rnn_layer", 1, x, h0, w_ih, w_hh, bias)
        out = _input_projection(x, w_ih, bias)  # (T, N, H), then each step in place
        h = h0
        for t in range(x.shape[0]):
            out[t] += h @ w_hh.T
            if nonlinearity == "tanh":
                np.tanh(out[t], out=out[t])
            else:
                np.maximum(out[t], 0, out=out[t])
            h = out[t]
        return out

    @staticmethod
    def _slope(xp, grad, h, nonlinearity):
        if nonlinearity == "tanh":
            return grad * (1.0 - h * h)
        return xp.where(_raw(h) > 0, grad, 0.0)

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, h0, w_ih, w_hh, bias=None, *, nonlinearity="tanh"):
        steps = x.shape[0]
        grad_h = None
        pre: list = [None] * steps  # gradients of the pre-activations
        for t in reversed(range(steps)):
            delta_h = grad_out[t, ...] if grad_h is None else grad_out[t, ...] + grad_h
            pre[t] = RNNLayer._slope(xp, delta_h, out[t, ...], nonlinearity)
            grad_h = xp.matmul(pre[t], w_hh)
        grads = _sequence(xp, pre)  # (T, N, H)
        h_prev = _sequence(xp, [h0] + [out[t, ...] for t in range(steps - 1)])
        return (
            xp.matmul(grads, w_ih) if needs[0] else None,
            grad_h if needs[1] else None,
            _sequence_weight_grad(xp, grads, x) if needs[2] else None,
            _sequence_weight_grad(xp, grads, h_prev) if needs[3] else None,
            *((xp.sum(grads, axis=(0, 1)) if needs[4] else None,) if len(needs) > 4 else ()),
        )

    @staticmethod
    def jvp(xp, tangents, out, x, h0, w_ih, w_hh, bias=None, *, nonlinearity="tanh"):
        tx, th, tw_ih, tw_hh = tangents[:4]
        t_projected = _input_tangent(xp, tx, x, w_ih, tw_ih)
        t_bias = tangents[4] if len(tangents) > 4 else None
        steps_out = []
        for t in range(x.shape[0]):
            h_prev = h0 if t == 0 else out[t - 1, ...]
            t_pre = _hidden_tangent(xp, th, h_prev, w_hh, tw_hh, t_bias, h0.shape, out.dtype)
            if t_projected is not None:
                t_pre = t_pre + t_projected[t, ...]
            th = RNNLayer._slope(xp, t_pre, out[t, ...], nonlinearity)
            steps_out.append(th)
        return _sequence(xp, steps_out)


class BinaryCrossEntropy(Primitive):
    """Elementwise :math:`-[t \\log p + (1 - t) \\log(1 - p)]` for probabilities ``p``, PyTorch's way: each log
    is clamped at -100, and the gradient :math:`\\partial/\\partial p = (p - t) / \\max(p (1 - p), 10^{-12})` stays
    finite at p = 0 and p = 1 (the composition of log and clip would give 0 · ∞ = NaN there).
    :math:`\\partial/\\partial t = \\log(1 - p) - \\log p` with the same clamped logs. Shapes: p and t alike.
    """

    name = "binary_cross_entropy"
    saves_output = False
    float_only = True

    @staticmethod
    def array_forward(xp, p, t):
        with np.errstate(divide="ignore"):  # log(0) = -inf, clamped (a library computing with NumPy warns)
            log_p, log_q = xp.maximum(xp.log(p), -100.0), xp.maximum(xp.log1p(-p), -100.0)
        return -(t * log_p + (1.0 - t) * log_q)

    @staticmethod
    def forward(p, t):
        log_p, log_q = _clamped_logs_numpy(p)
        return -(t * log_p + (1.0 - t) * log_q)

    @staticmethod
    def vjp(xp, grad_out, needs, out, p, t):
        grad_p = grad_t = None
        if needs[0]:
            grad_p = grad_out * (p - t) / xp.maximum(p * (1.0 - p), _BCE_EPSILON)
        if needs[1]:
            log_p, log_q = _clamped_logs(xp, p)
            grad_t = grad_out * (log_q - log_p)
        return grad_p, grad_t

    @staticmethod
    def jvp(xp, tangents, out, p, t):
        tp, tt = tangents
        result = None if tp is None else tp * (p - t) / xp.maximum(p * (1.0 - p), _BCE_EPSILON)
        if tt is not None:
            log_p, log_q = _clamped_logs(xp, p)
            result = _plus(result, tt * (log_q - log_p))
        return result

    # NumPy has log1p, which keeps log(1 - p) accurate for tiny p as the forward does; the rules are the
    # generic ones with that log.
    @staticmethod
    def fast_vjp(grad_out, needs, out, p, t):
        (grad_p, _) = BinaryCrossEntropy.vjp(numpy_namespace, grad_out, (needs[0], False), out, p, t)
        grad_t = None
        if needs[1]:
            log_p, log_q = _clamped_logs_numpy(p)
            grad_t = grad_out * (log_q - log_p)
        return grad_p, grad_t

    @staticmethod
    def fast_jvp(tangents, out, p, t):
        tp, tt = tangents
        result = None if tp is None else BinaryCrossEntropy.jvp(numpy_namespace, (tp, None), out, p, t)
        if tt is not None:
            log_p, log_q = _clamped_logs_numpy(p)
            result = _plus(result, tt * (log_q - log_p))
        return result


_BCE_EPSILON = float(np.float32(1e-12))  # PyTorch's EPSILON, a float32 constant


def _clamped_logs(xp: Any, p: Any) -> tuple[Any, Any]:
    """``max(log p, -100)`` and ``max(log(1 - p), -100)``: finite at p = 0 and p = 1."""
    with np.errstate(divide="ignore"):
        return xp.maximum(xp.log(p), -100.0), xp.maximum(xp.log(1.0 - p), -100.0)


def _clamped_logs_numpy(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_clamped_logs` on NumPy arrays, with ``log1p(-p)``: accurate for tiny p too."""
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(p), -100.0), np.maximum(np.log1p(-p), -100.0)


def _one_hot(labels: Any, like: Any) -> Any:
    """(M, C) array with a 1 at each row's label, in the dtype (and array library) of ``like`` (M, C)."""
    values = _raw(like)
    lib = _library_of(values)
    if lib is not None:
        return lib.astype(_label_mask(lib, labels, values.shape[1], values.device), values.dtype)
    result = np.zeros((len(labels), values.shape[1]), dtype=values.dtype)
    result[np.arange(len(labels)), labels] = 1
    return result


def _label_mask(lib: Any, labels: Any, classes: int, device: Any) -> Any:
    """(M, classes) booleans of array library ``lib``, True at each row's label (NumPy labels are copied in)."""
    labels = lib.asarray(labels, device=device)
    return lib.reshape(labels, (-1, 1)) == lib.arange(classes, dtype=labels.dtype, device=device)


def _sample_weights(like: Any, weights: Any) -> Any:
    """The per-sample ``weights`` in the dtype (and array library) of ``like``."""
    values = _raw(like)
    lib = _library_of(values)
    if lib is None:
        return weights.astype(values.dtype, copy=False)
    return lib.astype(lib.asarray(weights, device=values.device), values.dtype)


# ===================================================================================================
# Shape ops
# ===================================================================================================
class Reshape(LinearMap):
    name = "reshape"

    @staticmethod
    def array_forward(xp, x, *, shape):
        return xp.reshape(x, tuple(shape))

    @staticmethod
    def forward(x, *, shape):
        try:
            return np.reshape(x, shape)
        except ValueError:
            raise ShapeError(
                f"reshape: cannot reshape a tensor of shape {np.shape(x)} "
                f"({np.size(x)} elements) into shape {tuple(shape)}"
            ) from None

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, shape):
        return (xp.reshape(grad_out, shape=x.shape),)


class Permute(LinearMap):
    """Reorder the axes (NumPy's ``transpose`` with an explicit permutation)."""

    name = "permute"

    @staticmethod
    def array_forward(xp, x, *, axes):
        return xp.permute_dims(x, tuple(axes))

    @staticmethod
    def forward(x, *, axes):
        return np.transpose(x, axes)

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, axes):
        return (xp.permute(grad_out, axes=tuple(np.argsort(axes).tolist())),)


class BroadcastTo(LinearMap):
    name = "broadcast_to"

    @staticmethod
    def array_forward(xp, x, *, shape):
        return xp.broadcast_to(x, tuple(shape))

    @staticmethod
    def forward(x, *, shape):
        try:
            return np.broadcast_to(x, shape)
        except ValueError:
            raise ShapeError(f"broadcast_to: cannot broadcast shape {np.shape(x)} to {tuple(shape)}") from None

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, shape):
        return (xp.sum_to(grad_out, shape=x.shape),)


def _sum_to_axes(x_shape: tuple, shape: tuple) -> tuple[int, ...]:
    """The axes to sum so that ``x_shape`` (a broadcast of ``shape``) comes back to ``shape``."""
    lead = len(x_shape) - len(shape)
    if lead < 0 or any(n != 1 and n != x_shape[lead + i] for i, n in enumerate(shape)):
        raise ShapeError(f"sum_to: shape {x_shape} is not a broadcast of {shape}")
    return tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and x_shape[lead + i] != 1)


class SumTo(LinearMap):
    """Sum a broadcast result back to ``shape``: the adjoint of ``broadcast_to``."""

    name = "sum_to"

    @staticmethod
    def array_forward(xp, x, *, shape):
        axes = _sum_to_axes(tuple(x.shape), tuple(shape))
        return xp.reshape(xp.sum(x, axis=axes), tuple(shape)) if axes else xp.reshape(x, tuple(shape))

    @staticmethod
    def forward(x, *, shape):
        shape = tuple(shape)
        x_shape = np.shape(x)
        if x_shape == shape:
            return x
        axes = _sum_to_axes(x_shape, shape)
        return np.asarray(x).sum(axis=axes).reshape(shape) if axes else np.reshape(x, shape)

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, shape):
        return (xp.broadcast_to(grad_out, shape=x.shape),)


def _spelled_out(index: Any) -> Any:
    """``index`` as a tuple ending in ``...`` when it names fewer axes (the array API wants every axis named)."""
    parts = index if isinstance(index, tuple) else (index,)
    if any(part is Ellipsis or isinstance(part, np.ndarray) for part in parts):
        return index
    return (*parts, Ellipsis)


def _is_basic_index(index: Any) -> bool:
    """True when ``index`` can select no element twice (ints, slices, None, Ellipsis, boolean masks)."""
    parts = index if isinstance(index, tuple) else (index,)
    for part in parts:
        if part is None or part is Ellipsis or isinstance(part, (int, np.integer, slice)):
            continue
        if isinstance(part, np.ndarray) and part.dtype == np.bool_:
            continue
        return False
    return True


class Getitem(LinearMap):
    """``x[index]`` for ints, slices, None, Ellipsis, integer arrays and boolean masks."""

    name = "getitem"

    @staticmethod
    def array_forward(xp, x, *, index):
        return x[_spelled_out(index)]

    @staticmethod
    def forward(x, *, index):
        return x[index]

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, index):
        return (xp.scatter_add(grad_out, index=index, shape=x.shape),)


class ScatterAdd(LinearMap):
    """Zeros of ``shape`` with ``values`` added at ``index`` (repeated indices add up, as ``np.add.at``).

    The adjoint of :class:`Getitem`.
    """

    name = "scatter_add"

    @staticmethod
    def array_forward(xp, values, *, index, shape):
        if not _is_basic_index(index):  # no np.add.at in the standard: repeated indices would not add up
            raise DTypeError("scatter_add: indexing with arrays or masks runs on NumPy arrays only")
        result = xp.zeros(tuple(shape), dtype=values.dtype)
        result[_spelled_out(index)] = values
        return result

    @staticmethod
    def forward(values, *, index, shape):
        result = np.zeros(shape, dtype=np.result_type(values))
        if _is_basic_index(index):
            result[index] = values
        else:
            np.add.at(result, index, values)
        return result

    @staticmethod
    def vjp(xp, grad_out, needs, out, values, *, index, shape):
        return (xp.getitem(grad_out, index=index),)


class Concatenate(Primitive):
    """Join tensors along an existing ``axis``."""

    name = "concatenate"
    saves_inputs = ()
    saves_output = False

    @staticmethod
    def array_forward(xp, *xs, axis=0):
        return xp.concat(xs, axis=axis)

    @staticmethod
    def forward(*xs, axis=0):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def vjp(xp, grad_out, needs, out, *xs, axis=0):
        axis = axis % out.ndim
        grads, start = [], 0
        for x, need in zip(xs, needs):
            stop = start + x.shape[axis]
            grads.append(xp.getitem(grad_out, index=(slice(None),) * axis + (slice(start, stop),)) if need else None)
            start = stop
        return tuple(grads)

    @staticmethod
    def jvp(xp, tangents, out, *xs, axis=0):
        parts = [t if t is not None else np.zeros(x.shape, dtype=out.dtype) for x, t in zip(xs, tangents)]
        return xp.concatenate(*parts, axis=axis)


class Pad(LinearMap):
    """Constant padding: ``pad_width`` is one ``(before, after)`` pair per axis."""

    name = "pad"
    fill_attrs = ("value",)

    @staticmethod
    def array_forward(xp, x, *, pad_width, value=0.0):
        return _array_pad(xp, x, pad_width, value)

    @staticmethod
    def forward(x, *, pad_width, value=0.0):
        return np.pad(x, pad_width, mode="constant", constant_values=value)

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, pad_width, value=0.0):
        index = tuple(slice(before, before + n) for (before, _), n in zip(pad_width, x.shape))
        return (xp.getitem(grad_out, index=index),)


def _array_pad(xp: Any, x: Any, pad_width: Sequence[tuple[int, int]], value: Any) -> Any:
    """``x`` padded with the constant ``value``, one ``(before, after)`` pair per axis, on array library ``xp``.

    The standard has no ``pad``: each padded axis is a ``concat`` of filled blocks around ``x`` (no item
    assignment, so it also runs on libraries whose arrays are immutable). The fill takes ``x``'s dtype, as
    ``np.pad`` does (``-1.5`` pads an integer array with ``-1``)."""
    fill = bool(value) if x.dtype == xp.bool else int(value) if xp.isdtype(x.dtype, "integral") else value
    for axis, (before, after) in enumerate(pad_width):
        if before or after:
            shape = list(x.shape)
            blocks = []
            for width in (before, after):
                shape[axis] = width
                blocks.append(xp.full(tuple(shape), fill, dtype=x.dtype, device=x.device))
            x = xp.concat([blocks[0], x, blocks[1]], axis=axis)
    return x


# ===================================================================================================
# Ops without a gradient (used inside rules and by comparisons)
# ===================================================================================================
class Sign(Primitive):
    name = "sign"
    differentiable = False

    @staticmethod
    def array_forward(xp, x):
        return xp.sign(x)

    @staticmethod
    def forward(x):
        return np.sign(x)


# ===================================================================================================
# Layers' primitives: fused linear map, and the unfold/fold pair that convolution and pooling use
# ===================================================================================================
class Linear(Primitive):
    """``x @ weightᵀ + bias`` in one node (``bias`` may be None). Shapes: x (..., in), weight (out, in)."""

    name = "linear"
    saves_inputs = (0, 1)
    saves_output = False
    float_only = True

    @staticmethod
    def array_forward(xp, x, weight, bias=None):
        out = xp.matmul(x, xp.permute_dims(weight, (1, 0)))
        return out if bias is None else out + bias

    @staticmethod
    def forward(x, weight, bias=None):
        if x.shape[-1:] != weight.shape[1:]:
            raise ShapeError(
                f"linear: input of shape {np.shape(x)} does not fit weight of shape {np.shape(weight)} "
                f"(expected the input's last dimension to be {np.shape(weight)[1]})"
            )
        out = np.matmul(x, weight.T)
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, weight, bias=None):
        grad_x = xp.matmul(grad_out, weight) if needs[0] else None  # (..., in)
        grad_w = grad_b = None
        if needs[1] or (len(needs) > 2 and needs[2]):
            rows = xp.reshape(grad_out, shape=(-1, grad_out.shape[-1]))  # (B, out)
            if needs[1]:
                inputs = xp.reshape(x, shape=(-1, x.shape[-1]))  # (B, in)
                grad_w = xp.matmul(xp.permute(rows, axes=(1, 0)), inputs)  # (out, in)
            if len(needs) > 2 and needs[2]:
                grad_b = xp.sum(rows, axis=0)
        return (grad_x, grad_w, grad_b)[: len(needs)]

    @staticmethod
    def fast_vjp(grad_out, needs, out, x, weight, bias=None):
        # the generic rule's products on NumPy arrays directly (a small layer's step is mostly per-call overhead)
        grad_x = np.matmul(grad_out, weight) if needs[0] else None
        grad_w = grad_b = None
        rows = grad_out.reshape(-1, grad_out.shape[-1])
        if needs[1]:
            grad_w = np.matmul(rows.T, x.reshape(-1, x.shape[-1]))
        if len(needs) > 2 and needs[2]:
            grad_b = rows.sum(axis=0)
        return (grad_x, grad_w, grad_b)[: len(needs)]

    @staticmethod
    def jvp(xp, tangents, out, x, weight, bias=None):
        tx, tw = tangents[0], tangents[1]
        tb = tangents[2] if len(tangents) > 2 else None
        result = _plus(
            None if tx is None else xp.matmul(tx, xp.permute(weight, axes=(1, 0))),
            None if tw is None else xp.matmul(x, xp.permute(tw, axes=(1, 0))),
        )
        return _plus(result, tb)


def _window_slices(offsets, stride, dilation, out_sizes):
    """The strided slice of the padded input that kernel offset ``offsets`` sees at every output position."""
    return tuple(slice(o * d, o * d + s * (n - 1) + 1, s) for o, s, d, n in zip(offsets, stride, dilation, out_sizes))


def _offset_slices(padded_shape, kernel_size, stride, dilation):
    """Per kernel offset (row-major), the index of the strided view of a padded (N, C, *spatial) input that
    this offset sees in every window, and so the (N, C, *out) block of that offset."""
    out_sizes = [(n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(padded_shape[2:], kernel_size, stride, dilation)]
    if any(n < 1 for n in out_sizes):  # the caller names the op (apply turns this into a ShapeError)
        raise ValueError(f"the window {tuple(kernel_size)} does not fit the padded input {tuple(padded_shape)}")
    return [
        (slice(None), slice(None), *_window_slices(offsets, stride, dilation, out_sizes))
        for offsets in np.ndindex(*kernel_size)
    ]


def _array_spread(xp: Any, block: Any, axis: int, step: int, start: int, length: int) -> Any:
    """``block`` placed along ``axis`` at positions ``start, start + step, …`` of ``length`` zeros (array
    library ``xp``, no item assignment): the adjoint of the strided slice ``[start : … : step]``."""
    if step > 1:  # interleave step - 1 zeros after each element: (…, n, …) -> (…, n·step, …), cut after the last
        spread = _array_pad(xp, xp.expand_dims(block, axis=axis + 1), [(0, 0)] * (axis + 1) + [(0, step - 1)], 0.0)
        shape = list(block.shape)
        shape[axis] *= step
        block = xp.reshape(spread, tuple(shape))
        block = block[(slice(None),) * axis + (slice(0, max(shape[axis] - step + 1, 0)),) + (Ellipsis,)]
    widths = [(0, 0)] * block.ndim
    widths[axis] = (start, length - start - block.shape[axis])
    return _array_pad(xp, block, widths, 0.0)


class Unfold(LinearMap):
    """Sliding windows of ``x`` (N, C, *spatial) as an array (N, *out_spatial, C, *kernel_size) (im2col).

    Convolution is this followed by one matrix product; pooling is this followed by a reduction over the
    kernel axes. Padding uses ``value`` (0 for convolution, -inf for max pooling).

    Memory layout: the result is a transposed view of a contiguous ``(C, *kernel_size, N, *out_spatial)``
    buffer. Building that buffer reads the input along its rows, ``permute`` + ``reshape`` turn it into the
    ``(C·|kernel|, N·positions)`` matrix of a convolution's GEMM without a copy, and the gradient of that
    GEMM comes back in the same layout, which is the one :class:`Fold` adds up fastest. Building the
    logical layout directly instead gathers with a stride of C·|kernel| elements, several times slower.
    """

    name = "unfold"
    fill_attrs = ("value",)

    @staticmethod
    def array_forward(xp, x, *, kernel_size, stride, padding, dilation, value=0.0):
        # one strided slice of the padded input per kernel offset, stacked: (N, C, *out, |kernel|)
        spatial = len(kernel_size)
        padded = _array_pad(xp, x, ((0, 0), (0, 0), *((p, p) for p in padding)), value)
        views = [padded[index] for index in _offset_slices(padded.shape, kernel_size, stride, dilation)]
        stacked = xp.reshape(xp.stack(views, axis=-1), (*views[0].shape, *kernel_size))
        return xp.permute_dims(stacked, (0, *range(2, 2 + spatial), 1, *range(2 + spatial, 2 + 2 * spatial)))

    @staticmethod
    def forward(x, *, kernel_size, stride, padding, dilation, value=0.0):
        spatial = len(kernel_size)
        if any(padding):
            widths = ((0, 0), (0, 0)) + tuple((p, p) for p in padding)
            x = np.pad(x, widths, mode="constant", constant_values=value)
        window = tuple((k - 1) * d + 1 for k, d in zip(kernel_size, dilation))
        axes = tuple(range(2, 2 + spatial))
        view = np.lib.stride_tricks.sliding_window_view(x, window, axis=axes)  # (N, C, *positions, *window)
        index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)
        index += tuple(slice(None, None, d) for d in dilation)
        view = view[index]  # (N, C, *out, *kernel)
        buffer_order = (1, *range(2 + spatial, 2 + 2 * spatial), 0, *range(2, 2 + spatial))
        buffer = np.ascontiguousarray(view.transpose(buffer_order))  # (C, *kernel, N, *out)
        logical_order = (1 + spatial, *range(2 + spatial, 2 + 2 * spatial), 0, *range(1, 1 + spatial))
        return buffer.transpose(logical_order)  # (N, *out, C, *kernel), no copy

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, kernel_size, stride, padding, dilation, value=0.0):
        folded = xp.fold(
            grad_out, input_shape=x.shape, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation
        )
        return (folded,)


class Fold(LinearMap):
    """The adjoint of :class:`Unfold` (col2im): add every window back to where it came from."""

    name = "fold"

    @staticmethod
    def array_forward(xp, columns, *, input_shape, kernel_size, stride, padding, dilation):
        # each kernel offset's (N, C, *out) block spread back to where Unfold's strided slice took it
        spatial = len(kernel_size)
        padded = (*input_shape[:2], *(n + 2 * p for n, p in zip(input_shape[2:], padding)))
        kernel_axes = range(2 + spatial, 2 + 2 * spatial)
        blocks = xp.permute_dims(columns, (0, 1 + spatial, *range(1, 1 + spatial), *kernel_axes))
        blocks = xp.reshape(blocks, (*blocks.shape[: 2 + spatial], -1))  # (N, C, *out, |kernel|)
        total = None
        for position, offsets in enumerate(np.ndindex(*kernel_size)):
            block = blocks[..., position]
            for axis, (o, s, d) in enumerate(zip(offsets, stride, dilation)):
                block = _array_spread(xp, block, 2 + axis, s, o * d, padded[2 + axis])
            total = block if total is None else total + block
        if total is None:  # an empty kernel: nothing is added anywhere
            total = xp.zeros(padded, dtype=columns.dtype, device=columns.device)
        crop = tuple(slice(p, p + n) for p, n in zip(padding, input_shape[2:]))
        return total[(slice(None), slice(None), *crop)]

    @staticmethod
    def forward(columns, *, input_shape, kernel_size, stride, padding, dilation):
        spatial = len(kernel_size)
        batch, channels = input_shape[:2]
        padded_shape = tuple(n + 2 * p for n, p in zip(input_shape[2:], padding))
        # The sum is built channel-major, (C, N, *spatial), the layout of the columns below, so every add
        # walks both arrays in the same order; the result is a transposed view of it.
        result = np.zeros((channels, batch, *padded_shape), dtype=columns.dtype)
        out_sizes = columns.shape[1 : 1 + spatial]
        # Walk the columns as (C, *kernel, N, *out): a view, contiguous when they come from a convolution's
        # GEMM (see Unfold), so each offset's block below is read along rows.
        by_channel = columns.transpose(1 + spatial, *range(2 + spatial, 2 + 2 * spatial), 0, *range(1, 1 + spatial))
        for offsets in np.ndindex(*kernel_size):  # one strided add per kernel offset, never per pixel
            target = result[(slice(None), slice(None), *_window_slices(offsets, stride, dilation, out_sizes))]
            target += by_channel[(slice(None), *offsets)]  # (C, N, *out)
        crop = tuple(slice(p, p + n) for p, n in zip(padding, input_shape[2:]))
        return result[(slice(None), slice(None), *crop)].swapaxes(0, 1)  # (N, C, *spatial)

    @staticmethod
    def vjp(xp, grad_out, needs, out, columns, *, input_shape, kernel_size, stride, padding, dilation):
        return (xp.unfold(grad_out, kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation),)


class MaxPool(Primitive):
    """Maximum over sliding windows: (N, C, *spatial) -> (N, C, *out_spatial), padding with -inf.

    The forward is one ``np.maximum`` per kernel offset over a strided view of the input (no window array
    is built). As in PyTorch, the gradient goes to the first maximum of each window in row-major order
    (padding never takes it), and a window holding NaN outputs NaN and its last NaN takes the gradient.

    The generic rules use the winners as a 0/1 column array with :class:`Unfold` and :class:`Fold`, so
    higher derivatives come from the existing rules. The fast VJP writes ``grad_out`` straight into the
    strided view of each kernel offset, masked by where that offset won.
    """

    name = "max_pool"
    float_only = True

    @staticmethod
    def array_forward(xp, x, *, kernel_size, stride, padding, dilation):
        padded = _array_pad(xp, x, ((0, 0), (0, 0), *((p, p) for p in padding)), -math.inf)
        slices = _offset_slices(padded.shape, kernel_size, stride, dilation)
        out = xp.asarray(padded[slices[0]], copy=True)  # a new array even for a one-element window
        for index in slices[1:]:
            out = xp.maximum(out, padded[index])  # NaN propagates
        return out

    @staticmethod
    def forward(x, *, kernel_size, stride, padding, dilation):
        if kernel_size == stride == (2, 2) and padding == (0, 0) and dilation == (1, 1):
            pooled = _max_pool_2x2_compiled(x)  # the compiled kernel, where numba is there and switched on
            if pooled is not None:
                return pooled
        views = [view for _, view in _pool_views(_pad_spatial(x, padding, -np.inf), kernel_size, stride, dilation)]
        if len(views) == 1:
            return views[0].copy(order="K")  # x's memory order
        out = np.maximum(views[0], views[1])  # a new array, in x's memory order
        for view in views[2:]:
            np.maximum(out, view, out=out)
        return out

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, *, kernel_size, stride, padding, dilation):
        geometry = {"kernel_size": kernel_size, "stride": stride, "padding": padding, "dilation": dilation}
        wins = _pool_winner_columns(_raw(x), _raw(out), **geometry)  # (N, *out, C, *kernel)
        spatial = len(kernel_size)
        per_window = xp.permute(grad_out, axes=(0, *range(2, 2 + spatial), 1))  # (N, *out, C)
        per_window = xp.reshape(per_window, shape=per_window.shape + (1,) * spatial)
        return (xp.fold(xp.where(wins, per_window, 0.0), input_shape=x.shape, **geometry),)

    @staticmethod
    def jvp(xp, tangents, out, x, *, kernel_size, stride, padding, dilation):
        geometry = {"kernel_size": kernel_size, "stride": stride, "padding": padding, "dilation": dilation}
        wins = _pool_winner_columns(_raw(x), _raw(out), **geometry)
        spatial = len(kernel_size)
        windows = xp.unfold(tangents[0], **geometry)  # (N, *out, C, *kernel)
        picked = xp.sum(xp.where(wins, windows, 0.0), axis=tuple(range(2 + spatial, 2 + 2 * spatial)))
        return xp.permute(picked, axes=(0, 1 + spatial, *range(1, 1 + spatial)))  # (N, C, *out)

    @staticmethod
    def fast_vjp(grad_out, needs, out, x, *, kernel_size, stride, padding, dilation):
        geometry = {"kernel_size": kernel_size, "stride": stride, "padding": padding, "dilation": dilation}
        padded_shape = x.shape[:2] + tuple(n + 2 * p for n, p in zip(x.shape[2:], padding))
        grad = _zeros_in_layout(padded_shape, grad_out.dtype, like=x)
        apart = all(s >= (k - 1) * d + 1 for k, s, d in zip(kernel_size, stride, dilation))  # windows disjoint
        finite = bool(np.isfinite(grad_out).all())  # then a product by the mask equals where (see _masked)
        for index, wins in _pool_winners(_pad_spatial(x, padding, -np.inf), out, **geometry):
            if apart and finite:
                np.multiply(grad_out, wins, out=grad[index])
            else:
                with np.errstate(invalid="ignore"):  # inf + -inf from two windows is NaN, as in PyTorch
                    grad[index] += grad_out * wins if finite else np.where(wins, grad_out, 0)
        crop = tuple(slice(p, p + n) for p, n in zip(padding, x.shape[2:]))
        return (grad[(slice(None), slice(None), *crop)],)


def _max_pool_2x2_compiled(x: np.ndarray) -> np.ndarray | None:
    """2×2 max pooling of stride 2 by :mod:`chainrule.compiled`'s kernel, in ``x``'s memory order (a
    convolution's channel-major output stays channel-major); None where the kernel is off or does not apply."""
    if x.ndim != 4 or x.dtype not in (np.float32, np.float64) or x.size == 0 or min(x.shape[2:]) < 2:
        return None
    kernel = compiled.kernel("max_pool_2x2")
    if kernel is None:
        return None
    channel_major = x.shape[0] > 1 and x.strides[1] > x.strides[0]
    planes = x.swapaxes(0, 1) if channel_major else x  # the two leading axes in memory order
    planes = np.ascontiguousarray(planes).reshape(-1, *x.shape[2:])  # (P, H, W), a view when it can be
    out = np.empty((planes.shape[0], x.shape[2] // 2, x.shape[3] // 2), dtype=x.dtype)
    kernel(planes, out)
    leading = (x.shape[1], x.shape[0]) if channel_major else x.shape[:2]
    out = out.reshape(*leading, *out.shape[1:])
    return out.swapaxes(0, 1) if channel_major else out


def _zeros_in_layout(shape: Sequence[int], dtype: Any, like: np.ndarray) -> np.ndarray:
    """Zeros of ``shape`` whose axes lie in memory in the order of ``like``'s (as ``np.zeros_like`` does
    for ``like``'s own shape): a convolution's output is channel-major in memory, and elementwise ops
    between arrays of different memory orders run several times slower than between equal ones."""
    order = sorted(range(len(shape)), key=lambda axis: -like.strides[axis])
    buffer = np.zeros([shape[axis] for axis in order], dtype=dtype)
    return buffer.transpose(np.argsort(order))


def _pad_spatial(x: np.ndarray, padding: Sequence[int], value: float) -> np.ndarray:
    """``x`` (N, C, *spatial) padded by ``padding`` on both sides of each spatial axis with ``value``."""
    if not any(padding):
        return x
    return np.pad(x, ((0, 0), (0, 0), *((p, p) for p in padding)), mode="constant", constant_values=value)


def _pool_views(padded: np.ndarray, kernel_size, stride, dilation):
    """Yield ``(index, view)`` per kernel offset: the strided view of ``padded`` that offset sees in every window."""
    out_sizes = [(n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(padded.shape[2:], kernel_size, stride, dilation)]
    for offsets in np.ndindex(*kernel_size):
        index = (slice(None), slice(None), *_window_slices(offsets, stride, dilation, out_sizes))
        yield index, padded[index]


def _pool_winners(padded: np.ndarray, out: np.ndarray, *, kernel_size, stride, padding, dilation):
    """Yield ``(index, wins)`` per kernel offset; ``wins`` (bool, shaped like ``out``) marks the windows whose
    gradient goes to that offset: the first maximum in row-major order among the input's own elements
    (padding never wins), or, in a window holding NaN, the last NaN (PyTorch's CPU kernel)."""
    views = list(_pool_views(padded, kernel_size, stride, dilation))
    nan_wins = {}
    nan = np.isnan(out)
    if nan.any():  # rare: walk the offsets backwards once to find each NaN window's last NaN
        seen = np.zeros(out.shape, dtype=bool)
        for position in reversed(range(len(views))):
            wins = np.isnan(views[position][1]) & nan & ~seen
            seen |= wins
            nan_wins[position] = wins
    inside = None
    if any(padding):  # the input's own positions in the padded spatial shape
        inside = np.zeros(padded.shape[2:], dtype=bool)
        inside[tuple(slice(p, n - p) for p, n in zip(padding, padded.shape[2:]))] = True
    taken = None  # windows whose winner is already found
    for position, (index, view) in enumerate(views):
        wins = view == out
        if inside is not None:
            wins &= inside[index[2:]]
        if taken is None:
            taken = wins.copy()
        else:
            wins &= ~taken
            taken |= wins
        if position in nan_wins:
            wins |= nan_wins[position]
        yield index, wins


def _pool_winner_columns(x: np.ndarray, out: np.ndarray, *, kernel_size, stride, padding, dilation) -> np.ndarray:
    """The winners as a boolean array laid out like :class:`Unfold`'s columns, (N, *out, C, *kernel)."""
    spatial = len(kernel_size)
    lib = _library_of(x)
    if lib is not None:
        return _pool_winner_columns_in(lib, x, out, kernel_size, stride, padding, dilation)
    geometry = {"kernel_size": kernel_size, "stride": stride, "padding": padding, "dilation": dilation}
    winners = _pool_winners(_pad_spatial(x, padding, -np.inf), out, **geometry)
    stacked = np.stack([wins for _, wins in winners], axis=-1)  # (N, C, *out, |kernel|)
    stacked = stacked.reshape(*out.shape, *kernel_size)
    return stacked.transpose(0, *range(2, 2 + spatial), 1, *range(2 + spatial, 2 + 2 * spatial))


def _pool_winner_columns_in(lib: Any, x: Any, out: Any, kernel_size, stride, padding, dilation) -> Any:
    """:func:`_pool_winner_columns` with the array-API functions of ``lib``, the library holding ``x``:
    the same winners (first maximum in row-major order, padding never; a NaN window's last NaN)."""
    spatial = len(kernel_size)
    widths = ((0, 0), (0, 0), *((p, p) for p in padding))
    padded = _array_pad(lib, x, widths, -math.inf)
    inside = _array_pad(lib, lib.ones(x.shape, dtype=lib.bool, device=x.device), widths, False)
    slices = _offset_slices(padded.shape, kernel_size, stride, dilation)
    nan, nan_wins = lib.isnan(out), {}
    if bool(lib.any(nan)):  # rare: walk the offsets backwards once to find each NaN window's last NaN
        seen = lib.zeros(out.shape, dtype=lib.bool, device=x.device)
        for position in reversed(range(len(slices))):
            nan_wins[position] = lib.isnan(padded[slices[position]]) & nan & ~seen
            seen = seen | nan_wins[position]
    columns: list = []
    taken = None  # windows whose winner is already found
    for position, index in enumerate(slices):
        wins = (padded[index] == out) & inside[index]
        if taken is not None:
            wins = wins & ~taken
        taken = wins if taken is None else taken | wins
        columns.append(wins | nan_wins[position] if position in nan_wins else wins)
    stacked = lib.reshape(lib.stack(columns, axis=-1), (*out.shape, *kernel_size))
    return lib.permute_dims(stacked, (0, *range(2, 2 + spatial), 1, *range(2 + spatial, 2 + 2 * spatial)))


class _Workspace:
    """Reusable scratch memory for a primitive's big buffers (im2col columns), handed out as arrays.

    :meth:`take` returns a view of a pooled flat block that nobody else holds: a block counts as free when
    the pool's own references are the only ones left (no tensor, view or saved graph keeps it), so memory
    that a graph still needs for its backward is never handed out again, however many forwards run before
    that backward; it becomes free when the graph (and every view of it) is gone. The smallest free block
    of the dtype that holds the request (and at most ``slack`` times it) is used, so a smaller last batch
    reuses the blocks of the full ones instead of growing the pool. Up to ``blocks`` blocks are kept; past
    that the least recently used free one is dropped, or the new one is not kept.
    """

    def __init__(self, blocks: int = 16, slack: float = 4.0) -> None:
        self.blocks, self.slack = blocks, slack
        self._pool: list[np.ndarray] = []  # least recently used first
        self._lock = threading.Lock()
        # What a block held by the pool alone counts, measured through the same code on a block no one
        # else holds (the count of the interpreter's own references differs between Python versions).
        self._alone = self._references([np.empty(0)], 0)

    @staticmethod
    def _references(pool: list[np.ndarray], index: int) -> int:
        block = pool[index]
        return sys.getrefcount(block)

    def _free(self, index: int) -> bool:
        return self._references(self._pool, index) <= self._alone

    def take(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` (contents undefined) whose memory no one else references."""
        size, dtype = math.prod(shape), np.dtype(dtype)
        with self._lock:
            best = None
            for index in range(len(self._pool)):
                block = self._pool[index]
                fits = block.dtype == dtype and size <= block.size <= self.slack * max(size, 1)
                if fits and (best is None or block.size < self._pool[best].size):
                    del block  # not to count as a reference below
                    if self._free(index):
                        best = index
            if best is not None:
                block = self._pool.pop(best)
            else:
                block = np.empty(size, dtype=dtype)
                if len(self._pool) >= self.blocks:
                    self._drop_one_free()
            if len(self._pool) < self.blocks:
                self._pool.append(block)  # most recently used last
            return block[:size].reshape(shape)

    def _drop_one_free(self) -> None:
        """Forget the least recently used free block, if there is one."""
        for index in range(len(self._pool)):
            if self._free(index):
                del self._pool[index]
                return

    def clear(self) -> None:
        """Drop every pooled block (its memory goes back once no graph holds it)."""
        with self._lock:
            self._pool.clear()


def _im2col_into(x: np.ndarray, columns: np.ndarray, kernel_size, stride, padding, dilation) -> None:
    """im2col of ``x`` (N, C, *spatial) into ``columns`` (C, *kernel, N, *out), one copy per kernel offset.

    Each offset's block (C, N, *out) is a strided view of the input (no padded copy of ``x``): the part of
    the window inside the input is copied, the part over the padding set to zero."""
    spatial = len(kernel_size)
    out_sizes = columns.shape[2 + spatial :]
    by_channel = x.swapaxes(0, 1)  # (C, N, *spatial), a view
    for offsets in np.ndindex(*kernel_size):
        target = columns[(slice(None), *offsets)]  # (C, N, *out)
        inner, source = [], []
        for o, s, d, p, n, size in zip(offsets, stride, dilation, padding, out_sizes, x.shape[2:]):
            start = o * d - p  # the input position output 0 reads along this axis; output j reads start + j s
            first = min(n, max(0, (s - 1 - start) // s))  # the first output reading a position >= 0
            last = max(first, min(n, (size - 1 - start) // s + 1))  # one past the last reading a position < size
            inner.append(slice(first, last))
            source.append(slice(start + first * s, start + (last - 1) * s + 1, s) if last > first else slice(0, 0))
        if any(sl.stop - sl.start < n for sl, n in zip(inner, out_sizes)):
            target[...] = 0
        if all(sl.stop > sl.start for sl in inner):
            target[(slice(None), slice(None), *inner)] = by_channel[(slice(None), slice(None), *source)]


class Conv(Primitive):
    """Convolution (cross-correlation, as in PyTorch) of x (N, C, *spatial) with weight (O, C, *kernel) and an
    optional bias (O,), 1-d or 2-d: :math:`y_{n,o,p} = b_o + \\sum_{c,k} w_{o,c,k}\\, x_{n,c,\\, p s + k d}`.

    Forward: im2col into a (C·|kernel|, N·positions) matrix taken from a per-shape workspace (no allocation
    per step once warm) and one GEMM :math:`W \\cdot \\text{columns}`; the result (O, N, *out) is returned as
    the (N, O, *out) view, channel-major in memory. The columns stay in the output's buffer (``out.base``),
    so the fast VJP reuses them instead of building them again; the buffer goes back to the workspace when
    the output and the graph holding it are gone.

    VJP, with :math:`G` the output's gradient as (O, N·positions): :math:`\\partial W = (\\text{columns}\\,
    G^T)^T` (the orientation OpenBLAS runs fastest here), :math:`\\partial b = \\sum G`, and :math:`\\partial x`
    = col2im of :math:`W^T G` (:class:`Fold`). JVP: :math:`\\text{conv}(t_x, W) + \\text{conv}(x, t_W) + t_b`.
    The generic rules are written with ``unfold``, ``fold`` and ``matmul``, so a recorded graph differentiates
    them again.

    Examples
    --------
    >>> import numpy as np
    >>> x, w = np.arange(9.0).reshape(1, 1, 3, 3), np.ones((1, 1, 2, 2))
    >>> Conv.forward(x, w, stride=(1, 1), padding=(0, 0), dilation=(1, 1))[0, 0].tolist()
    [[8.0, 12.0], [20.0, 24.0]]
    """

    name = "conv"
    float_only = True
    saves_inputs = (0, 1)
    workspace = _Workspace()

    @staticmethod
    def array_forward(xp, x, weight, bias=None, *, stride, padding, dilation):
        # the windows (N, *out, C, *kernel) as rows (N, *out, C·|kernel|) times the weight matrix's transpose
        spatial, out_channels = len(stride), weight.shape[0]
        geometry = {"stride": stride, "padding": padding, "dilation": dilation}
        windows = Unfold.array_forward(xp, x, kernel_size=tuple(weight.shape[2:]), **geometry)
        rows = xp.reshape(windows, (*windows.shape[: 1 + spatial], -1))
        out = xp.matmul(rows, xp.permute_dims(xp.reshape(weight, (out_channels, -1)), (1, 0)))  # (N, *out, O)
        out = xp.permute_dims(out, (0, 1 + spatial, *range(1, 1 + spatial)))
        return out if bias is None else out + xp.reshape(bias, (out_channels, *(1,) * spatial))

    @staticmethod
    def forward(x, weight, bias=None, *, stride, padding, dilation):
        kernel_size, (batch, channels), out_channels = weight.shape[2:], x.shape[:2], weight.shape[0]
        out_sizes = _conv_out_sizes(x.shape, kernel_size, stride, padding, dilation)
        positions = batch * math.prod(out_sizes)
        fan_in = channels * math.prod(kernel_size)
        dtype = np.result_type(x, weight)
        # One buffer for the output (O, N·positions) and the columns (C·|kernel|, N·positions) after it
        buffer = Conv.workspace.take(((out_channels + fan_in) * positions,), dtype)
        out = buffer[: out_channels * positions].reshape(out_channels, positions)
        columns = buffer[out_channels * positions :].reshape(channels, *kernel_size, batch, *out_sizes)
        _im2col_into(x, columns, kernel_size, stride, padding, dilation)
        np.matmul(weight.reshape(out_channels, fan_in), columns.reshape(fan_in, positions), out=out)
        if bias is not None:
            out += bias.reshape(out_channels, 1)
        return out.reshape(out_channels, batch, *out_sizes).swapaxes(0, 1)  # (N, O, *out), a view

    @staticmethod
    def _columns(out: np.ndarray, x: np.ndarray, weight: np.ndarray, stride, padding, dilation) -> np.ndarray:
        """The forward's columns (C·|kernel|, N·positions) from ``out``'s buffer, or built again."""
        kernel_size, out_channels = weight.shape[2:], weight.shape[0]
        fan_in = x.shape[1] * math.prod(kernel_size)
        positions = out.size // out_channels if out_channels else 0
        base, size = out.base, (out_channels + fan_in) * positions
        if isinstance(base, np.ndarray) and base.ndim == 1 and base.size >= size and base.dtype == out.dtype:
            if base.ctypes.data == out.ctypes.data:  # the output starts the block: the columns follow it
                return base[out_channels * positions : size].reshape(fan_in, positions)
        columns = np.empty((x.shape[1], *kernel_size, x.shape[0], *out.shape[2:]), dtype=out.dtype)
        _im2col_into(x, columns, kernel_size, stride, padding, dilation)
        return columns.reshape(fan_in, positions)

    @staticmethod
    def vjp(xp, grad_out, needs, out, x, weight, bias=None, *, stride, padding, dilation):
        spatial = len(stride)
        geometry = {"kernel_size": tuple(weight.shape[2:]), "stride": stride, "padding": padding, "dilation": dilation}
        out_channels, batch = weight.shape[0], x.shape[0]
        # G: the output's gradient as (O, N·positions)
        grads = xp.reshape(xp.permute(grad_out, axes=(1, 0, *range(2, 2 + spatial))), shape=(out_channels, -1))
        matrix = xp.reshape(weight, shape=(out_channels, -1))  # (O, C·|kernel|)
        grad_x = grad_w = grad_b = None
        if needs[0]:
            columns = xp.matmul(xp.permute(matrix, axes=(1, 0)), grads)  # (C·|kernel|, N·positions)
            columns = xp.reshape(columns, shape=(x.shape[1], *weight.shape[2:], batch, *grad_out.shape[2:]))
            order = (1 + spatial, *range(2 + spatial, 2 + 2 * spatial), 0, *range(1, 1 + spatial))
            grad_x = xp.fold(xp.permute(columns, axes=order), input_shape=x.shape, **geometry)
        if needs[1]:
            windows = xp.unfold(x, **geometry)  # (N, *out, C, *kernel)
            order = (1 + spatial, *range(2 + spatial, 2 + 2 * spatial), 0, *range(1, 1 + spatial))
            columns = xp.reshape(xp.permute(windows, axes=order), shape=(matrix.shape[1], -1))
            grad_w = xp.reshape(xp.matmul(grads, xp.permute(columns, axes=(1, 0))), shape=weight.shape)
        if len(needs) > 2 and needs[2]:
            grad_b = xp.sum(grads, axis=1)
        return (grad_x, grad_w, grad_b)[: len(needs)]

    @staticmethod
    def jvp(xp, tangents, out, x, weight, bias=None, *, stride, padding, dilation):
        geometry = {"stride": stride, "padding": padding, "dilation": dilation}
        tx, tw = tangents[0], tangents[1]
        result = None if tx is None else xp.conv(tx, weight, **geometry)
        result = _plus(result, None if tw is None else xp.conv(x, tw, **geometry))
        tb = tangents[2] if len(tangents) > 2 else None
        if tb is not None:
            tb = xp.reshape(tb, shape=(-1,) + (1,) * len(stride))
        return _plus(result, tb)

    @staticmethod
    def fast_vjp(grad_out, needs, out, x, weight, bias=None, *, stride, padding, dilation):
        spatial = len(stride)
        kernel_size, out_channels = weight.shape[2:], weight.shape[0]
        grads = grad_out.swapaxes(0, 1).reshape(out_channels, -1)  # G (O, N·positions): a view if channel-major
        matrix = weight.reshape(out_channels, -1)
        grad_x = grad_w = grad_b = None
        if needs[0] and all(s == 1 for s in stride) and grads.size:
            grad_x = _col2im_padded_rows(grad_out, matrix, x.shape, kernel_size, padding, dilation)
        elif needs[0]:
            columns = Conv.workspace.take((matrix.shape[1], grads.shape[1]), grads.dtype)
            np.matmul(matrix.T, grads, out=columns)  # Wᵀ G: (C·|kernel|, N·positions)
            columns = columns.reshape(x.shape[1], *kernel_size, x.shape[0], *grad_out.shape[2:])
            order = (1 + spatial, *range(2 + spatial, 2 + 2 * spatial), 0, *range(1, 1 + spatial))
            geometry = {"kernel_size": kernel_size, "stride": stride, "padding": padding, "dilation": dilation}
            grad_x = Fold.forward(columns.transpose(order), input_shape=x.shape, **geometry)
            del columns  # back to the workspace
        if needs[1]:
            columns = Conv._columns(out, x, weight, stride, padding, dilation)
            grad_w = np.matmul(columns, grads.T).T.reshape(weight.shape)  # (columns Gᵀ)ᵀ
        if len(needs) > 2 and needs[2]:
            grad_b = grads.sum(axis=1)
        return (grad_x, grad_w, grad_b)[: len(needs)]


def _col2im_padded_rows(grad_out, matrix, input_shape, kernel_size, padding, dilation) -> np.ndarray:
    """The input gradient of a stride-1 convolution, col2im of ``Wᵀ G`` with the output laid over padded rows.

    With stride 1, output position ``o`` (per spatial axis) reads padded input position ``o + k d``. Giving the
    gradient G the padded input's last-axis length (zeros past the output's width), every kernel offset's
    contribution becomes one contiguous run of the flattened padded plane, shifted by the offset: col2im is one
    long add per kernel offset instead of one per output row (rows of 14 values for the benchmark's conv2). The
    product ``Wᵀ G`` grows by the padded width over the output width (~30% there); it still measures faster.
    """
    channels, batch, spatial = input_shape[1], input_shape[0], len(kernel_size)
    out_channels = matrix.shape[0]
    padded = tuple(n + 2 * p for n, p in zip(input_shape[2:], padding))
    out_sizes = grad_out.shape[2:]
    plane = math.prod(padded)
    run = math.prod(out_sizes[:-1]) * padded[-1]  # output positions over padded rows, flattened
    # G with the padded last-axis length, zeros in the extra columns: (O, N, *out[:-1], padded[-1])
    wide = Conv.workspace.take((out_channels, batch, *out_sizes[:-1], padded[-1]), grad_out.dtype)
    wide[..., out_sizes[-1] :] = 0
    wide[..., : out_sizes[-1]] = grad_out.swapaxes(0, 1)
    columns = Conv.workspace.take((matrix.shape[1], batch * run), grad_out.dtype)
    np.matmul(matrix.T, wide.reshape(out_channels, -1), out=columns)  # (C·|kernel|, N·run)
    del wide
    columns = columns.reshape(channels, math.prod(kernel_size), batch, run)
    tail = sum((k - 1) * d for k, d in zip(kernel_size[-1:], dilation[-1:]))  # runs may end past the plane
    result = np.zeros((channels, batch, plane + tail), dtype=grad_out.dtype)
    strides = [math.prod(padded[axis + 1 :]) for axis in range(spatial)]
    for index, offsets in enumerate(np.ndindex(*kernel_size)):
        shift = sum(o * d * step for o, d, step in zip(offsets, dilation, strides))
        result[:, :, shift : shift + run] += columns[:, index]
    del columns
    result = result[:, :, :plane].reshape(channels, batch, *padded)
    crop = tuple(slice(p, p + n) for p, n in zip(padding, input_shape[2:]))
    return result[(slice(None), slice(None), *crop)].swapaxes(0, 1)  # (N, C, *spatial), channel-major


def _conv_out_sizes(shape, kernel_size, stride, padding, dilation) -> tuple[int, ...]:
    return tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(shape[2:], kernel_size, stride, padding, dilation)
    )


# ---------------------------------------------------------------------------------------------------
# The NumPy namespace: each table name is the primitive's forward.
# ---------------------------------------------------------------------------------------------------
numpy_namespace = SimpleNamespace(**{name: op.forward for name, op in OPS.items()})


# ---------------------------------------------------------------------------------------------------
# Another array library's namespace: each table name is the primitive's ``array_forward`` on it.
# ---------------------------------------------------------------------------------------------------
_ARRAY_NAMESPACES: dict[Any, SimpleNamespace] = {}


def array_namespace(xp: Any) -> SimpleNamespace:
    """The table's namespace for array library ``xp`` (an array-API namespace other than NumPy).

    Each name is the primitive's ``array_forward`` bound to ``xp``; a primitive without one raises a
    :class:`~chainrule.errors.DTypeError` naming the op and the library when a rule or forward calls it.
    """
    namespace = _ARRAY_NAMESPACES.get(xp)
    if namespace is None:
        namespace = SimpleNamespace(**{name: _bound_forward(op, xp) for name, op in OPS.items()})
        _ARRAY_NAMESPACES[xp] = namespace
    return namespace


def _bound_forward(op: type[Primitive], xp: Any) -> Callable[..., Any]:
    forward = op.array_forward
    if forward is not None:
        return partial(forward, xp)

    def unsupported(*inputs: Any, **attrs: Any) -> Any:
        raise unsupported_namespace(op, xp)

    return unsupported


def unsupported_namespace(op: type[Primitive], xp: Any) -> DTypeError:
    """The error for ``op`` on arrays of library ``xp``, which it has no ``array_forward`` for."""
    supported = ", ".join(sorted(name for name, entry in OPS.items() if entry.array_forward is not None))
    library = getattr(xp, "__name__", type(xp).__name__)
    return DTypeError(
        f"{op.name}: runs on NumPy arrays only, not on {library} arrays (ops with a forward on any array-API "
        f"library: {supported}); convert the data with numpy.asarray first"
    )


def _dtype_in(xp: Any, dtype: Any) -> Any:
    """``dtype`` (a NumPy dtype, as chainrule spells dtypes, or already one of ``xp``'s) as ``xp``'s dtype."""
    return getattr(xp, np.dtype(dtype).name) if isinstance(dtype, (np.dtype, type, str)) else dtype
