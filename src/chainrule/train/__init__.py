"""Training: the :func:`fit` loop, evaluation, metrics, callbacks, checkpoints and plots.

>>> from chainrule.train import fit, evaluate, predict, EarlyStopping, ModelCheckpoint, load_run
"""

from chainrule.train.callbacks import (
    Callback,
    EarlyStopping,
    HistoryLogger,
    LRScheduler,
    ModelCheckpoint,
    NonFiniteLossError,
    ProgressBar,
    TerminateOnNaN,
    TrainState,
)
from chainrule.train.history import History
from chainrule.train.loop import LOSSES, OPTIMIZERS, evaluate, fit, make_optimizer, predict
from chainrule.train.metrics import (
    accuracy,
    confusion_matrix,
    mae,
    precision_recall_f1,
    r2_score,
    rmse,
    top_k_accuracy,
)
from chainrule.train.models import build_model, estimate_parameter_count

__all__ = [
    "fit",
    "evaluate",
    "predict",
    "History",
    "TrainState",
    "Callback",
    "ProgressBar",
    "EarlyStopping",
    "ModelCheckpoint",
    "LRScheduler",
    "TerminateOnNaN",
    "NonFiniteLossError",
    "HistoryLogger",
    "accuracy",
    "top_k_accuracy",
    "confusion_matrix",
    "precision_recall_f1",
    "mae",
    "rmse",
    "r2_score",
    "build_model",
    "estimate_parameter_count",
    "load_run",
    "make_optimizer",
    "LOSSES",
    "OPTIMIZERS",
]


def __getattr__(name: str) -> object:
    # load_run lives with the CLI's jobs (runs.py, which imports the data sets); import it only when asked for
    if name == "load_run":
        from chainrule.train.runs import load_run

        return load_run
    raise AttributeError(f"module 'chainrule.train' has no attribute {name!r}")
