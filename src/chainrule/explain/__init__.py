"""Explain: every number of backprop, from the real engine.

Examples
--------
>>> from chainrule.explain import worked_example_trace
>>> t = worked_example_trace()
>>> round(t.loss, 9)
0.298371109
>>> [(row.name, round(row.new, 8)) for row in t.backward_rows[:2]]
[('w5', 0.35891648), ('w6', 0.40866619)]
"""

from chainrule.explain.network import ACTIVATIONS, build_network, explain_network, load_weights
from chainrule.explain.trace import LOSSES, BackwardRow, ForwardRow, LossTerm, Trace, trace, train_steps
from chainrule.explain.worked import WORKED_NAMES, worked_example, worked_example_model, worked_example_trace

__all__ = [
    "trace",
    "train_steps",
    "Trace",
    "ForwardRow",
    "LossTerm",
    "BackwardRow",
    "LOSSES",
    "worked_example",
    "worked_example_trace",
    "worked_example_model",
    "WORKED_NAMES",
    "explain_network",
    "build_network",
    "load_weights",
    "ACTIVATIONS",
]
