"""Teaching demos: small experiments that show, with numbers, how networks learn and why.

Each function runs one experiment and returns a result object holding the numbers; ``str(result)`` is a
terminal report. Functions that draw take ``plot=path`` and write a PNG there (matplotlib, imported only
then, with the Agg backend; the file is written atomically).

- :func:`activations_demo`: the sigmoid family scaled to slope 1 at 0, and how fast its derivatives vanish.
- :func:`modes_demo`: one gradient of N parameters by N forward-mode sweeps or by one reverse-mode sweep.
- :func:`linear_regression_neuron`: gradient descent on one linear neuron reaches the least-squares solution.
- :func:`xor_perceptron_vs_mlp`: one layer cannot separate XOR; one hidden layer can.
- :func:`moons_max_margin`: the micrograd demo (2-16-16-1 ReLU net, hinge loss) on the tensor engine.
- :func:`moons_scalar_engine`: the same net and the same numbers on the scalar :class:`~chainrule.Value`.

The scripts in ``examples/`` call these functions; ``chainrule explain activations`` and
``chainrule explain modes`` print the first two reports.
"""

from chainrule.explain.demos.activations import (
    NORMALIZED_SIGMOIDS,
    ActivationRow,
    ActivationsResult,
    Squashing,
    activations_demo,
)
from chainrule.explain.demos.linear_neuron import (
    LinearNeuronResult,
    linear_regression_neuron,
)
from chainrule.explain.demos.modes import (
    ModesResult,
    ModesRow,
    modes_demo,
)
from chainrule.explain.demos.moons import (
    MoonsResult,
    moons_max_margin,
    moons_scalar_engine,
)
from chainrule.explain.demos.xor import (
    XorComparison,
    xor_perceptron_vs_mlp,
)

__all__ = [
    "Squashing",
    "NORMALIZED_SIGMOIDS",
    "ActivationRow",
    "ActivationsResult",
    "activations_demo",
    "ModesRow",
    "ModesResult",
    "modes_demo",
    "LinearNeuronResult",
    "linear_regression_neuron",
    "XorComparison",
    "xor_perceptron_vs_mlp",
    "MoonsResult",
    "moons_max_margin",
    "moons_scalar_engine",
]
