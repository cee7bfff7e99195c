"""What the curvature operators need to know about a loss: its reduction, its per-sample terms and the
predictive distribution it is the negative log-likelihood of.

Scaling convention
------------------
A loss over a batch of :math:`N` samples is read as :math:`L(\\theta) = w \\sum_n \\ell_n(\\theta)` with
:math:`\\ell_n` the *per-sample* loss (summed over the sample's output elements) and :math:`w` the reduction's
weight:

- ``CrossEntropyLoss``: :math:`\\ell_n = -\\log \\mathrm{softmax}(f_n)_{y_n}`, :math:`w = 1/N` (mean) or 1 (sum);
- ``MSELoss``: :math:`\\ell_n = \\sum_d (f_{nd} - y_{nd})^2`, :math:`w = 1/(N D)` (mean) or 1 (sum).

(``MSELoss`` with ``reduction="mean"`` averages over all :math:`N D` output elements, as in PyTorch.)
Every operator carries the same :math:`w`, so the Hessian, GGN, Fisher and empirical Fisher of one loss
are directly comparable. Each loss is :math:`-\\log p(y \\mid f)` up to a constant for the predictive
distribution the Fisher averages over: a categorical :math:`\\mathrm{softmax}(f)` for cross-entropy and a
Gaussian :math:`\\mathcal N(f, \\tfrac12 I)` for the squared error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule.errors import ArgumentError, ShapeError
from chainrule.functions import as_tensor
from chainrule.nn import functional as F
from chainrule.nn import loss as losses
from chainrule.nn.registry import resolve_loss
from chainrule.tensor import Tensor

__all__ = ["LossSpec", "loss_spec", "FISHER_LOSSES"]

#: The losses whose Fisher (and empirical Fisher) the operators know: name → predictive distribution.
FISHER_LOSSES = {"CrossEntropyLoss": "categorical softmax(f)", "MSELoss": "Gaussian N(f, ½I)"}


@dataclass(frozen=True)
class LossSpec:
    """A loss as the operators see it.

    Attributes
    ----------
    name : str
        The loss's class or function name, used in messages.
    fn : callable
        ``fn(output, target)``, the loss as given (a one-element tensor).
    family : str or None
        ``"categorical"`` (cross-entropy), ``"gaussian"`` (squared error), or None for a loss the Fisher
        operators do not know.
    reduction : str
        ``"mean"`` or ``"sum"`` for a known family.
    """

    name: str
    fn: Callable[[Any, Any], Any]
    family: str | None
    reduction: str = "mean"

    def require_family(self, owner: str) -> str:
        """The family, or an ``ArgumentError`` naming the loss and the ones ``owner`` supports."""
        if self.family is None:
            known = ", ".join(f"{name} ({dist})" for name, dist in FISHER_LOSSES.items())
            raise ArgumentError(
                f"{owner}: the loss {self.name} is not supported; it needs a loss that is a negative "
                f"log-likelihood with a known predictive distribution: {known}"
            )
        return self.family

    def weight(self, output_shape: tuple[int, ...]) -> float:
        """:math:`w` in :math:`L = w \\sum_n \\ell_n` for an output of ``output_shape`` (N first)."""
        if self.reduction == "sum":
            return 1.0
        per_sample = 1 if self.family == "categorical" else int(np.prod(output_shape[1:], dtype=np.int64))
        return 1.0 / (output_shape[0] * per_sample)

    def per_sample(self, output: Tensor, targets: Any) -> Tensor:
        """:math:`(\\ell_1, \\dots, \\ell_K)`: the unreduced loss of each row of ``output`` (shape ``(K,)``)."""
        if self.family == "categorical":
            return F.cross_entropy(output, targets, reduction="none")
        squares = F.mse_loss(output, targets, reduction="none")
        return squares.reshape(output.shape[0], -1).sum(axis=1)

    def check_batch(self, owner: str, output: np.ndarray, targets: Any = None) -> None:
        """The output (and the targets, when given) fit the family: a clear error rather than a wrong matrix."""
        if self.family == "categorical" and output.ndim != 2:
            raise ShapeError(
                f"{owner}: {self.name} needs logits of shape (N, C), got {output.shape}; flatten extra axes"
            )
        if targets is None:
            return
        labels = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
        ignore_index = getattr(self.fn, "ignore_index", -100)
        if self.family == "categorical" and labels.dtype.kind in "iu" and np.any(labels == ignore_index):
            raise ArgumentError(f"{owner}: {self.name}: targets equal to ignore_index={ignore_index} are not supported")
        if self.family == "gaussian" and labels.shape != output.shape:
            raise ShapeError(
                f"{owner}: {self.name} needs targets of the output's shape {output.shape}, got {labels.shape}"
            )

    def expected_labels(
        self, output: np.ndarray, mc_samples: int | None, generator: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels that stand for :math:`y \\sim p(y \\mid f_n)` in the Fisher's expectation.

        Returns ``(rows, labels, weights)``: label ``k`` belongs to sample ``rows[k]`` and has probability
        weight ``weights[k]`` (the weights of one sample sum to 1), so that
        :math:`\\mathbb E_y[h(y)] = \\sum_k \\mathrm{weights}_k\\, h(\\mathrm{labels}_k)` for the functions the
        Fisher needs.

        - ``mc_samples=None``, categorical: every class, weighted by its probability (exact).
        - ``mc_samples=None``, Gaussian :math:`\\mathcal N(f, \\tfrac12 I_D)`: the :math:`2D` points
          :math:`f \\pm \\sqrt{D/2}\\, e_d`, each of weight :math:`1/(2D)`. They have the Gaussian's mean and
          covariance, so the expectation of the outer product of the gradient (quadratic in :math:`y` for
          the squared error) is exact.
        - ``mc_samples=M``: :math:`M` labels drawn from the distribution with ``generator``, weight :math:`1/M`.
        """
        count = output.shape[0]
        if self.family == "categorical":
            shifted = output - output.max(axis=1, keepdims=True)
            probs = np.exp(shifted)
            probs /= probs.sum(axis=1, keepdims=True)  # (N, C)
            classes = output.shape[1]
            if mc_samples is None:
                rows = np.repeat(np.arange(count), classes)
                return rows, np.tile(np.arange(classes), count), probs.ravel()
            cumulative = np.cumsum(probs, axis=1)  # inverse-CDF sampling, (N, M) labels
            uniforms = generator.random((count, mc_samples))
            labels = np.minimum((uniforms[:, :, None] > cumulative[:, None, :]).sum(axis=2), classes - 1)
            return np.repeat(np.arange(count), mc_samples), labels.ravel(), np.full(count * mc_samples, 1 / mc_samples)
        flat = output.reshape(count, -1)  # (N, D)
        dims = flat.shape[1]
        if mc_samples is None:
            offsets = math.sqrt(dims / 2) * np.concatenate([np.eye(dims), -np.eye(dims)])  # (2D, D)
            labels = (flat[:, None, :] + offsets[None]).reshape(count * 2 * dims, *output.shape[1:])
            return np.repeat(np.arange(count), 2 * dims), labels, np.full(count * 2 * dims, 1 / (2 * dims))
        noise = generator.standard_normal((count, mc_samples, dims)) * math.sqrt(0.5)
        labels = (flat[:, None, :] + noise).reshape(count * mc_samples, *output.shape[1:])
        return np.repeat(np.arange(count), mc_samples), labels, np.full(count * mc_samples, 1 / mc_samples)


