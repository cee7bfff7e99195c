"""Anomaly mode: the first op whose forward or backward produces NaN/Inf is named, with the user's line."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import chainrule as cr
from chainrule import anomaly, nn
from chainrule.autograd import detect_anomaly, is_anomaly_enabled

pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")


def next_line() -> int:
    """The line number after the caller's line."""
    return sys._getframe(1).f_lineno + 1


def test_forward_nan_names_the_op_shapes_and_the_users_line():
    x = cr.tensor([1.0, -1.0], requires_grad=True)
    with pytest.raises(cr.AnomalyError) as info, detect_anomaly():
        line = next_line()
        x.log()
    message = str(info.value)
    assert message.startswith("log: forward produced NaN in 1 of 2 values (output shape (2,)) from inputs float32 (2,)")
    assert f"test_anomaly.py:{line} in test_forward_nan_names_the_op_shapes_and_the_users_line: x.log()" in message
    assert not is_anomaly_enabled()


def test_decorator_form_and_zero_over_zero():
    @detect_anomaly()
    def ratio(a, b):
        return a / b

    line = ratio.__wrapped__.__code__.co_firstlineno + 2  # the decorator's line, def, return
    with pytest.raises(cr.AnomalyError) as info:
        ratio(cr.zeros(3), cr.zeros(3))
    message = str(info.value)
    assert message.startswith("div: forward produced NaN in 3 of 3 values")
    assert f"test_anomaly.py:{line} in ratio: return a / b" in message
    assert "called from" in message and "ratio(cr.zeros(3), cr.zeros(3))" in message  # the caller, too
    assert not is_anomaly_enabled()


def test_an_input_that_already_held_nan_is_reported_as_such():
    data = cr.tensor([1.0, float("nan")])
    with pytest.raises(cr.AnomalyError, match="Input 0 already held NaN or Inf"), detect_anomaly():
        data * 2.0


def test_backward_inf_names_the_op_in_backward_and_where_it_was_created():
    x = cr.tensor([0.0, 4.0], requires_grad=True)
    with detect_anomaly():
        line = next_line()
        root = x.sqrt()
        loss = root.sum()  # the forward is finite: sqrt(0) = 0
        with pytest.raises(cr.AnomalyError) as info:
            loss.backward()
    message = str(info.value)
    assert message.startswith("sqrt backward: the gradient for input 0 (shape (2,)) holds Inf in 1 of 2 values")
    assert "with grad_out finite" in message
    assert f"test_anomaly.py:{line} in test_backward_inf_names_the_op_in_backward_and_where_it_was_created" in message
    assert isinstance(info.value, cr.GradientError) and isinstance(info.value, RuntimeError)


def test_clean_computation_raises_nothing_and_changes_nothing():
    def run():
        cr.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        x = cr.randn(5, 3, requires_grad=True)
        loss = nn.functional.cross_entropy(model(x), cr.tensor([0, 1, 0, 1, 1]))
        (grad_x,) = cr.autograd.grad(loss, x, create_graph=True)  # the rules run on tensors, too
        (grad_x * grad_x).sum().backward()
        return [p.grad.data for p in model.parameters()]

    plain = run()
    with detect_anomaly():
        checked = run()
    for a, b in zip(plain, checked):
        np.testing.assert_array_equal(a, b)


def test_off_by_default_with_no_checks_and_no_recorded_sites(monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("an anomaly hook ran with anomaly mode off")

    monkeypatch.setattr(anomaly, "check_forward", must_not_run)
    monkeypatch.setattr(anomaly, "checked_vjp", must_not_run)
    monkeypatch.setattr(anomaly, "_creation_site", must_not_run)
    assert not is_anomaly_enabled()
    x = cr.tensor([0.0, -1.0], requires_grad=True)
    y = x.sqrt()  # NaN, unchecked
    y.sum().backward()
    assert y._ctx is not None and np.isnan(y.data[1]) and np.isinf(x.grad.data[0])


def test_nested_blocks_restore_the_mode():
    with detect_anomaly():
        y = cr.tensor([1.0], requires_grad=True) * 2.0
        assert y._ctx.site  # recorded while on
        with detect_anomaly(False):
            assert not is_anomaly_enabled()
            cr.tensor([-1.0]).log()  # not checked
        assert is_anomaly_enabled()
    assert not is_anomaly_enabled()
