"""Callbacks: everything around the training loop that is not the loop itself.

:func:`chainrule.train.fit` calls each callback's hooks with the loop's :class:`TrainState`:
``on_train_begin``, ``on_epoch_begin``, ``on_batch_end`` (after the optimizer step), ``on_epoch_end``
(after validation, with the epoch's record in ``state.record``) and ``on_train_end``. A callback stops
training by setting ``state.stop = "reason"``. Callbacks with state worth resuming (early stopping's
patience counter, the best checkpoint's score) implement ``state_dict``/``load_state_dict``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chainrule import rng
from chainrule.errors import ChainruleError
from chainrule.train.history import History

if TYPE_CHECKING:  # pragma: no cover
    from chainrule.data import DataLoader
    from chainrule.nn.module import Module
    from chainrule.optim.optimizer import Optimizer

__all__ = [
    "TrainState",
    "Callback",
    "ProgressBar",
    "EarlyStopping",
    "ModelCheckpoint",
    "LRScheduler",
    "TerminateOnNaN",
    "NonFiniteLossError",
    "HistoryLogger",
    "checkpoint_state",
]

CHECKPOINT_FORMAT = "chainrule.checkpoint"


class NonFiniteLossError(ChainruleError, FloatingPointError):
    """The loss became NaN or infinite during training (raised by :class:`TerminateOnNaN`)."""


@dataclass
class TrainState:
    """What the loop knows, handed to every callback hook.

    Attributes
    ----------
    model, optimizer
        The model being trained and its optimizer.
    epoch : int
        The current epoch, 1-based (0 before the first).
    epochs : int
        The epoch to stop after.
    step : int
        Optimizer steps taken so far over the whole run.
    batch : int
        Index of the batch within the epoch (1-based, after it ran).
    batches : int
        Batches per epoch.
    loss : float
        Loss of the last batch.
    running : dict
        Running means over the epoch so far (``loss``, and ``accuracy`` for classification).
    record : dict
        The finished epoch's record (in ``on_epoch_end``).
    history : History
        All finished epochs.
    stop : str or None
        Set by a callback to stop after the current epoch (or batch); the reason is reported.
    callbacks, train_loader, config
        The run's callbacks, its training loader and the configuration to store: what :meth:`checkpoint`
        saves besides the state itself.
    """

    model: Module
    optimizer: Optimizer
    epochs: int
    history: History = field(default_factory=History)
    epoch: int = 0
    step: int = 0
    batch: int = 0
    batches: int = 0
    loss: float = math.nan
    running: dict[str, float] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    stop: str | None = None
    stop_now: bool = False
    callbacks: Sequence[Callback] = ()
    train_loader: DataLoader | None = None
    config: dict[str, Any] | None = None

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly (see :func:`checkpoint_state`)."""
        return checkpoint_state(self, self.callbacks, self.train_loader, self.config)


class Callback:
    """Base class: override the hooks you need; each receives the :class:`TrainState`."""

    def on_train_begin(self, state: TrainState) -> None:
        """Before the first epoch."""

    def on_epoch_begin(self, state: TrainState) -> None:
        """Before each epoch's first batch."""

    def on_batch_end(self, state: TrainState) -> None:
        """After each optimizer step."""

    def on_epoch_end(self, state: TrainState) -> None:
        """After each epoch's validation; ``state.record`` holds the epoch's numbers."""

    def on_train_end(self, state: TrainState) -> None:
        """After the last epoch, also when training stopped early."""

    def state_dict(self) -> dict[str, Any]:
        """State to put in checkpoints (JSON-serialisable)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def checkpoint_state(
    state: TrainState, callbacks: Sequence[Callback], loader: DataLoader | None, config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything needed to continue a run exactly: weights, optimizer moments, epoch and step, history,
    callback state (schedulers, early stopping) and the state of every random generator."""
    generator = getattr(loader, "generator", None)
    return {
        "format": CHECKPOINT_FORMAT,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "optimizer_class": type(state.optimizer).__name__,
        "epoch": state.epoch,
        "step": state.step,
        "history": state.history.to_dict(),
        "callbacks": {_callback_key(i, cb): cb.state_dict() for i, cb in enumerate(callbacks)},
        "rng": rng.get_state(),
        "loader_rng": None if generator is None else generator.bit_generator.state,
        "config": dict(config or {}),
    }


def _callback_key(index: int, callback: Callback) -> str:
    return f"{index}:{type(callback).__name__}"


