"""One generic check per property, parametrized over the whole op table in ``helpers.OP_CASES``.

For every op: forward against NumPy (float64 and float32), reverse and forward mode against central
differences in float64, each gradient of its input's shape, the adjoint identity <J t, c> = <t, Jᵀ c>,
second derivatives (gradgradcheck), forward values and gradients against PyTorch, and an op's fast NumPy
rules (``fast_vjp``, ``fast_jvp``) against its generic ones. NumPy is set to raise on any floating-point error
while these run.
"""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import chainrule as cr
from chainrule import autograd
from chainrule.ops import numpy_namespace
from chainrule.tensor import apply
from helpers import OP_CASES, TORCH_MISSING, as_outputs, rule_calls, torch

CASES = {case.name: case for case in OP_CASES}
NAMES = list(CASES)
CHECK = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def _raise_on_floating_point_errors():
    with np.errstate(all="raise"):
        yield


def _leaves(arrays, dtype=np.float64):
    return [cr.tensor(a.astype(dtype), requires_grad=True) for a in arrays]


@pytest.mark.parametrize("name", NAMES)
@CHECK
@given(data=st.data())
def test_forward_matches_numpy(name, data):
    drawn = data.draw(CASES[name].inputs)
    references = as_outputs(drawn.ref(*drawn.arrays))
    for dtype, tolerance in ((np.float64, 1e-12), (np.float32, 2e-5)):
        outputs = as_outputs(drawn.fn(*[cr.tensor(a.astype(dtype)) for a in drawn.arrays]))
        assert len(outputs) == len(references)
        for out, ref in zip(outputs, references):
            assert out.dtype == dtype, f"{name} turned {np.dtype(dtype)} into {out.dtype}"
            assert out.shape == np.shape(ref)
            np.testing.assert_allclose(out.data, ref, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name", NAMES)
@CHECK
@given(data=st.data())
def test_reverse_and_forward_mode_match_central_differences(name, data):
    drawn = data.draw(CASES[name].inputs)
    assert cr.gradcheck(drawn.fn, list(drawn.arrays))


@pytest.mark.parametrize("name", NAMES)
@CHECK
@given(data=st.data())
def test_gradient_has_input_shape_and_dtype(name, data):
    drawn = data.draw(CASES[name].inputs)
    for dtype in (np.float32, np.float64):
        leaves = _leaves(drawn.arrays, dtype)
        outputs = as_outputs(drawn.fn(*leaves))
        total = sum((o * 1.5).sum() for o in outputs)
        total.backward()
        for leaf in leaves:
            assert leaf.grad is not None
            assert leaf.grad.shape == leaf.shape
            assert leaf.grad.dtype == leaf.dtype


@pytest.mark.parametrize("name", NAMES)
@CHECK
@given(data=st.data())
def test_jvp_and_vjp_are_adjoint(name, data):
    """<J t, c> computed by forward mode equals <t, Jᵀ c> computed by reverse mode."""
    drawn = data.draw(CASES[name].inputs)
    rng = np.random.default_rng(0)
    leaves = _leaves(drawn.arrays)
    outputs = as_outputs(drawn.fn(*leaves))
    tangents = {id(x): rng.standard_normal(x.shape) for x in leaves}
    cotangents = [rng.standard_normal(o.shape) for o in outputs]
    forward = autograd.forward_sweep(outputs, tangents)
    lhs = sum(float(np.sum(forward[id(o)] * c)) for o, c in zip(outputs, cotangents))
    grads = autograd.grad(outputs, leaves, cotangents, allow_unused=True)
    rhs = sum(float(np.sum(tangents[id(x)] * g.data)) for x, g in zip(leaves, grads) if g is not None)
    assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_second_derivatives_match_central_differences(name, data):
    drawn = data.draw(CASES[name].inputs)
    assert cr.gradgradcheck(drawn.fn, list(drawn.arrays))


@pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
@pytest.mark.parametrize("name", NAMES)
@CHECK
@given(data=st.data())
def test_matches_pytorch(name, data):
    drawn = data.draw(CASES[name].inputs)
    if drawn.torch_fn is None:  # only getitem with a negative-step slice, which PyTorch cannot express
        assert name == "getitem"
        return
    rng = np.random.default_rng(1)
    leaves = _leaves(drawn.arrays)
    torch_leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in drawn.arrays]
    outputs = as_outputs(drawn.fn(*leaves))
    torch_outputs = as_outputs(drawn.torch_fn(*torch_leaves))
    cotangents = [rng.standard_normal(o.shape) for o in outputs]
    for out, t_out in zip(outputs, torch_outputs):
        np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    sum((o * c).sum() for o, c in zip(outputs, cotangents)).backward()
    sum((t * torch.from_numpy(c)).sum() for t, c in zip(torch_outputs, cotangents)).backward()
    for leaf, t_leaf in zip(leaves, torch_leaves):
        np.testing.assert_allclose(leaf.grad.data, t_leaf.grad.numpy(), rtol=1e-9, atol=1e-12)


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_table_covers_the_primitives(data):
    """Every differentiable primitive is reached by at least one entry of the op table."""
    reached = set()
    for case in OP_CASES:
        drawn = data.draw(case.inputs)
        outputs = as_outputs(drawn.fn(*_leaves(drawn.arrays)))
        for node in autograd.topological_order(outputs):
            if node.grad_fn:
                reached.add(node.grad_fn)
    differentiable = {name for name, op in cr.ops.OPS.items() if op.differentiable}
    # sum_to, scatter_add and cast appear inside backward passes (checked by the second-order test)
    assert differentiable - reached <= {"sum_to", "scatter_add", "cast"}


