"""``chainrule explain curvature``: the Hessian, the Gauss-Newton matrix, the Fisher and the empirical
Fisher of a small network, side by side, at initialisation and after training.

The statement it makes visible: the Hessian of the loss splits as
:math:`H = G + \\sum_{n,c} (\\partial L/\\partial f_{nc})\\, \\nabla^2_\\theta f_{nc}`, the generalised Gauss-Newton
matrix :math:`G` plus a term weighted by the residuals :math:`\\partial L / \\partial f`; for cross-entropy
and squared error :math:`G` *is* the Fisher information :math:`F` of the model's predictive distribution.
So near a good fit (small residuals) "the Hessian can be approximated by the Fisher". The empirical
Fisher (outer products of the per-sample gradients at the data's labels) is a different matrix: it
shrinks with the residuals instead of approaching :math:`H`.

Every number comes from the operators of :mod:`chainrule.curvature` (dense matrices from products with
unit vectors, eigenvalues by their Lanczos, traces from their diagonals); nothing is derived by hand here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import _checks, autograd, curvature, data, func, nn, rng
from chainrule.errors import ArgumentError, ChainruleError, GradientError
from chainrule.explain import tables
from chainrule.explain.network import build_network
from chainrule.optim import SGD
from chainrule.tensor import Tensor

__all__ = ["curvature_demo", "CurvatureReport", "CurvatureStage", "CURVATURE_DATASETS", "MATRICES"]

#: The toy classification sets the view trains on (2 inputs each).
CURVATURE_DATASETS = ("xor", "moons", "circles", "blobs")
#: The four matrices, in the order they are shown.
MATRICES = ("Hessian", "GGN", "Fisher", "empirical Fisher")
#: (matrix, reference) pairs whose relative Frobenius distance ‖A − B‖ / ‖B‖ is reported.
PAIRS = (("Hessian", "GGN"), ("Fisher", "GGN"), ("empirical Fisher", "Fisher"), ("Hessian", "empirical Fisher"))
_MAX_PARAMETERS = 200  # dense P × P tables: beyond this they stop being readable
_MAX_STEPS = 100_000  # about a minute of full-batch descent on a toy net; a typo such as 3000000 would run for hours
_MAX_SAMPLES = 10_000  # the Fisher enumerates every sample's labels: beyond this the view takes minutes


@dataclass
class CurvatureStage:
    """The four matrices of one moment of training.

    Attributes
    ----------
    name : str
        ``"initialisation"`` or ``"after N steps"``.
    step : int
        Training steps taken.
    loss : float
        The loss on the batch.
    residual : float
        :math:`\\|\\partial L / \\partial f\\|_F`, the weights of the term by which :math:`H` differs from :math:`G`.
    matrices : dict
        ``{name: (P, P) array}`` for the names in :data:`MATRICES`.
    eigenvalues : dict
        ``{name: top eigenvalues, largest first}`` (Lanczos on the operator).
    smallest : dict
        ``{name: smallest eigenvalue}`` (negative for an indefinite Hessian).
    traces : dict
        ``{name: trace}``.
    distances : dict
        ``{"A vs B": ‖A − B‖_F / ‖B‖_F}`` for :data:`PAIRS`.
    """

    name: str
    step: int
    loss: float
    residual: float
    matrices: dict[str, np.ndarray] = field(repr=False)
    eigenvalues: dict[str, list[float]]
    smallest: dict[str, float]
    traces: dict[str, float]
    distances: dict[str, float]


@dataclass
class CurvatureReport:
    """What :func:`curvature_demo` measured; renders as text, Markdown, HTML or JSON."""

    widths: list[int]
    loss_name: str
    dataset: str
    samples: int
    parameter_names: list[str]
    stages: list[CurvatureStage]
    plot_path: Path | None = None

    # -- the sentences the numbers support ---------------------------------------------------------------
    def findings(self) -> list[str]:
        """The conclusions, each with the numbers that support it."""
        first, last = self.stages[0], self.stages[-1]
        loss = "cross-entropy" if self.loss_name == "cross_entropy" else "squared error"
        fisher_gap = max(stage.distances["Fisher vs GGN"] for stage in self.stages)
        lines = []
        if fisher_gap < 1e-10:
            lines.append(
                f"GGN = Fisher exactly for {loss}: their relative distance is at most {fisher_gap:.1e} "
                "(rounding), though the Fisher was computed from its own definition (an expectation over labels "
                "from the model's predictive distribution) and the GGN from the loss's Hessian in output space."
            )
        else:
            lines.append(f"GGN and Fisher differ by {fisher_gap:.3g} (relative): not expected for {loss}.")
        h_first, h_last = first.distances["Hessian vs GGN"], last.distances["Hessian vs GGN"]
        if len(self.stages) > 1:
            trend = "fell" if h_last < h_first else "did not fall"
            lines.append(
                f"Hessian → GGN as the residuals vanish: ‖H − G‖/‖G‖ {trend} from {h_first:.3g} at "
                f"initialisation to {h_last:.3g} {last.name}, while the residual ‖∂L/∂f‖ went from "
                f"{first.residual:.3g} to {last.residual:.3g}"
                + (
                    "; near a good fit the Hessian is approximated by the Fisher."
                    if h_last < h_first
                    else " (the fit did not improve enough: try more --steps or another --lr)."
                )
            )
        else:
            lines.append(f"‖H − G‖/‖G‖ = {h_first:.3g} at residual ‖∂L/∂f‖ = {first.residual:.3g} (no training).")
        e_first, e_last = first.distances["empirical Fisher vs Fisher"], last.distances["empirical Fisher vs Fisher"]
        lines.append(
            f"The empirical Fisher differs: ‖F_emp − F‖/‖F‖ = {e_first:.3g} at initialisation"
            + (f" and {e_last:.3g} {last.name}" if len(self.stages) > 1 else "")
            + f"; its trace is {last.traces['empirical Fisher']:.3g} against the Fisher's "
            f"{last.traces['Fisher']:.3g} ({last.name if len(self.stages) > 1 else 'at initialisation'}): "
            "it uses the data's labels, and shrinks with the residuals instead of approaching the Hessian."
        )
        return lines

    # -- renderers ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the configuration, each stage with its matrices (lists of rows) and the findings."""
        return {
            "model": self.widths,
            "loss": self.loss_name,
            "data": self.dataset,
            "samples": self.samples,
            "parameters": self.parameter_names,
            "stages": [
                {
                    "name": stage.name,
                    "step": stage.step,
                    "loss": stage.loss,
                    "residual": stage.residual,
                    "matrices": {name: matrix.tolist() for name, matrix in stage.matrices.items()},
                    "eigenvalues": stage.eigenvalues,
                    "smallest_eigenvalue": stage.smallest,
                    "traces": stage.traces,
                    "distances": stage.distances,
                }
                for stage in self.stages
            ],
            "findings": self.findings(),
            "plot": None if self.plot_path is None else str(self.plot_path),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as strict JSON."""
        return tables.to_json(self.to_dict(), indent=indent)

    def to_text(self, digits: int = 4) -> str:
        """Aligned plain-text tables, then the findings."""
        return tables.render_text(self._tables(digits)) + "\n" + "\n".join(self._closing()) + "\n"

    def to_markdown(self, digits: int = 4) -> str:
        """Markdown tables, then the findings as a list."""
        closing = self._closing()
        return tables.render_markdown(self._tables(digits)) + "\n" + "\n".join(f"- {line}" for line in closing) + "\n"

    def to_html(self, digits: int = 4) -> str:
        """HTML tables, then the findings as a list (every cell escaped)."""
        import html

        items = "".join(f"<li>{html.escape(line)}</li>" for line in self._closing())
        return tables.render_html(self._tables(digits), css_class="chainrule-curvature") + f"<ul>{items}</ul>\n"

    def _repr_html_(self) -> str:
        return self.to_html()

    def __str__(self) -> str:
        return self.to_text()

    def _closing(self) -> list[str]:
        lines = self.findings()
        if self.plot_path is not None:
            lines.append(f"heatmaps written to {self.plot_path}")
        return lines

    def _tables(self, digits: int) -> list[tables.Table]:
        size = len(self.parameter_names)
        spec = "-".join(map(str, self.widths))
        out: list[tables.Table] = []
        summary_rows = []
        for stage in self.stages:
            summary_rows.append(
                [stage.name, tables.number(stage.loss, digits), tables.number(stage.residual, digits)]
                + [tables.number(stage.distances[f"{a} vs {b}"], 3) for a, b in PAIRS]
            )
        out.append(
            (
                f"Curvature of a {spec} network ({size} parameters), {self.loss_name} on {self.samples} "
                f"{self.dataset} samples: relative distances ‖A − B‖_F / ‖B‖_F",
                ["stage", "loss", "‖∂L/∂f‖", *[f"{a} vs {b}" for a, b in PAIRS]],
                summary_rows,
            )
        )
        for stage in self.stages:
            count = len(next(iter(stage.eigenvalues.values())))
            rows = [
                [f"λ{index + 1}", *[tables.number(stage.eigenvalues[name][index], digits) for name in MATRICES]]
                for index in range(count)
            ]
            rows.append(["λmin", *[tables.number(stage.smallest[name], digits) for name in MATRICES]])
            rows.append(["trace", *[tables.number(stage.traces[name], digits) for name in MATRICES]])
            out.append((f"Eigenvalues and traces, {stage.name}", ["", *MATRICES], rows))
        for stage in self.stages:
            for name in MATRICES:
                matrix = stage.matrices[name]
                rows = [
                    [self.parameter_names[i], *[tables.number(float(v), digits) for v in matrix[i]]]
                    for i in range(size)
                ]
                out.append((f"{name}, {stage.name}", ["", *[f"θ{j + 1}" for j in range(size)]], rows))
        return out


def _short_names(model: nn.Module) -> list[str]:
    """``W1[0,1]``, ``b1[2]``, …: one name per flat coordinate, layers numbered from 1."""
    names = []
    layer = 0
    for name, parameter in model.named_parameters():
        kind = name.rsplit(".", 1)[-1]
        if kind == "weight":
            layer += 1
        letter = "W" if kind == "weight" else "b"
        for index in np.ndindex(*parameter.shape):
            names.append(f"{letter}{layer}[{','.join(map(str, index))}]")
    return names


def _stage(name: str, step: int, model: nn.Module, loss_fn: nn.Module, x: np.ndarray, y: np.ndarray) -> CurvatureStage:
    """Build the four operators at the model's current parameters and measure them."""
    operators = {
        "Hessian": curvature.hessian(model, loss_fn, x, y),
        "GGN": curvature.ggn(model, loss_fn, x, y),
        "Fisher": curvature.fisher(model, loss_fn, x, y),
        "empirical Fisher": curvature.empirical_fisher(model, loss_fn, x, y),
    }
    size = operators["Hessian"].shape[0]
    top = min(size, 6)
    matrices = {key: op.to_dense(limit=_MAX_PARAMETERS) for key, op in operators.items()}
    eigenvalues = {key: [float(v) for v in op.eigh(k=top, maxiter=size)[0]] for key, op in operators.items()}
    smallest = {key: float(op.eigh(k=1, which="smallest", maxiter=size)[0][0]) for key, op in operators.items()}
    traces = {key: float(np.sum(np.diagonal(matrices[key]))) for key in operators}  # the exact trace, formed
    distances = {}
    for a, b in PAIRS:
        reference = float(np.linalg.norm(matrices[b]))
        gap = float(np.linalg.norm(matrices[a] - matrices[b]))
        distances[f"{a} vs {b}"] = gap / reference if reference > 0 else (0.0 if gap == 0 else math.inf)
    output = model(Tensor(x))
    value, residual = func.value_and_grad(lambda out: loss_fn(out, Tensor(y)))(output.detach())
    return CurvatureStage(
        name,
        step,
        float(value.item()),
        float(np.linalg.norm(residual.data)),
        matrices,
        eigenvalues,
        smallest,
        traces,
        distances,
    )


def curvature_demo(
    widths: list[int] | tuple[int, ...] = (2, 3, 1),
    *,
    loss: str = "mse",
    dataset: str = "xor",
    samples: int = 8,
    steps: int = 3000,
    lr: float = 0.5,
    activation: str = "tanh",
    seed: int = 0,
    plot: str | os.PathLike[str] | None = None,
) -> CurvatureReport:
    """Train a small network and show its Hessian, GGN, Fisher and empirical Fisher before and after.

    Parameters
    ----------
    widths : sequence of int
        Layer widths, 2 inputs first (the toy sets are 2-D), e.g. ``(2, 3, 1)``; at most
        200 parameters (the matrices are printed in full).
    loss : {"mse", "cross_entropy"}
        Mean squared error on the labels (one output: the label 0/1; several: one-hot) or cross-entropy
        (as many outputs as classes).
    dataset : str
        One of :data:`CURVATURE_DATASETS` (from :mod:`chainrule.data`), ``samples`` points, seeded.
    steps, lr :
        Full-batch gradient descent (``optim.SGD``) between the two stages; ``steps=0`` shows one stage,
        at most 100,000 (``samples`` at most 10,000).
    activation : str
        Hidden activation (a name in :data:`chainrule.nn.registry.ACTIVATIONS`).
    seed : int
        Seeds the data and the initial weights.
    plot : path, optional
        Write a PNG of heatmaps: one row per stage, the four matrices side by side on a shared,
        symmetric colour scale (needs matplotlib). The name must end in ``.png``; an existing PNG is
        replaced, any other existing file is refused. Checked before any work is done.

    Returns
    -------
    CurvatureReport
        ``str()`` gives the tables and the findings; ``to_json()``, ``to_markdown()``, ``to_html()``.

    Examples
    --------
    >>> report = curvature_demo((2, 2, 1), samples=4, steps=0)
    >>> [stage.name for stage in report.stages], report.stages[0].matrices["GGN"].shape
    (['initialisation'], (9, 9))
    >>> report.stages[0].distances["Fisher vs GGN"] < 1e-12
    True
    """
    if isinstance(widths, (str, bytes)) or not all(
        isinstance(w, (int, np.integer)) and not isinstance(w, bool) for w in widths
    ):
        raise ArgumentError(
            f"explain curvature: --model must be layer widths (integers) such as (2, 3, 1), got {widths!r}"
        )
    widths = [int(w) for w in widths]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ArgumentError(f"explain curvature: --seed must be a non-negative integer, got {seed!r}")
    if (
        isinstance(lr, bool)
        or not isinstance(lr, (int, float, np.integer, np.floating))
        or not (math.isfinite(lr) and lr > 0)
    ):
        raise ArgumentError(f"explain curvature: --lr must be a finite number > 0, got {lr!r}")
    if plot is not None and not isinstance(plot, (str, os.PathLike)):
        raise ArgumentError(f"explain curvature: --plot must be a file name such as curvature.png, got {plot!r}")
    if loss not in ("mse", "cross_entropy"):
        raise ArgumentError(f"explain curvature: --loss must be mse or cross_entropy, got {loss!r}")
    if dataset not in CURVATURE_DATASETS:
        raise ArgumentError(
            f"explain curvature: --data must be one of {', '.join(CURVATURE_DATASETS)}, got {dataset!r}"
        )
    if len(widths) < 2 or any(w < 1 for w in widths) or widths[0] != 2:
        raise ArgumentError(f"explain curvature: --model must start with 2 inputs (the toy data is 2-D), got {widths}")
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or not 2 <= samples <= _MAX_SAMPLES:
        raise ArgumentError(f"explain curvature: --samples must be from 2 to {_MAX_SAMPLES}, got {samples!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 0 <= steps <= _MAX_STEPS:
        raise ArgumentError(f"explain curvature: --steps must be from 0 to {_MAX_STEPS}, got {steps!r}")
    if plot is not None:  # before minutes of work: a plot that cannot be written fails now
        _check_plot(plot)
    count = _checks.mlp_parameter_count(widths)
    if count > _MAX_PARAMETERS:
        raise ArgumentError(
            f"explain curvature: --model {'-'.join(map(str, widths))} has {count} parameters; the view prints "
            f"P × P matrices and allows at most {_MAX_PARAMETERS} (try 2,3,1 or 2,4,2)"
        )
    splits = data.load(dataset, n_samples=samples, test_fraction=0.0, seed=seed)
    x_raw, labels = splits.train.arrays
    classes = int(splits.info.num_classes or 2)
    x = np.asarray(x_raw, dtype=np.float64)
    outputs = widths[-1]
    if loss == "cross_entropy":
        if outputs != classes:
            raise ArgumentError(
                f"explain curvature: --loss cross_entropy on {dataset} needs {classes} outputs, "
                f"--model ends with {outputs}"
            )
        y: np.ndarray = np.asarray(labels, dtype=np.int64)
        loss_fn: nn.Module = nn.CrossEntropyLoss()
    else:
        if outputs == 1 and classes == 2:
            y = np.asarray(labels, dtype=np.float64).reshape(-1, 1)
        elif outputs == classes:
            y = np.eye(classes)[labels]
        else:
            raise ArgumentError(
                f"explain curvature: --loss mse on {dataset} ({classes} classes) needs 1 output (binary) or "
                f"{classes} (one-hot), --model ends with {outputs}"
            )
        loss_fn = nn.MSELoss()
    rng.manual_seed(seed)
    model = build_network(widths, activation)
    stages = [_stage("initialisation", 0, model, loss_fn, x, y)]
    if steps:
        optimizer = SGD(model.parameters(), lr=lr)
        inputs, targets = Tensor(x), Tensor(y)
        for _ in range(steps):
            value = loss_fn(model(inputs), targets)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
        with autograd.no_grad():
            final = float(loss_fn(model(inputs), targets).item())
        if not math.isfinite(final) or not all(np.all(np.isfinite(p.data)) for p in model.parameters()):
            raise ChainruleError(f"explain curvature: the loss diverged (--lr {lr:g} is too large); try a smaller --lr")
        try:
            stages.append(_stage(f"after {steps} steps", steps, model, loss_fn, x, y))
        except GradientError as error:
            raise ChainruleError(
                f"explain curvature: after {steps} steps with --lr {lr:g} the weights are too large ({error}); "
                "try a smaller --lr"
            ) from None
    report = CurvatureReport(widths, loss, dataset, len(x), _short_names(model), stages)
    if plot is not None:
        try:
            report.plot_path = _plot(report, plot)
        except (ChainruleError, OSError) as error:
            raise ChainruleError(f"explain curvature: --plot {os.fspath(plot)!r}: {error}") from None
    return report


def _check_plot(path: str | os.PathLike[str]) -> None:
    """``--plot`` names a PNG file that can be written: not a directory, in an existing directory, and not
    some other file (an existing PNG is replaced, as by every ``--plot``); then matplotlib must be there."""
    text = os.fspath(path)
    target = Path(text)
    if not text.strip():
        raise ArgumentError("explain curvature: --plot needs a file name such as curvature.png")
    if target.is_dir() or text.endswith(("/", os.sep)):
        raise ArgumentError(f"explain curvature: --plot {text!r} is a directory; give a file such as curvature.png")
    if target.suffix.lower() != ".png":
        raise ArgumentError(f"explain curvature: --plot writes a PNG; give a file name ending in .png, got {text!r}")
    parent = target.parent
    if not parent.is_dir():
        raise ArgumentError(f"explain curvature: --plot {text!r}: the directory {str(parent)!r} does not exist")
    if target.exists():
        try:
            with open(target, "rb") as handle:
                is_png = handle.read(8) == b"\x89PNG\r\n\x1a\n"
        except OSError as error:
            raise ArgumentError(f"explain curvature: --plot {text!r} cannot be read ({error.strerror})") from None
        if not is_png:
            raise ArgumentError(
                f"explain curvature: --plot {text!r} exists and is not a PNG image; refusing to overwrite it"
            )
    from chainrule.plotting import pyplot

    pyplot()  # a ChainruleError naming the 'plot' extra when matplotlib is missing


def _plot(report: CurvatureReport, path: str | os.PathLike[str]) -> Path:
    from chainrule.plotting import pyplot, save_figure

    plt = pyplot()
    rows = len(report.stages)
    figure, axes = plt.subplots(rows, len(MATRICES), figsize=(4 * len(MATRICES), 3.6 * rows), squeeze=False)
    for row, stage in zip(axes, report.stages):
        bound = max(float(np.max(np.abs(m))) for m in stage.matrices.values()) or 1.0
        image = None
        for ax, name in zip(row, MATRICES):
            image = ax.imshow(stage.matrices[name], cmap="RdBu_r", vmin=-bound, vmax=bound)
            ax.set_title(f"{name}, {stage.name}\nλmax {stage.eigenvalues[name][0]:.3g}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        figure.colorbar(image, ax=list(row), shrink=0.8)
    figure.suptitle(
        f"{'-'.join(map(str, report.widths))} network, {report.loss_name} on {report.samples} {report.dataset} "
        "samples (shared colour scale per row)"
    )
    return save_figure(figure, path)
