"""The sigmoid family scaled to slope 1 at 0, and how fast its derivatives vanish (``explain activations``)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chainrule import func
from chainrule.autograd import no_grad
from chainrule.creation import tensor
from chainrule.nn import functional as F
from chainrule.plotting import pyplot, save_figure
from chainrule.tensor import Tensor

__all__ = ["Squashing", "NORMALIZED_SIGMOIDS", "ActivationRow", "ActivationsResult", "activations_demo"]


@dataclass(frozen=True)
class Squashing:
    """One S-shaped function, written with chainrule ops, and its derivative in closed form.

    Attributes
    ----------
    name : str
        Short name, e.g. ``"tanh"``.
    formula : str
        The function, as printed in the report.
    function : callable
        Tensor -> Tensor, built from chainrule ops, so the engine can differentiate it.
    slope : callable
        ndarray -> ndarray, the derivative by hand; used only to check the engine.
    limit : float
        :math:`\\lim_{x\\to\\infty} f(x)`.
    """

    name: str
    formula: str
    function: Callable[[Tensor], Tensor]
    slope: Callable[[np.ndarray], np.ndarray]
    limit: float


def _logistic_slope(x: np.ndarray) -> np.ndarray:
    s = 1.0 / (1.0 + np.exp(-x))
    return s * (1.0 - s)


_FAMILY = F.sigmoid_family()  # slope 1 at the origin, each with its own range


def _unit_range(name: str, scale: float = 1.0) -> Callable[[Tensor], Tensor]:
    """``sigmoid_family()[name]``, of range ±scale, as :math:`f(\\text{scale}\\,x)/\\text{scale}`: range ±1."""
    member = _FAMILY[name]
    return member if scale == 1.0 else lambda x: member(x * scale) / scale


#: The sigmoid family of :func:`chainrule.nn.functional.sigmoid_family` (:math:`f(0) = 0`, :math:`f'(0) = 1`),
#: each but the logistic rescaled to saturate at ±1. The slopes by hand are used only to check the engine.
NORMALIZED_SIGMOIDS: tuple[Squashing, ...] = (
    Squashing("tanh", "tanh(x)", _unit_range("tanh"), lambda x: 1.0 - np.tanh(x) ** 2, 1.0),
    Squashing("logistic", "4σ(x) − 2", _unit_range("logistic"), lambda x: 4.0 * _logistic_slope(x), 2.0),
    Squashing(
        "erf",
        "erf(√π x / 2)",
        _unit_range("erf", math.sqrt(math.pi) / 2.0),
        lambda x: np.exp(-math.pi * x**2 / 4.0),
        1.0,
    ),
    Squashing(
        "arctan",
        "(2/π) atan(π x / 2)",
        _unit_range("arctan", math.pi / 2.0),
        lambda x: 1.0 / (1.0 + (math.pi * x / 2.0) ** 2),
        1.0,
    ),
    Squashing(
        "gudermannian",
        "(4/π) atan(tanh(π x / 4))",
        _unit_range("gudermannian", math.pi / 2.0),
        lambda x: 1.0 / np.cosh(math.pi * x / 2.0),
        1.0,
    ),
    Squashing("algebraic", "x / √(1 + x²)", _unit_range("algebraic"), lambda x: (1.0 + x * x) ** -1.5, 1.0),
    Squashing("softsign", "x / (1 + |x|)", _unit_range("softsign"), lambda x: 1.0 / (1.0 + np.abs(x)) ** 2, 1.0),
)

_SIGMOID = Squashing("sigmoid", "σ(x) = 1/(1 + e^−x)", F.sigmoid, _logistic_slope, 1.0)


def _engine_slope(function: Callable[[Tensor], Tensor], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values and derivatives of an elementwise ``function`` at ``points``, the derivatives by reverse mode.

    For an elementwise f, :math:`\\partial \\sum_i f(x_i) / \\partial x_j = f'(x_j)`, so one backward pass
    of the sum gives the derivative at every point.
    """
    x = tensor(np.asarray(points, dtype=np.float64))  # (P,)
    with no_grad():
        values = function(x).numpy()
    slopes = func.grad(lambda t: function(t).sum())(x).numpy()
    return values, slopes


@dataclass
class ActivationRow:
    """One line of the activations table (all derivatives by the engine).

    Attributes
    ----------
    name, formula : str
        As in :class:`Squashing`.
    limit : float
        :math:`f(\\infty)`.
    value_at_0, slope_at_0 : float
        :math:`f(0)` and :math:`f'(0)`.
    max_slope, argmax_slope : float
        The largest :math:`f'` on the grid and where it is.
    slope_at_2, slope_at_5 : float
        :math:`f'(2)` and :math:`f'(5)` (the functions are odd, so :math:`f'` is even).
    closed_form_error : float
        Largest :math:`|f'_{engine} - f'_{by\\ hand}|` over the grid.
    """

    name: str
    formula: str
    limit: float
    value_at_0: float
    slope_at_0: float
    max_slope: float
    argmax_slope: float
    slope_at_2: float
    slope_at_5: float
    closed_form_error: float


