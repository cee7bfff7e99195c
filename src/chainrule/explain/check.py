"""Whole-model gradient check: every parameter's backprop gradient against central differences.

For the loss :math:`L(\\theta)` of a model on one batch, the numerical derivative for parameter element
:math:`\\theta_j` is

.. math:: \\hat g_j = \\frac{L(\\theta + \\epsilon e_j) - L(\\theta - \\epsilon e_j)}{2 \\epsilon},

with an error of order :math:`\\epsilon^2`. The check runs on a float64 copy of the model (the user's model is
not touched), so with :math:`\\epsilon = 10^{-6}` a correct gradient agrees to about 8 digits, and element
:math:`j` passes when :math:`|g_j - \\hat g_j| \\le \\text{atol} + \\text{rtol}\\,|\\hat g_j|`.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule.autograd import no_grad
from chainrule.errors import ArgumentError
from chainrule.gradcheck import central_differences
from chainrule.nn.dropout import Dropout
from chainrule.nn.module import Module
from chainrule.nn.registry import ACTIVATIONS, resolve_loss
from chainrule.tensor import Tensor

__all__ = ["check_model", "ModelCheck", "ParameterCheck", "gradcheck_command"]

_COMMAND_LOSSES = ("mse", "cross_entropy")  # gradcheck_command makes targets for these


@dataclass
class ParameterCheck:
    """The check of one parameter.

    Attributes
    ----------
    name, shape
        The parameter's dotted name and shape.
    checked : int
        How many elements were perturbed (all, or a seeded sample of ``max_elements``).
    max_abs_error : float
        :math:`\\max_j |g_j - \\hat g_j|` over the checked elements.
    max_rel_error : float
        :math:`\\max_j |g_j - \\hat g_j| / \\max(|g_j|, |\\hat g_j|)` (0 where both are 0).
    worst_index : tuple of int
        The element furthest outside (or closest to) the tolerance.
    analytic, numerical : float
        Backprop and finite-difference values at ``worst_index``.
    passed : bool
        Every checked element within ``atol + rtol * |numerical|``.
    """

    name: str
    shape: tuple[int, ...]
    checked: int
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...]
    analytic: float
    numerical: float
    passed: bool

    @property
    def size(self) -> int:
        """The number of elements of the parameter."""
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class ModelCheck:
    """The result of :func:`check_model`: one :class:`ParameterCheck` per parameter.

    Attributes
    ----------
    parameters : list of ParameterCheck
    loss : float
        The loss of the float64 copy at the unperturbed parameters.
    eps, atol, rtol : float
        The settings the check ran with.
    """

    parameters: list[ParameterCheck]
    loss: float
    eps: float
    atol: float
    rtol: float

    @property
    def ok(self) -> bool:
        """True when every parameter passed."""
        return all(p.passed for p in self.parameters)

    @property
    def failed(self) -> list[str]:
        """Names of the parameters that failed."""
        return [p.name for p in self.parameters if not p.passed]

    def __getitem__(self, name: str) -> ParameterCheck:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise KeyError(name)

    def __str__(self) -> str:
        headers = [
            "parameter",
            "shape",
            "checked",
            "max abs err",
            "max rel err",
            "worst at",
            "backprop",
            "numeric",
            "result",
        ]
        rows = [
            [
                p.name,
                str(p.shape),
                f"{p.checked}/{p.size}",
                f"{p.max_abs_error:.2e}",
                f"{p.max_rel_error:.2e}",
                str(p.worst_index),
                f"{p.analytic:+.6g}",
                f"{p.numerical:+.6g}",
                "ok" if p.passed else "FAIL",
            ]
            for p in self.parameters
        ]
        widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
        left = {0, 1, 5, 8}

        def line(cells: list[str]) -> str:
            return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        out = [line(headers).rstrip(), line(["-" * w for w in widths]).rstrip()]
        out += [line(row).rstrip() for row in rows]
        tolerance = f"|backprop - numeric| <= {self.atol:g} + {self.rtol:g}·|numeric|, eps {self.eps:g}, float64"
        if self.ok:
            out.append(f"all {len(self.parameters)} parameters pass ({tolerance})")
        else:
            out.append(f"FAILED: {', '.join(self.failed)} ({tolerance})")
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary."""
        return {
            "ok": self.ok,
            "loss": self.loss,
            "eps": self.eps,
            "atol": self.atol,
            "rtol": self.rtol,
            "parameters": [
                {
                    "name": p.name,
                    "shape": list(p.shape),
                    "checked": p.checked,
                    "max_abs_error": p.max_abs_error,
                    "max_rel_error": p.max_rel_error,
                    "worst_index": list(p.worst_index),
                    "analytic": p.analytic,
                    "numerical": p.numerical,
                    "passed": p.passed,
                }
                for p in self.parameters
            ],
        }


