"""In-place safety: every storage has a version counter, and backward refuses values changed after they were saved.

The four reproducers of issue 13 (each returned a wrong gradient without a word), the cases that must keep working
(in-place changes of values no rule reads, optimizer steps after backward), views and ``detach()`` sharing their
base's counter, and one check over the whole op table that each primitive's ``saves_inputs``/``saves_output``
declaration is honest: a VJP must not change when the values it claims not to read are replaced.
"""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import chainrule as cr
from chainrule import nn, optim
from chainrule.errors import ArgumentError, DTypeError, GradientError, ShapeError
from helpers import OP_CASES, rule_calls

W = [1.0, 2.0]


def _w():
    return cr.tensor(W, requires_grad=True)


def _input_changed_by_add():
    w, x = _w(), cr.tensor([3.0, 4.0])
    y = (w * x).sum()
    x += 10
    return y


def _leaf_changed_under_no_grad():
    w = _w()
    y = (w * w).sum()
    with cr.no_grad():
        w -= 1
    return y


def _saved_output_filled_through_detach():
    h = _w().exp()
    h.detach().fill_(100.0)
    return h.sum()


def _input_changed_by_setitem():
    w, x = _w(), cr.tensor([3.0, 4.0])
    y = w * x
    x[0] = 100.0
    return y.sum()


def _input_changed_through_a_view():
    w, x = cr.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True), cr.tensor([3.0, 4.0, 5.0, 6.0])
    y = (w * x).sum()
    view = x.reshape(2, 2)[0]
    view += 1
    return y


def _input_changed_by_copy_():
    w, x = _w(), cr.tensor([3.0, 4.0])
    y = (w * x).sum()
    x.copy_(cr.tensor([0.0, 0.0]))
    return y


def _input_changed_by_zero_():
    w, x = _w(), cr.tensor([3.0, 4.0])
    y = w.matmul(x)
    x.zero_()
    return y


def _weight_stepped_before_backward():
    layer = nn.Linear(2, 1)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    loss = layer(cr.tensor([[1.0, 2.0]])).sum()
    loss.backward(retain_graph=True)
    opt.step()
    return loss


def _weight_reinitialised():
    layer = nn.Linear(2, 2)
    loss = (layer(cr.tensor([[1.0, 2.0]])) ** 2).sum()
    nn.init.normal_(layer.weight)
    return loss


def _weight_loaded():
    layer = nn.Linear(2, 2)
    loss = (layer(cr.tensor([[1.0, 2.0]])) ** 2).sum()
    layer.load_state_dict({"weight": np.zeros((2, 2)), "bias": np.zeros(2)})
    return loss


def _state_dict_tensor_written():
    layer = nn.Linear(2, 2)
    loss = (layer(cr.tensor([[1.0, 2.0]])) ** 2).sum()
    layer.state_dict()["weight"].fill_(0.0)
    return loss


def _running_stats_updated():
    bn = nn.BatchNorm1d(2).eval()
    x = cr.tensor([[1.0, 2.0], [3.0, 5.0]], requires_grad=True)
    loss = (bn(x) ** 2).sum()
    bn.train()
    bn(cr.tensor([[0.0, 1.0], [7.0, 3.0]]))
    return loss


STALE = {
    "+= on a saved input": (_input_changed_by_add, "'mul'", "'+='"),
    "-= on a leaf under no_grad": (_leaf_changed_under_no_grad, "'mul'", "'-='"),
    "fill_ of a saved output through detach()": (_saved_output_filled_through_detach, "'exp'", "'fill_'"),
    "__setitem__ on a saved input": (_input_changed_by_setitem, "'mul'", "'__setitem__'"),
    "+= through a view of a slice": (_input_changed_through_a_view, "'mul'", "'+='"),
    "copy_ on a saved input": (_input_changed_by_copy_, "'mul'", "'copy_'"),
    "zero_ on a saved input": (_input_changed_by_zero_, "'matmul'", "'zero_'"),
    "optimizer step before a retained backward": (_weight_stepped_before_backward, "'linear'", "SGD.step()"),
    "nn.init on a used weight": (_weight_reinitialised, "'linear'", "chainrule.nn.init"),
    "load_state_dict into a used weight": (_weight_loaded, "'linear'", "load_state_dict"),
    "state_dict tensor written in place": (_state_dict_tensor_written, "'linear'", "'fill_'"),
}


@pytest.mark.parametrize("name", list(STALE))
def test_backward_refuses_values_changed_after_they_were_saved(name):
    make, *phrases = STALE[name]
    loss = make()
    with pytest.raises(GradientError) as caught:
        loss.backward()
    message = str(caught.value)
    assert "changed in place" in message
    assert "its version is now" in message
    for phrase in phrases:
        assert phrase in message, message


def test_the_message_names_shape_and_the_line_of_the_change():
    w, x = _w(), cr.tensor([[3.0, 4.0]])
    y = (w * x).sum()
    x += 10  # the line the message must name
    line = _line_of("x += 10  # the line")
    with pytest.raises(GradientError, match=r"shape \(1, 2\)") as caught:
        y.backward()
    assert f"test_inplace.py:{line}" in str(caught.value)


def test_anomaly_mode_names_the_line_that_created_the_op():
    w, x = _w(), cr.tensor([3.0, 4.0])
    with cr.autograd.detect_anomaly():
        y = (w * x).sum()  # created here
        line = _line_of("y = (w * x).sum()  # created here")
        x += 1
        with pytest.raises(GradientError) as caught:
            y.backward()
    assert f"test_inplace.py:{line}" in str(caught.value)


def _line_of(text):
    with open(__file__, encoding="utf-8") as handle:
        return next(number for number, line in enumerate(handle, 1) if text in line and "_line_of" not in line)