def _format_record(record: dict[str, Any]) -> str:
    parts = []
    for key, value in record.items():
        if key in ("epoch", "time"):
            continue
        parts.append(f"{key} {value:.3g}" if key == "lr" else f"{key} {value:.4f}")
    return "  ".join(parts)


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss and metric, then the epoch's summary as a line of its own.

    ``verbose=0`` prints nothing, ``1`` a bar per epoch (a line when tqdm is missing or the output is not a
    terminal, so logs stay readable), ``2`` only a line per epoch.
    """

    def __init__(self, verbose: int = 1, file: Any = None) -> None:
        if verbose not in (0, 1, 2):
            raise ValueError(f"ProgressBar: verbose must be 0, 1 or 2, got {verbose!r}")
        self.verbose = verbose
        self.file = file
        self._bar: Any = None

    def _out(self) -> Any:
        return self.file or sys.stdout

    def on_epoch_begin(self, state: TrainState) -> None:
        if self.verbose != 1 or not getattr(self._out(), "isatty", lambda: False)():
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self._bar = tqdm(
            total=state.batches,
            desc=f"epoch {state.epoch}/{state.epochs}",
            unit="batch",
            leave=True,
            file=self._out(),
            dynamic_ncols=True,
        )

    def on_batch_end(self, state: TrainState) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if state.batch % 10 == 0 or state.batch == state.batches:
                self._bar.set_postfix({k: f"{v:.4f}" for k, v in state.running.items()}, refresh=False)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.verbose == 0:
            return
        line = _format_record(state.record)
        if self._bar is not None:  # the summary gets its own line: at 80 columns the bar would cut off val_*
            self._bar.close()
            self._bar = None
        print(f"epoch {state.epoch}/{state.epochs}  {line}  ({state.record.get('time', 0):.1f}s)", file=self._out())

    def on_train_end(self, state: TrainState) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.verbose and state.stop:
            print(f"stopped early: {state.stop}", file=self._out())


class _Monitor:
    """Tracks the best value of one record key (``val_loss`` by default)."""

    def __init__(self, monitor: str, mode: str, min_delta: float, owner: str) -> None:
        if mode == "auto":
            mode = "max" if any(word in monitor for word in ("acc", "r2", "f1", "precision", "recall")) else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"{owner}: mode must be 'min', 'max' or 'auto', got {mode!r}")
        if not min_delta >= 0:
            raise ValueError(f"{owner}: min_delta must be >= 0, got {min_delta!r}")
        self.monitor, self.mode, self.min_delta, self.owner = monitor, mode, float(min_delta), owner
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = 0

    def value(self, record: dict[str, Any]) -> float:
        if self.monitor not in record:
            raise ChainruleError(
                f"{self.owner}: monitored value {self.monitor!r} is not in the epoch's record {sorted(record)}; "
                "pass val_data or val_split for validation values, or monitor='loss'"
            )
        return float(record[self.monitor])

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best=True`` the model's weights are set back to those of the best epoch when training ends.

    Examples
    --------
    >>> stop = EarlyStopping(monitor="val_loss", patience=3)
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool = True,
    ) -> None:
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be a non-negative integer, got {patience!r}")
        self._monitor = _Monitor(monitor, mode, min_delta, "EarlyStopping")
        self.patience = patience
        self.restore_best = restore_best
        self.wait = 0
        self._best_weights: dict[str, Any] | None = None

    @property
    def best(self) -> float:
        return self._monitor.best

    def on_epoch_end(self, state: TrainState) -> None:
        value = self._monitor.value(state.record)
        if self._monitor.improved(value):
            self._monitor.best, self._monitor.best_epoch, self.wait = value, state.epoch, 0
            if self.restore_best:
                self._best_weights = {k: v.data.copy() for k, v in state.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            state.stop = (
                f"{self._monitor.monitor} has not improved for {self.wait} epochs "
                f"(best {self._monitor.best:.4f} in epoch {self._monitor.best_epoch})"
            )

    def on_train_end(self, state: TrainState) -> None:
        if self.restore_best and self._best_weights is not None and state.stop:
            state.model.load_state_dict(self._best_weights)

    def state_dict(self) -> dict[str, Any]:
        """The best value, its epoch, the patience counter and (with ``restore_best``) the best weights, so that
        a resumed run stops and restores exactly as an uninterrupted one."""
        state: dict[str, Any] = {"best": self._monitor.best, "best_epoch": self._monitor.best_epoch, "wait": self.wait}
        if self._best_weights is not None:
            state["best_weights"] = dict(self._best_weights)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._monitor.best = float(state["best"])
        self._monitor.best_epoch = int(state["best_epoch"])
        self.wait = int(state["wait"])
        weights = state.get("best_weights")
        if weights is not None and not isinstance(weights, dict):
            raise TypeError(f"EarlyStopping: best_weights should be a dict of arrays, got {type(weights).__name__}")
        self._best_weights = None if weights is None else {k: np.array(v, copy=True) for k, v in weights.items()}


class ModelCheckpoint(Callback):
    """Save full checkpoints (model, optimizer, scheduler, epoch, history, RNG state) into ``directory``.

    ``last.safetensors`` after every epoch when ``save_last``; ``best.safetensors`` whenever ``monitor``
    improves when ``save_best``. Each write is atomic, so a crash leaves the previous file intact. :func:`fit`
    runs checkpoints after the other callbacks at each epoch end, so a checkpoint holds the scheduler's and
    early stopping's state after that epoch. What it saves is :meth:`TrainState.checkpoint`.
    :func:`chainrule.train.fit` with ``resume=directory/"last.safetensors"`` continues from it.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        monitor: str = "val_loss",
        mode: str = "auto",
        save_best: bool = True,
        save_last: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self._monitor = _Monitor(monitor, mode, 0.0, "ModelCheckpoint")
        self.save_best, self.save_last = save_best, save_last

    @property
    def last_path(self) -> Path:
        return self.directory / "last.safetensors"

    @property
    def best_path(self) -> Path:
        return self.directory / "best.safetensors"

    def on_train_begin(self, state: TrainState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, state: TrainState) -> None:
        from chainrule.io import save

        if self not in state.callbacks:
            raise ChainruleError("ModelCheckpoint: use it through chainrule.train.fit(callbacks=[...])")
        payload = None
        if self.save_best and self._monitor.monitor in state.record:
            value = self._monitor.value(state.record)
            if self._monitor.improved(value):
                self._monitor.best, self._monitor.best_epoch = value, state.epoch
                payload = state.checkpoint()
                save(payload, self.best_path)
        if self.save_last:
            save(payload or state.checkpoint(), self.last_path)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self._monitor.best, "best_epoch": self._monitor.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._monitor.best = float(state["best"])
        self._monitor.best_epoch = int(state["best_epoch"])


