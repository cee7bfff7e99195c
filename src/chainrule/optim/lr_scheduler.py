"""Learning-rate schedules. Each sets ``group["lr"]`` from the group's initial rate and the epoch counter.

Every constructor checks its arguments with the shared validators of :mod:`chainrule._checks`: ``gamma``,
factors and ``eta_min`` are finite numbers in their interval (no NaN, inf or bool), counts (``step_size``,
``T_max``, ``total_iters``, ``patience``) are integers; an ``ArgumentError`` names the scheduler and the value.

Call ``scheduler.step()`` once per epoch (or per step, for warmup), after ``optimizer.step()``.
:class:`ReduceLROnPlateau` instead takes the monitored metric: ``scheduler.step(val_loss)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule import _checks as check
from chainrule.errors import ArgumentError
from chainrule.optim.optimizer import Optimizer

__all__ = [
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LambdaLR",
    "LinearLR",
    "ReduceLROnPlateau",
]


class LRScheduler:
    """Base: remembers each group's initial rate and sets ``lr = lr_at(epoch)`` after every ``step()``."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        _check_optimizer(type(self).__name__, optimizer)
        last_epoch = check.integer(type(self).__name__, "last_epoch", last_epoch, minimum=-1)
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr: float, epoch: int) -> float:
        """The learning rate of a group whose initial rate is ``base_lr``, at ``epoch``."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set the new learning rates."""
        self.last_epoch += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last ``step()``."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer and functions (JSON-serialisable)."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer" and not callable(v)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.__dict__.update(state)


def _check_optimizer(owner: str, optimizer: Any) -> None:
    if not isinstance(optimizer, Optimizer):
        raise ArgumentError(f"{owner}: expected an Optimizer, got {type(optimizer).__name__}")


def _gamma(owner: str, gamma: Any) -> float:
    """A multiplicative factor: finite and positive (0 would end training, a negative rate ascends)."""
    return check.real(owner, "gamma", gamma, 0.0, math.inf, low_open=True, high_open=True)


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs: :math:`\\eta_0 \\gamma^{\\lfloor t / s \\rfloor}`."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size = check.integer("StepLR", "step_size", step_size, minimum=1)
        self.gamma = _gamma("StepLR", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each epoch in ``milestones``."""

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1, last_epoch: int = -1):
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, (Sequence, set, frozenset, range)):
            raise ArgumentError(f"MultiStepLR: milestones must be a list of epochs, got {type(milestones).__name__}")
        self.milestones = sorted(check.integer("MultiStepLR", "milestones", m, minimum=0) for m in milestones)
        self.gamma = _gamma("MultiStepLR", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** sum(1 for m in self.milestones if m <= epoch)


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every epoch: :math:`\\eta_0 \\gamma^t`."""

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = _gamma("ExponentialLR", gamma)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma**epoch


class CosineAnnealingLR(LRScheduler):
    """Cosine from the initial rate down to ``eta_min`` over ``T_max`` epochs:
    :math:`\\eta_{min} + \\tfrac12(\\eta_0 - \\eta_{min})(1 + \\cos(\\pi t / T_{max}))`.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:  # noqa: N803
        self.T_max = check.integer("CosineAnnealingLR", "T_max", T_max, minimum=1)
        self.eta_min = check.real("CosineAnnealingLR", "eta_min", eta_min, 0.0, math.inf, high_open=True)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LambdaLR(LRScheduler):
    """The initial rate times ``lr_lambda(epoch)`` (one function, or one per parameter group)."""

    def __init__(
        self,
        optimizer: Optimizer,
        lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer("LambdaLR", optimizer)
        groups = len(optimizer.param_groups)
        self.lr_lambdas: list[Callable[[int], float]] = (
            list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * groups  # type: ignore[list-item]
        )
        if len(self.lr_lambdas) != groups:
            raise ArgumentError(f"LambdaLR: {len(self.lr_lambdas)} functions for {groups} parameter groups")
        for function in self.lr_lambdas:
            if not callable(function):
                raise ArgumentError(f"LambdaLR: lr_lambda must be a function of the epoch, got {function!r}")
        self._group = 0
        super().__init__(optimizer, last_epoch)

    def step(self) -> None:
        self.last_epoch += 1
        for group, base, factor in zip(self.optimizer.param_groups, self.base_lrs, self.lr_lambdas):
            group["lr"] = base * factor(self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}


class LinearLR(LRScheduler):
    """Linear warmup (or decay): the factor goes from ``start_factor`` to ``end_factor`` over ``total_iters`` steps."""

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        self.start_factor = check.real("LinearLR", "start_factor", start_factor, 0.0, 1.0, low_open=True)
        self.end_factor = check.real("LinearLR", "end_factor", end_factor, 0.0, 1.0)
        self.total_iters = check.integer("LinearLR", "total_iters", total_iters, minimum=1)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        progress = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)


class ReduceLROnPlateau:
    """Multiply the rate by ``factor`` when the monitored metric stops improving for ``patience`` epochs.

    Args:
        mode: ``"min"`` (loss) or ``"max"`` (accuracy).  factor: < 1.  patience: epochs without improvement.
        threshold, threshold_mode: what counts as an improvement (``"rel"`` or ``"abs"``).
        cooldown: epochs to wait after a reduction.  min_lr: floor per group.  eps: skip changes smaller than this.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0.0,
        eps: float = 1e-8,
    ) -> None:
        name = "ReduceLROnPlateau"
        _check_optimizer(name, optimizer)
        self.mode = check.one_of(name, "mode", mode, ("min", "max"))
        self.threshold_mode = check.one_of(name, "threshold_mode", threshold_mode, ("rel", "abs"))
        self.factor = check.real(name, "factor", factor, 0.0, 1.0, low_open=True, high_open=True)
        self.patience = check.integer(name, "patience", patience, minimum=0)
        self.threshold = check.real(name, "threshold", threshold, 0.0, math.inf, high_open=True)
        self.cooldown = check.integer(name, "cooldown", cooldown, minimum=0)
        self.eps = check.real(name, "eps", eps, 0.0, math.inf, high_open=True)
        self.optimizer = optimizer
        groups = len(optimizer.param_groups)
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * groups
        if len(min_lrs) != groups:
            raise ArgumentError(f"{name}: {len(min_lrs)} min_lr values for {groups} parameter groups")
        self.min_lrs = [check.real(name, "min_lr", value, 0.0, math.inf, high_open=True) for value in min_lrs]
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def _is_better(self, value: float) -> bool:
        if self.mode == "min":
            limit = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return value < limit
        limit = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
        return value > limit

    def step(self, metric: float) -> None:
        """Record this epoch's metric and reduce the rates if it has not improved for ``patience`` epochs."""
        value = _metric(metric)
        self.last_epoch += 1
        if self._is_better(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(group["lr"] * self.factor, min_lr)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The current learning rates."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer."""
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.__dict__.update(state)


def _metric(metric: Any) -> float:
    """The monitored value as a float: a number, or a one-element tensor or array (NaN counts as no improvement)."""
    value = getattr(metric, "data", metric)  # a Tensor's array
    if isinstance(value, (bool, str, bytes)) or np.size(value) != 1:
        raise ArgumentError(f"ReduceLROnPlateau.step: the metric must be one number, got {metric!r}")
    try:
        return float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        raise ArgumentError(f"ReduceLROnPlateau.step: the metric must be one number, got {metric!r}") from None
