"""The curvature of a loss over a model's parameters as linear operators: Hessian, generalised
Gauss-Newton, Fisher and empirical Fisher.

For a model :math:`f(x; \\theta)` with outputs :math:`f_n = f(x_n; \\theta)` (shape ``(N, C)``), per-sample
Jacobians :math:`J_n = \\partial f_n / \\partial \\theta` and a loss :math:`L = w \\sum_n \\ell(f_n, y_n)`
(the scaling convention of :mod:`chainrule.curvature.losses`: :math:`w = 1/N` for a mean cross-entropy):

- :func:`hessian`: :math:`H = \\nabla^2_\\theta L`; a product is forward-over-reverse.
- :func:`ggn`: :math:`G = \\sum_n J_n^\\top\\, \\nabla^2_{f_n} L\\, J_n`; a JVP, the output-space Hessian, a VJP.
- :func:`fisher`: :math:`F = w \\sum_n J_n^\\top\\, \\mathbb E_{y\\sim p(y|f_n)}
  [\\nabla_f\\ell\\,\\nabla_f\\ell^\\top]\\, J_n`; a JVP and a VJP of the losses at enumerated or sampled labels.
- :func:`empirical_fisher`: :math:`F_{\\rm emp} = w \\sum_n g_n g_n^\\top` with
  :math:`g_n = \\nabla_\\theta \\ell(f_n, y_n)`; a JVP and a VJP of the per-sample losses.

The Hessian splits as :math:`H = G + \\sum_n \\sum_c (\\partial L/\\partial f_{nc})\\, \\nabla^2_\\theta f_{nc}`:
the second term is weighted by the residuals, so :math:`H \\to G` as the fit becomes exact. For
cross-entropy and squared error (negative log-likelihoods of an exponential family in its natural
parameters) :math:`\\mathbb E_y[\\nabla_f\\ell\\,\\nabla_f\\ell^\\top] = \\nabla_f^2 \\ell`, so :math:`F = G`
exactly; the empirical Fisher uses the data's labels instead of the model's, and differs.

Every product runs the engine: :func:`chainrule.func.jvp` (forward mode) and :func:`chainrule.func.vjp`
(reverse mode) on the model evaluated at a flat parameter vector (:class:`ParameterSpace`). The operator
is a snapshot: it uses the parameter values at the time it was built. A model in training mode with
active dropout or batch normalisation is refused (``ArgumentError``): put it in ``eval()`` mode first, so
that every product sees the same function. So is a batch with NaN or Inf in ``x`` or ``y``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import func
from chainrule.curvature.linalg import check_seed
from chainrule.curvature.linear_operator import CurvatureOperator
from chainrule.curvature.losses import LossSpec, loss_spec, scalar_loss
from chainrule.curvature.params import ParameterSpace
from chainrule.errors import ArgumentError, ChainruleError
from chainrule.functions import as_tensor
from chainrule.nn.dropout import Dropout
from chainrule.nn.module import Module
from chainrule.nn.normalization import _BatchNorm
from chainrule.nn.recurrent import _RecurrentBase
from chainrule.tensor import Tensor, _wrap

__all__ = ["hessian", "ggn", "fisher", "empirical_fisher"]

_HVP_METHODS = ("forward-over-reverse", "reverse-over-reverse")


class _Problem:
    """A model, a loss and a batch, at the parameters' current values: the pieces every operator uses."""

    def __init__(self, owner: str, model: Module, loss: Any, x: Any, y: Any) -> None:
        self.owner = owner
        self.space = ParameterSpace(model)
        _check_deterministic(owner, model)
        self.spec: LossSpec = loss_spec(loss, owner)
        self.y = y
        self.theta = _wrap(self.space.vector())  # (P,)
        try:  # the model and the loss run once here, so a batch that does not fit fails now, naming the owner
            self.x = x if isinstance(x, Tensor) else as_tensor(np.asarray(x))
            _check_finite("x", self.x)
            if y is not None:
                _check_finite("y", y if isinstance(y, Tensor) else as_tensor(np.asarray(y)))
            self.output = self.space.call(self.theta, self.x).detach()  # (N, C)
            if self.output.ndim < 1 or self.output.shape[0] == 0:
                raise ArgumentError(f"the model's output has shape {self.output.shape}; need a batch (N, ...)")
            if not np.all(np.isfinite(self.output.data)):
                raise ArgumentError("the model's output on this batch has a non-finite value")
            if y is not None:
                scalar_loss(self.spec, owner, self.output, y)
        except ChainruleError as error:
            message = str(error)
            raise type(error)(message if message.startswith(f"{owner}:") else f"{owner}: {message}") from None

    def vector(self, v: np.ndarray) -> Tensor:
        return _wrap(np.asarray(v, dtype=self.space.dtype))

    def loss_of_theta(self, theta: Tensor) -> Tensor:
        return scalar_loss(self.spec, self.owner, self.space.call(theta, self.x), self.y)

    def output_of_theta(self, theta: Tensor) -> Tensor:
        return self.space.call(theta, self.x)


