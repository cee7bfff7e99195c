"""Export chainrule models to ONNX (``pip install 'chainrule[onnx]'``): :func:`export` and :func:`to_onnx`.

``import chainrule.onnx`` needs only NumPy; the ``onnx`` package is imported when a model is exported.
"""

from chainrule.onnx.export import CONVERTERS, DEFAULT_OPSET, MIN_OPSET, export, to_onnx

__all__ = ["export", "to_onnx", "CONVERTERS", "DEFAULT_OPSET", "MIN_OPSET"]
