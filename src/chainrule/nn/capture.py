"""What second-order methods read from a layer: its inputs, its output gradients, as rows its weight multiplies.

A ``Linear`` or convolution layer computes, for each sample :math:`n` and each position :math:`t` (one position
for a plain ``Linear``; every output pixel of a convolution; every step of a sequence),

.. math:: s_{n,t} = W a_{n,t} + b, \\qquad W \\in \\mathbb{R}^{d_\\text{out} \\times d_\\text{in}},

where :math:`a_{n,t}` is the input row (for a convolution: the flattened input patch under the kernel, i.e. the
im2col column, :math:`d_\\text{in} = C \\cdot |\\text{kernel}|`). With :math:`g_{n,t} = \\partial L / \\partial
s_{n,t}` the weight's gradient is :math:`\\sum_{n,t} g_{n,t} a_{n,t}^\\top`. Per-sample gradients
(:mod:`chainrule.curvature.per_sample`) and K-FAC (:class:`chainrule.optim.KFAC`) both need the pairs
:math:`(a, g)`; this file records them with module hooks and reshapes them to ``(N, T, d)`` rows, once, for both.
The patches come from the same ``unfold`` (im2col) the convolution itself runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from chainrule.autograd import is_grad_enabled, no_grad
from chainrule.hooks import RemovableHandle
from chainrule.nn import functional as F
from chainrule.nn.conv import _ConvNd
from chainrule.nn.linear import Linear
from chainrule.nn.module import Module
from chainrule.tensor import Tensor

__all__ = ["LAYERS", "input_rows", "output_grad_rows", "weight_matrix_shape", "LayerRecorder"]

#: the layers whose weight gradient is a sum of outer products :math:`g a^\top` (Conv1d and Conv2d share _ConvNd)
LAYERS: tuple[type[Module], ...] = (Linear, _ConvNd)


def input_rows(module: Module, x: np.ndarray) -> np.ndarray:
    """The rows :math:`a_{n,t}` that ``module``'s weight multiplies, shape ``(N, T, d_in)``.

    ``Linear``: ``x`` of shape (N, ..., in) as (N, T, in). Convolution: the im2col patches of ``x``
    (N, C, *spatial) as (N, positions, C·|kernel|), in the order of ``weight.reshape(out, -1)``.
    """
    if isinstance(module, Linear):
        return x.reshape(x.shape[0], -1, x.shape[-1])
    if isinstance(module, _ConvNd):
        name = type(module).__name__
        padding = F.conv_padding(name, module.padding, module.kernel_size, module.stride, module.dilation)
        with no_grad():
            patches = F.unfold(x, module.kernel_size, module.stride, padding, module.dilation)
        data = patches.data  # (N, *out, C, *kernel)
        spatial = len(module.kernel_size)
        positions = int(np.prod(data.shape[1 : 1 + spatial]))
        return data.reshape(data.shape[0], positions, -1)
    raise TypeError(f"input_rows: {type(module).__name__} is not a Linear or convolution layer")


def output_grad_rows(module: Module, grad: np.ndarray) -> np.ndarray:
    """The output gradients :math:`g_{n,t}` as ``(N, T, d_out)`` (a convolution's (N, O, *out) moved channel-last)."""
    if isinstance(module, Linear):
        return grad.reshape(grad.shape[0], -1, grad.shape[-1])
    if isinstance(module, _ConvNd):
        flat = grad.reshape(grad.shape[0], grad.shape[1], -1)  # (N, O, P)
        return flat.transpose(0, 2, 1)
    raise TypeError(f"output_grad_rows: {type(module).__name__} is not a Linear or convolution layer")


def weight_matrix_shape(module: Module) -> tuple[int, int]:
    """``(d_out, d_in)``: the weight as the matrix that multiplies the rows of :func:`input_rows`."""
    weight = module.weight
    return weight.shape[0], int(np.prod(weight.shape[1:]))


class LayerRecorder:
    """Records each call's input and output gradient of chosen layers, with hooks.

    A forward hook keeps the input :math:`a` (and the output tensor) of every call made with grad enabled and
    puts a gradient hook (:meth:`chainrule.Tensor.register_hook`) on the output, which keeps
    :math:`g = \\partial L / \\partial s` when a backward pass reaches it.

    Parameters
    ----------
    layers : iterable of Module
        ``Linear`` / ``Conv1d`` / ``Conv2d`` layers.

    Attributes
    ----------
    inputs, output_grads, outputs : dict
        ``id(layer) -> list`` of arrays (outputs: tensors), one per call since the last :meth:`clear`, in call
        order (a layer used twice in a forward has two entries). Inputs are recorded while ``record_inputs`` is
        true, gradients while ``record_grads`` is true.
    """

    def __init__(self, layers: Iterable[Module]) -> None:
        self.layers = list(layers)
        self.inputs: dict[int, list[np.ndarray]] = {id(m): [] for m in self.layers}
        self.outputs: dict[int, list[Tensor]] = {id(m): [] for m in self.layers}
        self.output_grads: dict[int, list[np.ndarray]] = {id(m): [] for m in self.layers}
        self.record_inputs = True
        self.record_grads = True
        self._handles: list[RemovableHandle] = []

    def attach(self) -> LayerRecorder:
        """Register the hooks (idempotent); returns self."""
        if not self._handles:
            self._handles = [layer.register_forward_hook(self._keep_input) for layer in self.layers]
        return self

    def detach(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def clear(self) -> None:
        """Forget what was recorded."""
        for key in self.inputs:
            self.inputs[key] = []
            self.outputs[key] = []
            self.output_grads[key] = []

    def pairs(self, layer: Module) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(input, output_grad)`` per call of ``layer``, matched up (backward visits calls in reverse)."""
        inputs, grads = self.inputs[id(layer)], self.output_grads[id(layer)]
        return list(zip(inputs[len(inputs) - len(grads) :], grads))

    def all_outputs(self) -> list[Tensor]:
        """Every recorded output tensor (what a backward pass must reach to give every ``g``)."""
        return [output for outputs in self.outputs.values() for output in outputs]

    def _keep_input(self, module: Module, args: tuple, output: Any) -> None:
        if not (self.record_inputs and is_grad_enabled() and args and isinstance(args[0], Tensor)):
            return
        if not isinstance(output, Tensor) or not output.requires_grad:
            return
        key = id(module)
        self.inputs[key].append(args[0].data)
        self.outputs[key].append(output)
        grads = self.output_grads[key]

        def keep_output_grad(grad: Tensor) -> None:
            if self.record_grads:
                grads.insert(0, grad.data)

        output.register_hook(keep_output_grad)