# -- the engine's fast NumPy rules agree with the generic rules -------------------------------------------------
def _assert_same_gradients(expected, actual, what):
    assert len(actual) == len(expected), what
    for index, (want, got) in enumerate(zip(expected, actual)):
        if want is None:
            assert got is None, f"{what}: input {index} got a gradient it was not asked for"
            continue
        assert np.shape(got) == np.shape(want), f"{what}: input {index}"
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"{what}: input {index}")


def _check_fast_rules(outputs, rng):
    """For each node whose op has a fast rule: fast_vjp against the generic vjp on NumPy arrays and on tensors
    (create_graph's path), and fast_jvp against the generic jvp. Returns the names of the ops checked."""
    checked = set()
    for call in rule_calls(outputs):
        op = call.op
        if op.fast_vjp is not None:
            grad_out = rng.standard_normal(call.node.shape)
            fast = call.fast_vjp(grad_out)
            _assert_same_gradients(call.generic_vjp(grad_out), fast, f"{op.name}: fast_vjp vs vjp")
            _assert_same_gradients(call.graph_vjp(grad_out), fast, f"{op.name}: fast_vjp vs vjp on tensors")
            checked.add(op.name)
        if op.fast_jvp is not None:
            tangents = call.tangents(rng)
            want = op.jvp(numpy_namespace, tangents, call.node.data, *call.inputs, **call.attrs)
            got = op.fast_jvp(tangents, call.node.data, *call.inputs, **call.attrs)
            _assert_same_gradients((want,), (got,), f"{op.name}: fast_jvp vs jvp")
            checked.add(op.name)
    return checked


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_rules_agree_with_the_generic_rules(name, data):
    drawn = data.draw(CASES[name].inputs)
    _check_fast_rules(as_outputs(drawn.fn(*_leaves(drawn.arrays))), np.random.default_rng(2))


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_fast_rule_is_checked_by_the_table(data):
    checked = set()
    for case in OP_CASES:
        drawn = data.draw(case.inputs)
        checked |= _check_fast_rules(as_outputs(drawn.fn(*_leaves(drawn.arrays))), np.random.default_rng(3))
    fast = {name for name, op in cr.ops.OPS.items() if op.fast_vjp is not None or op.fast_jvp is not None}
    assert fast <= checked, f"no entry of the op table reaches {sorted(fast - checked)}"
    assert {"relu", "sigmoid", "max_pool", "prod", "binary_cross_entropy"} <= fast


