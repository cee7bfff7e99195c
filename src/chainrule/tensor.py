"""The tensor engine: :class:`Tensor` wraps a NumPy array and records the ops applied to it.

:func:`apply` is the one place where an op of :mod:`chainrule.ops` runs on tensors: it converts dtypes,
runs the NumPy forward, turns NumPy's errors into chainrule errors that name the op and the shapes, and
links the result into the graph. :meth:`Tensor._vjp` is the one place where a rule is chosen (an op's
NumPy ``fast_vjp`` when no graph is recorded, else its generic ``vjp``) and its gradients are summed
back to their inputs' shapes (undoing broadcasting) and checked. Both call the NaN/Inf checks of
:mod:`chainrule.anomaly` when anomaly mode is on, behind a single flag test.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from chainrule import anomaly, autograd
from chainrule.anomaly import _anomaly_mode, _format_site
from chainrule.autograd import _grad_mode
from chainrule.backend import foreign_array, get_namespace, numpy_dtype
from chainrule.errors import ArgumentError, ChainruleError, DTypeError, GradientError, IndexingError, ShapeError
from chainrule.hooks import RemovableHandle, register_grad_hook
from chainrule.ops import OPS, Primitive, array_namespace, numpy_namespace, unsupported_namespace

__all__ = ["Tensor", "apply", "float32", "float64", "int64", "bool_", "as_dtype"]

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
_FLOAT_KINDS = "f"
_INT_KINDS = "biu"
_SUPPORTED = (float32, int64, bool_, float64)
_SUPPORTED_TEXT = "float32, float64, int64 and bool"


def as_dtype(dtype: Any) -> np.dtype:
    """Resolve ``dtype`` (``"float32"``, ``np.float64``, ``chainrule.int64`` …) to a supported NumPy dtype.

    Raises
    ------
    DTypeError
        For anything but float32, float64, int64 and bool.
    """
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"unknown dtype {dtype!r}; use float32, float64, int64 or bool") from None
    if resolved not in (float32, float64, int64, bool_):
        raise DTypeError(f"dtype {resolved} is not supported; use float32, float64, int64 or bool")
    return resolved


def _to_array(data: Any, dtype: Any = None, copy: bool = True) -> np.ndarray:
    """Convert user data to an array of a supported dtype (floats default to float32, as in PyTorch)."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = as_dtype(dtype)
    if type(data) is not np.ndarray and foreign_array(data):
        return _to_foreign(data, dtype, copy)
    try:
        array = np.array(data, copy=copy) if isinstance(data, np.ndarray) else np.asarray(data)
    except (ValueError, TypeError) as error:
        raise DTypeError(f"tensor: cannot convert {type(data).__name__} to a tensor ({error})") from None
    kind = array.dtype.kind
    if kind not in "fiub" or array.dtype.itemsize > 8:
        raise DTypeError(_unsupported(array.dtype, "tensor"))
    if kind == "u" and array.dtype.itemsize == 8 and array.size and array.max() > np.iinfo(np.int64).max:
        raise DTypeError(
            f"tensor: uint64 value {array.max()} does not fit in int64 (the largest is {np.iinfo(np.int64).max})"
        )
    if dtype is None:
        if kind == "f":
            keeps_dtype = isinstance(data, (np.ndarray, np.generic)) and array.dtype in (float32, float64)
            dtype = array.dtype if keeps_dtype else float32
        elif kind in "iu":
            dtype = int64
        elif kind == "b":
            dtype = bool_
    if kind == "f" and dtype.kind != "f" and array.size and not np.isfinite(array).all():
        raise DTypeError(f"tensor: cannot convert NaN or infinity to {dtype} (the data holds non-finite floats)")
    return array.astype(dtype, copy=False)


def _to_foreign(data: Any, dtype: np.dtype | None, copy: bool) -> Any:
    """Keep an array of another array library in its library, checked and cast as :func:`_to_array` does."""
    xp = get_namespace(data)
    have = numpy_dtype(data.dtype)
    if have.kind not in "fiub" or have.itemsize > 8:
        raise DTypeError(_unsupported(have, "tensor"))
    if dtype is None:  # as for NumPy data: other integers become int64, other floats float32
        dtype = have if have in _SUPPORTED else int64 if have.kind in "iu" else float32
    if dtype != have:
        return xp.astype(data, getattr(xp, dtype.name))
    return xp.asarray(data, copy=True) if copy else data


def _unsupported(dtype: np.dtype, where: str) -> str:
    """The message for data of a dtype chainrule does not compute in."""
    kinds = {
        "c": "complex numbers",
        "O": "Python objects (ragged nested lists, None, mixed types)",
        "U": "strings",
        "S": "bytes",
        "M": "dates",
        "m": "time differences",
        "V": "structured records",
    }
    what = kinds.get(dtype.kind, "extended precision" if dtype.kind == "f" else "an unsupported kind")
    return (
        f"{where}: cannot make a tensor from data of dtype {dtype} ({what}); chainrule computes in {_SUPPORTED_TEXT} "
        "(convert it first, e.g. np.asarray(data, dtype=np.float64))"
    )