def _check_finite(name: str, value: Tensor) -> None:
    """NaN or Inf in the batch would turn every product into NaN: refuse it up front, with the count."""
    if value.dtype.kind == "f":
        bad = int(np.size(value.data) - np.count_nonzero(np.isfinite(value.data)))
        if bad:
            raise ArgumentError(f"{name} has {bad} non-finite value{'s' if bad > 1 else ''} (NaN or Inf)")


def _check_deterministic(owner: str, model: Module) -> None:
    """Refuse a model whose forward is random or changes state in training mode.

    The operators assume one fixed function: every product must see the same model. In ``train()`` mode a
    ``Dropout`` draws a new mask per product (a random, non-symmetric "matrix" on which Lanczos and CG give
    wrong numbers), a recurrent layer's inter-layer dropout does the same, and a ``BatchNorm`` that tracks
    running statistics overwrites them on every product. Refusing (rather than warning) is the safe
    choice: ``model.eval()`` gives the deterministic function the curvature is meant for.
    """
    for name, module in model.named_modules():
        if not module.training:
            continue
        if isinstance(module, Dropout) and module.p > 0:
            why = "draws a new dropout mask for every product, so the operator would not be one matrix"
        elif isinstance(module, _RecurrentBase) and module.dropout > 0 and module.num_layers > 1:
            why = "applies dropout between its layers for every product, so the operator would not be one matrix"
        elif isinstance(module, _BatchNorm) and module.track_running_stats:
            why = "normalises with batch statistics and overwrites its running statistics on every product"
        else:
            continue
        where = f" at {name!r}" if name else ""
        raise ArgumentError(
            f"{owner}: {type(module).__name__}{where} is in training mode: it {why}; call model.eval() first"
        )


def _check_batch(x: Any, y: Any, owner: str) -> None:
    if x is None or y is None:
        raise ArgumentError(f"{owner}: needs a batch: inputs x and targets y")


