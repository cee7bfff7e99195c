"""One generic check per property, parametrized over the whole op table in ``helpers.OP_CASES``.

For every op: forward against NumPy (float64 and float32), reverse and forward mode against central
differences in float64, each gradient of its input's shape, the adjoint identity <J t, c> = <t, Jᵀ c>,
second derivatives (gradgradcheck), and forward values and gradients against PyTorch. NumPy is set to
raise on any floating-point error while these run.
"""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import chainrule as cr
from chainrule import autograd
from helpers import OP_CASES, TORCH_MISSING, as_outputs, torch

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
