"""Anomaly mode: find the first op whose forward or backward pass produces NaN or Inf.

While :class:`detect_anomaly` is active, two hooks run:

- :func:`chainrule.tensor.apply` calls :func:`check_forward` on every op's output, which also records
  where in the user's code the op was created (a few frames, those outside the chainrule package);
- :meth:`chainrule.Tensor._vjp` runs each VJP rule through :func:`checked_vjp`, which checks every
  gradient the rule returns.

The first NaN or Inf raises :class:`~chainrule.errors.AnomalyError` naming the op, its input shapes and
the user's line. With the mode off (the default) each op pays one attribute read and nothing is recorded.
Only the tensor engine is checked: the scalar engine (:class:`chainrule.Value`) raises on domain errors
by itself.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from chainrule.errors import AnomalyError

if TYPE_CHECKING:
    import traceback
    from types import FrameType

__all__ = ["detect_anomaly", "is_anomaly_enabled"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_CONTEXTLIB_FILE = contextlib.__file__
_SITE_FRAMES = 3  # how many user frames a node remembers (innermost first)


class _ThreadSwitch(threading.local):
    """A boolean switch of each thread (``enabled``, starting at ``default`` in every thread), read on every op,
    with the thread's stack of values that the blocks now open replaced (``saved``).

    Per thread, as PyTorch's grad and anomaly modes: a ``no_grad`` block in one thread (a server rendering a
    frame) never turns graph recording off in another (a training step)."""

    def __init__(self, default: bool) -> None:
        self.enabled = default
        self.saved: list[bool] = []


#: Whether the anomaly checks run in this thread.
_anomaly_mode = _ThreadSwitch(False)


def is_anomaly_enabled() -> bool:
    """Return True inside :class:`detect_anomaly` (in this thread)."""
    return _anomaly_mode.enabled


class _ModeBlock(contextlib.ContextDecorator):
    """Set this thread's switch (``switch.enabled``) to ``mode`` inside a ``with`` block or a decorated
    function, and restore it after. Blocks nest, and one instance may be entered again while it is active (a
    decorated function that recurses, or runs in several threads at once): each entry pushes the value it
    replaces on its thread's stack (``switch.saved``). Anomaly mode (here) and grad mode
    (:class:`chainrule.autograd.set_grad_enabled`) are both one."""

    switch: ClassVar[_ThreadSwitch]

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)

    def __enter__(self) -> None:
        switch = self.switch
        switch.saved.append(switch.enabled)
        switch.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        switch = self.switch
        switch.enabled = switch.saved.pop()


class detect_anomaly(_ModeBlock):
    """Context manager and decorator that checks every op's forward output and gradients for NaN and Inf.

    The first op that produces one raises :class:`~chainrule.errors.AnomalyError` naming the op, the
    shapes of its inputs and the line of your code that created it. Checking costs time (every array is
    scanned, a few stack frames are recorded per op): use it to find a fault, not to train.

    Parameters
    ----------
    mode : bool
        True turns the checks on (the default), False turns them off inside an enclosing block.

    Examples
    --------
    >>> import chainrule as cr
    >>> x = cr.tensor([1.0, -1.0], requires_grad=True)
    >>> with cr.autograd.detect_anomaly():
    ...     y = x.log()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    chainrule.errors.AnomalyError: log: forward produced NaN in 1 of 2 values ... created at <doctest ...>:2 ...
    """

    switch = _anomaly_mode

    def __init__(self, mode: bool = True) -> None:
        super().__init__(mode)


# ---------------------------------------------------------------------------------------------------
# The hooks
# ---------------------------------------------------------------------------------------------------
def check_forward(op: Any, arrays: list, data: np.ndarray) -> tuple[traceback.FrameSummary, ...]:
    """Raise if ``op``'s output ``data`` holds NaN or Inf; else return the creation site for its node."""
    site = _creation_site()
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        message = (
            f"{op.name}: forward produced {_count_nonfinite(data)} (output shape {data.shape}) "
            f"from inputs {_describe_inputs(arrays)}; the op was {_format_site(site)}"
        )
        tainted = [i for i, a in enumerate(arrays) if _as_array(a) is not None and not _finite(_as_array(a))]
        if tainted:
            message += (
                f". Input {', '.join(map(str, tainted))} already held NaN or Inf: it came from outside the checked "
                "ops (data, a parameter, or a tensor computed before detect_anomaly was entered)"
            )
        raise AnomalyError(message)
    return site