_POOL = {"kernel_size": (2, 2), "stride": (1, 1), "padding": (1, 1), "dilation": (1, 1)}
_GRID = np.arange(16.0).reshape(1, 1, 4, 4)
_TIES = np.array([[[[1.0, 1.0, 0.0], [1.0, 2.0, 2.0], [0.0, 2.0, -1.0]]]])

# Where the fast rules take their other branches: zeros in a product, ties and overlapping windows in pooling,
# probabilities at 0 and 1, a non-finite incoming gradient (the mask product must not turn inf · 0 into NaN).
FAST_EDGES = {
    "prod with one zero": (lambda a: a.prod(), [[2.0, 0.0, 3.0]]),
    "prod with two zeros per row": (lambda a: a.prod(dim=1), [[0.0, 0.0, 3.0], [1.0, 0.0, 2.0]]),
    "prod over axis 0 with zeros": (lambda a: a.prod(dim=0, keepdim=True), [[2.0, 0.0], [0.0, 3.0]]),
    "max_pool with ties, overlap and padding": (lambda a: cr.nn.functional.max_pool2d(a, **_POOL), _TIES),
    "max_pool with disjoint windows": (lambda a: cr.nn.functional.max_pool2d(a, 2, 2), _GRID),
    "max_pool with a NaN": (lambda a: cr.nn.functional.max_pool2d(a, 2, 1), [[[[1.0, np.nan], [2.0, 0.0]]]]),
    "relu at 0, ±inf and NaN": (cr.relu, [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0]),
    "sigmoid at ±inf": (cr.sigmoid, [-np.inf, -50.0, 0.0, 50.0, np.inf]),
    "binary cross-entropy at 0 and 1": (
        lambda p, t: apply(cr.ops.OPS["binary_cross_entropy"], p, t),
        [0.0, 1.0, 0.5, 1e-3],
        [0.0, 1.0, 1.0, 0.25],
    ),
}
_GRAD_OUTS = {"finite": lambda shape: np.full(shape, 1.5), "non-finite": lambda shape: np.full(shape, np.inf)}


@pytest.mark.parametrize("grad_kind", list(_GRAD_OUTS))
@pytest.mark.parametrize("edge", list(FAST_EDGES))
def test_fast_rules_agree_at_the_edges(edge, grad_kind):
    fn, *arrays = FAST_EDGES[edge]
    with np.errstate(all="ignore"):
        leaves = _leaves([np.asarray(a, dtype=np.float64) for a in arrays])
        calls = [call for call in rule_calls(as_outputs(fn(*leaves))) if call.op.fast_vjp is not None]
        assert calls, edge
        for call in calls:
            grad_out = _GRAD_OUTS[grad_kind](call.node.shape)
            fast = call.fast_vjp(grad_out)
            for want, got in zip(call.generic_vjp(grad_out), fast):
                assert np.shape(got) == np.shape(want)
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, equal_nan=True, err_msg=edge)


# -- products at zeros ---------------------------------------------------------------------------------------
@pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
@pytest.mark.parametrize(
    "values, axis",
    [
        ([2.0, 0.0, 3.0], None),
        ([0.0, 0.0, 3.0], None),
        ([[2.0, 0.0, 3.0], [1.0, 2.0, 4.0], [0.0, 0.0, 5.0]], 1),
        ([[2.0, 0.0], [0.0, 3.0]], 0),
    ],
)
def test_prod_gradients_at_zeros_match_torch_to_second_order(values, axis):
    x = cr.tensor(np.array(values), requires_grad=True)
    t = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    out = x.prod() if axis is None else x.prod(dim=axis)
    t_out = t.prod() if axis is None else t.prod(dim=axis)
    (g,) = autograd.grad(out.sum(), x, create_graph=True)
    (t_g,) = torch.autograd.grad(t_out.sum(), t, create_graph=True)
    np.testing.assert_allclose(g.data, t_g.detach().numpy())
    (g2,) = autograd.grad((g * g).sum(), x)
    (t_g2,) = torch.autograd.grad((t_g * t_g).sum(), t)
    np.testing.assert_allclose(g2.data, t_g2.numpy())
    tangent = np.arange(1.0, x.data.size + 1).reshape(x.shape)
    _, jvp = cr.func.jvp(lambda v: v.prod() if axis is None else v.prod(dim=axis), (x.data,), (tangent,))
    expected = (t_g.detach().numpy() * tangent).sum(axis=axis)
    np.testing.assert_allclose(jvp.data, expected)


