"""The graph machinery: accumulation, freeing, grad modes, depth, dtypes, higher order."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule import autograd
from helpers import TORCH_MISSING, torch


def test_gradients_accumulate_across_backward_calls():
    x = cr.tensor([1.0, -2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3 + 2, 3 - 4])


def test_fan_out_sums_every_path():
    x = cr.tensor(2.0, requires_grad=True)
    y = x * x + x.exp() * x  # d/dx = 2x + e^x (1 + x)
    y.backward()
    assert x.grad.item() == pytest.approx(4 + np.exp(2) * 3, rel=1e-6)


def test_leaf_gradients_never_alias_each_other():
    a = cr.tensor([1.0, 2.0], requires_grad=True)
    b = cr.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    assert not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.data *= 10  # e.g. gradient clipping in place must not change b's gradient
    np.testing.assert_allclose(b.grad.data, [1.0, 1.0])


def test_leaf_gradient_of_a_broadcast_is_writable():
    w = cr.tensor([[1.0, 2.0]], requires_grad=True)
    w.sum().backward()
    w.grad.data *= 2
    np.testing.assert_allclose(w.grad.data, [[2.0, 2.0]])


def test_deep_chain_of_100000_ops_backpropagates_without_recursion():
    limit = sys.getrecursionlimit()
    x = cr.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0
    assert sys.getrecursionlimit() == limit


def test_graph_is_freed_after_backward_and_a_second_backward_says_why():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(cr.GradientError, match="second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.data.copy()
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * first)


def test_no_grad_builds_no_graph_and_works_as_decorator():
    w = cr.tensor([1.0], requires_grad=True)
    with cr.no_grad():
        y = w * 2
        with cr.enable_grad():
            z = w * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn == "mul"

    @cr.no_grad()
    def step():
        return w * 3

    assert not step().requires_grad
    assert cr.is_grad_enabled()


def test_backward_needs_a_gradient_for_non_scalar_outputs():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(cr.GradientError, match="one-element output.*shape \\(2,\\)"):
        (x * 2).backward()
    (x * 2).backward(cr.tensor([1.0, 0.5]))
    np.testing.assert_allclose(x.grad.data, [2.0, 1.0])


def test_backward_on_a_tensor_without_grad_explains():
    with pytest.raises(cr.GradientError, match="does not require grad"):
        cr.tensor([1.0]).sum().backward()


def test_requires_grad_only_for_floats():
    with pytest.raises(cr.DTypeError, match="floating-point"):
        cr.tensor([1, 2], requires_grad=True)


def test_float32_default_and_scalars_do_not_upcast():
    x = cr.tensor([1.0, 2.0])
    assert x.dtype == np.float32
    assert (x * 2.5).dtype == np.float32
    assert (2.5**x).dtype == np.float32
    assert (x + np.float32(1)).dtype == np.float32
    assert cr.tensor([1, 2]).dtype == np.int64
    assert (cr.tensor([1, 2]) * x).dtype == np.float32  # integer meets float: the float's dtype
    assert cr.tensor(np.zeros(2)).dtype == np.float64  # NumPy float64 data keeps its dtype
    assert cr.tensor([1, 2]).exp().dtype == np.float32


def test_float32_gradient_of_mixed_precision_stays_float32():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (x * cr.tensor(np.array([1.0, 2.0]))).sum()  # float64 constant: result float64
    assert y.dtype == np.float64
    y.backward()
    assert x.grad.dtype == np.float32


def test_in_place_update_of_a_leaf_requires_no_grad():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(cr.GradientError, match="no_grad"):
        w -= 1.0
    with cr.no_grad():
        w -= 1.0
    np.testing.assert_allclose(w.data, [0.0, 1.0])
    assert w.requires_grad and w.is_leaf


def test_numpy_arrays_defer_to_tensor_operators():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([2.0, 3.0], dtype=np.float32) * x
    assert isinstance(y, cr.Tensor) and y.requires_grad


def test_repr_shows_data_and_grad_fn():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "tensor([1., 2.], requires_grad=True)"
    assert repr(x * 2) == "tensor([2., 4.], grad_fn=<mul>)"
    assert "dtype=float64" in repr(cr.tensor(np.ones(1)))


def test_grad_with_respect_to_chosen_inputs_leaves_dot_grad_alone():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    w = cr.tensor([3.0, 4.0], requires_grad=True)
    (dx,) = autograd.grad((x * w).sum(), x)
    np.testing.assert_allclose(dx.data, [3.0, 4.0])
    assert x.grad is None and w.grad is None


def test_grad_of_unused_input():
    x = cr.tensor(1.0, requires_grad=True)
    z = cr.tensor(1.0, requires_grad=True)
    with pytest.raises(cr.GradientError, match="allow_unused"):
        autograd.grad(x * 2, [x, z])
    assert autograd.grad(x * 2, [x, z], allow_unused=True)[1] is None


def test_grad_of_intermediate_tensor():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    (dh,) = autograd.grad((h * h).sum(), h)
    np.testing.assert_allclose(dh.data, 2 * h.data)


def test_second_derivative_via_create_graph():
    x = cr.tensor(1.5, requires_grad=True)
    y = x.sin() * x**2
    (dy,) = autograd.grad(y, x, create_graph=True)
    (d2y,) = autograd.grad(dy, x)
    expected = -np.sin(1.5) * 1.5**2 + 4 * 1.5 * np.cos(1.5) + 2 * np.sin(1.5)
    assert d2y.item() == pytest.approx(expected, rel=1e-5)


def test_backward_with_create_graph_gives_differentiable_leaf_grad():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    (x**3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (g2,) = autograd.grad(x.grad.sum(), x)
    np.testing.assert_allclose(g2.data, 6 * x.data)


def test_hvp_of_quadratic_equals_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 4))
    hessian = a + a.T  # f(x) = xᵀ A x has Hessian A + Aᵀ
    x0, v = rng.standard_normal(4), rng.standard_normal(4)
    value, (hv,) = cr.func.hvp(lambda x: x @ cr.tensor(a) @ x, (x0,), (v,))
    np.testing.assert_allclose(hv.data, hessian @ v, rtol=1e-10)
    np.testing.assert_allclose(cr.func.hessian(lambda x: x @ cr.tensor(a) @ x)(x0).data, hessian, rtol=1e-10)
    assert value.item() == pytest.approx(x0 @ a @ x0)


def _mlp_loss(cr_or_torch, params, x, y, activation, loss):
    """A two-layer MLP loss written once for both libraries (same method names)."""
    w1, b1, w2, b2 = params
    net = x @ w1 + b1
    hidden = (
        torch.nn.functional.softplus(net)
        if cr_or_torch is torch and activation == "softplus"
        else (getattr(net, activation)())
    )
    logits = hidden @ w2 + b2
    if loss == "mse":
        return ((logits - y) ** 2).mean()
    log_probs = logits.log_softmax(-1) if cr_or_torch is cr else logits.log_softmax(dim=-1)
    return -(log_probs * y).sum() / x.shape[0]


@pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_mlp_hvp_matches_pytorch_double_backward(activation, loss):
    rng = np.random.default_rng(3)
    shapes = [(3, 5), (5,), (5, 4), (4,)]
    params = [rng.standard_normal(s) * 0.7 for s in shapes]
    vectors = [rng.standard_normal(s) for s in shapes]
    x = rng.standard_normal((6, 3))
    y = np.eye(4)[rng.integers(0, 4, 6)] if loss == "cross_entropy" else rng.standard_normal((6, 4))
    ours = cr.func.hvp(
        lambda *p: _mlp_loss(cr, p, cr.tensor(x), cr.tensor(y), activation, loss), tuple(params), tuple(vectors)
    )[1]

    t_params = [torch.tensor(p, requires_grad=True) for p in params]
    t_loss = _mlp_loss(torch, t_params, torch.tensor(x), torch.tensor(y), activation, loss)
    grads = torch.autograd.grad(t_loss, t_params, create_graph=True)
    dot = sum((g * torch.tensor(v)).sum() for g, v in zip(grads, vectors))
    theirs = torch.autograd.grad(dot, t_params)
    for mine, ref in zip(ours, theirs):
        np.testing.assert_allclose(mine.data, ref.numpy(), rtol=1e-9, atol=1e-11)


def test_topological_order_handles_diamonds_once():
    x = cr.tensor(1.0, requires_grad=True)
    a = x * 2
    b = a + a
    c = b * a
    order = autograd.topological_order([c])
    assert [id(n) for n in order].count(id(a)) == 1
    assert order[-1] is c and order[0] is x


def test_memory_of_intermediate_gradients_is_released():
    """After backward the graph holds nothing: intermediate tensors can be garbage collected."""
    import weakref

    x = cr.tensor(np.ones(1000), requires_grad=True)
    h = x * 2
    ref = weakref.ref(h)
    loss = (h * h).sum()
    del h
    loss.backward()
    assert ref() is None


# -- leaf gradients own their memory ----------------------------------------------------------------------
@pytest.mark.parametrize("as_tensor", [False, True])
def test_leaf_grad_never_aliases_the_grad_argument(as_tensor):
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    y = x + 0
    seed = np.array([1.0, 1.0], dtype=np.float32)
    y.backward(cr.tensor(seed) if as_tensor else seed)
    assert not np.shares_memory(x.grad.data, seed)
    seed *= 5
    np.testing.assert_allclose(x.grad.data, [1.0, 1.0])
    x.grad.data *= 3
    np.testing.assert_allclose(seed, [5.0, 5.0])


def test_leaf_grad_never_aliases_with_create_graph():
    a = cr.tensor([1.0, 2.0], requires_grad=True)
    b = cr.tensor([3.0, 4.0], requires_grad=True)
    seed = cr.tensor([1.0, 1.0])
    (a + b).backward(seed, create_graph=True)
    assert a.grad is not b.grad and a.grad is not seed
    assert not np.shares_memory(a.grad.data, b.grad.data)
    assert not np.shares_memory(a.grad.data, seed.data)
    a.grad.data *= 10
    np.testing.assert_allclose(b.grad.data, [1.0, 1.0])
    np.testing.assert_allclose(seed.data, [1.0, 1.0])


def test_accumulation_leaves_a_held_grad_unchanged():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    held = x.grad
    (x * x).sum().backward()
    np.testing.assert_allclose(held.data, [3.0, 3.0])
    np.testing.assert_allclose(x.grad.data, [5.0, 7.0])


# -- casting to integers ends the graph ---------------------------------------------------------------------
@pytest.mark.parametrize("cast", [lambda t: t.long(), lambda t: t.to(cr.int64), lambda t: t.astype("bool")])
def test_cast_of_a_float_that_requires_grad_to_int_has_no_graph(cast):
    x = cr.tensor([1.5, -2.0], requires_grad=True)
    out = cast(x)
    assert not out.requires_grad and out.grad_fn is None and out.is_leaf
    assert x.double().requires_grad  # float to float stays differentiable


# -- freed graphs --------------------------------------------------------------------------------------------
def test_backward_frees_saved_tensors_and_a_second_backward_explains():
    import weakref

    x = cr.tensor(np.ones(3), requires_grad=True)
    h = x.exp()
    saved = weakref.ref(h)
    y = (h * h).sum()
    kept = y * 2  # an intermediate still alive after backward
    del h
    kept.backward()
    assert saved() is None  # the freed nodes dropped their parents and saved inputs
    assert y._ctx.op.name == "sum" and not hasattr(y._ctx, "args")
    with pytest.raises(cr.GradientError, match="second time.*'mul'.*retain_graph=True"):
        kept.backward()
    with pytest.raises(cr.GradientError, match="second time"):
        (y * 3).backward()


# -- nested transforms ---------------------------------------------------------------------------------------
def test_nested_transforms_match_closed_forms():
    x0 = cr.tensor(0.7, dtype=cr.float64)
    one = cr.tensor(1.0, dtype=cr.float64)
    d2 = cr.func.grad(cr.func.grad(cr.sin))
    d3 = cr.func.grad(d2)
    assert d2(x0).item() == pytest.approx(-np.sin(0.7), rel=1e-12)
    assert d3(x0).item() == pytest.approx(-np.cos(0.7), rel=1e-12)
    assert cr.func.grad(d3)(x0).item() == pytest.approx(np.sin(0.7), rel=1e-12)
    jvp_of_grad = cr.func.jvp(cr.func.grad(cr.sin), (x0,), (one,))[1]
    assert jvp_of_grad.item() == pytest.approx(-np.sin(0.7), rel=1e-12)
    grad_of_vjp = cr.func.grad(lambda x: cr.func.vjp(cr.sin, x)[1](one)[0])
    assert grad_of_vjp(x0).item() == pytest.approx(-np.sin(0.7), rel=1e-12)
    grad_of_jvp = cr.func.grad(lambda x: cr.func.jvp(lambda t: t**3, (x,), (one,))[1])  # d/dx 3x² = 6x
    assert grad_of_jvp(x0).item() == pytest.approx(6 * 0.7, rel=1e-12)
    jvp_of_jvp = cr.func.jvp(lambda x: cr.func.jvp(cr.exp, (x,), (one,))[1], (x0,), (one,))[1]
    assert jvp_of_jvp.item() == pytest.approx(np.exp(0.7), rel=1e-12)


# -- dtype promotion follows torch.result_type ------------------------------------------------------------------
_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "bool": np.bool_}


@pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "truediv", "pow", "maximum", "minimum"])
@pytest.mark.parametrize(
    "left, right",
    [
        ("float32", "float64"),
        ("int64", "float32"),
        ("int64", "int64"),
        ("bool", "int64"),
        ("float32", 2.5),
        ("int64", 2.5),
        ("int64", 2),
        ("bool", 2.5),
        ("float32", "0d-float64"),
        ("int64", "0d-float64"),
        ("float32", np.float64(2.0)),
    ],
)
def test_binary_dtype_promotion_matches_torch(op, left, right):
    import operator as operators

    def make(spec, lib):
        if not isinstance(spec, str):
            return spec
        zero_d = spec.startswith("0d-")
        name = spec.removeprefix("0d-")
        value = np.array(2 if zero_d else [1, 2]).astype(_DTYPES[name])
        return cr.tensor(value) if lib is cr else torch.tensor(value)

    if op in ("maximum", "minimum"):
        if not isinstance(right, str):
            pytest.skip("torch.maximum takes tensors only")
        ours, theirs = getattr(cr, op), getattr(torch, op)
    else:
        ours = theirs = getattr(operators, op)
    try:
        expected = theirs(make(left, torch), make(right, torch)).dtype
    except RuntimeError:
        pytest.skip("PyTorch refuses this combination (e.g. bool - int)")
    got = ours(make(left, cr), make(right, cr)).dtype
    assert str(got) == str(expected).removeprefix("torch.")