def checked_vjp(node: Any, rule: Callable[..., tuple], grad_out: Any, needs: tuple, out: Any, inputs: tuple) -> tuple:
    """Run ``node``'s VJP ``rule`` (the one the engine chose, called as ``rule(grad_out, needs, out, *inputs,
    **attrs)``) and raise if a gradient it returns holds NaN or Inf.

    The rule runs with the forward checks off: with ``create_graph=True`` its steps are ops too, and a
    rule may compute a value that it then masks (``where``), so only what it returns is checked.
    """
    _anomaly_mode.enabled = False
    try:
        grads = rule(grad_out, needs, out, *inputs, **node.attrs)
    finally:
        _anomaly_mode.enabled = True
    for index, grad in enumerate(grads):
        array = _as_array(grad)
        if array is None or _finite(array):
            continue
        arg_array = _as_array(node.args[index])
        arg_shape = () if arg_array is None else arg_array.shape
        upstream = "finite" if _finite(_as_array(grad_out)) else "already not finite"
        raise AnomalyError(
            f"{node.op.name} backward: the gradient for input {index} (shape {arg_shape}) holds "
            f"{_count_nonfinite(array)}, with grad_out {upstream}; inputs {_describe_inputs(node.args)}; "
            f"the op was {_format_site(getattr(node, 'site', None))}"
        )
    return grads


# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------
def _user_frames(count: int) -> list[FrameType]:
    """The innermost ``count`` frames of the current stack that are the user's: outside the chainrule package
    and outside ``contextlib`` (whose decorator wrapper stands between ``@no_grad()`` functions and their caller)."""
    frames: list[FrameType] = []
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and len(frames) < count:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR) and filename != _CONTEXTLIB_FILE:
            frames.append(frame)
        frame = frame.f_back
    return frames


def _creation_site() -> tuple[traceback.FrameSummary, ...]:
    """Where the user's code is: the innermost user frames (see :func:`_user_frames`), for anomaly messages."""
    import traceback  # here, not at the top: only anomaly mode needs it

    return tuple(
        traceback.FrameSummary(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name, lookup_line=False)
        for frame in _user_frames(_SITE_FRAMES)
    )


def user_site() -> str:
    """``"at file.py:12"``: the innermost line of the user's code on the current stack (for error messages)."""
    frames = _user_frames(1)
    return f"at {frames[0].f_code.co_filename}:{frames[0].f_lineno}" if frames else "inside chainrule"


def _format_site(site: tuple[traceback.FrameSummary, ...] | None) -> str:
    if not site:
        return "created inside chainrule (no caller outside the package was recorded)"
    parts = []
    for number, frame in enumerate(site):
        line = (frame.line or "").strip()  # read from the source lazily, only now that it is reported
        where = f"{frame.filename}:{frame.lineno} in {frame.name}" + (f": {line}" if line else "")
        parts.append(("created at " if number == 0 else "called from ") + where)
    return ", ".join(parts)


def _as_array(value: Any) -> np.ndarray | None:
    """The array behind a tensor or array; None for Python numbers and None."""
    if isinstance(value, np.ndarray):
        return value
    data = getattr(value, "data", None)  # a Tensor (create_graph=True gradients are tensors)
    return data if isinstance(data, np.ndarray) else None


def _finite(array: np.ndarray | None) -> bool:
    return array is None or array.dtype.kind != "f" or bool(np.isfinite(array).all())


def _count_nonfinite(array: np.ndarray) -> str:
    nan = int(np.isnan(array).sum())
    inf = int(np.isinf(array).sum())
    kinds = " and ".join(k for k, n in (("NaN", nan), ("Inf", inf)) if n)
    return f"{kinds} in {nan + inf} of {array.size} values"


def _describe_inputs(args: Any) -> str:
    described = []
    for arg in args:
        array = _as_array(arg)
        described.append(f"{array.dtype} {array.shape}" if array is not None else f"scalar {arg!r}")
    return ", ".join(described) if described else "(none)"
