"""The micrograd demo as micrograd ran it: one Value per number, on the scalar engine.

Run ``python examples/moons_scalar_engine.py``. Every multiply and add is a Python object, so a step on
100 points takes about 0.6 s on an idle core: the script runs 10 steps (about 6 s) and checks them
against the tensor engine, which does the same arithmetic on arrays. For micrograd's full 100 steps
(1 to 2.5 min, 100% training accuracy) run ``CHAINRULE_SCALAR_STEPS=100 python examples/moons_scalar_engine.py``.
See :func:`chainrule.explain.demos.moons_scalar_engine`.
"""

import os

import numpy as np

from chainrule.explain.demos import moons_max_margin, moons_scalar_engine

steps = int(os.environ.get("CHAINRULE_SCALAR_STEPS", "10"))
scalar = moons_scalar_engine(n_samples=100, steps=steps)
print(scalar)
print()

# Same data, same initial weights, same loss and schedule: the tensor engine gives the same numbers.
tensor = moons_max_margin(n_samples=100, steps=steps)
difference = np.max(np.abs(np.array(scalar.losses) - np.array(tensor.losses)))
print(
    f"tensor engine, same {steps} steps: largest loss difference {difference:.1e}, "
    f"{scalar.seconds / tensor.seconds:.0f}× faster ({tensor.seconds:.3f} s)"
)
if steps < 100:
    full = moons_max_margin(n_samples=100, steps=100)
    print(f"the tensor engine's full 100 steps: training accuracy {full.final_accuracy:.0%} in {full.seconds:.2f} s")