def hessian(model: Module, loss_fn: Any, x: Any, y: Any, *, method: str = "forward-over-reverse") -> CurvatureOperator:
    """The Hessian :math:`H = \\nabla_\\theta^2 L(\\theta)` of the loss on a batch, as a linear operator.

    A product :math:`Hv` is a directional derivative of the gradient: with
    ``method="forward-over-reverse"`` (the default) one forward-mode sweep (:func:`chainrule.func.jvp`)
    through the reverse-mode gradient (:func:`chainrule.func.grad`), about the cost of two gradients;
    ``"reverse-over-reverse"`` uses :func:`chainrule.func.hvp` (the gradient of :math:`\\langle\\nabla L, v\\rangle`).
    Both are exact; the first needs no second backward graph.

    Parameters
    ----------
    model : Module
        Its trainable parameters, flattened (``named_parameters()`` order), are the :math:`P` coordinates.
    loss_fn : loss module, loss name or callable
        ``loss_fn(model(x), y)`` must be one number (any loss; its reduction is part of :math:`L`).
    x, y :
        The batch: inputs ``(N, ...)`` and targets.
    method : str
        ``"forward-over-reverse"`` or ``"reverse-over-reverse"``.

    Returns
    -------
    CurvatureOperator
        Shape ``(P, P)``, symmetric, possibly indefinite.

    Examples
    --------
    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn
    >>> model = nn.Linear(2, 1, dtype=np.float64)
    >>> x, y = np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[1.0], [0.0]])
    >>> H = hessian(model, nn.MSELoss(reduction="sum"), x, y)  # least squares: H = 2 [x 1]ᵀ[x 1]
    >>> H.to_dense().tolist()
    [[2.0, 0.0, 2.0], [0.0, 8.0, 4.0], [2.0, 4.0, 4.0]]
    """
    owner = "hessian"
    _check_batch(x, y, owner)
    if method not in _HVP_METHODS:
        raise ArgumentError(f"hessian: method must be one of {', '.join(_HVP_METHODS)}, got {method!r}")
    problem = _Problem(owner, model, loss_fn, x, y)
    gradient = func.grad(problem.loss_of_theta)

    def forward_over_reverse(v: np.ndarray) -> np.ndarray:
        _, product = func.jvp(gradient, (problem.theta,), (problem.vector(v),))
        return product.data

    def reverse_over_reverse(v: np.ndarray) -> np.ndarray:
        _, (product,) = func.hvp(problem.loss_of_theta, (problem.theta,), (problem.vector(v),))
        return product.data

    matvec = forward_over_reverse if method == "forward-over-reverse" else reverse_over_reverse
    return CurvatureOperator("Hessian", matvec, problem.space)


def ggn(model: Module, loss_fn: Any, x: Any, y: Any) -> CurvatureOperator:
    """The generalised Gauss-Newton matrix :math:`G = J^\\top (\\nabla_f^2 L)\\, J` as a linear operator.

    :math:`J = \\partial f / \\partial\\theta` is the Jacobian of the whole batch's output (shape
    ``(N·C, P)``) and :math:`\\nabla_f^2 L` the loss's Hessian with respect to the output (block diagonal
    over samples: :math:`w(\\operatorname{diag}(p_n) - p_n p_n^\\top)` for cross-entropy, :math:`2w I` for
    squared error). A product :math:`Gv` is three steps through the engine: the JVP :math:`u = Jv`
    (forward mode), :math:`(\\nabla^2_f L)\\,u` (forward-over-reverse on the loss alone, so no formula per
    loss is needed), and the VJP :math:`J^\\top(\\cdot)` (reverse mode). :math:`G` is positive
    semi-definite for a loss convex in the output; it drops the Hessian's residual-weighted term.

    Parameters
    ----------
    model, loss_fn, x, y :
        As in :func:`hessian`; any loss that reduces to one number.

    Returns
    -------
    CurvatureOperator
        Shape ``(P, P)``, rank at most :math:`N C`.

    Examples
    --------
    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn
    >>> _ = cr.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(2, 3, dtype=np.float64), nn.Tanh(), nn.Linear(3, 2, dtype=np.float64))
    >>> x, y = np.array([[1.0, -1.0], [0.5, 2.0]]), np.array([0, 1])
    >>> G = ggn(model, nn.CrossEntropyLoss(), x, y)
    >>> G.shape, int(np.linalg.matrix_rank(G.to_dense()))   # N·(C−1) = 2: softmax ignores a shift
    ((17, 17), 2)
    """
    owner = "ggn"
    _check_batch(x, y, owner)
    problem = _Problem(owner, model, loss_fn, x, y)
    _, pullback = func.vjp(problem.output_of_theta, problem.theta)
    output_gradient = func.grad(lambda output: scalar_loss(problem.spec, owner, output, problem.y))

    def matvec(v: np.ndarray) -> np.ndarray:
        _, jv = func.jvp(problem.output_of_theta, (problem.theta,), (problem.vector(v),))  # (N, C)
        _, hjv = func.jvp(output_gradient, (problem.output,), (jv,))  # (N, C)
        (product,) = pullback(hjv)
        return product.data

    return CurvatureOperator("GGN", matvec, problem.space)


def _outer_products(
    name: str, problem: _Problem, rows: np.ndarray, labels: Any, weights: np.ndarray
) -> CurvatureOperator:
    """:math:`w \\sum_k c_k\\, g_k g_k^\\top` with :math:`g_k = \\nabla_\\theta \\ell(f_{r_k}(\\theta), y_k)`.

    With :math:`\\ell(\\theta) = (\\ell_1, \\dots, \\ell_K)` (shape ``(K,)``) and its Jacobian
    :math:`J_\\ell` (rows :math:`g_k^\\top`), a product is :math:`J_\\ell^\\top (w\\, c \\odot J_\\ell v)`: one JVP
    and one VJP, no per-sample gradient is formed.
    """
    scale = problem.spec.weight(problem.output.shape) * weights  # (K,)

    def per_sample_losses(theta: Tensor) -> Tensor:
        output = problem.output_of_theta(theta)  # (N, C)
        return problem.spec.per_sample(output[rows], labels)  # (K,)

    _, pullback = func.vjp(per_sample_losses, problem.theta)

    def matvec(v: np.ndarray) -> np.ndarray:
        _, directional = func.jvp(per_sample_losses, (problem.theta,), (problem.vector(v),))  # (K,) = J_ℓ v
        (product,) = pullback(_wrap((scale * directional.data).astype(problem.space.dtype)))
        return product.data

    return CurvatureOperator(name, matvec, problem.space)


def fisher(
    model: Module, loss_fn: Any, x: Any, y: Any = None, *, mc_samples: int | None = None, seed: int = 0
) -> CurvatureOperator:
    """The (true) Fisher information :math:`F = w \\sum_n J_n^\\top\\, \\mathbb E_{y \\sim p(y \\mid f_n)}
    [\\nabla_f \\ell\\, \\nabla_f \\ell^\\top]\\, J_n` of the model's predictive distribution, as an operator.

    The labels are the model's own, not the data's: for ``CrossEntropyLoss`` :math:`p = \\mathrm{softmax}(f_n)`,
    for ``MSELoss`` :math:`\\mathcal N(f_n, \\tfrac12 I)` (the distributions whose negative log-likelihood the
    loss is). With ``mc_samples=None`` the expectation is exact: every class weighted by its probability,
    or for the Gaussian :math:`2D` points :math:`f_n \\pm \\sqrt{D/2}\\, e_d` that carry its mean and
    covariance exactly (enough, as :math:`\\nabla_f\\ell` is linear in :math:`y`). With ``mc_samples=M``
    it is a Monte-Carlo average over :math:`M` labels per sample drawn with ``seed`` — the unbiased,
    rank-:math:`NM` estimate K-FAC-style methods use. For these two losses the exact Fisher equals the
    GGN (see the module docstring); here it is computed from its own definition, so that equality is a
    result, not an assumption.

    Parameters
    ----------
    model, loss_fn, x :
        As in :func:`hessian`; ``loss_fn`` must be ``CrossEntropyLoss`` (without class weights or label
        smoothing) or ``MSELoss``, with reduction ``"mean"`` or ``"sum"`` (the weight :math:`w`).
    y : optional
        The targets; unused by the Fisher (accepted so that every operator takes the same arguments).
    mc_samples : int, optional
        Sampled labels per sample; None for the exact expectation.
    seed : int
        Seeds the sampled labels (a non-negative integer).

    Returns
    -------
    CurvatureOperator
        Shape ``(P, P)``, positive semi-definite.

    Examples
    --------
    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn
    >>> _ = cr.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(2, 3, dtype=np.float64), nn.Tanh(), nn.Linear(3, 2, dtype=np.float64))
    >>> x, y = np.array([[1.0, -1.0], [0.5, 2.0]]), np.array([0, 1])
    >>> F, G = fisher(model, nn.CrossEntropyLoss(), x, y), ggn(model, nn.CrossEntropyLoss(), x, y)
    >>> bool(np.allclose(F.to_dense(), G.to_dense(), atol=1e-14))
    True
    """
    owner = "fisher"
    if x is None:
        raise ArgumentError("fisher: needs the inputs x")
    problem = _Problem(owner, model, loss_fn, x, y)
    problem.spec.require_family(owner)
    problem.spec.check_batch(owner, problem.output.data)
    if mc_samples is not None and (
        isinstance(mc_samples, bool) or not isinstance(mc_samples, (int, np.integer)) or mc_samples < 1
    ):
        raise ArgumentError(f"fisher: mc_samples must be a positive integer or None, got {mc_samples!r}")
    generator = np.random.default_rng(check_seed("fisher", seed))
    rows, labels, weights = problem.spec.expected_labels(problem.output.data, mc_samples, generator)
    name = "Fisher" if mc_samples is None else f"Fisher (MC, {mc_samples} samples)"
    return _outer_products(name, problem, rows, labels, weights)