class LRScheduler(Callback):
    """Step a learning-rate scheduler once per epoch (``ReduceLROnPlateau`` gets the monitored value).

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn, optim
    >>> opt = optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    >>> callback = LRScheduler(optim.lr_scheduler.StepLR(opt, step_size=10))
    """

    def __init__(self, scheduler: Any, monitor: str = "val_loss") -> None:
        if not hasattr(scheduler, "step") or not hasattr(scheduler, "state_dict"):
            raise TypeError(f"LRScheduler: expected a learning-rate scheduler, got {type(scheduler).__name__}")
        self.scheduler = scheduler
        self.monitor = monitor

    def on_epoch_end(self, state: TrainState) -> None:
        from chainrule.optim.lr_scheduler import ReduceLROnPlateau

        if isinstance(self.scheduler, ReduceLROnPlateau):
            key = self.monitor if self.monitor in state.record else "loss"
            self.scheduler.step(state.record[key])
        else:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return dict(self.scheduler.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


class TerminateOnNaN(Callback):
    """Stop at the first NaN or infinite value of a monitored loss, with an error naming the epoch and step.

    ``monitor`` names the values to watch: ``"loss"`` is each step's training loss (checked after every
    batch), any other name a key of the epoch's record such as ``"val_loss"`` (checked at the epoch's end).
    :func:`chainrule.train.fit` adds ``TerminateOnNaN()`` (training loss only) unless you pass your own.
    Checkpoints written before the bad step are left untouched.

    Examples
    --------
    >>> TerminateOnNaN(monitor=("loss", "val_loss")).monitor
    ('loss', 'val_loss')
    """

    def __init__(self, monitor: str | Sequence[str] = "loss") -> None:
        names = (monitor,) if isinstance(monitor, str) else tuple(monitor)
        if not names or not all(isinstance(name, str) and name for name in names):
            raise ValueError(
                f"TerminateOnNaN: monitor must be a name or names like ('loss', 'val_loss'), got {monitor!r}"
            )
        self.monitor = names

    def on_batch_end(self, state: TrainState) -> None:
        if "loss" in self.monitor and not math.isfinite(state.loss):
            raise NonFiniteLossError(
                f"fit: the loss became {state.loss} at step {state.step} (epoch {state.epoch}, batch "
                f"{state.batch} of {state.batches}); lower the learning rate, clip gradients "
                "(chainrule.nn.utils.clip_grad_norm_) or check the data for NaN/Inf"
            )

    def on_epoch_end(self, state: TrainState) -> None:
        for name in self.monitor:
            value = state.record.get(name)
            if name != "loss" and isinstance(value, float) and not math.isfinite(value):
                raise NonFiniteLossError(
                    f"fit: {name} became {value} in epoch {state.epoch} (step {state.step}); check the "
                    "validation data for NaN/Inf, or lower the learning rate if the model's outputs overflow"
                )


class HistoryLogger(Callback):
    """Write the history after every epoch to ``path`` as CSV (``.csv``) or JSON (any other suffix)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def on_epoch_end(self, state: TrainState) -> None:
        history = state.history
        if self.path.suffix.lower() == ".csv":
            history.save_csv(self.path)
        else:
            history.save_json(self.path)
