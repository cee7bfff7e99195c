"""Export a chainrule model to an ONNX file: one converter per layer type, in :data:`CONVERTERS`.

The exporter walks the model from the root: each module is looked up by its exact type in :data:`CONVERTERS`,
whose converter appends ONNX nodes (built with ``onnx.helper``) and the module's weights as initializers, and
returns the names of its outputs. A container (``Sequential``, the CLI's ``SequenceClassifier``) converts its
children in the order its ``forward`` calls them. Alongside each ONNX value the exporter carries the value
chainrule computes for the example input, so every converter knows the static shapes it needs (ranks,
feature sizes) without tracing; the batch dimension stays symbolic.

Recurrent layers become ONNX's own ``RNN``, ``LSTM`` and ``GRU`` ops, one per layer. The gate blocks of the
weights (rows of ``weight_ih``/``weight_hh``/biases, each ``hidden_size`` long) are reordered:

=========  ====================  ====================
layer      chainrule / PyTorch   ONNX
=========  ====================  ====================
LSTM       i, f, g, o            i, o, f, c  (blocks 0, 3, 1, 2)
GRU        r, z, n               z, r, h  (blocks 1, 0, 2), ``linear_before_reset=1``
RNN        one block             one block
=========  ====================  ====================

GRU's ``linear_before_reset=1`` is chainrule's (and PyTorch's) form of the new gate,
:math:`n = \\tanh(W_{in} x + b_{in} + r \\odot (W_{hn} h + b_{hn}))`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import _checks as check
from chainrule import nn
from chainrule.autograd import no_grad
from chainrule.errors import ArgumentError, ChainruleError, DTypeError, ShapeError
from chainrule.functions import as_tensor
from chainrule.io import atomic_write_bytes
from chainrule.nn.module import Module
from chainrule.tensor import Tensor
from chainrule.train.models import SequenceClassifier

__all__ = ["export", "to_onnx", "CONVERTERS", "DEFAULT_OPSET", "MIN_OPSET"]

#: The opset written unless asked otherwise (ONNX 1.12, 2022; onnxruntime 1.12 and later run it).
DEFAULT_OPSET = 17
#: The oldest opset the converters can write: ``LayerNormalization`` first appears in opset 17.
MIN_OPSET = 17


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ChainruleError("onnx.export needs the 'onnx' package: pip install 'chainrule[onnx]'") from None
    return onnx


@dataclass(frozen=True)
class _Value:
    """An ONNX value's name, and what chainrule computes at that point for the example input."""

    name: str
    example: Tensor


class _Graph:
    """The nodes and initializers being collected, with unique names."""

    def __init__(self, onnx: Any, opset: int) -> None:
        self.onnx, self.opset = onnx, opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._used: set[str] = set()

    def unique(self, hint: str) -> str:
        name, count = hint, 1
        while name in self._used:
            name, count = f"{hint}_{count}", count + 1
        self._used.add(name)
        return name

    def constant(self, name: str, array: Any) -> str:
        """Add ``array`` as an initializer; returns its (unique) name."""
        name = self.unique(name)
        array = np.asarray(array)  # not np.ascontiguousarray, which turns a 0-d array into shape (1,)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.array(array, order="C", copy=True), name))
        return name

    def op(self, op_type: str, inputs: list[str], path: str, outputs: int = 1, **attributes: Any) -> list[str]:
        """Append one node; returns the names of its ``outputs`` outputs."""
        prefix = f"{path}/{op_type}" if path else op_type
        names = [self.unique(prefix if outputs == 1 else f"{prefix}_{k}") for k in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, names, name=names[0], **attributes))
        return names

    def op1(self, op_type: str, inputs: list[str], path: str, **attributes: Any) -> str:
        return self.op(op_type, inputs, path, 1, **attributes)[0]

    def axes(self, path: str, *axes: int) -> str:
        """An int64 vector constant (axes or shapes, inputs of Squeeze, Unsqueeze and Reshape since opset 13)."""
        return self.constant(f"{path}/axes" if path else "axes", np.array(axes, dtype=np.int64))


Converter = Callable[[Module, _Graph, _Value, str], Any]


