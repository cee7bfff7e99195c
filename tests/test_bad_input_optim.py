"""Bad input to optimizers, schedulers, losses, layer constructors, init functions and gradient clipping.

One table, as in ``test_bad_input.py``: each row is a call and what must come of it: a chainrule error of the
given type whose message holds the given phrases (naming the optimizer, loss or layer and the value), or, for
the unusual inputs that are legitimate, the correct result.

Choices the table pins:

- Hyperparameters are checked by one validator each (``chainrule._checks``): NaN, infinite and boolean numbers
  are refused wherever a finite number is meant (``lr``, ``momentum``, ``gamma``, ``eps``, ``gain`` ...);
  ``momentum`` lies in [0, 1), RMSprop's ``alpha`` in [0, 1], Adam's betas in [0, 1).
- The same parameter twice (in one list or in two groups) is refused: PyTorch only warns for one list and then
  updates the parameter twice per step (see ``test_optim.py``).
- ``step()`` re-checks the learning rate (a NaN set by hand or by a ``LambdaLR``) and each gradient's shape and
  dtype, before any parameter moves.
- ``HuberLoss(delta=inf)`` is half the squared error everywhere, as in PyTorch (not ``inf * 0 = NaN``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn, optim
from chainrule.errors import ArgumentError, ChainruleError, DTypeError, ShapeError
from chainrule.nn import init
from chainrule.nn.utils import clip_grad_norm_, clip_grad_value_, l1_penalty, l2_penalty
from chainrule.optim import lr_scheduler
from refusal import assert_refused

NAN, INF = math.nan, math.inf


@dataclass(frozen=True)
class Row:
    """``call()`` must raise ``error`` with every string of ``parts`` in its message, or (``error`` None)
    return a value for which ``expect(value)`` holds."""

    name: str
    call: Callable[[], Any]
    error: type[ChainruleError] | None
    parts: tuple[str, ...] = ()
    expect: Callable[[Any], bool] | None = None


def bad(name: str, call: Callable[[], Any], error: type[ChainruleError], *parts: str) -> Row:
    return Row(name, call, error, parts)


def good(name: str, call: Callable[[], Any], expect: Callable[[Any], bool]) -> Row:
    return Row(name, call, None, expect=expect)


def _param(*shape: int) -> cr.Tensor:
    return cr.ones(*(shape or (2,)), requires_grad=True)


def _sgd(**kwargs: Any) -> optim.SGD:
    return optim.SGD([_param()], lr=0.1, **kwargs)


def _scheduler(kind: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[], Any]:
    """The call ``kind(_sgd(), *args, **kwargs)``: a scheduler built over a fresh SGD."""
    return lambda: kind(_sgd(), *args, **kwargs)


def _with_grad(*shape: int, value: float = 1.0) -> cr.Tensor:
    p = _param(*shape)
    p.grad = cr.full(p.shape, value)
    return p


def _step_with(mutate: Callable[[optim.Optimizer, cr.Tensor], None], kind: type = optim.SGD) -> None:
    """Build an optimizer over one parameter with a gradient, let ``mutate`` spoil it, then step."""
    p = _with_grad()
    opt = kind([p], lr=0.1)
    mutate(opt, p)
    opt.step()


def _set_lr(value: Any) -> Callable[[optim.Optimizer, cr.Tensor], None]:
    def mutate(opt: optim.Optimizer, p: cr.Tensor) -> None:
        opt.param_groups[0]["lr"] = value

    return mutate


def _grad_array(array: np.ndarray) -> Callable[[optim.Optimizer, cr.Tensor], None]:
    def mutate(opt: optim.Optimizer, p: cr.Tensor) -> None:
        p.grad.data = array  # behind the engine's back: the optimizer must still notice

    return mutate


def _add_group(group: Any, first: cr.Tensor | None = None) -> None:
    opt = optim.SGD([first if first is not None else _param()], lr=0.1)
    opt.add_param_group(group)


def _shared_add() -> None:
    p = _param()
    _add_group({"params": [p]}, first=p)


def _nan_lambda_step() -> None:
    p = _with_grad()
    opt = optim.SGD([p], lr=0.1)
    scheduler = lr_scheduler.LambdaLR(opt, lambda epoch: NAN if epoch else 1.0)
    scheduler.step()
    opt.step()


def _plateau_step(metric: Any) -> None:
    lr_scheduler.ReduceLROnPlateau(_sgd()).step(metric)


def _clip(max_norm: Any = 1.0, norm_type: Any = 2.0) -> float:
    return clip_grad_norm_([_with_grad(value=3.0)], max_norm, norm_type)


def _huber(delta: float, functional: bool = False) -> tuple[float, np.ndarray]:
    prediction = cr.tensor([0.0, 3.0, -5.0], requires_grad=True)
    target = cr.zeros(3)
    loss = (
        F.huber_loss(prediction, target, delta=delta) if functional else nn.HuberLoss(delta=delta)(prediction, target)
    )
    loss.backward()
    return loss.item(), prediction.grad.numpy()


def _half_square(result: tuple[float, np.ndarray]) -> bool:
    value, grad = result
    return value == pytest.approx((0 + 9 + 25) / 6) and np.allclose(grad, np.array([0.0, 3.0, -5.0]) / 3)


def _weights_unchanged_after_sgd_lr_zero() -> bool:
    p = _with_grad()
    optim.SGD([p], lr=0.0, momentum=0.9).step()
    return bool(np.all(p.numpy() == 1.0))


LOGITS, LABELS = cr.zeros(2, 3), cr.tensor([0, 2])

OPTIMIZER_ROWS = [
    *[
        bad(
            f"SGD lr {value!r}",
            lambda value=value: optim.SGD([_param()], lr=value),
            ArgumentError,
            "SGD",
            "learning rate",
            repr(value),
        )
        for value in (NAN, INF, -INF, True, None, np.float64("nan"))
    ],
    bad("SGD momentum 1", lambda: _sgd(momentum=1.0), ArgumentError, "SGD", "momentum", "[0, 1)"),
    bad("SGD momentum 1.5", lambda: _sgd(momentum=1.5), ArgumentError, "SGD", "momentum", "1.5"),
    bad("SGD momentum nan", lambda: _sgd(momentum=NAN), ArgumentError, "SGD", "momentum", "nan"),
    bad("SGD dampening nan", lambda: _sgd(dampening=NAN), ArgumentError, "SGD", "dampening", "nan"),
    bad("SGD dampening 1.5", lambda: _sgd(dampening=1.5), ArgumentError, "SGD", "dampening", "[0, 1]"),
    bad("SGD weight_decay inf", lambda: _sgd(weight_decay=INF), ArgumentError, "SGD", "weight_decay", "inf"),
    bad("SGD weight_decay nan", lambda: _sgd(weight_decay=NAN), ArgumentError, "SGD", "weight_decay", "nan"),
    bad("SGD nesterov string", lambda: _sgd(nesterov="yes"), ArgumentError, "SGD", "nesterov", "'yes'"),
    bad("SGD maximize 1", lambda: _sgd(maximize=1), ArgumentError, "SGD", "maximize", "True or False"),
    bad(
        "SGD same parameter twice",
        lambda: optim.SGD([p := _param(), p], lr=0.1),
        ArgumentError,
        "SGD",
        "parameter 1",
        "twice",
    ),
    bad(
        "SGD same parameter in two groups",
        lambda: optim.SGD([{"params": [p := _param()]}, {"params": [p]}], lr=0.1),
        ArgumentError,
        "SGD",
        "earlier parameter group",
    ),
    bad("add_param_group duplicate", _shared_add, ArgumentError, "SGD", "parameter 1", "earlier parameter group"),
    bad(
        "add_param_group nan lr", lambda: _add_group({"params": [_param()], "lr": NAN}), ArgumentError, "group 1", "nan"
    ),
    bad("add_param_group tensor", lambda: _add_group(_param()), ArgumentError, "SGD", "'params'", "Tensor"),
    bad("add_param_group no params", lambda: _add_group({"lr": 0.1}), ArgumentError, "SGD", "'params'"),
    bad("group dict with nan lr", lambda: optim.SGD([{"params": [_param()], "lr": NAN}]), ArgumentError, "SGD", "nan"),
    bad("group params a set", lambda: optim.SGD([{"params": {_param()}}]), ArgumentError, "SGD", "set"),
    bad("params one tensor", lambda: optim.SGD(_param(), lr=0.1), ArgumentError, "SGD", "one Tensor", "list"),
    bad("params a set", lambda: optim.SGD({_param()}, lr=0.1), ArgumentError, "SGD", "ordered", "set"),
    bad("params a dict", lambda: optim.SGD({"params": [_param()]}, lr=0.1), ArgumentError, "SGD", "wrap the group"),
    bad("params a number", lambda: optim.SGD(3, lr=0.1), ArgumentError, "SGD", "int"),
    bad("params a string", lambda: optim.SGD("weights", lr=0.1), ArgumentError, "SGD", "str"),
    bad("params non-leaf", lambda: optim.SGD([_param() * 2], lr=0.1), ArgumentError, "SGD", "not a leaf", "(2,)"),
    bad("params integer tensor", lambda: optim.SGD([cr.tensor([1, 2])], lr=0.1), ArgumentError, "SGD", "int64"),
    bad(
        "params None inside",
        lambda: optim.SGD([_param(), None], lr=0.1),
        ArgumentError,
        "SGD",
        "NoneType",
        "parameter 1",
    ),
    bad("Adam beta1 nan", lambda: optim.Adam([_param()], betas=(NAN, 0.999)), ArgumentError, "Adam", "betas", "nan"),
    bad("Adam beta2 negative", lambda: optim.Adam([_param()], betas=(0.9, -0.1)), ArgumentError, "Adam", "betas[1]"),
    bad("Adam betas string", lambda: optim.Adam([_param()], betas="ab"), ArgumentError, "Adam", "betas", "'ab'"),
    bad("Adam betas three", lambda: optim.Adam([_param()], betas=(0.9, 0.99, 0.5)), ArgumentError, "Adam", "pair"),
    bad("Adam beta bool", lambda: optim.Adam([_param()], betas=(True, 0.9)), ArgumentError, "Adam", "betas", "bool"),
    bad("Adam eps nan", lambda: optim.Adam([_param()], eps=NAN), ArgumentError, "Adam", "eps", "nan"),
    bad("Adam eps inf", lambda: optim.Adam([_param()], eps=INF), ArgumentError, "Adam", "eps", "inf"),
    bad("Adam weight_decay -1", lambda: optim.Adam([_param()], weight_decay=-1), ArgumentError, "Adam", "weight_decay"),
    bad("Adam amsgrad string", lambda: optim.Adam([_param()], amsgrad="no"), ArgumentError, "Adam", "amsgrad"),
    bad("AdamW lr nan", lambda: optim.AdamW([_param()], lr=NAN), ArgumentError, "AdamW", "learning rate", "nan"),
    bad("AdamW weight_decay nan", lambda: optim.AdamW([_param()], weight_decay=NAN), ArgumentError, "AdamW", "nan"),
    bad("RMSprop alpha 1.5", lambda: optim.RMSprop([_param()], alpha=1.5), ArgumentError, "RMSprop", "alpha", "1.5"),
    bad("RMSprop alpha nan", lambda: optim.RMSprop([_param()], alpha=NAN), ArgumentError, "RMSprop", "alpha", "nan"),
    bad("RMSprop eps inf", lambda: optim.RMSprop([_param()], eps=INF), ArgumentError, "RMSprop", "eps"),
    bad("RMSprop momentum 1", lambda: optim.RMSprop([_param()], momentum=1), ArgumentError, "RMSprop", "momentum"),
    bad("RMSprop centered 0", lambda: optim.RMSprop([_param()], centered=0), ArgumentError, "RMSprop", "centered"),
    bad("Adagrad lr_decay nan", lambda: optim.Adagrad([_param()], lr_decay=NAN), ArgumentError, "Adagrad", "lr_decay"),
    bad(
        "Adagrad initial accumulator -1",
        lambda: optim.Adagrad([_param()], initial_accumulator_value=-1),
        ArgumentError,
        "Adagrad",
        "initial_accumulator_value",
    ),
    bad("Adagrad eps nan", lambda: optim.Adagrad([_param()], eps=NAN), ArgumentError, "Adagrad", "eps"),
    bad("Adagrad lr inf", lambda: optim.Adagrad([_param()], lr=INF), ArgumentError, "Adagrad", "learning rate"),
    # the per-step checks
    bad("step after lr set to nan", lambda: _step_with(_set_lr(NAN)), ArgumentError, "SGD.step", "nan"),
    bad("step after lr set to -1", lambda: _step_with(_set_lr(-1.0), optim.Adam), ArgumentError, "Adam.step", "-1"),
    bad("step after lr set to a string", lambda: _step_with(_set_lr("0.1")), ArgumentError, "SGD.step", "'0.1'"),
    bad("step after LambdaLR gives nan", _nan_lambda_step, ArgumentError, "SGD.step", "learning rate nan"),
    bad(
        "step with a gradient of the wrong shape",
        lambda: _step_with(_grad_array(np.ones(3, dtype=np.float32))),
        ShapeError,
        "SGD.step",
        "parameter 0",
        "(3,)",
        "(2,)",
    ),
    bad(
        "step with a gradient of the wrong dtype",
        lambda: _step_with(_grad_array(np.ones(2, dtype=np.float64)), optim.RMSprop),
        DTypeError,
        "RMSprop.step",
        "float64",
        "float32",
    ),
    good("SGD lr 0 leaves the weights", _weights_unchanged_after_sgd_lr_zero, lambda unchanged: unchanged),
    good("SGD lr int is a float", lambda: _sgd().param_groups[0]["lr"], lambda lr: type(lr) is float),
    good(
        "SGD numpy lr accepted",
        lambda: optim.SGD([_param()], lr=np.float32(0.5)).param_groups[0]["lr"],
        lambda lr: lr == 0.5,
    ),
]

SCHEDULER_ROWS = [
    bad("StepLR step_size -1", _scheduler(lr_scheduler.StepLR, step_size=-1), ArgumentError, "StepLR", "step_size"),
    bad("StepLR step_size 2.5", _scheduler(lr_scheduler.StepLR, step_size=2.5), ArgumentError, "StepLR", "2.5"),
    bad("StepLR gamma nan", _scheduler(lr_scheduler.StepLR, 2, gamma=NAN), ArgumentError, "StepLR", "gamma", "nan"),
    bad("StepLR gamma inf", _scheduler(lr_scheduler.StepLR, 2, gamma=INF), ArgumentError, "StepLR", "gamma", "inf"),
    bad("StepLR gamma 0", _scheduler(lr_scheduler.StepLR, 2, gamma=0), ArgumentError, "StepLR", "gamma", "(0, inf)"),
    bad("StepLR gamma bool", _scheduler(lr_scheduler.StepLR, 2, gamma=True), ArgumentError, "StepLR", "gamma", "bool"),
    bad("StepLR last_epoch -5", _scheduler(lr_scheduler.StepLR, 2, last_epoch=-5), ArgumentError, "last_epoch"),
    bad(
        "MultiStepLR float milestone",
        _scheduler(lr_scheduler.MultiStepLR, [2.5]),
        ArgumentError,
        "MultiStepLR",
        "2.5",
    ),
    bad("MultiStepLR negative milestone", _scheduler(lr_scheduler.MultiStepLR, [-1]), ArgumentError, "MultiStepLR"),
    bad("MultiStepLR milestones int", _scheduler(lr_scheduler.MultiStepLR, 5), ArgumentError, "MultiStepLR", "int"),
    bad("MultiStepLR gamma nan", _scheduler(lr_scheduler.MultiStepLR, [2], NAN), ArgumentError, "MultiStepLR", "gamma"),
    bad("ExponentialLR gamma nan", _scheduler(lr_scheduler.ExponentialLR, NAN), ArgumentError, "ExponentialLR", "nan"),
    bad("ExponentialLR gamma -0.5", _scheduler(lr_scheduler.ExponentialLR, -0.5), ArgumentError, "ExponentialLR"),
    bad("ExponentialLR gamma inf", _scheduler(lr_scheduler.ExponentialLR, INF), ArgumentError, "ExponentialLR", "inf"),
    bad("Cosine T_max 0", _scheduler(lr_scheduler.CosineAnnealingLR, 0), ArgumentError, "CosineAnnealingLR", "T_max"),
    bad("Cosine T_max nan", _scheduler(lr_scheduler.CosineAnnealingLR, NAN), ArgumentError, "T_max", "float"),
    bad("Cosine eta_min nan", _scheduler(lr_scheduler.CosineAnnealingLR, 5, NAN), ArgumentError, "eta_min", "nan"),
    bad("Cosine eta_min -1", _scheduler(lr_scheduler.CosineAnnealingLR, 5, -1), ArgumentError, "eta_min", "-1"),
    bad("LambdaLR not callable", _scheduler(lr_scheduler.LambdaLR, 0.5), ArgumentError, "LambdaLR", "function"),
    bad("LambdaLR no optimizer", lambda: lr_scheduler.LambdaLR(None, abs), ArgumentError, "LambdaLR", "NoneType"),
    bad(
        "LinearLR start 0",
        _scheduler(lr_scheduler.LinearLR, start_factor=0),
        ArgumentError,
        "LinearLR",
        "start_factor",
    ),
    bad("LinearLR start nan", _scheduler(lr_scheduler.LinearLR, start_factor=NAN), ArgumentError, "LinearLR", "nan"),
    bad("LinearLR end 1.5", _scheduler(lr_scheduler.LinearLR, end_factor=1.5), ArgumentError, "LinearLR", "end_factor"),
    bad("LinearLR total_iters 0", _scheduler(lr_scheduler.LinearLR, total_iters=0), ArgumentError, "total_iters"),
    bad("Plateau factor 1", _scheduler(lr_scheduler.ReduceLROnPlateau, factor=1.0), ArgumentError, "factor", "(0, 1)"),
    bad("Plateau factor nan", _scheduler(lr_scheduler.ReduceLROnPlateau, factor=NAN), ArgumentError, "factor", "nan"),
    bad("Plateau mode avg", _scheduler(lr_scheduler.ReduceLROnPlateau, mode="avg"), ArgumentError, "mode", "'avg'"),
    bad("Plateau patience -1", _scheduler(lr_scheduler.ReduceLROnPlateau, patience=-1), ArgumentError, "patience"),
    bad("Plateau min_lr nan", _scheduler(lr_scheduler.ReduceLROnPlateau, min_lr=NAN), ArgumentError, "min_lr"),
    bad("Plateau min_lr list", _scheduler(lr_scheduler.ReduceLROnPlateau, min_lr=[0, 0]), ArgumentError, "2 min_lr"),
    bad(
        "Plateau no optimizer", lambda: lr_scheduler.ReduceLROnPlateau("sgd"), ArgumentError, "ReduceLROnPlateau", "str"
    ),
    bad("Plateau metric string", lambda: _plateau_step("low"), ArgumentError, "ReduceLROnPlateau.step", "'low'"),
    bad(
        "Plateau metric vector",
        lambda: _plateau_step(np.ones(3)),
        ArgumentError,
        "ReduceLROnPlateau.step",
        "one number",
    ),
    good("Plateau metric 0-d tensor", lambda: _plateau_step(cr.tensor(0.5)), lambda result: result is None),
    good("Plateau metric nan is no improvement", lambda: _plateau_step(NAN), lambda result: result is None),
    good(
        "StepLR gamma above 1",
        lambda: lr_scheduler.StepLR(_sgd(), 1, gamma=2.0).get_last_lr(),
        lambda lrs: lrs == [0.1],
    ),
]

LOSS_ROWS = [
    bad("HuberLoss delta nan", lambda: nn.HuberLoss(delta=NAN), ArgumentError, "HuberLoss", "delta", "nan"),
    bad("HuberLoss delta -1", lambda: nn.HuberLoss(delta=-1), ArgumentError, "HuberLoss", "delta", "-1"),
    bad("HuberLoss delta string", lambda: nn.HuberLoss(delta="1"), ArgumentError, "HuberLoss", "delta", "str"),
    bad("huber_loss delta nan", lambda: _huber(NAN, functional=True), ArgumentError, "huber_loss", "delta"),
    good("HuberLoss delta inf is half the square", lambda: _huber(INF), _half_square),
    good("huber_loss delta inf is half the square", lambda: _huber(INF, functional=True), _half_square),
    good("HuberLoss delta 1e30 is half the square", lambda: _huber(1e30), _half_square),
    bad(
        "MultiMarginLoss margin nan", lambda: nn.MultiMarginLoss(margin=NAN), ArgumentError, "MultiMarginLoss", "margin"
    ),
    bad("MultiMarginLoss margin inf", lambda: nn.MultiMarginLoss(margin=INF), ArgumentError, "MultiMarginLoss", "inf"),
    bad(
        "multi_margin_loss margin nan",
        lambda: F.multi_margin_loss(LOGITS, LABELS, margin=NAN),
        ArgumentError,
        "multi_margin_loss",
        "margin",
    ),
    bad("MultiMarginLoss p True", lambda: nn.MultiMarginLoss(p=True), ArgumentError, "MultiMarginLoss", "p"),
    bad("MultiMarginLoss weight 2-d", lambda: nn.MultiMarginLoss(weight=cr.ones(2, 3)), ShapeError, "MultiMarginLoss"),
    good(
        "MultiMarginLoss negative margin",
        lambda: nn.MultiMarginLoss(margin=-1.0)(LOGITS, LABELS).item(),
        lambda value: value == 0.0,
    ),
    bad("CE label_smoothing nan", lambda: nn.CrossEntropyLoss(label_smoothing=NAN), ArgumentError, "label_smoothing"),
    bad("CE label_smoothing -0.1", lambda: nn.CrossEntropyLoss(label_smoothing=-0.1), ArgumentError, "[0, 1]"),
    bad(
        "cross_entropy label_smoothing 2",
        lambda: F.cross_entropy(LOGITS, LABELS, label_smoothing=2),
        ArgumentError,
        "cross_entropy",
        "label_smoothing",
    ),
    bad("CE reduction avg", lambda: nn.CrossEntropyLoss(reduction="avg"), ArgumentError, "CrossEntropyLoss", "'avg'"),
    bad("MSELoss reduction Mean", lambda: nn.MSELoss(reduction="Mean"), ArgumentError, "MSELoss", "'Mean'"),
    bad("mse_loss reduction avg", lambda: F.mse_loss(cr.ones(2), cr.ones(2), "avg"), ArgumentError, "mse_loss", "avg"),
    bad("l1_loss reduction None", lambda: F.l1_loss(cr.ones(2), cr.ones(2), None), ArgumentError, "l1_loss", "None"),
    bad("CE ignore_index float", lambda: nn.CrossEntropyLoss(ignore_index=1.5), ArgumentError, "ignore_index", "1.5"),
    bad("NLLLoss ignore_index string", lambda: nn.NLLLoss(ignore_index="x"), ArgumentError, "NLLLoss", "ignore_index"),
    bad(
        "cross_entropy ignore_index bool",
        lambda: F.cross_entropy(LOGITS, LABELS, ignore_index=True),
        ArgumentError,
        "cross_entropy",
        "ignore_index",
    ),
    bad("CE weight 2-d", lambda: nn.CrossEntropyLoss(weight=cr.ones(3, 1)), ShapeError, "CrossEntropyLoss", "(3, 1)"),
    bad(
        "CE weight nan",
        lambda: nn.CrossEntropyLoss(weight=[1.0, NAN, 1.0]),
        ArgumentError,
        "CrossEntropyLoss",
        "finite",
    ),
    bad("NLLLoss weight strings", lambda: nn.NLLLoss(weight=["a", "b"]), ArgumentError, "NLLLoss", "real numbers"),
    bad("nll_loss weight inf", lambda: F.nll_loss(LOGITS, LABELS, weight=[1, INF, 1.0]), ArgumentError, "nll_loss"),
    bad(
        "BCEWithLogits pos_weight nan",
        lambda: nn.BCEWithLogitsLoss(pos_weight=cr.tensor([NAN])),
        ArgumentError,
        "pos_weight",
    ),
    bad("BCELoss weight inf", lambda: nn.BCELoss(weight=cr.tensor([INF])), ArgumentError, "BCELoss", "weight"),
    bad(
        "binary_cross_entropy reduction",
        lambda: F.binary_cross_entropy(cr.ones(2) * 0.5, cr.ones(2), reduction="all"),
        ArgumentError,
        "binary_cross_entropy",
        "'all'",
    ),
]

LAYER_ROWS = [
    bad("Linear 0 inputs", lambda: nn.Linear(0, 3), ArgumentError, "Linear", "positive", "0, 3"),
    bad("Linear in_features -1", lambda: nn.Linear(-1, 3), ArgumentError, "Linear", "-1"),
    bad("Linear in_features bool", lambda: nn.Linear(True, 3), ArgumentError, "Linear", "in_features", "bool"),
    bad("Linear out_features float", lambda: nn.Linear(3, 2.0), ArgumentError, "Linear", "out_features", "2.0"),
    bad("Conv2d kernel_size 0", lambda: nn.Conv2d(1, 2, kernel_size=0), ArgumentError, "Conv2d", "kernel_size"),
    bad("Conv2d stride 0", lambda: nn.Conv2d(1, 2, 3, stride=0), ArgumentError, "Conv2d", "stride"),
    bad("Conv2d padding -1", lambda: nn.Conv2d(1, 2, 3, padding=-1), ArgumentError, "Conv2d", "padding"),
    bad("Conv2d dilation 0", lambda: nn.Conv2d(1, 2, 3, dilation=0), ArgumentError, "Conv2d", "dilation"),
    bad("Conv2d kernel one entry", lambda: nn.Conv2d(1, 2, kernel_size=(3,)), ArgumentError, "Conv2d", "(3,)"),
    bad("Conv1d in_channels 0", lambda: nn.Conv1d(0, 2, 3), ArgumentError, "Conv1d", "in_channels"),
    bad("Dropout p 1.5", lambda: nn.Dropout(p=1.5), ArgumentError, "Dropout", "p", "1.5"),
    bad("Dropout p nan", lambda: nn.Dropout(p=NAN), ArgumentError, "Dropout", "nan"),
    bad("Dropout p bool", lambda: nn.Dropout(p=True), ArgumentError, "Dropout", "bool"),
    bad("dropout p -0.1", lambda: F.dropout(cr.ones(2), p=-0.1), ArgumentError, "dropout", "-0.1"),
    good("Dropout p 1 zeroes", lambda: nn.Dropout(p=1.0)(cr.ones(4)).numpy(), lambda out: np.all(out == 0)),
    bad("BatchNorm eps nan", lambda: nn.BatchNorm1d(3, eps=NAN), ArgumentError, "BatchNorm1d", "eps", "nan"),
    bad("BatchNorm eps 0", lambda: nn.BatchNorm2d(3, eps=0.0), ArgumentError, "BatchNorm2d", "eps"),
    bad("BatchNorm momentum 1.5", lambda: nn.BatchNorm1d(3, momentum=1.5), ArgumentError, "momentum", "1.5"),
    bad("BatchNorm num_features 0", lambda: nn.BatchNorm1d(0), ArgumentError, "BatchNorm1d", "num_features"),
    bad("LayerNorm eps nan", lambda: nn.LayerNorm(3, eps=NAN), ArgumentError, "LayerNorm", "eps"),
    bad("LayerNorm shape 0", lambda: nn.LayerNorm(0), ArgumentError, "LayerNorm", "normalized_shape"),
    bad("Embedding index too large", lambda: nn.Embedding(5, 2)(cr.tensor([1, 5])), ShapeError, "embedding", "[0, 4]"),
    bad("Embedding negative index", lambda: nn.Embedding(5, 2)(cr.tensor([-1])), ShapeError, "embedding", "-1"),
    bad("Embedding float indices", lambda: nn.Embedding(5, 2)(cr.tensor([1.0])), DTypeError, "embedding", "float32"),
    bad("Embedding num_embeddings 0", lambda: nn.Embedding(0, 2), ArgumentError, "Embedding", "num_embeddings"),
    bad(
        "Embedding padding_idx 5", lambda: nn.Embedding(5, 2, padding_idx=5), ArgumentError, "Embedding", "padding_idx"
    ),
    bad("LSTM hidden_size 0", lambda: nn.LSTM(3, 0), ArgumentError, "LSTM", "hidden_size"),
    bad("GRU input_size -1", lambda: nn.GRU(-1, 4), ArgumentError, "GRU", "input_size"),
    bad("RNN num_layers 0", lambda: nn.RNN(3, 4, num_layers=0), ArgumentError, "RNN", "num_layers"),
    bad("LSTM dropout 1", lambda: nn.LSTM(3, 4, dropout=1.0), ArgumentError, "LSTM", "dropout"),
    bad("LSTM dropout nan", lambda: nn.LSTM(3, 4, dropout=NAN), ArgumentError, "LSTM", "nan"),
    bad("RNN nonlinearity sigmoid", lambda: nn.RNN(3, 4, nonlinearity="sigmoid"), ArgumentError, "RNN", "'sigmoid'"),
    bad("MaxPool2d kernel 0", lambda: nn.MaxPool2d(0), ArgumentError, "MaxPool2d", "kernel_size"),
    bad("MaxPool2d padding 2 of 2", lambda: nn.MaxPool2d(2, padding=2), ArgumentError, "MaxPool2d", "padding"),
    bad("AvgPool2d stride 0", lambda: nn.AvgPool2d(2, stride=0), ArgumentError, "AvgPool2d", "stride"),
    bad("AdaptiveAvgPool2d 0", lambda: nn.AdaptiveAvgPool2d(0), ArgumentError, "AdaptiveAvgPool2d", "output_size"),
    bad("LeakyReLU slope nan", lambda: nn.LeakyReLU(NAN), ArgumentError, "LeakyReLU", "negative_slope"),
    bad("LeakyReLU slope string", lambda: nn.LeakyReLU("0.1"), ArgumentError, "LeakyReLU", "'0.1'"),
    bad("ELU alpha nan", lambda: nn.ELU(alpha=NAN), ArgumentError, "ELU", "alpha"),
    bad("Softplus beta 0", lambda: nn.Softplus(beta=0), ArgumentError, "Softplus", "beta"),
    bad("Softplus beta inf", lambda: nn.Softplus(beta=INF), ArgumentError, "Softplus", "inf"),
    bad("Softmax dim float", lambda: nn.Softmax(dim=1.5), ArgumentError, "Softmax", "dim"),
]

INIT_ROWS = [
    bad(
        "xavier_uniform_ gain nan",
        lambda: init.xavier_uniform_(cr.ones(3, 2), gain=NAN),
        ArgumentError,
        "xavier_uniform_",
        "gain",
    ),
    bad(
        "xavier_normal_ gain inf",
        lambda: init.xavier_normal_(cr.ones(3, 2), gain=INF),
        ArgumentError,
        "xavier_normal_",
        "inf",
    ),
    bad(
        "orthogonal_ gain nan", lambda: init.orthogonal_(cr.ones(3, 2), gain=NAN), ArgumentError, "orthogonal_", "gain"
    ),
    bad(
        "kaiming_normal_ a nan",
        lambda: init.kaiming_normal_(cr.ones(3, 2), a=NAN),
        ArgumentError,
        "kaiming_normal_",
        "a",
    ),
    bad(
        "kaiming_uniform_ mode",
        lambda: init.kaiming_uniform_(cr.ones(3, 2), mode="fan"),
        ArgumentError,
        "kaiming_uniform_",
        "'fan'",
    ),
    bad(
        "kaiming nonlinearity",
        lambda: init.kaiming_uniform_(cr.ones(3, 2), nonlinearity="swish"),
        ArgumentError,
        "'swish'",
    ),
    bad("normal_ std -1", lambda: init.normal_(cr.ones(3), std=-1.0), ArgumentError, "normal_", "std"),
    bad("normal_ std nan", lambda: init.normal_(cr.ones(3), std=NAN), ArgumentError, "normal_", "nan"),
    bad("normal_ mean inf", lambda: init.normal_(cr.ones(3), mean=INF), ArgumentError, "normal_", "mean"),
    bad("uniform_ a nan", lambda: init.uniform_(cr.ones(3), a=NAN), ArgumentError, "uniform_", "a"),
    bad("uniform_ a above b", lambda: init.uniform_(cr.ones(3), a=2.0, b=1.0), ArgumentError, "uniform_", "2.0", "1.0"),
    bad("constant_ nan", lambda: init.constant_(cr.ones(3), NAN), ArgumentError, "constant_", "nan"),
    bad("calculate_gain slope nan", lambda: init.calculate_gain("leaky_relu", NAN), ArgumentError, "calculate_gain"),
    bad("calculate_gain unknown", lambda: init.calculate_gain("swish"), ArgumentError, "calculate_gain", "'swish'"),
    bad("xavier_uniform_ 1-d", lambda: init.xavier_uniform_(cr.ones(3)), ShapeError, "xavier_uniform_", "(3,)"),
    bad("orthogonal_ 1-d", lambda: init.orthogonal_(cr.ones(3)), ShapeError, "orthogonal_", "(3,)"),
    good("uniform_ a equals b", lambda: init.uniform_(cr.ones(3), 0.5, 0.5).numpy(), lambda out: np.all(out == 0.5)),
]

CLIP_ROWS = [
    bad(
        "clip_grad_norm_ max_norm nan", lambda: _clip(max_norm=NAN), ArgumentError, "clip_grad_norm_", "max_norm", "nan"
    ),
    bad("clip_grad_norm_ max_norm -1", lambda: _clip(max_norm=-1.0), ArgumentError, "clip_grad_norm_", "max_norm"),
    bad("clip_grad_norm_ norm_type 0", lambda: _clip(norm_type=0), ArgumentError, "clip_grad_norm_", "norm_type"),
    bad("clip_grad_norm_ norm_type nan", lambda: _clip(norm_type=NAN), ArgumentError, "clip_grad_norm_", "nan"),
    bad("clip_grad_norm_ norm_type -1", lambda: _clip(norm_type=-1.0), ArgumentError, "clip_grad_norm_", "norm_type"),
    bad("clip_grad_norm_ norm_type string", lambda: _clip(norm_type="2"), ArgumentError, "clip_grad_norm_", "'2'"),
    bad(
        "clip_grad_value_ nan", lambda: clip_grad_value_([_with_grad()], NAN), ArgumentError, "clip_grad_value_", "nan"
    ),
    bad("clip_grad_value_ -1", lambda: clip_grad_value_([_with_grad()], -1.0), ArgumentError, "clip_grad_value_"),
    bad("l1_penalty no parameters", lambda: l1_penalty([]), ArgumentError, "l1_penalty", "no parameters"),
    bad("l2_penalty weight nan", lambda: l2_penalty([_param()], weight=NAN), ArgumentError, "l2_penalty", "weight"),
    good("clip_grad_norm_ norm_type inf", lambda: _clip(norm_type=INF), lambda total: total == 3.0),
    good(
        "clip_grad_norm_ max_norm inf", lambda: _clip(max_norm=INF), lambda total: total == pytest.approx(math.sqrt(18))
    ),
]

ROWS = OPTIMIZER_ROWS + SCHEDULER_ROWS + LOSS_ROWS + LAYER_ROWS + INIT_ROWS + CLIP_ROWS


def test_the_table_is_large_and_its_names_unique():
    names = [row.name for row in ROWS]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert len(ROWS) >= 90


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_unusual_input_is_refused_clearly_or_answered_correctly(row):
    if row.error is None:
        assert row.expect(row.call())
        return
    assert_refused(row.call, row.error, row.parts)
