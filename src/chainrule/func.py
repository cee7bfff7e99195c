"""Function transforms: derivatives of Python functions of tensors, in reverse and forward mode.

``grad``, ``value_and_grad``, ``vjp`` use reverse mode (one backward pass per output direction);
``jvp`` uses forward mode (one sweep per input direction) through the same rule table. ``jacobian``
picks the cheaper mode from the shapes, ``hessian`` and ``hvp`` differentiate a gradient again.
Transforms nest: ``grad(grad(f))`` is the second derivative.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule import autograd
from chainrule.errors import GradientError, ShapeError
from chainrule.functions import as_tensor
from chainrule.tensor import Tensor, _wrap

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "jacobian", "hessian", "hvp"]


def _primal(x: Any) -> tuple[Tensor, bool]:
    """A tensor to differentiate at. Returns (tensor, nested): inside an outer transform the tensor
    already requires grad and is used as it is, so the outer transform sees through this one."""
    x = as_tensor(x)
    if x.requires_grad:
        return x, True
    if x.dtype.kind != "f":
        raise GradientError(f"cannot differentiate with respect to a {x.dtype} input; use a float tensor")
    return _wrap(x.data).requires_grad_(True), False


def _argnums(argnums: int | Sequence[int], n_args: int) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not -n_args <= n < n_args:
            raise ValueError(f"argnums {n} is out of range for a function called with {n_args} arguments")
    return tuple(n % n_args for n in nums)


def value_and_grad(f: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., tuple[Tensor, Any]]:
    """Return a function computing ``f(*args)`` and its gradient with respect to ``args[argnums]``.

    ``f`` must return a one-element tensor.

    Examples
    --------
    >>> import chainrule as cr
    >>> value, slope = cr.func.value_and_grad(lambda x: (x ** 2).sum())(cr.tensor([1.0, 2.0]))
    >>> value.item(), slope.tolist()
    (5.0, [2.0, 4.0])
    """

    def wrapper(*args: Any) -> tuple[Tensor, Any]:
        nums = _argnums(argnums, len(args))
        primals = list(args)
        nested = False
        with autograd.enable_grad():
            for n in nums:
                primals[n], inner = _primal(primals[n])
                nested = nested or inner
            out = as_tensor(f(*primals))
            if out.data.size != 1:
                raise ShapeError(
                    f"grad: f must return a one-element tensor, got shape {out.shape}; use vjp or jacobian"
                )
            inputs = [primals[n] for n in nums]
            if not out.requires_grad:
                grads = tuple(_wrap(np.zeros_like(x.data)) for x in inputs)
            else:
                grads = autograd.grad(out, inputs, create_graph=nested, allow_unused=True)
                grads = tuple(_wrap(np.zeros_like(x.data)) if g is None else g for x, g in zip(inputs, grads))
        if not nested:
            out = out.detach()
        return out, grads[0] if isinstance(argnums, int) else grads

    return wrapper


def grad(f: Callable[..., Any], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """Return a function computing the gradient of scalar-valued ``f`` with respect to ``args[argnums]``.

    Examples
    --------
    >>> import chainrule as cr
    >>> d2 = cr.func.grad(cr.func.grad(lambda x: x ** 3))   # 6x
    >>> d2(cr.tensor(2.0)).item()
    12.0
    """

    def wrapper(*args: Any) -> Any:
        return value_and_grad(f, argnums)(*args)[1]

    return wrapper


def vjp(f: Callable[..., Any], *primals: Any) -> tuple[Tensor, Callable[[Any], tuple[Tensor, ...]]]:
    """Evaluate ``f(*primals)`` and return it with a function mapping a cotangent ``v`` to ``vᵀ J``.

    Inside another transform (a primal already requires grad) the value and the pullback's results stay
    in the outer graph, so ``grad(lambda x: vjp(f, x)[1](v)[0])`` is a second derivative.

    Examples
    --------
    >>> import chainrule as cr
    >>> out, pullback = cr.func.vjp(lambda x: x * 3, cr.tensor([1.0, 2.0]))
    >>> pullback(cr.tensor([1.0, 10.0]))[0].tolist()
    [3.0, 30.0]
    """
    with autograd.enable_grad():
        marked = [_primal(p) for p in primals]
        inputs = [x for x, _ in marked]
        nested = any(inner for _, inner in marked)
        out = as_tensor(f(*inputs))

    def pullback(cotangent: Any) -> tuple[Tensor, ...]:
        cotangent = as_tensor(cotangent)
        if cotangent.shape != out.shape:
            raise ShapeError(f"vjp: cotangent has shape {cotangent.shape} but f's output has shape {out.shape}")
        if not out.requires_grad:
            return tuple(_wrap(np.zeros_like(x.data)) for x in inputs)
        # Inside an outer transform the pullback is recorded too, so the outer one differentiates it.
        with autograd.enable_grad():
            grads = autograd.grad(out, inputs, cotangent, retain_graph=True, create_graph=nested, allow_unused=True)
        return tuple(_wrap(np.zeros_like(x.data)) if g is None else g for x, g in zip(inputs, grads))

    return (out if nested else out.detach()), pullback


def jvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Tensor, Tensor]:
    """Forward mode: evaluate ``f(*primals)`` and the directional derivative :math:`J t` in one sweep.

    Nests with the other transforms: inside one (a primal already requires grad) the tangents are
    computed on tensors, so ``grad`` of a ``jvp`` or ``jvp`` of a ``jvp`` gives second derivatives.

    Parameters
    ----------
    f : callable
        A function of tensors returning one tensor.
    primals, tangents : sequences
        Where to evaluate, and one direction per primal (same shapes).

    Returns
    -------
    (Tensor, Tensor)
        ``f(*primals)`` and :math:`\\sum_i \\partial f/\\partial x_i \\cdot t_i`.

    Examples
    --------
    >>> import chainrule as cr
    >>> out, tangent = cr.func.jvp(cr.sin, (cr.tensor(0.0),), (cr.tensor(2.0),))
    >>> out.item(), tangent.item()
    (0.0, 2.0)
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples (one entry per argument of f)")
    if len(primals) != len(tangents):
        raise ShapeError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    with autograd.enable_grad():
        marked = [_primal(p) for p in primals]
        inputs = [x for x, _ in marked]
        # Inside an outer transform (a primal already requires grad) the tangents are computed on tensors,
        # recording a graph, so the outer transform can differentiate them (grad of jvp, jvp of jvp).
        nested = any(inner for _, inner in marked)
        seeds = {}
        for i, (x, t) in enumerate(zip(inputs, tangents)):
            t = as_tensor(t)
            if t.shape != x.shape:
                raise ShapeError(f"jvp: tangent {i} has shape {t.shape} but primal {i} has shape {x.shape}")
            seed = t if t.dtype == x.dtype else t.to(x.dtype)
            seeds[id(x)] = seed if nested else seed.data
        out = as_tensor(f(*inputs))
        if not out.requires_grad:
            return _result(out, nested), _wrap(np.zeros_like(out.data))
        tangent = autograd.forward_sweep([out], seeds, create_graph=nested).get(id(out))
    if tangent is None:  # pragma: no cover - out depends on no primal
        tangent = np.zeros_like(out.data)
    if isinstance(tangent, Tensor):
        return _result(out, nested), tangent
    return _result(out, nested), _wrap(np.asarray(tangent))


