"""K-FAC: natural-gradient descent with a Kronecker-factored approximation of the Fisher information matrix.

Martens & Grosse (2015) for fully connected layers, Grosse & Martens (2016, "KFC") for convolutions. For a layer
:math:`s_{n,t} = \\bar W \\bar a_{n,t}` (weight and bias in one matrix :math:`\\bar W = [W \\; b]`, the input
with a homogeneous coordinate :math:`\\bar a = [a; 1]`; :math:`t` runs over a convolution's output positions,
one position for ``Linear``), the Fisher block of :math:`\\operatorname{vec}\\bar W` is approximated by

.. math::
    F \\approx A \\otimes G, \\qquad
    A = \\frac1N \\sum_{n,t} \\bar a_{n,t} \\bar a_{n,t}^\\top, \\qquad
    G = \\frac{1}{N |T|} \\sum_{n,t} g_{n,t} g_{n,t}^\\top,

where :math:`g_{n,t} = \\partial(-\\log p(\\hat y_n \\mid x_n)) / \\partial s_{n,t}` is backpropagated from labels
:math:`\\hat y_n` *sampled from the model's predictive distribution* (that makes it the Fisher; with
``empirical=True`` the true labels are used: the empirical Fisher). :math:`A` and :math:`G` are exponential
running averages over steps. With Tikhonov damping :math:`\\lambda`, factored with Martens & Grosse's
:math:`\\pi`-correction,

.. math::
    (A \\otimes G + \\lambda I)^{-1} \\approx
    (A + \\pi\\sqrt\\lambda\\, I)^{-1} \\otimes (G + \\tfrac{1}{\\pi}\\sqrt\\lambda\\, I)^{-1},
    \\qquad \\pi = \\sqrt{\\frac{\\operatorname{tr}(A) / \\dim A}{\\operatorname{tr}(G) / \\dim G}},

and since :math:`(A \\otimes G)^{-1} \\operatorname{vec}(V) = \\operatorname{vec}(G^{-1} V A^{-1})` the
preconditioned gradient of a layer is the small product :math:`\\Delta = G_\\lambda^{-1} \\nabla_{\\bar W} L\\,
A_\\lambda^{-1}`. The damped inverses are refreshed every ``inverse_every`` steps.

With ``inverse="eigen"`` the factors' eigendecompositions :math:`A = Q_A \\operatorname{diag}(\\lambda_A) Q_A^\\top`,
:math:`G = Q_G \\operatorname{diag}(\\lambda_G) Q_G^\\top` are refreshed instead, and the damping is exact: since
:math:`A \\otimes G + \\lambda I = (Q_A \\otimes Q_G) \\operatorname{diag}(\\lambda_A \\otimes \\lambda_G + \\lambda)
(Q_A \\otimes Q_G)^\\top`,

.. math::
    (A \\otimes G + \\lambda I)^{-1} \\operatorname{vec}(V) = \\operatorname{vec}\\Bigl(Q_G \\bigl[(Q_G^\\top V Q_A)
    \\oslash (\\lambda_G \\lambda_A^\\top + \\lambda)\\bigr] Q_A^\\top\\Bigr)

(:math:`\\oslash`: elementwise division). The factored form adds the cross terms :math:`\\pi\\sqrt\\lambda\\, I \\otimes
G + \\frac{\\sqrt\\lambda}{\\pi} A \\otimes I` to the matrix it inverts, so it damps more than the exact form at the
same :math:`\\lambda` (a larger λ does the same there); the exact form costs an ``eigh`` per factor instead of an
``inv`` at each refresh, and since λ enters only the elementwise division, a changed λ (adaptive damping) takes
effect at once instead of at the next refresh.

Adaptive damping (``adaptive_damping=True``; Levenberg–Marquardt, Martens & Grosse 2015 §6.5): every
``damping_every`` (:math:`T`) steps, the reduction ratio of the step :math:`\\delta` just taken,

.. math::
    \\rho = \\frac{h(\\theta + \\delta) - h(\\theta)}{M(\\delta) - M(0)}, \\qquad
    M(\\delta) - M(0) = \\nabla h^\\top \\delta
    + \\tfrac12 \\delta^\\top (\\hat F + (\\lambda + \\eta_\\text{wd}) I)\\delta,

compares the loss change to the change the damped quadratic model predicted, and :math:`\\lambda \\leftarrow
\\omega\\lambda` if :math:`\\rho > 3/4`, :math:`\\lambda \\leftarrow \\lambda / \\omega` if :math:`\\rho < 1/4`,
with :math:`\\omega = (19/20)^T`. Here :math:`\\hat F` is the Kronecker-factored Fisher :math:`A \\otimes G` itself
(the paper uses the exact Fisher, which costs an extra pass), so the curvature term of a layer is
:math:`\\langle D, G D A \\rangle` for its step matrix :math:`D`; parameters outside the layers enter with their
first-order and damping terms only. :math:`h` includes the weight decay :math:`\\frac{\\eta_\\text{wd}}2
\\lVert\\theta\\rVert^2`. The model assumes the loss is the *mean* negative log-likelihood per sample (what the
factors approximate the Fisher of). The step is KL-clipped
(Ba, Grosse & Martens 2017): :math:`\\nu = \\min\\bigl(1, \\sqrt{\\kappa / (\\eta^2 \\sum_\\text{layers}
\\langle \\Delta, \\nabla L \\rangle)}\\bigr)`, then heavy-ball momentum :math:`b \\leftarrow \\mu b + \\nu
\\Delta`, :math:`\\bar W \\leftarrow \\bar W - \\eta b`. Parameters outside ``Linear``/``Conv1d``/``Conv2d``
layers (BatchNorm, embeddings, …) take an SGD-with-momentum or Adam step instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from chainrule import _checks as check
from chainrule import rng
from chainrule.autograd import grad, no_grad
from chainrule.errors import ArgumentError, CheckpointError, GradientError, ShapeError
from chainrule.nn import functional as F
from chainrule.nn.capture import LAYERS, LayerRecorder, input_rows, output_grad_rows, weight_matrix_shape
from chainrule.nn.module import Module
from chainrule.optim.adam import adam_update
from chainrule.optim.optimizer import Optimizer
from chainrule.optim.sgd import sgd_step
from chainrule.tensor import Tensor

__all__ = [
    "KFAC",
    "kfac_factors",
    "damped_inverses",
    "kfac_precondition",
    "factor_eigens",
    "eigen_precondition",
    "levenberg_marquardt",
    "kl_clip_scale",
]

LIKELIHOODS = ("categorical", "bernoulli", "gaussian")
INVERSES = ("factored", "eigen")
#: Adaptive damping keeps λ within these bounds (a run of very good or very bad steps cannot drive it to 0 or inf).
DAMPING_BOUNDS = (1e-8, 1e8)
#: ``adam_update``'s settings for ``fallback="adam"`` (besides the learning rate and weight decay): PyTorch's defaults.
_ADAM_FALLBACK: dict[str, Any] = {
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "decoupled": False,
    "amsgrad": False,
    "maximize": False,
}


def _momentum(group: dict[str, Any]) -> dict[str, Any]:
    """``sgd_step``'s settings for K-FAC's moves (besides the learning rate and weight decay): the group's
    momentum, applied as a plain heavy ball (no dampening, no Nesterov)."""
    return {"momentum": group["momentum"], "dampening": 0.0, "nesterov": False, "maximize": False}


# ---------------------------------------------------------------------------------------------------
# The maths, as plain functions on arrays
# ---------------------------------------------------------------------------------------------------
def kfac_factors(inputs: np.ndarray, output_grads: np.ndarray, bias: bool) -> tuple[np.ndarray, np.ndarray]:
    """One batch's Kronecker factors from a layer's input rows and output-gradient rows.

    Parameters
    ----------
    inputs : ndarray, shape (N, T, d_in)
        :math:`a_{n,t}` (see :func:`chainrule.nn.capture.input_rows`).
    output_grads : ndarray, shape (N, T, d_out)
        :math:`g_{n,t}`, gradients of the per-sample losses :math:`-\\log p(\\hat y_n \\mid x_n)`.
    bias : bool
        Append the homogeneous coordinate 1 to every input row (the layer has a bias).

    Returns
    -------
    A : ndarray, shape (d_in (+1), d_in (+1))
        :math:`\\frac1N \\sum_{n,t} \\bar a \\bar a^\\top`.
    G : ndarray, shape (d_out, d_out)
        :math:`\\frac{1}{N|T|} \\sum_{n,t} g g^\\top`.

    Examples
    --------
    >>> import numpy as np
    >>> A, G = kfac_factors(np.ones((2, 1, 3)), np.full((2, 1, 1), 2.0), bias=True)
    >>> A.shape, float(A[0, 0]), float(G[0, 0])
    ((4, 4), 1.0, 4.0)
    """
    batch, positions, width = inputs.shape
    rows = inputs.reshape(batch * positions, width)
    a_factor = np.empty((width + bias, width + bias), dtype=rows.dtype)
    a_factor[:width, :width] = rows.T @ rows
    if bias:  # the homogeneous coordinate's row and column, without copying the rows to append a 1 to each
        sums = rows.sum(axis=0)
        a_factor[:width, width] = sums
        a_factor[width, :width] = sums
        a_factor[width, width] = batch * positions
    grads = output_grads.reshape(-1, output_grads.shape[2])
    return a_factor / batch, grads.T @ grads / (batch * positions)


def damped_inverses(a_factor: np.ndarray, g_factor: np.ndarray, damping: float) -> tuple[np.ndarray, np.ndarray]:
    """:math:`(A + \\pi\\sqrt\\lambda I)^{-1}` and :math:`(G + \\sqrt\\lambda/\\pi\\, I)^{-1}` (factored damping).

    :math:`\\pi = \\sqrt{(\\operatorname{tr}A/\\dim A) / (\\operatorname{tr}G/\\dim G)}` balances the damping
    between the factors (1 if either trace vanishes). Both inverses are symmetric.

    Examples
    --------
    >>> import numpy as np
    >>> A_inv, G_inv = damped_inverses(np.eye(2), 4 * np.eye(3), 0.25)   # pi = 1/2, sqrt(lambda) = 1/2
    >>> float(A_inv[0, 0]), float(G_inv[0, 0])
    (0.8, 0.2)
    """
    mean_a = np.trace(a_factor) / a_factor.shape[0]
    mean_g = np.trace(g_factor) / g_factor.shape[0]
    pi = math.sqrt(mean_a / mean_g) if mean_a > 0 and mean_g > 0 else 1.0
    root = math.sqrt(damping)
    a_inv = np.linalg.inv(a_factor + (pi * root) * np.eye(a_factor.shape[0], dtype=a_factor.dtype))
    g_inv = np.linalg.inv(g_factor + (root / pi) * np.eye(g_factor.shape[0], dtype=g_factor.dtype))
    return (a_inv + a_inv.T) / 2, (g_inv + g_inv.T) / 2


def kfac_precondition(grad_matrix: np.ndarray, a_inverse: np.ndarray, g_inverse: np.ndarray) -> np.ndarray:
    """:math:`G^{-1} V A^{-1}`, i.e. :math:`(A \\otimes G)^{-1} \\operatorname{vec}(V)`, V: (d_out, d_in)."""
    return g_inverse @ grad_matrix @ a_inverse


def factor_eigens(factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (clipped at 0: a factor is positive semi-definite, round-off may say otherwise) and
    eigenvectors (columns) of a symmetric factor, ``(lambdas, Q)`` with ``factor = Q diag(lambdas) Q^T``.

    Examples
    --------
    >>> import numpy as np
    >>> values, vectors = factor_eigens(np.array([[2.0, 0.0], [0.0, -1e-18]]))
    >>> values.tolist()
    [0.0, 2.0]
    """
    values, vectors = np.linalg.eigh((factor + factor.T) / 2)
    return np.maximum(values, 0), vectors


