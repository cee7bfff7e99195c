"""Second-order quantities: per-sample gradients and the gradient variance (curvature operators live here too)."""

from chainrule.curvature.per_sample import BatchGrad, gradient_variance, per_sample_gradients

__all__ = ["BatchGrad", "per_sample_gradients", "gradient_variance"]
