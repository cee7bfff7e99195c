"""Curvature: Hessian, generalised Gauss-Newton and Fisher matrices of a loss as linear operators over
a model's flattened parameters, their spectra and traces, and conjugate-gradient solves.

- :func:`hessian`, :func:`ggn`, :func:`fisher`, :func:`empirical_fisher` build a
  :class:`CurvatureOperator` for a model, a loss and a batch (:mod:`chainrule.curvature.operators`).
- An operator multiplies vectors (``C @ v``), and gives ``to_dense()``, ``diagonal()``, ``trace()``,
  ``eigh(k)`` and ``to_scipy()``; :func:`cg` solves :math:`(C + \\lambda I)x = b`
  (:mod:`chainrule.curvature.linalg`).
- :class:`BatchGrad`, :func:`per_sample_gradients`, :func:`gradient_variance`: one gradient per sample for
  Linear and Conv layers without a loop over samples (:mod:`chainrule.curvature.per_sample`).

Examples
--------
>>> import numpy as np, chainrule as cr
>>> from chainrule import nn, curvature
>>> _ = cr.manual_seed(0)
>>> model = nn.Sequential(nn.Linear(2, 3, dtype=np.float64), nn.Tanh(), nn.Linear(3, 1, dtype=np.float64))
>>> x, y = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[1.0], [1.0]])
>>> H = curvature.hessian(model, nn.MSELoss(), x, y)
>>> H.shape
(13, 13)
>>> values, vectors = H.eigh(k=2)
>>> bool(np.allclose(H @ vectors[:, 0], values[0] * vectors[:, 0]))
True
"""

from chainrule.curvature.linalg import CGResult, cg, hutchinson_diagonal, hutchinson_trace, hutchpp_trace, lanczos
from chainrule.curvature.linear_operator import CurvatureOperator
from chainrule.curvature.operators import empirical_fisher, fisher, ggn, hessian
from chainrule.curvature.params import ParameterSpace
from chainrule.curvature.per_sample import BatchGrad, gradient_variance, per_sample_gradients

__all__ = [
    "hessian",
    "ggn",
    "fisher",
    "empirical_fisher",
    "CurvatureOperator",
    "ParameterSpace",
    "cg",
    "CGResult",
    "lanczos",
    "hutchinson_trace",
    "hutchpp_trace",
    "hutchinson_diagonal",
    "BatchGrad",
    "per_sample_gradients",
    "gradient_variance",
]
