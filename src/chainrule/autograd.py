"""The autodiff core: graph traversal, reverse and forward sweeps, and grad-mode switches.

One core serves both engines. A graph node is any object with this small protocol:

``_graph_parents()``
    the nodes it was computed from that need a gradient (raises ``GradientError`` once freed);
``_vjp(grad_out, create_graph, needed)``
    pairs ``(parent, grad)`` that push ``grad_out`` one step back through the node's op
    (``needed`` is ``None`` or a set of node ids: parents outside it get no gradient);
``_jvp(tangents, create_graph)``
    the node's tangent, given a dict from parent id to parent tangent (forward mode);
``_accumulate(grad)``, ``_release()``
    what happens to a leaf's gradient, and how a node frees what it saved for backward.

:class:`chainrule.Tensor` (arrays) and :class:`chainrule.Value` (Python floats) both implement it, so the
topological sort and the two sweeps below are the only graph walks in the project. They are iterative:
a chain of a million ops backpropagates without touching Python's recursion limit.

Anomaly mode (:func:`detect_anomaly`, NaN/Inf checks on every op) lives in :mod:`chainrule.anomaly`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from chainrule.anomaly import _ModeBlock, _ThreadSwitch, detect_anomaly, is_anomaly_enabled
from chainrule.errors import GradientError
from chainrule.hooks import _GRAD_HOOKS, run_grad_hooks

__all__ = [
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "detect_anomaly",
    "is_anomaly_enabled",
    "topological_order",
    "backpropagate",
    "forward_sweep",
    "grad",
    "queue_callback",
    "in_backward",
]


# ---------------------------------------------------------------------------------------------------
# Grad mode
# ---------------------------------------------------------------------------------------------------
#: Whether new ops record a graph, in this thread (each thread starts with recording on, as in PyTorch).
_grad_mode = _ThreadSwitch(True)


def is_grad_enabled() -> bool:
    """Return True when ops record the graph for backpropagation (in this thread)."""
    return _grad_mode.enabled


class set_grad_enabled(_ModeBlock):
    """Turn graph recording on or off inside a ``with`` block or a decorated function.

    Parameters
    ----------
    mode : bool
        True records graphs (the default state), False does not.

    Examples
    --------
    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> with cr.autograd.set_grad_enabled(False):
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    switch = _grad_mode