class _Version:
    """The version counter of one array's storage, shared by a tensor, its views and ``detach()``.

    Every in-place change through chainrule (``+=``, ``__setitem__``, ``fill_``, ``zero_``, ``copy_``, optimizer
    steps, initialisers, ``load_state_dict``, running statistics) calls :meth:`bump`: ``count`` is how many changes
    this storage has had, ``epoch`` the value of one process-wide clock of in-place changes at the last one. A graph
    node records the clock when its op ran; ``backward`` compares it with the epochs of the tensors the op's rule
    reads (one integer compare each, and none at all while nothing changed in place since the node was made) and
    refuses to compute a gradient from values changed after they were saved. Tensors get a counter only when they
    are first changed in place or viewed, so ordinary ops pay nothing for it.

    The clock is shared by all threads (a graph built in one thread may read a tensor that another changes), so
    a change takes it and moves it on under a lock: a thread switched out between reading and storing it (under a
    tracer, or on free-threaded Python) would store a value that other threads' changes have already passed,
    the clock would go back, and a later change would look older than the graph that saved the tensor (a wrong
    gradient, silently). Ops only read it.
    """

    __slots__ = ("count", "epoch", "site")
    clock = 0  # in-place changes made in this process so far
    _lock = threading.Lock()  # held while the clock moves on (bump)

    def __init__(self) -> None:
        self.count = 0
        self.epoch = 0
        self.site = ""  # the last change: "'+=' at file.py:12", for the error message

    def bump(self, what: str) -> None:
        with _Version._lock:
            self.epoch = _Version.clock = _Version.clock + 1
        self.count += 1
        self.site = what


class _Node:
    """What an op's output remembers for backward: the op, its arguments and attributes.

    ``epoch`` is the in-place clock (:class:`_Version`) when the op ran: a tensor the op's backward rule reads
    (``op.saves_inputs``, and the output itself where ``op.saves_output``) must not have changed since.
    """

    __slots__ = ("args", "attrs", "epoch", "op", "parents", "site")

    def __init__(self, op: type[Primitive], args: tuple, attrs: dict, parents: tuple, site: tuple = ()) -> None:
        self.op = op
        self.args = args  # tensors and constants, as the op was called
        self.attrs = attrs
        self.parents = parents  # the tensors among args that require grad
        self.site = site  # where the user created the op; recorded only in anomaly mode
        self.epoch = _Version.clock


class _FreedNode:
    """Stands in for a node whose saved values were released by ``backward()``."""

    __slots__ = ("op",)

    def __init__(self, op: type[Primitive]) -> None:
        self.op = op


_CATEGORY = {"b": 0, "i": 1, "u": 1, "f": 2}
_SCALAR_DEFAULT = (bool_, int64, float32)  # what a Python bool, int or float becomes when it decides the dtype


def _promote_pair(a: np.dtype, b: np.dtype) -> np.dtype:
    """PyTorch's ``promote_types``: the higher category wins outright (``int64 ⊕ float32`` is float32)."""
    if a == b:
        return a
    category_a, category_b = _CATEGORY[a.kind], _CATEGORY[b.kind]
    if category_a != category_b:
        return a if category_a > category_b else b
    return np.promote_types(a, b)


def _promote(op: type[Primitive], arrays: list) -> list:
    """Cast the inputs of ``op`` to one dtype, by PyTorch's rules (``torch.result_type``).

    Three tiers, strongest first: tensors with dimensions, 0-d tensors, Python numbers. A weaker tier
    decides the dtype only when its category (bool < integer < float) is higher: ``float32 ⊕ float64`` is
    float64, ``float32 ⊕ 0-d float64`` stays float32, ``int64 ⊕ 2.5`` is float32 (the default float),
    ``int64 ⊕ int64`` stays int64. A float-only op (``div``, ``exp`` …) turns an integer result into float32.
    Inputs before ``op.promote_from`` (``where``'s condition) are left alone.
    """
    # Fast path, the common case: arrays of one floating dtype, with or without Python floats beside them.
    common = None
    for value in arrays[op.promote_from :]:
        if type(value) is np.ndarray:
            if common is None:
                common = value.dtype
            elif value.dtype != common:
                break
        elif type(value) is not float:
            break
    else:
        if common is not None and common.kind == "f":
            return arrays
    dims = zeros = None
    scalar_category = -1
    for value in arrays[op.promote_from :]:
        if (
            isinstance(value, np.ndarray)
            and value.dtype not in _SUPPORTED
            and (value.dtype.kind not in "fiub" or value.dtype.itemsize > 8)
        ):
            raise DTypeError(_unsupported(value.dtype, op.name))
        if isinstance(value, complex):
            raise DTypeError(f"{op.name}: got the complex number {value!r}; chainrule computes in {_SUPPORTED_TEXT}")
        if isinstance(value, np.ndarray):
            if value.ndim:
                dims = value.dtype if dims is None else _promote_pair(dims, value.dtype)
            else:
                zeros = value.dtype if zeros is None else _promote_pair(zeros, value.dtype)
        elif isinstance(value, bool):
            scalar_category = max(scalar_category, 0)
        elif isinstance(value, int):
            scalar_category = max(scalar_category, 1)
        elif isinstance(value, float):
            scalar_category = 2
    target = dims
    if zeros is not None and (target is None or _CATEGORY[zeros.kind] > _CATEGORY[target.kind]):
        target = zeros
    if target is None:
        return arrays
    if scalar_category > _CATEGORY[target.kind]:
        target = _SCALAR_DEFAULT[scalar_category]
    if op.float_only and target.kind != "f":
        target = float32
    return [
        value.astype(target)
        if index >= op.promote_from and isinstance(value, np.ndarray) and value.dtype != target
        else value
        for index, value in enumerate(arrays)
    ]


