"""The vanishing-gradient demo: a deep sigmoid net next to the same net with ReLU and He init.

Backprop multiplies, layer by layer, the gradient by :math:`W_l^\\top \\operatorname{diag}(\\sigma'(z_l))`.
The sigmoid's slope is at most :math:`\\sigma'(0) = 1/4`, and with the "standard" initialisation
:math:`W \\sim U(-1/\\sqrt{n}, 1/\\sqrt{n})` (Glorot & Bengio 2010; also ``nn.Linear``'s default) each factor
shrinks the gradient's norm, so after :math:`L` layers the first layer's gradient is a vanishing fraction of
the last one's. ReLU's slope is 1 where it is active, and He init :math:`W \\sim N(0, 2/n)` keeps the
signal's variance constant through the layers, so the gradient reaches the first layer at the same scale.

Both nets are trained for the same steps on the spiral data set with the same batches, with a
:class:`~chainrule.explain.monitor.GradientMonitor` measuring every layer's gradient norm at every step.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import nn, rng
from chainrule.errors import ArgumentError
from chainrule.explain.monitor import GradientMonitor
from chainrule.optim import SGD
from chainrule.tensor import Tensor

__all__ = ["vanishing_demo", "VanishingResult", "NetRun", "build_net"]


@dataclass
class NetRun:
    """One net of the demo.

    Attributes
    ----------
    name : str
        ``"sigmoid, standard init"`` or ``"ReLU, He init"``.
    layer_norms : dict
        ``{layer name: [gradient norm at each step]}``, input layer first.
    losses : list of float
        The training loss at each step.
    warnings : list of str
        The kinds of :class:`~chainrule.explain.monitor.GradientWarning` the monitor found.
    monitor : GradientMonitor
        The monitor, with its records.
    """

    name: str
    layer_norms: dict[str, list[float]]
    losses: list[float]
    warnings: list[str]
    monitor: GradientMonitor = field(repr=False)

    def mean_norms(self) -> list[float]:
        """Each layer's gradient norm averaged over the steps, input layer first."""
        return [float(np.mean(values)) for values in self.layer_norms.values()]

    @property
    def ratio(self) -> float:
        """Mean gradient norm of the first layer divided by that of the last layer."""
        norms = self.mean_norms()
        return norms[0] / norms[-1] if norms[-1] > 0 else math.nan


@dataclass
class VanishingResult:
    """The two runs of :func:`vanishing_demo`; ``str()`` prints the comparison and a verdict."""

    sigmoid: NetRun
    relu: NetRun
    depth: int
    width: int
    steps: int
    plot_path: Path | None = None

    def __str__(self) -> str:
        headers = ["layer", "sigmoid + standard init", "ReLU + He init"]
        names = list(self.sigmoid.layer_norms)
        rows = [
            [f"{index + 1} ({name})", f"{s:.3g}", f"{r:.3g}"]
            for index, (name, s, r) in enumerate(zip(names, self.sigmoid.mean_norms(), self.relu.mean_norms()))
        ]
        rows.append(["first ÷ last", f"{self.sigmoid.ratio:.2g}", f"{self.relu.ratio:.2g}"])
        rows.append(
            [
                "loss first → last step",
                f"{self.sigmoid.losses[0]:.3f} → {self.sigmoid.losses[-1]:.3f}",
                f"{self.relu.losses[0]:.3f} → {self.relu.losses[-1]:.3f}",
            ]
        )
        rows.append(["warnings", ", ".join(sorted(set(self.sigmoid.warnings))) or "none",
                     ", ".join(sorted(set(self.relu.warnings))) or "none"])  # fmt: skip
        widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(3)]
        lines = [
            f"Mean gradient norm ‖∂L/∂W‖ per layer over {self.steps} SGD steps, {self.depth} layers of width "
            f"{self.width}, spirals data",
            "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))),
            "  ".join("-" * w for w in widths),
        ]
        for row in rows:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        lines.append(self.verdict())
        if self.plot_path is not None:
            lines.append(f"plot written to {self.plot_path}")
        return "\n".join(lines)

    def verdict(self) -> str:
        """One sentence comparing the two nets."""
        return (
            f"The sigmoid net's first layer gets {self.sigmoid.ratio:.1g} of the last layer's gradient, so it "
            f"barely learns (vanishing gradients); with ReLU and He init it gets {self.relu.ratio:.2f}, "
            "and every layer learns."
        )


