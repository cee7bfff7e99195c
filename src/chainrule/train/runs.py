"""Runs: what ``chainrule train``, ``evaluate`` and ``predict`` do, as functions you can call from Python.

A run directory holds everything about one training run:

=======================  ==========================================================================
``config.json``          the :class:`TrainConfig`, the model config, the dataset info, test metrics
``model.safetensors``    the final weights (the best epoch's when early stopping restored them)
``last.safetensors``     full checkpoint after the last epoch (``chainrule train --resume``)
``best.safetensors``     full checkpoint of the epoch with the best validation loss
``history.json/.csv``    per-epoch loss, metrics, learning rate and time
``*.png``                learning curves, confusion matrix, misclassified images, decision boundary
=======================  ==========================================================================
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import data as datasets
from chainrule import rng
from chainrule.data import preprocess
from chainrule.errors import ArgumentError, CheckpointError, DataError
from chainrule.io import atomic_write_bytes, load_into, read_json_strict, save, temp_suffix, temp_writer_dead
from chainrule.nn.module import Module
from chainrule.optim.lr_scheduler import CosineAnnealingLR
from chainrule.train import plots
from chainrule.train.callbacks import Callback, EarlyStopping, HistoryLogger, LRScheduler, ModelCheckpoint, TrainState
from chainrule.train.config import FIXED, TUNABLE, check_run_config, check_train_config, resolve
from chainrule.train.history import History
from chainrule.train.loop import evaluate, fit, make_optimizer, predict
from chainrule.train.metrics import classification_report, confusion_matrix
from chainrule.train.models import build_model

__all__ = [
    "TrainConfig",
    "RunResult",
    "train_run",
    "train_from_flags",
    "evaluate_run",
    "predict_files",
    "load_run",
    "DATASET_NAMES",
]

DATASET_NAMES = tuple(datasets.DATASETS)
SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Everything ``chainrule train`` needs; every field has a default, so ``TrainConfig()`` trains an MLP on
    the bundled digits offline. The command line fills the fields the user did not pass from the presets of
    :mod:`chainrule.train.config` (per data set and model); ``TrainConfig(data="mnist")`` does not."""

    data: str = "digits"
    model: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [128, 64])
    activation: str = "relu"
    dropout: float = 0.0
    epochs: int = 20
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    val_split: float = 0.1
    patience: int = 0
    schedule: str = "constant"
    seed: int = 0
    data_dir: str | None = None
    limit: int | None = None
    out: str | None = None
    plots: bool = True

    def __post_init__(self) -> None:
        """Values that mean the same as the plain ones become them: a tuple or array of hidden widths a list,
        NumPy scalars (``np.float32(0.1)``, ``np.int64(3)``) Python numbers. The values are checked when the
        config is trained (:func:`train_run`)."""
        for item in fields(self):
            setattr(self, item.name, _plain(getattr(self, item.name)))

    @property
    def run_dir(self) -> Path:
        return Path(self.out or os.path.join("runs", f"{self.data}-{self.model}"))


def _plain(value: Any) -> Any:
    """``value`` with NumPy scalars as Python numbers and tuples/arrays as lists (of plain values)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class RunResult:
    """What :func:`train_run` produced."""

    model: Module
    history: History
    test: dict[str, float]
    run_dir: Path
    files: list[Path]


def _load_splits(name: str, data_dir: str | None, limit: int | None) -> Any:
    """The dataset's splits; image files are looked up in ``data_dir`` first, ``limit`` caps each split."""
    if name not in datasets.DATASETS:
        raise DataError(f"train: unknown dataset {name!r}; choose one of {', '.join(datasets.DATASETS)}")
    if name in _FILE_DATASETS:
        return datasets.load(name, root=data_dir, limit=limit)
    return datasets.load(name)


_FILE_DATASETS = ("mnist", "fashion_mnist")


def _first(dataset: Any, n: int | None) -> Any:
    if n is None or n >= len(dataset):
        return dataset
    return datasets.TensorDataset(*(array[:n] for array in dataset.arrays))


def _write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=1) + "\n").encode())


def _print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


#: The TrainConfig fields that are command-line flags of ``chainrule train``.
TRAIN_FLAGS = tuple(f.name for f in fields(TrainConfig) if f.name != "plots")