def _as_float64(value: Any) -> Any:
    """Floating inputs and targets become float64 tensors; integer labels stay as they are."""
    if value is None:  # a loss function that ignores the targets
        return None
    array = value.data if isinstance(value, Tensor) else np.asarray(value)
    if array.dtype.kind == "f":
        array = array.astype(np.float64)
    return Tensor(array)


def check_model(
    model: Module,
    x: Any,
    y: Any,
    loss: str | Callable[[Tensor, Tensor], Tensor] = "mse",
    *,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    max_elements: int = 200,
    seed: int = 0,
) -> ModelCheck:
    """Check every parameter's backprop gradient of ``loss(model(x), y)`` against central differences.

    The model is deep-copied and converted to float64; dropout layers of the copy are switched off (a
    random mask would make the loss a different function at every evaluation), everything else keeps the
    model's mode. Parameters with at most ``max_elements`` elements are checked element by element; larger
    ones on a sample of ``max_elements`` elements drawn without replacement by
    ``numpy.random.default_rng(seed)``, so a run is reproducible. Each checked element costs two forward
    passes.

    Parameters
    ----------
    model : Module
        Not modified.
    x : array_like or Tensor
        One batch of inputs, e.g. (N, in_features).
    y : array_like or Tensor
        Targets: the model's output shape for ``"mse"``, integer labels (N,) for ``"cross_entropy"``.
    loss : str or callable
        A name from :data:`chainrule.nn.registry.LOSSES` (``"mse"``, ``"cross_entropy"``, ...), a loss module, or
        ``f(outputs, targets) -> scalar Tensor``.
    eps : float
        The finite-difference step :math:`\\epsilon`.
    atol, rtol : float
        An element passes when :math:`|g - \\hat g| \\le \\text{atol} + \\text{rtol}|\\hat g|`.
    max_elements : int
        The most elements checked per parameter.
    seed : int
        Seeds the sample of elements of large parameters.

    Returns
    -------
    ModelCheck

    Examples
    --------
    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn
    >>> _ = cr.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    >>> x = np.random.default_rng(0).normal(size=(5, 3))
    >>> result = check_model(model, x, np.array([0, 1, 1, 0, 1]), loss="cross_entropy")
    >>> result.ok, [p.name for p in result.parameters]
    (True, ['0.weight', '0.bias', '2.weight', '2.bias'])
    >>> model[0].weight.dtype      # the user's model is untouched
    dtype('float32')
    """
    if not isinstance(model, Module):
        raise ArgumentError(f"check_model: model must be a chainrule.nn.Module, got {type(model).__name__}")
    if not eps > 0 or max_elements < 1:
        raise ArgumentError(
            f"check_model: need eps > 0 and max_elements >= 1, got eps={eps}, max_elements={max_elements}"
        )
    loss_fn = resolve_loss(loss, "check_model")
    copied = copy.deepcopy(model).double()
    for module in copied.modules():
        if isinstance(module, Dropout):
            module.training = False
    inputs, targets = _as_float64(x), _as_float64(y)

    def evaluate() -> Tensor:
        return loss_fn(copied(inputs), targets)

    copied.zero_grad()
    base = evaluate()
    base.backward()
    generator = np.random.default_rng(seed)
    results = []
    for name, param in copied.named_parameters():
        if not param.requires_grad:
            continue
        analytic = np.zeros_like(param.data) if param.grad is None else param.grad.data
        size = param.data.size
        if size <= max_elements:
            flat_indices = np.arange(size)
        else:
            flat_indices = np.sort(generator.choice(size, size=max_elements, replace=False))
        with no_grad():
            numerical = central_differences(lambda: evaluate().item(), param.data, flat_indices, eps)  # (checked,)
        backprop = analytic.ravel()[flat_indices]
        error = np.abs(backprop - numerical)
        scale = np.maximum(np.abs(backprop), np.abs(numerical))
        relative = np.divide(error, scale, out=np.zeros_like(error), where=scale > 0)
        violation = error / (atol + rtol * np.abs(numerical))
        worst = int(np.nanargmax(violation)) if np.isfinite(violation).any() else 0
        results.append(
            ParameterCheck(
                name=name,
                shape=tuple(param.shape),
                checked=len(flat_indices),
                max_abs_error=float(error.max()),
                max_rel_error=float(relative.max()),
                worst_index=tuple(int(i) for i in np.unravel_index(flat_indices[worst], param.shape)),
                analytic=float(backprop[worst]),
                numerical=float(numerical[worst]),
                passed=bool(np.all(violation <= 1.0)),
            )
        )
    return ModelCheck(results, float(base.item()), eps, atol, rtol)


