"""Gradient hooks: functions the reverse sweep calls with a tensor's gradient, and the handles that remove them.

``Tensor.register_hook(fn)`` puts ``fn`` in one process-wide table keyed by the tensor's id; the entry goes when
the tensor is garbage-collected or the handle is removed. :func:`chainrule.autograd.backpropagate` reads the
table only when it is not empty, so a program that registers no hook pays one truthiness test per
``backward()`` and nothing per node. Module hooks (``nn.Module.register_full_backward_hook``) are built on
these.

A hook is called once per backward pass with the *complete* gradient of its tensor (after every consumer has
added its share, before the gradient is pushed further back or accumulated into a leaf's ``.grad``), as a
Tensor. It may return None (keep the gradient) or a replacement of the same shape, which is what flows on.
Under ``create_graph=True`` the gradient it receives is itself differentiable. A hook that must act once every
leaf's ``.grad`` is complete queues a callback with :func:`chainrule.autograd.queue_callback`.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule.errors import ShapeError

__all__ = ["RemovableHandle", "register_grad_hook", "has_grad_hooks", "run_grad_hooks"]


class RemovableHandle:
    """What a ``register_*hook`` call returns: ``handle.remove()`` (or ``handle()``) takes the hook off again.

    Removing twice is harmless. Usable as a context manager: the hook is removed on exit.

    Examples
    --------
    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, 2.0], requires_grad=True)
    >>> seen = []
    >>> handle = x.register_hook(lambda grad: seen.append(grad.tolist()))
    >>> (x * 3).sum().backward()
    >>> handle.remove()
    >>> (x * 3).sum().backward()
    >>> seen
    [[3.0, 3.0]]
    """

    _ids = itertools.count()

    def __init__(self, hooks: dict[int, Any]) -> None:
        self._hooks = hooks  # the owner's table of hooks, keyed by handle id
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        """Take the hook off (nothing happens if it is already off)."""
        self._hooks.pop(self.id, None)

    def __call__(self) -> None:  # older chainrule code calls the remover register_forward_hook returned
        self.remove()

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


# id(tensor) -> {handle id: hook}; an entry lives as long as its tensor (see register_grad_hook).
_GRAD_HOOKS: dict[int, dict[int, Callable[[Any], Any]]] = {}


def has_grad_hooks() -> bool:
    """True when some live tensor has a gradient hook (the reverse sweep then looks hooks up per node)."""
    return bool(_GRAD_HOOKS)


def register_grad_hook(tensor: Any, hook: Callable[[Any], Any]) -> RemovableHandle:
    """Register ``hook(grad) -> None or new grad`` on ``tensor`` (see :meth:`chainrule.Tensor.register_hook`)."""
    key = id(tensor)
    hooks = _GRAD_HOOKS.get(key)
    if hooks is None:
        hooks = _GRAD_HOOKS[key] = {}
        # The table must not outlive the tensor: its id may be reused by the next tensor made.
        weakref.finalize(tensor, _GRAD_HOOKS.pop, key, None)
    handle = _TableHandle(key)
    hooks[handle.id] = hook
    return handle


class _TableHandle(RemovableHandle):
    """A handle on an entry of the gradient-hook table; removing the last hook of a tensor drops its entry."""

    def __init__(self, key: int) -> None:
        self.key = key
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        hooks = _GRAD_HOOKS.get(self.key)
        if hooks is not None:
            hooks.pop(self.id, None)
            if not hooks:
                del _GRAD_HOOKS[self.key]


def run_grad_hooks(node: Any, grad: Any, create_graph: bool) -> Any:
    """Call the hooks of ``node`` (if any) on ``grad`` in registration order; return the gradient to use.

    ``grad`` is a NumPy (or other library's) array, or a Tensor under ``create_graph``. Hooks see a Tensor;
    a replacement they return goes back into the sweep in the sweep's own representation.
    """
    hooks = _GRAD_HOOKS.get(id(node))
    if not hooks:
        return grad
    from chainrule.tensor import Tensor  # here: tensor.py imports this module

    for hook in list(hooks.values()):
        result = hook(node._wrap_grad(grad))
        if result is None:
            continue
        data = result.data if isinstance(result, Tensor) else np.asarray(result)
        if tuple(data.shape) != tuple(node.data.shape):
            raise ShapeError(
                f"gradient hook {getattr(hook, '__name__', hook)!r} returned a gradient of shape {tuple(data.shape)} "
                f"for a tensor of shape {tuple(node.data.shape)}; return None or an array of the tensor's shape"
            )
        if isinstance(data, np.ndarray) and data.dtype != node.data.dtype:
            data = data.astype(node.data.dtype)
            result = data
        if create_graph:
            grad = result if isinstance(result, Tensor) else node._wrap_grad(data)
        else:
            grad = data
    return grad
