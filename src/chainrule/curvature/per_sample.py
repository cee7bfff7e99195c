"""Per-sample gradients (BackPACK's BatchGrad) and the gradient variance, from one ordinary backward pass.

For a ``Linear`` or convolution layer with input rows :math:`a_{n,t}` and output gradients
:math:`g_{n,t} = \\partial L/\\partial s_{n,t}` (see :mod:`chainrule.nn.capture`), the gradient of the batch
loss is a sum over samples, and each sample's share is one small matrix product:

.. math::
    \\nabla_W L = \\sum_n \\underbrace{\\textstyle\\sum_t g_{n,t}\\, a_{n,t}^\\top}_{\\nabla_W L_n},
    \\qquad \\nabla_b L_n = \\textstyle\\sum_t g_{n,t}.

All samples at once: ``einsum('nto,nti->noi', g, a)``, no Python loop over samples. For a convolution
:math:`a_{n,t}` is the im2col patch at output position :math:`t` (the convolution's own ``unfold``).

With ``reduction="mean"`` the batch loss is :math:`L = \\frac1N \\sum_n \\ell_n`, so :math:`L_n = \\ell_n / N`
and the per-sample gradient of :math:`\\ell_n` is :math:`N \\nabla L_n`; with ``"sum"``, :math:`\\ell_n = L_n`.
What is returned is always :math:`\\nabla \\ell_n`, the gradient of sample :math:`n`'s own loss (what
``torch.func.vmap(grad(loss))`` gives), so its mean over the batch is the gradient of the mean loss.

Only layers whose weight gradient has this outer-product form have a per-sample rule: ``Linear``,
``Conv1d``, ``Conv2d``. A model with other trainable layers (BatchNorm, Embedding, LSTM …) is refused with an
error naming the layer; freeze such layers (``requires_grad_(False)``) to get the rest. The model must treat
samples independently (no BatchNorm in training mode, for instance): the identity above assumes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule import _checks as check
from chainrule.autograd import grad
from chainrule.errors import ArgumentError
from chainrule.nn.capture import LAYERS, LayerRecorder, input_rows, output_grad_rows
from chainrule.nn.module import Module

__all__ = ["BatchGrad", "per_sample_gradients", "gradient_variance"]

_REDUCTIONS = ("mean", "sum")


def _layers_with_rules(model: Module, owner: str) -> list[tuple[str, Module]]:
    """The modules holding trainable parameters; raise naming the first one that has no per-sample rule."""
    layers = []
    for name, module in model.named_modules():
        trainable = [p for p in module._parameters.values() if p is not None and p.requires_grad]
        if not trainable:
            continue
        if not isinstance(module, LAYERS):
            where = f"layer {name!r}" if name else "the model itself"
            raise ArgumentError(
                f"{owner}: {where} ({type(module).__name__}) holds trainable parameters but has no per-sample "
                "gradient rule; supported layers: Linear, Conv1d, Conv2d. Freeze it (its_module.requires_grad_(False)) "
                "to get the gradients of the others"
            )
        layers.append((name, module))
    if not layers:
        raise ArgumentError(f"{owner}: the model has no trainable Linear or convolution layer")
    return layers


class BatchGrad:
    """Context manager that records layer inputs and output gradients, then gives per-sample gradients.

    Inside the ``with`` block run one forward and one backward pass (``loss.backward()`` or
    :func:`chainrule.autograd.grad`) of a loss that sums or averages per-sample losses; afterwards
    :meth:`gradients` holds :math:`\\nabla_\\theta \\ell_n` for every sample and trainable parameter.

    Parameters
    ----------
    model : Module
        Its trainable parameters must all sit in ``Linear``, ``Conv1d`` or ``Conv2d`` layers.
    reduction : {"mean", "sum"}
        How the loss combines the per-sample losses (``"mean"``: the gradients are scaled by N).

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> from chainrule.nn import functional as F
    >>> _ = cr.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    >>> x, y = cr.randn(5, 3), cr.tensor([0, 1, 1, 0, 1])
    >>> with BatchGrad(model) as batch:
    ...     F.cross_entropy(model(x), y).backward()
    >>> grads = batch.gradients()
    >>> grads["0.weight"].shape      # (N, *weight.shape)
    (5, 4, 3)
    >>> bool(abs(grads["0.weight"].mean(axis=0) - model[0].weight.grad.data).max() < 1e-6)
    True
    """

    def __init__(self, model: Module, reduction: str = "mean") -> None:
        self.model = model
        self.reduction = check.one_of("BatchGrad", "reduction", reduction, _REDUCTIONS)
        self.layers = _layers_with_rules(model, "BatchGrad")
        self.recorder = LayerRecorder(module for _, module in self.layers)

    def __enter__(self) -> BatchGrad:
        self.recorder.clear()
        self.recorder.attach()
        return self

    def __exit__(self, *exc: object) -> None:
        self.recorder.detach()

    def gradients(self) -> dict[str, np.ndarray]:
        """``parameter name -> array (N, *parameter.shape)``: the gradient of each sample's own loss."""
        result: dict[str, np.ndarray] = {}
        for name, layer in self.layers:
            prefix = f"{name}." if name else ""
            pairs = self.recorder.pairs(layer)
            if not pairs:
                raise ArgumentError(
                    f"BatchGrad: layer {name!r} ({type(layer).__name__}) saw no forward and backward pass inside "
                    "the `with` block; run the model and backpropagate the loss there"
                )
            weight_grad: np.ndarray | None = None
            bias_grad: np.ndarray | None = None
            batch = pairs[0][0].shape[0]
            for inputs, output_grad in pairs:  # one term per call of the layer (weight sharing adds up)
                a = input_rows(layer, inputs)  # (N, T, d_in)
                g = output_grad_rows(layer, output_grad)  # (N, T, d_out)
                term = np.einsum("nto,nti->noi", g, a)  # (N, d_out, d_in)
                weight_grad = term if weight_grad is None else weight_grad + term
                bias_term = g.sum(axis=1)
                bias_grad = bias_term if bias_grad is None else bias_grad + bias_term
            scale = batch if self.reduction == "mean" else 1
            weight = layer.weight
            if weight.requires_grad and weight_grad is not None:
                result[prefix + "weight"] = (scale * weight_grad).reshape(batch, *weight.shape).astype(weight.dtype)
            bias = layer.bias
            if bias is not None and bias.requires_grad and bias_grad is not None:
                result[prefix + "bias"] = (scale * bias_grad).astype(bias.dtype)
        return result

    def matrix(self) -> np.ndarray:
        """The per-sample gradients as one ``(N, P)`` matrix, columns in ``model.named_parameters()`` order."""
        grads = self.gradients()
        names = [name for name, _ in self.model.named_parameters() if name in grads]
        columns = [grads[name].reshape(grads[name].shape[0], -1) for name in names]
        return np.concatenate(columns, axis=1)


