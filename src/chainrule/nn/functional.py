"""The function form of every layer, activation and loss (``import chainrule.nn.functional as F``).

Each function is either a primitive of :mod:`chainrule.ops` (``linear``, ``unfold``) or a composition of
primitives, so its gradient (and its forward-mode derivative, and its second derivative) comes from the
primitive table: no layer or loss here has a gradient rule of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule import _checks as check
from chainrule import functions as fn
from chainrule.backend import get_namespace
from chainrule.errors import ArgumentError, DTypeError, ShapeError

# The activations are declared once, in chainrule.functions; F re-exports those very objects (F.relu is
# chainrule.relu is Tensor.relu), checked by tests/test_declarations.py.
from chainrule.functions import (
    as_tensor,
    elu,
    gelu,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    silu,
    softmax,
    softplus,
    softsign,
    tanh,
)
from chainrule.ops import OPS
from chainrule.rng import default_generator
from chainrule.tensor import Tensor, _wrap, apply

__all__ = [
    "linear",
    "conv1d",
    "conv2d",
    "unfold",
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "dropout",
    "batch_norm",
    "layer_norm",
    "embedding",
    "one_hot",
    # re-exported from chainrule.functions
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "silu",
    "sigmoid",
    "tanh",
    "softplus",
    "softsign",
    "softmax",
    "log_softmax",
    # declared here
    "sigmoid_family",
    "mse_loss",
    "l1_loss",
    "huber_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "nll_loss",
    "multi_margin_loss",
]


# ---------------------------------------------------------------------------------------------------
# Linear maps and convolution
# ---------------------------------------------------------------------------------------------------
def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """Affine map :math:`y = x W^\\top + b`.

    Shape: x (..., in_features), weight (out_features, in_features), bias (out_features,) ->
    (..., out_features).

    Examples
    --------
    >>> import chainrule as cr
    >>> import chainrule.nn.functional as F
    >>> F.linear(cr.ones(2, 3), cr.ones(4, 3), cr.zeros(4)).shape
    (2, 4)
    """
    x, weight = as_tensor(x), as_tensor(weight)
    if weight.ndim != 2:
        raise ShapeError(f"linear: weight must be 2-d (out_features, in_features), got shape {weight.shape}")
    if x.ndim == 0:
        raise ShapeError("linear: input must have at least 1 dimension (..., in_features), got a 0-d tensor")
    if bias is None:
        return apply(OPS["linear"], x, weight)
    bias = as_tensor(bias)
    if bias.shape != (weight.shape[0],):
        raise ShapeError(f"linear: bias of shape {bias.shape} does not fit weight of shape {weight.shape}")
    return apply(OPS["linear"], x, weight, bias)


def unfold(
    x: Any,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    value: float = 0.0,
) -> Tensor:
    """Sliding windows (im2col): (N, C, *spatial) -> (N, *out_spatial, C, *kernel_size)."""
    return apply(
        OPS["unfold"],
        as_tensor(x),
        kernel_size=tuple(kernel_size),
        stride=tuple(stride),
        padding=tuple(padding),
        dilation=tuple(dilation),
        value=value,
    )


def _out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_padding(
    name: str, padding: Any, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> tuple[int, ...]:
    """The zero padding per side of each spatial axis: ``padding`` as given, or resolved from "same"/"valid"."""
    spatial = len(kernel)
    if padding == "valid":
        padding = (0,) * spatial
    elif padding == "same":
        if any(s != 1 for s in stride):
            raise ArgumentError(f"{name}: padding='same' needs stride 1, got {tuple(stride)}")
        total = [d * (k - 1) for d, k in zip(dilation, kernel)]
        if any(t % 2 for t in total):
            raise ArgumentError(f"{name}: padding='same' with an even kernel {kernel} is not supported; pad explicitly")
        padding = tuple(t // 2 for t in total)
    return check.int_tuple(name, "padding", padding, spatial)


def _conv(x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, spatial: int, name: str) -> Tensor:
    x, weight = as_tensor(x), as_tensor(weight)
    if x.ndim != spatial + 2:
        raise ShapeError(
            f"{name}: expected input of {spatial + 2} dimensions (N, C, {'H, W' if spatial == 2 else 'L'})"
            f", got shape {x.shape}"
        )
    if weight.ndim != spatial + 2:
        raise ShapeError(f"{name}: weight must have {spatial + 2} dimensions, got shape {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ShapeError(
            f"{name}: input has {x.shape[1]} channels but the weight of shape {weight.shape} expects "
            f"{weight.shape[1]} (input shape {x.shape})"
        )
    kernel = weight.shape[2:]
    stride = check.int_tuple(name, "stride", stride, spatial, 1)
    dilation = check.int_tuple(name, "dilation", dilation, spatial, 1)
    padding = conv_padding(name, padding, kernel, stride, dilation)
    out_sizes = [_out_size(n, k, s, p, d) for n, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation)]
    if any(n < 1 for n in out_sizes):
        raise ShapeError(
            f"{name}: input of shape {x.shape} is smaller than the kernel {kernel} "
            f"(padding {padding}, dilation {dilation})"
        )
    attrs = {"stride": stride, "padding": padding, "dilation": dilation}
    if bias is None:
        return apply(OPS["conv"], x, weight, **attrs)
    bias = as_tensor(bias)
    if bias.shape != (weight.shape[0],):
        raise ShapeError(f"{name}: bias of shape {bias.shape} does not fit weight of shape {weight.shape}")
    return apply(OPS["conv"], x, weight, bias, **attrs)  # im2col and one GEMM (ops.Conv)


def conv2d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1) -> Tensor:
    """2-d convolution (cross-correlation, as in PyTorch) by im2col and one matrix product (``ops.Conv``).

    :math:`y_{n,o,i,j} = b_o + \\sum_{c,p,q} w_{o,c,p,q}\\, x_{n,c,\\, i s + p d,\\, j s + q d}`

    Shape: x (N, C, H, W), weight (O, C, kH, kW), bias (O,) -> (N, O, H_out, W_out) with
    ``H_out = (H + 2 padding - dilation (kH - 1) - 1) // stride + 1``. ``padding`` may be ``"same"`` or ``"valid"``.
    """
    return _conv(x, weight, bias, stride, padding, dilation, 2, "conv2d")


def conv1d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1) -> Tensor:
    """1-d convolution. Shape: x (N, C, L), weight (O, C, k), bias (O,) -> (N, O, L_out)."""
    return _conv(x, weight, bias, stride, padding, dilation, 1, "conv1d")


# ---------------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------------
def _pool(
    x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any, spatial: int, name: str, reduce: str
) -> Tensor:
    x = as_tensor(x)
    if x.ndim != spatial + 2:
        raise ShapeError(f"{name}: expected input of {spatial + 2} dimensions, got shape {x.shape}")
    kernel = check.int_tuple(name, "kernel_size", kernel_size, spatial, 1)
    stride = kernel if stride is None else check.int_tuple(name, "stride", stride, spatial, 1)
    padding = check.int_tuple(name, "padding", padding, spatial)
    dilation = check.int_tuple(name, "dilation", dilation, spatial, 1)
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ArgumentError(f"{name}: padding {padding} must be at most half the kernel size {kernel}")
    out_sizes = [_out_size(n, k, s, p, d) for n, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation)]
    if any(n < 1 for n in out_sizes):
        raise ShapeError(f"{name}: input of shape {x.shape} is smaller than the window {kernel}")
    if x.shape[0] == 0:  # an empty batch pools to an empty batch, as in PyTorch
        return x[(slice(None), slice(None)) + (slice(0, 1),) * spatial].broadcast_to((0, x.shape[1], *out_sizes))
    if reduce == "max":
        return apply(OPS["max_pool"], x, kernel_size=kernel, stride=stride, padding=padding, dilation=dilation)
    tiles = kernel == stride and not any(padding) and all(d == 1 for d in dilation)
    if tiles and all(n % k == 0 for n, k in zip(x.shape[2:], kernel)):
        # Windows tile the input: a reshape exposes them with no copy.
        split_shape = [x.shape[0], x.shape[1]]
        for n, k in zip(x.shape[2:], kernel):
            split_shape += [n // k, k]
        return x.reshape(split_shape).mean(axis=tuple(3 + 2 * i for i in range(spatial)))
    columns = unfold(x, kernel, stride, padding, dilation)  # (N, *out, C, *kernel)
    pooled = columns.mean(axis=tuple(range(2 + spatial, 2 + 2 * spatial)))  # (N, *out, C)
    return pooled.permute(0, spatial + 1, *range(1, spatial + 1))


def max_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1) -> Tensor:
    """Maximum over each window. Shape: (N, C, H, W) -> (N, C, H_out, W_out); stride defaults to kernel_size.

    :math:`y_{n,c,i,j} = \\max_{p,q} x_{n,c,\\, i s + p d,\\, j s + q d}` (padding counts as :math:`-\\infty`).
    The gradient goes to the first maximum of each window in row-major order, as in PyTorch.
    """
    return _pool(x, kernel_size, stride, padding, dilation, 2, "max_pool2d", "max")


def max_pool1d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1) -> Tensor:
    """Maximum over each window. Shape: (N, C, L) -> (N, C, L_out)."""
    return _pool(x, kernel_size, stride, padding, dilation, 1, "max_pool1d", "max")


def avg_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """Mean over each window (zero padding counts, as PyTorch's default). Shape: (N, C, H, W) -> (N, C, H', W')."""
    return _pool(x, kernel_size, stride, padding, 1, 2, "avg_pool2d", "mean")


def avg_pool1d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Tensor:
    """Mean over each window. Shape: (N, C, L) -> (N, C, L_out)."""
    return _pool(x, kernel_size, stride, padding, 1, 1, "avg_pool1d", "mean")


def adaptive_avg_pool2d(x: Any, output_size: int | Sequence[int | None]) -> Tensor:
    """Average over PyTorch's adaptive bins so the output is ``output_size``. Shape: (N, C, H, W) -> (N, C, oH, oW).

    Bin ``i`` along an axis of length ``n`` covers ``[floor(i n / o), ceil((i + 1) n / o))``.
    """
    x = as_tensor(x)
    if x.ndim != 4:
        raise ShapeError(f"adaptive_avg_pool2d: expected input (N, C, H, W), got shape {x.shape}")
    given = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    sizes = tuple(n if o is None else int(o) for o, n in zip(given, x.shape[2:]))
    if len(sizes) != 2 or any(o < 1 for o in sizes):
        raise ArgumentError(f"adaptive_avg_pool2d: output_size must be positive, got {output_size!r}")
    height, width = x.shape[2:]
    if height % sizes[0] == 0 and width % sizes[1] == 0:
        return avg_pool2d(x, (height // sizes[0], width // sizes[1]))
    rows = []
    for i in range(sizes[0]):
        top, bottom = (i * height) // sizes[0], -((-(i + 1) * height) // sizes[0])
        cells = []
        for j in range(sizes[1]):
            left, right = (j * width) // sizes[1], -((-(j + 1) * width) // sizes[1])
            cells.append(x[:, :, top:bottom, left:right].mean(axis=(2, 3)))
        rows.append(fn.stack(cells, axis=-1))
    return fn.stack(rows, axis=-2)


# ---------------------------------------------------------------------------------------------------
# Regularization and normalization
# ---------------------------------------------------------------------------------------------------
def dropout(x: Any, p: float = 0.5, training: bool = True, generator: np.random.Generator | None = None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` (inverted dropout).

    The mask comes from ``generator`` (default: the global one seeded by :func:`chainrule.manual_seed`).
    """
    p = check.real("dropout", "p", p, 0.0, 1.0)
    x = as_tensor(x)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    rng = generator or default_generator()
    keep = rng.random(x.shape, dtype=np.float32) >= p
    return x * (keep.astype(x.dtype) * (1.0 / (1.0 - p)))


def batch_norm(
    x: Any,
    running_mean: Any,
    running_var: Any,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each channel (axis 1) by batch statistics (training) or running statistics (eval).

    :math:`y = \\frac{x - \\mu}{\\sqrt{\\sigma^2 + \\epsilon}} \\gamma + \\beta`; in training the running
    statistics are updated in place: ``running = (1 - momentum) running + momentum batch`` (unbiased variance).
    Shape: (N, C) or (N, C, *spatial).
    """
    x = as_tensor(x)
    if x.ndim < 2:
        raise ShapeError(f"batch_norm: expected input (N, C, ...), got shape {x.shape}")
    axes = (0, *range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if training:
        count = x.data.size // x.shape[1]
        if count < 2:
            raise ShapeError(f"batch_norm: training needs more than one value per channel, got input shape {x.shape}")
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        var = (centered * centered).mean(axis=axes, keepdims=True)
        if running_mean is not None:
            rm, rv = as_tensor(running_mean), as_tensor(running_var)
            rm.data *= 1 - momentum
            rm.data += momentum * mean.data.reshape(-1)
            rv.data *= 1 - momentum
            rv.data += momentum * var.data.reshape(-1) * (count / (count - 1))
            rm._mark_modified("batch_norm's running mean update")
            rv._mark_modified("batch_norm's running variance update")
    else:
        if running_mean is None:
            raise ArgumentError("batch_norm: evaluation needs running_mean and running_var")
        mean = as_tensor(running_mean).reshape(shape)
        var = as_tensor(running_var).reshape(shape)
        centered = x - mean
    out = centered * (var + eps) ** -0.5
    if weight is not None:
        out = out * as_tensor(weight).reshape(shape)
    if bias is not None:
        out = out + as_tensor(bias).reshape(shape)
    return out


def layer_norm(
    x: Any, normalized_shape: Sequence[int], weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Tensor:
    """Normalize over the trailing ``normalized_shape`` axes of each sample, then scale and shift."""
    x = as_tensor(x)
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(normalized_shape) :] != normalized_shape:
        raise ShapeError(f"layer_norm: input of shape {x.shape} does not end with normalized_shape {normalized_shape}")
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    centered = x - x.mean(axis=axes, keepdims=True)
    var = (centered * centered).mean(axis=axes, keepdims=True)
    out = centered * (var + eps) ** -0.5
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def embedding(indices: Any, weight: Any, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` picked by integer ``indices``. Shape: indices (*), weight (V, D) -> (*, D)."""
    idx = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
    weight = as_tensor(weight)
    if idx.dtype.kind not in "iu":
        raise DTypeError(f"embedding: indices must be integers, got {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= weight.shape[0]):
        raise ShapeError(
            f"embedding: indices must be in [0, {weight.shape[0] - 1}] for {weight.shape[0]} embeddings, "
            f"got values from {idx.min()} to {idx.max()}"
        )
    if padding_idx is not None:
        keep = (idx != padding_idx)[..., None]
        return weight[idx] * keep.astype(weight.dtype)
    return weight[idx]


def one_hot(labels: Any, num_classes: int, dtype: Any = np.float32) -> Tensor:
    """Labels (*) as one-hot rows (*, num_classes)."""
    labels = labels.data if isinstance(labels, Tensor) else np.asarray(labels)
    check.labels_in_range("one_hot", labels, num_classes)
    return _wrap(np.eye(num_classes, dtype=dtype)[labels])


# ---------------------------------------------------------------------------------------------------
# The sigmoid family normalized to slope 1 at the origin
# ---------------------------------------------------------------------------------------------------
def sigmoid_family() -> dict[str, Callable[[Any], Tensor]]:
    """Sigmoid-shaped functions scaled to slope 1 at the origin, by name, for plotting and comparison.

    Each maps 0 to 0 and has derivative 1 there; they differ in how fast they saturate:

    - ``logistic``: :math:`4\\sigma(x) - 2`, i.e. :math:`2\\tanh(x/2)` (range ±2)
    - ``tanh``: :math:`\\tanh x`
    - ``arctan``: :math:`\\arctan x` (range ±π/2)
    - ``erf``: :math:`\\frac{\\sqrt\\pi}{2}\\operatorname{erf}(x)` (range ±√π/2)
    - ``algebraic``: :math:`x/\\sqrt{1+x^2}`
    - ``softsign``: :math:`x/(1+|x|)`
    - ``gudermannian``: :math:`\\operatorname{gd}(x) = 2\\arctan(\\tanh(x/2))` (range ±π/2)

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule.nn.functional import sigmoid_family
    >>> sorted(sigmoid_family())
    ['algebraic', 'arctan', 'erf', 'gudermannian', 'logistic', 'softsign', 'tanh']
    """

    def logistic(x: Any) -> Tensor:
        return 4.0 * sigmoid(x) - 2.0

    def erf_scaled(x: Any) -> Tensor:
        return fn.erf(x) * (math.sqrt(math.pi) / 2.0)

    def algebraic(x: Any) -> Tensor:
        x = as_tensor(x)
        return x * (1.0 + x * x) ** -0.5

    def gudermannian(x: Any) -> Tensor:
        return 2.0 * fn.atan(tanh(as_tensor(x) * 0.5))

    return {
        "logistic": logistic,
        "tanh": tanh,
        "arctan": fn.atan,
        "erf": erf_scaled,
        "algebraic": algebraic,
        "softsign": softsign,
        "gudermannian": gudermannian,
    }


# ---------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------
def _reduce(loss: Tensor, reduction: str, name: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    check.loss_options(name, reduction=reduction)  # names the options and the value
    raise ArgumentError(f"{name}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def mse_loss(prediction: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error :math:`\\frac{1}{n}\\sum (\\hat y - y)^2`. Input and target have the same shape."""
    check.loss_options("mse_loss", reduction=reduction)
    prediction, target = as_tensor(prediction), as_tensor(target)
    check.same_shape("mse_loss", prediction, target)
    check.not_empty("mse_loss", prediction)
    diff = prediction - target
    return _reduce(diff * diff, reduction, "mse_loss")


def l1_loss(prediction: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean absolute error :math:`\\frac{1}{n}\\sum |\\hat y - y|`."""
    check.loss_options("l1_loss", reduction=reduction)
    prediction, target = as_tensor(prediction), as_tensor(target)
    check.same_shape("l1_loss", prediction, target)
    check.not_empty("l1_loss", prediction)
    return _reduce(fn.abs(prediction - target), reduction, "l1_loss")


def huber_loss(prediction: Any, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Huber loss: :math:`\\tfrac12 d^2` for :math:`|d| \\le \\delta`, else :math:`\\delta(|d| - \\tfrac12\\delta)`.

    ``delta`` is positive; ``delta=inf`` is half the squared error everywhere (PyTorch's value).
    """
    delta = check.loss_options("huber_loss", reduction=reduction, delta=delta)["delta"]
    prediction, target = as_tensor(prediction), as_tensor(target)
    check.same_shape("huber_loss", prediction, target)
    check.not_empty("huber_loss", prediction)
    diff = fn.abs(prediction - target)
    clipped = fn.minimum(diff, delta)
    # 0.5 c (2d - c) is 0.5 d^2 where d <= delta and delta (d - 0.5 delta) beyond. Unlike
    # 0.5 c^2 + delta (d - c) it has no term in delta whose gradient must cancel: that form lost the gradient
    # for a large delta in float32 (3 + 1e10 - 1e10 = 0) and gave inf * 0 = NaN for delta = inf.
    return _reduce(0.5 * clipped * (2.0 * diff - clipped), reduction, "huber_loss")


def _apply_weight(loss: Tensor, weight: Any) -> Tensor:
    return loss if weight is None else loss * as_tensor(weight)


def binary_cross_entropy(probabilities: Any, target: Any, weight: Any = None, reduction: str = "mean") -> Tensor:
    """:math:`-[y \\log p + (1 - y) \\log(1 - p)]` for probabilities ``p`` in [0, 1] (logs clamped at -100).

    Prefer :func:`binary_cross_entropy_with_logits`: it is exact for large logits.
    """
    check.loss_options("binary_cross_entropy", reduction=reduction, weight=weight)
    p, target = as_tensor(probabilities), as_tensor(target)
    check.same_shape("binary_cross_entropy", p, target)
    check.not_empty("binary_cross_entropy", p)
    data = p.data
    if type(data) is np.ndarray:  # NumPy's own methods: the loss's hot path
        outside = data.size and (data.min() < 0 or data.max() > 1)
    else:  # the library that holds the probabilities
        xp = get_namespace(data)
        outside = data.size and (bool(xp.min(data) < 0) or bool(xp.max(data) > 1))
    if outside:
        raise ArgumentError(
            "binary_cross_entropy: input must be probabilities in [0, 1]; for logits use "
            "binary_cross_entropy_with_logits"
        )
    loss = apply(OPS["binary_cross_entropy"], p, target)  # finite gradient at p = 0 and 1, as PyTorch
    return _reduce(_apply_weight(loss, weight), reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(
    logits: Any, target: Any, weight: Any = None, reduction: str = "mean", pos_weight: Any = None
) -> Tensor:
    """Sigmoid and binary cross-entropy in one stable expression: :math:`\\mathrm{softplus}(z) - y z`.

    With ``pos_weight`` :math:`w_+`: :math:`(1 + (w_+ - 1) y)\\,\\mathrm{softplus}(-z) + (1 - y) z`.
    """
    check.loss_options("binary_cross_entropy_with_logits", reduction=reduction, weight=weight, pos_weight=pos_weight)
    z, target = as_tensor(logits), as_tensor(target)
    check.same_shape("binary_cross_entropy_with_logits", z, target)
    check.not_empty("binary_cross_entropy_with_logits", z)
    if pos_weight is None:
        loss = softplus(z) - target * z
    else:
        scale = 1.0 + (as_tensor(pos_weight) - 1.0) * target
        loss = scale * softplus(-z) + (1.0 - target) * z
    return _reduce(_apply_weight(loss, weight), reduction, "binary_cross_entropy_with_logits")


def _class_axis_last(x: Tensor) -> Tensor:
    """(N, C, d1, ...) -> (N, d1, ..., C), so that classes are the last axis."""
    return x if x.ndim <= 2 else x.permute(0, *range(2, x.ndim), 1)


def _sample_weights(
    labels: np.ndarray, classes: int, weight: Any, ignore_index: int, dtype: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Flattened labels (ignored ones replaced by 0) and each sample's weight: its class weight, 0 if ignored."""
    flat_labels = labels.reshape(-1)
    keep = flat_labels != ignore_index
    if weight is None and keep.all():  # the common case (a copy: the graph must not see later edits)
        return flat_labels.copy(), np.ones(flat_labels.size, dtype=dtype)
    safe = np.where(keep, flat_labels, 0)
    w = np.ones(classes, dtype=dtype) if weight is None else as_tensor(weight).data.astype(dtype)
    return safe, np.where(keep, w[safe], 0).astype(dtype)


def nll_loss(
    log_probs: Any, target: Any, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"
) -> Tensor:
    """Negative log-likelihood of class indices: :math:`-w_{y}\\log p_{y}`, averaged by the weights.

    Shape: log_probs (N, C) or (N, C, d1, ...), target (N) or (N, d1, ...) of class indices.
    """
    check.loss_options("nll_loss", reduction=reduction, class_weight=weight, ignore_index=ignore_index)
    log_probs = as_tensor(log_probs)
    labels = target.data if isinstance(target, Tensor) else np.asarray(target)
    check.class_target("nll_loss", log_probs, labels)
    classes = log_probs.shape[1] if log_probs.ndim > 1 else log_probs.shape[0]
    check.labels_in_range("nll_loss", labels, classes, ignore_index)
    check.class_weight("nll_loss", weight, classes)
    flat = _class_axis_last(log_probs).reshape(-1, classes)  # (M, C)
    safe, sample_weight = _sample_weights(labels, classes, weight, ignore_index, log_probs.dtype)
    picked = flat[np.arange(safe.size), safe]  # (M,)
    losses = -picked * sample_weight
    if reduction == "mean":
        return losses.sum() * (1.0 / sample_weight.sum()) if sample_weight.sum() else losses.sum() * np.nan
    if reduction == "none":
        return losses.reshape(labels.shape)
    return _reduce(losses, reduction, "nll_loss")


def cross_entropy(
    logits: Any,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy from logits, with class-index or class-probability targets.

    For index targets :math:`y`: :math:`-w_y \\log \\mathrm{softmax}(z)_y`, computed with log-sum-exp so it is
    finite for any logits. With ``label_smoothing`` :math:`\\epsilon` the target is mixed with the uniform
    distribution: :math:`(1-\\epsilon)\\,\\mathrm{onehot}(y) + \\epsilon / C`.

    Shape: logits (N, C) or (N, C, d1, ...); target (N) / (N, d1, ...) of indices, or probabilities of the
    logits' shape.

    Examples
    --------
    >>> import chainrule as cr
    >>> import chainrule.nn.functional as F
    >>> round(F.cross_entropy(cr.tensor([[2.0, 0.0, 0.0]]), cr.tensor([0])).item(), 4)
    0.2395
    """
    logits = as_tensor(logits)
    label_smoothing = check.loss_options(
        "cross_entropy",
        reduction=reduction,
        class_weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )["label_smoothing"]
    if logits.ndim == 0:
        raise ShapeError("cross_entropy: logits must have a class axis, got a 0-d tensor (shape ())")
    class_axis = 1 if logits.ndim > 1 else 0
    classes = logits.shape[class_axis]
    check.class_weight("cross_entropy", weight, classes)
    target_data = target.data if isinstance(target, Tensor) else np.asarray(target)
    if target_data.dtype.kind == "f" or label_smoothing:
        log_probs = log_softmax(logits, axis=class_axis)
    if target_data.dtype.kind == "f":  # class probabilities
        probs = as_tensor(target)
        check.same_shape("cross_entropy", logits, probs)
        check.not_empty("cross_entropy", logits)
        if label_smoothing:
            probs = probs * (1.0 - label_smoothing) + label_smoothing / classes
        terms = log_probs * probs
        if weight is not None:
            shape = (1, classes) + (1,) * (logits.ndim - 2) if logits.ndim > 1 else (classes,)
            terms = terms * as_tensor(weight).reshape(shape)
        losses = -terms.sum(axis=class_axis)
        return _reduce(losses, reduction, "cross_entropy")
    check.class_target("cross_entropy", logits, target_data)
    check.labels_in_range("cross_entropy", target_data, classes, ignore_index)
    if not label_smoothing:
        return _index_cross_entropy(logits, target_data, weight, ignore_index, reduction)
    nll = nll_loss(log_probs, target_data, weight, ignore_index, reduction)
    # The smoothing term: the mean over classes of -w_c log p_c, averaged like the nll term.
    per_class = log_probs
    if weight is not None:
        shape = (1, classes) + (1,) * (logits.ndim - 2) if logits.ndim > 1 else (classes,)
        per_class = per_class * as_tensor(weight).reshape(shape)
    keep = (target_data != ignore_index).astype(logits.dtype)
    smooth = -per_class.sum(axis=class_axis) * keep  # (N, ...)
    if reduction == "mean":
        if weight is None:
            denominator = keep.sum()
        else:
            w = as_tensor(weight).data
            denominator = (w[np.where(target_data != ignore_index, target_data, 0)] * keep).sum()
        smooth = smooth.sum() * (1.0 / denominator)
    else:
        smooth = _reduce(smooth, reduction, "cross_entropy")
    return nll * (1.0 - label_smoothing) + smooth * (label_smoothing / classes)


def _index_cross_entropy(logits: Tensor, labels: np.ndarray, weight: Any, ignore_index: int, reduction: str) -> Tensor:
    """Cross-entropy of class indices as one fused node (``ops.SoftmaxCrossEntropy``)."""
    classes = logits.shape[1] if logits.ndim > 1 else logits.shape[0]
    flat = logits if logits.ndim == 2 else _class_axis_last(logits).reshape(-1, classes)  # (M, C)
    safe, sample_weight = _sample_weights(labels, classes, weight, ignore_index, flat.dtype)
    total = sample_weight.sum()
    if reduction == "mean" and total:
        sample_weight = sample_weight / total
    losses = apply(OPS["softmax_cross_entropy"], flat, labels=safe, weights=sample_weight, reduce=reduction != "none")
    if reduction == "mean" and not total:  # every sample ignored: the mean is 0 / 0 (NaN), the gradient 0, as PyTorch
        return losses + np.nan
    return losses.reshape(labels.shape) if reduction == "none" else losses


def multi_margin_loss(
    scores: Any, target: Any, p: int = 1, margin: float = 1.0, weight: Any = None, reduction: str = "mean"
) -> Tensor:
    """Multi-class hinge (max-margin) loss: :math:`\\frac{1}{C}\\sum_{i \\ne y} \\max(0, m - s_y + s_i)^p`.

    Shape: scores (N, C), target (N,) of class indices. With two classes and ``scores = [0, s]`` this is the
    max-margin loss of the classic micrograd moons demo, ``relu(1 - y s)``.
    """
    options = check.loss_options("multi_margin_loss", reduction=reduction, p=p, margin=margin, class_weight=weight)
    p, margin = options["p"], options["margin"]
    scores = as_tensor(scores)
    labels = target.data if isinstance(target, Tensor) else np.asarray(target)
    if scores.ndim != 2:
        raise ShapeError(f"multi_margin_loss: expected scores (N, C), got shape {scores.shape}")
    check.class_target("multi_margin_loss", scores, labels)
    check.labels_in_range("multi_margin_loss", labels, scores.shape[1])
    check.class_weight("multi_margin_loss", weight, scores.shape[1])
    rows = np.arange(labels.shape[0])
    correct = scores[rows, labels].reshape(-1, 1)  # (N, 1)
    hinge = relu(margin - correct + scores)  # (N, C)
    if p == 2:
        hinge = hinge * hinge
    if weight is not None:
        hinge = hinge * as_tensor(weight).data[labels].reshape(-1, 1)
    others = np.ones(scores.shape, dtype=scores.dtype)
    others[rows, labels] = 0  # the true class does not count against itself
    losses = (hinge * others).sum(axis=1) * (1.0 / scores.shape[1])
    return _reduce(losses, reduction, "multi_margin_loss")