def build_net(activation: str, depth: int, width: int, in_features: int, out_features: int) -> nn.Sequential:
    """A ``depth``-layer MLP: sigmoid with standard init :math:`U(\\pm 1/\\sqrt{n})`, or ReLU with He init.

    Weights are drawn from the global generator (wrap in :func:`chainrule.rng.using` to seed it). Biases
    start at 0 in both nets.

    Examples
    --------
    >>> net = build_net("relu", depth=3, width=4, in_features=2, out_features=3)
    >>> [type(m).__name__ for m in net]
    ['Linear', 'ReLU', 'Linear', 'ReLU', 'Linear']
    """
    if activation not in ("sigmoid", "relu"):
        raise ArgumentError(f"build_net: activation must be 'sigmoid' or 'relu', got {activation!r}")
    layers: list[nn.Module] = []
    fan_in = in_features
    for index in range(depth):
        fan_out = out_features if index == depth - 1 else width
        linear = nn.Linear(fan_in, fan_out)
        if activation == "sigmoid":
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(linear.weight, -bound, bound)
        else:
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        if linear.bias is not None:
            nn.init.zeros_(linear.bias)
        layers.append(linear)
        if index < depth - 1:
            layers.append(nn.Sigmoid() if activation == "sigmoid" else nn.ReLU())
        fan_in = fan_out
    return nn.Sequential(*layers)


def _train(
    name: str, model: nn.Module, x: np.ndarray, y: np.ndarray, batches: list[np.ndarray], lr: float, monitor: Any
) -> NetRun:
    """A plain SGD loop (forward, loss, zero_grad, backward, step) with the monitor after each step."""
    optimizer = SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    monitor.attach(model)
    losses = []
    for step, rows in enumerate(batches, start=1):
        loss = loss_fn(model(Tensor(x[rows])), Tensor(y[rows]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        monitor.record_step(step)
        losses.append(float(loss.item()))
    monitor.detach()
    kinds = [kind for kind, _, _ in monitor.warnings_]
    return NetRun(name, monitor.layer_norms(), losses, kinds, monitor)


def vanishing_demo(
    depth: int = 10,
    width: int = 32,
    steps: int = 50,
    seed: int = 0,
    plot: str | os.PathLike[str] | None = None,
    *,
    lr: float = 0.1,
    batch_size: int = 32,
    warn: bool = False,
) -> VanishingResult:
    """Train a deep sigmoid MLP and a deep ReLU MLP side by side and compare their per-layer gradients.

    Parameters
    ----------
    depth : int
        Linear layers per net (at least 2).
    width : int
        Units per hidden layer.
    steps : int
        SGD steps (batches of ``batch_size`` drawn from the spiral data's training split, the same for both).
    seed : int
        Seeds the weights and the batches.
    plot : path, optional
        Write a PNG with each net's gradient norm per layer over the steps (needs matplotlib).
    lr : float
        SGD learning rate.
    warn : bool
        Let the monitors issue their :class:`~chainrule.explain.monitor.GradientWarning` (the kinds are
        in each run's ``warnings`` either way).

    Returns
    -------
    VanishingResult
        With ``sigmoid.ratio`` (about 1e-8 at the defaults) and ``relu.ratio`` (about 0.25).

    Examples
    --------
    >>> result = vanishing_demo(depth=6, width=16, steps=5)
    >>> result.sigmoid.ratio < 1e-3 < 0.1 < result.relu.ratio
    True
    >>> result.sigmoid.warnings[0], result.relu.warnings
    ('vanishing', [])
    """
    from chainrule import data

    if depth < 2 or width < 1 or steps < 1:
        raise ArgumentError(f"vanishing_demo: need depth >= 2, width >= 1, steps >= 1; got {depth}, {width}, {steps}")
    from chainrule import _checks

    count = _checks.mlp_parameter_count([2, *[width] * depth, 3])
    # two float32 nets, each with gradients, the monitor's records and the SGD buffers
    what = f"{depth} layers of width {width} ({count:,} parameters per net)"
    _checks.fits_in_memory("vanishing_demo", what, 2 * 4 * 4 * count + 2 * 4 * 4 * batch_size * width * depth)
    train, _, info = data.load("spirals", n_samples=300, seed=seed)
    x, y = train.arrays
    generator = np.random.default_rng(seed)
    batches = [generator.choice(len(x), size=min(batch_size, len(x)), replace=False) for _ in range(steps)]
    runs = {}
    for activation, name in (("sigmoid", "sigmoid, standard init"), ("relu", "ReLU, He init")):
        with rng.using(np.random.default_rng(seed)):
            model = build_net(activation, depth, width, x.shape[1], int(info.num_classes or 10))
        runs[activation] = _train(name, model, x, y, batches, lr, GradientMonitor(warn=warn))
    result = VanishingResult(runs["sigmoid"], runs["relu"], depth, width, steps)
    if plot is not None:
        result.plot_path = _plot(result, plot)
    return result


def _plot(result: VanishingResult, path: str | os.PathLike[str]) -> Path:
    from chainrule.plotting import pyplot, save_figure

    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, run in zip(axes, (result.sigmoid, result.relu)):
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(run.layer_norms)))
        for index, (color, values) in enumerate(zip(colors, run.layer_norms.values())):
            ax.plot(range(1, len(values) + 1), values, color=color, label=f"layer {index + 1}")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(f"{run.name}: first ÷ last = {run.ratio:.2g}")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("gradient norm ‖∂L/∂W‖")
    axes[1].legend(fontsize=7, ncol=2)
    return save_figure(figure, path)