def _translate(op: type[Primitive], arrays: list, error: Exception) -> ChainruleError:
    """Turn a NumPy exception raised inside ``op.forward`` into a chainrule error naming op and shapes."""
    shapes = [np.shape(a) for a in arrays if isinstance(a, np.ndarray)]
    shape_text = " and ".join(str(s) for s in shapes) if shapes else "()"
    message = str(error).split("\n")[0]
    if isinstance(error, TypeError):
        dtypes = ", ".join(str(a.dtype) for a in arrays if isinstance(a, np.ndarray))
        return DTypeError(f"{op.name}: unsupported input dtypes ({dtypes}): {message}")
    if isinstance(error, IndexError):
        return IndexingError(f"{op.name}: {message} (tensor of shape {shape_text})")
    if "broadcast" in message:
        return ShapeError(f"{op.name}: shapes {shape_text} cannot be broadcast together")
    return ShapeError(f"{op.name}: {message} (input shapes {shape_text})")


def apply(op: type[Primitive], *args: Any, **attrs: Any) -> Tensor:
    """Run primitive ``op`` on tensors and constants and link the result into the graph.

    Parameters
    ----------
    op : Primitive subclass
        An entry of :data:`chainrule.ops.OPS`.
    *args : Tensor, ndarray or Python scalar
        The op's inputs; only tensors can receive gradients.
    **attrs
        The op's non-differentiable attributes (axis, shape, index …).

    Returns
    -------
    Tensor
        The result; it requires grad when grad mode is on and any input tensor does.
    """
    # NumPy scalars count as Python numbers (PyTorch's rule), so np.float64(2) never upcasts a float32 tensor.
    arrays = [a.data if isinstance(a, Tensor) else a.item() if isinstance(a, np.generic) else a for a in args]
    # Another array library's arrays? Only where neither end is a NumPy array (1.0 - x has x last).
    if arrays and type(arrays[0]) is not np.ndarray and type(arrays[-1]) is not np.ndarray:
        xp = get_namespace(*arrays)
        if xp is not np:
            return _apply_in(xp, op, args, arrays, attrs)
    if op.float_only or len(arrays) > 1:
        arrays = _promote(op, arrays)
    try:
        data = op.forward(*arrays, **attrs)
    except (ValueError, IndexError, TypeError) as error:
        if isinstance(error, ChainruleError):
            raise
        raise _translate(op, arrays, error) from None
    if type(data) is not np.ndarray:
        data = np.asarray(data)
    site = anomaly.check_forward(op, arrays, data) if _anomaly_mode.enabled else ()
    out = Tensor.__new__(Tensor)
    out.data = data
    out._grad = None
    out._version = None if data.base is None else _shared_version(data, args)
    # Only a floating-point result can carry a gradient: casting to int64 or bool ends the graph.
    if _grad_mode.enabled and op.differentiable and data.dtype.kind == "f":
        parents = tuple([a for a in args if isinstance(a, Tensor) and a._requires_grad])
        if parents:
            out._requires_grad = True
            out._ctx = _Node(op, args, attrs, parents, site)
            return out
    out._requires_grad = False
    out._ctx = None
    return out


def _apply_in(xp: Any, op: type[Primitive], args: tuple, arrays: list, attrs: dict) -> Tensor:
    """:func:`apply` on arrays of array library ``xp`` (not NumPy): the op's ``array_forward``, no views tracked.

    Promotion is the library's (the array-API rules agree with chainrule's for arrays of one kind); a
    float-only op turns integer arrays into float32 first, as on NumPy.
    """
    forward = op.array_forward
    if forward is None:
        raise unsupported_namespace(op, xp)
    if op.float_only:
        arrays = [
            xp.astype(a, xp.float32) if foreign_array(a) and numpy_dtype(a.dtype).kind != "f" else a for a in arrays
        ]
    try:
        data = forward(xp, *arrays, **attrs)
    except (ValueError, IndexError, TypeError) as error:
        if isinstance(error, ChainruleError):
            raise
        shapes = " and ".join(str(tuple(a.shape)) for a in arrays if foreign_array(a))
        kind = DTypeError if isinstance(error, TypeError) else ShapeError
        raise kind(f"{op.name}: {str(error).splitlines()[0]} (input shapes {shapes})") from None
    out = _wrap(data)
    if _grad_mode.enabled and op.differentiable and numpy_dtype(data.dtype).kind == "f":
        parents = tuple(a for a in args if isinstance(a, Tensor) and a._requires_grad)
        if parents:
            out._requires_grad = True
            out._ctx = _Node(op, args, attrs, parents, ())
    return out


def _shared_version(data: np.ndarray, args: tuple) -> _Version | None:
    """The counter of the input whose storage ``data`` views (reshape, transpose, slicing), if any."""
    base = data.base
    for arg in args:
        if isinstance(arg, Tensor) and (base is arg.data or base is arg.data.base):
            return arg._counter()
    return None


def _check_saved(node: _Node, out: Tensor) -> None:
    """Raise if a tensor that ``node``'s backward rule reads was changed in place after the node was made."""
    saves = node.op.saves_inputs
    for index, arg in enumerate(node.args):
        if isinstance(arg, Tensor) and (saves is True or index in saves):
            if arg._version is not None and arg._version.epoch > node.epoch:
                raise _modified_error(node, arg)
    if node.op.saves_output and out._version is not None and out._version.epoch > node.epoch:
        raise _modified_error(node, out)


