"""Explain: every number of backprop, from the real engine.

- :func:`trace` records one training step of a small fully-connected net as forward, loss and backward
  tables (each chain-rule factor of each weight's gradient and the update); :func:`worked_example` is the
  classic 2-2-2 logistic network worked by hand.
- :func:`graph` draws the computational graph of a Tensor or Value (DOT, SVG/PNG with Graphviz, or text).
- :func:`check_model` compares every parameter's gradient with central differences in float64.
- :class:`GradientMonitor` watches a training run for vanishing and exploding gradients, dead ReLUs and
  saturated units; :func:`vanishing_demo` shows both on a deep sigmoid net and a ReLU + He net.
- :func:`curvature_demo` shows the Hessian, Gauss-Newton, Fisher and empirical Fisher of a small net side
  by side, before and after training (``chainrule explain curvature``).
- Teaching demos: :func:`activations_demo`, :func:`modes_demo` and the others in :mod:`chainrule.explain.demos`.

Examples
--------
>>> from chainrule.explain import worked_example_trace
>>> t = worked_example_trace()
>>> round(t.loss, 9)
0.298371109
>>> [(row.name, round(row.new, 8)) for row in t.backward_rows[:2]]
[('w5', 0.35891648), ('w6', 0.40866619)]
"""

from chainrule.explain import demos
from chainrule.explain.check import ModelCheck, ParameterCheck, check_model, gradcheck_command
from chainrule.explain.curvature import CurvatureReport, curvature_demo
from chainrule.explain.demos import *  # noqa: F403 - declared in chainrule.explain.demos (its __all__)
from chainrule.explain.graph import Graph, GraphNode, graph
from chainrule.explain.monitor import GradientMonitor, GradientWarning, layers_with_weights
from chainrule.explain.network import ACTIVATIONS, build_network, explain_network, load_weights
from chainrule.explain.trace import LOSSES, BackwardRow, ForwardRow, LossTerm, Trace, trace, train_steps
from chainrule.explain.vanishing import VanishingResult, vanishing_demo
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
    "graph",
    "Graph",
    "GraphNode",
    "check_model",
    "ModelCheck",
    "ParameterCheck",
    "gradcheck_command",
    "GradientMonitor",
    "GradientWarning",
    "layers_with_weights",
    "vanishing_demo",
    "VanishingResult",
    "curvature_demo",
    "CurvatureReport",
]
__all__ += demos.__all__
