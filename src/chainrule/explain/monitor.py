"""Watch gradients during real training and say when they vanish or explode.

:class:`GradientMonitor` is a training callback. After each monitored optimizer step it measures, for every
layer that owns a weight (Linear, Conv, RNN/LSTM/GRU …):

* the gradient norm :math:`\\lVert \\nabla_W L \\rVert_2` (``fit`` zeroes gradients before ``backward``, so
  in ``on_batch_end`` ``.grad`` still holds this step's gradient);
* the weight norm :math:`\\lVert W \\rVert_2`;
* the update ratio :math:`\\lVert W_t - W_{t-1} \\rVert / \\lVert W_{t-1} \\rVert`, measured from a copy of the
  weights taken after the previous step, so it is right for any optimizer (SGD, momentum, Adam …); about
  :math:`10^{-3}` is the classic healthy value;

and, for each ReLU, Sigmoid and Tanh *module* (seen through forward hooks, removed at the end of training):

* ReLU: the fraction of dead units, those whose output is 0 for every sample of the batch;
* Sigmoid/Tanh: the fraction of saturated outputs (sigmoid below 0.01 or above 0.99, :math:`|\\tanh| > 0.99`),
  where the local derivative is almost 0.

and, for every weight layer, through module hooks (forward pre-hooks and full backward hooks):

* the norm of the gradient flowing back through the layer's output, :math:`\\lVert \\partial L / \\partial y
  \\rVert_2` (``grad_output`` of a full backward hook; summed in squares over the calls of one step when the
  layer is called several times), a direct per-layer vanishing/exploding measure;
* the fraction of its input units that are exactly 0 for every sample of the batch, when the input was
  computed inside the model (it requires a gradient, so the raw data is not counted) and is not the output of a
  monitored activation module. This is how activations applied as functions inside ``forward`` (``x.relu()``)
  are seen: which function made the input cannot be known, only its values, so the warning names the layer at
  whose input the zeros were seen.

It warns (:class:`GradientWarning`, once per kind and layer) when a layer's gradient norm is below
``vanish_ratio`` times the last layer's (vanishing), above ``explode_norm`` (exploding), or NaN/inf, and when
at least ``unit_fraction`` of a ReLU layer's units are dead or of a Sigmoid/Tanh layer's outputs are saturated
for ``patience`` monitored steps in a row; likewise when at least ``unit_fraction`` of a weight layer's input
units are 0 for every sample (the input zero fraction above).
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from chainrule.autograd import is_grad_enabled
from chainrule.errors import ArgumentError, ChainruleError
from chainrule.nn.activation import ReLU, Sigmoid, Tanh
from chainrule.nn.module import Module
from chainrule.train.callbacks import Callback, TrainState

__all__ = ["GradientMonitor", "GradientWarning", "layers_with_weights"]

_VANISHING_ADVICE = (
    "the layers before it barely learn. Use ReLU or GELU instead of sigmoid/tanh, He or Xavier init "
    "(chainrule.nn.init.kaiming_normal_ / xavier_uniform_), normalization (nn.BatchNorm1d, nn.LayerNorm) "
    "or fewer layers"
)
_EXPLODING_ADVICE = (
    "lower the learning rate, clip gradients (chainrule.nn.utils.clip_grad_norm_(model.parameters(), 1.0)), "
    "use He or Xavier init (chainrule.nn.init) instead of large weights, or add normalization"
)


class GradientWarning(UserWarning):
    """A gradient that vanished, exploded or became NaN/inf during training (from :class:`GradientMonitor`)."""


def layers_with_weights(model: Module) -> list[tuple[str, Module, list[Any]]]:
    """Every module that owns trainable weights, in registration order (input side first).

    A layer's weights are its own parameters of two or more dimensions (matrices and kernels); a module
    with only vectors (LayerNorm, BatchNorm) counts those instead.

    Returns
    -------
    list of (name, module, weights)
        ``name`` is the dotted module name (the class name for the root).

    Examples
    --------
    >>> from chainrule import nn
    >>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    >>> [(name, [tuple(w.shape) for w in weights]) for name, _, weights in layers_with_weights(model)]
    [('0', [(3, 2)]), ('2', [(1, 3)])]
    """
    found = []
    for name, module in model.named_modules():
        own = [p for p in module._parameters.values() if p is not None and p.requires_grad]
        weights = [p for p in own if p.ndim >= 2] or own
        if weights:
            found.append((name or type(module).__name__, module, weights))
    return found


def _norm(arrays: list[np.ndarray]) -> float:
    return math.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64))) for a in arrays))


class GradientMonitor(Callback):
    """A callback that records per-layer gradient statistics and warns about vanishing/exploding gradients.

    Parameters
    ----------
    every : int
        Measure every ``every``-th optimizer step (1: every step).
    vanish_ratio : float
        Warn when a layer's gradient norm is below ``vanish_ratio`` times the last layer's.
    explode_norm : float
        Warn when a layer's gradient norm exceeds this (or is NaN/inf).
    unit_fraction : float
        Warn when at least this fraction of a ReLU layer's units is dead (0 for every sample of the batch), or
        of a Sigmoid/Tanh layer's outputs is saturated, on ``patience`` monitored steps in a row.
    patience : int
        How many monitored steps in a row the dead/saturated fraction must stay high before the warning.
    warn : bool
        Issue :class:`GradientWarning` (each kind once per layer). The findings are in ``warnings_``
        either way.
    stream : file-like, optional
        Also write each warning's message there (e.g. ``sys.stdout`` for a command-line run).

    Attributes
    ----------
    records : list of dict
        One dict per monitored step and layer. Weight layers: ``step``, ``epoch``, ``layer``, ``type``,
        ``grad_norm``, ``weight_norm``, ``update_ratio`` (NaN when the previous weights were not kept),
        ``output_grad_norm`` (:math:`\\lVert \\partial L / \\partial y \\rVert` at the layer's output; NaN when no
        gradient reached it through a hooked call) and ``input_zero_fraction`` (the fraction of input units 0
        for every sample; NaN when the input is the data, not a tensor, or a monitored activation's output).
        Activation modules: ``step``, ``epoch``, ``layer``, ``type`` and ``dead_fraction`` (ReLU) or
        ``saturated_fraction`` (Sigmoid/Tanh).
    warnings_ : list of (kind, layer, message)
        Every warning found, ``kind`` one of ``"vanishing"``, ``"exploding"``, ``"nonfinite"``, ``"dead"``,
        ``"saturated"``.

    Examples
    --------
    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn
    >>> from chainrule.train import fit
    >>> _ = cr.manual_seed(0)
    >>> x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    >>> y = (x[:, 0] > 0).astype(np.int64)
    >>> model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> monitor = GradientMonitor()
    >>> _ = fit(model, (x, y), epochs=1, batch_size=32, callbacks=[monitor], verbose=0)
    >>> [(r["step"], r["layer"]) for r in monitor.records if "grad_norm" in r]
    [(1, '0'), (1, '2'), (2, '0'), (2, '2')]
    >>> monitor.warnings_
    []
    """

    def __init__(
        self,
        every: int = 1,
        vanish_ratio: float = 1e-3,
        explode_norm: float = 1e3,
        warn: bool = True,
        stream: TextIO | None = None,
        unit_fraction: float = 0.5,
        patience: int = 3,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ArgumentError(f"GradientMonitor: every must be a positive integer, got {every!r}")
        if not vanish_ratio > 0 or not explode_norm > 0:
            raise ArgumentError(
                f"GradientMonitor: vanish_ratio and explode_norm must be positive, got {vanish_ratio}, {explode_norm}"
            )
        if not 0 < unit_fraction <= 1:
            raise ArgumentError(f"GradientMonitor: unit_fraction must be in (0, 1], got {unit_fraction!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ArgumentError(f"GradientMonitor: patience must be a positive integer, got {patience!r}")
        self.unit_fraction = float(unit_fraction)
        self.patience = patience
        self._high_streak: dict[str, int] = {}
        self.every = every
        self.vanish_ratio = float(vanish_ratio)
        self.explode_norm = float(explode_norm)
        self.warn = warn
        self.stream = stream
        self.records: list[dict[str, Any]] = []
        self.warnings_: list[tuple[str, str, str]] = []
        self._warned: set[tuple[str, str]] = set()
        self._layers: list[tuple[str, Module, list[Any]]] = []
        self._activations: dict[str, tuple[str, np.ndarray | None]] = {}
        self._removers: list[Callable[[], None]] = []
        self._output_grad_sq: dict[str, float] = {}
        self._input_zeros: dict[str, float] = {}
        self._measuring = True
        self._previous: tuple[int, list[list[np.ndarray]]] | None = None

    # -- attaching to a model --------------------------------------------------------------------------
    def attach(self, model: Module, step: int = 0) -> None:
        """Find the layers, hook the activation modules, keep the current weights (called by ``fit``)."""
        self.detach()
        self._layers = layers_with_weights(model)
        for name, module in model.named_modules():
            if isinstance(module, (ReLU, Sigmoid, Tanh)):
                name = name or type(module).__name__
                self._activations[name] = (type(module).__name__, None)
                self._removers.append(module.register_forward_hook(self._hook(name)))
        for name, module, _ in self._layers:
            self._removers.append(module.register_forward_pre_hook(self._input_hook(name)))
            self._removers.append(module.register_full_backward_hook(self._output_grad_hook(name)))
        self._snapshot(step)

    def detach(self) -> None:
        """Remove the forward and backward hooks (called at the end of training)."""
        for remove in self._removers:
            remove()
        self._removers = []
        self._activations = {}
        self._output_grad_sq = {}
        self._input_zeros = {}

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Measure nothing inside the block: the forwards and backwards run there (an explanation traced through
        the model, a copy of it stepped) are not the next training step's, whose norms they would add to.

        Examples
        --------
        >>> import chainrule as cr
        >>> from chainrule import nn
        >>> model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
        >>> monitor = GradientMonitor(warn=False)
        >>> monitor.attach(model)
        >>> with monitor.paused():
        ...     model(cr.ones((4, 2))).sum().backward()
        >>> [record.get("output_grad_norm") for record in monitor.record_step(1)]  # nothing was measured
        [nan, nan, None]
        """
        measuring, self._measuring = self._measuring, False
        try:
            yield
        finally:
            self._measuring = measuring

    def _input_hook(self, name: str) -> Callable[[Module, tuple], None]:
        def see_input(module: Module, args: tuple) -> None:
            if not (self._measuring and module.training and is_grad_enabled()) or not args:
                return
            x = args[0]
            data = getattr(x, "data", None)
            if not getattr(x, "requires_grad", False) or not isinstance(data, np.ndarray) or data.ndim < 2:
                return  # the data itself, or not a tensor: not an activation's output
            for _, output in self._activations.values():
                if output is not None and np.may_share_memory(data, output):
                    return  # a monitored activation module made it: measured there
            self._input_zeros[name] = float(np.mean(np.all(data == 0, axis=0)))

        return see_input

    def _output_grad_hook(self, name: str) -> Callable[[Module, tuple, tuple], None]:
        def keep_grad_output(module: Module, grad_input: tuple, grad_output: tuple) -> None:
            if not self._measuring:
                return
            arrays = [g.data for g in grad_output if g is not None]
            if arrays:
                self._output_grad_sq[name] = self._output_grad_sq.get(name, 0.0) + _norm(arrays) ** 2

        return keep_grad_output

    def _hook(self, name: str) -> Callable[[Module, tuple, Any], None]:
        def keep_output(module: Module, inputs: tuple, output: Any) -> None:
            # Only training forwards: validation and predict run in eval mode or without a graph.
            if module.training and is_grad_enabled():
                self._activations[name] = (type(module).__name__, output.data)

        return keep_output

    def _snapshot(self, step: int) -> None:
        """Copy the weights if the next step is measured, for its update ratio."""
        if (step + 1) % self.every == 0:
            self._previous = (step, [[w.data.copy() for w in weights] for _, _, weights in self._layers])
            self._measuring = True
        else:
            self._previous = None
            self._measuring = False
        self._output_grad_sq = {}
        self._input_zeros = {}

    # -- Callback hooks ------------------------------------------------------------------------------------
    def on_train_begin(self, state: TrainState) -> None:
        self.attach(state.model, state.step)

    def on_batch_end(self, state: TrainState) -> None:
        if state.step % self.every == 0:
            self.record_step(state.step, state.epoch)
        else:
            self._snapshot(state.step)

    def on_train_end(self, state: TrainState) -> None:
        self.detach()

    # -- measuring --------------------------------------------------------------------------------------
    def record_step(self, step: int, epoch: int = 0) -> list[dict[str, Any]]:
        """Measure the current gradients, weights and activations; record and check them.

        ``fit`` calls this from ``on_batch_end``; in a hand-written loop call :meth:`attach` once, then this
        after each ``optimizer.step()`` (before the next ``zero_grad``) with steps counted from 1. Returns the
        new records.
        """
        previous = self._previous[1] if self._previous is not None and self._previous[0] == step - 1 else None
        new, with_grads = [], []
        for index, (name, module, weights) in enumerate(self._layers):
            grads = [w.grad.data for w in weights if w.grad is not None]
            weight_norm = _norm([w.data for w in weights])
            update_ratio = math.nan
            if previous is not None:
                before = previous[index]
                change = _norm([w.data - old for w, old in zip(weights, before)])
                update_ratio = change / max(_norm(before), 1e-12)
            record: dict[str, Any] = {
                "step": step,
                "epoch": epoch,
                "layer": name,
                "type": type(module).__name__,
                "grad_norm": _norm(grads) if grads else math.nan,
                "weight_norm": weight_norm,
                "update_ratio": update_ratio,
                "output_grad_norm": math.sqrt(self._output_grad_sq[name]) if name in self._output_grad_sq else math.nan,
                "input_zero_fraction": self._input_zeros.get(name, math.nan),
            }
            new.append(record)
            if not math.isnan(record["input_zero_fraction"]):
                self._check_input_zeros(record, step)
            if grads:  # a layer the loss did not reach has no gradient: nothing to check
                with_grads.append(record)
        for name, (kind, output) in self._activations.items():
            if output is None:
                continue
            record = {"step": step, "epoch": epoch, "layer": name, "type": kind}
            if kind == "ReLU":
                record["dead_fraction"] = float(np.mean(np.all(output <= 0, axis=0))) if output.ndim else 0.0
            elif kind == "Sigmoid":
                record["saturated_fraction"] = float(np.mean((output < 0.01) | (output > 0.99)))
            else:
                record["saturated_fraction"] = float(np.mean(np.abs(output) > 0.99))
            new.append(record)
            self._check_units(record, step)
        self.records.extend(new)
        self._check(with_grads, step)
        self._snapshot(step)
        return new

    def _check(self, layers: list[dict[str, Any]], step: int) -> None:
        """Warn about non-finite, exploding and vanishing gradients among the layers that have one."""
        for record in layers:
            norm = record["grad_norm"]
            where = f"layer {record['layer']!r} ({record['type']})"
            if not math.isfinite(norm):
                self._emit(
                    "nonfinite",
                    record["layer"],
                    f"non-finite gradient at step {step}: {where} has gradient norm {norm}; the loss or an "
                    f"activation overflowed. Check the data for NaN/Inf and {_EXPLODING_ADVICE}",
                )
            elif norm > self.explode_norm:
                self._emit(
                    "exploding",
                    record["layer"],
                    f"exploding gradients at step {step}: {where} has gradient norm {norm:.3g} "
                    f"(> explode_norm {self.explode_norm:g}, weight norm {record['weight_norm']:.3g}); "
                    f"{_EXPLODING_ADVICE}",
                )
        finite = [r for r in layers if math.isfinite(r["grad_norm"])]
        if len(finite) < 2:
            return
        last = finite[-1]
        reference = last["grad_norm"]
        if reference <= 0:
            return
        for record in finite[:-1]:
            ratio = record["grad_norm"] / reference
            if ratio < self.vanish_ratio:
                self._emit(
                    "vanishing",
                    record["layer"],
                    f"vanishing gradients at step {step}: layer {record['layer']!r} ({record['type']}) has "
                    f"gradient norm {record['grad_norm']:.3g}, {ratio:.2g} × the last layer {last['layer']!r} "
                    f"({reference:.3g}, vanish_ratio {self.vanish_ratio:g}); {_VANISHING_ADVICE}",
                )

    def _check_units(self, record: dict[str, Any], step: int) -> None:
        """Warn when a ReLU layer's dead fraction or a Sigmoid/Tanh layer's saturated fraction stays high."""
        dead = record["type"] == "ReLU"
        fraction = record["dead_fraction" if dead else "saturated_fraction"]
        layer = record["layer"]
        streak = self._high_streak.get(layer, 0) + 1 if fraction >= self.unit_fraction else 0
        self._high_streak[layer] = streak
        if streak < self.patience:
            return
        if dead:
            self._emit(
                "dead",
                layer,
                f"dead ReLUs at step {step}: {fraction:.0%} of the units of {layer!r} output 0 for every sample "
                f"of the batch ({streak} monitored steps in a row); they get no gradient and stop learning. "
                "Lower the learning rate, use LeakyReLU or GELU, or initialise with He init "
                "(chainrule.nn.init.kaiming_normal_) and small positive biases",
            )
        else:
            self._emit(
                "saturated",
                layer,
                f"saturated units at step {step}: {fraction:.0%} of the outputs of {layer!r} ({record['type']}) sit "
                f"on the flat ends of the curve ({streak} monitored steps in a row), where the derivative is "
                "almost 0. Standardize the inputs, use Xavier init (chainrule.nn.init.xavier_uniform_), a lower "
                "learning rate, or ReLU",
            )

    def _check_input_zeros(self, record: dict[str, Any], step: int) -> None:
        """Warn when the zeros at a weight layer's input (a functional activation's dead units) stay high."""
        layer = record["layer"]
        key = f"input of {layer}"
        fraction = record["input_zero_fraction"]
        streak = self._high_streak.get(key, 0) + 1 if fraction >= self.unit_fraction else 0
        self._high_streak[key] = streak
        if streak < self.patience:
            return
        self._emit(
            "dead",
            layer,
            f"dead units at step {step}: {fraction:.0%} of the input units of layer {layer!r} ({record['type']}) "
            f"are 0 for every sample of the batch ({streak} monitored steps in a row), seen at the input of layer "
            f"{layer!r}, which is not the output of a ReLU/Sigmoid/Tanh module: an activation applied as a function "
            "(x.relu()) or a module the monitor does not watch made them. Units that are always 0 get no gradient "
            "and stop learning. Lower the learning rate, use LeakyReLU or GELU, or initialise with He init "
            "(chainrule.nn.init.kaiming_normal_) and small positive biases",
        )

    def _emit(self, kind: str, layer: str, message: str) -> None:
        if (kind, layer) in self._warned:
            return
        self._warned.add((kind, layer))
        self.warnings_.append((kind, layer, message))
        if self.stream is not None:
            print(f"GradientWarning: {message}", file=self.stream)
        if self.warn:
            warnings.warn(message, GradientWarning, stacklevel=2)

    # -- reports ----------------------------------------------------------------------------------------
    def layer_norms(self) -> dict[str, list[float]]:
        """Gradient norm per layer over the monitored steps: ``{layer: [norm at each step]}``."""
        norms: dict[str, list[float]] = {}
        for record in self.records:
            if "grad_norm" in record:
                norms.setdefault(record["layer"], []).append(record["grad_norm"])
        return norms

    def steps(self) -> list[int]:
        """The monitored steps, in order."""
        return sorted({r["step"] for r in self.records})

    def summary(self) -> str:
        """A table per layer: gradient norm (last and mean), weight norm, update ratio, activation health.

        Examples
        --------
        >>> GradientMonitor().summary()
        'GradientMonitor: no steps recorded'
        """
        if not self.records:
            return "GradientMonitor: no steps recorded"
        by_layer: dict[str, list[dict[str, Any]]] = {}
        for record in self.records:
            by_layer.setdefault(record["layer"], []).append(record)
        weight_layers = [name for name, rows in by_layer.items() if "grad_norm" in rows[0]]
        last_layer = weight_layers[-1] if weight_layers else None
        last_mean = _mean([r["grad_norm"] for r in by_layer[last_layer]]) if last_layer else math.nan
        headers = [
            "layer",
            "type",
            "grad norm",
            "mean grad",
            "÷ last layer",
            "weight norm",
            "update/weight",
            "activity",
        ]
        rows = []
        for name, layer_records in by_layer.items():
            final = layer_records[-1]
            if "grad_norm" in final:
                mean = _mean([r["grad_norm"] for r in layer_records])
                rows.append(
                    [
                        name,
                        final["type"],
                        f"{final['grad_norm']:.3g}",
                        f"{mean:.3g}",
                        f"{mean / last_mean:.3g}" if last_mean > 0 else "-",
                        f"{final['weight_norm']:.3g}",
                        "-" if math.isnan(final["update_ratio"]) else f"{final['update_ratio']:.2g}",
                        ""
                        if math.isnan(final.get("input_zero_fraction", math.nan))
                        else f"input zeros {final['input_zero_fraction']:.0%}",
                    ]
                )
            else:
                key = "dead_fraction" if "dead_fraction" in final else "saturated_fraction"
                label = "dead" if key == "dead_fraction" else "saturated"
                activity = f"{label} {final[key]:.0%} (mean {_mean([r[key] for r in layer_records]):.0%})"
                rows.append([name, final["type"], "", "", "", "", "", activity])
        widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

        def line(cells: list[str]) -> str:
            text = "  ".join(
                c.ljust(w) if i in (0, 1, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
            )
            return text.rstrip()

        steps = self.steps()
        out = [
            f"gradient monitor: {len(steps)} steps recorded ({steps[0]}..{steps[-1]}), grad norm at the last step",
            line(headers),
            line(["-" * w for w in widths]),
        ]
        out += [line(row) for row in rows]
        if self.warnings_:
            out.append("warnings: " + "; ".join(f"{kind} in {layer!r}" for kind, layer, _ in self.warnings_))
        return "\n".join(out)

    def plot(self, path: str | os.PathLike[str], title: str | None = None) -> Path:
        """Gradient norm of each layer over the steps, log scale, as a PNG written atomically (needs matplotlib)."""
        from chainrule.plotting import pyplot, save_figure

        plt = pyplot()
        norms = self.layer_norms()
        if not norms:
            raise ChainruleError("GradientMonitor.plot: no steps recorded yet")
        steps = sorted({r["step"] for r in self.records if "grad_norm" in r})
        figure, ax = plt.subplots(figsize=(6.5, 4))
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(norms)))
        for color, (layer, values) in zip(colors, norms.items()):
            ax.plot(steps[: len(values)], values, color=color, label=f"layer {layer}")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("gradient norm ‖∂L/∂W‖")
        ax.set_title(title or "gradient norm per layer")
        ax.legend(fontsize=7, ncol=2 if len(norms) > 6 else 1)
        ax.grid(True, which="major", alpha=0.3)
        return save_figure(figure, path)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan
