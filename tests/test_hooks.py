"""Tensor gradient hooks and Module forward-pre / full-backward hooks, against PyTorch's semantics."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.errors import ArgumentError, GradientError, ShapeError
from chainrule.hooks import _GRAD_HOOKS
from helpers import TORCH_MISSING, torch

needs_torch = pytest.mark.skipif(torch is None, reason=TORCH_MISSING)


# -- Tensor.register_hook ------------------------------------------------------------------------------
def test_tensor_hook_sees_the_complete_gradient_and_can_replace_it():
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True, dtype=cr.float64)
    y = x * x
    seen = []
    y.register_hook(lambda grad: seen.append(grad.data.copy()))
    y.register_hook(lambda grad: grad * 2)  # runs second: sees the same gradient, doubles it
    (y.sum() + (y * 3).sum()).backward()  # two consumers: the hook sees their sum, once
    np.testing.assert_allclose(seen, [[4.0, 4.0, 4.0]])
    np.testing.assert_allclose(x.grad.data, 2 * 4.0 * 2 * x.data)


def test_leaf_hook_runs_before_accumulation_and_in_autograd_grad():
    w = cr.tensor([1.0, -1.0], requires_grad=True, dtype=cr.float64)
    handle = w.register_hook(lambda grad: grad * 0 + 7)
    (w * 5).sum().backward()
    np.testing.assert_allclose(w.grad.data, [7.0, 7.0])
    (g,) = cr.autograd.grad((w * 5).sum(), w)
    np.testing.assert_allclose(g.data, [7.0, 7.0])
    handle.remove()
    (g,) = cr.autograd.grad((w * 5).sum(), w)
    np.testing.assert_allclose(g.data, [5.0, 5.0])


def test_hook_removal_and_table_cleanup():
    gc.collect()
    others = set(_GRAD_HOOKS)  # tensors other tests keep alive (a README snippet's namespace) keep their hooks
    x = cr.tensor([1.0], requires_grad=True)
    calls = []
    handle = x.register_hook(lambda grad: calls.append(1))
    with handle:
        (x * 2).sum().backward()
    (x * 2).sum().backward()
    assert calls == [1]
    handle.remove()  # twice: harmless
    assert set(_GRAD_HOOKS) == others
    y = x * 3
    y.register_hook(lambda grad: None)
    assert id(y) in _GRAD_HOOKS
    key = id(y)
    del y
    gc.collect()
    assert key not in _GRAD_HOOKS  # the entry dies with its tensor (its id could be reused)


def test_hook_errors():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(GradientError, match="does not require grad"):
        cr.tensor([1.0]).register_hook(lambda grad: None)
    with pytest.raises(ArgumentError, match="expected a function"):
        x.register_hook(3)
    y = x * 2
    y.register_hook(lambda grad: cr.zeros(3))
    with pytest.raises(ShapeError, match="shape"):
        y.sum().backward()


def test_hooks_under_create_graph_receive_differentiable_gradients():
    x = cr.tensor([0.5, -1.5], requires_grad=True, dtype=cr.float64)
    y = x**3
    kept = []
    y.register_hook(lambda grad: kept.append(grad))
    z = (y * y).sum()  # dz/dy = 2 y
    (gx,) = cr.autograd.grad(z, x, create_graph=True)
    assert kept[0].requires_grad
    (ggx,) = cr.autograd.grad(kept[0].sum(), x)  # d(2 x^3)/dx = 6 x^2
    np.testing.assert_allclose(ggx.data, 6 * x.data**2)
    np.testing.assert_allclose(gx.data, 6 * x.data**5)


# -- Module hooks against PyTorch ------------------------------------------------------------------------
def _twin_networks():
    """The same small conv net in chainrule and PyTorch (float64)."""
    ours = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, dtype=np.float64),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 5 * 5, 4, dtype=np.float64),
        nn.Tanh(),
        nn.Linear(4, 2, dtype=np.float64),
    )
    theirs = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(3 * 5 * 5, 4),
        torch.nn.Tanh(),
        torch.nn.Linear(4, 2),
    ).double()
    with torch.no_grad():
        for p, q in zip(ours.parameters(), theirs.parameters()):
            q.copy_(torch.from_numpy(p.data))
    return ours, theirs


def _as_numpy(value):
    if value is None:
        return None
    return value.detach().numpy() if torch is not None and isinstance(value, torch.Tensor) else value.data


@needs_torch
@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize("input_requires_grad", [False, True])
def test_full_backward_hooks_match_pytorch(input_requires_grad):
    ours, theirs = _twin_networks()
    data = np.random.default_rng(0).normal(size=(3, 2, 5, 5))
    records: dict[str, list] = {"ours": [], "theirs": []}

    def recorder(key, index):
        def hook(module, grad_input, grad_output):
            records[key].append((index, [_as_numpy(g) for g in grad_input], [_as_numpy(g) for g in grad_output]))

        return hook

    for index, (mine, other) in enumerate(zip(ours, theirs)):
        mine.register_full_backward_hook(recorder("ours", index))
        other.register_full_backward_hook(recorder("theirs", index))
    x_ours = cr.tensor(data, requires_grad=input_requires_grad)
    x_theirs = torch.tensor(data, requires_grad=input_requires_grad)
    (ours(x_ours) ** 2).sum().backward()
    (theirs(x_theirs) ** 2).sum().backward()

    assert [r[0] for r in records["ours"]] == [r[0] for r in records["theirs"]] == [5, 4, 3, 2, 1, 0]
    for (index, gin_ours, gout_ours), (_, gin_theirs, gout_theirs) in zip(records["ours"], records["theirs"]):
        assert len(gin_ours) == len(gin_theirs) and len(gout_ours) == len(gout_theirs)
        for a, b in zip(gin_ours + gout_ours, gin_theirs + gout_theirs):
            if b is None:
                assert a is None, f"layer {index}: PyTorch gives None"
            else:
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"layer {index}")
    if input_requires_grad:
        np.testing.assert_allclose(x_ours.grad.data, x_theirs.grad.numpy(), rtol=1e-12)


@needs_torch
def test_full_backward_hook_replacing_grad_input_matches_pytorch():
    ours, theirs = _twin_networks()
    data = np.random.default_rng(1).normal(size=(2, 2, 5, 5))
    ours[1].register_full_backward_hook(lambda m, gin, gout: (gin[0] * 3,))
    theirs[1].register_full_backward_hook(lambda m, gin, gout: (gin[0] * 3,))
    ours(cr.tensor(data)).sum().backward()
    theirs(torch.tensor(data)).sum().backward()
    np.testing.assert_allclose(ours[0].weight.grad.data, theirs[0].weight.grad.numpy(), rtol=1e-12)


@needs_torch
def test_full_backward_hook_under_create_graph_matches_pytorch():
    ours, theirs = _twin_networks()
    data = np.random.default_rng(2).normal(size=(2, 2, 5, 5))
    kept: dict[str, list] = {"ours": [], "theirs": []}
    ours[3].register_full_backward_hook(lambda m, gin, gout: kept["ours"].append(gout[0]))
    theirs[3].register_full_backward_hook(lambda m, gin, gout: kept["theirs"].append(gout[0]))
    loss_ours = (ours(cr.tensor(data)) ** 3).sum()
    loss_theirs = (theirs(torch.tensor(data)) ** 3).sum()
    cr.autograd.grad(loss_ours, list(ours.parameters()), create_graph=True)
    torch.autograd.grad(loss_theirs, list(theirs.parameters()), create_graph=True)
    assert kept["ours"][0].requires_grad and kept["theirs"][0].requires_grad
    (g_ours,) = cr.autograd.grad((kept["ours"][0] ** 2).sum(), ours[5].weight)
    (g_theirs,) = torch.autograd.grad((kept["theirs"][0] ** 2).sum(), theirs[5].weight)
    np.testing.assert_allclose(g_ours.data, g_theirs.numpy(), rtol=1e-10)


def test_backward_hook_removal_no_grad_and_repeated_passes():
    layer = nn.Linear(3, 2, dtype=np.float64)
    calls = []
    handle = layer.register_full_backward_hook(lambda m, gin, gout: calls.append(gout[0].shape))
    x = cr.ones(4, 3, dtype=cr.float64, requires_grad=True)
    out = layer(x).sum()
    out.backward(retain_graph=True)
    out.backward()  # the same call hooked twice: once per pass
    assert calls == [(4, 2), (4, 2)]
    with cr.no_grad():
        layer(x)
    handle.remove()
    layer(x).sum().backward()
    assert len(calls) == 2
    assert not layer._backward_hooks


def test_forward_pre_hook_changes_arguments_and_order_of_hooks():
    layer = nn.Linear(2, 1, dtype=np.float64)
    order = []
    layer.register_forward_pre_hook(lambda m, args: order.append("pre") or (args[0] * 0,))
    handle = layer.register_forward_hook(lambda m, args, out: order.append("post"))
    out = layer(cr.ones(3, 2, dtype=cr.float64))
    assert order == ["pre", "post"]
    np.testing.assert_allclose(out.data[:, 0], layer.bias.data[0])
    handle()  # the handle is also callable, as the remover used to be
    assert not layer._forward_hooks
    with pytest.raises(ArgumentError, match="register_full_backward_hook"):
        layer.register_full_backward_hook("not a function")


def test_hook_may_return_an_array_of_another_dtype():
    x = cr.tensor([1.0, 2.0], requires_grad=True)  # float32
    y = x * 2
    y.register_hook(lambda grad: np.array([1.0, -1.0]))  # float64 NumPy array
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.data, [2.0, -2.0])


# -- queue_callback: code that runs when backward() has accumulated every leaf's .grad ---------------------
def test_a_queued_callback_runs_once_after_every_leaf_gradient_is_accumulated():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    b = cr.tensor([0.5], requires_grad=True)
    seen = []

    def hook(grad):  # w's gradient is complete here, but b's is not accumulated yet
        seen.append(("hook", b.grad))
        cr.autograd.queue_callback(lambda: seen.append(("end", w.grad.tolist(), b.grad.tolist())))

    w.register_hook(hook)
    ((w * 3).sum() + b.sum() * 2).backward()
    assert len(seen) == 2 and seen[-1] == ("end", [3.0, 3.0], [2.0])


def test_callbacks_belong_to_backward_only_and_a_failed_sweep_runs_none():
    x = cr.tensor([1.0], requires_grad=True)
    flags, ran = [], []
    x.register_hook(lambda grad: flags.append(cr.autograd.in_backward()))
    cr.autograd.grad((x * 2).sum(), x)  # grad() accumulates nothing: no callbacks there
    (x * 2).sum().backward()
    assert flags == [False, True] and not cr.autograd.in_backward()
    with pytest.raises(GradientError, match="queue_callback: no backward\\(\\) sweep is running"):
        cr.autograd.queue_callback(lambda: None)

    def failing(grad):
        cr.autograd.queue_callback(lambda: ran.append(True))
        raise ValueError("hook failed")

    y = cr.tensor([1.0], requires_grad=True)
    y.register_hook(failing)
    with pytest.raises(ValueError, match="hook failed"):
        (y * 2).sum().backward()
    assert ran == [] and not cr.autograd.in_backward()