# -- what must keep working ----------------------------------------------------------------------------------------
def test_running_statistics_updated_after_an_eval_forward_do_not_block_its_backward():
    # eval-mode batch norm reads the running statistics into new arrays (x - mean, (var + eps) ** -0.5): the
    # graph saved those, not the buffers, so the gradient stays right and backward must not refuse it
    loss = _running_stats_updated()
    loss.backward()
    assert loss.requires_grad


def test_changing_a_value_no_rule_reads_is_allowed():
    w, x = _w(), cr.tensor([3.0, 4.0])
    y = (w + x).sum()  # add's gradient does not read its inputs
    x += 10
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])


def test_the_correct_gradients_of_the_reproducers_once_nothing_is_changed():
    w, x = _w(), cr.tensor([3.0, 4.0])
    (w * x).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 4.0])
    w = _w()
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 4.0])


def test_a_training_loop_steps_after_backward_without_complaint():
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, y = cr.randn(8, 3), cr.randn(8, 1)
    versions = [model[0].weight.version]
    for _ in range(3):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        versions.append(model[0].weight.version)
    assert np.diff(versions).tolist() == [1, 1, 1]


def test_a_second_backward_after_a_step_raises_as_in_pytorch():
    w = _w()
    opt = optim.SGD([w], lr=0.1)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    opt.step()  # the step the message must name
    with pytest.raises(GradientError, match="SGD.step") as caught:
        loss.backward()
    assert f"test_inplace.py:{_line_of('opt.step()  # the step the message')}" in str(caught.value)


def test_views_detach_parameters_and_state_dicts_share_their_base_counter():
    x = cr.tensor([[1.0, 2.0], [3.0, 4.0]])
    for view in (x.reshape(4), x[0], x.T, x.detach(), x[:, 1]):
        before = x.version
        view += 1
        assert x.version == before + 1
    copy = x * 1  # a new array: its own counter
    copy += 1
    assert x.version == 5
    parameter = nn.Parameter(x)
    parameter.requires_grad_(False)
    parameter += 1
    assert x.version == 6
    layer = nn.Linear(2, 2)
    before = layer.weight.version
    layer.state_dict()["weight"].fill_(0.5)
    assert layer.weight.version == before + 1


def test_a_failed_in_place_change_does_not_count():
    x = cr.tensor([1.0, 2.0])
    with pytest.raises(ShapeError):
        x += cr.tensor([1.0, 2.0, 3.0])
    assert x.version == 0


# -- the boundary: gradients and dtypes ----------------------------------------------------------------------------
BAD_GRADS = {
    "wrong shape": (lambda: cr.zeros(3), ShapeError, "shape (3,)"),
    "wrong dtype": (lambda: cr.zeros(2, dtype=cr.float64), DTypeError, "float64"),
    "an ndarray": (lambda: np.zeros(2, dtype=np.float32), ArgumentError, "ndarray"),
    "a list": (lambda: [0.0, 0.0], ArgumentError, "list"),
    "a float": (lambda: 1.0, ArgumentError, "float"),
}


@pytest.mark.parametrize("name", list(BAD_GRADS))
def test_assigning_a_wrong_grad_raises_at_assignment(name):
    make, error, phrase = BAD_GRADS[name]
    w = _w()
    with pytest.raises(error, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        w.grad = make()
    assert w.grad is None


def test_assigning_a_good_grad_works():
    w = _w()
    w.grad = cr.tensor([0.5, 0.5])
    np.testing.assert_array_equal(w.grad.numpy(), [0.5, 0.5])
    w.grad = None
    assert w.grad is None


@pytest.mark.parametrize("dtype", [cr.int64, cr.bool_])
def test_requires_grad_attribute_on_integer_tensors_raises(dtype):
    t = cr.zeros(2, dtype=dtype)
    with pytest.raises(DTypeError, match=str(np.dtype(dtype))):
        t.requires_grad = True
    assert t.requires_grad is False


def test_requires_grad_attribute_works_on_floats_and_refuses_non_leaves():
    t = cr.zeros(2)
    t.requires_grad = True
    y = t * 2
    assert y.requires_grad
    with pytest.raises(GradientError, match="non-leaf"):
        y.requires_grad = False


# -- every primitive's saves declaration is honest -------------------------------------------------------------------
def _garbage_like(value, rng):
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return rng.uniform(5.0, 9.0, value.shape).astype(value.dtype)
    return value


@pytest.mark.parametrize("case", OP_CASES, ids=[case.name for case in OP_CASES])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_vjp_does_not_read_what_its_primitive_says_it_does_not_save(case, data):
    """Both rules the engine may run without a graph, the generic ``vjp`` and the op's ``fast_vjp``."""
    drawn = data.draw(case.inputs)
    leaves = [cr.tensor(a, requires_grad=True) for a in drawn.arrays]
    outputs = drawn.fn(*leaves)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    rng = np.random.default_rng(0)
    for call in rule_calls(outputs):
        op = call.op
        grad_out = rng.standard_normal(call.node.shape).astype(call.node.dtype)
        saved = op.saves_inputs
        scrambled = tuple(
            value if saved is True or index in saved else _garbage_like(value, rng)
            for index, value in enumerate(call.inputs)
        )
        out = call.node.data if op.saves_output else _garbage_like(call.node.data, rng)
        rules = [("vjp", call.generic_vjp)] + ([("fast_vjp", call.fast_vjp)] if op.fast_vjp is not None else [])
        for rule_name, rule in rules:
            expected = rule(grad_out)
            actual = rule(grad_out, scrambled, out)
            for want, got in zip(expected, actual):
                if want is None:
                    assert got is None
                else:
                    np.testing.assert_array_equal(
                        np.asarray(got), np.asarray(want), err_msg=f"{op.name}'s {rule_name} reads it"
                    )