def eigen_precondition(
    grad_matrix: np.ndarray,
    a_eigen: tuple[np.ndarray, np.ndarray],
    g_eigen: tuple[np.ndarray, np.ndarray],
    damping: float,
) -> np.ndarray:
    """:math:`(A \\otimes G + \\lambda I)^{-1} \\operatorname{vec}(V)` with exact damping, from the factors'
    eigendecompositions: :math:`Q_G [(Q_G^\\top V Q_A) \\oslash (\\lambda_G \\lambda_A^\\top + \\lambda)] Q_A^\\top`.

    Parameters
    ----------
    grad_matrix : ndarray, shape (d_out, d_in)
        :math:`V`.
    a_eigen, g_eigen : (ndarray, ndarray)
        :func:`factor_eigens` of :math:`A` (d_in) and :math:`G` (d_out).
    damping : float
        :math:`\\lambda > 0`.

    Examples
    --------
    >>> import numpy as np
    >>> A, G = np.diag([1.0, 3.0]), np.diag([2.0])          # A kron G = diag(2, 6)
    >>> eigen_precondition(np.array([[3.0, 7.0]]), factor_eigens(A), factor_eigens(G), 1.0).tolist()
    [[1.0, 1.0]]
    """
    a_values, a_vectors = a_eigen
    g_values, g_vectors = g_eigen
    rotated = g_vectors.T @ grad_matrix @ a_vectors
    rotated /= np.outer(g_values, a_values) + damping
    return g_vectors @ rotated @ a_vectors.T