@dataclass
class ActivationsResult:
    """What :func:`activations_demo` returns.

    Attributes
    ----------
    rows : list of ActivationRow
        One per function of :data:`NORMALIZED_SIGMOIDS`.
    sigmoid : ActivationRow
        The plain logistic :math:`\\sigma`, whose slope is at most 1/4.
    grid : ndarray, shape (P,)
        The points the functions were evaluated at.
    values, slopes : dict of str -> ndarray, shape (P,)
        :math:`f` and :math:`f'` (by the engine) on the grid, by name (``"sigmoid"`` included).
    plot : Path or None
        The PNG written, if any.
    """

    rows: list[ActivationRow]
    sigmoid: ActivationRow
    grid: np.ndarray
    values: dict[str, np.ndarray]
    slopes: dict[str, np.ndarray]
    plot: Path | None = None

    def row(self, name: str) -> ActivationRow:
        """The row called ``name`` (``"sigmoid"`` for the plain logistic)."""
        for candidate in [*self.rows, self.sigmoid]:
            if candidate.name == name:
                return candidate
        raise KeyError(f"no activation called {name!r}; have {[r.name for r in self.rows]} and 'sigmoid'")

    def __str__(self) -> str:
        lines = [
            "The sigmoid family scaled to f(0) = 0, f'(0) = 1; derivatives by reverse mode (chainrule.func.grad)",
            "",
            f"{'name':<13} {'f(x)':<26} {'f(∞)':>5} {'max f′':>7} {'f′(2)':>9} {'f′(5)':>9}  "
            f"{'|engine − by hand|':>18}",
        ]
        for r in [*self.rows, self.sigmoid]:
            lines.append(
                f"{r.name:<13} {r.formula:<26} {r.limit:>5.3g} {r.max_slope:>7.4f} {r.slope_at_2:>9.3e} "
                f"{r.slope_at_5:>9.3e}  {r.closed_form_error:>18.1e}"
            )
        s = self.sigmoid
        depth_10 = s.max_slope**10
        lines += [
            "",
            f"σ′(x) = σ(x)(1 − σ(x)) is at most {s.max_slope:.4f} (at x = {s.argmax_slope:g}): backpropagating through",
            f"10 sigmoid layers multiplies the gradient by at most 0.25^10 = {depth_10:.2e}, before any weights.",
            "Scaled to slope 1 the functions still saturate: at |x| = 5 every derivative is below "
            f"{max(r.slope_at_5 for r in self.rows):.3f},",
            "so a unit pushed far from 0 passes almost no gradient back (the vanishing gradient).",
        ]
        if self.plot is not None:
            lines.append(f"plot: {self.plot}")
        return "\n".join(lines)


def _activation_row(squashing: Squashing, grid: np.ndarray, slopes: np.ndarray) -> ActivationRow:
    (at_0, _, _), (slope_0, slope_2, slope_5) = _engine_slope(squashing.function, np.array([0.0, 2.0, 5.0]))
    best = int(np.argmax(slopes))
    return ActivationRow(
        name=squashing.name,
        formula=squashing.formula,
        limit=squashing.limit,
        value_at_0=float(at_0),
        slope_at_0=float(slope_0),
        max_slope=float(slopes[best]),
        argmax_slope=float(grid[best]),
        slope_at_2=float(slope_2),
        slope_at_5=float(slope_5),
        closed_form_error=float(np.max(np.abs(slopes - squashing.slope(grid)))),
    )


def activations_demo(
    plot: str | os.PathLike[str] | None = None, x_max: float = 6.0, points: int = 1201
) -> ActivationsResult:
    """Tabulate the sigmoid family scaled to slope 1 at 0, with derivatives computed by the engine.

    Every function :math:`f` of :data:`NORMALIZED_SIGMOIDS` has :math:`f(0) = 0` and :math:`f'(0) = 1`.
    The plain logistic :math:`\\sigma(x) = 1/(1+e^{-x})` has :math:`\\sigma'(x) = \\sigma(x)(1-\\sigma(x))
    \\le 1/4`, so a chain of :math:`n` sigmoid layers shrinks gradients by at least :math:`4^{-n}` (times the
    weights); even scaled to slope 1, every squashing function's derivative is tiny at :math:`|x| = 5`.

    Parameters
    ----------
    plot : path, optional
        Write a PNG with the functions (left) and their derivatives (right).
    x_max : float
        The grid spans :math:`[-x_{max}, x_{max}]`.
    points : int
        Grid size, shape ``(points,)``; odd keeps 0 on the grid.

    Returns
    -------
    ActivationsResult
        The table; ``str()`` of it is the report of ``chainrule explain activations``.

    Examples
    --------
    >>> from chainrule.explain.demos import activations_demo
    >>> result = activations_demo()
    >>> result.sigmoid.max_slope, result.row("tanh").slope_at_0
    (0.25, 1.0)
    >>> all(abs(r.slope_at_0 - 1) < 1e-12 and r.slope_at_5 < 0.03 for r in result.rows)
    True
    """
    if points < 3 or not x_max > 0:
        raise ValueError(f"activations_demo: need points >= 3 and x_max > 0, got {points}, {x_max}")
    grid = np.linspace(-x_max, x_max, points)  # (P,)
    values, slopes, rows = {}, {}, []
    for squashing in [*NORMALIZED_SIGMOIDS, _SIGMOID]:
        values[squashing.name], slopes[squashing.name] = _engine_slope(squashing.function, grid)
        rows.append(_activation_row(squashing, grid, slopes[squashing.name]))
    result = ActivationsResult(rows[:-1], rows[-1], grid, values, slopes)
    if plot is not None:
        result.plot = _plot_activations(result, plot)
    return result


def _plot_activations(result: ActivationsResult, path: str | os.PathLike[str]) -> Path:
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for row in [*result.rows, result.sigmoid]:
        style = "--" if row.name == "sigmoid" else "-"
        left.plot(result.grid, result.values[row.name], style, label=f"{row.formula}")
        right.plot(result.grid, result.slopes[row.name], style, label=row.name)
    left.set_title("f(x): scaled to f(0) = 0, f′(0) = 1")
    right.set_title("f′(x) by reverse mode: all vanish for large |x|")
    for ax in (left, right):
        ax.axhline(0, color="gray", linewidth=0.5)
        ax.axvline(0, color="gray", linewidth=0.5)
        ax.set_xlabel("x")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    return save_figure(figure, path)
