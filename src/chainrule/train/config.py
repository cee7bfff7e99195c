"""Defaults that depend on the data and the model, and the validation of a run's ``config.json``.

``chainrule train --data mnist --model cnn`` should train a good model without more flags, and what is a good
learning rate or batch size depends on the data, the model and the optimizer. :data:`PRESETS` holds those
defaults (like Keras's per-optimizer defaults), one row per data set and model, looked up most specific first:
``(data, model)``, then ``(data, "*")``, then ``("*", model)``; anything a row leaves open comes from
:class:`~chainrule.train.runs.TrainConfig`'s own defaults. A flag the user passes always wins. When the user
picks another optimizer than the row's, the row's learning rate and momentum are not used; the optimizer's own
default learning rate (:data:`OPTIMIZER_LR`) is.

A run directory is input from outside: :func:`check_run_config` validates a loaded ``config.json`` (types,
ranges, sizes) before anything is built from it, and names the first field that is wrong.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

from chainrule.errors import CheckpointError

__all__ = ["PRESETS", "OPTIMIZER_LR", "TUNABLE", "FIXED", "preset", "resolve", "check_run_config", "presets_table"]

#: Learning rates used when the optimizer differs from the preset's (PyTorch's defaults, SGD's raised to 0.1).
OPTIMIZER_LR: dict[str, float] = {"sgd": 0.1, "adam": 0.001, "adamw": 0.001, "rmsprop": 0.01, "adagrad": 0.01}

#: Defaults by (data, model); "*" matches any. These rows are the ones measured in the README's accuracy table.
PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("*", "cnn"): {"hidden": [128], "lr": 0.05},
    ("mnist", "*"): {"lr": 0.05, "batch_size": 128, "val_split": 0.0},
    ("fashion_mnist", "*"): {"lr": 0.05, "batch_size": 128, "val_split": 0.0},
    ("mnist", "mlp"): {"hidden": [512, 256], "epochs": 15},
    ("mnist", "cnn"): {"hidden": [128], "epochs": 8},
    ("fashion_mnist", "mlp"): {"hidden": [512, 256], "epochs": 25, "optimizer": "adam", "lr": 0.001, "dropout": 0.2},
    ("fashion_mnist", "cnn"): {"hidden": [256], "epochs": 20, "dropout": 0.3, "schedule": "cosine"},
    ("linear_regression", "*"): {"lr": 0.01, "batch_size": 32, "epochs": 200, "val_split": 0.0},
}

#: Flags a resumed run may change (applied to the rest of the run and recorded in config.json).
TUNABLE = ("epochs", "lr", "schedule", "patience")
#: Flags that define the model, the data, the split or the optimizer's state: a resumed run must keep them.
FIXED = (
    "data", "model", "hidden", "activation", "dropout", "limit", "val_split", "optimizer", "momentum",
    "weight_decay", "batch_size", "seed",
)  # fmt: skip


def preset(data: str, model: str) -> dict[str, Any]:
    """The defaults :data:`PRESETS` gives ``data`` and ``model`` (most specific row last, so it wins).

    Examples
    --------
    >>> preset("mnist", "cnn")["lr"], preset("mnist", "cnn")["epochs"]
    (0.05, 8)
    >>> preset("digits", "mlp")
    {}
    """
    merged: dict[str, Any] = {}
    for key in (("*", model), (data, "*"), (data, model)):
        merged.update(PRESETS.get(key, {}))
    return merged


def resolve(given: dict[str, Any]) -> dict[str, Any]:
    """Every field of a :class:`~chainrule.train.runs.TrainConfig` from the flags the user ``given``
    (``None`` or absent = not given), the preset of its data and model, and the dataclass defaults.

    Examples
    --------
    >>> resolve({"data": "mnist", "model": "mlp"})["hidden"]
    [512, 256]
    >>> resolve({"data": "mnist", "model": "mlp", "optimizer": "adam"})["lr"]
    0.001
    """
    from chainrule.train.runs import TrainConfig

    given = {k: v for k, v in given.items() if v is not None}
    base = {f.name: getattr(TrainConfig(), f.name) for f in fields(TrainConfig)}
    data, model = given.get("data", base["data"]), given.get("model", base["model"])
    row = preset(data, model)
    resolved = {**base, **row, **given}
    row_optimizer = row.get("optimizer", base["optimizer"])
    if resolved["optimizer"] != row_optimizer:  # the row's rate was tuned for another optimizer
        if "lr" not in given:
            resolved["lr"] = OPTIMIZER_LR.get(resolved["optimizer"], base["lr"])
    return resolved


def presets_table() -> str:
    """The presets as lines for ``chainrule train --help``."""
    lines = []
    for (data, model), row in PRESETS.items():
        values = ", ".join(f"{k.replace('_', '-')} {','.join(map(str, v)) if isinstance(v, list) else v}"
                           for k, v in row.items())  # fmt: skip
        lines.append(f"  {data:<17} {model:<5} {values}")
    return "\n".join(lines)


# -- config.json of a run directory ------------------------------------------------------------------
_MAX_DIM = 1 << 16  # one side of an input
_MAX_CLASSES = 1 << 20
_MAX_LAYERS = 64


class _Field(str):
    """Where a value came from, for messages: a field path (``train.lr``) plus how the source is named
    (``config.json: field``) and which error reports it. A ``str`` (the path), so ``f"{path}[{i}]"`` works."""

    source: str = "config.json: field"
    error: type[Exception] = CheckpointError

    def at(self, suffix: str) -> _Field:
        return _field(self + suffix, self.source, self.error)


def _field(path: str, source: str = "config.json: field", error: type[Exception] = CheckpointError) -> _Field:
    result = _Field(path)
    result.source, result.error = source, error
    return result


def _where(path: str) -> str:
    source = path.source if isinstance(path, _Field) else "config.json: field"
    return f"{source} {str(path)!r}"


def _fail(path: str, message: str) -> Exception:
    error = path.error if isinstance(path, _Field) else CheckpointError
    return error(f"{_where(path)} {message}")


def _sub(path: str, suffix: str) -> str:
    return path.at(suffix) if isinstance(path, _Field) else path + suffix


def _int(value: Any, path: str, low: int = 1, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"must be an integer, got {_short(value)}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high:,}]"
        raise _fail(path, f"must be {bound}, got {value}")
    return value


def _int_list(value: Any, path: str, length: tuple[int, int], high: int) -> list[int]:
    if not isinstance(value, list) or not length[0] <= len(value) <= length[1]:
        raise _fail(path, f"must be a list of {length[0]} to {length[1]} integers, got {_short(value)}")
    return [_int(v, _sub(path, f"[{i}]"), 1, high) for i, v in enumerate(value)]


def _choice(value: Any, path: str, choices: Any) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fail(path, f"must be one of {', '.join(choices)}, got {_short(value)}")
    return value


def _fraction(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < 1):
        raise _fail(path, f"must be a number in [0, 1), got {_short(value)}")
    return float(value)


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in config:
        raise CheckpointError(f"config.json: missing field {name!r} (not a run written by 'chainrule train'?)")
    if not isinstance(config[name], dict):
        raise CheckpointError(f"{_where(name)} must be an object, got {type(config[name]).__name__}")
    return config[name]


def check_model_config(model: Any, path: str = "model") -> dict[str, Any]:
    """Validate a model config (the ``model`` object of ``config.json``) field by field; return it."""
    from chainrule.nn.registry import ACTIVATIONS
    from chainrule.train.models import MODELS

    if not isinstance(model, dict):
        raise CheckpointError(f"{_where(path)} must be an object, got {type(model).__name__}")
    for key in ("model", "input_shape", "num_classes"):
        if key not in model:
            raise CheckpointError(f"config.json: missing field '{path}.{key}'")
    _choice(model["model"], f"{path}.model", MODELS)
    _int_list(model["input_shape"], f"{path}.input_shape", (1, 3), _MAX_DIM)
    _int(model["num_classes"], f"{path}.num_classes", 1, _MAX_CLASSES)
    if "hidden" in model:
        _int_list(model["hidden"], f"{path}.hidden", (1, _MAX_LAYERS), 1 << 40)  # sizes: see the parameter limit
    if "activation" in model:
        _choice(model["activation"], f"{path}.activation", tuple(ACTIVATIONS))
    if "dropout" in model:
        _fraction(model["dropout"], f"{path}.dropout")
    return model


def check_run_config(config: Any) -> dict[str, Any]:
    """Validate a run's ``config.json`` (already parsed) before anything is built from it.

    Raises
    ------
    CheckpointError
        Naming the first field that is missing or has the wrong type or range.

    Examples
    --------
    >>> check_run_config({"model": {"model": "mlp", "input_shape": [2], "num_classes": "2"}, "data": {}})
    Traceback (most recent call last):
    ...
    chainrule.errors.CheckpointError: config.json: field 'model.num_classes' must be an integer, got '2'
    """
    from chainrule import data as datasets

    if not isinstance(config, dict):
        raise CheckpointError(f"config.json must hold a JSON object, got {type(config).__name__}")
    model = check_model_config(_section(config, "model"))
    data = _section(config, "data")
    for key in ("name", "task", "input_shape", "num_classes"):
        if key not in data:
            raise CheckpointError(f"config.json: missing field 'data.{key}'")
    _choice(data["name"], "data.name", tuple(datasets.DATASETS))
    _choice(data["task"], "data.task", ("classification", "regression"))
    shape = _int_list(data["input_shape"], "data.input_shape", (1, 3), _MAX_DIM)
    if shape != model["input_shape"]:
        raise CheckpointError(
            f"{_where('data.input_shape')} is {shape} but 'model.input_shape' is {model['input_shape']}"
        )
    if data["task"] == "regression" and data["num_classes"] is None:  # what runs of a regression record
        classes = 0
    else:
        classes = _int(data["num_classes"], "data.num_classes", 1 if data["task"] == "classification" else 0,
                       _MAX_CLASSES)  # fmt: skip
    names = data.get("class_names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and len(n) <= 200 for n in names):
        raise CheckpointError(f"{_where('data.class_names')} must be a list of strings, got {_short(names)}")
    if names and len(names) != classes:
        raise CheckpointError(f"{_where('data.class_names')} has {len(names)} names for {classes} classes")
    if "train" in config:
        check_train_config(config["train"])
    return config


def check_train_config(
    train: Any, path: str = "train", source: str = "config.json: field", error: type[Exception] = CheckpointError
) -> dict[str, Any]:
    """Validate the ``train`` object (a :class:`TrainConfig` as a dict): known fields, each of its type and range.

    Parameters
    ----------
    train : dict
        The fields to check.
    path : str
        The prefix of the field names in messages (``"train"``: ``'train.lr'``; ``""``: ``'lr'``).
    source : str
        How messages name where the fields come from, before the field's name (``config.json: field``).
    error : type
        The exception raised (:class:`~chainrule.errors.CheckpointError` for files, ``ArgumentError`` for a
        :class:`TrainConfig` built in Python).

    Examples
    --------
    >>> from chainrule.errors import ArgumentError
    >>> check_train_config({"lr": -1}, "", "train: TrainConfig field", ArgumentError)
    Traceback (most recent call last):
    ...
    chainrule.errors.ArgumentError: train: TrainConfig field 'lr' must be > 0, got -1
    """
    from chainrule.data import DATASETS
    from chainrule.train.loop import OPTIMIZERS
    from chainrule.train.models import MODELS
    from chainrule.train.runs import SCHEDULES, TrainConfig

    prefix = f"{path}." if path else ""
    if not isinstance(train, dict):
        raise error(f"{source} {path!r} must be an object, got {type(train).__name__}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(train) - known)
    if unknown:
        raise error(f"{source.removesuffix(' field')}: unknown field '{prefix}{unknown[0]}'")
    checks: dict[str, Any] = {
        "data": lambda v, p: _choice(v, p, tuple(DATASETS)),
        "model": lambda v, p: _choice(v, p, MODELS),
        "hidden": lambda v, p: _int_list(v, p, (1, _MAX_LAYERS), 1 << 40),
        "dropout": _fraction,
        "val_split": _fraction,
        "epochs": lambda v, p: _int(v, p, 0),
        "batch_size": lambda v, p: _int(v, p, 1),
        "patience": lambda v, p: _int(v, p, 0),
        "seed": lambda v, p: _int(v, p, 0),
        "optimizer": lambda v, p: _choice(v, p, OPTIMIZERS),
        "schedule": lambda v, p: _choice(v, p, SCHEDULES),
        "lr": _positive_number,
        "momentum": lambda v, p: _number(v, p, 0.0, 1.0, high_open=True),  # what SGD and RMSprop accept
        "weight_decay": lambda v, p: _number(v, p, 0.0, math.inf),
    }
    for key, value in train.items():
        if key in checks:
            checks[key](value, _field(prefix + key, source, error))
    if train.get("limit") is not None:
        _int(train["limit"], _field(f"{prefix}limit", source, error), 1)
    return train


def _number(value: Any, path: str, low: float, high: float, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(path, f"must be a finite number, got {_short(value)}")
    if not low <= value <= high or (high_open and value == high):
        raise _fail(path, f"must be in [{low:g}, {high:g}{')' if high_open else ']'}, got {value}")
    return float(value)


def _positive_number(value: Any, path: str) -> float:
    number = _number(value, path, -math.inf, math.inf)
    if number <= 0:
        raise _fail(path, f"must be > 0, got {value}")
    return number