def levenberg_marquardt(damping: float, rho: float, omega: float) -> float:
    """The Levenberg–Marquardt rule: :math:`\\omega\\lambda` if :math:`\\rho > 3/4` (the quadratic model was
    good: trust it more), :math:`\\lambda/\\omega` if :math:`\\rho < 1/4` (or ρ is NaN), else λ; kept within
    :data:`DAMPING_BOUNDS`. ``omega`` in (0, 1).

    Examples
    --------
    >>> levenberg_marquardt(1.0, 0.9, 0.5), levenberg_marquardt(1.0, 0.1, 0.5), levenberg_marquardt(1.0, 0.5, 0.5)
    (0.5, 2.0, 1.0)
    """
    if rho > 0.75:
        damping *= omega
    elif not rho >= 0.25:  # NaN counts as a bad step
        damping /= omega
    return min(max(damping, DAMPING_BOUNDS[0]), DAMPING_BOUNDS[1])


def kl_clip_scale(inner: float, lr: float, kl_clip: float) -> float:
    """:math:`\\nu = \\min(1, \\sqrt{\\kappa / (\\eta^2 \\langle\\Delta, \\nabla L\\rangle)})`; 1 when off (κ = 0).

    :math:`\\frac12 \\eta^2 \\Delta^\\top F \\Delta \\approx \\frac12 \\eta^2 \\langle \\Delta, \\nabla L\\rangle`
    is the KL divergence a step :math:`-\\eta\\Delta` moves the predictive distribution by; ν caps it near κ.
    """
    if kl_clip == 0 or inner <= 0 or lr == 0:
        return 1.0
    return min(1.0, math.sqrt(kl_clip / (lr * lr * inner)))


