"""The classic worked example of backpropagation (Matt Mazur's), computed by the engine.

A 2-2-2 network of sigmoid neurons: inputs :math:`i_1 = 0.05, i_2 = 0.10`, targets
:math:`0.01, 0.99`, weights :math:`w_1 \\dots w_8 = 0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55`
(:math:`w_1, w_2` feed :math:`h_1` from :math:`i_1, i_2`; :math:`w_3, w_4` feed :math:`h_2`; :math:`w_5, w_6`
feed :math:`o_1` from :math:`h_1, h_2`; :math:`w_7, w_8` feed :math:`o_2`), one bias per layer
(:math:`b_1 = 0.35`, :math:`b_2 = 0.60`, kept fixed), the loss :math:`E = \\frac12\\sum (t - o)^2` and one
gradient-descent step with learning rate 0.5. For an output weight the chain rule reads

.. math::
    \\frac{\\partial E}{\\partial w_5} = \\underbrace{(o_1 - t_1)}_{\\partial E/\\partial out_{o1}}
    \\cdot \\underbrace{o_1 (1 - o_1)}_{\\partial out/\\partial net}
    \\cdot \\underbrace{out_{h1}}_{\\partial net/\\partial w_5}

and for a hidden weight :math:`\\partial E/\\partial out_{h1} = \\delta_{o1} w_5 + \\delta_{o2} w_7` sums two paths.
"""

from __future__ import annotations

import numpy as np

from chainrule import autograd, nn
from chainrule.explain.trace import Trace, trace

__all__ = ["WORKED_NAMES", "worked_example_model", "worked_example_trace", "worked_example"]

#: The textbook's labels for the canonical names of :func:`chainrule.explain.trace`.
WORKED_NAMES = {
    "x[0]": "i1",
    "x[1]": "i2",
    "L1[0]": "h1",
    "L1[1]": "h2",
    "L2[0]": "o1",
    "L2[1]": "o2",
    "L1.w[0,0]": "w1",
    "L1.w[0,1]": "w2",
    "L1.w[1,0]": "w3",
    "L1.w[1,1]": "w4",
    "L2.w[0,0]": "w5",
    "L2.w[0,1]": "w6",
    "L2.w[1,0]": "w7",
    "L2.w[1,1]": "w8",
    "L1.b[0]": "b1",
    "L1.b[1]": "b1",
    "L2.b[0]": "b2",
    "L2.b[1]": "b2",
}
INPUTS = (0.05, 0.10)
TARGETS = (0.01, 0.99)
LEARNING_RATE = 0.5


def worked_example_model() -> nn.Sequential:
    """The worked example's network: ``Linear(2, 2), Sigmoid, Linear(2, 2), Sigmoid`` in float64.

    Examples
    --------
    >>> model = worked_example_model()
    >>> model[2].weight.tolist(), model[2].bias.tolist()
    ([[0.4, 0.45], [0.5, 0.55]], [0.6, 0.6])
    """
    model = nn.Sequential(
        nn.Linear(2, 2, dtype=np.float64), nn.Sigmoid(), nn.Linear(2, 2, dtype=np.float64), nn.Sigmoid()
    )
    with autograd.no_grad():
        model[0].weight.copy_([[0.15, 0.20], [0.25, 0.30]])  # w1 w2 / w3 w4
        model[0].bias.fill_(0.35)  # b1, shared by h1 and h2
        model[2].weight.copy_([[0.40, 0.45], [0.50, 0.55]])  # w5 w6 / w7 w8
        model[2].bias.fill_(0.60)  # b2, shared by o1 and o2
    return model


def worked_example_trace() -> Trace:
    """The trace of the worked example's one step (biases frozen, :math:`E = \\frac12\\sum(t-o)^2`, lr 0.5).

    Examples
    --------
    >>> t = worked_example_trace()
    >>> [round(row.out, 9) for row in t.forward_rows]
    [0.593269992, 0.596884378, 0.75136507, 0.772928465]
    """
    return trace(
        worked_example_model(),
        INPUTS,
        TARGETS,
        loss="half_sse",
        lr=LEARNING_RATE,
        names=WORKED_NAMES,
        freeze_bias=True,
    )


def worked_example(steps: int = 10_000, format: str = "text") -> str:
    """The worked example in full: forward table, loss terms, backward table, new weights, and the error
    after ``steps`` steps of training (0: skip the training).

    Parameters
    ----------
    steps : int
        Training steps whose final error to report.
    format : {"text", "markdown", "html", "json"}
        How to render it.

    Examples
    --------
    >>> text = worked_example(steps=1)
    >>> "0.298371109" in text and "0.35891648" in text
    True
    """
    if format not in RENDERERS:
        raise ValueError(f"worked_example: format must be one of {', '.join(RENDERERS)}, got {format!r}")
    record = worked_example_trace()
    if steps:
        record.step_losses(steps)
    return getattr(record, RENDERERS[format])()


RENDERERS = {"text": "to_text", "markdown": "to_markdown", "html": "to_html", "json": "to_json"}