def _key(path: str, name: str) -> str:
    """The state-dict name of a module's tensor, used as the initializer's name."""
    return f"{path}.{name}" if path else name


def _run(module: Module, x: _Value) -> Any:
    """What ``module`` computes for the example (in eval mode, without a graph)."""
    with no_grad():
        return module(x.example)


def _convert(module: Module, graph: _Graph, x: _Value, path: str) -> Any:
    converter = CONVERTERS.get(type(module))
    if converter is None:
        where = f" at {path!r}" if path else " (the model itself)"
        known = ", ".join(sorted(cls.__name__ for cls in CONVERTERS))
        raise ArgumentError(
            f"onnx.export: no ONNX converter for layer {type(module).__name__}{where}; layers that export: {known}"
        )
    return converter(module, graph, x, path)


# -- containers and shape layers -------------------------------------------------------------------------
def _sequential(module: Module, graph: _Graph, x: _Value, path: str) -> Any:
    value: Any = x
    for name, child in module._modules.items():
        if not isinstance(value, _Value):
            raise ArgumentError(
                f"onnx.export: layer {type(child).__name__} at {_key(path, name)!r} receives a tuple "
                "(a recurrent layer's outputs) inside Sequential, which its forward cannot take either"
            )
        value = _convert(child, graph, value, _key(path, name))
    return value