def sample_labels(output: np.ndarray, likelihood: str, generator: np.random.Generator) -> np.ndarray:
    """Labels drawn from the model's predictive distribution :math:`p(y \\mid x)` given its ``output``.

    ``categorical``: output (N, C) logits, labels (N,) class indices drawn from softmax. ``bernoulli``: output
    logits of any shape, labels 0/1 drawn from the sigmoid. ``gaussian``: unit-variance noise around the output.
    """
    if likelihood == "categorical":
        shifted = np.exp(output - output.max(axis=1, keepdims=True))
        cumulative = np.cumsum(shifted / shifted.sum(axis=1, keepdims=True), axis=1)
        draws = generator.random((output.shape[0], 1))
        return np.minimum((draws > cumulative).sum(axis=1), output.shape[1] - 1).astype(np.int64)
    if likelihood == "bernoulli":
        probabilities = 0.5 * (1.0 + np.tanh(0.5 * output))  # the logistic function, without overflow
        return (generator.random(output.shape) < probabilities).astype(output.dtype)
    return output + generator.standard_normal(output.shape).astype(output.dtype)


def _negative_log_likelihood(output: Tensor, labels: Any, likelihood: str) -> Tensor:
    """:math:`\\sum_n -\\log p(y_n \\mid x_n)` (up to constants): a sum, so its backward gives per-sample gradients."""
    if likelihood == "categorical":
        return F.cross_entropy(output, labels, reduction="sum")
    if likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(output, labels, reduction="sum")
    return 0.5 * ((output - labels) ** 2).sum()


