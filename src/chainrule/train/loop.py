"""The training loop: :func:`fit`, :func:`evaluate` and :func:`predict`.

``fit`` is written to be read top to bottom: resolve the arguments, then for each epoch run the
mini-batches (forward, loss, backward, step), validate without building graphs, record the epoch, and let
the callbacks react. Nothing else happens in the loop; progress bars, early stopping, checkpoints, learning-
rate schedules and NaN checks are callbacks.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from chainrule import rng
from chainrule.autograd import no_grad
from chainrule.data import DataLoader, Dataset, TensorDataset, random_split
from chainrule.errors import ArgumentError, CheckpointError, DataError
from chainrule.nn.module import Module
from chainrule.nn.registry import CLASS_INDEX_LOSSES as _CLASSIFICATION_LOSSES
from chainrule.nn.registry import LOSSES
from chainrule.nn.registry import resolve_loss as _resolve_loss
from chainrule.optim.optimizer import Optimizer
from chainrule.tensor import Tensor
from chainrule.train.callbacks import (
    CHECKPOINT_FORMAT,
    Callback,
    EarlyStopping,
    LRScheduler,
    ModelCheckpoint,
    ProgressBar,
    TerminateOnNaN,
    TrainState,
    checkpoint_state,
)
from chainrule.train.history import History
from chainrule.train.metrics import get_metric

__all__ = ["fit", "evaluate", "predict", "checkpoint_state", "as_dataset", "make_optimizer", "LOSSES", "OPTIMIZERS"]


def _optimizers() -> dict[str, type[Optimizer]]:
    from chainrule import optim

    return {
        "sgd": optim.SGD,
        "adam": optim.Adam,
        "adamw": optim.AdamW,
        "rmsprop": optim.RMSprop,
        "adagrad": optim.Adagrad,
    }


OPTIMIZERS = tuple(_optimizers())


def make_optimizer(
    name: str, parameters: Any, *, lr: float, weight_decay: float = 0.0, momentum: float = 0.0
) -> Optimizer:
    """An optimizer by name (one of :data:`OPTIMIZERS`); ``momentum`` reaches SGD and RMSprop only.

    Examples
    --------
    >>> from chainrule import nn
    >>> make_optimizer("sgd", nn.Linear(2, 1).parameters(), lr=0.1, momentum=0.9).param_groups[0]["momentum"]
    0.9
    """
    table = _optimizers()
    if name not in table:
        raise ArgumentError(f"optimizer must be one of {', '.join(table)}, got {name!r}")
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
    if name in ("sgd", "rmsprop"):
        kwargs["momentum"] = momentum
    return table[name](parameters, **kwargs)


# -- argument resolution -----------------------------------------------------------------------------
def as_dataset(data: Any, name: str = "data") -> Dataset | DataLoader:
    """Accept a Dataset, a DataLoader, or a tuple ``(inputs, targets)`` of arrays/tensors."""
    if isinstance(data, (Dataset, DataLoader)):
        return data
    if isinstance(data, (tuple, list)) and len(data) >= 2:
        return TensorDataset(*data)
    raise DataError(
        f"fit: {name} must be a Dataset, a DataLoader or a tuple (inputs, targets) of arrays, got {type(data).__name__}"
    )


def _loader(data: Any, batch_size: int, shuffle: bool, name: str) -> DataLoader:
    data = as_dataset(data, name)
    if isinstance(data, DataLoader):
        return data
    if len(data) == 0:
        raise DataError(f"fit: {name} is empty")
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle)


def _resolve_optimizer(optimizer: Any, model: Module, lr: float | None) -> Optimizer:
    if isinstance(optimizer, Optimizer):
        return optimizer
    if not isinstance(optimizer, str) or optimizer not in OPTIMIZERS:
        raise ValueError(f"fit: optimizer must be an Optimizer or one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    default_lr = 0.01 if optimizer == "sgd" else 0.001
    return make_optimizer(optimizer, model.parameters(), lr=default_lr if lr is None else lr)


def _split(batch: Sequence[Tensor]) -> tuple[Sequence[Tensor], Tensor]:
    """The model's inputs and the target: the last array of a batch is the target."""
    if len(batch) < 2:
        raise DataError(f"fit: each batch needs inputs and a target, got {len(batch)} array(s)")
    return batch[:-1], batch[-1]


