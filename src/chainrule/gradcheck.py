"""Gradient checks: analytic derivatives (reverse and forward mode) against central differences.

For a function :math:`f` of tensors, the numerical Jacobian column for input element :math:`x_j` is

.. math:: \\frac{f(x + \\epsilon e_j) - f(x - \\epsilon e_j)}{2 \\epsilon},

computed in float64. The reverse-mode Jacobian is built row by row with one backward pass per output
element, the forward-mode Jacobian column by column with one tangent sweep per input element; both must
match the numerical one within ``atol + rtol * |numerical|``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from chainrule import autograd
from chainrule.errors import ArgumentError, GradientError
from chainrule.functions import as_tensor
from chainrule.tensor import Tensor, _wrap

__all__ = ["gradcheck", "gradgradcheck", "central_differences"]


def _outputs(result: Any) -> list[Tensor]:
    return [as_tensor(r) for r in result] if isinstance(result, (tuple, list)) else [as_tensor(result)]


def _float64_inputs(inputs: Sequence[Any], fn: Any = None, caller: str = "gradcheck") -> list[Tensor]:
    if fn is not None and not callable(fn):
        raise ArgumentError(f"{caller}: fn must be a function of tensors, got {type(fn).__name__} {fn!r}")
    if isinstance(inputs, (Tensor, np.ndarray)):
        inputs = (inputs,)
    converted = []
    for x in inputs:
        x = as_tensor(x)
        if x.dtype.kind != "f":
            converted.append(x)  # integer inputs (indices, labels) are passed through, not checked
        else:
            converted.append(_wrap(x.data.astype(np.float64)).requires_grad_(True))
    return converted


def central_differences(f: Callable[[], Any], array: np.ndarray, indices: Iterable[int], eps: float) -> np.ndarray:
    """:math:`(f(x + \\epsilon e_j) - f(x - \\epsilon e_j)) / 2\\epsilon` for each flat index ``j`` of ``array``.

    ``array`` is changed in place to ``x ± eps`` at one element at a time and restored after each; ``f``
    takes no arguments and reads ``array`` (through a tensor that holds it, say). One row per index, of
    ``f``'s value as float64.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0, 2.0])
    >>> central_differences(lambda: (x**2).sum(), x, range(2), 1e-6).round(6)
    array([2., 4.])
    >>> x                                  # restored
    array([1., 2.])
    """
    rows = []
    for j in indices:
        original = array.flat[j]
        array.flat[j] = original + eps
        plus = np.asarray(f(), dtype=np.float64)
        array.flat[j] = original - eps
        minus = np.asarray(f(), dtype=np.float64)
        array.flat[j] = original
        rows.append((plus - minus) / (2 * eps))
    return np.array(rows, dtype=np.float64)


def _numerical_jacobian(fn: Callable[..., Any], inputs: list[Tensor], index: int, eps: float) -> list[np.ndarray]:
    """One (out_size, in_size) block per output, by central differences on ``inputs[index]``."""
    probe = inputs[index].data.copy()  # perturbed in place; the input itself is never changed
    trial = list(inputs)
    trial[index] = _wrap(probe)
    sizes: list[int] = []

    def flat_outputs() -> np.ndarray:
        arrays = [o.data.astype(np.float64).ravel() for o in _outputs(fn(*trial))]
        sizes[:] = [a.size for a in arrays]
        return np.concatenate(arrays)

    if probe.size == 0:
        return [np.zeros((0, 0)) for _ in _outputs(fn(*inputs))]
    with autograd.no_grad():
        rows = central_differences(flat_outputs, probe, range(probe.size), eps)  # (in_size, total out_size)
    return [block.T for block in np.split(rows, np.cumsum(sizes)[:-1], axis=1)]


def _reverse_jacobian(outputs: list[Tensor], x: Tensor) -> list[np.ndarray]:
    blocks = []
    for out in outputs:
        block = np.zeros((out.data.size, x.data.size))
        if out.requires_grad:
            for i in range(out.data.size):
                seed = np.zeros(out.data.size)
                seed[i] = 1.0
                (g,) = autograd.grad(out, x, seed.reshape(out.shape), retain_graph=True, allow_unused=True)
                if g is not None:
                    block[i] = g.data.ravel()
        blocks.append(block)
    return blocks


def _forward_jacobian(outputs: list[Tensor], x: Tensor) -> list[np.ndarray]:
    blocks = [np.zeros((out.data.size, x.data.size)) for out in outputs]
    for j in range(x.data.size):
        direction = np.zeros(x.data.size)
        direction[j] = 1.0
        tangents = autograd.forward_sweep(outputs, {id(x): direction.reshape(x.shape)})
        for block, out in zip(blocks, outputs):
            if id(out) in tangents:
                block[:, j] = np.asarray(tangents[id(out)]).ravel()
    return blocks


def _compare(
    kind: str,
    analytic: np.ndarray,
    numerical: np.ndarray,
    index: int,
    out_index: int,
    in_shape: tuple[int, ...],
    atol: float,
    rtol: float,
) -> str | None:
    bad = ~np.isclose(analytic, numerical, atol=atol, rtol=rtol)
    if not bad.any():
        return None
    row, col = np.argwhere(bad)[0]
    element = np.unravel_index(col, in_shape) if in_shape else ()
    return (
        f"{kind} gradient of output {out_index}[{row}] with respect to input {index} "
        f"at element {tuple(map(int, element))} "
        f"is {analytic[row, col]:.8g}, but central differences give {numerical[row, col]:.8g} "
        f"({int(bad.sum())} of {bad.size} entries disagree)"
    )


def gradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    *,
    modes: Sequence[str] = ("reverse", "forward"),
    raise_exception: bool = True,
) -> bool:
    """Check ``fn``'s reverse- and forward-mode derivatives against central differences in float64.

    Parameters
    ----------
    fn : callable
        A function of the inputs returning a tensor or a tuple of tensors.
    inputs : sequence
        Tensors or arrays; float ones are converted to float64 and checked, integer ones passed as is.
    eps : float
        Finite-difference step.
    atol, rtol : float
        An entry passes when ``|analytic - numerical| <= atol + rtol * |numerical|``.
    modes : sequence of str
        Which analytic derivatives to check: ``"reverse"``, ``"forward"`` or both.
    raise_exception : bool
        Raise :class:`GradientError` on a mismatch (naming the input and element) instead of returning False.

    Returns
    -------
    bool
        True when every entry matches.

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.gradcheck(lambda x: (x.tanh() * x).sum(), [cr.tensor([0.3, -1.2])])
    True
    """
    tensors = _float64_inputs(inputs, fn, "gradcheck")
    with autograd.enable_grad():
        outputs = _outputs(fn(*tensors))
    for index, x in enumerate(tensors):
        if not x.requires_grad:
            continue
        numerical = _numerical_jacobian(fn, tensors, index, eps)
        for mode in modes:
            if mode == "reverse":
                analytic = _reverse_jacobian(outputs, x)
            elif mode == "forward":
                analytic = _forward_jacobian(outputs, x)
            else:
                raise ValueError(f"gradcheck: unknown mode {mode!r}; use 'reverse' or 'forward'")
            for out_index, (a, n) in enumerate(zip(analytic, numerical)):
                problem = _compare(mode, a, n, index, out_index, x.shape, atol, rtol)
                if problem:
                    if raise_exception:
                        raise GradientError(f"gradcheck: {problem}")
                    return False
    return True


def gradgradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    grad_outputs: Sequence[Any] | None = None,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    *,
    seed: int = 0,
    raise_exception: bool = True,
) -> bool:
    """Check second derivatives: :func:`gradcheck` applied to the map ``x -> vᵀ J_f(x)``.

    The backward pass of ``fn`` is recorded with ``create_graph=True`` and then checked against central
    differences of the first derivatives, so every VJP rule is checked as a differentiable function.

    Parameters
    ----------
    fn, inputs, eps, atol, rtol, raise_exception
        As in :func:`gradcheck`.
    grad_outputs : sequence, optional
        The cotangents ``v``, one per output of ``fn``; random normal (from ``seed``) by default.

    Examples
    --------
    >>> import chainrule as cr
    >>> cr.gradgradcheck(lambda x: (x.sigmoid() * x).sum(), [cr.tensor([0.3, -1.2])])
    True
    """
    tensors = _float64_inputs(inputs, fn, "gradgradcheck")
    with autograd.enable_grad():
        outputs = _outputs(fn(*tensors))
    rng = np.random.default_rng(seed)
    if grad_outputs is None:
        cotangents = [rng.standard_normal(o.shape) for o in outputs]
    else:
        cotangents = [np.asarray(as_tensor(v).data, dtype=np.float64) for v in grad_outputs]
    float_positions = [i for i, x in enumerate(tensors) if x.requires_grad]

    def first_derivative(*xs: Tensor) -> tuple[Tensor, ...]:
        with autograd.enable_grad():
            # Central differences call this with plain perturbed copies: make those differentiable.
            xs = tuple(x if x.requires_grad or x.dtype.kind != "f" else _wrap(x.data).requires_grad_(True) for x in xs)
            outs = _outputs(fn(*xs))
            pairs = [(o, v) for o, v in zip(outs, cotangents) if o.requires_grad]
            if not pairs:
                raise GradientError("gradgradcheck: fn's outputs do not depend on its float inputs")
            grads = autograd.grad(
                [o for o, _ in pairs],
                [xs[i] for i in float_positions],
                [v for _, v in pairs],
                create_graph=True,
                allow_unused=True,
            )
        return tuple(_wrap(np.zeros(xs[i].shape)) if g is None else g for i, g in zip(float_positions, grads))

    return gradcheck(first_derivative, tensors, eps=eps, atol=atol, rtol=rtol, raise_exception=raise_exception)