def _result(out: Tensor, nested: bool) -> Tensor:
    """A transform's value: part of the outer graph when nested, else a plain tensor."""
    return out if nested else out.detach()


def jacobian(f: Callable[..., Any], argnums: int = 0, mode: str = "auto") -> Callable[..., Tensor]:
    """Return a function computing the Jacobian of ``f`` with respect to ``args[argnums]``.

    The result has shape ``out.shape + input.shape``. Reverse mode costs one backward pass per output
    element, forward mode one sweep per input element; ``mode="auto"`` picks reverse when the output has
    fewer elements than the input and forward otherwise. ``mode="forward"``/``"reverse"`` forces one.

    Examples
    --------
    >>> import chainrule as cr
    >>> J = cr.func.jacobian(lambda x: x * x)(cr.tensor([1.0, 2.0]))
    >>> J.tolist()
    [[2.0, 0.0], [0.0, 4.0]]
    """
    if mode not in ("auto", "forward", "reverse"):
        raise ValueError(f"jacobian: mode must be 'auto', 'forward' or 'reverse', got {mode!r}")

    def wrapper(*args: Any) -> Tensor:
        n = _argnums(argnums, len(args))[0]
        x = as_tensor(args[n])

        def of_x(value: Tensor) -> Tensor:
            return as_tensor(f(*args[:n], value, *args[n + 1 :]))

        with autograd.no_grad():
            out_shape = of_x(x).shape
        out_size, in_size = int(np.prod(out_shape)), x.data.size
        use_reverse = mode == "reverse" or (mode == "auto" and out_size < in_size)
        rows = np.zeros((out_size, in_size), dtype=x.dtype if x.dtype.kind == "f" else np.float32)
        if use_reverse:
            with autograd.enable_grad():
                primal = _wrap(x.data).requires_grad_(True)
                out = of_x(primal)
            if out.requires_grad:
                for i in range(out_size):
                    onehot = np.zeros(out_size, dtype=out.dtype)
                    onehot[i] = 1
                    (g,) = autograd.grad(out, primal, onehot.reshape(out.shape), retain_graph=True, allow_unused=True)
                    if g is not None:
                        rows[i] = g.data.ravel()
        else:
            for j in range(in_size):
                direction = np.zeros(in_size, dtype=rows.dtype)
                direction[j] = 1
                _, tangent = jvp(of_x, (x,), (direction.reshape(x.shape),))
                rows[:, j] = tangent.data.ravel()
        return _wrap(rows.reshape(out_shape + x.shape))

    return wrapper