# -- evaluation --------------------------------------------------------------------------------------
def _run_epoch_outputs(
    model: Module, loader: Iterable, loss_fn: Any, nonfinite: list[int] | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean loss, concatenated outputs and targets over ``loader``, without building a graph.

    With a list ``nonfinite``, the count of NaN and infinite input values is appended to it.
    """
    total, count, outputs, targets, bad = 0.0, 0, [], [], 0
    with no_grad():
        for batch in loader:
            inputs, target = _split(batch)
            if nonfinite is not None:
                bad += sum(_count_nonfinite(x.data) for x in inputs)
            output = model(*inputs)
            n = len(target)
            if loss_fn is not None:
                total += float(loss_fn(output, target).item()) * n
            count += n
            outputs.append(output.data)
            targets.append(target.data)
    if count == 0:
        raise DataError("evaluate: the data is empty")
    if nonfinite is not None:
        nonfinite.append(bad)
    return total / count, np.concatenate(outputs), np.concatenate(targets)


def _count_nonfinite(array: np.ndarray) -> int:
    if array.dtype.kind not in "fc":
        return 0
    return int(array.size - np.count_nonzero(np.isfinite(array)))


def _warn_nonfinite(where: str, inputs: int, result: Mapping[str, float], stacklevel: int = 3) -> None:
    """One warning when evaluation met NaN/Inf: in the inputs (with their count) or only in the results."""
    bad = [name for name, value in result.items() if isinstance(value, float) and not math.isfinite(value)]
    if not inputs and not bad:
        return
    if inputs:
        cause = f"the inputs hold {inputs:,} non-finite value{'s' if inputs != 1 else ''} (NaN or Inf)"
    else:
        cause = "the model's outputs overflowed (the inputs are finite)"
    shown = f"; {', '.join(f'{name} is {result[name]}' for name in bad)}" if bad else ""
    warnings.warn(f"{where}: {cause}{shown}", RuntimeWarning, stacklevel=stacklevel)


def evaluate(
    model: Module,
    data: Any,
    loss: Any = None,
    metrics: Sequence[str | Callable] | None = ("accuracy",),
    batch_size: int = 256,
) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``data``, in eval mode and without gradients.

    Parameters
    ----------
    model : Module
    data : Dataset, DataLoader or (inputs, targets)
    loss : str, Module or callable, optional
        Reported as ``"loss"`` when given.
    metrics : sequence of names or functions
        See :func:`chainrule.train.metrics.get_metric`.

    Returns
    -------
    dict
        ``{"loss": ..., "accuracy": ...}``.

    Examples
    --------
    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn
    >>> model = nn.Linear(2, 2)
    >>> x, y = np.eye(2, dtype=np.float32), np.array([0, 1])
    >>> sorted(evaluate(model, (x, y), loss="cross_entropy"))
    ['accuracy', 'loss']
    """
    loss_fn = None if loss is None else _resolve_loss(loss)
    was_training = model.training
    model.eval()
    try:
        nonfinite: list[int] = []
        loader = _loader(data, batch_size, False, "data")
        mean_loss, outputs, targets = _run_epoch_outputs(model, loader, loss_fn, nonfinite)
    finally:
        model.train(was_training)
    result = {} if loss_fn is None else {"loss": mean_loss}
    for metric in metrics or ():
        name, fn = get_metric(metric)
        result[name] = fn(outputs, targets)
    _warn_nonfinite("evaluate", nonfinite[0], result)
    return result


def predict(model: Module, inputs: Any, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for ``inputs`` (an array, a Tensor, or a Dataset whose last array is ignored).

    Runs in eval mode without gradients, ``batch_size`` samples at a time. Returns a NumPy array.

    Examples
    --------
    >>> import numpy as np
    >>> from chainrule import nn
    >>> predict(nn.Linear(3, 2), np.zeros((5, 3), dtype=np.float32)).shape
    (5, 2)
    """
    if isinstance(inputs, (Dataset, DataLoader)):
        loader = inputs if isinstance(inputs, DataLoader) else DataLoader(inputs, batch_size=batch_size)
        batches: Iterable = (_split(batch)[0] for batch in loader)
    else:
        array = inputs.data if isinstance(inputs, Tensor) else np.asarray(inputs)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        if array.ndim == 0 or len(array) == 0:
            raise DataError(f"predict: expected a batch of inputs, got an array of shape {array.shape}")
        batches = ((Tensor(array[i : i + batch_size]),) for i in range(0, len(array), batch_size))
    was_training = model.training
    model.eval()
    nonfinite = 0
    try:
        with no_grad():
            outputs = []
            for batch in batches:
                nonfinite += sum(_count_nonfinite(x.data) for x in batch)
                outputs.append(model(*batch).data)
    finally:
        model.train(was_training)
    _warn_nonfinite("predict", nonfinite, {})
    return np.concatenate(outputs)


# -- checkpoints -------------------------------------------------------------------------------------
def _match_callbacks(callbacks: Sequence[Callback], saved: dict[str, Any]) -> list[tuple[Callback, Any]]:
    """Pair each callback with its saved state: the n-th callback of a class gets the n-th saved state of that
    class, so adding or removing a callback of another class (``--patience`` on resume) keeps the others' state."""
    by_class: dict[str, list[Any]] = {}
    for key in sorted(saved, key=lambda k: int(k.split(":", 1)[0]) if k.split(":", 1)[0].isdigit() else -1):
        by_class.setdefault(key.split(":", 1)[-1], []).append(saved[key])
    pairs = []
    for callback in callbacks:
        states = by_class.get(type(callback).__name__)
        if states:
            pairs.append((callback, states.pop(0)))
    return pairs


#: The entries of a training checkpoint that resuming needs, and the type each must have.
_CHECKPOINT_ENTRIES: dict[str, type] = {
    "model": dict,
    "optimizer": dict,
    "epoch": int,
    "step": int,
    "history": dict,
    "callbacks": dict,
    "rng": dict,
}

_KIND_NAMES = {dict: "a dict", int: "an integer"}

# What restoring state from a malformed (but safely loaded) checkpoint can raise besides CheckpointError.
_MALFORMED = (KeyError, IndexError, TypeError, ValueError, AttributeError)


def _check_checkpoint(saved: Any, where: str) -> None:
    """Every entry resuming needs is present with the right type, else a CheckpointError naming it."""
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{where} is not a training checkpoint (saved by ModelCheckpoint)")
    for key, kind in _CHECKPOINT_ENTRIES.items():
        if key not in saved:
            raise CheckpointError(f"{where}: the checkpoint has no {key!r} entry")
        value = saved[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise CheckpointError(
                f"{where}: the checkpoint's {key!r} entry should be {_KIND_NAMES[kind]}, got {type(value).__name__}"
            )
    for key in ("epoch", "step"):
        if saved[key] < 0:
            raise CheckpointError(f"{where}: the checkpoint's {key!r} entry is negative ({saved[key]})")


def _resume(path: Any, state: TrainState, callbacks: Sequence[Callback], loader: DataLoader) -> None:
    from chainrule.io import load

    where = f"fit: {str(path)!r}"
    saved = load(path)
    _check_checkpoint(saved, where)
    kind = saved.get("optimizer_class")
    if kind is not None and kind != type(state.optimizer).__name__:
        raise CheckpointError(
            f"{where} holds the state of a {kind} optimizer, not of this {type(state.optimizer).__name__}: "
            "resume with the optimizer the run was trained with"
        )
    part = "model"
    try:
        state.model.load_state_dict(saved["model"])
        part = "optimizer"
        state.optimizer.load_state_dict(saved["optimizer"])
    except CheckpointError as error:
        raise CheckpointError(f"{where} does not fit this model and optimizer: {error}") from None
    except _MALFORMED as error:
        raise CheckpointError(f"{where}: the checkpoint's {part!r} entry is malformed ({error!r})") from None
    state.epoch, state.step = saved["epoch"], saved["step"]
    try:
        part = "history"
        state.history = History.from_dict(saved["history"])
        part = "callbacks"
        for callback, callback_state in _match_callbacks(callbacks, saved["callbacks"]):
            callback.load_state_dict(callback_state)
        part = "rng"
        rng.set_state(saved["rng"])
        part = "loader_rng"
        generator = getattr(loader, "generator", None)
        if generator is not None and saved.get("loader_rng") is not None:
            generator.bit_generator.state = saved["loader_rng"]
    except _MALFORMED as error:
        raise CheckpointError(f"{where}: the checkpoint's {part!r} entry is malformed ({error!r})") from None


# -- the loop ----------------------------------------------------------------------------------------
def fit(
    model: Module,
    train_data: Any,
    *,
    loss: Any = "cross_entropy",
    optimizer: Any = "adam",
    lr: float | None = None,
    epochs: int = 10,
    batch_size: int = 32,
    val_data: Any = None,
    val_split: float | None = None,
    metrics: Sequence[str | Callable] | None = None,
    callbacks: Sequence[Callback] = (),
    scheduler: Any = None,
    seed: int | None = None,
    verbose: int = 1,
    resume: Any = None,
    config: dict[str, Any] | None = None,
    distributed: Any = None,
) -> History:
    """Train ``model`` on ``train_data`` with mini-batch gradient descent; return the :class:`History`.

    Each step is ``outputs = model(*inputs)``, ``l = loss(outputs, target)``, ``l.backward()``,
    ``optimizer.step()``. After each epoch the model is evaluated on the validation data (in eval mode,
    without gradients) and the epoch's record (loss, metrics, ``val_*``, learning rate, time) is appended.

    Parameters
    ----------
    model : Module
    train_data : Dataset, DataLoader or (inputs, targets)
        The last array of each batch is the target, the others are passed to the model.
    loss : str, Module or callable
        A name from :data:`LOSSES` or ``f(outputs, targets) -> scalar Tensor``.
    optimizer : str or Optimizer
        An optimizer over ``model.parameters()``, or a name (``sgd``, ``adam``, ``adamw``, ``rmsprop``,
        ``adagrad``) created with ``lr``.
    epochs : int
        Train until this epoch (counting epochs already done when resuming).
    batch_size : int
        Used when ``train_data`` is not already a DataLoader.
    val_data : optional
        Like ``train_data``. Or ``val_split``, the fraction of ``train_data`` held out (seeded).
    metrics : names or functions, optional
        Default: ``["accuracy"]`` for classification losses, none otherwise.
    callbacks : sequence of Callback
        A :class:`ProgressBar` (with ``verbose``) and :class:`TerminateOnNaN` are added unless given.
    scheduler : optional
        A learning-rate scheduler, stepped once per epoch (shorthand for ``callbacks=[LRScheduler(...)]``).
    seed : int, optional
        Seeds the global generator before training: shuffling, validation split and dropout. The generator is
        process-wide (as PyTorch's): two fits running in threads at once share its stream. To give a fit in a
        thread its own, call it inside ``with chainrule.rng.using(numpy.random.default_rng()):``, whose
        generator ``seed`` then reseeds, in that thread only.
    verbose : int
        0 silent, 1 a progress bar per epoch, 2 a line per epoch.
    resume : path, optional
        A checkpoint written by :class:`ModelCheckpoint`: weights, optimizer, epoch, history, callback and
        random-generator state are restored and training continues with the next epoch, bit for bit as if
        it had not stopped.
    distributed : True or chainrule.distributed.ProcessGroup, optional
        Train data-parallel on the ranks ``mpiexec`` started (see :mod:`chainrule.distributed`): each rank
        takes its share of every epoch's order in batches of ``batch_size`` (the whole step's batch is
        ``size * batch_size``), gradients and the loss are averaged over the ranks after ``backward()``, the
        epoch's loss and metrics are computed over all ranks' samples, and only rank 0 prints and writes
        checkpoints. A run resumes on as many ranks as it was trained on.

    Returns
    -------
    History

    Examples
    --------
    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn
    >>> from chainrule.train import fit
    >>> _ = cr.manual_seed(0)
    >>> x = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    >>> y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    >>> model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    >>> history = fit(model, (x, y), loss="cross_entropy", optimizer="adam", lr=0.05, epochs=30, verbose=0)
    >>> history["accuracy"][-1] > 0.9
    True
    """
    # 1. The arguments: checked, the global generator seeded, then the loss, the optimizer and the metrics.
    _check_arguments(model, epochs, batch_size)
    if seed is not None:
        rng.manual_seed(seed)  # before the validation split, the shuffling and dropout draw from it
    loss_fn = _resolve_loss(loss)
    optimizer = _resolve_optimizer(optimizer, model, lr)
    metric_fns = _metric_functions(metrics, loss_fn)

    # 2. The data: a shuffling loader over the training data, and the validation data (given or split off).
    parallel = None
    if distributed:  # data-parallel: rank 0's random state everywhere, so every rank splits and shuffles alike
        from chainrule.train.data_parallel import DataParallelFit

        parallel = DataParallelFit(distributed, model)
    train_loader, val_loader = _loaders(train_data, val_data, val_split, batch_size)
    if parallel is not None:  # each rank trains on its share of every epoch and evaluates its share
        train_loader = parallel.shard(train_loader)
        val_loader = None if val_loader is None else parallel.shard(val_loader, pad=False)
    validation = None if val_loader is None else _Validation(val_loader, loss_fn, metric_fns, parallel)

    # 3. The callbacks and the state they see; a resumed run restores both from its checkpoint.
    callbacks = _arrange_callbacks(callbacks, scheduler, verbose)
    if parallel is not None:
        callbacks = parallel.callbacks(callbacks)  # only rank 0 prints and writes files
    state = TrainState(
        model=model,
        optimizer=optimizer,
        epochs=epochs,
        batches=len(train_loader),
        callbacks=callbacks,
        train_loader=train_loader,
        config=config,
    )
    if resume is not None:
        _resume(resume, state, callbacks, train_loader)
    if parallel is not None:
        parallel.begin(state, resumed=resume is not None)  # rank 0's weights and random state on every rank
    elif resume is not None and "world_size" in state.history.meta:
        from chainrule.train.data_parallel import check_world_size

        check_world_size(state, 1)
    if any(isinstance(cb, EarlyStopping) for cb in callbacks):  # History.diagnosis() then does not suggest it
        state.history.meta["early_stopping"] = True

    # 4. The epochs: train on every batch, measure, record, and let the callbacks react (stop, schedule, save).
    for callback in callbacks:
        callback.on_train_begin(state)
    while state.epoch < epochs and not state.stop:
        _begin_epoch(state, callbacks)
        started = time.perf_counter()
        model.train()
        mean_loss, outputs, targets = _train_epoch(state, train_loader, loss_fn, callbacks, parallel)
        if parallel is not None:  # the whole epoch's numbers, from every rank's samples
            mean_loss, outputs, targets = parallel.combine(mean_loss, outputs, targets, gather=bool(metric_fns))
            parallel.end_epoch()
        record: dict[str, Any] = {"epoch": state.epoch, "loss": mean_loss}
        record.update({name: fn(outputs, targets) for name, fn in metric_fns})
        if validation is not None:
            record.update(validation.evaluate(model, state.epoch))
        record["lr"] = float(optimizer.param_groups[0]["lr"])
        record["time"] = time.perf_counter() - started
        _end_epoch(state, record, callbacks)
        if not math.isfinite(record["loss"]):  # pragma: no cover - TerminateOnNaN stops earlier
            break

    # 5. The end: callbacks finish (progress bars close, early stopping restores the best weights).
    for callback in callbacks:
        callback.on_train_end(state)
    return state.history


# -- the steps of fit ---------------------------------------------------------------------------------
def _check_arguments(model: Any, epochs: Any, batch_size: Any) -> None:
    if not isinstance(model, Module):
        raise TypeError(f"fit: model must be a chainrule.nn.Module, got {type(model).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"fit: batch_size must be a positive integer, got {batch_size!r}")


def _metric_functions(metrics: Sequence[str | Callable] | None, loss_fn: Any) -> list[tuple[str, Callable]]:
    """(name, function) per metric; by default accuracy for a classification loss, nothing otherwise."""
    if metrics is None:
        metrics = ["accuracy"] if isinstance(loss_fn, _CLASSIFICATION_LOSSES) else []
    return [get_metric(m) for m in metrics]


def _loaders(
    train_data: Any, val_data: Any, val_split: float | None, batch_size: int
) -> tuple[DataLoader, DataLoader | None]:
    """The training loader (shuffled) and the validation loader (None without validation data)."""
    train_set = as_dataset(train_data, "train_data")
    if val_split is not None:
        if val_data is not None:
            raise ValueError("fit: pass either val_data or val_split, not both")
        if not 0 < val_split < 1 or isinstance(train_set, DataLoader):
            raise ValueError(f"fit: val_split must be a fraction in (0, 1) of a dataset, got {val_split!r}")
        train_set, val_data = random_split(train_set, [1 - val_split, val_split])
    train_loader = _loader(train_set, batch_size, True, "train_data")
    val_loader = None if val_data is None else _loader(val_data, max(batch_size, 256), False, "val_data")
    return train_loader, val_loader


def _arrange_callbacks(callbacks: Sequence[Callback], scheduler: Any, verbose: int) -> list[Callback]:
    """The given callbacks, the scheduler's, and a ProgressBar and a TerminateOnNaN unless given; checkpoints last."""
    callbacks = list(callbacks)
    if scheduler is not None:
        callbacks.append(LRScheduler(scheduler))
    if not any(isinstance(cb, ProgressBar) for cb in callbacks):
        callbacks.insert(0, ProgressBar(verbose))
    if not any(isinstance(cb, TerminateOnNaN) for cb in callbacks):
        callbacks.insert(0, TerminateOnNaN())
    # Checkpoints are written last at each epoch end, so they hold the state after the scheduler stepped.
    callbacks.sort(key=lambda cb: isinstance(cb, ModelCheckpoint))
    return callbacks


def _begin_epoch(state: TrainState, callbacks: Sequence[Callback]) -> None:
    state.epoch += 1
    state.batch, state.running = 0, {}
    for callback in callbacks:
        callback.on_epoch_begin(state)


def _train_epoch(
    state: TrainState,
    loader: DataLoader,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    callbacks: Sequence[Callback],
    parallel: Any = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """One pass over the training batches (forward, loss, backward, step); the mean loss, outputs and targets."""
    model, optimizer = state.model, state.optimizer
    total, count, outputs, targets = 0.0, 0, [], []
    for batch in loader:
        inputs, target = _split(batch)
        output = model(*inputs)
        batch_loss = loss_fn(output, target)
        optimizer.zero_grad()
        batch_loss.backward()
        state.loss = float(batch_loss.item())
        if parallel is not None:  # every rank steps with the gradient (and reports the loss) of the whole batch
            state.loss = parallel.average_gradients(state.loss)
        optimizer.step()

        n = len(target)
        state.step += 1
        state.batch += 1
        total, count = total + state.loss * n, count + n
        outputs.append(output.data)
        targets.append(target.data)
        state.running["loss"] = total / count
        for callback in callbacks:
            callback.on_batch_end(state)
    mean_loss = total / max(count, 1)
    return mean_loss, np.concatenate(outputs), np.concatenate(targets)


class _Validation:
    """The validation data of a run, evaluated after each epoch in eval mode without graphs."""

    def __init__(
        self, loader: DataLoader, loss_fn: Callable, metric_fns: list[tuple[str, Callable]], parallel: Any = None
    ) -> None:
        self.loader, self.loss_fn, self.metric_fns, self.parallel = loader, loss_fn, metric_fns, parallel
        self.warned = False  # NaN/Inf is reported once per run: the first epoch it appears

    def evaluate(self, model: Module, epoch: int) -> dict[str, float]:
        """``val_loss`` and ``val_<metric>``; the model is back in training mode afterwards."""
        model.eval()
        nonfinite: list[int] = []
        val_loss, outputs, targets = _run_epoch_outputs(model, self.loader, self.loss_fn, nonfinite)
        if self.parallel is not None:  # each rank evaluated its share: combine them
            val_loss, outputs, targets = self.parallel.combine(val_loss, outputs, targets, gather=bool(self.metric_fns))
        values = {"val_loss": val_loss}
        values.update({f"val_{name}": fn(outputs, targets) for name, fn in self.metric_fns})
        if not math.isfinite(val_loss) and not self.warned:
            self.warned = True
            where = f"fit: epoch {epoch}, validation data"
            _warn_nonfinite(where, nonfinite[0], {"val_loss": val_loss}, stacklevel=4)  # the caller of fit
        model.train()
        return values


def _end_epoch(state: TrainState, record: dict[str, Any], callbacks: Sequence[Callback]) -> None:
    state.record = record
    state.history.append(record)
    for callback in callbacks:
        callback.on_epoch_end(state)
