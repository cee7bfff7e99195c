"""The machinery under ``Module.register_full_backward_hook``: one :class:`BackwardHookCall` per module call.

A module call with backward hooks routes each tensor input and each tensor output through an identity node
(a ``reshape`` to the same shape: a view, no copy) and puts a gradient hook (:mod:`chainrule.hooks`) on each.
The output hooks collect ``grad_output``; the input hooks collect ``grad_input``; when the last input gradient
of the call is complete, the module's hooks run with both tuples, as in PyTorch. A call whose inputs need no
gradient (the first layer of a network) fires as soon as its output gradients are complete, with
``grad_input`` all None. Modules without backward hooks never reach this file.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from chainrule.errors import GradientError
from chainrule.ops import OPS
from chainrule.tensor import Tensor, apply

if TYPE_CHECKING:
    from chainrule.nn.module import Module

__all__ = ["BackwardHookCall"]


def _identity(x: Tensor) -> Tensor:
    """A new graph node equal to ``x`` (a view), whose gradient is exactly the gradient reaching ``x`` here."""
    return apply(OPS["reshape"], x, shape=x.shape)


class BackwardHookCall:
    """Collects one module call's ``grad_input`` and ``grad_output`` and runs the module's backward hooks."""

    def __init__(self, module: Module) -> None:
        self.module = module
        self.grad_input: list[Any] = []
        self.grad_output: list[Any] = []
        self.inputs_needing = 0  # tensor inputs that require grad: their gradients arrive one by one
        self.outputs_needing = 0
        self.inputs_seen = 0
        self.outputs_seen = 0

    def wrap_inputs(self, args: tuple) -> tuple:
        """The positional arguments, each tensor that requires grad replaced by a hooked identity of itself."""
        wrapped = []
        for arg in args:
            if isinstance(arg, Tensor):
                slot = len(self.grad_input)
                self.grad_input.append(None)
                if arg.requires_grad:
                    arg = _identity(arg)
                    arg.register_hook(partial(self._input_grad, slot))
                    self.inputs_needing += 1
            wrapped.append(arg)
        return tuple(wrapped)

    def wrap_outputs(self, output: Any) -> Any:
        """The output (a tensor, or a tuple or list of them), its tensors replaced by hooked identities."""
        if isinstance(output, Tensor):
            return self._wrap_output(output)
        if isinstance(output, (tuple, list)):
            return type(output)(self._wrap_output(item) if isinstance(item, Tensor) else item for item in output)
        return output

    def _wrap_output(self, output: Tensor) -> Tensor:
        slot = len(self.grad_output)
        self.grad_output.append(None)
        if not output.requires_grad:
            return output
        output = _identity(output)
        output.register_hook(partial(self._output_grad, slot))
        self.outputs_needing += 1
        return output

    def _output_grad(self, slot: int, grad: Tensor) -> None:
        self.grad_output[slot] = grad
        self.outputs_seen += 1
        if self.inputs_needing == 0 and self.outputs_seen == self.outputs_needing:
            self._fire()

    def _input_grad(self, slot: int, grad: Tensor) -> Tensor | None:
        self.grad_input[slot] = grad
        self.inputs_seen += 1
        if self.inputs_seen < self.inputs_needing:
            return None
        replaced = self._fire()
        if replaced is None:
            return None
        if self.inputs_needing > 1:
            raise GradientError(
                f"{type(self.module).__name__}: a full backward hook returned a new grad_input, which chainrule "
                f"supports only for modules with one tensor input needing a gradient (this call has "
                f"{self.inputs_needing}); change the gradients with Tensor.register_hook on the inputs instead"
            )
        return replaced[slot]

    def _fire(self) -> tuple | None:
        """Run the module's hooks once this call's gradients are complete; reset for another backward pass."""
        grad_input, grad_output = tuple(self.grad_input), tuple(self.grad_output)
        self.grad_input = [None] * len(self.grad_input)
        self.grad_output = [None] * len(self.grad_output)
        self.inputs_seen = self.outputs_seen = 0
        replaced = None
        for hook in list(self.module._backward_hooks.values()):
            result = hook(self.module, grad_input, grad_output)
            if result is not None:
                result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
                if len(result) != len(grad_input):
                    raise GradientError(
                        f"{type(self.module).__name__}: a full backward hook returned {len(result)} gradients "
                        f"for {len(grad_input)} inputs; return None or a tuple like grad_input"
                    )
                grad_input = replaced = result
        return replaced
