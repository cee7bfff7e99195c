"""The scalar engine: Value ops against closed forms, depth, and agreement with the tensor engine."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule import Value
from chainrule.scalar import MLP


def _numeric(f, x, eps=1e-6):
    return (f(x + eps) - f(x - eps)) / (2 * eps)


@pytest.mark.parametrize(
    "name, f_value, f_float",
    [
        ("add", lambda v: v + 3.0, lambda x: x + 3.0),
        ("radd", lambda v: 3.0 + v, lambda x: 3.0 + x),
        ("sub", lambda v: v - 2.5, lambda x: x - 2.5),
        ("rsub", lambda v: 2.5 - v, lambda x: 2.5 - x),
        ("mul", lambda v: v * v * 1.5, lambda x: x * x * 1.5),
        ("div", lambda v: 1.0 / (v + 3.0), lambda x: 1.0 / (x + 3.0)),
        ("pow", lambda v: (v + 3.0) ** 2.5, lambda x: (x + 3.0) ** 2.5),
        ("neg", lambda v: -v, lambda x: -x),
        ("exp", lambda v: v.exp(), math.exp),
        ("log", lambda v: (v + 3.0).log(), lambda x: math.log(x + 3.0)),
        ("tanh", lambda v: v.tanh(), math.tanh),
        ("sigmoid", lambda v: v.sigmoid(), lambda x: 1 / (1 + math.exp(-x))),
        ("relu", lambda v: (v * 2.0).relu(), lambda x: max(2 * x, 0.0)),
    ],
)
@pytest.mark.parametrize("x0", [-0.7, 0.4, 1.3])
def test_value_ops_match_central_differences(name, f_value, f_float, x0):
    x = Value(x0)
    y = f_value(x)
    y.backward()
    assert y.data == pytest.approx(f_float(x0))
    assert x.grad == pytest.approx(_numeric(f_float, x0), rel=1e-5, abs=1e-8)


def test_value_sigmoid_is_stable():
    assert Value(-1e4).sigmoid().data == 0.0
    assert Value(1e4).sigmoid().data == 1.0


def test_deep_value_chain_of_100000_ops():
    x = Value(1.0)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0


def test_value_forward_mode_through_the_shared_core():
    x = Value(0.3)
    y = (x * x).tanh()
    tangents = cr.autograd.forward_sweep([y], {id(x): 1.0})
    y.backward()
    assert tangents[id(y)] == pytest.approx(x.grad)


def test_scalar_mlp_and_tensor_engine_compute_the_same_gradients():
    net = MLP(3, [4, 4, 1], activation="tanh", seed=1)
    inputs = [[0.5, -1.0, 2.0], [1.5, 0.2, -0.3]]
    targets = [1.0, -1.0]
    loss = sum(((net(x) - t) ** 2 for x, t in zip(inputs, targets)), 0.0)
    net.zero_grad()
    loss.backward()

    # the same network as matrices: layer l has weight (n_in, n_out) from its neurons' w
    tensors = []
    for layer in net.layers:
        w = cr.tensor(np.array([[p.data for p in n.w] for n in layer.neurons]).T, dtype="float64", requires_grad=True)
        b = cr.tensor(np.array([n.b.data for n in layer.neurons]), dtype="float64", requires_grad=True)
        tensors.append((w, b))
    h = cr.tensor(np.array(inputs), dtype="float64")
    for i, (w, b) in enumerate(tensors):
        h = h @ w + b
        if i < len(tensors) - 1:
            h = h.tanh()
    tensor_loss = ((h.reshape(-1) - cr.tensor(targets, dtype="float64")) ** 2).sum()
    tensor_loss.backward()

    assert tensor_loss.item() == pytest.approx(loss.data, rel=1e-12)
    for layer, (w, b) in zip(net.layers, tensors):
        np.testing.assert_allclose(w.grad.data.T, [[p.grad for p in n.w] for n in layer.neurons], rtol=1e-10)
        np.testing.assert_allclose(b.grad.data, [n.b.grad for n in layer.neurons], rtol=1e-10)


def test_scalar_mlp_learns_xor():
    from chainrule.demo import train_xor

    result = train_xor(steps=400, engine="scalar")
    assert result.losses[-1] < 0.01 < result.losses[0]
    assert all(abs(p - t) < 0.2 for p, t in zip(result.predictions, [0, 1, 1, 0]))


def test_value_rejects_bad_input():
    with pytest.raises(cr.DTypeError, match="real number"):
        Value("abc")
    with pytest.raises(ValueError, match="log of -1.0"):
        Value(-1.0).log()
    with pytest.raises(ValueError, match="activation"):
        MLP(2, [1], activation="swish")
    with pytest.raises(ValueError, match="expected 2 inputs, got 3"):
        MLP(2, [1])([1.0, 2.0, 3.0])


def test_value_division_by_zero_is_an_argument_error():
    with pytest.raises(cr.ArgumentError, match=r"Value.__truediv__: division by zero"):
        Value(1.0) / 0
    with pytest.raises(cr.ArgumentError, match=r"Value.__pow__: 0.0 \*\* -1 divides by zero"):
        Value(0.0) ** -1


def test_value_pow_at_zero_matches_torch_slopes():
    for exponent, value, slope in [(0, 1.0, 0.0), (0.5, 0.0, math.inf), (1, 0.0, 1.0), (2, 0.0, 0.0), (3.0, 0.0, 0.0)]:
        x = Value(0.0)
        y = x**exponent
        y.backward()
        assert (y.data, x.grad) == (value, slope), exponent


def test_value_pow_never_returns_nan_or_inf_silently():
    with pytest.raises(OverflowError, match=r"Value.__pow__: 10.0 \*\* 400 overflows"):
        Value(10.0) ** 400
    with pytest.raises(cr.ArgumentError, match="not a real number"):
        Value(-8.0) ** (1 / 3)
    with pytest.raises(OverflowError, match="Value.exp"):
        Value(1000.0).exp()
