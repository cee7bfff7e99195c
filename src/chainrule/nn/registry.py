"""The named activations and losses: one table each, read by train, explain, sklearn and the command line.

A name that a config file, a command-line flag or an estimator parameter accepts is looked up here, so
adding an activation or a loss to these tables makes it available everywhere at once.

Examples
--------
>>> from chainrule.nn.registry import ACTIVATIONS, LOSSES
>>> ACTIVATIONS["tanh"]()
Tanh()
>>> LOSSES["cross_entropy"]()
CrossEntropyLoss()
"""

from __future__ import annotations

from collections.abc import Callable

from chainrule.errors import ArgumentError
from chainrule.nn import activation
from chainrule.nn import loss as losses
from chainrule.nn.module import Identity, Module
from chainrule.tensor import Tensor

__all__ = ["ACTIVATIONS", "LOSSES", "LOSS_FORMULAS", "CLASS_INDEX_LOSSES", "resolve_loss"]

#: Elementwise activations by name; each value is a module class built without arguments.
ACTIVATIONS: dict[str, type[Module]] = {
    "relu": activation.ReLU,
    "tanh": activation.Tanh,
    "sigmoid": activation.Sigmoid,
    "gelu": activation.GELU,
    "silu": activation.SiLU,
    "elu": activation.ELU,
    "leaky_relu": activation.LeakyReLU,
    "softplus": activation.Softplus,
    "softsign": activation.Softsign,
    "identity": Identity,
}

#: Losses by name; each value is a loss module class built without arguments (mean reduction).
LOSSES: dict[str, type[Module]] = {
    "cross_entropy": losses.CrossEntropyLoss,
    "nll": losses.NLLLoss,
    "mse": losses.MSELoss,
    "l1": losses.L1Loss,
    "huber": losses.HuberLoss,
    "bce": losses.BCELoss,
    "bce_with_logits": losses.BCEWithLogitsLoss,
    "multi_margin": losses.MultiMarginLoss,
}

#: The losses :func:`chainrule.explain.trace` works out term by term, with the formula its tables print.
LOSS_FORMULAS: dict[str, str] = {
    "mse": "E = (1/n) Σ (target − out)²",
    "half_sse": "E = ½ Σ (target − out)²",
    "sse": "E = Σ (target − out)²",
    "bce": "E = −(1/n) Σ [target·log(out) + (1 − target)·log(1 − out)]",
    "cross_entropy": "E = −log softmax(out)[target]",
}

#: Loss modules whose targets are class indices rather than values of the output's shape.
CLASS_INDEX_LOSSES: tuple[type[Module], ...] = (losses.CrossEntropyLoss, losses.NLLLoss, losses.MultiMarginLoss)


def resolve_loss(
    loss: str | Callable[[Tensor, Tensor], Tensor], owner: str = "fit"
) -> Callable[[Tensor, Tensor], Tensor]:
    """A new loss module for a name in :data:`LOSSES`, or ``loss`` itself when it is a loss module or function.

    ``owner`` names the caller in the error for an unknown name or a value that is not callable.

    Examples
    --------
    >>> resolve_loss("mse")
    MSELoss()
    >>> resolve_loss(abs) is abs
    True
    """
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ArgumentError(f"{owner}: unknown loss {loss!r}; known: {', '.join(LOSSES)}, or a function")
        return LOSSES[loss]()
    if not callable(loss):
        raise ArgumentError(f"{owner}: loss must be a name, a loss module or a function, got {type(loss).__name__}")
    return loss
