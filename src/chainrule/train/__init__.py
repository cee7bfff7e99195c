"""Training: the :func:`fit` loop, evaluation, metrics, callbacks, checkpoints and plots.

>>> from chainrule.train import fit, evaluate, predict, EarlyStopping, ModelCheckpoint, load_run
"""

from chainrule.train import callbacks, metrics
from chainrule.train.callbacks import *  # noqa: F403 - declared in chainrule.train.callbacks (its __all__)
from chainrule.train.history import History
from chainrule.train.loop import LOSSES, OPTIMIZERS, evaluate, fit, make_optimizer, predict
from chainrule.train.metrics import *  # noqa: F403 - declared in chainrule.train.metrics (its __all__)
from chainrule.train.models import build_model, estimate_parameter_count

__all__ = [
    "fit",
    "evaluate",
    "predict",
    "History",
    "build_model",
    "estimate_parameter_count",
    "load_run",  # noqa: F405 - made on first use by __getattr__ below
    "make_optimizer",
    "LOSSES",
    "OPTIMIZERS",
]
__all__ += callbacks.__all__
__all__ += metrics.__all__


def __getattr__(name: str) -> object:
    # load_run lives with the CLI's jobs (runs.py, which imports the data sets); import it only when asked for
    if name == "load_run":
        from chainrule.train.runs import load_run

        return load_run
    raise AttributeError(f"module 'chainrule.train' has no attribute {name!r}")