# -- powers at a zero base -----------------------------------------------------------------------------------
@pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
@pytest.mark.parametrize("base", [0.0, 2.0, -1.0])
@pytest.mark.parametrize("exponent", [2.0, 1.0, 0.5, 0.0, -1.0])
def test_pow_gradients_at_zero_base_match_torch(base, exponent):
    with np.errstate(all="ignore"):
        a = cr.tensor(np.array(base), requires_grad=True)
        b = cr.tensor(np.array(exponent), requires_grad=True)
        (a**b).backward()
        scalar_base = cr.tensor(np.array(base), requires_grad=True)
        (scalar_base**exponent).backward()
    t_a = torch.tensor(base, dtype=torch.float64, requires_grad=True)
    t_b = torch.tensor(exponent, dtype=torch.float64, requires_grad=True)
    (t_a**t_b).backward()
    np.testing.assert_allclose(a.grad.item(), t_a.grad.item())  # nan == nan, inf == inf
    np.testing.assert_allclose(b.grad.item(), t_b.grad.item())
    np.testing.assert_allclose(scalar_base.grad.item(), t_a.grad.item())


def test_pow_of_integers_stays_integer():
    assert (cr.tensor([2, 3]) ** 2).dtype == np.int64
    assert (cr.tensor([2, 3]) ** 0.5).dtype == np.float32


