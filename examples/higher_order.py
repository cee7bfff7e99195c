"""Derivatives of derivatives: forward mode, reverse mode, Jacobians, Hessians and Hessian-vector products.

Run it with ``python examples/higher_order.py``.
"""

import numpy as np

import chainrule as cr
from chainrule import func


def rosenbrock(v):
    """f(x, y) = (1 - x)² + 100 (y - x²)², minimum at (1, 1)."""
    return (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2


point = np.array([0.5, -0.3])

value, gradient = func.value_and_grad(rosenbrock)(point)
print("f =", value.item(), " grad f =", gradient.numpy())

# Forward mode: the directional derivative along t, in one sweep.
_, directional = func.jvp(rosenbrock, (point,), (np.array([1.0, 0.0]),))
print("df/dx by forward mode =", directional.item())

# The Hessian is the Jacobian of the gradient; hvp never forms it.
print("Hessian:\n", func.hessian(rosenbrock)(point).numpy())
_, (hv,) = func.hvp(rosenbrock, (point,), (np.array([1.0, 1.0]),))
print("H @ [1, 1] =", hv.numpy())

# Second derivative of x³ by nesting grad.
d2 = func.grad(func.grad(lambda x: x**3))
print("d²/dx² x³ at 2 =", d2(cr.tensor(2.0)).item())
