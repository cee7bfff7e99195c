"""One playground run: the data, the network and its optimizer, trained by the real engine.

:class:`Session` holds what the page shows. Everything is float64 and seeded by ``Config.seed``: the data,
the train/test split, the initial weights (built inside :func:`chainrule.rng.using`, so the global generator is
untouched) and the order of the mini-batches. :meth:`Session.reset` therefore replays the same starting
weights and the same batches, and two sessions of the same config train identically.

For one mini-batch of :math:`B` points the loss is the mean of the points' losses plus the penalty,

.. math::
    L = \\frac1B \\sum_{s=1}^{B} E_s + \\lambda R(W), \\qquad
    \\frac{\\partial L}{\\partial w} = \\frac1B \\sum_s \\frac{\\partial E_s}{\\partial w} + \\lambda R'(w),

which is how :meth:`Session.explain` shows a weight's gradient: one :func:`chainrule.explain.trace` per point
(each a product of three chain-rule factors), their mean, the penalty's gradient from the engine, the sum
checked against the engine's batch gradient, and the optimizer's real update.

Examples
--------
>>> from chainrule.playground.config import Config
>>> from chainrule.playground.session import Session
>>> session = Session(Config(dataset="xor", hidden=(4,), seed=1))
>>> before = session.losses()
>>> session.step(200)
>>> session.losses()["train"] < before["train"]
True
"""

from __future__ import annotations

import base64
import copy
import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule import autograd, nn, optim, rng
from chainrule.data import toy
from chainrule.errors import ArgumentError, DataError
from chainrule.explain import tables
from chainrule.explain.monitor import GradientMonitor
from chainrule.explain.trace import trace
from chainrule.nn.registry import ACTIVATIONS as _REGISTRY_ACTIVATIONS
from chainrule.playground.config import Config
from chainrule.tensor import Tensor

__all__ = ["Points", "Session", "make_points", "feature_matrix", "build_model", "GRID", "THUMB", "SPAN"]

GRID = 64  # the output heatmap is GRID × GRID points
THUMB = 24  # each neuron's thumbnail is THUMB × THUMB points
SPAN = 3.0  # points are scaled so that the largest coordinate is ±SPAN; the view is ±1.1·SPAN
_HISTORY = 400  # loss-curve points kept (older ones are thinned out)

_GENERATORS: dict[str, Any] = {
    "xor": toy.xor,
    "moons": toy.moons,
    "circles": toy.circles,
    "spirals": toy.spirals,
    "blobs": lambda n_samples, noise, test_fraction, seed: toy.blobs(
        n_samples, 2.0 * noise, test_fraction, seed, n_features=2, centers=3
    ),
    "gaussian": lambda n_samples, noise, test_fraction, seed: toy.gaussian(n_samples, 0.3 + noise, test_fraction, seed),
    "regression": lambda n_samples, noise, test_fraction, seed: toy.linear_regression(
        n_samples, 2, noise, test_fraction, seed
    ),
}

#: What each input feature computes from the scaled point (x, y), as a formula and as NumPy.
FEATURE_FORMULAS: dict[str, str] = {
    "x": "x",
    "y": "y",
    "x2": "x**2",
    "y2": "y**2",
    "xy": "x*y",
    "sinx": "np.sin(x)",
    "siny": "np.sin(y)",
}

_FEATURE_FUNCTIONS: dict[str, Any] = {
    "x": lambda x, y: x,
    "y": lambda x, y: y,
    "x2": lambda x, y: x**2,
    "y2": lambda x, y: y**2,
    "xy": lambda x, y: x * y,
    "sinx": lambda x, y: np.sin(x),
    "siny": lambda x, y: np.sin(y),
}