# -- max and min: NaN, ties, values only -------------------------------------------------------------------------
@pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_ties_split_evenly_like_torch_amax(name):
    values = [[1.0, 3.0, 3.0], [2.0, 2.0, 2.0], [-1.0, 5.0, -1.0]]
    x = cr.tensor(np.array(values), requires_grad=True)
    out = getattr(x, name)(dim=1)
    assert isinstance(out, cr.Tensor) and out.shape == (3,)  # values only, no (values, indices) pair
    (out * cr.tensor(np.array([1.0, 2.0, 3.0]))).sum().backward()
    t = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    t_out = t.amax(dim=1) if name == "max" else t.amin(dim=1)
    (t_out * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(out.data, t_out.detach().numpy())
    np.testing.assert_allclose(x.grad.data, t.grad.numpy())


@pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_propagate_nan_like_torch(name):
    values = [1.0, np.nan, 2.0, np.nan]
    with np.errstate(invalid="ignore"):
        x = cr.tensor(np.array(values), requires_grad=True)
        out = getattr(x, name)()
        out.backward()
        pair = getattr(cr, name + "imum")(
            cr.tensor(np.array([1.0, np.nan, 0.0])), cr.tensor(np.array([np.nan, 2.0, 0.0]))
        )
    t = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    getattr(t, name)().backward()  # torch.max() without dim: the NaN elements share the gradient
    assert np.isnan(out.item())
    np.testing.assert_allclose(x.grad.data, t.grad.numpy())
    t_pair = getattr(torch, name + "imum")(torch.tensor([1.0, np.nan, 0.0]), torch.tensor([np.nan, 2.0, 0.0]))
    np.testing.assert_array_equal(np.isnan(pair.data), np.isnan(t_pair.numpy()))


@pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_elementwise_max_min_gradients_with_ties_and_nan_match_torch(name):
    left, right = [1.0, 2.0, np.nan, 3.0], [2.0, 2.0, 1.0, np.nan]
    with np.errstate(invalid="ignore"):
        a = cr.tensor(np.array(left), requires_grad=True)
        b = cr.tensor(np.array(right), requires_grad=True)
        getattr(cr, name)(a, b).sum().backward()
    t_a = torch.tensor(left, dtype=torch.float64, requires_grad=True)
    t_b = torch.tensor(right, dtype=torch.float64, requires_grad=True)
    getattr(torch, name)(t_a, t_b).sum().backward()
    np.testing.assert_allclose(a.grad.data, t_a.grad.numpy())
    np.testing.assert_allclose(b.grad.data, t_b.grad.numpy())


# -- axis arguments and the dim/keepdim aliases ------------------------------------------------------------------
REDUCTIONS = ["sum", "mean", "max", "min", "prod", "var", "std", "logsumexp"]


@pytest.mark.parametrize("name", REDUCTIONS)
def test_reductions_accept_integer_like_axes_and_torch_aliases(name):
    x = cr.tensor(np.arange(1.0, 7.0).reshape(2, 3))
    expected = getattr(x, name)(axis=1, keepdims=True)
    for call in (
        lambda: getattr(x, name)(axis=np.int64(1), keepdims=True),
        lambda: getattr(x, name)(dim=1, keepdim=True),
        lambda: getattr(cr, name)(x, dim=-1, keepdim=True),
        lambda: getattr(x, name)(axis=(np.int32(1),), keepdim=True),
        lambda: getattr(x, name)(axis=1, dim=1, keepdims=True),  # agreeing aliases are fine
    ):
        out = call()
        assert out.shape == (2, 1)
        np.testing.assert_allclose(out.data, expected.data)


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"axis": True}, cr.ArgumentError, "{name}: axis must be an integer, got the bool True"),
        ({"axis": 1.0}, cr.ArgumentError, "{name}: axis must be an integer, got float 1.0"),
        ({"axis": 2}, cr.ShapeError, "{name}: axis 2 is out of range for a tensor of 2 dimensions"),
        ({"axis": -3}, cr.ShapeError, "{name}: axis -3 is out of range for a tensor of 2 dimensions"),
        ({"axis": (1, -1)}, cr.ShapeError, r"{name}: axis \(1, -1\) repeats an axis \(tensor of 2 dimensions\)"),
        ({"axis": 0, "dim": 1}, cr.ArgumentError, "{name}: got axis=0 and dim=1; they are aliases"),
        ({"keepdims": True, "keepdim": False}, cr.ArgumentError, "{name}: got keepdims=True and keepdim=False"),
    ],
)
def test_bad_reduction_arguments_name_the_op(name, kwargs, error, message):
    with pytest.raises(error, match=message.format(name=name)):
        getattr(cr.ones(2, 3), name)(**kwargs)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_takes_dim_alias(name):
    x = cr.tensor(np.array([[0.0, 1.0], [2.0, 4.0]]))
    np.testing.assert_allclose(getattr(x, name)(dim=0).data, getattr(cr, name)(x, axis=0).data)
    np.testing.assert_allclose(getattr(x, name)().data, getattr(x, name)(axis=-1).data)
    with pytest.raises(cr.ArgumentError, match=f"{name}: got axis=0 and dim=1"):
        getattr(x, name)(0, dim=1)


def test_numpy_asarray_of_a_tensor():
    t = cr.tensor([1.0, 2.0])
    assert np.asarray(t).dtype == np.float32 and np.shares_memory(np.asarray(t), t.data)
    np.testing.assert_array_equal(np.asarray(t, dtype=np.float64), [1.0, 2.0])
    assert not np.shares_memory(np.array(t, copy=True), t.data)
    with pytest.raises(ValueError):
        np.array(t, dtype=np.float64, copy=False)
    np.testing.assert_array_equal(np.asarray([cr.tensor(1.0), cr.tensor(2.0)]), [1.0, 2.0])