class no_grad(set_grad_enabled):
    """Context manager and decorator under which ops build no graph (evaluation, optimizer steps).

    Examples
    --------
    >>> import chainrule as cr
    >>> w = cr.tensor([1.0], requires_grad=True)
    >>> with cr.no_grad():
    ...     y = w * 3
    >>> y.requires_grad, y.grad_fn
    (False, None)
    """

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Context manager and decorator that turns graph recording back on inside ``no_grad``."""

    def __init__(self) -> None:
        super().__init__(True)


# ---------------------------------------------------------------------------------------------------
# Traversal
# ---------------------------------------------------------------------------------------------------
def topological_order(roots: Iterable[Any], parents: Callable[[Any], Iterable[Any]] | None = None) -> list[Any]:
    """Return every node reachable from ``roots``, each after all of its parents.

    An explicit-stack depth-first search (post-order), so depth is limited by memory only.

    Parameters
    ----------
    roots : iterable of nodes
        Where the walk starts (usually the outputs).
    parents : callable, optional
        ``parents(node)``: the nodes to visit before ``node`` (default: ``node._graph_parents()``, the
        inputs that need gradients). The last one given is visited first.

    Returns
    -------
    list
        Nodes in topological order: parents first, ``roots`` last.
    """
    order: list[Any] = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False) for root in roots]
    push, pop = stack.append, stack.pop  # bound once: this loop runs for every node of every backward
    while stack:
        node, parents_done = pop()
        if parents_done:
            order.append(node)
            continue
        key = id(node)
        if key in visited:
            continue
        visited.add(key)
        push((node, True))
        for parent in node._graph_parents() if parents is None else parents(node):
            if id(parent) not in visited:
                push((parent, False))
    return order


def backpropagate(
    roots: Sequence[Any],
    root_grads: Sequence[Any],
    *,
    retain_graph: bool = False,
    create_graph: bool = False,
    capture: Sequence[Any] | None = None,
) -> dict[int, Any]:
    """Reverse sweep: push gradients from ``roots`` to every node they depend on.

    Each node is visited once, after all of its consumers, so its gradient is complete when its VJP
    runs; the gradient is dropped from memory right after. With ``capture=None`` gradients reaching
    leaves are accumulated into them (``backward``); otherwise the gradients of the captured nodes are
    returned and no leaf is touched (``grad``), and only the part of the graph between the roots and the
    captured nodes is walked.

    Parameters
    ----------
    roots, root_grads : sequences of equal length
        Output nodes and the gradients to start from (``dL/droot``).
    retain_graph : bool
        Keep the saved values so that the graph can be walked again.
    create_graph : bool
        Run the VJP rules on tensors, recording a graph of the backward pass (higher-order gradients).
    capture : sequence of nodes, optional
        Nodes whose gradients to return instead of accumulating into leaves.

    Returns
    -------
    dict
        ``id(node) -> gradient`` for the captured nodes that received one.
    """
    order = topological_order(roots)
    needed: set[int] | None = None
    if capture is not None:
        targets = {id(node) for node in capture}
        needed = set()
        for node in order:  # parents first: a node is needed if it or an ancestor is a target
            if id(node) in targets or any(id(p) in needed for p in node._graph_parents()):
                needed.add(id(node))

    grads: dict[int, Any] = {}
    _push(grads, zip(roots, root_grads))

    captured: dict[int, Any] = {}
    hooked = bool(_GRAD_HOOKS)  # gradient hooks (chainrule.hooks): looked up per node only when some exist
    callbacks: list[Callable[[], None]] | None = [] if capture is None else None
    sweeps = _sweeps.stack  # this thread's: another thread's backward neither sees nor takes these callbacks
    sweeps.append(callbacks)  # queue_callback adds to it; a grad() sweep (nothing accumulated) takes none
    try:
        with set_grad_enabled(create_graph):
            for node in reversed(order):
                grad_out = grads.pop(id(node), None)  # consumed: freed once pushed on
                if grad_out is not None:
                    if hooked and id(node) in _GRAD_HOOKS and (needed is None or id(node) in needed):
                        grad_out = run_grad_hooks(node, grad_out, create_graph)
                    if needed is None:
                        if not node._graph_parents():
                            node._accumulate(grad_out)
                        else:
                            _push(grads, node._vjp(grad_out, create_graph, None))
                    elif id(node) in needed:
                        if id(node) in targets:
                            captured[id(node)] = grad_out
                        _push(grads, node._vjp(grad_out, create_graph, needed))
                del grad_out  # hold no reference: a leaf may then keep the array without a copy
                if not retain_graph:
                    node._release()
    finally:
        sweeps.pop()
    while callbacks:  # queued by hooks during the sweep, run now that every leaf's .grad is complete
        callbacks.pop(0)()
    return captured


class _Sweeps(threading.local):
    """The callback lists of the sweeps running in this thread (``stack``, innermost last; None for a ``grad()``
    sweep). Per thread, as PyTorch's current graph task: a hook in one thread's backward must not see (or queue
    callbacks on) a sweep that another thread runs at the same time."""

    def __init__(self) -> None:
        self.stack: list[list[Callable[[], None]] | None] = []


_sweeps = _Sweeps()


def _current_sweep() -> list[Callable[[], None]] | None:
    """The callback list of this thread's innermost running sweep (None inside ``grad()`` or outside any)."""
    stack = _sweeps.stack
    return stack[-1] if stack else None


def in_backward() -> bool:
    """True while a ``backward()`` sweep (one that accumulates into ``.grad``) runs in this thread, e.g. inside
    its hooks.

    False in another thread (each thread has its own sweeps), and inside :func:`grad`, which returns gradients
    instead of accumulating them.

    Examples
    --------
    >>> import chainrule as cr
    >>> x = cr.tensor([1.0], requires_grad=True)
    >>> seen = []
    >>> _ = x.register_hook(lambda grad: seen.append(in_backward()))
    >>> (x * 2).sum().backward(); _ = grad((x * 2).sum(), x)
    >>> seen, in_backward()
    ([True, False], False)
    """
    return _current_sweep() is not None


def queue_callback(callback: Callable[[], None]) -> None:
    """Call ``callback()`` once this thread's running ``backward()`` sweep has accumulated every leaf's ``.grad``.

    For gradient hooks that must act on the finished gradients, as PyTorch's
    ``Variable._execution_engine.queue_callback`` (what its DistributedDataParallel uses to wait for the
    last allreduce). Callbacks run in the order queued, before ``backward()`` returns, and only when the
    sweep succeeded.

    Raises
    ------
    GradientError
        Outside a ``backward()`` sweep (:func:`in_backward` is False).

    Examples
    --------
    >>> import chainrule as cr
    >>> w = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> _ = w.register_hook(lambda grad: queue_callback(lambda: print("after:", w.grad)))
    >>> (w * 3).sum().backward()
    after: tensor([3., 3.])
    """
    sweep = _current_sweep()
    if sweep is None:
        raise GradientError(
            "queue_callback: no backward() sweep is running; call it from a gradient hook during backward()"
        )
    sweep.append(callback)


def _push(grads: dict[int, Any], pairs: Iterable[tuple[Any, Any]]) -> None:
    """Add each ``(parent, grad)`` to the pending gradients, out of place (arrays may be shared)."""
    for parent, grad in pairs:
        key = id(parent)
        held = grads.get(key)
        grads[key] = grad if held is None else held + grad


def forward_sweep(outputs: Sequence[Any], seeds: dict[int, Any], *, create_graph: bool = False) -> dict[int, Any]:
    """Forward mode: push tangents from the seeded nodes through the graph in one sweep.

    Parameters
    ----------
    outputs : sequence of nodes
        The graph to sweep is everything these were computed from.
    seeds : dict
        ``id(node) -> tangent`` for the inputs (usually the primals).
    create_graph : bool
        Run the JVP rules on tensors, so the tangents are differentiable themselves.

    Returns
    -------
    dict
        ``id(node) -> tangent`` for every node that depends on a seeded node.
    """
    tangents = dict(seeds)
    with set_grad_enabled(create_graph):
        for node in topological_order(outputs):
            if id(node) in tangents:
                continue
            parents = node._graph_parents()
            if any(id(p) in tangents for p in parents):
                tangents[id(node)] = node._jvp(tangents, create_graph)
    return tangents


# ---------------------------------------------------------------------------------------------------
# grad: gradients of outputs with respect to chosen inputs, returned rather than accumulated
# ---------------------------------------------------------------------------------------------------
def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    *,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Any, ...]:
    """Return the gradients of ``outputs`` with respect to ``inputs`` without touching ``.grad``.

    Computes the vector-Jacobian product :math:`\\sum_k v_k^\\top \\partial y_k / \\partial x_i` for each
    input :math:`x_i`, where :math:`v_k` is ``grad_outputs[k]`` (ones for a scalar output).

    Parameters
    ----------
    outputs : Tensor or sequence of Tensors
        What to differentiate.
    inputs : Tensor or sequence of Tensors
        What to differentiate with respect to (leaves or intermediate results).
    grad_outputs : Tensor, array or sequence, optional
        :math:`v_k`, one per output, each of the output's shape. May be omitted for scalar outputs.
    retain_graph : bool, optional
        Keep the graph for another pass; defaults to ``create_graph``.
    create_graph : bool
        Record the backward pass so that the returned gradients can be differentiated again.
    allow_unused : bool
        Return ``None`` for an input the outputs do not depend on, instead of raising.

    Returns
    -------
    tuple of Tensor
        One gradient per input, each of that input's shape.

    Examples
    --------
    >>> import chainrule as cr
    >>> x = cr.tensor(3.0, requires_grad=True)
    >>> (dx,) = cr.autograd.grad(x ** 3, x, create_graph=True)
    >>> (d2x,) = cr.autograd.grad(dx, x)
    >>> float(dx.item()), float(d2x.item())
    (27.0, 18.0)
    """
    outputs = _as_tuple(outputs)
    inputs = _as_tuple(inputs)
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    else:
        grad_outputs = _as_tuple(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise GradientError(
            f"grad: got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs; give one per output"
        )
    for index, node in enumerate(inputs):
        if not getattr(node, "requires_grad", False):
            raise GradientError(f"grad: input {index} does not require grad; create it with requires_grad=True")
    if retain_graph is None:
        retain_graph = create_graph
    roots, seeds = [], []
    for output, grad_output in zip(outputs, grad_outputs):
        if not getattr(output, "requires_grad", False):
            raise GradientError(
                "grad: an output does not require grad: it was computed under no_grad or from inputs "
                "that do not require grad"
            )
        roots.append(output)
        seeds.append(output._seed_grad(grad_output, create_graph, "grad"))
    captured = backpropagate(roots, seeds, retain_graph=retain_graph, create_graph=create_graph, capture=inputs)
    results: list[Any] = []
    for index, node in enumerate(inputs):
        if id(node) not in captured:
            if not allow_unused:
                raise GradientError(
                    f"grad: input {index} was not used to compute the outputs; pass allow_unused=True "
                    "to get None for it"
                )
            results.append(None)
        else:
            results.append(node._wrap_grad(captured[id(node)]))
    return tuple(results)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)
