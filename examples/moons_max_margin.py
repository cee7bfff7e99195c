"""The micrograd demo on the tensor engine: a 2-16-16-1 ReLU net separates the moons by max margin.

Run ``python examples/moons_max_margin.py [boundary.png]``. Loss: mean(relu(1 − y·score)) + 1e-4·Σw²,
full-batch SGD with lr = 1 − 0.9·k/100 for 100 steps. See :func:`chainrule.explain.demos.moons_max_margin`.
"""

import sys

from chainrule.explain.demos import moons_max_margin

result = moons_max_margin(n_samples=100, noise=0.1, steps=100, plot=sys.argv[1] if len(sys.argv) > 1 else None)
print(result)
