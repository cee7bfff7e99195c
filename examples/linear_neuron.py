"""One linear neuron trained by gradient descent lands on the least-squares solution.

Run ``python examples/linear_neuron.py``. The mean squared error of a linear model is a convex quadratic,
so gradient descent with a small enough learning rate reaches its unique minimum, the same answer that
``numpy.linalg.lstsq`` solves for directly. See :func:`chainrule.explain.demos.linear_regression_neuron`.
"""

from chainrule.explain.demos import linear_regression_neuron

result = linear_regression_neuron(n_samples=200, n_features=3, noise=0.1, lr=0.1, steps=300)
print(result)
print()
for step in (0, 10, 30, 100, 299):
    print(f"step {step:3d}  MSE {result.losses[step]:.8f}  (least squares {result.lstsq_loss:.8f})")
