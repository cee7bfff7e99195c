"""One gradient of N parameters by N forward-mode sweeps or by one reverse-mode sweep (``chainrule explain modes``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule import func
from chainrule.creation import tensor
from chainrule.tensor import Tensor

__all__ = ["ModesRow", "ModesResult", "modes_demo"]


@dataclass
class ModesRow:
    """Timings for one parameter count ``n``.

    Attributes
    ----------
    n : int
        Number of parameters.
    jvp_calls : int
        Forward-mode sweeps made (``n`` when forward mode ran, 0 when skipped).
    forward_s : float or None
        Best wall time of the ``n`` JVPs, or None when skipped.
    forward_estimate_s : float or None
        For skipped sizes: ``n`` × (time per JVP at the largest size that ran), an estimate (a lower bound,
        since one JVP costs more for larger ``n``).
    reverse_s : float
        Best wall time of one reverse-mode gradient.
    max_difference : float or None
        :math:`\\max_j |g^{fwd}_j - g^{rev}_j|`, None when forward mode was skipped.
    """

    n: int
    jvp_calls: int
    forward_s: float | None
    forward_estimate_s: float | None
    reverse_s: float
    max_difference: float | None


@dataclass
class ModesResult:
    """What :func:`modes_demo` returns: one :class:`ModesRow` per size, and the gradients of the last size
    where forward mode ran (``forward_gradient``, ``reverse_gradient``, shape (n,))."""

    rows: list[ModesRow]
    samples: int
    forward_limit: int
    forward_gradient: np.ndarray | None = None
    reverse_gradient: np.ndarray | None = None

    def __str__(self) -> str:
        lines = [
            f"Gradient of L(w) = mean_i (tanh(x_i · w) − y_i)² over {self.samples} samples, w with N parameters",
            "forward mode: one JVP per basis tangent e_j gives ∂L/∂w_j, so N sweeps;",
            "reverse mode: one backward pass gives all N at once. (float64, best of the repeats)",
            "",
            f"{'N':>7} {'JVPs':>7} {'forward (s)':>14} {'reverse (s)':>12} {'fwd / rev':>10} "
            f"{'max |g_fwd − g_rev|':>20}",
        ]
        for r in self.rows:
            if r.forward_s is not None:
                forward, ratio = f"{r.forward_s:.4f}", f"{r.forward_s / r.reverse_s:.0f}×"
                difference = f"{r.max_difference:.1e}"
            else:
                forward = f"≈{r.forward_estimate_s:.3g} est." if r.forward_estimate_s is not None else "skipped"
                ratio = f"≈{r.forward_estimate_s / r.reverse_s:.0f}×" if r.forward_estimate_s is not None else "—"
                difference = "(forward skipped)"
            lines.append(f"{r.n:>7} {r.jvp_calls:>7} {forward:>14} {r.reverse_s:>12.5f} {ratio:>10} {difference:>20}")
        skipped = [r.n for r in self.rows if r.forward_s is None]
        if skipped:
            lines.append(
                f"forward mode skipped for N > {self.forward_limit} ({', '.join(map(str, skipped))}); "
                "'est.' = N × seconds per JVP at the largest N that ran (a lower bound)"
            )
        lines.append(
            "Forward mode's cost grows like N × (cost of f); reverse mode's like a small multiple of the cost of f."
        )
        return "\n".join(lines)


def _best_time(work: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = work()
        best = min(best, time.perf_counter() - start)
    return best, out


def modes_demo(
    sizes: Sequence[int] = (10, 100, 1000, 10000),
    repeats: int = 3,
    forward_limit: int = 1000,
    samples: int = 16,
    seed: int = 0,
) -> ModesResult:
    """Compute one gradient of N parameters in forward mode (N JVPs) and in reverse mode (one backward).

    The loss is one tanh neuron fitted to ``samples`` points,
    :math:`L(w) = \\frac{1}{M}\\sum_{i=1}^{M} (\\tanh(x_i \\cdot w) - y_i)^2` with :math:`w \\in \\mathbb{R}^N`,
    inputs :math:`X` of shape (M, N) drawn :math:`\\mathcal{N}(0, 1/N)`. Forward mode pushes one tangent
    through the computation per sweep: with :math:`t = e_j` (column j of the identity) the JVP is
    :math:`\\partial L/\\partial w_j`, so the full gradient costs N sweeps
    (:func:`chainrule.func.jvp`, called exactly N times). Reverse mode pulls the single output's sensitivity
    back once (:func:`chainrule.func.grad`). In float64 the two gradients agree to rounding.

    Parameters
    ----------
    sizes : sequence of int
        Parameter counts N.
    repeats : int
        Each timing is the best of this many runs.
    forward_limit : int
        Forward mode runs only for N up to this; larger sizes get an estimate, labelled as such.
    samples : int
        M, the number of data points.
    seed : int
        Seeds the data and w.

    Returns
    -------
    ModesResult
        ``str()`` of it is the report of ``chainrule explain modes``.

    Examples
    --------
    >>> from chainrule.explain.demos import modes_demo
    >>> result = modes_demo(sizes=(3, 20), repeats=1)
    >>> [row.jvp_calls for row in result.rows], max(row.max_difference for row in result.rows) < 1e-12
    ([3, 20], True)
    """
    if repeats < 1 or samples < 1 or not sizes or any(int(n) < 1 for n in sizes):
        raise ValueError(
            f"modes_demo: need repeats >= 1, samples >= 1 and sizes >= 1, got {repeats}, {samples}, {sizes}"
        )
    from chainrule import _checks

    largest = max(int(n) for n in sizes)
    # the (samples, N) inputs, the products and their gradients, float64
    _checks.fits_in_memory("modes_demo", f"size {largest:,} with {samples} samples", 4 * 8 * samples * largest)
    generator = np.random.default_rng(seed)
    result = ModesResult([], samples, forward_limit)
    seconds_per_jvp = None
    for n in (int(n) for n in sizes):
        inputs = tensor(generator.standard_normal((samples, n)) / math.sqrt(n))  # (M, N) float64
        targets = tensor(generator.uniform(-0.5, 0.5, samples))  # (M,)
        weights = tensor(generator.standard_normal(n))  # (N,)

        def loss(w: Tensor, inputs: Tensor = inputs, targets: Tensor = targets) -> Tensor:
            return (((inputs @ w).tanh() - targets) ** 2).mean()

        reverse_s, reverse_gradient = _best_time(
            lambda loss=loss, w=weights: func.grad(loss)(w).numpy(),  # type: ignore[misc]
            repeats,
        )
        if n > forward_limit:
            estimate = None if seconds_per_jvp is None else n * seconds_per_jvp
            result.rows.append(ModesRow(n, 0, None, estimate, reverse_s, None))
            continue
        calls = [0]

        def forward_gradient(n: int = n, loss: Callable = loss, w: Tensor = weights, calls: list = calls) -> np.ndarray:
            gradient = np.empty(n)
            calls[0] = 0
            for j in range(n):
                basis = np.zeros(n)
                basis[j] = 1.0  # the tangent e_j picks out ∂L/∂w_j
                _, derivative = func.jvp(loss, (w,), (tensor(basis),))
                calls[0] += 1
                gradient[j] = derivative.item()
            return gradient

        forward_s, gradient = _best_time(forward_gradient, repeats)
        seconds_per_jvp = forward_s / n
        difference = float(np.max(np.abs(gradient - reverse_gradient)))
        result.rows.append(ModesRow(n, calls[0], forward_s, None, reverse_s, difference))
        result.forward_gradient, result.reverse_gradient = gradient, reverse_gradient
    return result
