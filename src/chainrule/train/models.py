"""Ready-made models for the command line and quick experiments, built from a small JSON-able config.

``build_model(config)`` turns ``{"model": "mlp", "input_shape": [1, 8, 8], "num_classes": 10,
"hidden": [128, 64]}`` into a module; the same config, saved next to a checkpoint, rebuilds the model to load
the weights into (``chainrule evaluate RUN_DIR``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from chainrule import _checks as check
from chainrule import nn
from chainrule.nn.registry import ACTIVATIONS
from chainrule.tensor import Tensor

__all__ = ["MODELS", "ACTIVATIONS", "build_model", "estimate_parameter_count", "MAX_PARAMETERS", "SequenceClassifier"]

#: build_model refuses bigger models: 2**28 float32 parameters are 1 GiB of weights, and training needs about
#: four times that (gradients, optimizer moments) before any activations.
MAX_PARAMETERS = 1 << 28

MODELS = ("linear", "mlp", "cnn", "rnn", "lstm", "gru")


class SequenceClassifier(nn.Module):
    """A recurrent net over the rows of an image, then a linear map of the last step's output.

    Shape: input (N, 1, H, W) or (N, H, W) is read as H time steps of W features; output (N, num_classes).
    """

    def __init__(self, kind: str, features: int, hidden_size: int, num_classes: int, num_layers: int = 1) -> None:
        super().__init__()
        recurrent = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind]
        self.rnn = recurrent(features, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 4:
            x = x.reshape(x.shape[0], x.shape[2], x.shape[3])  # (N, 1, H, W) -> (N, H, W)
        output, _ = self.rnn(x)
        return self.head(output[:, -1])


def _positive_ints(values: Sequence[int], name: str) -> list[int]:
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Sequence):
        raise ValueError(f"build_model: {name} must be a list of integers, got {values!r:.60}")
    if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise ValueError(f"build_model: {name} must be integers, got {list(values)!r:.60}")
    values = [int(v) for v in values]
    if any(v < 1 for v in values):
        raise ValueError(f"build_model: {name} must be positive integers, got {values}")
    return values


def _size_fields(config: dict[str, Any]) -> tuple[str, list[int], int, list[int]]:
    """The model kind, input shape, classes and hidden widths of a config, checked (ValueError naming the field)."""
    if not isinstance(config, dict):
        raise ValueError(f"build_model: config must be a dict, got {type(config).__name__}")
    kind = config.get("model", "mlp")
    if kind not in MODELS:
        raise ValueError(f"build_model: unknown model {kind!r}; choose one of {', '.join(MODELS)}")
    for key in ("input_shape", "num_classes"):
        if key not in config:
            raise ValueError(f"build_model: the config has no {key!r}")
    input_shape = _positive_ints(config["input_shape"], "input_shape")
    num_classes = _positive_ints([config["num_classes"]], "num_classes")[0]
    hidden = _positive_ints(config.get("hidden", [128, 64]), "hidden")
    if not hidden:
        raise ValueError("build_model: hidden must hold at least one width, got []")
    return kind, input_shape, num_classes, hidden


def estimate_parameter_count(config: dict[str, Any]) -> int:
    """How many parameters :func:`build_model` would create for ``config``, computed without building it.

    Exact for every model of :data:`MODELS`; Python integers, so huge configs do not overflow.

    Examples
    --------
    >>> estimate_parameter_count({"model": "mlp", "input_shape": [1, 8, 8], "num_classes": 10, "hidden": [32]})
    2410
    >>> estimate_parameter_count({"model": "mlp", "input_shape": [784], "num_classes": 10, "hidden": [10**9]})
    795000000010
    """
    kind, input_shape, num_classes, hidden = _size_fields(config)
    features = math.prod(input_shape)
    if kind in ("linear", "mlp"):
        return check.mlp_parameter_count([features, *(hidden if kind == "mlp" else []), num_classes])
    if kind == "cnn":
        channels = input_shape[0] if len(input_shape) == 3 else 1
        height, width = (input_shape[-2], input_shape[-1]) if len(input_shape) >= 2 else (1, 1)
        dense = hidden[-1] if config.get("hidden") else 128
        convolutions = (channels * 25 + 1) * 16 + (16 * 25 + 1) * 32
        return convolutions + (32 * (height // 4) * (width // 4) + 1) * dense + (dense + 1) * num_classes
    size, features = hidden[0], input_shape[-1]
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    return gates * (size * features + size * size + 2 * size) + (size + 1) * num_classes


def _memory(count: int) -> str:
    """The size of ``count`` float32 values."""
    return check.format_bytes(4 * count)


def build_model(config: dict[str, Any]) -> nn.Module:
    """A model from its config.

    Parameters
    ----------
    config : dict
        ``model``: one of :data:`MODELS`; ``input_shape``: shape of one sample, e.g. ``[1, 28, 28]`` or
        ``[2]``; ``num_classes``: outputs; ``hidden``: layer widths (MLP), or ``[hidden_size]`` for the
        recurrent models, or the width of the CNN's dense layer; ``activation`` (default ``relu``);
        ``dropout`` (default 0).

    Examples
    --------
    >>> model = build_model({"model": "mlp", "input_shape": [1, 8, 8], "num_classes": 10, "hidden": [32]})
    >>> model
    Sequential(
      (0): Flatten(start_dim=1, end_dim=-1)
      (1): Linear(in_features=64, out_features=32, bias=True)
      (2): ReLU()
      (3): Linear(in_features=32, out_features=10, bias=True)
    )
    """
    kind, input_shape, num_classes, hidden = _size_fields(config)
    count = estimate_parameter_count(config)
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"build_model: this {kind} would have {count:,} parameters ({_memory(count)} of float32 weights, about "
            f"4x that to train); the limit is {MAX_PARAMETERS:,} ({_memory(MAX_PARAMETERS)}): use smaller hidden "
            "widths or inputs"
        )
    activation = config.get("activation", "relu")
    if activation not in ACTIVATIONS:
        raise ValueError(f"build_model: unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
    dropout = float(config.get("dropout", 0.0))
    features = math.prod(input_shape)

    def act() -> nn.Module:
        return ACTIVATIONS[activation]()

    if kind == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes))
    if kind == "mlp":
        layers: list[nn.Module] = [nn.Flatten()]
        width = features
        for size in hidden:
            layers += [nn.Linear(width, size), act()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        return nn.Sequential(*layers)
    if kind == "cnn":
        if len(input_shape) != 3:
            raise ValueError(f"build_model: the cnn needs image inputs (C, H, W), got input_shape {input_shape}")
        channels, height, width = input_shape
        if height < 4 or width < 4:
            raise ValueError(f"build_model: the cnn needs images of at least 4x4 pixels, got {height}x{width}")
        dense = hidden[-1] if config.get("hidden") else 128
        return nn.Sequential(  # LeNet-style: two conv+pool stages, then two dense layers
            nn.Conv2d(channels, 16, 5, padding=2),
            act(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2),
            act(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            *([nn.Dropout(dropout)] if dropout else []),
            nn.Linear(32 * (height // 4) * (width // 4), dense),
            act(),
            nn.Linear(dense, num_classes),
        )
    if len(input_shape) not in (2, 3) or (len(input_shape) == 3 and input_shape[0] != 1):
        raise ValueError(f"build_model: the {kind} reads image rows as a sequence; needs (1, H, W), got {input_shape}")
    return SequenceClassifier(kind, input_shape[-1], hidden[0], num_classes)