# ---------------------------------------------------------------------------------------------------
# The optimizer
# ---------------------------------------------------------------------------------------------------
class KFAC(Optimizer):
    """K-FAC (Kronecker-factored approximate curvature) for the ``Linear``, ``Conv1d`` and ``Conv2d`` layers of
    a model; SGD with momentum (or Adam) for its other parameters. The maths is in the module docstring.

    A training step needs the curvature statistics, which come from a second backward pass of labels sampled
    from the model. :meth:`backward` does both passes, so a step reads::

        output = model(x)                       # forward hooks record each layer's input a
        loss = F.cross_entropy(output, y)
        opt.zero_grad()
        opt.backward(loss, output)              # sampled-label pass (records g, updates A, G), then loss.backward()
        opt.step()

    Parameters
    ----------
    model : Module
        The model; its trainable ``Linear``/``Conv1d``/``Conv2d`` layers are preconditioned.
    lr : float
        Learning rate :math:`\\eta` (default 0.01).
    damping : float
        Tikhonov damping :math:`\\lambda > 0` (default 1e-3): factored with the π-correction, or exact with
        ``inverse="eigen"`` (which damps less at the same value); the starting value with ``adaptive_damping``.
    momentum : float
        :math:`\\mu \\in [0, 1)` (default 0.9).
    weight_decay : float
        L2 penalty, added to the gradient before preconditioning (default 0).
    stat_decay : float
        :math:`\\rho \\in [0, 1)`: :math:`A \\leftarrow \\rho A + (1-\\rho) A_\\text{batch}` (default 0.95).
    kl_clip : float
        κ ≥ 0 of the KL clipping (default 1e-3); 0 turns it off.
    factor_every : int
        Update the factors every this many steps (the sampled-label pass is skipped in between; default 1).
    inverse_every : int
        Recompute the damped inverses (or eigendecompositions) every this many steps, ``T`` in the paper
        (default 10).
    inverse : {"factored", "eigen"}
        ``"factored"`` (default): the inverses of the π-corrected damped factors; ``"eigen"``: the factors'
        eigendecompositions and exact damping :math:`(A \\otimes G + \\lambda I)^{-1}` (module docstring).
    adaptive_damping : bool
        Adapt λ by the Levenberg–Marquardt rule every ``damping_every`` steps (default False); ``step`` then
        needs a closure that returns the loss at the new parameters (see :meth:`step`). ``damping`` is the
        starting value. With ``inverse="factored"`` a new λ reaches the inverses at their next refresh.
    damping_every : int
        :math:`T` of the adaptive damping, which also sets :math:`\\omega = (19/20)^T` (default 5).
    likelihood : {"categorical", "bernoulli", "gaussian"}
        The model's predictive distribution, i.e. its loss: cross-entropy on logits, binary cross-entropy on
        logits, or squared error (unit variance).
    empirical : bool
        Use the given labels instead of sampled ones (the empirical Fisher; ``backward`` then needs ``targets``).
    fallback : {"sgd", "adam"}
        The update of parameters outside the preconditioned layers.
    fallback_lr : float, optional
        Their learning rate (default: ``lr``).
    seed : int, optional
        Seed of the label sampler's own generator; default: draw from chainrule's global generator
        (:func:`chainrule.manual_seed`).

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn, optim
    >>> from chainrule.nn import functional as F
    >>> _ = cr.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    >>> x = cr.randn(64, 2)
    >>> y = (x[:, 0] * x[:, 1] > 0).long()
    >>> opt = optim.KFAC(model, lr=0.1, damping=1e-2, seed=0)
    >>> losses = []
    >>> for _ in range(30):
    ...     output = model(x)
    ...     loss = F.cross_entropy(output, y)
    ...     opt.zero_grad()
    ...     opt.backward(loss, output)
    ...     opt.step()
    ...     losses.append(loss.item())
    >>> losses[-1] < 0.5 * losses[0]
    True
    """

    ranges: ClassVar[dict[str, tuple[float, float, bool, bool]]] = {
        "lr": (0.0, math.inf, False, True),
        "damping": (0.0, math.inf, True, True),
        "momentum": (0.0, 1.0, False, True),
        "weight_decay": (0.0, math.inf, False, True),
        "stat_decay": (0.0, 1.0, False, True),
        "kl_clip": (0.0, math.inf, False, True),
    }
    flags: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        model: Module,
        lr: float = 0.01,
        damping: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        stat_decay: float = 0.95,
        kl_clip: float = 1e-3,
        factor_every: int = 1,
        inverse_every: int = 10,
        inverse: str = "factored",
        adaptive_damping: bool = False,
        damping_every: int = 5,
        likelihood: str = "categorical",
        empirical: bool = False,
        fallback: str = "sgd",
        fallback_lr: float | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(model, Module):
            raise ArgumentError(
                f"KFAC: expected the model (an nn.Module; K-FAC hooks its layers), got {type(model).__name__}"
            )
        defaults = dict(
            lr=lr,
            damping=damping,
            momentum=momentum,
            weight_decay=weight_decay,
            stat_decay=stat_decay,
            kl_clip=kl_clip,
        )
        super().__init__([p for p in model.parameters() if p.requires_grad], defaults)
        self.factor_every = check.integer("KFAC", "factor_every", factor_every, minimum=1)
        self.inverse_every = check.integer("KFAC", "inverse_every", inverse_every, minimum=1)
        self.inverse = check.one_of("KFAC", "inverse", inverse, INVERSES)
        self.adaptive_damping = check.flag("KFAC", "adaptive_damping", adaptive_damping)
        self.damping_every = check.integer("KFAC", "damping_every", damping_every, minimum=1)
        self.likelihood = check.one_of("KFAC", "likelihood", likelihood, LIKELIHOODS)
        self.empirical = check.flag("KFAC", "empirical", empirical)
        self.fallback = check.one_of("KFAC", "fallback", fallback, ("sgd", "adam"))
        self.fallback_lr = (
            None
            if fallback_lr is None
            else check.real(
                "KFAC", "fallback_lr", fallback_lr, 0.0, math.inf, high_open=True, label="fallback learning rate"
            )
        )
        if seed is not None:
            seed = check.integer("KFAC", "seed", seed, minimum=0)
        self._generator = None if seed is None else np.random.default_rng(seed)
        self.layers = [
            module for module in model.modules() if isinstance(module, LAYERS) and module.weight.requires_grad
        ]
        self.layer_state: list[dict[str, np.ndarray]] = [{} for _ in self.layers]
        self.steps = 0
        #: The last adaptive-damping check: ``{"rho", "actual", "predicted", "damping"}`` (empty before one).
        self.damping_stats: dict[str, float] = {}
        self._loss: float | None = None
        self._recorder = LayerRecorder(self.layers).attach()
        self._recorder.record_grads = False

    # -- the sampled-label pass ---------------------------------------------------------------------------
    def backward(self, loss: Tensor, output: Tensor, targets: Any = None) -> None:
        """Backpropagate ``loss`` into ``.grad``, after updating the Kronecker factors when they are due.

        The factor update backpropagates :math:`\\sum_n -\\log p(\\hat y_n \\mid x_n)` with labels
        :math:`\\hat y` sampled from ``output`` (or ``targets`` when ``empirical=True``) through the graph of
        ``output``, recording each layer's output gradients; that pass leaves ``.grad`` alone.

        Parameters
        ----------
        loss : Tensor
            The training loss (a scalar computed from ``output``).
        output : Tensor
            The model's output for the batch (logits for ``categorical`` and ``bernoulli``), first axis N.
        targets : optional
            The true labels; needed only with ``empirical=True``.
        """
        if not isinstance(output, Tensor) or not output.requires_grad:
            raise GradientError("KFAC.backward: output must be the model's output tensor, computed with grad enabled")
        if not isinstance(loss, Tensor) or not loss.requires_grad:
            raise GradientError("KFAC.backward: loss must be a tensor that requires grad (computed from output)")
        if self.steps % self.factor_every == 0:
            self._update_factors(output, targets)
        self._recorder.clear()
        self._loss = float(loss.data)  # h(theta), for the adaptive damping's reduction ratio
        loss.backward()

    def _record_when_due(self) -> None:
        """Keep the layers' inputs and outputs only on the forwards whose backward updates the factors."""
        self._recorder.record_inputs = self.steps % self.factor_every == 0

    def _update_factors(self, output: Tensor, targets: Any) -> None:
        if self.likelihood == "categorical" and output.ndim != 2:
            raise ShapeError(f"KFAC.backward: categorical likelihood needs logits of shape (N, C), got {output.shape}")
        if self.empirical:
            if targets is None:
                raise ArgumentError("KFAC.backward: empirical=True uses the true labels; pass targets=")
            labels = targets
        else:
            generator = self._generator if self._generator is not None else rng.default_generator()
            labels = sample_labels(output.data, self.likelihood, generator)
        nll = _negative_log_likelihood(output, labels, self.likelihood)
        self._recorder.record_grads = True
        try:
            # Backpropagate only as far as the layers' outputs: their gradients g are all the factors need,
            # so the weight-gradient products of this pass are skipped.
            outputs = self._recorder.all_outputs()
            if outputs:
                grad(nll, outputs, retain_graph=True, allow_unused=True)
        finally:
            self._recorder.record_grads = False
        for layer, state in zip(self.layers, self.layer_state):
            pairs = self._recorder.pairs(layer)
            if not pairs:
                continue  # not used in this forward
            # Several calls of one layer count as more positions t of one call.
            inputs = np.concatenate([input_rows(layer, a) for a, _ in pairs], axis=1)
            grads = np.concatenate([output_grad_rows(layer, g) for _, g in pairs], axis=1)
            a_batch, g_batch = kfac_factors(inputs, grads, bias=self._has_bias(layer))
            rho = self.param_groups[0]["stat_decay"]
            if "A" not in state:
                state["A"], state["G"] = a_batch, g_batch
            else:
                state["A"] = rho * state["A"] + (1 - rho) * a_batch
                state["G"] = rho * state["G"] + (1 - rho) * g_batch

    @staticmethod
    def _has_bias(layer: Module) -> bool:
        return layer.bias is not None and layer.bias.requires_grad

    # -- the step ---------------------------------------------------------------------------------------
    def _update(self, group: dict[str, Any]) -> None:
        done: set[int] = set()
        if group is self.param_groups[0]:
            done = self._kfac_step(group)
            self.steps += 1
            self._record_when_due()
        # The parameters outside the preconditioned layers: plain Adam, or SGD with the group's momentum.
        rule, options = (adam_update, _ADAM_FALLBACK) if self.fallback == "adam" else (sgd_step, _momentum(group))
        lr = group["lr"] if self.fallback_lr is None else self.fallback_lr
        options = {**options, "lr": lr, "weight_decay": group["weight_decay"]}
        for p in group["params"]:
            if p.grad is None or id(p) in done:
                continue
            rule(p.data, p.grad.data, self.state.setdefault(p, {}), **options)

    def _kfac_step(self, group: dict[str, Any]) -> set[int]:
        """Precondition, KL-clip and apply the layers' updates; return the ids of the parameters it moved."""
        lr, weight_decay, damping = group["lr"], group["weight_decay"], group["damping"]
        refresh = self.steps % self.inverse_every == 0
        updates = []
        inner = 0.0
        for layer, state in zip(self.layers, self.layer_state):
            weight, bias = layer.weight, layer.bias if self._has_bias(layer) else None
            if weight.grad is None:
                continue
            if "A" not in state:
                raise GradientError(
                    f"KFAC.step: no curvature statistics for {type(layer).__name__}({layer.extra_repr()}) yet; "
                    "backpropagate with opt.backward(loss, output) instead of loss.backward()"
                )
            if self.inverse == "eigen":
                if refresh or "A_eigvecs" not in state:
                    state["A_eigvals"], state["A_eigvecs"] = factor_eigens(state["A"])
                    state["G_eigvals"], state["G_eigvecs"] = factor_eigens(state["G"])
            elif refresh or "A_inv" not in state:
                state["A_inv"], state["G_inv"] = damped_inverses(state["A"], state["G"], damping)
            rows = weight_matrix_shape(layer)
            gradient = weight.grad.data.reshape(rows) + weight_decay * weight.data.reshape(rows)
            if bias is not None:
                bias_grad = bias.grad.data if bias.grad is not None else np.zeros_like(bias.data)
                gradient = np.concatenate([gradient, (bias_grad + weight_decay * bias.data)[:, None]], axis=1)
            if self.inverse == "eigen":
                direction = eigen_precondition(
                    gradient,
                    (state["A_eigvals"], state["A_eigvecs"]),
                    (state["G_eigvals"], state["G_eigvecs"]),
                    damping,
                )
            else:
                direction = kfac_precondition(gradient, state["A_inv"], state["G_inv"])
            inner += float(np.sum(direction * gradient))
            updates.append((weight, bias, rows[1], direction))
        scale = kl_clip_scale(inner, lr, group["kl_clip"])
        momentum = _momentum(group)
        moved: set[int] = set()
        for weight, bias, width, direction in updates:
            direction = scale * direction
            pieces = [(weight, direction[:, :width].reshape(weight.shape))]
            if bias is not None:
                pieces.append((bias, direction[:, -1]))
            for param, step in pieces:
                state = self.state.setdefault(param, {})
                sgd_step(param.data, step.astype(param.dtype, copy=False), state, lr=lr, weight_decay=0.0, **momentum)
                moved.add(id(param))
        return moved

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update the parameters; with ``adaptive_damping=True``, also adapt the damping every ``damping_every``
        steps, which needs ``closure``.

        Parameters
        ----------
        closure : callable, optional
            Returns the training loss on the same batch at the parameters as they are when it is called
            (a forward pass only; it runs without grad). Unlike a closure for ``LBFGS`` it is called *after*
            the update, and only on the steps that adapt the damping: the loss at the new point
            :math:`h(\\theta + \\delta)`; :math:`h(\\theta)` is the loss given to :meth:`backward`. Required with
            ``adaptive_damping=True``, refused without it.

        Returns
        -------
        float or None
            The closure's loss when it was called, else None.

        Examples
        --------
        >>> import chainrule as cr
        >>> from chainrule import nn, optim
        >>> from chainrule.nn import functional as F
        >>> _ = cr.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
        >>> x = cr.randn(64, 2)
        >>> y = (x[:, 0] * x[:, 1] > 0).long()
        >>> opt = optim.KFAC(model, lr=0.1, damping=1.0, inverse="eigen", adaptive_damping=True, seed=0)
        >>> for _ in range(30):
        ...     output = model(x)
        ...     opt.zero_grad()
        ...     opt.backward(F.cross_entropy(output, y), output)
        ...     _ = opt.step(lambda: F.cross_entropy(model(x), y))
        >>> opt.param_groups[0]["damping"] < 1.0      # good steps: the damping came down
        True
        """
        if not self.adaptive_damping:
            if closure is not None:
                raise ArgumentError(
                    "KFAC.step: a closure is used only with adaptive_damping=True (it gives the loss after the step)"
                )
            return super().step()
        if closure is None or not callable(closure):
            raise ArgumentError(
                "KFAC.step: adaptive_damping=True needs step(closure), a closure returning the loss on the same "
                f"batch at the new parameters; got {type(closure).__name__}"
            )
        if self.steps % self.damping_every != 0:
            return super().step()
        if self._loss is None:
            raise GradientError("KFAC.step: no loss recorded; backpropagate with opt.backward(loss, output)")
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        before = [p.data.copy() for p in params]
        super().step()
        with no_grad():
            loss = closure()
        new_loss = float(loss.data if isinstance(loss, Tensor) else loss)
        self._adapt_damping(params, before, new_loss)
        return new_loss

    def _adapt_damping(self, params: list[Tensor], before: list[np.ndarray], new_loss: float) -> None:
        """Compute ρ for the step just taken (params moved from ``before``) and update λ by Levenberg–Marquardt."""
        assert self._loss is not None
        group = self.param_groups[0]
        damping, weight_decay = group["damping"], group["weight_decay"]
        deltas = {id(p): (p.data - old).astype(np.float64) for p, old in zip(params, before)}
        linear = 0.0
        for p in params:
            assert p.grad is not None  # params holds only parameters with a gradient
            linear += float(np.sum(p.grad.data * deltas[id(p)]))
        squared = sum(float(np.sum(d * d)) for d in deltas.values())
        curvature = 0.0
        for layer, state in zip(self.layers, self.layer_state):
            if id(layer.weight) not in deltas or "A" not in state:
                continue
            rows = weight_matrix_shape(layer)
            step = deltas[id(layer.weight)].reshape(rows)
            if self._has_bias(layer):
                bias_step = deltas.get(id(layer.bias), np.zeros(rows[0]))
                step = np.concatenate([step, bias_step[:, None]], axis=1)
            curvature += float(np.sum(step * (state["G"] @ step @ state["A"])))
        # Weight decay: h includes wd/2 |theta|^2, so its gradient and curvature join the model and the loss.
        decay_before = sum(float(np.sum(old.astype(np.float64) ** 2)) for old in before)
        decay_after = sum(float(np.sum(p.data.astype(np.float64) ** 2)) for p in params)
        linear += weight_decay * sum(float(np.sum(old * deltas[id(p)])) for p, old in zip(params, before))
        predicted = linear + 0.5 * (curvature + (damping + weight_decay) * squared)
        actual = new_loss - self._loss + 0.5 * weight_decay * (decay_after - decay_before)
        if predicted < 0 and math.isfinite(actual):
            rho = actual / predicted
        else:  # the model predicts no decrease, or the loss blew up: an untrustworthy step
            rho = -math.inf
        omega = (19 / 20) ** self.damping_every
        group["damping"] = levenberg_marquardt(damping, rho, omega)
        for other in self.param_groups[1:]:
            other["damping"] = group["damping"]
        self.damping_stats = {"rho": rho, "actual": actual, "predicted": predicted, "damping": group["damping"]}

    # -- state dicts ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state dict plus ``"kfac"``: the step count and each layer's factors and inverses."""
        saved = super().state_dict()
        saved["kfac"] = {
            "steps": self.steps,
            "damping_stats": dict(self.damping_stats),
            "layers": [{name: array.copy() for name, array in state.items()} for state in self.layer_state],
        }
        return saved

    def load_state_dict(self, state_dict: Any) -> None:
        """Restore what :meth:`state_dict` saved (the factors' shapes must match this model's layers)."""
        kfac = state_dict.get("kfac") if isinstance(state_dict, dict) else None
        if not isinstance(kfac, dict) or len(kfac.get("layers", ())) != len(self.layers):
            raise CheckpointError(
                f"KFAC.load_state_dict: expected a 'kfac' entry with the factors of {len(self.layers)} layers"
            )
        restored = []
        for layer, saved in zip(self.layers, kfac["layers"]):
            rows_out, rows_in = weight_matrix_shape(layer)
            rows_in += self._has_bias(layer)
            expected = {
                "A": (rows_in, rows_in),
                "A_inv": (rows_in, rows_in),
                "G": (rows_out,) * 2,
                "G_inv": (rows_out,) * 2,
                "A_eigvals": (rows_in,),
                "A_eigvecs": (rows_in, rows_in),
                "G_eigvals": (rows_out,),
                "G_eigvecs": (rows_out,) * 2,
            }
            state = {}
            for name, array in saved.items():
                array = np.asarray(array)
                if name not in expected or array.shape != expected[name]:
                    raise CheckpointError(
                        f"KFAC.load_state_dict: factor {name!r} of shape {array.shape} does not fit "
                        f"{type(layer).__name__}({layer.extra_repr()}), which needs {expected.get(name)}"
                    )
                state[name] = np.array(array)
            restored.append(state)
        super().load_state_dict(state_dict)
        self.layer_state = restored
        self.steps = check.integer("KFAC.load_state_dict", "steps", kfac.get("steps", 0), minimum=0)
        self._record_when_due()
        stats = kfac.get("damping_stats", {})
        try:
            self.damping_stats = {str(k): float(v) for k, v in dict(stats).items()}
        except (TypeError, ValueError) as error:
            raise CheckpointError(
                f"KFAC.load_state_dict: 'damping_stats' must map names to numbers, got {stats!r}"
            ) from error

    def remove_hooks(self) -> None:
        """Take K-FAC's hooks off the model (the optimizer cannot update factors afterwards)."""
        self._recorder.detach()