def gradcheck_command(
    model_spec: str = "4,8,3", activation: str = "tanh", loss: str = "mse", batch: int = 4, seed: int = 0
) -> tuple[str, bool]:
    """Build an MLP from layer widths, check its gradients on random data, and return the report.

    What ``chainrule gradcheck --model 4,8,3`` prints: a header naming the model, then the table of
    :class:`ModelCheck` (one row per parameter) and a verdict line.

    Parameters
    ----------
    model_spec : str
        Comma-separated widths, input first: ``"4,8,3"`` is Linear(4, 8), activation, Linear(8, 3).
    activation : str
        relu, tanh, sigmoid, gelu, silu, elu, leaky_relu or softplus.
    loss : {"mse", "cross_entropy"}
        Random Gaussian targets for mse, random labels for cross_entropy.
    batch : int
        Rows of random input.
    seed : int
        Seeds the weights and the data.

    Returns
    -------
    (str, bool)
        The report, and whether every parameter passed (the exit status).

    Examples
    --------
    >>> report, ok = gradcheck_command("3,5,2", activation="sigmoid", loss="cross_entropy")
    >>> ok, report.splitlines()[0]
    (True, 'Gradient check: MLP 3-5-2 with sigmoid, cross_entropy loss, batch 4, seed 0')
    """
    from chainrule import _checks, nn, rng

    try:
        widths = [int(part) for part in model_spec.replace(" ", "").split(",") if part]
    except ValueError:
        raise ArgumentError(
            f"gradcheck: --model must be comma-separated widths like 4,8,3, got {model_spec!r}"
        ) from None
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise ArgumentError(f"gradcheck: --model needs at least two positive widths like 4,8,3, got {model_spec!r}")
    if activation not in ACTIVATIONS:
        raise ArgumentError(f"gradcheck: unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    if loss not in _COMMAND_LOSSES:
        raise ArgumentError(f"gradcheck: loss must be 'mse' or 'cross_entropy', got {loss!r}")
    if batch < 1:
        raise ArgumentError(f"gradcheck: batch must be positive, got {batch}")
    count = _checks.mlp_parameter_count(widths)
    activations = batch * sum(widths)
    # float32 weights and their float64 copy with its gradient and a saved copy; activations saved for backward
    _checks.fits_in_memory(
        "gradcheck",
        f"an MLP {'-'.join(map(str, widths))} ({count:,} parameters, batch {batch})",
        count * (4 + 3 * 8) + activations * 8 * 4,
    )
    generator = np.random.default_rng(seed)
    with rng.using(generator):
        layers: list[Module] = []
        for index, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
            if index:
                layers.append(ACTIVATIONS[activation]())
            layers.append(nn.Linear(fan_in, fan_out))
        model = nn.Sequential(*layers)
    x = generator.normal(size=(batch, widths[0]))
    y: np.ndarray
    if loss == "mse":
        y = generator.normal(size=(batch, widths[-1]))
    else:
        y = generator.integers(0, widths[-1], size=batch)
    result = check_model(model, x, y, loss=loss)
    header = (
        f"Gradient check: MLP {'-'.join(map(str, widths))} with {activation}, {loss} loss, batch {batch}, seed {seed}"
    )
    return f"{header}\n{result}", result.ok
