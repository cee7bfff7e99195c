"""Optimizers and schedulers against PyTorch: 20 steps on the same parameters and gradients, to float64
round-off, and state_dict round trips (through a file) that resume identically."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim
from chainrule.optim import lr_scheduler
from helpers import TORCH_MISSING, torch

needs_torch = pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
SHAPES = [(3, 4), (4,)]

OPTIMIZERS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.3, "amsgrad": True}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.05}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1, "initial_accumulator_value": 0.5}),
]


def _gradients(step):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s) for s in SHAPES]


def _run(ours, theirs, params, t_params, steps):
    for step in range(steps):
        for p, tp, g in zip(params, t_params, _gradients(step)):
            p.grad = cr.tensor(g)
            tp.grad = torch.tensor(g)
        ours.step()
        theirs.step()
        for p, tp in zip(params, t_params):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14)


@needs_torch
@pytest.mark.parametrize("name, kwargs", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_optimizer_matches_pytorch_for_20_steps(name, kwargs):
    rng = np.random.default_rng(0)
    initial = [rng.standard_normal(s) for s in SHAPES]
    params = [cr.tensor(a.copy(), requires_grad=True) for a in initial]
    t_params = [torch.tensor(a.copy(), requires_grad=True) for a in initial]
    ours = getattr(optim, name)(params, **kwargs)
    theirs = getattr(torch.optim, name)(t_params, **kwargs)
    _run(ours, theirs, params, t_params, 20)


@pytest.mark.parametrize("name, kwargs", OPTIMIZERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(OPTIMIZERS)])
def test_state_dict_round_trip_resumes_identically(name, kwargs, tmp_path):
    rng = np.random.default_rng(1)
    initial = [rng.standard_normal(s) for s in SHAPES]
    straight = [cr.tensor(a.copy(), requires_grad=True) for a in initial]
    resumed = [cr.tensor(a.copy(), requires_grad=True) for a in initial]
    first = getattr(optim, name)(straight, **kwargs)
    interrupted = getattr(optim, name)(resumed, **kwargs)
    for step in range(20):
        if step == 10:  # save, rebuild from the file, continue
            cr.save(
                {"params": [p.detach() for p in resumed], "optimizer": interrupted.state_dict()},
                tmp_path / "ckpt.safetensors",
            )
            loaded = cr.load(tmp_path / "ckpt.safetensors")
            resumed = [cr.tensor(p.data, requires_grad=True) for p in loaded["params"]]
            interrupted = getattr(optim, name)(resumed, **kwargs)
            interrupted.load_state_dict(loaded["optimizer"])
        for a, b, g in zip(straight, resumed, _gradients(step)):
            a.grad, b.grad = cr.tensor(g), cr.tensor(g)
        first.step()
        interrupted.step()
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.data, b.data)


def test_parameter_groups_have_their_own_settings():
    a = cr.tensor([1.0], requires_grad=True)
    b = cr.tensor([1.0], requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = cr.tensor([1.0]), cr.tensor([1.0])
    opt.step()
    assert a.item() == pytest.approx(0.9) and b.item() == pytest.approx(0.5)


def test_step_with_closure_returns_the_loss():
    w = cr.tensor([2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 4.0
    assert w.item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda p: optim.SGD(p, lr=-1), "invalid learning rate -1"),
        (lambda p: optim.SGD(p, momentum=-0.5), "invalid momentum"),
        (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov momentum needs momentum > 0"),
        (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "invalid betas"),
        (lambda p: optim.Adam(p, eps=-1), "invalid eps"),
        (lambda p: optim.AdamW(p, weight_decay=-0.1), "invalid weight_decay"),
        (lambda p: optim.RMSprop(p, alpha=-0.1), "invalid alpha"),
        (lambda p: optim.Adagrad(p, lr_decay=-1), "invalid lr_decay"),
        (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
        (lambda p: optim.SGD([{"params": p, "gamma": 2}], lr=0.1), "unknown hyperparameters"),
    ],
)
def test_hyperparameters_are_validated_in_the_constructor(build, message):
    with pytest.raises(ValueError, match=message):
        build([cr.tensor([1.0], requires_grad=True)])


SCHEDULERS = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [2, 5, 11], "gamma": 0.3}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 0.001}),
    ("LinearLR", {"start_factor": 0.1, "total_iters": 6}),
    ("LambdaLR", {"lr_lambda": lambda epoch: 1 / (1 + epoch)}),
]


@needs_torch
@pytest.mark.parametrize("name, kwargs", SCHEDULERS, ids=[s[0] for s in SCHEDULERS])
def test_scheduler_matches_pytorch(name, kwargs):
    params = [cr.tensor([1.0], requires_grad=True)]
    t_params = [torch.tensor([1.0], requires_grad=True)]
    ours_opt, their_opt = optim.SGD(params, lr=0.1, momentum=0.9), torch.optim.SGD(t_params, lr=0.1, momentum=0.9)
    ours = getattr(lr_scheduler, name)(ours_opt, **kwargs)
    theirs = getattr(torch.optim.lr_scheduler, name)(their_opt, **kwargs)
    for _ in range(20):
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
        _run(ours_opt, their_opt, params, t_params, 0)
        their_opt.step()
        ours.step()
        theirs.step()


@needs_torch
def test_reduce_on_plateau_matches_pytorch():
    params = [cr.tensor([1.0], requires_grad=True)]
    t_params = [torch.tensor([1.0], requires_grad=True)]
    ours_opt, their_opt = optim.SGD(params, lr=1.0), torch.optim.SGD(t_params, lr=1.0)
    ours = lr_scheduler.ReduceLROnPlateau(ours_opt, factor=0.5, patience=2, cooldown=1, min_lr=0.01)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(their_opt, factor=0.5, patience=2, cooldown=1, min_lr=0.01)
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86, 0.87, 0.88, 0.5, 0.5, 0.5]
    for metric in metrics:
        ours.step(metric)
        theirs.step(metric)
        assert ours_opt.param_groups[0]["lr"] == pytest.approx(their_opt.param_groups[0]["lr"], rel=1e-12)


def test_scheduler_state_round_trip():
    params = [cr.tensor([1.0], requires_grad=True)]
    opt = optim.SGD(params, lr=0.1)
    sched = lr_scheduler.StepLR(opt, step_size=2)
    for _ in range(3):
        sched.step()
    state = sched.state_dict()
    opt2 = optim.SGD([cr.tensor([1.0], requires_grad=True)], lr=0.1)
    sched2 = lr_scheduler.StepLR(opt2, step_size=2)
    sched2.load_state_dict(state)
    sched.step()
    sched2.step()
    assert sched.get_last_lr() == sched2.get_last_lr()


# -- parameters given twice, and the checks at step() ------------------------------------------------------
@needs_torch
def test_a_parameter_listed_twice_is_refused_where_pytorch_warns_and_steps_it_twice():
    """PyTorch keeps both entries of ``[w, w]`` (with a warning) and so applies the update twice; we refuse."""
    import warnings

    t_w = torch.ones(2, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t_opt = torch.optim.SGD([t_w, t_w], lr=0.1)
    assert any("duplicate parameters" in str(w.message) for w in caught)
    t_w.grad = torch.ones(2)
    t_opt.step()
    assert np.allclose(t_w.detach().numpy(), 0.8)  # two steps of 0.1, not one

    w = cr.ones(2, requires_grad=True)
    with pytest.raises(cr.ArgumentError, match="SGD: parameter 1 of shape \\(2,\\) appears twice"):
        optim.SGD([w, w], lr=0.1)


@needs_torch
@pytest.mark.parametrize("how", ["two groups", "add_param_group"])
def test_a_parameter_in_two_groups_is_refused_as_in_pytorch(how):
    def build(module, w):
        if how == "two groups":
            return module.SGD([{"params": [w]}, {"params": [w], "lr": 0.5}], lr=0.1)
        module.SGD([w], lr=0.1).add_param_group({"params": [w], "lr": 0.5})

    with pytest.raises(ValueError, match="more than one parameter group"):
        build(torch.optim, torch.ones(2, requires_grad=True))
    with pytest.raises(cr.ArgumentError, match="appears in an earlier parameter group"):
        build(optim, cr.ones(2, requires_grad=True))


@needs_torch
@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.999)])
def test_adam_betas_outside_zero_one_are_refused_as_in_pytorch(betas):
    with pytest.raises(ValueError, match="beta"):
        torch.optim.Adam([torch.ones(2, requires_grad=True)], betas=betas)
    with pytest.raises(cr.ArgumentError, match="Adam: invalid betas"):
        optim.Adam([cr.ones(2, requires_grad=True)], betas=betas)


def test_hyperparameters_are_normalised_to_floats_and_flags_to_bools():
    group = optim.SGD([cr.ones(2, requires_grad=True)], lr=np.float32(0.5), momentum=0, nesterov=np.bool_(False))
    settings = group.param_groups[0]
    assert type(settings["lr"]) is float and type(settings["momentum"]) is float
    assert settings["nesterov"] is False


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_step_refuses_a_nan_learning_rate_set_after_construction_and_leaves_the_weights(name):
    w = cr.ones(2, requires_grad=True)
    opt = getattr(optim, name)([w], lr=0.1)
    w.grad = cr.ones(2)
    opt.param_groups[0]["lr"] = float("nan")
    with pytest.raises(cr.ArgumentError, match=f"{name}.step: invalid learning rate nan"):
        opt.step()
    assert np.all(w.numpy() == 1.0)
    opt.param_groups[0]["lr"] = 1  # an int set by hand is fine, and stored as a float
    opt.step()
    assert type(opt.param_groups[0]["lr"]) is float


def test_a_bad_gradient_stops_the_step_before_any_parameter_moves():
    first, second = cr.ones(2, requires_grad=True), cr.ones(3, requires_grad=True)
    opt = optim.Adam([first, second], lr=0.1)
    first.grad, second.grad = cr.ones(2), cr.ones(3)
    second.grad.data = np.ones(4, dtype=np.float32)  # behind the engine's back
    with pytest.raises(cr.ShapeError, match="Adam.step: the gradient of parameter 1 has shape \\(4,\\)"):
        opt.step()
    assert np.all(first.numpy() == 1.0) and opt.state == {}


def test_schedulers_set_learning_rates_the_step_check_accepts():
    w = cr.ones(2, requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    scheduler = lr_scheduler.CosineAnnealingLR(opt, T_max=3)
    for _ in range(6):
        w.grad = cr.ones(2)
        opt.step()
        scheduler.step()
    assert np.all(np.isfinite(w.numpy()))


def test_load_state_dict_refuses_invalid_saved_hyperparameters():
    w = cr.ones(2, requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    saved = opt.state_dict()
    saved["param_groups"][0]["momentum"] = float("nan")
    with pytest.raises(cr.CheckpointError, match="SGD.load_state_dict: .*momentum"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["momentum"] == 0.9


def test_adagrad_starts_the_sums_of_a_group_added_later():
    # the first step of Adagrad moves each weight by lr * g / (sqrt(s0 + g^2) + eps), s0 the group's initial sum
    w, v = cr.ones(2, requires_grad=True), cr.ones(2, requires_grad=True)
    opt = optim.Adagrad([w], lr=0.1)
    opt.add_param_group({"params": [v], "lr": 0.2, "initial_accumulator_value": 3.0})
    (w.sum() + 2 * v.sum()).backward()
    opt.step()
    assert np.allclose(w.data, 1 - 0.1 * 1 / (1 + 1e-10))
    assert np.allclose(v.data, 1 - 0.2 * 2 / (np.sqrt(3.0 + 4.0) + 1e-10))
