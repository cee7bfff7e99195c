"""Function transforms: grad, value_and_grad, vjp, jvp, jacobian (both modes), hessian, hvp."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import func


def f_vector(x):
    return cr.stack([x[0] * x[1], x[1].sin(), x[2].exp() * x[0]])  # R^3 -> R^3


def jacobian_of_f_vector(x):
    return np.array([[x[1], x[0], 0.0], [0.0, np.cos(x[1]), 0.0], [np.exp(x[2]), 0.0, np.exp(x[2]) * x[0]]])


@pytest.mark.parametrize("mode", ["auto", "forward", "reverse"])
def test_jacobian_modes_agree_with_closed_form(mode):
    x0 = np.array([0.3, -1.2, 0.5])
    jac = func.jacobian(f_vector, mode=mode)(x0)
    np.testing.assert_allclose(jac.data, jacobian_of_f_vector(x0), rtol=1e-12)


def test_jacobian_shape_is_output_shape_then_input_shape():
    jac = func.jacobian(lambda x: (x * 2).sum(axis=0))(np.ones((3, 2)))
    assert jac.shape == (2, 3, 2)


def test_jacobian_auto_mode_picks_by_shape(monkeypatch):
    calls = []
    original = func.jvp

    def counting_jvp(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(func, "jvp", counting_jvp)
    func.jacobian(lambda x: x.sum())(np.ones(5))  # 1 output, 5 inputs: reverse mode
    assert not calls
    func.jacobian(lambda x: cr.concatenate([x, x, x]))(np.ones(2))  # 6 outputs, 2 inputs: forward mode
    assert len(calls) == 2


def test_grad_value_and_grad_and_nesting():
    f = lambda x: (x**3).sum()  # noqa: E731
    x0 = np.array([1.0, -2.0])
    value, g = func.value_and_grad(f)(x0)
    assert value.item() == pytest.approx(-7.0)
    np.testing.assert_allclose(g.data, 3 * x0**2)
    second = func.grad(lambda x: func.grad(f)(x).sum())(x0)
    np.testing.assert_allclose(second.data, 6 * x0)


def test_grad_with_several_argnums():
    g = func.grad(lambda a, b: (a * b).sum(), argnums=(0, 1))(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    np.testing.assert_allclose(g[0].data, [3.0, 4.0])
    np.testing.assert_allclose(g[1].data, [1.0, 2.0])


def test_vjp_and_jvp_agree():
    x0 = np.array([0.3, -1.2, 0.5])
    t = np.array([1.0, 0.5, -2.0])
    c = np.array([0.2, 1.0, -1.0])
    _, jt = func.jvp(f_vector, (x0,), (t,))
    _, pullback = func.vjp(f_vector, x0)
    (jtc,) = pullback(c)
    assert float(np.dot(jt.data, c)) == pytest.approx(float(np.dot(t, jtc.data)))
    np.testing.assert_allclose(jt.data, jacobian_of_f_vector(x0) @ t)


def test_hessian_of_rosenbrock():
    def rosenbrock(x):
        return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2

    x, y = 0.5, -0.3
    expected = np.array([[2 - 400 * (y - x**2) + 800 * x**2, -400 * x], [-400 * x, 200]])
    np.testing.assert_allclose(func.hessian(rosenbrock)(np.array([x, y])).data, expected, rtol=1e-10)


def test_jvp_checks_shapes():
    with pytest.raises(cr.ShapeError, match="tangent 0 has shape \\(2,\\) but primal 0 has shape \\(3,\\)"):
        func.jvp(lambda x: x, (np.ones(3),), (np.ones(2),))
    with pytest.raises(cr.ShapeError, match="one-element"):
        func.grad(lambda x: x * 2)(np.ones(3))


def test_function_of_constant_has_zero_derivatives():
    g = func.grad(lambda x: cr.tensor(3.0))(np.ones(2))
    np.testing.assert_allclose(g.data, 0.0)
    _, t = func.jvp(lambda x: cr.tensor(3.0), (np.ones(2),), (np.ones(2),))
    assert t.item() == 0.0


def test_gradcheck_reports_input_and_element_of_a_wrong_rule(monkeypatch):
    from chainrule.ops import OPS

    broken = OPS["sin"]
    monkeypatch.setattr(broken, "vjp", staticmethod(lambda xp, g, needs, out, x: (g * xp.cos(x) * 1.01,)))
    with pytest.raises(cr.GradientError, match="reverse gradient.*input 1 at element \\(0, 1\\)"):
        # cos(pi/2) = 0 makes element (0, 0) agree; (0, 1) is the first that disagrees
        cr.gradcheck(lambda a, b: a + b.sin(), [np.ones((2, 2)), np.array([[np.pi / 2, 0.5], [1.0, 1.5]])])
    assert not cr.gradcheck(lambda b: b.sin(), [np.ones(2)], raise_exception=False)


def test_gradcheck_catches_a_wrong_forward_mode_rule(monkeypatch):
    from chainrule.ops import OPS

    monkeypatch.setattr(OPS["exp"], "jvp", classmethod(lambda cls, xp, t, out, x: t[0] * out * 2))
    with pytest.raises(cr.GradientError, match="forward gradient"):
        cr.gradcheck(lambda a: a.exp(), [np.ones(3)])


def test_gradgradcheck_catches_a_rule_that_is_not_differentiable_correctly(monkeypatch):
    from chainrule.ops import OPS

    # tanh's gradient written with a detached output: first order right, second order wrong
    monkeypatch.setattr(
        OPS["tanh"],
        "vjp",
        staticmethod(
            lambda xp, g, needs, out, x: (g * (1.0 - (out.detach() if hasattr(out, "detach") else out) ** 2),)
        ),
    )
    assert cr.gradcheck(lambda a: a.tanh(), [np.array([0.3, -0.4])])
    with pytest.raises(cr.GradientError):
        cr.gradgradcheck(lambda a: a.tanh(), [np.array([0.3, -0.4])])