def _modified_error(node: _Node, tensor: Tensor) -> GradientError:
    """The error for a tensor that ``node``'s backward needs but that was changed in place after the op ran."""
    where = (
        _format_site(node.site)
        if node.site
        else ("run under `with chainrule.autograd.detect_anomaly():` to see the line that created it")
    )
    version = tensor._counter()
    return GradientError(
        f"backward: a tensor of shape {tensor.shape} ({tensor.dtype}) that {node.op.name!r} saved for its gradient "
        f"was changed in place after it was saved (its version is now {version.count}), last by "
        f"{version.site or 'an in-place op'}; the gradient would be wrong. The {node.op.name!r} op: {where}. "
        "Compute on a copy (x = x + 1, x.clone()) or call backward before changing it"
    )


def _wrap(data: np.ndarray, version: _Version | None = None) -> Tensor:
    """A constant tensor around ``data`` (no copy, no graph); ``version`` shares another tensor's counter."""
    out = Tensor.__new__(Tensor)
    out.data = data
    out._grad = None
    out._requires_grad = False
    out._ctx = None
    out._version = version
    return out


class Tensor:
    """An n-dimensional array that records the ops applied to it, for reverse- and forward-mode autodiff.

    Parameters
    ----------
    data : array_like
        Numbers: a scalar, nested lists, a NumPy array or another tensor (copied).
    dtype : dtype, optional
        float32 (default for floating data), float64, int64 (default for integers) or bool.
    requires_grad : bool
        Record operations on this tensor so that ``backward()`` fills its ``.grad``.

    Attributes
    ----------
    data : numpy.ndarray
        The values.
    grad : Tensor or None
        The accumulated gradient ``dL/dself`` after ``backward()``; same shape and dtype as ``data``.
    requires_grad : bool
        Whether gradients flow to this tensor.

    Examples
    --------
    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> loss = (x * x).sum()
    >>> loss.backward()
    >>> x.grad
    tensor([2., 4., 6.])
    """

    __slots__ = ("__weakref__", "_ctx", "_grad", "_requires_grad", "_version", "data")
    __array_ufunc__ = None  # NumPy arrays defer to our reflected operators (ndarray * Tensor -> Tensor)

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False) -> None:
        self.data = _to_array(data, dtype)
        self._grad: Tensor | None = None
        self._ctx: _Node | _FreedNode | None = None
        self._requires_grad = False
        self._version: _Version | None = None  # made on the first in-place change or view (see _counter)
        if requires_grad is not False:
            self.requires_grad_(requires_grad)

    # -- gradient bookkeeping: checked on assignment ---------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow to this tensor (settable on floating-point leaves)."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    @property
    def grad(self) -> Tensor | None:
        """The accumulated gradient ``dL/dself`` (same shape and dtype), or None.

        Assigning checks the value: None, or a tensor of this tensor's shape and dtype.
        """
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise ArgumentError(
                    f"grad: assigned a {type(value).__name__}; the gradient must be a Tensor (or None) of shape "
                    f"{self.shape} and dtype {self.dtype}"
                )
            if value.shape != self.data.shape:
                raise ShapeError(f"grad: assigned a gradient of shape {value.shape} to a tensor of shape {self.shape}")
            if value.dtype != self.data.dtype:
                raise DTypeError(f"grad: assigned a gradient of dtype {value.dtype} to a tensor of dtype {self.dtype}")
        self._grad = value

    @property
    def version(self) -> int:
        """How many in-place changes this tensor's storage has had (shared with its views and ``detach()``)."""
        return 0 if self._version is None else self._version.count

    # -- basic properties --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The size of each dimension."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        """The element type (a NumPy dtype, whichever array library holds the values)."""
        data = self.data
        return data.dtype if type(data) is np.ndarray else numpy_dtype(data.dtype)

    @property
    def T(self) -> Tensor:  # noqa: N802 - NumPy/PyTorch name
        """The tensor with its axes reversed (the transpose of a matrix)."""
        return self.permute(*reversed(range(self.ndim)))

    @property
    def is_leaf(self) -> bool:
        """True for tensors created by the user rather than by an op that records a graph."""
        return self._ctx is None

    @property
    def grad_fn(self) -> str | None:
        """The name of the op that produced this tensor, or None for a leaf."""
        return None if self._ctx is None else self._ctx.op.name

    def numel(self) -> int:
        """The number of elements."""
        return int(self.data.size)

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        """The shape, or the size of dimension ``dim`` (PyTorch's spelling)."""
        return self.data.shape if dim is None else self.data.shape[dim]

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise ShapeError("len() of a 0-d tensor: it has no first dimension")
        return self.data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self.data.ndim == 0:
            raise ShapeError("iteration over a 0-d tensor: it has no first dimension")
        return (self[i] for i in range(self.data.shape[0]))

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(", threshold=200)
        extras = []
        if self.dtype not in (float32, int64, bool_):  # a NumPy dtype whatever library holds the array
            extras.append(f"dtype={self.dtype}")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{self._ctx.op.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ShapeError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; use .any() or .all()"
            )
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise DTypeError(
                f"only a one-element integer tensor can be used as an index, got {self.data.dtype} "
                f"of shape {self.data.shape}"
            )
        return int(self.data)

    __hash__ = object.__hash__  # identity: tensors are graph nodes and dictionary keys

    # -- conversion ----------------------------------------------------------------------------------
    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ShapeError(f"item: only a one-element tensor has an item, this one has shape {self.data.shape}")
        data = self.data
        if type(data) is not np.ndarray:  # another array library: its 0-d array's Python number
            return {"f": float, "b": bool}.get(self.dtype.kind, int)(get_namespace(data).reshape(data, ()))
        return data.reshape(()).item()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """The values as an array, so that ``np.asarray(t)`` works (NumPy 2's protocol).

        Parameters
        ----------
        dtype : dtype, optional
            Convert to this dtype.
        copy : bool, optional
            True always copies; False never does (``ValueError`` if a dtype change needs one);
            None copies only when converting.

        Examples
        --------
        >>> import numpy as np
        >>> import chainrule as cr
        >>> np.asarray(cr.tensor([1.0, 2.0]), dtype=np.float64)
        array([1., 2.])
        """
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            if copy is False:
                raise ValueError(f"__array__: converting {self.data.dtype} to {np.dtype(dtype)} needs a copy")
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        """NumPy functions on tensors: computed on the arrays, but never silently off the graph.

        ``np.concatenate([w, w])`` on a tensor that requires grad would return an array with no gradient path
        back to ``w``; that raises and names the chainrule function to use instead. On constant tensors (data,
        gradients) and inside ``no_grad()`` (monitoring: ``np.linalg.norm(w)``) NumPy functions work on the values
        and return arrays.
        """
        if _grad_mode.enabled and func not in _VALUE_FREE_FUNCTIONS and _any_requires_grad((args, kwargs)):
            name = getattr(func, "__name__", str(func))
            module = getattr(func, "__module__", "numpy") or "numpy"
            full = f"np.{name}" if module.startswith("numpy._core") or module == "numpy" else f"{module}.{name}"
            full = full.replace("numpy.", "np.")
            instead = f"chainrule.{name}" if name in _FUNCTION_NAMES else "chainrule's functions and Tensor methods"
            raise ArgumentError(
                f"{full} on a tensor that requires grad would drop it from the graph (no gradient would reach "
                f"it); use {instead}, or call it on t.detach() (or under chainrule.no_grad()) to leave the graph "
                "on purpose"
            )
        return func(*_arrays_of(args), **_arrays_of(kwargs))

    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (shared, not copied)."""
        return self.data

    def tolist(self) -> Any:
        """The values as (nested) Python lists."""
        return self.data.tolist()

    def detach(self) -> Tensor:
        """A tensor sharing this one's values (and version counter), cut from the graph."""
        return _wrap(self.data, self._counter())

    def clone(self) -> Tensor:
        """A copy that stays in the graph (gradients flow back through it)."""
        return self * 1 if self.requires_grad else _wrap(self.data.copy())

    def to(self, dtype: Any) -> Tensor:
        """The tensor converted to ``dtype`` (differentiable between float types).

        Converting to int64 or bool gives a constant: the result has no graph and ``requires_grad``
        False, as in PyTorch (an integer cannot carry a gradient).

        Examples
        --------
        >>> import chainrule as cr
        >>> x = cr.tensor([1.7, -2.2], requires_grad=True)
        >>> x.to(cr.int64), x.long().requires_grad, x.double().requires_grad
        (tensor([ 1, -2]), False, True)
        """
        dtype = as_dtype(dtype)
        return self if dtype == self.data.dtype else apply(OPS["cast"], self, dtype=dtype)

    astype = to

    def float(self) -> Tensor:
        """Converted to float32."""
        return self.to(float32)

    def double(self) -> Tensor:
        """Converted to float64."""
        return self.to(float64)

    def long(self) -> Tensor:
        """Converted to int64 (truncating toward zero); a constant with no graph."""
        return self.to(int64)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set whether gradients flow to this leaf tensor; returns the tensor."""
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise ArgumentError(f"requires_grad: expected True or False, got {type(requires_grad).__name__}")
        if requires_grad and self.dtype.kind != "f":
            raise DTypeError(
                f"requires_grad: only floating-point tensors can require gradients, this one is {self.dtype}"
            )
        if not requires_grad and self._ctx is not None:
            raise GradientError("requires_grad_: cannot turn off gradients of a non-leaf tensor; use detach()")
        self._requires_grad = bool(requires_grad)
        return self

    # -- autodiff ------------------------------------------------------------------------------------
    def backward(self, grad: Any = None, retain_graph: bool | None = None, create_graph: bool = False) -> None:
        """Accumulate ``d self / d leaf`` into the ``.grad`` of every leaf this tensor depends on.

        Parameters
        ----------
        grad : Tensor or array, optional
            ``dL/dself``, of this tensor's shape; may be omitted for a one-element tensor (ones).
        retain_graph : bool, optional
            Keep the graph for another backward pass (defaults to ``create_graph``).
        create_graph : bool
            Record the backward pass itself, so gradients can be differentiated again.

        Raises
        ------
        GradientError
            If this tensor does not require grad, or its graph was freed by an earlier backward.
        """
        if not self.requires_grad:
            raise GradientError(
                "backward: this tensor does not require grad; it was computed under no_grad or from "
                "tensors created without requires_grad=True"
            )
        seed = self._seed_grad(grad, create_graph, "backward")
        retain = create_graph if retain_graph is None else retain_graph
        autograd.backpropagate([self], [seed], retain_graph=retain, create_graph=create_graph)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """Call ``hook(grad)`` with this tensor's gradient during every backward pass; returns a removable handle.

        ``grad`` is the complete :math:`\\partial L / \\partial \\text{self}` (a Tensor of this tensor's shape),
        passed before it flows further back (or, for a leaf, before it is added to ``.grad``). Returning a
        tensor replaces the gradient; returning None keeps it. Hooks run in registration order, also in
        :func:`chainrule.autograd.grad` and under ``create_graph=True`` (then ``grad`` is differentiable).

        Examples
        --------
        >>> import chainrule as cr
        >>> x = cr.tensor([1.0, 2.0], requires_grad=True)
        >>> y = x * x
        >>> handle = y.register_hook(lambda grad: grad * 10)  # scale dL/dy
        >>> y.sum().backward()
        >>> x.grad
        tensor([20., 40.])
        >>> handle.remove()
        """
        if not self._requires_grad:
            raise GradientError("register_hook: this tensor does not require grad, so no gradient will reach it")
        if not callable(hook):
            raise ArgumentError(f"register_hook: expected a function hook(grad), got {type(hook).__name__}")
        return register_grad_hook(self, hook)

    def retain_grad(self) -> None:  # pragma: no cover - documented absence
        raise GradientError("retain_grad is not supported; use chainrule.autograd.grad(loss, tensor)")

    # Node protocol used by chainrule.autograd -----------------------------------------------------
    def _graph_parents(self) -> tuple:
        ctx = self._ctx
        if ctx is None:
            return ()
        if isinstance(ctx, _FreedNode):
            raise GradientError(
                f"backward through the graph a second time: the values saved by {ctx.op.name!r} were freed "
                "after the first backward; pass retain_graph=True to the first call if you need two"
            )
        return ctx.parents

    def _vjp(self, grad_out: Any, create_graph: bool, needed: set[int] | None) -> list[tuple[Tensor, Any]]:
        ctx: Any = self._ctx  # a _Node: the walk reached it through _graph_parents, which refuses freed nodes
        if ctx is None:
            return []
        args = ctx.args
        if _Version.clock != ctx.epoch:  # something changed in place since this op ran: was it what we read?
            _check_saved(ctx, self)
        if needed is None:
            needs = tuple([isinstance(a, Tensor) and a._requires_grad for a in args])
        else:
            needs = tuple([isinstance(a, Tensor) and a._requires_grad and id(a) in needed for a in args])
        op = ctx.op
        # The engine picks the rule: the generic one on tensors when recording a graph, else the op's NumPy
        # fast rule if it has one, else the generic one on NumPy arrays.
        rule: Callable[..., tuple]
        out: Any
        if create_graph:
            xp, inputs, out = tensor_namespace, args, self
            rule = partial(op.vjp, xp)
        else:
            out = self.data
            inputs = tuple([a.data if isinstance(a, Tensor) else a for a in args])
            if type(out) is np.ndarray:
                xp = numpy_namespace
                rule = op.fast_vjp or partial(op.vjp, xp)
            else:  # another array library: the generic rule on its namespace, never the NumPy fast rule
                xp = array_namespace(get_namespace(out))
                rule = partial(op.vjp, xp)
        if _anomaly_mode.enabled:
            grads = anomaly.checked_vjp(ctx, rule, grad_out, needs, out, inputs)
        else:
            grads = rule(grad_out, needs, out, *inputs, **ctx.attrs)
        pushed = []
        for arg, need, grad in zip(args, needs, grads):
            if not need or grad is None:
                continue
            # The one place where broadcasting is undone and gradients are checked.
            if grad.shape != arg.data.shape:
                grad = xp.sum_to(grad, shape=arg.data.shape)
            if grad.dtype != arg.data.dtype:
                grad = xp.cast(grad, dtype=arg.data.dtype)
            pushed.append((arg, grad))
        return pushed

    def _jvp(self, tangents: dict[int, Any], create_graph: bool) -> Any:
        ctx: Any = self._ctx  # a _Node (forward_sweep visits only op outputs)
        args = ctx.args
        arg_tangents = tuple(tangents.get(id(a)) if isinstance(a, Tensor) else None for a in args)
        op = ctx.op
        rule: Callable[..., Any]
        out: Any
        if create_graph:  # the same choice of rule as in _vjp
            xp, inputs, out = tensor_namespace, args, self
            rule = partial(op.jvp, xp)
        else:
            out = self.data
            inputs = tuple(a.data if isinstance(a, Tensor) else a for a in args)
            if type(out) is np.ndarray:
                xp = numpy_namespace
                rule = op.fast_jvp or partial(op.jvp, xp)
            else:
                xp = array_namespace(get_namespace(out))
                rule = partial(op.jvp, xp)
        tangent = rule(arg_tangents, out, *inputs, **ctx.attrs)
        if tangent.shape != self.data.shape:
            tangent = xp.broadcast_to(tangent, shape=self.data.shape)
        if tangent.dtype != self.data.dtype:
            tangent = xp.cast(tangent, dtype=self.data.dtype)
        return tangent

    def _accumulate(self, grad: Any) -> None:
        # A leaf's .grad is its own: never an array or tensor the user passed, another leaf's gradient or
        # a buffer of the graph, and accumulation builds a new tensor, so a .grad the user holds from an
        # earlier backward keeps its values (optimizers and clipping may still change .grad in place).
        if isinstance(grad, Tensor):  # create_graph: keep the gradient differentiable
            if grad._ctx is None and not grad.requires_grad:
                grad = _wrap(grad.data.copy())
            elif self._grad is None:
                grad = apply(_MUL, grad, 1.0)  # a node of its own: other leaves may have received `grad` too
            self._grad = grad if self._grad is None else self._grad + grad
            return
        if type(grad) is not np.ndarray and foreign_array(grad):  # another array library: always a copy of its own
            own = get_namespace(grad).asarray(grad, copy=True)
            self._grad = _wrap(own if self._grad is None else self._grad.data + grad)
            return
        grad = np.asarray(grad)
        if self._grad is None:
            # Take the array without copying only when nothing else holds it: the frame that popped it,
            # this argument and getrefcount's own reference.
            if grad.base is not None or not grad.flags.writeable or sys.getrefcount(grad) > 3:
                grad = grad.copy()
            self._grad = _wrap(grad)
        else:
            self._grad = _wrap(self._grad.data + grad)

    def _release(self) -> None:
        if self._ctx is not None and type(self._ctx) is _Node:
            self._ctx = _FreedNode(self._ctx.op)

    def _seed_grad(self, grad: Any, create_graph: bool, caller: str) -> Any:
        if grad is None:
            if self.data.size != 1:
                raise GradientError(
                    f"{caller}: a gradient can be implied only for a one-element output; this output has "
                    f"shape {self.data.shape}, so pass grad (dL/doutput) of that shape"
                )
            data = self.data
            seed = np.ones_like(data) if type(data) is np.ndarray else get_namespace(data).ones_like(data)
        elif type(self.data) is not np.ndarray:  # another array library: the seed joins the output's
            xp = get_namespace(self.data)
            seed = xp.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.data.dtype)
            if seed.shape != self.data.shape:
                raise ShapeError(f"{caller}: grad has shape {seed.shape} but the output has shape {self.data.shape}")
        else:
            seed = _to_array(grad, self.data.dtype, copy=False)
            if seed.shape != self.data.shape:
                raise ShapeError(f"{caller}: grad has shape {seed.shape} but the output has shape {self.data.shape}")
        if create_graph:
            return grad if isinstance(grad, Tensor) and grad.dtype == self.dtype else _wrap(seed)
        return seed

    @staticmethod
    def _wrap_grad(grad: Any) -> Tensor:
        return grad if isinstance(grad, Tensor) else _wrap(np.asarray(grad))

    # -- in-place updates (optimizers, initialisers): only outside the graph ---------------------------
    def _check_inplace(self, what: str) -> None:
        """Refuse an in-place change that would corrupt a graph (the caller counts the change once it is made)."""
        if self._ctx is not None:
            raise GradientError(
                f"{what}: in-place change of a tensor computed by {self.grad_fn!r} would corrupt its graph"
            )
        if self._requires_grad and _grad_mode.enabled:
            raise GradientError(
                f"{what}: in-place change of a leaf that requires grad; wrap it in `with chainrule.no_grad():`"
            )

    def _counter(self) -> _Version:
        """This storage's version counter, made on first use (views and ``detach()`` share it)."""
        if self._version is None:
            self._version = _Version()
        return self._version

    def _mark_modified(self, what: str) -> None:
        """Count an in-place change that chainrule itself made through ``.data`` (optimizer step, init …)."""
        self._counter().bump(what)

    def _inplace(self, ufunc: np.ufunc, other: Any, what: str) -> Tensor:
        self._check_inplace(what)
        other_data = other.data if isinstance(other, Tensor) else other
        try:
            ufunc(self.data, other_data, out=self.data, casting="same_kind")
        except (ValueError, TypeError) as error:
            raise ShapeError(
                f"{what}: cannot update a tensor of shape {self.shape} with {np.shape(other_data)} ({error})"
            ) from None
        self._counter().bump(f"{what!r} {anomaly.user_site()}")
        return self

    def __iadd__(self, other: Any) -> Tensor:
        return self._inplace(np.add, other, "+=")

    def __isub__(self, other: Any) -> Tensor:
        return self._inplace(np.subtract, other, "-=")

    def __imul__(self, other: Any) -> Tensor:
        return self._inplace(np.multiply, other, "*=")

    def __itruediv__(self, other: Any) -> Tensor:
        return self._inplace(np.divide, other, "/=")

    def zero_(self) -> Tensor:
        """Set every element to zero, in place."""
        self._check_inplace("zero_")
        self.data[...] = 0
        self._counter().bump(f"'zero_' {anomaly.user_site()}")
        return self

    def fill_(self, value: Any) -> Tensor:  # a number (``float`` here would name the method below)
        """Set every element to ``value``, in place."""
        self._check_inplace("fill_")
        try:
            self.data[...] = value
        except (ValueError, TypeError) as error:
            raise ArgumentError(f"fill_: cannot fill a {self.dtype} tensor with {value!r} ({error})") from None
        self._counter().bump(f"'fill_' {anomaly.user_site()}")
        return self

    def copy_(self, source: Any) -> Tensor:
        """Copy ``source`` (broadcast to this shape) into this tensor, in place."""
        self._check_inplace("copy_")
        values = source.data if isinstance(source, Tensor) else np.asarray(source)
        try:
            np.copyto(self.data, np.broadcast_to(values, self.data.shape), casting="same_kind")
        except (ValueError, TypeError) as error:
            raise ShapeError(f"copy_: cannot copy shape {values.shape} into shape {self.shape} ({error})") from None
        self._counter().bump(f"'copy_' {anomaly.user_site()}")
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        self._check_inplace("__setitem__")
        values = value.data if isinstance(value, Tensor) else value
        try:
            self.data[_index_arrays(index)] = values
        except IndexError as error:
            raise IndexingError(f"__setitem__: {error} (tensor of shape {self.shape})") from None
        except ValueError as error:
            raise ShapeError(f"__setitem__: {error} (tensor of shape {self.shape})") from None
        self._counter().bump(f"'__setitem__' {anomaly.user_site()}")

    # -- operators -----------------------------------------------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return apply(_ADD, self, other)

    def __radd__(self, other: Any) -> Tensor:
        return apply(_ADD, other, self)

    def __sub__(self, other: Any) -> Tensor:
        return apply(_SUB, self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return apply(_SUB, other, self)

    def __mul__(self, other: Any) -> Tensor:
        return apply(_MUL, self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return apply(_MUL, other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return apply(_DIV, self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return apply(_DIV, other, self)

    def __pow__(self, other: Any) -> Tensor:
        return apply(_POW, self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return apply(_POW, other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return apply(_MATMUL, self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return apply(_MATMUL, other, self)

    def __neg__(self) -> Tensor:
        return apply(_NEG, self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return apply(OPS["abs"], self)

    def __getitem__(self, index: Any) -> Tensor:
        return apply(_GETITEM, self, index=_index_arrays(index))

    # Comparisons: boolean tensors without gradient.
    def _compare(self, other: Any, ufunc: np.ufunc, symbol: str) -> Tensor:
        other_data = other.data if isinstance(other, Tensor) else other
        try:
            if type(self.data) is not np.ndarray and foreign_array(self.data):  # the library's own comparison
                return _wrap(getattr(get_namespace(self.data, other_data), ufunc.__name__)(self.data, other_data))
            return _wrap(np.asarray(ufunc(self.data, other_data)))
        except (ValueError, TypeError) as error:
            raise ShapeError(
                f"{symbol}: shapes {self.shape} and {np.shape(other_data)} cannot be compared ({error})"
            ) from None

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.equal, "==")

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return self._compare(other, np.not_equal, "!=")

    def __lt__(self, other: Any) -> Tensor:
        return self._compare(other, np.less, "<")

    def __le__(self, other: Any) -> Tensor:
        return self._compare(other, np.less_equal, "<=")

    def __gt__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater, ">")

    def __ge__(self, other: Any) -> Tensor:
        return self._compare(other, np.greater_equal, ">=")

    def __and__(self, other: Any) -> Tensor:
        return self._compare(other, np.logical_and, "&")

    def __or__(self, other: Any) -> Tensor:
        return self._compare(other, np.logical_or, "|")

    def __invert__(self) -> Tensor:
        if self.dtype != bool_:
            raise DTypeError(f"~: only boolean tensors can be inverted, this one is {self.dtype}")
        return _wrap(~self.data)

    # -- op methods ----------------------------------------------------------------------------------
    # exp, sum, reshape and the other ops are Tensor methods too: chainrule.functions declares each op once and
    # attaches the function itself as the method (Tensor.exp is chainrule.exp). Only these few live here.
    def pow(self, exponent: Any) -> Tensor:
        """``self ** exponent`` (the operator's method form)."""
        return apply(_POW, self, exponent)

    def all(self, axis: Any = None) -> Tensor:
        """Whether every element (along ``axis``) is true; a boolean tensor, no gradient."""
        return _wrap(np.asarray(np.all(self.data, axis=axis)))

    def any(self, axis: Any = None) -> Tensor:
        """Whether any element (along ``axis``) is true; a boolean tensor, no gradient."""
        return _wrap(np.asarray(np.any(self.data, axis=axis)))

    if TYPE_CHECKING:
        # For type checkers: the methods attached by chainrule.functions (exp, sum, reshape ...) are not in this body.
        def __getattr__(self, name: str) -> Any: ...


#: The names of chainrule's functions (``chainrule.functions.__all__``, set there), for the error below
_FUNCTION_NAMES: frozenset[str] = frozenset()

#: NumPy functions that read only shapes: safe on tensors that require grad
_VALUE_FREE_FUNCTIONS = frozenset({np.shape, np.ndim, np.size, np.result_type})


def _any_requires_grad(value: Any) -> bool:
    """Whether a tensor that requires grad sits anywhere in nested lists, tuples and dicts."""
    if isinstance(value, Tensor):
        return value._requires_grad
    if isinstance(value, (list, tuple)):
        return any(_any_requires_grad(item) for item in value)
    if isinstance(value, dict):
        return any(_any_requires_grad(item) for item in value.values())
    return False


def _arrays_of(value: Any) -> Any:
    """``value`` with every tensor in nested lists, tuples and dicts replaced by its array."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, list):
        return [_arrays_of(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_arrays_of(item) for item in value)
    if isinstance(value, dict):
        return {key: _arrays_of(item) for key, item in value.items()}
    return value


def _index_arrays(index: Any) -> Any:
    """Replace tensors (and lists) inside an index by NumPy arrays, and check their dtype."""
    parts = index if isinstance(index, tuple) else (index,)
    converted = []
    for part in parts:
        if isinstance(part, Tensor):
            part = part.data
        elif isinstance(part, list):
            part = np.asarray(part)
        if isinstance(part, np.ndarray) and part.dtype.kind not in "iub":
            raise IndexingError(f"getitem: tensors used as indices must be integers or booleans, got {part.dtype}")
        converted.append(part)
    return tuple(converted) if isinstance(index, tuple) else converted[0]


_ADD, _SUB, _MUL, _DIV, _POW = OPS["add"], OPS["sub"], OPS["mul"], OPS["div"], OPS["pow"]
_NEG, _MATMUL, _GETITEM = OPS["neg"], OPS["matmul"], OPS["getitem"]

#: The namespace that ``create_graph`` rules run against: each table name applies the op to tensors.
tensor_namespace = SimpleNamespace(**{name: partial(apply, op) for name, op in OPS.items()})
