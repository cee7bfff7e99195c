"""Curvature operators against dense matrices from PyTorch (float64), closed forms, and NumPy linear algebra."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import chainrule as cr
from chainrule import curvature, nn
from chainrule.errors import ArgumentError, ShapeError
from helpers import TORCH_MISSING, torch

TOL = 1e-10
parity = pytest.mark.skipif(torch is None, reason=TORCH_MISSING)


def _mlp(widths=(3, 4, 2), seed=0):
    cr.manual_seed(seed)
    layers = []
    for index, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(nn.Linear(a, b, dtype=np.float64))
        if index < len(widths) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def _batch(loss, n=5, seed=1):
    gen = np.random.default_rng(seed)
    x = gen.normal(size=(n, 3))
    y = gen.integers(0, 2, size=n) if loss == "cross_entropy" else gen.normal(size=(n, 2))
    return x, y


def _torch_problem(model, loss, x, y, reduction="mean"):
    """The same network as a torch function of the flat parameter vector, and the loss pieces."""
    space = curvature.ParameterSpace(model)
    theta = torch.tensor(space.vector())
    shapes, offsets = space.shapes, space.offsets
    xt = torch.tensor(x)
    yt = torch.tensor(y)

    def output(t):
        h = xt
        pieces = [t[a:b].reshape(s) for a, b, s in zip(offsets[:-1], offsets[1:], shapes)]
        for i in range(0, len(pieces), 2):
            h = h @ pieces[i].T + pieces[i + 1]
            if i + 2 < len(pieces):
                h = torch.tanh(h)
        return h

    if loss == "cross_entropy":

        def loss_of_output(o, target=yt, red=reduction):
            return torch.nn.functional.cross_entropy(o, target, reduction=red)
    else:

        def loss_of_output(o, target=yt, red=reduction):
            return torch.nn.functional.mse_loss(o, target, reduction=red)

    return theta, output, loss_of_output


LOSSES = {"cross_entropy": nn.CrossEntropyLoss, "mse": nn.MSELoss}
CASES = [(loss, red) for loss in LOSSES for red in ("mean", "sum")]


def _weight(loss, reduction, out_shape):
    if reduction == "sum":
        return 1.0
    return 1.0 / (out_shape[0] * (1 if loss == "cross_entropy" else out_shape[1]))


def _close(actual, expected, tol=TOL):
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol * scale)


@parity
@pytest.mark.parametrize("loss, reduction", CASES)
@pytest.mark.parametrize("method", ["forward-over-reverse", "reverse-over-reverse"])
def test_hessian_matches_torch(loss, reduction, method):
    model, (x, y) = _mlp(), _batch(loss)
    theta, output, loss_of_output = _torch_problem(model, loss, x, y, reduction)
    expected = torch.autograd.functional.hessian(lambda t: loss_of_output(output(t)), theta).numpy()
    H = curvature.hessian(model, LOSSES[loss](reduction=reduction), x, y, method=method)
    _close(H.to_dense(), expected)
    assert H.shape == (26, 26)


@parity
@pytest.mark.parametrize("loss, reduction", CASES)
def test_ggn_fisher_and_empirical_fisher_match_torch(loss, reduction):
    model, (x, y) = _mlp(), _batch(loss)
    theta, output, loss_of_output = _torch_problem(model, loss, x, y, reduction)
    out = output(theta).detach()
    jac = torch.func.jacrev(output)(theta).numpy()  # (N, C, P)
    n, c, p = jac.shape
    out_hessian = torch.autograd.functional.hessian(loss_of_output, out).numpy().reshape(n * c, n * c)
    flat_jac = jac.reshape(n * c, p)
    ggn = flat_jac.T @ out_hessian @ flat_jac
    w = _weight(loss, reduction, (n, c))
    if loss == "cross_entropy":  # the Fisher from its definition: every label, weighted by its probability
        probs = torch.softmax(out, dim=1).numpy()
        fisher = np.zeros((p, p))
        for label in range(c):
            targets = torch.full((n,), label)
            grads = torch.func.jacrev(
                lambda t, tg=targets: torch.nn.functional.cross_entropy(output(t), tg, reduction="none")
            )(theta).numpy()  # (N, P)
            fisher += w * (grads * probs[:, label : label + 1]).T @ grads
        per_sample = torch.func.jacrev(
            lambda t: torch.nn.functional.cross_entropy(output(t), torch.tensor(y), reduction="none")
        )(theta).numpy()
    else:  # Gaussian N(f, ½I): the Fisher in output space is the inverse covariance, 2I
        fisher = w * 2 * flat_jac.T @ flat_jac
        per_sample = torch.func.jacrev(lambda t: ((output(t) - torch.tensor(y)) ** 2).sum(dim=1))(theta).numpy()
    empirical = w * per_sample.T @ per_sample
    loss_fn = LOSSES[loss](reduction=reduction)
    G = curvature.ggn(model, loss_fn, x, y).to_dense()
    F = curvature.fisher(model, loss_fn, x, y).to_dense()
    E = curvature.empirical_fisher(model, loss_fn, x, y).to_dense()
    _close(G, ggn)
    _close(F, fisher)
    _close(E, empirical)
    _close(F, G)  # GGN = Fisher for these losses, computed two different ways
    assert np.linalg.norm(E - F) > 1e-3 * np.linalg.norm(F)  # the empirical Fisher is another matrix


def test_hessian_minus_ggn_is_the_residual_term_in_closed_form():
    """f = a·b (two 1×1 linear layers), L = (ab − y)²: H − G = 2(ab − y)[[0, 1], [1, 0]]."""
    model = nn.Sequential(nn.Linear(1, 1, bias=False, dtype=np.float64), nn.Linear(1, 1, bias=False, dtype=np.float64))
    a, b = 1.5, -0.5
    with cr.no_grad():
        model[0].weight.fill_(a)
        model[1].weight.fill_(b)
    x = np.array([[1.0]])
    for y in (0.25, a * b):
        loss = nn.MSELoss(reduction="sum")
        H = curvature.hessian(model, loss, x, np.array([[y]])).to_dense()
        G = curvature.ggn(model, loss, x, np.array([[y]])).to_dense()
        np.testing.assert_allclose(G, 2 * np.outer([b, a], [b, a]), atol=1e-14)
        np.testing.assert_allclose(H - G, 2 * (a * b - y) * np.array([[0.0, 1.0], [1.0, 0.0]]), atol=1e-14)
    # residuals exactly zero: H = G (here y = ab, the second loop)
    np.testing.assert_allclose(H, G, atol=1e-14)


def test_hessian_equals_ggn_on_a_network_that_fits_exactly():
    model = _mlp()
    x, _ = _batch("mse")
    with cr.no_grad():
        y = model(cr.tensor(x)).data.copy()  # targets = outputs: every residual is zero
    H = curvature.hessian(model, nn.MSELoss(), x, y).to_dense()
    G = curvature.ggn(model, nn.MSELoss(), x, y).to_dense()
    _close(H, G, 1e-12)
    y_off = y + 0.5
    H_off = curvature.hessian(model, nn.MSELoss(), x, y_off).to_dense()
    assert np.linalg.norm(H_off - G) > 1e-2 * np.linalg.norm(G)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_monte_carlo_fisher_converges_to_the_exact_fisher(loss):
    model, (x, y) = _mlp(), _batch(loss)
    exact = curvature.fisher(model, LOSSES[loss](), x, y).to_dense()
    errors = []
    for samples in (4, 64, 1024):
        mc = curvature.fisher(model, LOSSES[loss](), x, y, mc_samples=samples, seed=3).to_dense()
        errors.append(np.linalg.norm(mc - exact) / np.linalg.norm(exact))
    # the error falls like 1/sqrt(M): 16× more samples, about 4× smaller (allow 2×)
    assert errors[1] < errors[0] / 2 and errors[2] < errors[1] / 2, errors
    assert errors[2] < 0.1, errors
    again = curvature.fisher(model, LOSSES[loss](), x, y, mc_samples=4, seed=3).to_dense()
    np.testing.assert_array_equal(again, curvature.fisher(model, LOSSES[loss](), x, y, mc_samples=4, seed=3).to_dense())


def test_products_take_and_return_every_form():
    model, (x, y) = _mlp(), _batch("cross_entropy")
    H = curvature.hessian(model, "cross_entropy", x, y)
    v = np.random.default_rng(0).normal(size=H.shape[0])
    flat = H @ v
    pieces = H @ H.space.unflatten(v)
    assert [p.shape for p in pieces] == [(4, 3), (4,), (2, 4), (2,)]
    np.testing.assert_allclose(H.space.flatten(pieces), flat, atol=1e-14)
    tensors = H @ [cr.tensor(p) for p in H.space.unflatten(v)]
    assert all(isinstance(t, cr.Tensor) for t in tensors)
    assert isinstance(H @ cr.tensor(v), cr.Tensor)
    block = H @ np.stack([v, 2 * v], axis=1)
    np.testing.assert_allclose(block[:, 1], 2 * flat, atol=1e-13)
    dense = H.to_dense()
    np.testing.assert_allclose(H.block("0.weight").to_dense(), dense[:12, :12], atol=1e-14)
    both = H.block("0.bias", "2.bias")
    index = np.r_[12:16, 24:26]
    np.testing.assert_allclose(both.to_dense(), dense[np.ix_(index, index)], atol=1e-14)
    assert both.space.names == ["0.bias", "2.bias"] and [p.shape for p in both @ [np.ones(4), np.ones(2)]] == [
        (4,),
        (2,),
    ]
    with pytest.raises(ArgumentError, match="unknown parameters"):
        H.block("3.weight")
    with pytest.raises(ShapeError, match="shape"):
        H @ np.ones(3)
    with pytest.raises(ArgumentError, match="non-finite"):
        H @ np.full(26, np.nan)


def test_diagonal_trace_and_eigenpairs_against_numpy():
    model, (x, y) = _mlp(), _batch("cross_entropy", n=8)
    for C in (curvature.hessian(model, "cross_entropy", x, y), curvature.ggn(model, "cross_entropy", x, y)):
        dense = C.to_dense()
        np.testing.assert_allclose(dense, dense.T, atol=1e-13)
        values = np.linalg.eigvalsh(dense)
        _close(C.diagonal(), np.diag(dense))
        assert abs(C.trace() - np.trace(dense)) < TOL
        assert abs(C.trace("hutch++", samples=3 * 26) - np.trace(dense)) < 1e-8  # the sketch spans everything
        top, vectors = C.eigh(k=3)
        _close(top, values[::-1][:3], 1e-9)
        np.testing.assert_allclose(dense @ vectors, vectors * top, atol=1e-8)
        bottom, _ = C.eigh(k=2, which="smallest")
        _close(bottom, values[:2], 1e-9)
        # Hutchinson: unbiased, within 5 standard deviations of the truth
        samples = 400
        std = np.sqrt(2 / samples * (np.sum(dense**2) - np.sum(np.diag(dense) ** 2)))
        assert abs(C.trace("hutchinson", samples=samples, seed=1) - np.trace(dense)) < 5 * std
        estimate = C.diagonal("hutchinson", samples=samples, seed=1)
        diag_std = np.sqrt((np.sum(dense**2, axis=1) - np.diag(dense) ** 2) / samples)
        assert np.all(np.abs(estimate - np.diag(dense)) <= 5 * diag_std + 1e-12)


def test_eigh_through_scipy_and_the_scipy_operator():
    pytest.importorskip("scipy")
    model, (x, y) = _mlp(), _batch("mse")
    G = curvature.ggn(model, "mse", x, y)
    dense = G.to_dense()
    values, _ = G.eigh(k=2, method="scipy")
    _close(values, np.linalg.eigvalsh(dense)[::-1][:2], 1e-8)
    v = np.arange(26.0)
    np.testing.assert_allclose(G.to_scipy() @ v, dense @ v, atol=1e-12)


def test_lanczos_restarts_on_a_low_rank_operator():
    gen = np.random.default_rng(0)
    basis = np.linalg.qr(gen.normal(size=(30, 3)))[0]
    low_rank = basis @ np.diag([5.0, 2.0, 1.0]) @ basis.T  # rank 3: the Krylov space closes after 4 steps
    values, _ = curvature.lanczos(low_rank, k=5)
    _close(values, [5.0, 2.0, 1.0, 0.0, 0.0], 1e-12)


@pytest.mark.parametrize("damping", [1e-3, 0.1])
def test_cg_solves_damped_systems_like_numpy(damping):
    model, (x, y) = _mlp(), _batch("cross_entropy")
    F = curvature.fisher(model, nn.CrossEntropyLoss(), x, y)
    b = np.random.default_rng(2).normal(size=26)
    result = curvature.cg(F, b, damping=damping, tol=1e-12, maxiter=500)
    expected = np.linalg.solve(F.to_dense() + damping * np.eye(26), b)
    assert result.converged and result.reason == "converged"
    np.testing.assert_allclose(result.x, expected, rtol=1e-7, atol=1e-9)
    assert result.residual_norm < 1e-9 and len(result.residuals) == result.iterations
    pieces = curvature.cg(F, F.space.unflatten(b), damping=damping, tol=1e-12, maxiter=500).x
    np.testing.assert_allclose(F.space.flatten(pieces), expected, rtol=1e-7, atol=1e-9)
    assert "converged in" in str(result)


def test_cg_reports_non_positive_curvature_and_maxiter():
    with pytest.warns(RuntimeWarning, match="non-positive curvature"):
        result = curvature.cg(np.diag([1.0, -1.0]), np.array([1.0, 1.0]))
    assert not result.converged and result.reason == "non-positive curvature"
    assert "did NOT converge" in str(result)
    slow = curvature.cg(np.diag(np.arange(1.0, 50.0)), np.ones(49), maxiter=2)
    assert slow.reason == "maxiter" and slow.iterations == 2
    zero = curvature.cg(np.eye(2), np.zeros(2))
    assert zero.converged and zero.x.tolist() == [0.0, 0.0]


def test_errors_name_the_loss_the_limit_and_the_argument():
    model, (x, y) = _mlp(), _batch("mse")
    with pytest.raises(ArgumentError, match="L1Loss"):
        curvature.fisher(model, nn.L1Loss(), x, y)
    with pytest.raises(ArgumentError, match="HuberLoss"):
        curvature.empirical_fisher(model, nn.HuberLoss(), x, y)
    with pytest.raises(ShapeError, match="one number"):
        curvature.hessian(model, nn.MSELoss(reduction="none"), x, y)
    with pytest.raises(ArgumentError, match="over the limit"):
        curvature.hessian(model, "mse", x, y).to_dense(limit=10)
    with pytest.raises(ArgumentError, match="mc_samples"):
        curvature.fisher(model, "mse", x, y, mc_samples=0)
    with pytest.raises(ArgumentError, match="method"):
        curvature.hessian(model, "mse", x, y).trace(method="exactly")
    with pytest.raises(ArgumentError, match="damping"):
        curvature.cg(np.eye(2), np.ones(2), damping=-1.0)
    with pytest.raises(ArgumentError, match="k=30 exceeds"):
        curvature.lanczos(np.eye(26), k=30)
    # a loss the Fisher does not know still has a Hessian and a GGN
    G = curvature.ggn(model, nn.HuberLoss(), x, y)
    assert G.shape == (26, 26)


def test_operator_is_a_snapshot_and_the_model_is_unchanged():
    model, (x, y) = _mlp(), _batch("mse")
    before = [p.data.copy() for p in model.parameters()]
    H = curvature.hessian(model, "mse", x, y)
    first = H @ np.ones(26)
    with cr.no_grad():
        for p in model.parameters():
            p.copy_(2.0 * p.data)
    np.testing.assert_array_equal(H @ np.ones(26), first)
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())
    np.testing.assert_array_equal(next(model.parameters()).data, 2 * before[0])
    assert H.products == 2


def test_the_readme_curvature_snippet_runs():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Curvature") :].split("\n## ", 1)[0]
    (snippet,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert namespace["step"].converged and namespace["values"].shape == (3,)