def train_from_flags(
    given: dict[str, Any], resume: bool = False, force: bool = False, verbose: int = 1, distributed: Any = None
) -> RunResult:
    """``chainrule train``: the flags the user passed (``None``: not passed) complete the config.

    A new run takes what was not passed from the presets of its data and model
    (:func:`chainrule.train.config.resolve`); a resumed run from its checkpoint, so ``--resume --epochs 30``
    continues the run as it was configured.
    """
    passed = {k: v for k, v in given.items() if v is not None}
    if not resume:
        return train_run(
            TrainConfig(**resolve(passed)), resume=False, force=force, verbose=verbose, distributed=distributed
        )
    defaults = TrainConfig(**resolve(passed))
    saved, _ = _saved_train_config(defaults.run_dir / "last.safetensors")
    merged = {**saved, **passed}
    merged.setdefault("out", str(defaults.run_dir))
    return train_run(TrainConfig(**merged), resume=True, verbose=verbose, distributed=distributed)


def _saved_train_config(last: Path) -> tuple[dict[str, Any], int]:
    """The validated ``train`` config stored in a checkpoint (what the run was trained with), and how many
    epochs the checkpoint has trained."""
    from chainrule.io import load

    if not last.is_file():
        raise CheckpointError(f"train: cannot resume: {str(last)!r} does not exist (train without --resume first)")
    saved = load(last)
    train = saved.get("config", {}).get("train") if isinstance(saved, dict) else None
    if not isinstance(train, dict):
        raise CheckpointError(f"train: cannot resume: {str(last)!r} does not record the run's training config")
    check_train_config(train, "train", f"train: cannot resume: {str(last)!r}: field")
    epoch = saved.get("epoch", 0)
    done = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0 else 0
    return {k: v for k, v in train.items() if k in TRAIN_FLAGS}, done


def _check_resume_matches(config: TrainConfig, last: Path) -> list[str]:
    """Refuse a resume whose config changes the model, data, split or optimizer, or that leaves no epoch to
    train; return the changed tunables (:data:`chainrule.train.config.TUNABLE`)."""
    saved, done = _saved_train_config(last)
    current = asdict(config)
    differ = [key for key in FIXED if key in saved and _comparable(saved[key]) != _comparable(current[key])]
    if differ:
        listed = ", ".join(f"--{k.replace('_', '-')} {_flag_text(current[k])} (the run has {_flag_text(saved[k])})"
                           for k in differ)  # fmt: skip
        raise ArgumentError(
            f"train: cannot resume {str(last.parent)!r} with other settings: {listed}; these define the model, the "
            "data or the optimizer's state, so start a new run (another --out, or --force to replace this one)"
        )
    if config.epochs <= done:
        raise ArgumentError(
            f"train: {str(last.parent)!r} already has {done} epoch{'s' * (done != 1)}; pass --epochs N with "
            f"N > {done} to train more"
        )
    return [key for key in TUNABLE if key in saved and saved[key] != current[key]]