def per_sample_gradients(
    model: Module,
    loss_fn: Callable[[Any, Any], Any],
    inputs: Any,
    targets: Any,
    *,
    reduction: str = "mean",
) -> dict[str, np.ndarray]:
    """The gradient of every sample's loss with respect to every trainable parameter, in one backward pass.

    Runs ``loss_fn(model(inputs), targets)`` and backpropagates it with :func:`chainrule.autograd.grad`, so
    no ``.grad`` is touched. See the module docstring for the maths.

    Parameters
    ----------
    model : Module
        Trainable parameters only in ``Linear``, ``Conv1d``, ``Conv2d`` layers.
    loss_fn : callable
        ``loss_fn(output, targets) -> scalar``, the sum or mean (``reduction``) of per-sample losses.
    inputs, targets
        A batch of N samples (inputs of shape (N, ...)).
    reduction : {"mean", "sum"}
        The loss's reduction over the batch.

    Returns
    -------
    dict
        ``parameter name -> array (N, *parameter.shape)``: :math:`\\nabla_\\theta \\ell_n`.

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> from chainrule.nn import functional as F
    >>> _ = cr.manual_seed(0)
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    >>> grads = per_sample_gradients(model, F.cross_entropy, cr.randn(6, 1, 4, 4), cr.tensor([0, 1, 2, 0, 1, 2]))
    >>> grads["0.weight"].shape, grads["3.bias"].shape
    ((6, 2, 1, 3, 3), (6, 3))
    """
    batch_grad = BatchGrad(model, reduction)
    params = [p for p in model.parameters() if p.requires_grad]
    with batch_grad:
        loss = loss_fn(model(inputs), targets)
        # only the layers' output gradients are needed: the sweep stops there (params: nothing was recorded)
        grad(loss, batch_grad.recorder.all_outputs() or params, allow_unused=True)
    return batch_grad.gradients()


def gradient_variance(
    model: Module,
    loss_fn: Callable[[Any, Any], Any],
    inputs: Any,
    targets: Any,
    *,
    reduction: str = "mean",
    ddof: int = 0,
) -> dict[str, np.ndarray]:
    """The variance over the batch of each gradient entry: :math:`\\frac{1}{N - \\text{ddof}} \\sum_n
    (\\nabla \\ell_n - \\overline{\\nabla \\ell})^2`, elementwise, per parameter.

    The noise a minibatch gradient carries: the mean over a batch of B samples has variance
    ``gradient_variance / B`` per entry (sampling with replacement). Same arguments as
    :func:`per_sample_gradients`; ``ddof=1`` gives the unbiased estimate.

    Returns
    -------
    dict
        ``parameter name -> array of the parameter's shape``.

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> _ = cr.manual_seed(0)
    >>> model = nn.Linear(2, 1)
    >>> x = cr.randn(8, 2)
    >>> variance = gradient_variance(model, nn.functional.mse_loss, x, cr.zeros(8, 1))
    >>> variance["weight"].shape, bool((variance["bias"] >= 0).all())
    ((1, 2), True)
    """
    ddof = check.integer("gradient_variance", "ddof", ddof)
    grads = per_sample_gradients(model, loss_fn, inputs, targets, reduction=reduction)
    batch = next(iter(grads.values())).shape[0]
    if not 0 <= ddof < batch:
        raise ArgumentError(f"gradient_variance: ddof must be in [0, N) = [0, {batch}), got {ddof}")
    return {name: np.var(values, axis=0, ddof=ddof) for name, values in grads.items()}