def loss_spec(loss: Any, owner: str) -> LossSpec:
    """Recognise ``loss``: a name in :data:`chainrule.nn.registry.LOSSES`, a loss module, or a function.

    ``CrossEntropyLoss`` (no class weights, no label smoothing), ``MSELoss`` and the functions
    ``F.cross_entropy``/``F.mse_loss`` get a family; anything else callable is accepted with
    ``family=None`` (the Hessian and the GGN need only the loss's value).

    Examples
    --------
    >>> from chainrule import nn
    >>> loss_spec("cross_entropy", "fisher").family
    'categorical'
    >>> loss_spec(nn.MSELoss(reduction="sum"), "fisher").reduction
    'sum'
    >>> loss_spec(nn.L1Loss(), "ggn").family is None
    True
    """
    fn = resolve_loss(loss, owner)
    name = type(fn).__name__ if isinstance(fn, losses._Loss) else getattr(fn, "__name__", type(fn).__name__)
    if isinstance(fn, losses.CrossEntropyLoss):
        if fn.weight is not None or fn.label_smoothing:
            return LossSpec(f"{name} with class weights or label smoothing", fn, None)
        return LossSpec(name, fn, "categorical" if fn.reduction != "none" else None, fn.reduction)
    if isinstance(fn, losses.MSELoss):
        return LossSpec(name, fn, "gaussian" if fn.reduction != "none" else None, fn.reduction)
    if fn is F.cross_entropy:
        return LossSpec(name, fn, "categorical")
    if fn is F.mse_loss:
        return LossSpec(name, fn, "gaussian")
    return LossSpec(name, fn, None, getattr(fn, "reduction", "mean"))


def scalar_loss(spec: LossSpec, owner: str, output: Any, targets: Any) -> Tensor:
    """``spec.fn(output, targets)``, checked to be one number."""
    value = as_tensor(spec.fn(output, targets))
    if value.data.size != 1:
        raise ShapeError(
            f"{owner}: the loss {spec.name} must reduce the batch to one number, got shape {value.shape} "
            "(use reduction='mean' or 'sum')"
        )
    return value