def _identity(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    return _Value(graph.op1("Identity", [x.name], path), _run(module, x))


def _flatten(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    out = _run(module, x)
    start = module.start_dim % x.example.ndim
    end = module.end_dim % x.example.ndim
    # 0 copies a dimension (the dynamic batch), -1 is the merged one, the rest are the example's static sizes
    shape = graph.axes(path, *([0] * start), -1, *x.example.shape[end + 1 :])
    return _Value(graph.op1("Reshape", [x.name, shape], path), out)


def _unflatten(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    out = _run(module, x)
    dim = module.dim % x.example.ndim
    shape = graph.axes(path, *([0] * dim), *module.unflattened_size, *x.example.shape[dim + 1 :])
    return _Value(graph.op1("Reshape", [x.name, shape], path), out)


# -- affine and convolution layers ----------------------------------------------------------------------
def _linear(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    out = _run(module, x)
    bias = [graph.constant(_key(path, "bias"), module.bias.data)] if module.bias is not None else []
    if x.example.ndim == 2:  # (N, in): one Gemm, y = x Wᵀ + b
        weight = graph.constant(_key(path, "weight"), module.weight.data)
        return _Value(graph.op1("Gemm", [x.name, weight, *bias], path, transB=1), out)
    weight_t = graph.constant(_key(path, "weight") + "_transposed", module.weight.data.T)  # (*, in) @ (in, out)
    y = graph.op1("MatMul", [x.name, weight_t], path)
    if bias:
        y = graph.op1("Add", [y, *bias], path)
    return _Value(y, out)


def _pads(padding: tuple[int, ...]) -> list[int]:
    """ONNX's pads: the start of every spatial axis, then the end of every one."""
    return [*padding, *padding]


def _conv(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    out = _run(module, x)
    kernel, dilation = module.kernel_size, module.dilation
    if module.padding == "same":  # symmetric: the layer refuses 'same' when d (k - 1) is odd
        padding = tuple(d * (k - 1) // 2 for d, k in zip(dilation, kernel))
    elif module.padding == "valid":
        padding = (0,) * len(kernel)
    else:
        padding = module.padding
    inputs = [x.name, graph.constant(_key(path, "weight"), module.weight.data)]
    if module.bias is not None:
        inputs.append(graph.constant(_key(path, "bias"), module.bias.data))
    y = graph.op1(
        "Conv", inputs, path, kernel_shape=list(kernel), strides=list(module.stride), pads=_pads(padding),
        dilations=list(dilation),
    )  # fmt: skip
    return _Value(y, out)


def _window(module: Module) -> tuple[list[int], list[int], list[int]]:
    """Kernel, stride and pads of a pooling layer, as ONNX attributes."""
    spatial = 1 if type(module).__name__.endswith("1d") else 2
    name = type(module).__name__
    kernel = check.int_tuple(name, "kernel_size", module.kernel_size, spatial, 1)
    stride = check.int_tuple(name, "stride", module.stride, spatial, 1)
    padding = check.int_tuple(name, "padding", module.padding, spatial)
    return list(kernel), list(stride), _pads(padding)


def _max_pool(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    out = _run(module, x)
    kernel, stride, pads = _window(module)
    dilation = check.int_tuple(type(module).__name__, "dilation", module.dilation, len(kernel), 1)
    y = graph.op1(
        "MaxPool", [x.name], path, kernel_shape=kernel, strides=stride, pads=pads, dilations=list(dilation)
    )  # padding counts as -inf in both
    return _Value(y, out)


def _avg_pool(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    out = _run(module, x)
    kernel, stride, pads = _window(module)
    y = graph.op1("AveragePool", [x.name], path, kernel_shape=kernel, strides=stride, pads=pads, count_include_pad=1)
    return _Value(y, out)


def _adaptive_avg_pool(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    out = _run(module, x)
    (height, width), (out_h, out_w) = x.example.shape[2:], out.shape[2:]
    if (out_h, out_w) == (1, 1):
        return _Value(graph.op1("GlobalAveragePool", [x.name], path), out)
    if height % out_h or width % out_w:
        raise ArgumentError(
            f"onnx.export: AdaptiveAvgPool2d at {path!r} pools {height}x{width} to {out_h}x{out_w}, whose bins "
            "differ in size; only sizes that divide the input (or 1x1) export"
        )
    kernel = [height // out_h, width // out_w]
    return _Value(graph.op1("AveragePool", [x.name], path, kernel_shape=kernel, strides=kernel), out)


# -- normalization, regularization, lookup ---------------------------------------------------------------
def _batch_norm(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    if not module.track_running_stats:
        raise ArgumentError(
            f"onnx.export: {type(module).__name__} at {path!r} has no running statistics "
            "(track_running_stats=False) and normalizes by batch statistics even in eval mode; it does not export"
        )
    out = _run(module, x)
    features, dtype = module.num_features, module.running_mean.dtype
    scale = module.weight.data if module.weight is not None else np.ones(features, dtype)
    shift = module.bias.data if module.bias is not None else np.zeros(features, dtype)
    inputs = [
        x.name,
        graph.constant(_key(path, "weight"), scale),
        graph.constant(_key(path, "bias"), shift),
        graph.constant(_key(path, "running_mean"), module.running_mean.data),
        graph.constant(_key(path, "running_var"), module.running_var.data),
    ]
    return _Value(graph.op1("BatchNormalization", inputs, path, epsilon=float(module.eps)), out)


def _layer_norm(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    out = _run(module, x)
    shape, dtype = module.normalized_shape, x.example.dtype
    scale = module.weight.data if module.weight is not None else np.ones(shape, dtype)
    inputs = [x.name, graph.constant(_key(path, "weight"), scale)]
    if module.bias is not None:
        inputs.append(graph.constant(_key(path, "bias"), module.bias.data))
    y = graph.op1("LayerNormalization", inputs, path, axis=-len(shape), epsilon=float(module.eps))
    return _Value(y, out)


def _embedding(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    out = _run(module, x)
    weight = graph.constant(_key(path, "weight"), module.weight.data)
    return _Value(graph.op1("Gather", [weight, x.name], path, axis=0), out)


# -- activations -------------------------------------------------------------------------------------------
def _scalar(graph: _Graph, path: str, name: str, value: float, like: Tensor) -> str:
    return graph.constant(f"{path}/{name}" if path else name, np.array(value, dtype=like.dtype))


def _elementwise(op_type: str, **attributes: Callable[[Module], Any]) -> Converter:
    """A converter for an activation that is one ONNX op; attribute values are read from the module."""

    def convert(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
        values = {name: read(module) for name, read in attributes.items()}
        return _Value(graph.op1(op_type, [x.name], path, **values), _run(module, x))

    return convert


def _gelu(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    out = _run(module, x)
    if graph.opset >= 20:
        return _Value(graph.op1("Gelu", [x.name], path), out)
    # x Φ(x) = x · ½ (1 + erf(x / √2)), as chainrule composes it
    scaled = graph.op1("Mul", [x.name, _scalar(graph, path, "inv_sqrt2", 1 / math.sqrt(2), out)], path)
    one_plus = graph.op1("Add", [graph.op1("Erf", [scaled], path), _scalar(graph, path, "one", 1.0, out)], path)
    half_x = graph.op1("Mul", [x.name, _scalar(graph, path, "half", 0.5, out)], path)
    return _Value(graph.op1("Mul", [half_x, one_plus], path), out)


def _silu(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    return _Value(graph.op1("Mul", [x.name, graph.op1("Sigmoid", [x.name], path)], path), _run(module, x))


def _softplus(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    out = _run(module, x)
    if module.beta == 1.0:
        return _Value(graph.op1("Softplus", [x.name], path), out)
    scaled = graph.op1("Mul", [x.name, _scalar(graph, path, "beta", module.beta, out)], path)
    inverse = _scalar(graph, path, "inv_beta", 1 / module.beta, out)
    y = graph.op1("Mul", [graph.op1("Softplus", [scaled], path), inverse], path)
    return _Value(y, out)


def _sigmoid_family(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    """The slope-1 sigmoid family (``nn.SigmoidFamily``), each member composed of ONNX ops as chainrule composes it."""
    out = _run(module, x)

    def times(name: str, value: float, y: str) -> str:
        return graph.op1("Mul", [y, _scalar(graph, path, name, value, out)], path)

    name = module.name
    if name == "logistic":  # 4σ(x) − 2
        four_sigma = times("four", 4.0, graph.op1("Sigmoid", [x.name], path))
        y = graph.op1("Sub", [four_sigma, _scalar(graph, path, "two", 2.0, out)], path)
    elif name in ("tanh", "softsign"):
        y = graph.op1({"tanh": "Tanh", "softsign": "Softsign"}[name], [x.name], path)
    elif name == "arctan":
        y = graph.op1("Atan", [x.name], path)
    elif name == "erf":  # (√π / 2) erf(x)
        y = times("sqrt_pi_half", math.sqrt(math.pi) / 2.0, graph.op1("Erf", [x.name], path))
    elif name == "algebraic":  # x / √(1 + x²)
        square = graph.op1("Mul", [x.name, x.name], path)
        root = graph.op1("Sqrt", [graph.op1("Add", [square, _scalar(graph, path, "one", 1.0, out)], path)], path)
        y = graph.op1("Div", [x.name, root], path)
    elif name == "gudermannian":  # 2 arctan(tanh(x / 2))
        y = times("two", 2.0, graph.op1("Atan", [graph.op1("Tanh", [times("half", 0.5, x.name)], path)], path))
    else:  # pragma: no cover - SigmoidFamily validates its name
        raise ArgumentError(f"onnx.export: SigmoidFamily member {name!r} at {path!r} has no ONNX form")
    return _Value(y, out)


# -- recurrent layers --------------------------------------------------------------------------------------
#: The order in which chainrule's gate blocks are stacked in ONNX's weights (see the module docstring).
_GATE_ORDER = {"RNN": (0,), "LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2)}


def _recurrent(module: Module, graph: _Graph, x: _Value, path: str) -> tuple[Any, ...]:
    out = _run(module, x)
    kind, size = type(module).__name__, module.hidden_size
    order = _GATE_ORDER[kind]

    def reorder(array: np.ndarray) -> np.ndarray:
        return np.concatenate([array[k * size : (k + 1) * size] for k in order], axis=0)

    sequence = x.name  # ONNX reads (T, N, in)
    if x.example.ndim == 2:
        sequence = graph.op1("Unsqueeze", [sequence, graph.axes(path, 1)], path)
    elif module.batch_first:
        sequence = graph.op1("Transpose", [sequence], path, perm=[1, 0, 2])
    attributes: dict[str, Any] = {"hidden_size": size}
    if kind == "RNN":
        attributes["activations"] = ["Tanh" if module.nonlinearity == "tanh" else "Relu"]
    if kind == "GRU":
        attributes["linear_before_reset"] = 1
    finals: list[list[str]] = [[], []]  # h_n and c_n of each layer, (1, N, H)
    for layer in range(module.num_layers):
        weights = [
            graph.constant(_key(path, f"W_l{layer}"), reorder(getattr(module, f"weight_ih_l{layer}").data)[None]),
            graph.constant(_key(path, f"R_l{layer}"), reorder(getattr(module, f"weight_hh_l{layer}").data)[None]),
        ]
        if module.bias:
            joined = [reorder(getattr(module, f"{name}_l{layer}").data) for name in ("bias_ih", "bias_hh")]
            weights.append(graph.constant(_key(path, f"B_l{layer}"), np.concatenate(joined)[None]))
        outputs = graph.op(kind, [sequence, *weights], path, 3 if kind == "LSTM" else 2, **attributes)
        sequence = graph.op1("Squeeze", [outputs[0], graph.axes(path, 1)], path)  # (T, 1, N, H) -> (T, N, H)
        for k, final in enumerate(outputs[1:]):
            finals[k].append(final)
    states = [
        graph.op1("Concat", names, path, axis=0) if len(names) > 1 else names[0] for names in finals if names
    ]  # (num_layers, N, H)
    if x.example.ndim == 2:
        sequence = graph.op1("Squeeze", [sequence, graph.axes(path, 1)], path)
        states = [graph.op1("Squeeze", [state, graph.axes(path, 1)], path) for state in states]
    elif module.batch_first:
        sequence = graph.op1("Transpose", [sequence], path, perm=[1, 0, 2])
    output, state = out
    if kind == "LSTM":
        return _Value(sequence, output), (_Value(states[0], state[0]), _Value(states[1], state[1]))
    return _Value(sequence, output), _Value(states[0], state)


def _sequence_classifier(module: Module, graph: _Graph, x: _Value, path: str) -> _Value:
    """The CLI's recurrent models: image rows as time steps, then the head on the last step."""
    rows = x
    if x.example.ndim == 4:  # (N, 1, H, W) -> (N, H, W)
        with no_grad():
            example = x.example.reshape(x.example.shape[0], x.example.shape[2], x.example.shape[3])
        shape = graph.axes(path, 0, *example.shape[1:])
        rows = _Value(graph.op1("Reshape", [x.name, shape], path), example)
    output, _ = _convert(module.rnn, graph, rows, _key(path, "rnn"))
    last_index = graph.constant(f"{path}/last" if path else "last", np.array(-1, dtype=np.int64))
    with no_grad():
        last_example = output.example[:, -1]
    last = _Value(graph.op1("Gather", [output.name, last_index], path, axis=1), last_example)  # (N, H)
    return _convert(module.head, graph, last, _key(path, "head"))


#: The converter of each layer type that exports, looked up by exact type (a subclass may compute
#: something else in its own ``forward``, so it must be registered itself).
CONVERTERS: dict[type[Module], Converter] = {
    nn.Sequential: _sequential,
    nn.Identity: _identity,
    nn.Dropout: _identity,  # eval mode: dropout is the identity
    nn.Flatten: _flatten,
    nn.Unflatten: _unflatten,
    nn.Linear: _linear,
    nn.Conv1d: _conv,
    nn.Conv2d: _conv,
    nn.MaxPool1d: _max_pool,
    nn.MaxPool2d: _max_pool,
    nn.AvgPool1d: _avg_pool,
    nn.AvgPool2d: _avg_pool,
    nn.AdaptiveAvgPool2d: _adaptive_avg_pool,
    nn.BatchNorm1d: _batch_norm,
    nn.BatchNorm2d: _batch_norm,
    nn.LayerNorm: _layer_norm,
    nn.Embedding: _embedding,
    nn.Sigmoid: _elementwise("Sigmoid"),
    nn.Tanh: _elementwise("Tanh"),
    nn.ReLU: _elementwise("Relu"),
    nn.LeakyReLU: _elementwise("LeakyRelu", alpha=lambda m: float(m.negative_slope)),
    nn.ELU: _elementwise("Elu", alpha=lambda m: float(m.alpha)),
    nn.GELU: _gelu,
    nn.SiLU: _silu,
    nn.Softplus: _softplus,
    nn.Softsign: _elementwise("Softsign"),
    nn.SigmoidFamily: _sigmoid_family,
    nn.Softmax: _elementwise("Softmax", axis=lambda m: int(m.dim)),
    nn.LogSoftmax: _elementwise("LogSoftmax", axis=lambda m: int(m.dim)),
    nn.RNN: _recurrent,
    nn.LSTM: _recurrent,
    nn.GRU: _recurrent,
    SequenceClassifier: _sequence_classifier,
}


# -- the model -------------------------------------------------------------------------------------------
def _input_dims(model: Module, example: Tensor) -> list[int | str]:
    """The graph input's shape: the example's, with the batch dimension (and a bare recurrent layer's time
    dimension) symbolic."""
    dims: list[int | str] = list(example.shape)
    if isinstance(model, (nn.RNN, nn.LSTM, nn.GRU)) and example.ndim in (2, 3):
        symbols = {2: ["time"], 3: ["batch", "time"] if model.batch_first else ["time", "batch"]}[example.ndim]
        return [*symbols, *dims[len(symbols) :]]
    if len(dims) >= 2:  # a 1-d example is one unbatched sample: its only dimension is the features
        dims[0] = "batch"
    return dims


def _flat_outputs(result: Any) -> list[_Value]:
    if isinstance(result, _Value):
        return [result]
    return [value for part in result for value in _flat_outputs(part)]


def _check_dtypes(model: Module, example: Tensor) -> None:
    if example.dtype.kind not in "fiu":
        raise DTypeError(f"onnx.export: example_input has dtype {example.dtype}; expected floats or integer indices")
    floats = {str(p.dtype) for p in model.parameters() if p.dtype.kind == "f"}
    if example.dtype.kind == "f" and floats - {str(example.dtype)}:
        raise DTypeError(
            f"onnx.export: example_input is {example.dtype} but the model's parameters are {', '.join(sorted(floats))}"
            "; convert one of them (model.float(), model.double() or the input's dtype)"
        )


def to_onnx(model: Module, example_input: Any, *, opset: int = DEFAULT_OPSET) -> Any:
    """The ONNX ``ModelProto`` of ``model`` (see :func:`export`, which also writes it to a file).

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> from chainrule.onnx import to_onnx
    >>> proto = to_onnx(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), cr.randn(2, 4))
    >>> [node.op_type for node in proto.graph.node]
    ['Gemm', 'Relu', 'Identity']
    """
    onnx = _onnx()
    if not isinstance(model, Module):
        raise ArgumentError(f"onnx.export: model must be a chainrule Module, got {type(model).__name__}")
    newest = onnx.defs.onnx_opset_version()
    opset = check.integer("onnx.export", "opset", opset)
    if not MIN_OPSET <= opset <= newest:
        raise ArgumentError(
            f"onnx.export: opset must be between {MIN_OPSET} and {newest} (this onnx package's newest), got {opset}"
        )
    try:
        example = as_tensor(example_input)
    except ChainruleError as error:
        raise type(error)(f"onnx.export: example_input: {error}") from None
    _check_dtypes(model, example)
    modes = [(module, module.training) for _, module in model.named_modules()]
    model.eval()  # BatchNorm on running statistics, Dropout the identity
    graph = _Graph(onnx, opset)
    graph.unique("input")
    try:
        result = _convert(model, graph, _Value("input", example), "")
    except (ShapeError, DTypeError) as error:  # a layer refused the example: say it is the example that is wrong
        message = str(error)
        if message.startswith("onnx.export:"):
            raise
        raise type(error)(
            f"onnx.export: example_input of shape {tuple(example.shape)} ({example.dtype}) does not fit the model: "
            f"{message}"
        ) from None
    finally:
        for module, training in modes:
            object.__setattr__(module, "training", training)
    outputs = _flat_outputs(result)
    helper = onnx.helper
    names = ["output"] if len(outputs) == 1 else [f"output_{k}" for k in range(len(outputs))]
    for value, name in zip(outputs, names):  # stable names for the graph's outputs
        graph.nodes.append(helper.make_node("Identity", [value.name], [name], name=graph.unique(f"{name}/Identity")))
    element = helper.np_dtype_to_tensor_dtype(example.dtype)
    graph_proto = helper.make_graph(
        graph.nodes,
        "chainrule",
        [helper.make_tensor_value_info("input", element, _input_dims(model, example))],
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.example.dtype), None)
         for v, n in zip(outputs, names)],
        graph.initializers,
    )  # fmt: skip
    from chainrule import __version__

    proto = helper.make_model_gen_version(
        graph_proto, opset_imports=[helper.make_opsetid("", opset)], producer_name="chainrule",
        producer_version=__version__,
    )  # fmt: skip
    try:
        proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
        onnx.checker.check_model(proto, full_check=True)
    except Exception as error:  # onnx's own exceptions: a converter wrote a graph onnx rejects
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ChainruleError(
            f"onnx.export: the graph for {type(model).__name__} failed onnx's checker ({type(error).__name__}: "
            f"{first}); nothing was written. This is a bug in a converter: please report it with the model"
        ) from error
    return proto


def export(
    model: Module,
    example_input: Any,
    path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
) -> Any:
    """Write ``model`` to ``path`` as an ONNX file; returns the ``onnx.ModelProto``.

    The model is exported as it computes in eval mode (BatchNorm on its running statistics, Dropout the
    identity); its training flags are restored afterwards. The graph has one input, ``input``, of the
    example's dtype and shape with dimension 0 symbolic (``batch``; a bare recurrent layer's input has symbolic
    ``batch`` and ``time`` dimensions), and one output ``output`` (a recurrent layer's
    several outputs are ``output_0``, ``output_1``, ... in the order of its return value, flattened).
    Initializers carry the state-dict names (``0.weight``); the recurrent layers' reordered weights are
    ``rnn.W_l0``, ``rnn.R_l0``, ``rnn.B_l0``. The model passes ``onnx.checker.check_model(full_check=True)``
    before it is written; the file is written atomically (:func:`chainrule.io.atomic_write_bytes`).

    Parameters
    ----------
    model : Module
        Built from the layers in :data:`CONVERTERS` (``Sequential`` of them, or the CLI's ready-made models).
    example_input : Tensor or array
        One batch the model accepts (float, or integer indices for ``Embedding``); it fixes every dimension
        but the batch.
    path : str or path-like
        The file to write; an existing file is replaced only with ``overwrite=True``.
    opset : int
        The ONNX opset, from :data:`MIN_OPSET` (17) to the newest the installed ``onnx`` knows. With 20 or
        later GELU is one ``Gelu`` node, before that ``Erf`` composed.

    Raises
    ------
    ArgumentError
        For a layer without a converter (naming its type and its path in the model, e.g. ``'features.3'``),
        an opset out of range, a ``path`` that is a directory or in a missing directory, an existing ``path``
        without ``overwrite``, or an ``overwrite`` that is not a bool.
    ShapeError, DTypeError
        If the example does not fit the model (``onnx.export: example_input of shape ... does not fit the
        model: `` and the layer's own message), or its dtype differs from the parameters'.
    CheckpointError
        If the file cannot be written.

    Examples
    --------
    >>> import os, tempfile
    >>> import chainrule as cr
    >>> import chainrule.onnx
    >>> from chainrule import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    >>> proto = chainrule.onnx.export(model, cr.randn(1, 1, 8, 8), path)
    >>> [node.op_type for node in proto.graph.node][:4]
    ['Conv', 'Relu', 'Reshape', 'Gemm']
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise ArgumentError(f"onnx.export: path must be a file name such as 'model.onnx', got {path!r}")
    overwrite = check.flag("onnx.export", "overwrite", overwrite)
    text = str(os.fspath(path))
    target = Path(text)
    if target.is_dir() or text.endswith(("/", os.sep)):
        raise ArgumentError(f"onnx.export: {text!r} is a directory; give a file name such as model.onnx")
    if not target.parent.is_dir():
        raise ArgumentError(f"onnx.export: the directory {str(target.parent)!r} of {text!r} does not exist")
    if target.exists() and not overwrite:
        raise ArgumentError(f"onnx.export: {str(target)!r} already exists; pass overwrite=True to replace it")
    proto = to_onnx(model, example_input, opset=opset)
    try:
        atomic_write_bytes(target, proto.SerializeToString())
    except ChainruleError as error:
        raise type(error)(f"onnx.export: {error}") from None
    return proto