def _comparable(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _flag_text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


#: What a run directory holds (besides ``*.png`` plots and the hidden temporaries of atomic writes).
RUN_FILES = frozenset(
    {"config.json", "model.safetensors", "last.safetensors", "best.safetensors", "history.json", "history.csv"}
)


def _foreign_files(run_dir: Path) -> list[str]:
    """The names in ``run_dir`` that a run does not write (sorted): anything but :data:`RUN_FILES`, plots and
    the ``.<file>.tmp-...`` temporaries of a run's own files."""

    def ours(entry: Path) -> bool:
        name = entry.name
        if entry.is_symlink() or not entry.is_file():
            return False
        if name.startswith(".") and ".tmp-" in name:
            name = name[1:].split(".tmp-", 1)[0]
        return name in RUN_FILES or name.endswith(".png")

    return sorted(entry.name for entry in run_dir.iterdir() if not ours(entry))


def _is_run(run_dir: Path) -> bool:
    return (run_dir / "config.json").is_file() or (run_dir / "last.safetensors").is_file()


def _check_run_dir(run_dir: Path, resume: bool, force: bool) -> bool:
    """Whether ``run_dir`` holds a run to replace; refuses a file, a non-empty directory without ``resume``
    or ``force``, and for ``force`` a directory that is not only a run (its own files are never deleted) or
    that holds the current directory. Checked before anything is loaded, and again just before training."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ArgumentError(f"train: --out {str(run_dir)!r} is a file, not a directory")
    occupied = not resume and run_dir.is_dir() and any(run_dir.iterdir())
    if not occupied:
        return False
    foreign = _foreign_files(run_dir)
    if foreign or not _is_run(run_dir):
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        what = "is not a run directory" if not _is_run(run_dir) else "holds files that are not a run's"
        raise ArgumentError(
            f"train: --out {str(run_dir)!r} {what} ({shown}); train never replaces it, choose another --out"
        )
    if not force:
        raise ArgumentError(
            f"train: {str(run_dir)!r} already holds a run; pass --resume to continue it, --force to replace it, "
            "or another --out"
        )
    here, target = Path.cwd().resolve(), run_dir.resolve()
    if here == target or target in here.parents:
        raise ArgumentError(
            f"train: --out {str(run_dir)!r} is or contains the current directory, which --force cannot replace; "
            "run from another directory or choose another --out"
        )
    return True


def _prepare_run_dir(run_dir: Path, resume: bool, force: bool) -> Path:
    """The directory to train into. A run directory that holds files is never overwritten: refused unless
    ``resume`` (train in place) or ``force`` (train into a hidden sibling, swapped in by :class:`_SwapIn`)."""
    if resume:
        _check_run_dir(run_dir, resume, force)
        return run_dir
    if _check_run_dir(run_dir, resume, force):
        _remove_stale_temporaries(run_dir)
        temporary = run_dir.parent / f".{run_dir.name}.tmp-{temp_suffix()}"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
        return temporary
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _remove_stale_temporaries(run_dir: Path) -> None:
    """Remove the ``.<name>.tmp-<host>-<pid>`` directories that earlier ``--force`` runs on this host left
    when they were killed before their first checkpoint (their process is gone; the same test as for the
    temporaries of :func:`chainrule.io.atomic_write_bytes`). Never an ``.old-`` one: that may be the only copy."""
    prefix = f".{run_dir.name}.tmp-"
    for entry in run_dir.parent.glob(f"{prefix}*"):
        host, _, pid = entry.name[len(prefix) :].rpartition("-")
        if entry.is_dir() and not entry.is_symlink() and temp_writer_dead(host or None, pid):
            shutil.rmtree(entry, ignore_errors=True)


def _missing_parents(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet (deepest first): what creating it will make."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_if_empty(directories: list[Path]) -> None:
    for directory in directories:  # deepest first; stops at the first one that holds something
        try:
            directory.rmdir()
        except OSError:
            return


class _SwapIn(Callback):
    """``--force``: the new run trains in a hidden sibling directory; once its first checkpoint exists (at the
    next epoch's start, or at the end) it takes the old run's place, and only then is the old run deleted."""

    def __init__(self, temporary: Path, run_dir: Path, moved: list[Any]) -> None:
        self.temporary, self.run_dir, self.moved, self.done = temporary, run_dir, moved, temporary == run_dir

    def on_epoch_begin(self, state: TrainState) -> None:
        if state.epoch > 1:
            self.swap()

    def on_train_end(self, state: TrainState) -> None:
        self.swap()

    def swap(self) -> None:
        if self.done:
            return
        old = self.run_dir.parent / f".{self.run_dir.name}.old-{os.getpid()}"
        os.replace(self.run_dir, old)
        os.replace(self.temporary, self.run_dir)
        self.done = True
        for callback in self.moved:  # the callbacks that write files now write them in the run directory
            if isinstance(callback, ModelCheckpoint):
                callback.directory = self.run_dir
            elif isinstance(callback, HistoryLogger):
                callback.path = self.run_dir / callback.path.name
        shutil.rmtree(old, ignore_errors=True)


class _ResumedSettings(Callback):
    """On resume, after the checkpoint's state is restored: the learning rate, its schedule and the number of
    epochs are the ones of this run's config (which may differ from the checkpoint's and is recorded)."""

    def __init__(self, lr: float, epochs: int, scheduler: Any) -> None:
        self.lr, self.epochs, self.scheduler = lr, epochs, scheduler

    def on_train_begin(self, state: TrainState) -> None:
        groups = state.optimizer.param_groups
        for group in groups:
            group["initial_lr"] = group["lr"] = self.lr
        if self.scheduler is not None:
            self.scheduler.base_lrs = [self.lr] * len(groups)
            self.scheduler.T_max = self.epochs
            self.scheduler.last_epoch = state.epoch
            for group in groups:
                group["lr"] = self.scheduler.lr_at(self.lr, state.epoch)


def train_run(
    config: TrainConfig, resume: bool = False, verbose: int = 1, force: bool = False, distributed: Any = None
) -> RunResult:
    """Train the model that ``config`` describes, evaluate it on the test split, write the run directory.

    An existing, non-empty run directory is refused unless ``resume`` (continue it from ``last.safetensors``;
    the fields of :data:`chainrule.train.config.FIXED` must match the checkpoint's, the others are applied) or
    ``force`` (replace it; the old run stays whole until the new run has written its first checkpoint).
    With ``distributed`` (a :class:`chainrule.distributed.ProcessGroup`, as ``mpiexec -n N chainrule train``
    makes) every rank trains and only rank 0 creates and writes the run directory.

    Examples
    --------
    >>> import tempfile
    >>> result = train_run(TrainConfig(data="xor", hidden=[8], epochs=2, out=tempfile.mkdtemp(), plots=False),
    ...                    verbose=0)  # doctest: +ELLIPSIS
    Training mlp on xor ...
    >>> sorted(result.test)
    ['accuracy', 'loss']
    """
    # the same checks as for a config.json, worded for a TrainConfig
    check_train_config(asdict(config), "", "train: TrainConfig field", ArgumentError)
    run_dir = config.run_dir
    last = run_dir / "last.safetensors"
    changed: list[str] = []
    _check_run_dir(run_dir, resume, force)
    if resume:
        changed = _check_resume_matches(config, last)
    rng.manual_seed(config.seed)
    splits = _load_splits(config.data, config.data_dir, config.limit)
    train_set, test_set, info = _first(splits.train, config.limit), _first(splits.test, config.limit), splits.info
    _check_model_fits_data(config.model, info)
    _check_validation_samples(len(train_set), config)
    regression = info.task == "regression"
    model_config = {
        "model": config.model,
        "input_shape": list(info.input_shape),
        "num_classes": 1 if regression else info.num_classes,
        "hidden": list(config.hidden),
        "activation": config.activation,
        "dropout": config.dropout,
    }
    model = build_model(model_config)
    optimizer = make_optimizer(
        config.optimizer, model.parameters(), lr=config.lr, weight_decay=config.weight_decay, momentum=config.momentum
    )
    loss = "mse" if regression else "cross_entropy"
    metrics = ["mae", "rmse", "r2"] if regression else ["accuracy"]
    val_split = config.val_split if config.val_split > 0 else None

    leader = distributed is None or distributed.is_leader  # under mpiexec only rank 0 writes the run
    created = _missing_parents(run_dir) if leader else []
    work_dir = _prepare_run_dir(run_dir, resume, force) if leader else run_dir
    print(
        f"Training {config.model} on {info.name} ({len(train_set)} training, {len(test_set)} test samples "
        f"of shape {tuple(info.input_shape)}; {model.num_parameters():,} parameters) -> {run_dir}"
        + (f" (resumed; changed: {', '.join(changed)})" if changed else "")
    )
    monitor = "val_loss" if val_split else "loss"
    callbacks: list[Any] = [ModelCheckpoint(work_dir, monitor=monitor), HistoryLogger(work_dir / "history.csv")]
    swap = _SwapIn(work_dir, run_dir, callbacks[:2])
    if leader:  # the other ranks' file writers are dropped by fit (DataParallelFit.callbacks)
        callbacks.append(swap)
    if config.patience:
        callbacks.append(EarlyStopping(monitor=monitor, patience=config.patience, restore_best=True))
    scheduler = None
    if config.schedule == "cosine":  # the learning rate falls from lr to 0 along a half cosine over the epochs
        scheduler = CosineAnnealingLR(optimizer, T_max=config.epochs)
        callbacks.append(LRScheduler(scheduler))
    if resume:
        callbacks.append(_ResumedSettings(config.lr, config.epochs, scheduler))
    try:
        history = fit(
            model,
            train_set,
            loss=loss,
            optimizer=optimizer,
            epochs=config.epochs,
            batch_size=config.batch_size,
            val_split=val_split,
            metrics=metrics,
            callbacks=callbacks,
            verbose=verbose,
            resume=last if resume else None,
            config={"train": asdict(config), "model": model_config},
            distributed=distributed,
        )
    except BaseException:
        if leader and not swap.done:  # the new run never got its first checkpoint: drop it, the old run is untouched
            shutil.rmtree(work_dir, ignore_errors=True)
        _remove_if_empty(created)  # a new --out that never got a file is not left behind
        raise
    if not leader:
        return RunResult(model, history, {}, run_dir, [])
    swap.swap()

    test = evaluate(model, test_set, loss=loss, metrics=metrics)
    files = [run_dir / "model.safetensors", run_dir / "config.json", run_dir / "history.json"]
    save(model.state_dict(), files[0])
    _write_json(
        files[1],
        {
            "train": asdict(config),
            "model": model_config,
            "data": {
                "name": info.name,
                "task": info.task,
                "input_shape": list(info.input_shape),
                "num_classes": info.num_classes,
                "class_names": list(info.class_names or []),
            },
            "test": test,
        },
    )
    history.save_json(files[2])
    files.append(run_dir / "history.csv")
    if config.plots:
        files += _plots(model, history, test_set, info, run_dir, regression)
    files += [path for path in (run_dir / "last.safetensors", run_dir / "best.safetensors") if path.is_file()]

    print(f"Test ({len(test_set)} samples): " + "  ".join(f"{k} {v:.4f}" for k, v in test.items()))
    print(history.diagnosis(test_accuracy=test.get("accuracy")))
    print(f"Wrote {_listing([p.name for p in files])} to {run_dir}")
    return RunResult(model, history, test, run_dir, files)


def _check_model_fits_data(model: str, info: Any) -> None:
    """Refuse a model that cannot read the data set's samples, naming both flags."""
    shape = tuple(info.input_shape)
    if model == "cnn" and (len(shape) != 3 or min(shape[1:]) < 4):
        need = "images of shape (C, H, W), at least 4x4"
    elif model in ("rnn", "lstm", "gru") and not (len(shape) == 2 or (len(shape) == 3 and shape[0] == 1)):
        need = "images of shape (1, H, W) (it reads their rows as a sequence)"
    else:
        return
    raise ArgumentError(
        f"train: --model {model} does not fit --data {info.name}: the {model} needs {need}, but {info.name} has "
        f"samples of shape {shape}; use --model mlp or linear, or an image data set"
    )


def _check_validation_samples(samples: int, config: TrainConfig) -> None:
    """Refuse a --val-split that leaves no validation (or no training) sample of the ``samples`` there are."""
    from chainrule.data.dataset import _split_lengths

    if config.val_split <= 0:
        return
    train, val = _split_lengths(samples, [1 - config.val_split, config.val_split])
    if val == 0 or train == 0:
        limit = f"--limit {config.limit} leaves" if config.limit is not None else f"{config.data} has"
        raise ArgumentError(
            f"train: {limit} {samples} training sample{'s' * (samples != 1)}, which with --val-split "
            f"{config.val_split:g} gives {val} for validation and {train} for training; pass a larger --limit "
            "or --val-split 0"
        )


def _listing(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _plots(model: Module, history: History, test_set: Any, info: Any, run_dir: Path, regression: bool) -> list[Path]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("(no plots: pip install 'chainrule[plot]' for learning curves and confusion matrices)")
        return []
    files = [plots.plot_history(history, run_dir / "curves.png")]
    if regression:
        return files
    x, y = test_set.arrays[0], test_set.arrays[-1]
    predicted = predict(model, x).argmax(axis=1)
    names = list(info.class_names) if info.class_names else None
    matrix = confusion_matrix(predicted, y, info.num_classes)
    files.append(plots.plot_confusion_matrix(matrix, run_dir / "confusion.png", names))
    if x.ndim == 4:
        files.append(plots.plot_misclassified(x, y, predicted, run_dir / "misclassified.png", names))
    elif x.ndim == 2 and x.shape[1] == 2:
        files.append(plots.plot_decision_boundary(model, x, y, run_dir / "decision_boundary.png"))
    return files


def load_run(run_dir: str | os.PathLike[str]) -> tuple[Module, dict[str, Any]]:
    """The trained model of a run directory (in evaluation mode) and its ``config.json``.

    ``config.json`` is read as untrusted input (strict JSON, size and depth limits, every field checked) before
    the model is built from it, and the weights are loaded from ``model.safetensors`` (never unpickled).

    Parameters
    ----------
    run_dir : str or path-like
        A directory written by ``chainrule train --out DIR`` (or ``train_run``).

    Returns
    -------
    model : Module
        The network with the run's final weights, in ``eval()`` mode.
    config : dict
        The run's configuration: ``model``, ``data`` and ``train`` sections.

    Raises
    ------
    CheckpointError
        When the directory is not a run or a file in it is malformed, naming the file and the field.

    Examples
    --------
    >>> from chainrule.train import load_run
    >>> load_run("no-such-run")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    chainrule.errors.CheckpointError: 'no-such-run' is not a run directory: expected config.json and ...
    """
    run_dir = Path(run_dir)
    config_path, weights = run_dir / "config.json", run_dir / "model.safetensors"
    if not config_path.is_file() or not weights.is_file():
        raise CheckpointError(
            f"{str(run_dir)!r} is not a run directory: expected config.json and model.safetensors "
            "(written by 'chainrule train --out DIR')"
        )
    config = _read_config(config_path)
    model = build_model(config["model"])
    load_into(model, weights)
    model.eval()
    return model, config


_MAX_CONFIG_BYTES = 1 << 20


def _read_config(path: Path) -> dict[str, Any]:
    """A run's ``config.json``: strict JSON (no NaN/Infinity, no duplicate keys; :func:`chainrule.io.read_json_strict`),
    of sane size and depth, validated field by field (:func:`chainrule.train.config.check_run_config`)."""
    config = read_json_strict(path, repr(str(path)), max_bytes=_MAX_CONFIG_BYTES)
    try:
        return check_run_config(config)
    except CheckpointError as error:
        raise CheckpointError(f"{str(path)!r}: {str(error).removeprefix('config.json: ')}") from None


def evaluate_run(
    run_dir: str | os.PathLike[str], data: str | None = None, data_dir: str | None = None, limit: int | None = None
) -> dict[str, float]:
    """Evaluate a run's model on the test split of its dataset (or of ``data``), print the report."""
    model, config = load_run(run_dir)
    name = data or config["data"]["name"]
    splits = _load_splits(name, data_dir, None)
    test_set = _first(splits.test, limit)
    if list(splits.info.input_shape) != list(config["data"]["input_shape"]):
        raise DataError(
            f"evaluate: the model reads samples of shape {tuple(config['data']['input_shape'])}, "
            f"but {name} has samples of shape {tuple(splits.info.input_shape)}"
        )
    regression = config["data"]["task"] == "regression"
    loss = "mse" if regression else "cross_entropy"
    if regression:
        metrics = ["mae", "rmse", "r2"]
    else:  # top-3 says something only with more than three classes (with two it is always 1)
        metrics = ["accuracy", "top3_accuracy"] if (config["data"]["num_classes"] or 0) > 3 else ["accuracy"]
    result = evaluate(model, test_set, loss=loss, metrics=metrics)
    print(f"{name} test split, {len(test_set)} samples:")
    _print_table([(k, f"{v:.4f}") for k, v in result.items()])
    if not regression:
        x, y = test_set.arrays[0], test_set.arrays[-1]
        predicted = predict(model, x).argmax(axis=1)
        classes = config["data"]["num_classes"]
        report = classification_report(predicted, y, config["data"]["class_names"] or None, classes)
        print("\n".join(f"  {line}" if line else line for line in report.splitlines()))
    return result


def _dataset_info(config: dict[str, Any]) -> datasets.DatasetInfo:
    """The :class:`DatasetInfo` a run's ``config.json`` records."""
    data = config["data"]
    return datasets.DatasetInfo(
        name=str(data["name"]),
        task=data["task"],
        input_shape=tuple(data["input_shape"]),
        num_classes=data.get("num_classes"),
        class_names=list(data.get("class_names") or []),
    )


def _read_input(path: Path, info: datasets.DatasetInfo) -> tuple[np.ndarray, bool]:
    """The samples in a file, shaped ``(N, *info.input_shape)`` float32, and whether they were prepared from
    an image (cropped, centred, scaled like the data set's own images; see :func:`chainrule.data.prepare_image`).

    The file's content decides how it is read, not its name: a ``.npy`` array (checked against its header,
    never unpickled) holds samples in the data set's layout, or one image of another size; anything else is
    read as an image, its size checked before decoding.
    """
    where = f"predict: {str(path)!r}"
    if not path.is_file():
        raise DataError(f"{where} does not exist" if not path.exists() else f"{where} is not a file")
    shape = tuple(info.input_shape)
    is_image_data = len(shape) == 2 or (len(shape) == 3 and shape[0] == 1)
    if preprocess.is_npy(path):
        try:
            array = preprocess.read_array(path)
        except DataError as error:
            raise DataError(f"predict: {error}") from None
        fits = (
            array.shape[-len(shape) :] == shape
            or array.shape[-2:] == shape[-2:]
            or array.shape[-1:] == (math.prod(shape),)
        )
        if is_image_data and not fits and (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (2, 3, 4))):
            return preprocess.prepare_image(array, like=info, source=where)[None], True
        return preprocess.prepare_samples(array, like=info, source=where), False
    if not is_image_data:
        raise DataError(
            f"{where}: the run's model reads samples of {info.name} of shape {shape}, not images; "
            "give a .npy array of such samples"
        )
    try:
        image = preprocess.read_image(path)
    except DataError as error:
        raise DataError(f"predict: {error}") from None
    return preprocess.prepare_image(image, like=info, source=where)[None], True


def predict_files(
    run_dir: str | os.PathLike[str], files: list[str], top: int = 3, show: str | os.PathLike[str] | None = None
) -> list[np.ndarray]:
    """Classify each file (an image, or a .npy array of one or more samples); print the top classes.

    Images are read the way the data set's own images were made (:func:`chainrule.data.prepare_image`:
    ink, crop, square, area-average, centre); ``show`` names a PNG to write of every sample as the model saw
    it (written atomically; it may not be one of ``files``).
    """
    model, config = load_run(run_dir)
    info = _dataset_info(config)
    names = info.class_names
    show_path = None if show is None else Path(show)
    if show_path is not None:
        if show_path.suffix.lower() != ".png":
            raise ArgumentError(f"predict: --show {str(show_path)!r} must name a .png file")
        if show_path.is_dir() or not show_path.parent.is_dir():
            raise ArgumentError(f"predict: --show {str(show_path)!r}: expected a file in an existing directory")
        for name in files:
            if show_path.exists() and Path(name).exists() and show_path.samefile(name):
                raise ArgumentError(f"predict: --show {str(show_path)!r} is one of the inputs; it would be overwritten")
    results, seen = [], []
    for name in files:
        samples, _ = _read_input(Path(name), info)
        seen.append(samples)
        scores = predict(model, samples)
        if info.task == "regression":
            for i, value in enumerate(scores[:, 0]):
                print(f"{name}[{i}]: {value:.4f}")
            results.append(scores)
            continue
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        for i, row in enumerate(probabilities):
            order = np.argsort(-row)[:top]
            shown = ", ".join(f"{names[c] if c < len(names) else c} ({row[c]:.1%})" for c in order)
            where = name if len(probabilities) == 1 else f"{name}[{i}]"
            print(f"{where}: {shown}")
        results.append(probabilities)
    if show_path is not None:
        images = np.concatenate(seen)
        if (images.ndim == 4 and images.shape[1] == 1) or images.ndim == 3:
            preprocess.save_image(images, show_path)
            print(f"Wrote what the model saw ({len(images)} image{'s' * (len(images) != 1)}) to {show_path}")
        else:
            print(f"(no --show image: samples of shape {images.shape[1:]} are not images)")
    return results