def empirical_fisher(model: Module, loss_fn: Any, x: Any, y: Any) -> CurvatureOperator:
    """The empirical Fisher :math:`F_{\\rm emp} = w \\sum_n g_n g_n^\\top` with
    :math:`g_n = \\nabla_\\theta \\ell(f(x_n;\\theta), y_n)`, the per-sample gradients at the data's labels.

    For a mean cross-entropy :math:`w = 1/N`, so :math:`F_{\\rm emp} = \\frac1N\\sum_n g_n g_n^\\top`. It is
    not the Fisher: it uses the data's labels rather than the model's predictive distribution, and
    vanishes where every sample is fit perfectly, while the Fisher does not. Products need no per-sample
    gradients: :math:`F_{\\rm emp} v = J_\\ell^\\top (w\\, J_\\ell v)` with :math:`J_\\ell` the Jacobian of the
    vector of per-sample losses — one JVP and one VJP.

    Parameters
    ----------
    model, loss_fn, x, y :
        As in :func:`fisher` (``CrossEntropyLoss`` or ``MSELoss``); ``y`` are the data's targets.

    Returns
    -------
    CurvatureOperator
        Shape ``(P, P)``, positive semi-definite, rank at most :math:`N`.

    Examples
    --------
    >>> import numpy as np
    >>> from chainrule import nn
    >>> model = nn.Linear(1, 1, dtype=np.float64)
    >>> with __import__("chainrule").no_grad():
    ...     _ = model.weight.fill_(0.0), model.bias.fill_(0.0)
    >>> E = empirical_fisher(model, nn.MSELoss(reduction="sum"), np.array([[1.0], [2.0]]), np.array([[1.0], [1.0]]))
    >>> E.to_dense().tolist()      # g_n = −2 y_n [x_n, 1]: (4·[1,1]ᵀ[1,1] + 4·[2,1]ᵀ[2,1])
    [[20.0, 12.0], [12.0, 8.0]]
    """
    owner = "empirical_fisher"
    _check_batch(x, y, owner)
    problem = _Problem(owner, model, loss_fn, x, y)
    problem.spec.require_family(owner)
    problem.spec.check_batch(owner, problem.output.data, y)
    count = problem.output.shape[0]
    return _outer_products("empirical Fisher", problem, np.arange(count), y, np.ones(count))
