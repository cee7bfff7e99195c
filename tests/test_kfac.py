"""optim.KFAC: factors against direct computations, the step against the dense damped Kronecker solve, training."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn, optim
from chainrule.errors import ArgumentError, CheckpointError, GradientError
from chainrule.nn import functional as F
from chainrule.optim.kfac import (
    damped_inverses,
    eigen_precondition,
    factor_eigens,
    kfac_factors,
    kfac_precondition,
    levenberg_marquardt,
)
from helpers import TORCH_MISSING, torch

needs_torch = pytest.mark.skipif(torch is None, reason=TORCH_MISSING)


def _conv_model():
    _ = cr.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(3 * 4 * 4, 3, dtype=np.float64),
    )


@needs_torch
def test_factors_match_a_direct_computation_from_per_sample_quantities():
    model = _conv_model()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 2, 4, 4)), rng.integers(0, 3, size=5)
    opt = optim.KFAC(model, empirical=True, stat_decay=0.0)
    output = model(cr.tensor(x))
    opt.backward(F.cross_entropy(output, cr.tensor(y)), output, targets=cr.tensor(y))

    # The same network in PyTorch: layer inputs and the gradients of the summed per-sample losses.
    conv, linear = model[0], model[3]
    weight_c, bias_c = (torch.tensor(p.data, requires_grad=True) for p in (conv.weight, conv.bias))
    weight_l, bias_l = torch.tensor(linear.weight.data), torch.tensor(linear.bias.data)
    xt = torch.tensor(x)
    conv_out = torch.nn.functional.conv2d(xt, weight_c, bias_c, padding=1)
    conv_out.retain_grad()
    hidden = torch.tanh(conv_out).flatten(1)
    logits = hidden @ weight_l.T + bias_l
    logits.retain_grad()
    torch.nn.functional.cross_entropy(logits, torch.tensor(y), reduction="sum").backward()

    patches = torch.nn.functional.unfold(xt, 3, padding=1).transpose(1, 2).numpy()  # (N, P, C*9)
    patches = np.concatenate([patches, np.ones((*patches.shape[:2], 1))], axis=2)
    a_conv = np.einsum("npi,npj->ij", patches, patches) / 5
    g_rows = conv_out.grad.numpy().reshape(5, 3, 16).transpose(0, 2, 1)  # (N, P, O)
    g_conv = np.einsum("npi,npj->ij", g_rows, g_rows) / (5 * 16)
    a_in = np.concatenate([hidden.detach().numpy(), np.ones((5, 1))], axis=1)
    a_lin = a_in.T @ a_in / 5
    g_lin = logits.grad.numpy().T @ logits.grad.numpy() / 5

    for state, (a, g) in zip(opt.layer_state, [(a_conv, g_conv), (a_lin, g_lin)]):
        np.testing.assert_allclose(state["A"], a, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(state["G"], g, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("likelihood", ["categorical", "bernoulli", "gaussian"])
def test_sampled_labels_give_the_true_fisher_in_expectation(likelihood):
    """For the last layer G is E_y[g g^T] with g = dlogp/ds; in closed form: diag p - p p^T (categorical),
    diag p(1-p) (bernoulli), I (gaussian). One batch of many samples estimates it."""
    _ = cr.manual_seed(1)
    model = nn.Linear(3, 4, dtype=np.float64)
    x = cr.tensor(np.random.default_rng(1).normal(size=(6000, 3)))
    opt = optim.KFAC(model, likelihood=likelihood, seed=0)
    output = model(x)
    opt.backward(output.sum(), output)
    logits = output.data
    if likelihood == "categorical":
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        exact = np.mean([np.diag(row) - np.outer(row, row) for row in p], axis=0)
    elif likelihood == "bernoulli":
        p = 1 / (1 + np.exp(-logits))
        exact = np.diag((p * (1 - p)).mean(axis=0))
    else:
        exact = np.eye(4)
    scale = np.abs(exact).max()
    np.testing.assert_allclose(opt.layer_state[0]["G"], exact, atol=0.06 * scale)


def _dense_step(a_factor, g_factor, gradient, damping):
    """The damped Kronecker solve, spelled out with the dense (d_in d_out)^2 matrix (column-major vec)."""
    pi = np.sqrt((np.trace(a_factor) / len(a_factor)) / (np.trace(g_factor) / len(g_factor)))
    root = np.sqrt(damping)
    dense = np.kron(a_factor + pi * root * np.eye(len(a_factor)), g_factor + root / pi * np.eye(len(g_factor)))
    return np.linalg.solve(dense, gradient.flatten(order="F")).reshape(gradient.shape, order="F")


def test_step_equals_the_dense_damped_kronecker_solve_and_kl_clipping():
    _ = cr.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.Sigmoid(), nn.Linear(4, 2, dtype=np.float64))
    rng = np.random.default_rng(2)
    x, y = cr.tensor(rng.normal(size=(8, 3))), cr.tensor(rng.integers(0, 2, size=8))
    for kl_clip in (0.0, 1e-4):
        before = [p.data.copy() for p in model.parameters()]
        opt = optim.KFAC(model, lr=0.5, damping=0.3, momentum=0.0, kl_clip=kl_clip, empirical=True)
        output = model(x)
        opt.zero_grad()
        opt.backward(F.cross_entropy(output, y), output, targets=y)
        expected, inner = [], 0.0
        for layer, state in zip([model[0], model[2]], opt.layer_state):
            gradient = np.concatenate([layer.weight.grad.data, layer.bias.grad.data[:, None]], axis=1)
            direction = _dense_step(state["A"], state["G"], gradient, 0.3)
            inner += float((direction * gradient).sum())
            expected.append(direction)
        opt.step()
        nu = 1.0 if kl_clip == 0 else min(1.0, np.sqrt(kl_clip / (0.5**2 * inner)))
        if kl_clip:
            assert nu < 1  # the clipping is active in this case
        moved = [old - p.data for old, p in zip(before, model.parameters())]
        for index, direction in enumerate(expected):
            np.testing.assert_allclose(moved[2 * index], 0.5 * nu * direction[:, :-1], rtol=1e-9, atol=1e-13)
            np.testing.assert_allclose(moved[2 * index + 1], 0.5 * nu * direction[:, -1], rtol=1e-9, atol=1e-13)


def test_plain_functions():
    a, g = kfac_factors(np.arange(6.0).reshape(1, 2, 3), np.ones((1, 2, 1)), bias=False)
    np.testing.assert_allclose(a, np.outer([0, 1, 2], [0, 1, 2]) + np.outer([3, 4, 5], [3, 4, 5]))
    np.testing.assert_allclose(g, [[1.0]])
    a_inv, g_inv = damped_inverses(np.diag([2.0, 4.0]), np.diag([1.0]), 0.01)  # pi = sqrt(3), sqrt(lambda) = 0.1
    np.testing.assert_allclose(np.diag(a_inv), 1 / (np.array([2.0, 4.0]) + np.sqrt(3) * 0.1))
    np.testing.assert_allclose(g_inv, [[1 / (1 + 0.1 / np.sqrt(3))]])


def test_kfac_trains_a_small_conv_net_and_beats_sgd():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 2, 4, 4))
    y = (x[:, 0].mean(axis=(1, 2)) > x[:, 1].mean(axis=(1, 2))).astype(np.int64) + (x[:, 0, 0, 0] > 0)
    x, y = cr.tensor(x), cr.tensor(y)

    def train(make_optimizer, use_kfac):
        model = _conv_model()
        opt = make_optimizer(model)
        losses = []
        for _ in range(25):
            output = model(x)
            loss = F.cross_entropy(output, y)
            opt.zero_grad()
            if use_kfac:
                opt.backward(loss, output)
            else:
                loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    kfac = train(lambda m: optim.KFAC(m, lr=0.3, damping=1e-2, inverse_every=5, seed=0), True)
    sgd = train(lambda m: optim.SGD(m.parameters(), lr=0.3, momentum=0.9), False)
    assert kfac[-1] < 0.3 * kfac[0]
    assert kfac[-1] < sgd[-1]


def test_fallback_parameters_take_sgd_steps_and_state_dict_round_trip():
    _ = cr.manual_seed(4)
    model = nn.Sequential(
        nn.Linear(3, 4, dtype=np.float64), nn.LayerNorm(4, dtype=np.float64), nn.Linear(4, 2, dtype=np.float64)
    )
    x, y = cr.randn(6, 3, dtype=cr.float64), cr.tensor([0, 1, 0, 1, 1, 0])
    opt = optim.KFAC(model, lr=0.1, momentum=0.0, inverse_every=2, seed=1)
    norm_weight = model[1].weight
    for _ in range(3):
        before = norm_weight.data.copy()
        output = model(x)
        opt.zero_grad()
        opt.backward(F.cross_entropy(output, y), output)
        opt.step()
        np.testing.assert_allclose(norm_weight.data, before - 0.1 * norm_weight.grad.data)
    saved = opt.state_dict()
    other = optim.KFAC(model, lr=0.1, momentum=0.0, inverse_every=2)
    other.load_state_dict(saved)
    assert other.steps == 3
    for mine, theirs in zip(opt.layer_state, other.layer_state):
        assert set(mine) == {"A", "G", "A_inv", "G_inv"}
        for key in mine:
            np.testing.assert_array_equal(mine[key], theirs[key])
    saved["kfac"]["layers"][0]["A"] = np.eye(2)
    with pytest.raises(CheckpointError, match="factor 'A'"):
        other.load_state_dict(saved)
    with pytest.raises(CheckpointError, match="kfac"):
        other.load_state_dict({"state": {}, "param_groups": []})


def test_bad_hyperparameters_and_misuse_raise():
    model = nn.Linear(2, 2)
    bad = [
        dict(lr=-1.0),
        dict(damping=0.0),
        dict(momentum=1.0),
        dict(stat_decay=1.0),
        dict(kl_clip=-1e-3),
        dict(weight_decay=float("nan")),
        dict(factor_every=0),
        dict(inverse_every=1.5),
        dict(likelihood="poisson"),
        dict(fallback="rmsprop"),
        dict(empirical="yes"),
        dict(fallback_lr=-0.1),
        dict(seed=-1),
    ]
    for kwargs in bad:
        name = next(iter(kwargs))
        with pytest.raises(ArgumentError, match=name if name != "lr" else "learning rate"):
            optim.KFAC(model, **kwargs)
    with pytest.raises(ArgumentError, match="nn.Module"):
        optim.KFAC(list(model.parameters()))
    opt = optim.KFAC(model, empirical=True)
    output = model(cr.randn(3, 2))
    with pytest.raises(ArgumentError, match="targets="):
        opt.backward(F.cross_entropy(output, cr.tensor([0, 1, 0])), output)
    opt = optim.KFAC(model)
    F.cross_entropy(model(cr.randn(3, 2)), cr.tensor([0, 1, 0])).backward()
    with pytest.raises(GradientError, match=r"opt.backward\(loss, output\)"):
        opt.step()


def test_readme_snippet_runs_and_trains():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("## Hooks, per-sample gradients and K-FAC")
    section = readme[start:].split("\n## ", 1)[0]
    (snippet,) = [block for block in section.split("```python\n")[1:]]
    namespace: dict = {}
    exec(compile(snippet.split("```")[0], "README.md", "exec"), namespace)
    assert namespace["grads"]["3.weight"].shape == (32, 3, 144)
    assert namespace["loss"].item() < 0.5 * 1.0986  # from about log 3 at the start


def test_adam_fallback_moves_other_parameters_by_adams_first_step():
    _ = cr.manual_seed(6)
    model = nn.Sequential(
        nn.Linear(3, 4, dtype=np.float64), nn.LayerNorm(4, dtype=np.float64), nn.Linear(4, 2, dtype=np.float64)
    )
    opt = optim.KFAC(model, lr=0.1, fallback="adam", fallback_lr=0.01, seed=0)
    norm_bias = model[1].bias
    before = norm_bias.data.copy()
    x, y = cr.randn(6, 3, dtype=cr.float64), cr.tensor([0, 1, 0, 1, 1, 0])
    output = model(x)
    opt.zero_grad()
    opt.backward(F.cross_entropy(output, y), output)
    opt.step()
    # Adam's first step is lr * g / (|g| + eps): the sign of the gradient, times the learning rate.
    np.testing.assert_allclose(before - norm_bias.data, 0.01 * np.sign(norm_bias.grad.data), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------
# The eigendecomposition path (exact damping) and adaptive (Levenberg-Marquardt) damping
# ---------------------------------------------------------------------------------------------------
def _tiny_problem(seed=7):
    _ = cr.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.Tanh(), nn.Linear(4, 2, dtype=np.float64))
    rng = np.random.default_rng(seed)
    return model, cr.tensor(rng.normal(size=(8, 3))), cr.tensor(rng.integers(0, 2, size=8))


def test_eigen_precondition_equals_the_dense_exact_damped_solve():
    rng = np.random.default_rng(0)
    a_root, g_root = rng.normal(size=(4, 6)), rng.normal(size=(3, 2))  # rank-deficient factors: damping matters
    a_factor, g_factor = a_root @ a_root.T / 6, g_root @ g_root.T / 2
    gradient = rng.normal(size=(3, 4))
    for damping in (1e-3, 0.3):
        exact = np.linalg.solve(
            np.kron(a_factor, g_factor) + damping * np.eye(12), gradient.flatten(order="F")
        ).reshape(gradient.shape, order="F")
        got = eigen_precondition(gradient, factor_eigens(a_factor), factor_eigens(g_factor), damping)
        np.testing.assert_allclose(got, exact, rtol=1e-10, atol=1e-12)
        # The factored form inverts A kron G + lambda I plus the cross terms pi sqrt(lambda) I kron G +
        # sqrt(lambda)/pi A kron I: a different (more damped) matrix, so a different direction.
        a_inv, g_inv = damped_inverses(a_factor, g_factor, damping)
        pi = np.sqrt((np.trace(a_factor) / 4) / (np.trace(g_factor) / 3))
        root = np.sqrt(damping)
        with_cross_terms = (
            np.kron(a_factor, g_factor)
            + damping * np.eye(12)
            + pi * root * np.kron(np.eye(4), g_factor)
            + root / pi * np.kron(a_factor, np.eye(3))
        )
        np.testing.assert_allclose(
            kfac_precondition(gradient, a_inv, g_inv).flatten(order="F"),
            np.linalg.solve(with_cross_terms, gradient.flatten(order="F")),
            rtol=1e-10,
            atol=1e-12,
        )
        assert not np.allclose(kfac_precondition(gradient, a_inv, g_inv), exact, rtol=1e-3)


def test_eigen_step_equals_the_dense_exact_damped_solve():
    model, x, y = _tiny_problem()
    before = [p.data.copy() for p in model.parameters()]
    opt = optim.KFAC(model, lr=0.5, damping=0.2, momentum=0.0, kl_clip=0.0, empirical=True, inverse="eigen")
    output = model(x)
    opt.zero_grad()
    opt.backward(F.cross_entropy(output, y), output, targets=y)
    expected = []
    for layer, state in zip([model[0], model[2]], opt.layer_state):
        gradient = np.concatenate([layer.weight.grad.data, layer.bias.grad.data[:, None]], axis=1)
        size = gradient.size
        dense = np.kron(state["A"], state["G"]) + 0.2 * np.eye(size)
        expected.append(np.linalg.solve(dense, gradient.flatten(order="F")).reshape(gradient.shape, order="F"))
    opt.step()
    assert {"A_eigvals", "A_eigvecs", "G_eigvals", "G_eigvecs"} <= set(opt.layer_state[0])
    assert "A_inv" not in opt.layer_state[0]
    moved = [old - p.data for old, p in zip(before, model.parameters())]
    for index, direction in enumerate(expected):
        np.testing.assert_allclose(moved[2 * index], 0.5 * direction[:, :-1], rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(moved[2 * index + 1], 0.5 * direction[:, -1], rtol=1e-9, atol=1e-13)


def test_levenberg_marquardt_rule():
    omega = (19 / 20) ** 5
    assert levenberg_marquardt(0.1, 0.9, omega) == pytest.approx(0.1 * omega)  # rho > 3/4: lower
    assert levenberg_marquardt(0.1, 0.1, omega) == pytest.approx(0.1 / omega)  # rho < 1/4: raise
    assert levenberg_marquardt(0.1, -3.0, omega) == pytest.approx(0.1 / omega)
    assert levenberg_marquardt(0.1, float("nan"), omega) == pytest.approx(0.1 / omega)
    assert levenberg_marquardt(0.1, 0.5, omega) == 0.1  # in between: keep
    assert levenberg_marquardt(1e-8, 1.0, omega) == 1e-8  # the bounds hold


def _adaptive_step(closure_loss, inverse="eigen", weight_decay=0.0):
    """One adaptive-damping step on the tiny problem; ``closure_loss(true_new_loss)`` is what the closure returns."""
    model, x, y = _tiny_problem()
    opt = optim.KFAC(
        model,
        lr=0.3,
        damping=0.1,
        momentum=0.0,
        kl_clip=0.0,
        weight_decay=weight_decay,
        empirical=True,
        inverse=inverse,
        adaptive_damping=True,
        damping_every=3,
    )
    before = [p.data.copy() for p in model.parameters()]
    output = model(x)
    loss = F.cross_entropy(output, y)
    opt.zero_grad()
    opt.backward(loss, output, targets=y)
    returned = opt.step(lambda: closure_loss(F.cross_entropy(model(x), y).item()))
    return opt, model, before, loss.item(), returned


@pytest.mark.parametrize("inverse", ["eigen", "factored"])
def test_adaptive_damping_predicted_change_is_the_damped_quadratic_model(inverse):
    opt, model, before, old_loss, returned = _adaptive_step(lambda new: new, inverse, weight_decay=0.01)
    stats = opt.damping_stats
    deltas = [p.data - old for p, old in zip(model.parameters(), before)]
    predicted = 0.0
    for index, (layer, state) in enumerate(zip([model[0], model[2]], opt.layer_state)):
        gradient = np.concatenate([layer.weight.grad.data, layer.bias.grad.data[:, None]], axis=1)
        gradient = gradient + 0.01 * np.concatenate([before[2 * index], before[2 * index + 1][:, None]], axis=1)
        step = np.concatenate([deltas[2 * index], deltas[2 * index + 1][:, None]], axis=1).flatten(order="F")
        dense = np.kron(state["A"], state["G"]) + (0.1 + 0.01) * np.eye(step.size)
        predicted += gradient.flatten(order="F") @ step + 0.5 * step @ dense @ step
    np.testing.assert_allclose(stats["predicted"], predicted, rtol=1e-10)
    decay = 0.005 * sum((p.data**2).sum() - (old**2).sum() for p, old in zip(model.parameters(), before))
    np.testing.assert_allclose(stats["actual"], returned - old_loss + decay, rtol=1e-10)
    np.testing.assert_allclose(stats["rho"], stats["actual"] / stats["predicted"], rtol=1e-12)
    assert stats["predicted"] < 0


def test_adaptive_damping_moves_lambda_the_right_way():
    omega = (19 / 20) ** 3
    # The loss went up: rho < 0 < 1/4, damping is raised.
    opt = _adaptive_step(lambda new: new + 10.0)[0]
    assert opt.damping_stats["rho"] < 0.25
    assert opt.param_groups[0]["damping"] == pytest.approx(0.1 / omega)
    # The loss fell by much more than predicted: rho > 3/4, damping is lowered.
    opt = _adaptive_step(lambda new: new - 10.0)[0]
    assert opt.damping_stats["rho"] > 0.75
    assert opt.param_groups[0]["damping"] == pytest.approx(0.1 * omega)
    # Exactly half the predicted decrease: rho = 1/2, damping kept.
    probe = _adaptive_step(lambda new: new)[0].damping_stats
    opt = _adaptive_step(lambda new: float("nan"))[0]
    assert opt.param_groups[0]["damping"] == pytest.approx(0.1 / omega)  # a NaN loss is a bad step
    opt = _adaptive_step(lambda new: new - probe["actual"] + 0.5 * probe["predicted"])[0]
    assert opt.damping_stats["rho"] == pytest.approx(0.5)
    assert opt.param_groups[0]["damping"] == 0.1


def test_adaptive_damping_calls_the_closure_every_damping_every_steps_and_trains():
    model, x, y = _tiny_problem()
    opt = optim.KFAC(model, lr=0.2, damping=1.0, inverse="eigen", adaptive_damping=True, damping_every=3, seed=0)
    calls, losses = [], []

    def closure():
        calls.append(opt.steps)
        return F.cross_entropy(model(x), y)

    for _ in range(30):
        output = model(x)
        loss = F.cross_entropy(output, y)
        opt.zero_grad()
        opt.backward(loss, output)
        opt.step(closure)
        losses.append(loss.item())
    assert calls == list(range(1, 31, 3))  # steps is counted up before the closure runs
    assert losses[-1] < 0.5 * losses[0]
    assert opt.param_groups[0]["damping"] < 1.0  # mostly good steps on this easy problem
    saved = opt.state_dict()
    other = optim.KFAC(model, inverse="eigen", adaptive_damping=True)
    other.load_state_dict(saved)
    assert other.param_groups[0]["damping"] == opt.param_groups[0]["damping"]
    assert other.damping_stats == opt.damping_stats
    for mine, theirs in zip(opt.layer_state, other.layer_state):
        assert set(mine) == {"A", "G", "A_eigvals", "A_eigvecs", "G_eigvals", "G_eigvecs"} == set(theirs)
        for key in mine:
            np.testing.assert_array_equal(mine[key], theirs[key])
    saved["kfac"]["layers"][0]["A_eigvals"] = np.ones(2)
    with pytest.raises(CheckpointError, match="A_eigvals"):
        other.load_state_dict(saved)


def test_eigen_and_adaptive_misuse_raise():
    model = nn.Linear(2, 2)
    for kwargs in (dict(inverse="cholesky"), dict(adaptive_damping=1), dict(damping_every=0)):
        name = next(iter(kwargs))
        with pytest.raises(ArgumentError, match=name):
            optim.KFAC(model, **kwargs)
    x, y = cr.randn(3, 2), cr.tensor([0, 1, 0])
    for adaptive, closure, message in ((False, lambda: 0.0, "only with adaptive_damping"), (True, None, "closure")):
        opt = optim.KFAC(model, adaptive_damping=adaptive)
        output = model(x)
        opt.backward(F.cross_entropy(output, y), output)
        with pytest.raises(ArgumentError, match=message):
            opt.step(closure)
