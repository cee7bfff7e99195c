"""One training step of a small fully-connected network, every number of it, from the real engine.

:func:`trace` runs one forward pass, the loss, one backward pass and one SGD step of an
``nn.Sequential`` of ``nn.Linear`` layers (each optionally followed by an elementwise activation) on a
float64 copy of the model, and records what the engine computed. For layer :math:`l` with input
:math:`a^{l-1}`, weights :math:`W^l` and bias :math:`b^l`:

.. math::
    \\mathrm{net}^l = W^l a^{l-1} + b^l, \\qquad \\mathrm{out}^l = f(\\mathrm{net}^l), \\qquad
    \\delta^l_j = \\frac{\\partial E}{\\partial \\mathrm{out}^l_j}\\,
                   \\frac{\\partial \\mathrm{out}^l_j}{\\partial \\mathrm{net}^l_j}

and the chain rule gives each gradient as a product of three numbers, with the error of a hidden
neuron summed over the paths through the neurons it feeds:

.. math::
    \\frac{\\partial E}{\\partial W^l_{ji}} = \\delta^l_j\\, a^{l-1}_i, \\qquad
    \\frac{\\partial E}{\\partial b^l_j} = \\delta^l_j, \\qquad
    \\frac{\\partial E}{\\partial \\mathrm{out}^{l}_j} = \\sum_k \\delta^{l+1}_k W^{l+1}_{kj}.

Nothing here re-derives a formula: :math:`\\partial E/\\partial \\mathrm{out}` and
:math:`\\partial E/\\partial \\mathrm{net}` come from :func:`chainrule.autograd.grad` on the real
intermediate tensors, :math:`\\partial \\mathrm{out}/\\partial \\mathrm{net}` from the Jacobian of the
activation module (which must be diagonal), the gradients from ``loss.backward()``, and the new values
from :class:`chainrule.optim.SGD`. The products above are then checked against the engine; a mismatch
raises :class:`~chainrule.errors.GradientError` (it would be a bug).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from chainrule import autograd, func, nn, optim
from chainrule.errors import ArgumentError, GradientError, ShapeError
from chainrule.explain import tables
from chainrule.nn import functional as F
from chainrule.nn.registry import CLASS_INDEX_LOSSES as _CLASS_INDEX_LOSSES
from chainrule.nn.registry import LOSS_FORMULAS as LOSSES  # the loss names trace accepts, with their formulas
from chainrule.tensor import Tensor

__all__ = ["LOSSES", "ForwardRow", "LossTerm", "BackwardRow", "Trace", "trace", "train_steps"]

# Layers that are not an elementwise map of one sample's features (they fail the trace's model check).
_STRUCTURAL = (
    nn.Sequential,
    nn.ModuleList,
    nn.ModuleDict,
    nn.Conv1d,
    nn.Conv2d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Dropout,
    nn.Flatten,
    nn.Unflatten,
    nn.Embedding,
    nn.RNN,
    nn.LSTM,
    nn.GRU,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.LayerNorm,
    nn.Softmax,
)
_RTOL, _ATOL = 1e-9, 1e-12


# ---------------------------------------------------------------------------------------------------
# The record: one row per neuron (forward), per output (loss), per weight and bias (backward)
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ForwardRow:
    """One neuron of the forward pass: ``net = Σ weights·inputs + bias`` and ``out = activation(net)``.

    ``layer`` counts the ``nn.Linear`` layers from 1, ``neuron`` is the 0-based row of the weight matrix;
    ``bias`` is None for a layer without bias.
    """

    layer: int
    neuron: int
    label: str
    input_labels: tuple[str, ...]
    inputs: tuple[float, ...]
    weight_labels: tuple[str, ...]
    weights: tuple[float, ...]
    bias_label: str | None
    bias: float | None
    net: float
    activation: str
    out: float


@dataclass(frozen=True)
class LossTerm:
    """One output's share of the loss (the terms sum to :attr:`Trace.loss`)."""

    output: int
    label: str
    target: float
    out: float
    term: float


@dataclass(frozen=True)
class BackwardRow:
    """One parameter: :math:`\\partial E/\\partial p = \\partial E/\\partial out \\cdot \\partial out/\\partial net
    \\cdot \\partial net/\\partial p` and its SGD update.

    ``key`` is the canonical name (``L2.w[0,1]``: layer 2, row 0, column 1; ``L1.b[0]``), ``name`` the label
    shown (the key's short form ``w[0,1]`` unless renamed). ``dnet_dparam`` is the input feeding the weight,
    or 1 for a bias. ``paths`` is the fan-out of a hidden neuron (how many downstream neurons' errors sum
    into its ``de_dout``) with those contributions :math:`\\delta^{l+1}_k W^{l+1}_{kj}` in ``path_terms``;
    None and ``()`` for an output neuron. ``new`` equals ``old`` for a ``frozen`` parameter.
    """

    layer: int
    neuron: int
    neuron_label: str
    kind: str
    index: tuple[int, ...]
    key: str
    name: str
    source: str
    de_dout: float
    dout_dnet: float
    dnet_dparam: float
    grad: float
    paths: int | None
    path_terms: tuple[float, ...]
    old: float
    new: float
    frozen: bool