@dataclass
class Points:
    """Train and test points, scaled so the largest coordinate is ±:data:`SPAN`, with their targets.

    ``train_y``/``test_y`` are class indices (int64, shape ``(N,)``) for classification and values (float64,
    shape ``(N, 1)``) for regression; ``scale`` is what the raw coordinates were multiplied by.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    task: str
    num_classes: int
    scale: float

    @property
    def num_outputs(self) -> int:
        return self.num_classes if self.task == "classification" else 1


def make_points(config: Config, upload: tuple[np.ndarray, np.ndarray] | None = None) -> Points:
    """The points of ``config``: a generated toy set, or an uploaded ``(points (N, 2), labels (N,))`` pair."""
    from chainrule.data.splits import split_arrays

    if config.dataset == "csv":
        if upload is None:
            raise DataError(f"playground: no uploaded data with id {config.upload!r}; upload the CSV again")
        points, labels = upload
        train, test = split_arrays((points, labels), config.test_fraction, config.seed, "playground upload")
        (train_x, train_y), (test_x, test_y) = train.arrays, test.arrays
        classification = labels.dtype.kind in "iu"
        task = "classification" if classification else "regression"
        num_classes = int(labels.max()) + 1 if classification else 0
    else:
        splits = _GENERATORS[config.dataset](config.n_samples, config.noise, config.test_fraction, config.seed)
        (train_x, train_y), (test_x, test_y) = splits.train.arrays, splits.test.arrays
        task = splits.info.task
        num_classes = splits.info.num_classes or 0
    train_x, test_x = np.asarray(train_x, np.float64), np.asarray(test_x, np.float64)
    largest = max(float(np.abs(train_x).max(initial=0.0)), float(np.abs(test_x).max(initial=0.0)))
    scale = SPAN / largest if largest > 0 else 1.0
    if task == "classification":
        train_y, test_y = np.asarray(train_y, np.int64).reshape(-1), np.asarray(test_y, np.int64).reshape(-1)
    else:
        train_y = np.asarray(train_y, np.float64).reshape(-1, 1)
        test_y = np.asarray(test_y, np.float64).reshape(-1, 1)
    return Points(train_x * scale, train_y, test_x * scale, test_y, task, num_classes, scale)


def feature_matrix(points: np.ndarray, features: tuple[str, ...]) -> np.ndarray:
    """The input features of points ``(N, 2)`` as a matrix ``(N, len(features))``.

    Examples
    --------
    >>> feature_matrix(np.array([[2.0, 3.0]]), ("x", "xy", "y2")).tolist()
    [[2.0, 6.0, 9.0]]
    """
    x, y = points[:, 0], points[:, 1]
    columns = [_FEATURE_FUNCTIONS[name](x, y) for name in features]
    return np.stack(columns, axis=1).astype(np.float64)


def bias_of(linear: nn.Linear) -> np.ndarray:
    """The layer's bias values (zeros for a layer without bias)."""
    return linear.bias.data if linear.bias is not None else np.zeros(linear.out_features)


def activation_module(name: str) -> nn.Module:
    """A new activation module for a playground activation name (``family:NAME`` for the slope-1 family)."""
    if name.startswith("family:"):
        return nn.SigmoidFamily(name.split(":", 1)[1])
    return _REGISTRY_ACTIVATIONS[name]()


def build_model(config: Config, num_inputs: int, num_outputs: int) -> nn.Sequential:
    """The float64 network of ``config``, with its initial weights drawn from ``config.seed`` alone."""
    widths = [num_inputs, *config.hidden, num_outputs]
    generator = np.random.default_rng([config.seed, 1])  # the data use seed alone: keep the streams apart
    modules: list[nn.Module] = []
    with rng.using(generator):
        for index in range(len(widths) - 1):
            linear = nn.Linear(widths[index], widths[index + 1], dtype=np.float64)
            if config.init == "he":
                nn.init.kaiming_uniform_(linear.weight, nonlinearity="relu", generator=generator)
            else:
                nn.init.xavier_uniform_(linear.weight, generator=generator)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
            modules.append(linear)
            if index < len(widths) - 2:
                modules.append(activation_module(config.activation))
    return nn.Sequential(*modules)


def _make_optimizer(config: Config, params: list[Any]) -> optim.Optimizer:
    if config.optimizer == "adam":
        return optim.Adam(params, lr=config.lr)
    return optim.SGD(params, lr=config.lr, momentum=0.9 if config.optimizer == "momentum" else 0.0)


