"""Forward mode versus reverse mode: N sweeps or one for the gradient of N parameters.

Run ``python examples/forward_vs_reverse.py``. First the idea on three parameters, then timings for
N = 10 ... 10000 from :func:`chainrule.explain.demos.modes_demo` (forward mode is skipped above N = 1000,
where it would take seconds; the report gives a labelled estimate instead).
"""

import numpy as np

import chainrule as cr


def loss(w):
    return (w.tanh() * cr.tensor([1.0, 2.0, 3.0], dtype=cr.float64)).sum()  # L(w) = Σ_j c_j tanh(w_j)


w = cr.tensor([0.5, -1.0, 2.0], dtype=cr.float64)

# Forward mode: the JVP with the basis tangent e_j is the single partial derivative ∂L/∂w_j.
columns = []
for j in range(3):
    basis = np.zeros(3)
    basis[j] = 1.0
    _, partial = cr.func.jvp(loss, (w,), (cr.tensor(basis),))
    columns.append(partial.item())
print("forward mode, 3 JVPs :", np.round(columns, 6))

# Reverse mode: one backward pass gives all three.
print("reverse mode, 1 pass :", np.round(cr.func.grad(loss)(w).numpy(), 6))
print("by hand c_j (1 − tanh² w_j):", np.round(np.array([1.0, 2.0, 3.0]) * (1 - np.tanh(w.numpy()) ** 2), 6))
print()

from chainrule.explain.demos import modes_demo  # noqa: E402 - the table comes after the idea

print(modes_demo())