@dataclass
class Trace:
    """The record of one training step, with text, Markdown, HTML and JSON views.

    Attributes
    ----------
    forward_rows : list of ForwardRow
        One row per neuron, layer by layer.
    loss_terms : list of LossTerm
        One row per output (empty for a loss given as a callable); they sum to ``loss``.
    loss : float
        The loss :math:`E` before the step.
    loss_name, loss_formula : str
        The loss as named, and its formula.
    backward_rows : list of BackwardRow
        One row per weight and bias, in backward order (last layer first).
    lr : float
        The learning rate of the SGD step.
    freeze_bias, applied : bool
        Whether biases were kept fixed, and whether the new values were written into the model.
    errors_after : dict of int to float
        The error after N steps, for each N asked of :meth:`step_losses` (shown by the renderers).
    """

    forward_rows: list[ForwardRow]
    loss_terms: list[LossTerm]
    loss: float
    loss_name: str
    loss_formula: str
    backward_rows: list[BackwardRow]
    lr: float
    freeze_bias: bool
    applied: bool
    errors_after: dict[int, float] = field(default_factory=dict)
    _replay: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def step_losses(self, steps: int) -> list[float]:
        """Train a fresh float64 copy of the traced model (as it was before the step) for ``steps`` steps.

        Returns ``steps + 1`` losses: before the first step and after each; the last one is also kept in
        :attr:`errors_after` so the renderers show it.
        """
        losses = train_steps(steps=steps, **self._replay)
        self.errors_after[int(steps)] = losses[-1]
        return losses

    # -- views -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-able Python objects (floats at full precision)."""
        return {
            "loss_name": self.loss_name,
            "loss_formula": self.loss_formula,
            "loss": self.loss,
            "lr": self.lr,
            "freeze_bias": self.freeze_bias,
            "applied": self.applied,
            "forward": [asdict(row) for row in self.forward_rows],
            "loss_terms": [asdict(row) for row in self.loss_terms],
            "backward": [asdict(row) for row in self.backward_rows],
            "errors_after": {str(steps): error for steps, error in self.errors_after.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as strict JSON; ``json.loads`` gives back the same numbers, except that an infinite or
        NaN value (an overflow) is the string ``"inf"``, ``"-inf"`` or ``"nan"``, which ``float()`` reads."""
        return tables.to_json(self.to_dict(), indent=indent)

    def to_text(self, digits: int = 9) -> str:
        """Aligned plain-text tables for a terminal, numbers to ``digits`` significant digits."""
        return tables.render_text(self._tables(digits))

    def to_markdown(self, digits: int = 9) -> str:
        """Markdown: a heading and a pipe table per table."""
        return tables.render_markdown(self._tables(digits))

    def to_html(self, digits: int = 9) -> str:
        """HTML tables (every cell escaped), for notebooks and web pages."""
        return tables.render_html(self._tables(digits), css_class="chainrule-trace")

    def _repr_html_(self) -> str:
        return self.to_html()

    def __str__(self) -> str:
        return self.to_text()

    def _tables(self, digits: int) -> list[tables.Table]:
        """The tables every renderer shows: (title, headers, rows of cell strings)."""

        def num(value: float | None) -> str:
            return "—" if value is None else tables.number(value, digits)

        forward = []
        for row in self.forward_rows:
            symbols = [f"{w}·{i}" for w, i in zip(row.weight_labels, row.input_labels)]
            numbers = [
                f"{tables.factor(w, digits)}×{tables.factor(i, digits)}" for w, i in zip(row.weights, row.inputs)
            ]
            if row.bias is not None:
                symbols.append(str(row.bias_label))
                numbers.append(num(row.bias))
            forward.append(
                [str(row.layer), row.label, " + ".join(symbols), " + ".join(numbers), num(row.net), row.activation]
                + [num(row.out)]
            )
        headers = ["layer", "neuron", "net = Σ w·in + b", "with numbers", "net", "f", "out"]
        sections = [("Forward pass: net = Σ w·in + b, out = f(net)", headers, forward)]

        loss_rows = [[t.label, num(t.target), num(t.out), num(t.term)] for t in self.loss_terms]
        loss_rows.append(["total", "", "", num(self.loss)])
        sections.append((f"Loss: {self.loss_formula}", ["output", "target", "out", "term"], loss_rows))

        backward = []
        for param in self.backward_rows:
            backward.append(
                [
                    str(param.layer),
                    param.neuron_label,
                    param.name,
                    num(param.de_dout),
                    "" if param.paths is None else str(param.paths),
                ]
                + [num(param.dout_dnet), num(param.dnet_dparam), num(param.grad)]
            )
        sections.append(
            (
                "Backward pass: ∂E/∂p = ∂E/∂out · ∂out/∂net · ∂net/∂p (paths: downstream neurons summed into ∂E/∂out)",
                ["layer", "neuron", "param", "∂E/∂out", "paths", "∂out/∂net", "∂net/∂p", "∂E/∂p"],
                backward,
            )
        )

        update = []
        for param in self.backward_rows:
            new = "(frozen)" if param.frozen else num(param.new)
            update.append([str(param.layer), param.name, num(param.old), num(param.grad), new])
        sections.append(
            (
                f"SGD step: new = old − lr · ∂E/∂p, lr = {num(self.lr)}",
                ["layer", "param", "old", "∂E/∂p", "new"],
                update,
            )
        )
        if self.errors_after:
            steps_rows = [[str(steps), num(error)] for steps, error in sorted(self.errors_after.items())]
            sections.append(("Training on: the error after N steps", ["steps", "E"], steps_rows))
        return sections


# ---------------------------------------------------------------------------------------------------
# Checking the model and the data
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Layer:
    linear: nn.Linear
    activation: nn.Module | None
    position: int  # where the Linear sits in the Sequential


def _layers(model: Any) -> list[_Layer]:
    """Split ``model`` into Linear layers, each with at most one elementwise activation after it."""
    if isinstance(model, nn.Linear):
        return [_Layer(model, None, 0)]
    if not isinstance(model, nn.Sequential):
        raise ArgumentError(
            f"explain.trace: expected an nn.Sequential of nn.Linear layers and activations, got {type(model).__name__}"
        )
    layers: list[_Layer] = []
    for position, module in enumerate(model):
        name = f"module {position} ({type(module).__name__})"
        if isinstance(module, nn.Linear):
            if layers and layers[-1].linear.out_features != module.in_features:
                raise ShapeError(
                    f"explain.trace: {name} expects {module.in_features} inputs but layer {len(layers)} "
                    f"gives {layers[-1].linear.out_features}"
                )
            layers.append(_Layer(module, None, position))
            continue
        if isinstance(module, _STRUCTURAL) or any(True for _ in module.parameters()):
            raise ArgumentError(
                f"explain.trace: {name} is not supported; trace handles nn.Linear layers, each optionally "
                "followed by one elementwise activation (Sigmoid, Tanh, ReLU, ...)"
            )
        if not layers:
            raise ArgumentError(
                f"explain.trace: {name} comes before the first nn.Linear; the model must start with one"
            )
        if layers[-1].activation is not None:
            raise ArgumentError(
                f"explain.trace: {name} follows another activation; use at most one activation per nn.Linear"
            )
        layers[-1].activation = module
    if not layers:
        raise ArgumentError("explain.trace: the model has no nn.Linear layer")
    return layers


def _sample(x: Any, first: nn.Linear) -> np.ndarray:
    array = np.array(x, dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[0] != 1:
        raise ShapeError(f"explain.trace: x must be one sample, shape (n,) or (1, n); got shape {np.shape(x)}")
    if array.shape[1] != first.in_features:
        raise ShapeError(
            f"explain.trace: layer 1 (Linear({first.extra_repr()})) expects {first.in_features} inputs, "
            f"got x of shape {np.shape(x)}"
        )
    if not np.isfinite(array).all():
        raise ArgumentError("explain.trace: x has a non-finite value")
    return array  # (1, n)


def _target(target: Any, last: nn.Linear, n_layers: int, class_index: bool) -> np.ndarray:
    where = f"the last layer (layer {n_layers}, Linear({last.extra_repr()}))"
    if class_index:
        array = np.ravel(np.asarray(target))
        value = array[0] if array.size == 1 else None
        if value is None or float(value) != int(value) or not 0 <= int(value) < last.out_features:
            raise ArgumentError(
                f"explain.trace: the target must be one class index in [0, {last.out_features}) for {where}, "
                f"got {target!r}"
            )
        return np.array([int(value)], dtype=np.int64)  # (1,)
    array = np.atleast_1d(np.array(target, dtype=np.float64))
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1 or array.shape[0] != last.out_features:
        raise ShapeError(
            f"explain.trace: target has shape {np.shape(target)} but {where} has {last.out_features} "
            f"output{'s' if last.out_features != 1 else ''}; expected shape ({last.out_features},)"
        )
    if not np.isfinite(array).all():
        raise ArgumentError("explain.trace: target has a non-finite value")
    return array.reshape(1, -1)  # (1, m)


def _loss(loss: Any) -> tuple[str, str, Callable[[Tensor, Tensor], Tensor], Callable | None, bool]:
    """(name, formula, E(out, target), per-output terms(out, target) or None, whether targets are indices)."""
    if isinstance(loss, str):
        if loss == "mse":
            return loss, LOSSES[loss], F.mse_loss, lambda o, t: F.mse_loss(o, t, "none") / o.shape[-1], False
        if loss == "sse":
            return (
                loss,
                LOSSES[loss],
                lambda o, t: F.mse_loss(o, t, "sum"),
                lambda o, t: F.mse_loss(o, t, "none"),
                False,
            )
        if loss == "half_sse":
            return (
                loss,
                LOSSES[loss],
                lambda o, t: 0.5 * F.mse_loss(o, t, "sum"),
                lambda o, t: 0.5 * F.mse_loss(o, t, "none"),
                False,
            )
        if loss == "bce":
            terms = lambda o, t: F.binary_cross_entropy(o, t, reduction="none") / o.shape[-1]  # noqa: E731
            return loss, LOSSES[loss], F.binary_cross_entropy, terms, False
        if loss == "cross_entropy":
            terms = lambda o, t: -F.log_softmax(o, -1) * np.eye(o.shape[-1])[t.data]  # noqa: E731
            return loss, LOSSES[loss], F.cross_entropy, terms, True
        raise ArgumentError(
            f"explain.trace: unknown loss {loss!r}; choose one of {', '.join(LOSSES)} or pass a callable"
        )
    if callable(loss):
        name = type(loss).__name__ if isinstance(loss, nn.Module) else getattr(loss, "__name__", "loss")
        return name, f"E = {name}(out, target)", loss, None, isinstance(loss, _CLASS_INDEX_LOSSES)
    raise ArgumentError(f"explain.trace: loss must be a name ({', '.join(LOSSES)}) or a callable, got {loss!r}")


@dataclass(frozen=True)
class _Setup:
    """What :func:`trace` and :func:`train_steps` work on, validated."""

    work: nn.Module  # the float64 deep copy of the user's model
    layers: list[_Layer]  # its Linear layers, each with its activation
    x: np.ndarray  # (1, n) float64
    target: np.ndarray  # (1, m) float64, or (1,) int64 class index
    loss_name: str
    formula: str
    loss_fn: Callable[[Tensor, Tensor], Tensor]  # E(out, target)
    terms_fn: Callable[[Tensor, Tensor], Tensor] | None  # each output's share of E, None for a callable loss


def _prepare(model: Any, x: Any, target: Any, loss: Any, lr: float) -> _Setup:
    """Validate everything and return the float64 working copy with its layers and the data."""
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
        raise ArgumentError(f"explain.trace: lr must be a finite number >= 0, got {lr!r}")
    _layers(model)  # errors name the user's modules before anything is copied
    work = copy.deepcopy(model).double()
    work.zero_grad()  # a model in the middle of training carries .grad; the traced step must start from none
    layers = _layers(work)
    name, formula, loss_fn, terms_fn, class_index = _loss(loss)
    return _Setup(
        work=work,
        layers=layers,
        x=_sample(x, layers[0].linear),
        target=_target(target, layers[-1].linear, len(layers), class_index),
        loss_name=name,
        formula=formula,
        loss_fn=loss_fn,
        terms_fn=terms_fn,
    )


def _scalar_loss(loss_fn: Callable, out: Tensor, target: Tensor) -> Tensor:
    value = loss_fn(out, target)
    if not isinstance(value, Tensor) or value.data.size != 1:
        raise ArgumentError(f"explain.trace: the loss must return a scalar tensor, got {value!r}")
    return value.reshape(())


def _check(name: str, engine: np.ndarray, product: np.ndarray) -> None:
    """The chain-rule product must equal what the engine computed (a mismatch is a bug in chainrule)."""
    if not np.allclose(engine, product, rtol=_RTOL, atol=_ATOL):
        raise GradientError(
            f"explain.trace: {name}: the chain-rule product {np.asarray(product).tolist()} differs from the "
            f"engine's {np.asarray(engine).tolist()}; this is a bug in chainrule, please report it"
        )


# ---------------------------------------------------------------------------------------------------
# trace and train_steps
# ---------------------------------------------------------------------------------------------------
def trace(
    model: Any,
    x: Any,
    target: Any,
    *,
    loss: str | Callable[..., Any] = "mse",
    lr: float = 0.1,
    names: Mapping[str, str] | None = None,
    freeze_bias: bool = False,
    apply: bool = False,
) -> Trace:
    """Record one training step (forward, loss, backward, SGD update) of a small fully-connected model.

    Parameters
    ----------
    model : nn.Sequential or nn.Linear
        ``nn.Linear`` layers, each optionally followed by one elementwise activation module (Sigmoid, Tanh,
        ReLU, LeakyReLU, GELU, Identity, or your own). It is not modified unless ``apply=True``: the step
        runs on a float64 deep copy.
    x : array_like
        One sample, shape ``(n,)`` or ``(1, n)`` with ``n`` the first layer's ``in_features``.
    target : array_like or int
        Shape ``(m,)`` with ``m`` the last layer's ``out_features``, or a class index for
        ``"cross_entropy"`` (and ``nn.CrossEntropyLoss``/``NLLLoss``/``MultiMarginLoss`` modules).
    loss : str or callable
        ``"mse"`` (mean), ``"half_sse"`` (:math:`E = \\frac12\\sum (t - o)^2`, the textbook loss), ``"sse"``,
        ``"bce"``, ``"cross_entropy"`` (from logits), or a callable ``loss(out, target) -> scalar Tensor``
        given ``out`` of shape ``(1, m)`` and the target as a tensor of shape ``(1, m)`` (``(1,)`` for indices).
    lr : float
        Learning rate of the step :math:`p \\leftarrow p - \\eta\\,\\partial E/\\partial p`.
    names : mapping, optional
        Labels for the tables, keyed by canonical name: ``"x[0]"`` (input), ``"L1[0]"`` (neuron 0 of layer
        1), ``"L1.w[0,1]"`` (row 0, column 1 of layer 1's weight), ``"L1.b[0]"`` (bias).
    freeze_bias : bool
        Keep every bias fixed (as the classic worked example does); its gradient is still shown.
    apply : bool
        Write the new values into ``model`` (in its own dtype).

    Returns
    -------
    Trace
        The rows of the forward pass, the loss terms and the backward pass, with renderers.

    Raises
    ------
    ArgumentError
        A module that is not a Linear or an elementwise activation, an unknown loss, a bad class index.
    ShapeError
        ``x`` or ``target`` of the wrong size (the message names the layer and the shapes).

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> from chainrule.explain import trace
    >>> model = nn.Sequential(nn.Linear(2, 1), nn.Sigmoid())
    >>> with cr.no_grad():
    ...     _ = model[0].weight.copy_([[0.5, -0.5]]), model[0].bias.fill_(0.0)
    >>> t = trace(model, [1.0, 0.0], [1.0], loss="half_sse", lr=1.0)
    >>> row = t.backward_rows[0]
    >>> row.name, round(row.de_dout, 4), round(row.dout_dnet, 4), row.dnet_dparam, round(row.grad, 4)
    ('w[0,0]', -0.3775, 0.235, 1.0, -0.0887)
    >>> round(row.new, 4), float(model[0].weight.data[0, 0])  # the model itself is unchanged
    (0.5887, 0.5)
    """
    setup = _prepare(model, x, target, loss, lr)
    layers = setup.layers
    labels = _labels(layers, names)

    # 1. The forward pass on real tensors, keeping each layer's input, net (pre-activation) and out.
    target_tensor = Tensor(setup.target)  # (1, m), or (1,) of class indices
    passes = _forward(layers, Tensor(setup.x), setup.loss_fn, target_tensor)

    # 2. The backward pass: ∂E/∂out and ∂E/∂net from the engine, .grad from backward(), ∂out/∂net from Jacobians.
    derivatives = _backward(layers, passes)

    # 3. The chain rule, checked number by number against the engine.
    _check_chain_rule(layers, passes, derivatives)
    forward_rows = _forward_rows(layers, passes.inputs, passes.nets, passes.outs, labels)  # before the step

    # 4. The SGD step, by the optimizer, on the copy.
    old = _sgd_step(layers, lr, freeze_bias)

    # 5. The tables' other rows: each output's share of the loss, and every parameter's gradient and update.
    terms = _loss_terms(setup, passes, target_tensor, labels)
    backward_rows = _backward_rows(layers, passes.inputs, derivatives, old, labels, freeze_bias)

    # 6. With apply=True the new values go into the user's model.
    if apply:
        _write_back(model, layers)

    return Trace(
        forward_rows=forward_rows,
        loss_terms=terms,
        loss=float(passes.error.data),
        loss_name=setup.loss_name,
        loss_formula=setup.formula,
        backward_rows=backward_rows,
        lr=float(lr),
        freeze_bias=freeze_bias,
        applied=apply,
        _replay=_replay(model, setup, old, loss, lr, freeze_bias, apply),
    )


def train_steps(
    model: Any,
    x: Any,
    target: Any,
    *,
    loss: str | Callable[..., Any] = "mse",
    lr: float = 0.1,
    steps: int = 1,
    freeze_bias: bool = False,
) -> list[float]:
    """Train a float64 copy of ``model`` on one sample with plain SGD; return the error after each step.

    Same arguments as :func:`trace`; ``model`` is not modified.

    Returns
    -------
    list of float
        ``steps + 1`` values: ``E`` before any step, then after step 1, 2, ..., ``steps``.

    Examples
    --------
    >>> from chainrule import nn
    >>> from chainrule.explain import train_steps
    >>> import chainrule as cr
    >>> _ = cr.manual_seed(0)
    >>> losses = train_steps(nn.Sequential(nn.Linear(2, 1)), [1.0, 2.0], [3.0], lr=0.1, steps=20)
    >>> len(losses), losses[-1] < 1e-3 < losses[0]
    (21, True)
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ArgumentError(f"explain.train_steps: steps must be an integer >= 0, got {steps!r}")
    setup = _prepare(model, x, target, loss, lr)
    work = setup.work
    x_tensor, target_tensor = Tensor(setup.x), Tensor(setup.target)
    optimizer = optim.SGD(_trained(setup.layers, freeze_bias), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        error = _scalar_loss(setup.loss_fn, work(x_tensor), target_tensor)
        losses.append(float(error.data))
        error.backward()
        optimizer.step()
    with autograd.no_grad():
        losses.append(float(_scalar_loss(setup.loss_fn, work(x_tensor), target_tensor).data))
    return losses


# ---------------------------------------------------------------------------------------------------
# The steps of trace
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pass:
    """The forward pass: each layer's input, net (pre-activation) and out, each of shape (1, width), and E."""

    inputs: list[Tensor]
    nets: list[Tensor]
    outs: list[Tensor]
    error: Tensor  # the scalar loss E


@dataclass(frozen=True)
class _Derivatives:
    """Per layer, each of shape (out_features,): ∂E/∂out and ∂E/∂net from the engine, ∂out/∂net of the activation."""

    de_douts: list[np.ndarray]
    de_dnets: list[np.ndarray]
    dout_dnets: list[np.ndarray]


def _forward(layers: list[_Layer], x: Tensor, loss_fn: Callable, target: Tensor) -> _Pass:
    """Run the layers on ``x`` (1, n) and the loss, recording a graph."""
    inputs, nets, outs = [], [], []
    with autograd.enable_grad():
        signal = x
        for layer in layers:
            inputs.append(signal)
            net = layer.linear(signal)  # (1, out_features)
            out = net if layer.activation is None else layer.activation(net)
            if not isinstance(out, Tensor) or out.shape != net.shape:
                raise ShapeError(
                    f"explain.trace: module {layer.position + 1} ({type(layer.activation).__name__}) changed the "
                    f"shape {net.shape} to {getattr(out, 'shape', None)}; activations must be elementwise"
                )
            nets.append(net)
            outs.append(out)
            signal = out
        error = _scalar_loss(loss_fn, signal, target)
    return _Pass(inputs, nets, outs, error)


def _backward(layers: list[_Layer], passes: _Pass) -> _Derivatives:
    """∂E/∂out and ∂E/∂net of every layer, then ``backward()`` (which fills the parameters' ``.grad``)."""
    grads = autograd.grad(passes.error, [*passes.outs, *passes.nets], retain_graph=True)
    de_douts = [g.data[0] for g in grads[: len(layers)]]
    de_dnets = [g.data[0] for g in grads[len(layers) :]]
    passes.error.backward()
    dout_dnets = [_local_derivative(layer, net) for layer, net in zip(layers, passes.nets)]
    return _Derivatives(de_douts, de_dnets, dout_dnets)


def _check_chain_rule(layers: list[_Layer], passes: _Pass, derivatives: _Derivatives) -> None:
    """δ = ∂E/∂out · ∂out/∂net, ∂E/∂W = δ ⊗ input, ∂E/∂b = δ, and a hidden ∂E/∂out sums over the layer above."""
    de_douts, de_dnets = derivatives.de_douts, derivatives.de_dnets
    for index, layer in enumerate(layers):
        number = index + 1
        delta = de_douts[index] * derivatives.dout_dnets[index]  # (out_features,)
        _check(f"layer {number} ∂E/∂net", de_dnets[index], delta)
        _check(f"layer {number} ∂E/∂W", _grad(layer.linear.weight), np.outer(delta, passes.inputs[index].data[0]))
        if layer.linear.bias is not None:
            _check(f"layer {number} ∂E/∂b", _grad(layer.linear.bias), delta)
        if index + 1 < len(layers):  # a hidden neuron's error is the sum over the neurons it feeds
            downstream = layers[index + 1].linear.weight.data  # (next out, out)
            _check(f"layer {number} ∂E/∂out", de_douts[index], downstream.T @ de_dnets[index + 1])


def _trained(layers: list[_Layer], freeze_bias: bool) -> list[Tensor]:
    """The parameters the SGD step changes: all, or all but the biases."""
    return [p for layer in layers for p in _params(layer) if not (freeze_bias and p is layer.linear.bias)]


def _sgd_step(layers: list[_Layer], lr: float, freeze_bias: bool) -> dict[int, np.ndarray]:
    """One step of :class:`optim.SGD`, checked against ``old − lr · ∂E/∂p``; the old values by ``id``."""
    old = {id(p): p.data.copy() for layer in layers for p in _params(layer)}
    optim.SGD(_trained(layers, freeze_bias), lr=lr).step()
    for layer in layers:
        for param in _params(layer):
            frozen = freeze_bias and param is layer.linear.bias
            expected = old[id(param)] if frozen else old[id(param)] - lr * _grad(param)
            _check(f"SGD step of {type(layer.linear).__name__} parameters", param.data, expected)
    return old


def _loss_terms(setup: _Setup, passes: _Pass, target: Tensor, labels: dict[str, str]) -> list[LossTerm]:
    """Each output's share of the loss, checked to sum to E; none for a loss given as a callable."""
    if setup.terms_fn is None:
        return []
    out = passes.outs[-1]
    with autograd.no_grad():
        values = setup.terms_fn(out, target).data[0]
    _check("the loss terms' sum", np.array(float(passes.error.data)), np.array(values.sum()))
    shown_targets = np.eye(values.shape[0])[setup.target[0]] if setup.target.dtype.kind == "i" else setup.target[0]
    last = len(setup.layers)
    return [
        LossTerm(k, labels[f"L{last}[{k}]"], float(shown_targets[k]), _f(out, k), float(term))
        for k, term in enumerate(values)
    ]


def _write_back(model: Any, layers: list[_Layer]) -> None:
    """The copy's new values into the user's model, in the model's own dtype."""
    with autograd.no_grad():
        for user_layer, layer in zip(_layers(model), layers):
            for user_param, param in zip(_params(user_layer), _params(layer)):
                user_param.data[...] = param.data.astype(user_param.dtype)


def _replay(
    model: Any, setup: _Setup, old: dict[int, np.ndarray], loss: Any, lr: float, freeze_bias: bool, apply: bool
) -> dict[str, Any]:
    """The arguments of :func:`train_steps` that repeat the traced step from the model as it was before it."""
    return {
        "model": copy.deepcopy(model).double() if not apply else _rewind(model, setup.layers, old),
        "x": setup.x,
        "target": setup.target[0] if setup.target.dtype.kind == "f" else int(setup.target[0]),
        "loss": loss,
        "lr": lr,
        "freeze_bias": freeze_bias,
    }


# ---------------------------------------------------------------------------------------------------
# Helpers of trace
# ---------------------------------------------------------------------------------------------------
def _params(layer: _Layer) -> list[Tensor]:
    linear = layer.linear
    return [linear.weight] if linear.bias is None else [linear.weight, linear.bias]


def _grad(param: Tensor) -> np.ndarray:
    """The gradient ``backward()`` left in ``param.grad`` (always there after the traced step's backward)."""
    if param.grad is None:
        raise GradientError(f"explain.trace: a parameter of shape {param.shape} got no gradient; this is a bug")
    return param.grad.data


def _f(tensor: Tensor, index: int) -> float:
    return float(tensor.data[0, index])


def _local_derivative(layer: _Layer, net: Tensor) -> np.ndarray:
    """∂out/∂net of the activation at ``net``: the diagonal of its Jacobian, which must be diagonal."""
    width = net.shape[-1]
    if layer.activation is None:
        return np.ones(width)
    jacobian = func.jacobian(layer.activation)(net.detach()).data.reshape(width, width)
    diagonal = np.diag(jacobian).copy()
    if np.any(jacobian - np.diag(diagonal)):
        raise ArgumentError(
            f"explain.trace: module {layer.position + 1} ({type(layer.activation).__name__}) is not elementwise: "
            "an output depends on another neuron's net; trace handles elementwise activations only"
        )
    return diagonal


def _labels(layers: list[_Layer], names: Mapping[str, str] | None) -> dict[str, str]:
    """Canonical key -> label shown, for inputs, neurons, weights and biases."""
    labels = {f"x[{i}]": f"x[{i}]" for i in range(layers[0].linear.in_features)}
    for number, layer in enumerate(layers, start=1):
        rows, columns = layer.linear.out_features, layer.linear.in_features
        for j in range(rows):
            labels[f"L{number}[{j}]"] = f"L{number}[{j}]"
            labels.update({f"L{number}.w[{j},{i}]": f"w[{j},{i}]" for i in range(columns)})
            if layer.linear.bias is not None:
                labels[f"L{number}.b[{j}]"] = f"b[{j}]"
    for key, label in (names or {}).items():
        if key not in labels:
            examples = ", ".join(list(labels)[:4])
            raise ArgumentError(f"explain.trace: names has an unknown key {key!r}; keys look like {examples}")
        labels[key] = str(label)
    return labels


def _forward_rows(
    layers: list[_Layer], inputs: list[Tensor], nets: list[Tensor], outs: list[Tensor], labels: dict[str, str]
) -> list[ForwardRow]:
    rows = []
    for number, (layer, inp, net, out) in enumerate(zip(layers, inputs, nets, outs), start=1):
        source_labels = tuple(
            labels[f"x[{i}]"] if number == 1 else labels[f"L{number - 1}[{i}]"] for i in range(inp.shape[-1])
        )
        activation = "identity" if layer.activation is None else type(layer.activation).__name__
        weight, bias = layer.linear.weight, layer.linear.bias
        for j in range(net.shape[-1]):
            rows.append(
                ForwardRow(
                    layer=number,
                    neuron=j,
                    label=labels[f"L{number}[{j}]"],
                    input_labels=source_labels,
                    inputs=tuple(float(v) for v in inp.data[0]),
                    weight_labels=tuple(labels[f"L{number}.w[{j},{i}]"] for i in range(inp.shape[-1])),
                    weights=tuple(float(v) for v in weight.data[j]),
                    bias_label=None if bias is None else labels[f"L{number}.b[{j}]"],
                    bias=None if bias is None else float(bias.data[j]),
                    net=_f(net, j),
                    activation=activation,
                    out=_f(out, j),
                )
            )
    return rows


def _backward_rows(
    layers: list[_Layer],
    inputs: list[Tensor],
    derivatives: _Derivatives,
    old: dict[int, np.ndarray],
    labels: dict[str, str],
    freeze_bias: bool,
) -> list[BackwardRow]:
    rows = []
    count = len(layers)
    de_douts, dout_dnets, de_dnets = derivatives.de_douts, derivatives.dout_dnets, derivatives.de_dnets
    for index in reversed(range(count)):
        number = index + 1
        layer = layers[index]
        weight, bias = layer.linear.weight, layer.linear.bias
        old_weight, weight_grad = old[id(weight)], _grad(weight)
        bias_grad = None if bias is None else _grad(bias)
        next_weight = old[id(layers[index + 1].linear.weight)] if index + 1 < count else None  # before the step
        for j in range(layer.linear.out_features):
            paths: int | None = None
            path_terms: tuple[float, ...] = ()
            if next_weight is not None:
                contributions = de_dnets[index + 1] * next_weight[:, j]  # δ_k · W_kj for each downstream k
                paths, path_terms = len(contributions), tuple(float(c) for c in contributions)
            common: dict[str, Any] = {
                "layer": number,
                "neuron": j,
                "neuron_label": labels[f"L{number}[{j}]"],
                "de_dout": float(de_douts[index][j]),
                "dout_dnet": float(dout_dnets[index][j]),
                "paths": paths,
                "path_terms": path_terms,
            }
            for i in range(layer.linear.in_features):
                source = labels[f"x[{i}]"] if number == 1 else labels[f"L{number - 1}[{i}]"]
                rows.append(
                    BackwardRow(
                        kind="weight",
                        index=(j, i),
                        key=f"L{number}.w[{j},{i}]",
                        name=labels[f"L{number}.w[{j},{i}]"],
                        source=source,
                        dnet_dparam=float(inputs[index].data[0, i]),
                        grad=float(weight_grad[j, i]),
                        old=float(old_weight[j, i]),
                        new=float(weight.data[j, i]),
                        frozen=False,
                        **common,
                    )
                )
            if bias is not None and bias_grad is not None:
                rows.append(
                    BackwardRow(
                        kind="bias",
                        index=(j,),
                        key=f"L{number}.b[{j}]",
                        name=labels[f"L{number}.b[{j}]"],
                        source="1",
                        dnet_dparam=1.0,
                        grad=float(bias_grad[j]),
                        old=float(old[id(bias)][j]),
                        new=float(bias.data[j]),
                        frozen=freeze_bias,
                        **common,
                    )
                )
    return rows


def _rewind(model: Any, layers: list[_Layer], old: dict[int, np.ndarray]) -> Any:
    """A float64 copy of ``model`` as it was before an applied step."""
    rewound = copy.deepcopy(model).double()
    for target_layer, layer in zip(_layers(rewound), layers):
        for target_param, param in zip(_params(target_layer), _params(layer)):
            target_param.data[...] = old[id(param)]
    return rewound