def _bytes(values: np.ndarray, low: float, high: float) -> str:
    """Values mapped linearly from [low, high] to 0..255, as base64 (how the page receives images)."""
    span = high - low if high > low else 1.0
    scaled = np.clip(np.nan_to_num((values - low) / span, nan=0.5), 0.0, 1.0)
    return base64.b64encode(np.round(scaled * 255).astype(np.uint8).tobytes()).decode("ascii")


def _number(value: float) -> float | str:
    """A float for JSON: NaN and infinities as strings (strict JSON has none)."""
    value = float(value)
    return value if math.isfinite(value) else str(value)


class Session:
    """A playground run: :class:`Config`, its points, the model, the optimizer and the gradient monitor.

    Methods are thread-safe (one lock): the server trains in a worker thread while the page asks for frames
    and explanations.
    """

    def __init__(self, config: Config, upload: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.config = config
        self.points = make_points(config, upload)
        if config.batch_size > len(self.points.train_y):
            raise ArgumentError(
                f"playground: batch={config.batch_size} is larger than the {len(self.points.train_y)} training points"
            )
        self.task = self.points.task
        self.loss_name = "mse" if self.task == "regression" else config.loss
        self.train_inputs = feature_matrix(self.points.train_x, config.features)
        self.test_inputs = feature_matrix(self.points.test_x, config.features)
        self._lock = threading.RLock()
        self.reset()

    # -- training ------------------------------------------------------------------------------------
    def reset(self) -> None:
        """The initial weights, optimizer state and batch order again (the same ones: they come from the seed)."""
        with self._lock:
            self.model = build_model(self.config, len(self.config.features), self.points.num_outputs)
            self.optimizer = _make_optimizer(self.config, list(self.model.parameters()))
            self.monitor = GradientMonitor(warn=False, patience=5)
            self.monitor.attach(self.model)
            self.step_count = 0
            self._order_generator = np.random.default_rng([self.config.seed, 2])
            self._order = self._order_generator.permutation(len(self.points.train_y))
            self._position = 0
            self.epoch = 0
            self.history: list[tuple[int, float, float]] = []
            self._record_losses()

    def _targets(self, labels: np.ndarray) -> Tensor:
        """What the loss compares the output with: class indices (cross-entropy), one-hot rows or values (MSE)."""
        if self.task == "classification" and self.loss_name == "mse":
            return Tensor(np.eye(self.points.num_classes)[labels])
        return Tensor(labels)

    def _loss(self, model: nn.Module, inputs: np.ndarray, labels: np.ndarray, penalty: bool) -> Tensor:
        out = model(Tensor(inputs))
        targets = self._targets(labels)
        if self.loss_name == "cross_entropy":
            value = nn.functional.cross_entropy(out, targets)
        else:
            value = nn.functional.mse_loss(out, targets)
        if penalty and self.config.regularization != "none" and self.config.reg_rate > 0:
            value = value + self._penalty(model)
        return value

    def _penalty(self, model: nn.Module) -> Tensor:
        weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
        if self.config.regularization == "l1":
            return nn.utils.l1_penalty(weights, self.config.reg_rate)
        return nn.utils.l2_penalty(weights, self.config.reg_rate)

    def next_batch(self) -> np.ndarray:
        """The indices of the training points of the next mini-batch (the one :meth:`step` takes next)."""
        with self._lock:
            if self._position >= len(self._order):
                self._order = self._order_generator.permutation(len(self.points.train_y))
                self._position = 0
                self.epoch += 1
            return self._order[self._position : self._position + self.config.batch_size]

    def step(self, count: int = 1) -> None:
        """Train ``count`` mini-batches; the monitor measures each step."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10_000:
            raise ArgumentError(f"playground: step count must be an integer in [1, 10000], got {count!r}")
        with self._lock:
            for _ in range(count):
                batch = self.next_batch()
                self._position += len(batch)
                self.optimizer.zero_grad()
                loss = self._loss(self.model, self.train_inputs[batch], self.points.train_y[batch], penalty=True)
                loss.backward()
                self.optimizer.step()
                self.step_count += 1
                self.monitor.record_step(self.step_count, self.epoch)
            if len(self.monitor.records) > 2000:  # keep the latest only: a long run must not grow without end
                del self.monitor.records[:-500]
            self._record_losses()

    def losses(self) -> dict[str, float]:
        """The loss (without the penalty) on all training points and on all test points."""
        with self._lock, autograd.no_grad():
            train = float(self._loss(self.model, self.train_inputs, self.points.train_y, False).data)
            test = math.nan
            if len(self.points.test_y):
                test = float(self._loss(self.model, self.test_inputs, self.points.test_y, False).data)
            return {"train": train, "test": test}

    def _record_losses(self) -> None:
        values = self.losses()
        self.history.append((self.step_count, values["train"], values["test"]))
        if len(self.history) > _HISTORY:
            self.history = self.history[:1] + self.history[2::2]  # thin out, keep the first

    # -- what the page draws ---------------------------------------------------------------------------
    def linears(self) -> list[nn.Linear]:
        return [m for m in self.model if isinstance(m, nn.Linear)]

    def _layer_outputs(self, points: np.ndarray) -> list[np.ndarray]:
        """Each layer's output (after the activation) at ``points``: features, hidden layers, the output."""
        with autograd.no_grad():
            signal = Tensor(feature_matrix(points, self.config.features))
            outputs = [signal.data]
            modules = list(self.model)
            for position, module in enumerate(modules):
                signal = module(signal)
                last_of_layer = position + 1 == len(modules) or isinstance(modules[position + 1], nn.Linear)
                if last_of_layer:
                    outputs.append(signal.data)
            return outputs

    @staticmethod
    def grid(size: int) -> np.ndarray:
        """``size × size`` points covering the view, row by row from the top (y = +view) to the bottom."""
        view = 1.1 * SPAN
        axis = np.linspace(-view, view, size)
        xs, ys = np.meshgrid(axis, axis[::-1])
        return np.stack([xs.ravel(), ys.ravel()], axis=1)

    def frame(self, include_points: bool = False) -> dict[str, Any]:
        """Everything the page draws now, as JSON-able values (images as base64 bytes)."""
        with self._lock:
            losses = self.history[-1]
            frame: dict[str, Any] = {
                "step": self.step_count,
                "epoch": self.epoch,
                "task": self.task,
                "loss": {"train": _number(losses[1]), "test": _number(losses[2])},
                "history": [[s, _number(a), _number(b)] for s, a, b in self.history],
                "network": self._network(),
                "output": self._output_image(),
                "neurons": self._thumbnails(),
                "warnings": self._warnings(),
                "batch": self.next_batch().tolist(),
            }
            if include_points:
                frame["points"] = self.points_json()
            return frame

    def points_json(self) -> dict[str, Any]:
        p = self.points
        return {
            "task": p.task,
            "num_classes": p.num_classes,
            "view": 1.1 * SPAN,
            "scale": p.scale,
            "train": np.round(p.train_x, 4).tolist(),
            "train_y": p.train_y.reshape(-1).tolist(),
            "test": np.round(p.test_x, 4).tolist(),
            "test_y": p.test_y.reshape(-1).tolist(),
            "range": self._target_range(),
        }

    def _target_range(self) -> list[float]:
        if self.task != "regression":
            return [0.0, 1.0]
        values = np.concatenate([self.points.train_y.ravel(), self.points.test_y.ravel()])
        bound = float(np.abs(values).max(initial=1.0)) or 1.0
        return [-bound, bound]

    def _network(self) -> dict[str, Any]:
        layers = []
        for linear in self.linears():
            grad = linear.weight.grad
            layers.append(
                {
                    "weight": linear.weight.data.tolist(),
                    "bias": bias_of(linear).tolist(),
                    "grad": None if grad is None else grad.data.tolist(),
                }
            )
        return {"features": list(self.config.features), "widths": self._widths(), "layers": layers}

    def _widths(self) -> list[int]:
        return [len(self.config.features), *self.config.hidden, self.points.num_outputs]

    def _output_image(self) -> dict[str, Any]:
        """The decision regions (each class's probability) or the regression surface on the grid."""
        out = self._layer_outputs(self.grid(GRID))[-1]  # (GRID², outputs)
        if self.task == "regression":
            low, high = self._target_range()
            return {"size": GRID, "channels": 1, "data": _bytes(out[:, 0], low, high)}
        if self.loss_name == "cross_entropy":
            shifted = np.exp(out - out.max(axis=1, keepdims=True))
            probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        else:  # MSE on one-hot targets: the outputs themselves, clipped, say how sure the network is
            probabilities = np.clip(out, 0.0, 1.0)
        return {"size": GRID, "channels": out.shape[1], "data": _bytes(probabilities, 0.0, 1.0)}

    def _thumbnails(self) -> list[list[dict[str, Any]]]:
        """Every neuron's output over the view, layer by layer, each scaled by its largest |value|."""
        layers = []
        for outputs in self._layer_outputs(self.grid(THUMB)):
            neurons = []
            for column in outputs.T:
                bound = float(np.abs(column).max(initial=0.0))
                bound = bound if math.isfinite(bound) and bound > 0 else 1.0
                neurons.append({"scale": _number(bound), "data": _bytes(column, -bound, bound)})
            layers.append(neurons)
        return layers

    def _warnings(self) -> list[dict[str, Any]]:
        """The gradient monitor's warnings, each on the network layer (1 = first hidden) it concerns."""
        positions = {}
        number = 0
        for position, module in enumerate(self.model):
            if isinstance(module, nn.Linear):
                number += 1
            positions[str(position)] = number
        return [
            {"kind": kind, "layer": positions.get(layer, 0), "message": message}
            for kind, layer, message in self.monitor.warnings_
        ]

    # -- one weight, explained ------------------------------------------------------------------------
    def explain(self, layer: Any, neuron: Any, source: Any) -> dict[str, Any]:
        """The chain-rule factors of one parameter's gradient on the next mini-batch, and its update.

        ``layer`` counts the Linear layers from 1; ``source`` is the input column of the weight, or None for
        the bias. Returns per point of the batch :func:`chainrule.explain.trace`'s row for the parameter (the
        numbers ``chainrule explain`` prints), their mean, the penalty's gradient, the engine's batch gradient,
        and the value after the optimizer's real step (taken on a copy: the session does not move). The monitor
        is paused meanwhile: these passes (on the model, on the copy, whose hooks are the monitor's) are not the
        next training step's.
        """
        with self._lock, self.monitor.paused():
            linears = self.linears()
            if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= len(linears):
                raise ArgumentError(f"playground: layer must be an integer in [1, {len(linears)}], got {layer!r}")
            linear = linears[layer - 1]
            if isinstance(neuron, bool) or not isinstance(neuron, int) or not 0 <= neuron < linear.out_features:
                raise ArgumentError(
                    f"playground: neuron must be an integer in [0, {linear.out_features}) for layer {layer}, "
                    f"got {neuron!r}"
                )
            if source is not None and (
                isinstance(source, bool) or not isinstance(source, int) or not 0 <= source < linear.in_features
            ):
                raise ArgumentError(
                    f"playground: source must be an integer in [0, {linear.in_features}) for layer {layer}, "
                    f"got {source!r}"
                )
            key = f"L{layer}.w[{neuron},{source}]" if source is not None else f"L{layer}.b[{neuron}]"
            batch = self.next_batch()
            inputs, labels = self.train_inputs[batch], self.points.train_y[batch]
            samples = []
            formula = ""
            for index, point in zip(batch.tolist(), range(len(batch))):
                target = self._targets(labels[point : point + 1]).data[0]
                record = trace(self.model, inputs[point], target, loss=self.loss_name, lr=self.config.lr)
                formula = record.loss_formula
                row = next(r for r in record.backward_rows if r.key == key)
                samples.append(
                    {
                        "index": index,
                        "input": inputs[point].tolist(),
                        "target": np.asarray(target).tolist(),
                        "loss": record.loss,
                        "de_dout": row.de_dout,
                        "dout_dnet": row.dout_dnet,
                        "dnet_dparam": row.dnet_dparam,
                        "grad": row.grad,
                        "paths": row.paths,
                        "path_terms": list(row.path_terms),
                    }
                )
                name, source_label, neuron_label = row.name, row.source, row.neuron_label
            data_grad = float(np.mean([s["grad"] for s in samples]))
            for sample in samples:  # as `chainrule explain` prints them
                sample["text"] = {k: tables.number(sample[k]) for k in ("de_dout", "dout_dnet", "dnet_dparam", "grad")}
                sample["text"]["path_terms"] = [tables.number(v) for v in sample["path_terms"]]
            result = {
                "key": key,
                "name": name,
                "layer": layer,
                "neuron": neuron,
                "neuron_label": neuron_label,
                "source": source,
                "source_label": source_label,
                "kind": "weight" if source is not None else "bias",
                "loss_name": self.loss_name,
                "loss_formula": formula,
                "batch": batch.tolist(),
                "samples": samples,
                "data_grad": data_grad,
                **self._engine_step(linear, neuron, source, batch, data_grad),
            }
            result["command"] = self._explain_command(inputs[0], samples[0]["target"])
            numbers = {k: result[k] for k in ("data_grad", "grad", "old", "new")}
            numbers["penalty"] = result["penalty"]["grad"]
            numbers.update({f"state.{k}": v for k, v in result["optimizer"]["state"].items()})
            result["text"] = {k: tables.number(v) for k, v in numbers.items()}
            return result

    def _explain_command(self, point: np.ndarray, target: Any) -> str | None:
        """The ``chainrule explain`` command that prints the first point's tables (with the JSON export as
        ``weights.json``); None where the command cannot build this network (a slope-1 family activation)."""
        if self.config.activation not in _REGISTRY_ACTIVATIONS:
            return None
        widths = ",".join(str(w) for w in self._widths())
        values = ",".join(repr(float(v)) for v in point)
        targets = ",".join(repr(float(v)) for v in np.ravel(target)) if self.loss_name == "mse" else str(int(target))
        return (
            f"chainrule explain --model {widths} --activation {self.config.activation} --loss {self.loss_name} "
            f"--lr {self.config.lr!r} --weights weights.json --input={values} --target={targets}"
        )

    def _engine_step(
        self, linear: nn.Linear, neuron: int, source: int | None, batch: np.ndarray, data_grad: float
    ) -> dict[str, Any]:
        """The penalty's gradient, the batch gradient and the optimizer's step for one parameter, on copies."""
        position = list(self.model).index(linear)
        model, optimizer = copy.deepcopy((self.model, self.optimizer))
        param = model[position].weight if source is not None else model[position].bias
        where = (neuron, source) if source is not None else (neuron,)
        penalty_grad = 0.0
        if source is not None and self.config.regularization != "none" and self.config.reg_rate > 0:
            (grad,) = autograd.grad(self._penalty(model), [param])
            penalty_grad = float(grad.data[where])
        optimizer.zero_grad()
        self._loss(model, self.train_inputs[batch], self.points.train_y[batch], penalty=True).backward()
        engine_grad = float(param.grad.data[where])
        old = float(param.data[where])
        optimizer.step()
        state = {k: float(v[where]) for k, v in optimizer.state.get(param, {}).items() if isinstance(v, np.ndarray)}
        if "step" in optimizer.state.get(param, {}):
            state["step"] = float(optimizer.state[param]["step"])
        group = optimizer.param_groups[0]
        return {
            "penalty": {"kind": self.config.regularization, "rate": self.config.reg_rate, "grad": penalty_grad},
            "grad": engine_grad,
            "grad_check": abs(engine_grad - (data_grad + penalty_grad)),
            "optimizer": {
                "name": self.config.optimizer,
                "lr": self.config.lr,
                "momentum": float(group.get("momentum", 0.0)),
                "betas": list(group.get("betas", ())),
                "eps": float(group.get("eps", 0.0)),
                "state": state,
            },
            "old": old,
            "new": float(param.data[where]),
        }
