"""Per-sample gradients and the gradient variance against torch.func (vmap of grad), in float64."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.curvature import BatchGrad, gradient_variance, per_sample_gradients
from chainrule.errors import ArgumentError
from chainrule.nn import functional as F
from helpers import TORCH_MISSING, torch

needs_torch = pytest.mark.skipif(torch is None, reason=TORCH_MISSING)


def _conv_net():
    _ = cr.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding="same", dtype=np.float64),
        nn.Tanh(),
        nn.Conv2d(3, 2, 2, stride=2, bias=False, dtype=np.float64),
        nn.Flatten(),
        nn.Linear(2 * 3 * 3, 4, dtype=np.float64),
    )


def _torch_twin(model):
    layers = []
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            layers.append(
                torch.nn.Conv2d(
                    layer.in_channels,
                    layer.out_channels,
                    layer.kernel_size,
                    stride=layer.stride,
                    padding=layer.padding,
                    bias=layer.bias is not None,
                )
            )
        elif isinstance(layer, nn.Linear):
            layers.append(torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None))
        elif isinstance(layer, nn.Tanh):
            layers.append(torch.nn.Tanh())
        elif isinstance(layer, nn.Flatten):
            layers.append(torch.nn.Flatten())
    twin = torch.nn.Sequential(*layers).double()
    with torch.no_grad():
        for p, q in zip(model.parameters(), twin.parameters()):
            q.copy_(torch.from_numpy(p.data))
    return twin


def _torch_per_sample(twin, loss_fn, x, y):
    from torch.func import functional_call, grad, vmap

    params = {name: p.detach() for name, p in twin.named_parameters()}

    def sample_loss(params, xn, yn):
        return loss_fn(functional_call(twin, params, (xn[None],)), yn[None])

    return {k: v.numpy() for k, v in vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y).items()}


@needs_torch
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_conv_and_linear_match_torch_func(reduction):
    model = _conv_net()
    twin = _torch_twin(model)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 2, 6, 6))
    y = rng.integers(0, 4, size=7)
    ours = per_sample_gradients(
        model,
        lambda out, t: F.cross_entropy(out, t, reduction=reduction),
        cr.tensor(x),
        cr.tensor(y),
        reduction=reduction,
    )
    theirs = _torch_per_sample(
        twin, lambda out, t: torch.nn.functional.cross_entropy(out, t), torch.tensor(x), torch.tensor(y)
    )
    assert set(ours) == set(theirs)
    for name in theirs:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-10, atol=1e-12, err_msg=name)
    assert all(p.grad is None for p in model.parameters())  # per_sample_gradients leaves .grad alone


@needs_torch
def test_linear_on_sequences_and_variance_match_torch_func():
    _ = cr.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 5, dtype=np.float64), nn.Sigmoid(), nn.Linear(5, 2, dtype=np.float64))
    twin = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Sigmoid(), torch.nn.Linear(5, 2)).double()
    with torch.no_grad():
        for p, q in zip(model.parameters(), twin.parameters()):
            q.copy_(torch.from_numpy(p.data))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 4, 3)), rng.normal(size=(6, 4, 2))  # (N, T, features): the weight is shared over T
    ours = per_sample_gradients(model, F.mse_loss, cr.tensor(x), cr.tensor(y))
    theirs = _torch_per_sample(twin, torch.nn.functional.mse_loss, torch.tensor(x), torch.tensor(y))
    for name in theirs:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-10, atol=1e-12, err_msg=name)
    variance = gradient_variance(model, F.mse_loss, cr.tensor(x), cr.tensor(y), ddof=1)
    for name in theirs:
        np.testing.assert_allclose(variance[name], np.var(theirs[name], axis=0, ddof=1), rtol=1e-10, atol=1e-14)


def test_mean_of_per_sample_gradients_is_the_batch_gradient_and_matrix_layout():
    model = _conv_net()
    rng = np.random.default_rng(2)
    x, y = cr.tensor(rng.normal(size=(5, 2, 6, 6))), cr.tensor(rng.integers(0, 4, size=5))
    with BatchGrad(model) as batch:
        F.cross_entropy(model(x), y).backward()
    grads = batch.gradients()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[name].mean(axis=0), p.grad.data, rtol=1e-10, atol=1e-13)
    matrix = batch.matrix()
    assert matrix.shape == (5, sum(p.numel() for p in model.parameters()))
    np.testing.assert_allclose(matrix[:, : 3 * 2 * 9].reshape(5, 3, 2, 3, 3), grads["0.weight"])


def test_shared_layer_adds_its_calls():
    _ = cr.manual_seed(4)
    layer = nn.Linear(3, 3, dtype=np.float64)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(self.layer(x).tanh())

    model = Twice()
    x = cr.tensor(np.random.default_rng(3).normal(size=(4, 3)))
    grads = per_sample_gradients(model, lambda out, t: (out**2).sum(), x, None, reduction="sum")
    for n in range(4):  # each sample alone, through the engine
        model.zero_grad()
        (model(x[n : n + 1]) ** 2).sum().backward()
        np.testing.assert_allclose(grads["layer.weight"][n], layer.weight.grad.data, rtol=1e-10)


def test_unsupported_layers_and_bad_arguments_raise():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    with pytest.raises(ArgumentError, match=r"layer '1' \(BatchNorm1d\).*Linear, Conv1d, Conv2d"):
        BatchGrad(model)
    model[1].requires_grad_(False)
    BatchGrad(model)  # frozen: fine
    with pytest.raises(ArgumentError, match="reduction"):
        BatchGrad(nn.Linear(2, 2), reduction="average")
    with pytest.raises(ArgumentError, match="saw no forward"):
        with BatchGrad(nn.Linear(2, 2)) as batch:
            pass
        batch.gradients()
    with pytest.raises(ArgumentError, match="ddof"):
        gradient_variance(nn.Linear(2, 1), F.mse_loss, cr.randn(3, 2), cr.randn(3, 1), ddof=3)


@needs_torch
def test_conv1d_with_dilation_matches_torch_func():
    _ = cr.manual_seed(5)
    model = nn.Sequential(nn.Conv1d(2, 3, 3, stride=2, padding=1, dilation=2, dtype=np.float64), nn.Flatten())
    conv = model[0]
    twin = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3, stride=2, padding=1, dilation=2), torch.nn.Flatten()).double()
    with torch.no_grad():
        twin[0].weight.copy_(torch.from_numpy(conv.weight.data))
        twin[0].bias.copy_(torch.from_numpy(conv.bias.data))
    x = np.random.default_rng(5).normal(size=(4, 2, 9))
    ours = per_sample_gradients(model, lambda out, t: (out**2).sum(), cr.tensor(x), None, reduction="sum")
    theirs = _torch_per_sample(twin, lambda out, t: (out**2).sum(), torch.tensor(x), torch.zeros(4))
    for name in theirs:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-10, atol=1e-12, err_msg=name)
