"""Why sigmoid gradients vanish: the sigmoid family scaled to slope 1 at 0, differentiated by the engine.

Run ``python examples/activations.py [plot.png]``. First one derivative by hand and by backward(), then the
whole table from :func:`chainrule.explain.demos.activations_demo`.
"""

import math
import sys

import chainrule as cr
from chainrule.explain.demos import activations_demo

# One point first: the logistic σ scaled to slope 1, f(x) = 4σ(x) − 2, at x = 5.
x = cr.tensor(5.0, dtype=cr.float64, requires_grad=True)
f = 4 * x.sigmoid() - 2
f.backward()  # df/dx by the chain rule: 4 σ(x)(1 − σ(x))
s = 1 / (1 + math.exp(-5.0))
print(f"f(5) = {f.item():.6f}, f'(5) by backward() = {x.grad.item():.6e}, by hand 4σ(1−σ) = {4 * s * (1 - s):.6e}")
print()

# The whole family on a grid, every derivative from one backward pass per function.
result = activations_demo(plot=sys.argv[1] if len(sys.argv) > 1 else None)
print(result)