def hessian(f: Callable[..., Any], argnums: int = 0) -> Callable[..., Tensor]:
    """Return a function computing the Hessian of scalar ``f``: the Jacobian of its gradient.

    The gradient is built with ``create_graph``, then differentiated in forward mode (one sweep per input
    element), so the result has shape ``input.shape + input.shape``.

    Examples
    --------
    >>> import chainrule as cr
    >>> H = cr.func.hessian(lambda x: (x ** 3).sum())(cr.tensor([1.0, 2.0]))
    >>> H.tolist()
    [[6.0, 0.0], [0.0, 12.0]]
    """
    return jacobian(grad(f, argnums), argnums, mode="forward")


def hvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Hessian-vector product :math:`H v` of scalar ``f`` without forming :math:`H` (reverse over reverse).

    Computes :math:`\\nabla_x \\langle \\nabla_x f(x), v \\rangle` with two backward passes.

    Returns
    -------
    (Tensor, tuple of Tensor)
        ``f(*primals)`` and one :math:`Hv` block per primal.

    Examples
    --------
    >>> import chainrule as cr
    >>> value, (hv,) = cr.func.hvp(lambda x: (x ** 3).sum(), (cr.tensor([1.0, 2.0]),), (cr.tensor([1.0, 1.0]),))
    >>> hv.tolist()
    [6.0, 12.0]
    """
    if len(primals) != len(tangents):
        raise ShapeError(f"hvp: {len(primals)} primals but {len(tangents)} tangents")
    with autograd.enable_grad():
        inputs = [_wrap(as_tensor(p).data).requires_grad_(True) for p in primals]
        out = as_tensor(f(*inputs))
        if out.data.size != 1:
            raise ShapeError(f"hvp: f must return a one-element tensor, got shape {out.shape}")
        if not out.requires_grad:
            return out.detach(), tuple(_wrap(np.zeros_like(x.data)) for x in inputs)
        grads = autograd.grad(out, inputs, create_graph=True, allow_unused=True)
        inner = None
        for g, v, x in zip(grads, tangents, inputs):
            v = as_tensor(v)
            if v.shape != x.shape:
                raise ShapeError(f"hvp: tangent shape {v.shape} does not match primal shape {x.shape}")
            if g is not None and g.requires_grad:
                term = (g * v).sum()
                inner = term if inner is None else inner + term
        if inner is None:
            return out.detach(), tuple(_wrap(np.zeros_like(x.data)) for x in inputs)
        result = autograd.grad(inner, inputs, allow_unused=True)
    products = tuple(_wrap(np.zeros_like(x.data)) if r is None else r.detach() for x, r in zip(inputs, result))
    return out.detach(), products
