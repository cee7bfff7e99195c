"""The op table the engine tests are parametrized over, and the helpers that check one entry.

Every differentiable op of the public API appears once in :data:`OP_CASES` with
- ``fn``: the chainrule call, taking tensors;
- ``ref``: the same function in NumPy (float64), the forward reference;
- ``torch_fn``: the same function in PyTorch, for parity (None where PyTorch has no equivalent);
- ``inputs``: a hypothesis strategy drawing the input arrays (and the op's attributes, bound into the
  three functions) away from kinks (relu at 0, ties in max) so that central differences are valid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np

import chainrule as cr
from chainrule.tensor import apply

try:  # PyTorch is the parity reference; CI installs it, a bare checkout may not have it
    import torch
except ImportError:  # pragma: no cover - exercised only without the parity extra
    torch = None

TORCH_MISSING = "PyTorch is not installed (pip install -e '.[parity]'); parity tests need it"


@dataclass(frozen=True)
class Drawn:
    """One drawn example: input arrays and the three functions with the op's attributes bound."""

    arrays: tuple[np.ndarray, ...]
    fn: Callable[..., Any]
    ref: Callable[..., Any]
    torch_fn: Callable[..., Any] | None


@dataclass(frozen=True)
class OpCase:
    name: str
    inputs: st.SearchStrategy[Drawn]


# -- value generation ----------------------------------------------------------------------------------
def _values(seed: int, shape: tuple[int, ...], domain: str) -> np.ndarray:
    """Float64 values of ``shape`` drawn from ``domain``, kept away from the kinks that domain names."""
    return np.asarray(_raw_values(seed, shape, domain), dtype=np.float64)


def _raw_values(seed: int, shape: tuple[int, ...], domain: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape, dtype=np.int64))
    if domain == "real":
        return rng.uniform(-2.0, 2.0, shape)
    if domain == "positive":
        return rng.uniform(0.3, 2.5, shape)
    if domain == "nonzero":  # |x| >= 0.2: no kink of relu/abs/leaky_relu/elu within eps
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape)
    if domain == "distinct":  # all values at least 0.1 apart: no ties for max/min/sort-like ops
        return (rng.permutation(size).reshape(shape) * 0.25 - size * 0.125 + rng.uniform(0, 0.1, shape)).astype(
            np.float64
        )
    if domain == "unit":
        return rng.uniform(-0.9, 0.9, shape)
    raise ValueError(domain)


seeds = st.integers(0, 2**32 - 1)
small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def _unary(
    fn: Callable,
    ref: Callable,
    torch_fn: Callable | None,
    domain: str = "real",
    shapes: st.SearchStrategy = small_shapes,
) -> st.SearchStrategy[Drawn]:
    return st.builds(lambda shape, seed: Drawn((_values(seed, shape, domain),), fn, ref, torch_fn), shapes, seeds)


@st.composite
def _binary(
    draw: Any, fn: Callable, ref: Callable, torch_fn: Callable | None, domains: tuple[str, str] = ("real", "real")
) -> Drawn:
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
    a = _values(draw(seeds), shapes.input_shapes[0], domains[0])
    b = _values(draw(seeds), shapes.input_shapes[1], domains[1])
    return Drawn((a, b), fn, ref, torch_fn)


@st.composite
def _separated_pair(draw: Any, fn: Callable, ref: Callable, torch_fn: Callable | None) -> Drawn:
    """Two broadcastable arrays that never tie (for maximum/minimum): ``a`` on the grid 0.1k + 0.025,
    ``b`` on 0.1k - 0.025, so every difference is at least 0.05."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
    a = np.round(_values(draw(seeds), shapes.input_shapes[0], "real"), 1) + 0.025
    b = np.round(_values(draw(seeds), shapes.input_shapes[1], "real"), 1) - 0.025
    return Drawn((a, b), fn, ref, torch_fn)


@st.composite
def _reduction(
    draw: Any,
    fn: Callable,
    ref: Callable,
    torch_fn: Callable | None,
    domain: str = "real",
    allow_tuple: bool = True,
    min_side: int = 1,
) -> Drawn:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=min_side, max_side=4))
    options: list[Any] = [None, *range(-len(shape), len(shape))]
    axis = draw(
        st.sampled_from(options) | (hnp.valid_tuple_axes(len(shape), min_size=1) if allow_tuple else st.nothing())
    )
    keepdims = draw(st.booleans())
    x = _values(draw(seeds), shape, domain)
    return Drawn(
        (x,),
        lambda a: fn(a, axis, keepdims),
        lambda a: ref(a, axis, keepdims),
        None if torch_fn is None else (lambda a: torch_fn(a, axis, keepdims)),
    )


@st.composite
def _softmax_like(draw: Any, fn: Callable, ref: Callable, torch_fn: Callable) -> Drawn:
    shape = draw(nonscalar_shapes)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    x = _values(draw(seeds), shape, "real")
    return Drawn((x,), lambda a: fn(a, axis), lambda a: ref(a, axis), lambda a: torch_fn(a, axis))


@st.composite
def _matmul(draw: Any) -> Drawn:
    m, k, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["matrix", "vec-mat", "mat-vec", "vec-vec", "batched"]))
    if kind == "matrix":
        shapes = [(m, k), (k, n)]
    elif kind == "vec-mat":
        batch = draw(st.sampled_from([(), (2,)]))
        shapes = [(k,), batch + (k, n)]
    elif kind == "mat-vec":
        batch = draw(st.sampled_from([(), (2,)]))
        shapes = [batch + (m, k), (k,)]
    elif kind == "vec-vec":
        shapes = [(k,), (k,)]
    else:
        batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=2, max_side=2))
        shapes = [batch.input_shapes[0] + (m, k), batch.input_shapes[1] + (k, n)]
    a = _values(draw(seeds), shapes[0], "real")
    b = _values(draw(seeds), shapes[1], "real")
    return Drawn((a, b), cr.matmul, np.matmul, None if torch is None else torch.matmul)


@st.composite
def _where(draw: Any) -> Drawn:
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3))
    rng = np.random.default_rng(draw(seeds))
    condition = np.asarray(rng.random(shapes.input_shapes[0]) > 0.5)
    a = _values(draw(seeds), shapes.input_shapes[1], "real")
    b = _values(draw(seeds), shapes.input_shapes[2], "real")
    torch_fn = None if torch is None else (lambda x, y: torch.where(torch.from_numpy(condition), x, y))
    return Drawn((a, b), lambda x, y: cr.where(condition, x, y), lambda x, y: np.where(condition, x, y), torch_fn)


@st.composite
def _reshape(draw: Any) -> Drawn:
    shape = draw(small_shapes)
    size = int(np.prod(shape, dtype=np.int64))
    divisors = [d for d in range(1, size + 1) if size % d == 0]
    first = draw(st.sampled_from(divisors))
    target = draw(st.sampled_from([(size,), (first, -1), (-1, first, 1), (1, size)]))
    x = _values(draw(seeds), shape, "real")
    torch_fn = None if torch is None else (lambda a: a.reshape(target))
    return Drawn((x,), lambda a: a.reshape(target), lambda a: a.reshape(target), torch_fn)


@st.composite
def _permute(draw: Any) -> Drawn:
    shape = draw(nonscalar_shapes)
    axes = tuple(draw(st.permutations(range(len(shape)))))
    x = _values(draw(seeds), shape, "real")
    torch_fn = None if torch is None else (lambda a: a.permute(*axes))
    return Drawn((x,), lambda a: a.permute(*axes), lambda a: np.transpose(a, axes), torch_fn)


@st.composite
def _transpose(draw: Any) -> Drawn:
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, max_side=4))
    d0, d1 = draw(st.integers(0, len(shape) - 1)), draw(st.integers(-len(shape), len(shape) - 1))
    x = _values(draw(seeds), shape, "real")
    torch_fn = None if torch is None else (lambda a: a.transpose(d0, d1))
    return Drawn((x,), lambda a: a.transpose(d0, d1), lambda a: np.swapaxes(a, d0, d1), torch_fn)


@st.composite
def _broadcast_to(draw: Any, expand: bool = False) -> Drawn:
    target = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3))
    kept = draw(st.integers(0, len(target)))  # the source has the trailing `kept` axes, each 1 or full
    source = tuple(draw(st.sampled_from([1, n])) for n in target[len(target) - kept :])
    x = _values(draw(seeds), source, "real")
    if expand:
        torch_fn = None if torch is None else (lambda a: a.expand(*target))
        return Drawn((x,), lambda a: a.expand(*target), lambda a: np.broadcast_to(a, target), torch_fn)
    torch_fn = None if torch is None else (lambda a: torch.broadcast_to(a, target))
    return Drawn((x,), lambda a: cr.broadcast_to(a, target), lambda a: np.broadcast_to(a, target), torch_fn)


@st.composite
def _squeeze_unsqueeze(draw: Any) -> Drawn:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=2))
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    x = _values(draw(seeds), shape, "real")
    torch_fn = None if torch is None else (lambda a: a.unsqueeze(axis).squeeze())
    return Drawn(
        (x,),
        lambda a: a.unsqueeze(axis).squeeze(),
        lambda a: np.squeeze(np.expand_dims(a, axis)),
        torch_fn,
    )


@st.composite
def _flatten(draw: Any) -> Drawn:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3))
    start = draw(st.integers(0, len(shape) - 1))
    x = _values(draw(seeds), shape, "real")
    ref_shape = shape[:start] + (-1,)
    torch_fn = None if torch is None else (lambda a: a.flatten(start))
    return Drawn((x,), lambda a: a.flatten(start), lambda a: a.reshape(ref_shape), torch_fn)


@st.composite
def _getitem(draw: Any) -> Drawn:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    kind = draw(st.sampled_from(["basic", "integer", "boolean", "repeated"]))
    if kind == "basic":
        index = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    elif kind == "integer":
        index = draw(
            hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=3))
        )
    elif kind == "boolean":
        index = np.random.default_rng(draw(seeds)).random(shape) > 0.4
    else:  # the same row several times: gradients must add up (np.add.at semantics)
        index = (np.array([0, shape[0] - 1, 0, 0]),)
    x = _values(draw(seeds), shape, "real")
    torch_index = index
    if torch is not None:
        parts = index if isinstance(index, tuple) else (index,)
        torch_index = tuple(torch.from_numpy(p) if isinstance(p, np.ndarray) else p for p in parts)
    parts = index if isinstance(index, tuple) else (index,)
    negative_step = any(isinstance(p, slice) and (p.step or 1) < 0 for p in parts)
    torch_fn = None if torch is None or negative_step else (lambda a: a[torch_index])  # torch: no negative steps
    return Drawn((x,), lambda a: a[index], lambda a: a[index], torch_fn)


@st.composite
def _concatenate(draw: Any, stack: bool = False) -> Drawn:
    base = list(draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3)))
    count = draw(st.integers(1, 3))
    axis = draw(st.integers(-len(base), len(base) - 1))
    shapes = []
    for _ in range(count):
        shape = list(base)
        if not stack:
            shape[axis] = draw(st.integers(1, 3))
        shapes.append(tuple(shape))
    arrays = tuple(_values(draw(seeds), s, "real") for s in shapes)
    if stack:
        torch_fn = None if torch is None else (lambda *a: torch.stack(a, axis))
        return Drawn(arrays, lambda *a: cr.stack(a, axis), lambda *a: np.stack(a, axis), torch_fn)
    torch_fn = None if torch is None else (lambda *a: torch.cat(a, axis))
    return Drawn(arrays, lambda *a: cr.concatenate(a, axis), lambda *a: np.concatenate(a, axis), torch_fn)


@st.composite
def _split(draw: Any) -> Drawn:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=2, max_side=5))
    axis = draw(st.integers(0, len(shape) - 1))
    size = draw(st.integers(1, shape[axis]))
    x = _values(draw(seeds), shape, "real")
    sections = list(range(size, shape[axis], size))

    def ref(a: np.ndarray) -> tuple:
        return tuple(np.split(a, sections, axis))

    torch_fn = None if torch is None else (lambda a: torch.split(a, size, axis))
    return Drawn((x,), lambda a: tuple(cr.split(a, size, axis)), ref, torch_fn)


@st.composite
def _pad(draw: Any) -> Drawn:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3))
    widths = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in shape)
    value = draw(st.sampled_from([0.0, -1.5]))
    x = _values(draw(seeds), shape, "real")
    flat = [w for pair in reversed(widths) for w in pair]  # PyTorch pads the last axis first
    torch_fn = None if torch is None else (lambda a: torch.nn.functional.pad(a, flat, value=value))
    return Drawn((x,), lambda a: cr.pad(a, widths, value), lambda a: np.pad(a, widths, constant_values=value), torch_fn)


@st.composite
def _clip(draw: Any) -> Drawn:
    shape = draw(small_shapes)
    low, high = draw(st.sampled_from([(-0.5, 0.7), (None, 0.3), (-0.25, None)]))
    x = _values(draw(seeds), shape, "real")
    # keep every element at least 0.05 away from the bounds (the kinks)
    for bound in (low, high):
        if bound is not None:
            x = np.where(np.abs(x - bound) < 0.05, x + 0.1, x)
    torch_fn = None if torch is None else (lambda a: torch.clamp(a, low, high))
    return Drawn((x,), lambda a: a.clip(low, high), lambda a: np.clip(a, low, high), torch_fn)


@st.composite
def _pow_scalar(draw: Any) -> Drawn:
    shape = draw(small_shapes)
    exponent = draw(st.sampled_from([2, 3, 0.5, -1.5, 1.7]))
    x = _values(draw(seeds), shape, "positive")
    torch_fn = None if torch is None else (lambda a: a**exponent)
    return Drawn((x,), lambda a: a**exponent, lambda a: a**exponent, torch_fn)


# -- reference reductions ------------------------------------------------------------------------------
def _torch_dims(a: Any, axis: Any) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(a.ndim))
    return tuple(d % a.ndim for d in ((axis,) if isinstance(axis, int) else axis))


def _np_var(a: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    return np.var(a, axis=axis, ddof=1, keepdims=keepdims)


def _np_logsumexp(a: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis if axis is not None else tuple(range(a.ndim)))


def _np_softmax(a: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _torch_prod(a: Any, axis: Any, keepdims: bool) -> Any:
    out = a
    for d in sorted(_torch_dims(a, axis), reverse=True):
        out = out.prod(dim=d, keepdim=keepdims)
    return out


def _t(name: str) -> Callable | None:
    """A PyTorch function by dotted name, or None when PyTorch is absent."""
    if torch is None:
        return None
    target: Any = torch
    for part in name.split("."):
        target = getattr(target, part)
    return target


@st.composite
def _linear(draw: Any) -> Drawn:
    """The fused ``x @ weightᵀ + bias`` with and without bias, on 1-d to 3-d inputs."""
    batch = draw(st.sampled_from([(), (2,), (2, 3)]))
    n_in, n_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    x = _values(draw(seeds), batch + (n_in,), "real")
    w = _values(draw(seeds), (n_out, n_in), "real")
    if draw(st.booleans()):
        b = _values(draw(seeds), (n_out,), "real")
        torch_fn = None if torch is None else torch.nn.functional.linear
        return Drawn((x, w, b), cr.nn.functional.linear, lambda a, c, d: a @ c.T + d, torch_fn)
    torch_fn = None if torch is None else (lambda a, c: torch.nn.functional.linear(a, c))
    return Drawn((x, w), cr.nn.functional.linear, lambda a, c: a @ c.T, torch_fn)


def _window_geometry(draw: Any) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
    size = (draw(st.integers(3, 5)), draw(st.integers(3, 5)))
    geometry = {
        "kernel_size": (draw(st.integers(1, 2)), draw(st.integers(1, 3))),
        "stride": (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        "padding": (draw(st.integers(0, 1)), draw(st.integers(0, 1))),
        "dilation": (draw(st.integers(1, 2)), 1),
    }
    return size, geometry


def _np_unfold(x: np.ndarray, kernel_size, stride, padding, dilation) -> np.ndarray:
    """im2col written out with loops: (N, C, H, W) -> (N, OH, OW, C, KH, KW)."""
    x = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    oh = (x.shape[2] - dilation[0] * (kernel_size[0] - 1) - 1) // stride[0] + 1
    ow = (x.shape[3] - dilation[1] * (kernel_size[1] - 1) - 1) // stride[1] + 1
    out = np.empty((x.shape[0], oh, ow, x.shape[1], *kernel_size))
    for i, j, p, q in np.ndindex(oh, ow, *kernel_size):
        out[:, i, j, :, p, q] = x[:, :, i * stride[0] + p * dilation[0], j * stride[1] + q * dilation[1]]
    return out


@st.composite
def _unfold(draw: Any) -> Drawn:
    (h, w), g = _window_geometry(draw)
    x = _values(draw(seeds), (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w), "real")
    oh, ow = _np_unfold(x, **g).shape[1:3]

    def torch_fn(a: Any) -> Any:
        cols = torch.nn.functional.unfold(a, **g)  # (N, C*KH*KW, OH*OW)
        return cols.reshape(a.shape[0], a.shape[1], *g["kernel_size"], oh, ow).permute(0, 4, 5, 1, 2, 3)

    fn = lambda a: cr.nn.functional.unfold(a, **g)  # noqa: E731
    return Drawn((x,), fn, lambda a: _np_unfold(a, **g), None if torch is None else torch_fn)


@st.composite
def _fold(draw: Any) -> Drawn:
    """col2im, the adjoint of unfold: its reference is the transpose of the unfold matrix."""
    (h, w), g = _window_geometry(draw)
    input_shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), h, w)
    columns_shape = _np_unfold(np.zeros(input_shape), **g).shape
    cols = _values(draw(seeds), columns_shape, "real")
    n, oh, ow, c, kh, kw = columns_shape

    def ref(a: np.ndarray) -> np.ndarray:
        basis = np.eye(int(np.prod(input_shape))).reshape(-1, *input_shape)
        matrix = np.stack([_np_unfold(e, **g).ravel() for e in basis])  # (inputs, columns)
        return (matrix @ a.ravel()).reshape(input_shape)

    def torch_fn(a: Any) -> Any:
        stacked = a.permute(0, 3, 4, 5, 1, 2).reshape(n, c * kh * kw, oh * ow)
        return torch.nn.functional.fold(stacked, output_size=(h, w), **g)

    fn = lambda a: apply(cr.ops.OPS["fold"], a, input_shape=input_shape, **g)  # noqa: E731
    return Drawn((cols,), fn, ref, None if torch is None else torch_fn)


@st.composite
def _conv(draw: Any, spatial: int) -> Drawn:
    """Convolution (the ``conv`` primitive) with and without bias, 2-d or, on a height-1 image's geometry, 1-d."""
    (h, w), g = _window_geometry(draw)
    if spatial == 1:
        g = {name: value[1:] for name, value in g.items()}
    batch, channels, out_channels = (draw(st.integers(1, 2)) for _ in range(3))
    x = _values(draw(seeds), (batch, channels, h, w)[: 2 + spatial], "real")
    weight = _values(draw(seeds), (out_channels, channels, *g["kernel_size"]), "real")
    arrays = (x, weight) + ((_values(draw(seeds), (out_channels,), "real"),) if draw(st.booleans()) else ())
    attrs = {name: g[name] for name in ("stride", "padding", "dilation")}

    def ref(a: np.ndarray, wt: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        plane = a if spatial == 2 else a[:, :, None]
        geometry = {name: (1,) * (2 - spatial) + tuple(value) for name, value in g.items()}
        geometry["padding"] = (0,) * (2 - spatial) + tuple(g["padding"])
        cols = _np_unfold(plane, **geometry)  # (N, OH, OW, C, KH, KW)
        kernel = wt if spatial == 2 else wt[:, :, None]
        out = np.einsum("nijckl,ockl->noij", cols, kernel) + (0 if b is None else b[:, None, None])
        return out if spatial == 2 else out[:, :, 0]

    def torch_fn(a: Any, wt: Any, b: Any = None) -> Any:
        conv = torch.nn.functional.conv2d if spatial == 2 else torch.nn.functional.conv1d
        return conv(a, wt, b, **attrs)

    fn = lambda *a: apply(cr.ops.OPS["conv"], *a, **attrs)  # noqa: E731
    return Drawn(arrays, fn, ref, None if torch is None else torch_fn)


@st.composite
def _max_pool(draw: Any, two_by_two: bool = False) -> Drawn:
    """Max pooling over distinct values (no ties), with PyTorch's limit of padding at most half the kernel;
    ``two_by_two``: 2×2 windows of stride 2 (the compiled kernel's case, when numba is installed)."""
    kernel = (2, 2) if two_by_two else (draw(st.integers(1, 3)), draw(st.integers(2, 3)))
    g = {
        "kernel_size": kernel,
        "stride": (draw(st.integers(1, 2)), draw(st.integers(1, 3))),
        "padding": (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2))),
        "dilation": (draw(st.integers(1, 2)), 1),
    }
    if two_by_two:
        g = {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0), "dilation": (1, 1)}
    x = _values(draw(seeds), (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(5, 6)), 5), "distinct")

    def ref(a: np.ndarray) -> np.ndarray:
        widths = ((0, 0), (0, 0), *((p, p) for p in g["padding"]))
        padded = np.pad(a, widths, constant_values=-np.inf)
        windows = _np_unfold(padded, g["kernel_size"], g["stride"], (0, 0), g["dilation"])  # (N, OH, OW, C, KH, KW)
        return windows.max(axis=(4, 5)).transpose(0, 3, 1, 2)

    fn = lambda a: cr.nn.functional.max_pool2d(a, **g)  # noqa: E731
    torch_fn = None if torch is None else (lambda a: torch.nn.functional.max_pool2d(a, **g))
    return Drawn((x,), fn, ref, torch_fn)


@st.composite
def _softmax_cross_entropy(draw: Any) -> Drawn:
    """The fused loss primitive on its own: per-sample weights (0 marks an ignored sample), summed or not."""
    m, c = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    z = _values(draw(seeds), (m, c), "real") * 2
    rng = np.random.default_rng(draw(seeds))
    labels = rng.integers(0, c, m)
    weights = rng.choice([0.0, 0.5, 1.0, 2.0], m)
    reduce = draw(st.booleans())
    attrs = {"labels": labels, "weights": weights, "reduce": reduce}

    def ref(a: np.ndarray) -> np.ndarray:
        losses = weights * (_np_logsumexp(a, 1, False) - a[np.arange(m), labels])
        return losses.sum() if reduce else losses

    def torch_fn(a: Any) -> Any:
        losses = torch.nn.functional.cross_entropy(a, torch.from_numpy(labels), reduction="none")
        losses = losses * torch.from_numpy(weights)
        return losses.sum() if reduce else losses

    fn = lambda a: apply(cr.ops.OPS["softmax_cross_entropy"], a, **attrs)  # noqa: E731
    return Drawn((z,), fn, ref, None if torch is None else torch_fn)


@st.composite
def _lstm_cell(draw: Any) -> Drawn:
    """The fused LSTM step: gate pre-activations (N, 4H) and c_prev (N, H) -> (h_t, c_t, i, f, g, o, tanh c_t)."""
    n, h = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    gates = _values(draw(seeds), (n, 4 * h), "real")
    c_prev = _values(draw(seeds), (n, h), "real")

    def ref(z: np.ndarray, c: np.ndarray) -> np.ndarray:
        i, f, g, o = (
            _sigmoid(z[:, :h]),
            _sigmoid(z[:, h : 2 * h]),
            np.tanh(z[:, 2 * h : 3 * h]),
            _sigmoid(z[:, 3 * h :]),
        )
        c_new = f * c + i * g
        return np.stack([o * np.tanh(c_new), c_new, i, f, g, o, np.tanh(c_new)])

    def torch_fn(z: Any, c: Any) -> Any:
        i, f, g, o = z.sigmoid()[:, :h], z.sigmoid()[:, h : 2 * h], z[:, 2 * h : 3 * h].tanh(), z.sigmoid()[:, 3 * h :]
        c_new = f * c + i * g
        return torch.stack([o * c_new.tanh(), c_new, i, f, g, o, c_new.tanh()])

    fn = lambda z, c: apply(cr.ops.OPS["lstm_cell"], z, c)  # noqa: E731
    return Drawn((gates, c_prev), fn, ref, None if torch is None else torch_fn)


def _recurrent_steps(lib: Any, kind: str, x: Any, h0: Any, *rest: Any) -> Any:
    """The whole-layer recurrent primitives' output, step by step, in NumPy (``lib=np``) or PyTorch: the
    reference the op table checks ``lstm_layer``, ``gru_layer`` and ``rnn_layer`` against."""
    sigmoid = (lambda a: 1 / (1 + np.exp(-a))) if lib is np else torch.sigmoid
    stack = np.stack if lib is np else torch.stack
    if kind == "lstm":
        c, w_ih, w_hh, *bias = rest
    else:
        w_ih, w_hh, *bias = rest
    size, h, steps, cells = h0.shape[1], h0, [], []
    for t in range(x.shape[0]):
        if kind == "gru":
            a = x[t] @ w_ih.T + (bias[0] if bias else 0)
            m = h @ w_hh.T + (bias[1] if bias else 0)
            r, z = sigmoid(a[:, :size] + m[:, :size]), sigmoid(a[:, size : 2 * size] + m[:, size : 2 * size])
            n = lib.tanh(a[:, 2 * size :] + r * m[:, 2 * size :])
            h = n + z * (h - n)
            steps.append(h)
            continue
        pre = x[t] @ w_ih.T + h @ w_hh.T + (bias[0] if bias else 0)
        if kind == "lstm":
            i, f = sigmoid(pre[:, :size]), sigmoid(pre[:, size : 2 * size])
            g, o = lib.tanh(pre[:, 2 * size : 3 * size]), sigmoid(pre[:, 3 * size :])
            c = f * c + i * g
            h = o * lib.tanh(c)
            steps.append(h)
            cells.append(c)
        else:
            h = lib.tanh(pre) if kind == "tanh" else pre * (pre > 0)
            steps.append(h)
    return stack([stack(steps), stack(cells)]) if kind == "lstm" else stack(steps)


@st.composite
def _recurrent_layer(draw: Any, kind: str) -> Drawn:
    """A whole recurrent layer (``lstm``, ``gru``, or an RNN's ``tanh``/``relu``) over T <= 3 steps, with and
    without bias; weights scaled so that the gates stay away from saturation."""
    steps, batch, features, size = (draw(st.integers(1, n)) for n in (3, 2, 3, 2))
    gates = {"lstm": 4, "gru": 3}.get(kind, 1)
    shapes = [(steps, batch, features), (batch, size)] + [(batch, size)] * (kind == "lstm")
    shapes += [(gates * size, features), (gates * size, size)]
    if draw(st.booleans()):
        shapes += [(gates * size,)] * (2 if kind == "gru" else 1)
    arrays = tuple(_values(draw(seeds), shape, "real") * (0.5 if len(shape) == 2 else 1.0) for shape in shapes)
    op = {"lstm": "lstm_layer", "gru": "gru_layer"}.get(kind, "rnn_layer")
    attrs = {} if op != "rnn_layer" else {"nonlinearity": kind}
    fn = lambda *a: apply(cr.ops.OPS[op], *a, **attrs)  # noqa: E731
    ref = lambda *a: _recurrent_steps(np, kind, *a)  # noqa: E731
    torch_fn = None if torch is None else (lambda *a: _recurrent_steps(torch, kind, *a))
    return Drawn(arrays, fn, ref, torch_fn)


@st.composite
def _binary_cross_entropy(draw: Any) -> Drawn:
    """Elementwise BCE of probabilities in (0.05, 0.95) against soft targets in [0, 1] (both differentiable)."""
    shape = draw(nonscalar_shapes)
    p = 0.05 + 0.9 * (_values(draw(seeds), shape, "unit") + 0.9) / 1.8
    t = (_values(draw(seeds), shape, "unit") + 0.9) / 1.8

    def ref(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return -(b * np.log(a) + (1 - b) * np.log(1 - a))

    def torch_fn(a: Any, b: Any) -> Any:
        return torch.nn.functional.binary_cross_entropy(a, b, reduction="none")

    fn = lambda a, b: apply(cr.ops.OPS["binary_cross_entropy"], a, b)  # noqa: E731
    return Drawn((p, t), fn, ref, None if torch is None else torch_fn)


_erf = np.vectorize(math.erf, otypes=[np.float64])
_sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
_gelu = lambda a: a * 0.5 * (1 + _erf(a / math.sqrt(2)))  # noqa: E731


def _np(reduce: Callable) -> Callable:
    """A NumPy reduction as the table's reference ``ref(a, axis, keepdims)``."""
    return lambda a, ax, k: reduce(a, axis=ax, keepdims=k)


def _reduction_case(name: str, ref: Callable, torch_name: str, domain: str = "real", min_side: int = 1) -> OpCase:
    """The case of the reduction ``chainrule.<name>`` against ``ref`` and ``torch.<torch_name>`` (dim, keepdim)."""
    torch_fn = None
    if torch is not None:
        reduce = getattr(torch, torch_name)
        torch_fn = lambda a, ax, k: reduce(a, dim=_torch_dims(a, ax), keepdim=k)  # noqa: E731
    return OpCase(name, _reduction(getattr(cr, name), ref, torch_fn, domain, min_side=min_side))


# Rows of ops.ELEMENTWISE with a case of their own below: neg is the - operator, clip needs bounds, and
# leaky_relu is checked with a slope other than its default.
_HAND_WRITTEN_ROWS = {"neg", "clip", "leaky_relu"}


# Independent NumPy references for the rows whose forward is chainrule's own code (a row whose forward is a
# NumPy ufunc, np.exp, is checked against that ufunc). A new row of the first kind fails here until it has one.
_ROW_REFERENCES: dict[str, Callable] = {
    "sigmoid": _sigmoid,
    "relu": lambda a: np.where(a > 0, a, 0.0),
    "elu": lambda a: np.where(a > 0, a, np.exp(np.minimum(a, 0)) - 1),  # alpha 1, cr.elu's default
    "softplus": lambda a: np.log1p(np.exp(-np.abs(a))) + np.maximum(a, 0),
    "erf": _erf,
}


def _row_case(name: str) -> OpCase:
    """The case of one row of ``ops.ELEMENTWISE``: ``chainrule.<name>`` on inputs drawn from the row's domain.

    A new elementwise op is tested by declaring its row: values against an independent NumPy reference,
    gradients against central differences in float64, second derivatives, the fast rule against the generic
    one, the in-place declaration, the second array library, and values and gradients against PyTorch's function
    of the same name (``torch.<name>`` or ``torch.nn.functional.<name>``), which the parity test requires.
    """
    op = cr.ops.ELEMENTWISE[name]
    reference = _ROW_REFERENCES.get(name, op.forward if isinstance(op.forward, np.ufunc) else None)
    if reference is None:
        raise LookupError(f"elementwise row {name!r}: give it an independent NumPy reference in _ROW_REFERENCES")
    torch_fn = None
    if torch is not None:
        torch_fn = getattr(torch, name, None) or getattr(torch.nn.functional, name, None)
    return OpCase(name, _unary(getattr(cr, name), reference, torch_fn, op.domain))


OP_CASES: list[OpCase] = [
    # arithmetic, with broadcasting
    OpCase("add", _binary(lambda a, b: a + b, np.add, _t("add"))),
    OpCase("sub", _binary(lambda a, b: a - b, np.subtract, _t("sub"))),
    OpCase("mul", _binary(lambda a, b: a * b, np.multiply, _t("mul"))),
    OpCase("div", _binary(lambda a, b: a / b, np.divide, _t("div"), ("real", "nonzero"))),
    OpCase("pow", _binary(lambda a, b: a**b, np.power, _t("pow"), ("positive", "real"))),
    OpCase("pow_scalar", _pow_scalar()),
    OpCase("rsub_scalar", _unary(lambda a: 2.5 - a, lambda a: 2.5 - a, lambda a: 2.5 - a)),
    OpCase("rdiv_scalar", _unary(lambda a: 1.5 / a, lambda a: 1.5 / a, lambda a: 1.5 / a, "nonzero")),
    OpCase("rpow_scalar", _unary(lambda a: 2.0**a, lambda a: 2.0**a, lambda a: 2.0**a)),
    OpCase("neg", _unary(lambda a: -a, np.negative, _t("neg"))),
    OpCase("maximum", _separated_pair(cr.maximum, np.maximum, _t("maximum"))),
    OpCase("minimum", _separated_pair(cr.minimum, np.minimum, _t("minimum"))),
    OpCase("where", _where()),
    OpCase("matmul", _matmul()),
    # layers' primitives: fused linear map, im2col and its adjoint
    OpCase("linear", _linear()),
    OpCase("unfold", _unfold()),
    OpCase("fold", _fold()),
    OpCase("conv2d", _conv(2)),
    OpCase("conv1d", _conv(1)),
    OpCase("max_pool", _max_pool()),
    OpCase("max_pool_2x2", _max_pool(two_by_two=True)),
    OpCase("softmax_cross_entropy", _softmax_cross_entropy()),
    OpCase("lstm_cell", _lstm_cell()),
    OpCase("lstm_layer", _recurrent_layer("lstm")),
    OpCase("gru_layer", _recurrent_layer("gru")),
    OpCase("rnn_layer_tanh", _recurrent_layer("tanh")),
    OpCase("rnn_layer_relu", _recurrent_layer("relu")),
    OpCase("binary_cross_entropy", _binary_cross_entropy()),
    # elementwise functions
    *(_row_case(name) for name in cr.ops.ELEMENTWISE if name not in _HAND_WRITTEN_ROWS),
    OpCase(
        "leaky_relu",
        _unary(
            lambda a: cr.leaky_relu(a, 0.1),
            lambda a: np.where(a > 0, a, 0.1 * a),
            None if torch is None else (lambda a: torch.nn.functional.leaky_relu(a, 0.1)),
            "nonzero",
        ),
    ),
    OpCase("gelu", _unary(cr.gelu, _gelu, _t("nn.functional.gelu"))),
    OpCase("softsign", _unary(cr.softsign, lambda a: a / (1 + np.abs(a)), _t("nn.functional.softsign"), "nonzero")),
    OpCase("silu", _unary(cr.silu, lambda a: a * _sigmoid(a), _t("nn.functional.silu"))),
    OpCase("clip", _clip()),
    # reductions
    _reduction_case("sum", _np(np.sum), "sum"),
    _reduction_case("mean", _np(np.mean), "mean"),
    _reduction_case("max", _np(np.max), "amax", "distinct"),
    _reduction_case("min", _np(np.min), "amin", "distinct"),
    OpCase("prod", _reduction(cr.prod, _np(np.prod), _torch_prod, "unit")),
    _reduction_case("var", _np_var, "var", "distinct", min_side=2),
    _reduction_case("std", lambda a, ax, k: np.sqrt(_np_var(a, ax, k)), "std", "distinct", min_side=2),
    _reduction_case("logsumexp", _np_logsumexp, "logsumexp"),
    OpCase(
        "softmax",
        _softmax_like(cr.softmax, _np_softmax, None if torch is None else (lambda a, ax: torch.softmax(a, ax))),
    ),
    OpCase(
        "log_softmax",
        _softmax_like(
            cr.log_softmax,
            lambda a, ax: np.log(_np_softmax(a, ax)),
            None if torch is None else (lambda a, ax: torch.log_softmax(a, ax)),
        ),
    ),
    # shape ops
    OpCase("reshape", _reshape()),
    OpCase("permute", _permute()),
    OpCase("transpose", _transpose()),
    OpCase("broadcast_to", _broadcast_to()),
    OpCase("expand", _broadcast_to(expand=True)),
    OpCase("squeeze_unsqueeze", _squeeze_unsqueeze()),
    OpCase("flatten", _flatten()),
    OpCase("getitem", _getitem()),
    OpCase("concatenate", _concatenate()),
    OpCase("stack", _concatenate(stack=True)),
    OpCase("split", _split()),
    OpCase("pad", _pad()),
]


def as_outputs(result: Any) -> list:
    return list(result) if isinstance(result, (tuple, list)) else [result]


@dataclass(frozen=True)
class RuleCall:
    """One recorded primitive of a graph, with what the engine hands its rules in backward and forward mode."""

    op: type[cr.ops.Primitive]
    node: cr.Tensor
    needs: tuple[bool, ...]
    inputs: tuple[Any, ...]  # NumPy values (and constants), as the rules see them without create_graph
    attrs: dict[str, Any]

    def generic_vjp(self, grad_out: np.ndarray, inputs: tuple[Any, ...] | None = None, out: Any = None) -> tuple:
        """The generic rule on NumPy arrays (``inputs``/``out`` replace the recorded values when given)."""
        out = self.node.data if out is None else out
        return self.op.vjp(cr.ops.numpy_namespace, grad_out, self.needs, out, *(inputs or self.inputs), **self.attrs)

    def graph_vjp(self, grad_out: np.ndarray) -> tuple:
        """The generic rule on tensors, as ``create_graph=True`` runs it, as NumPy arrays."""
        from chainrule.tensor import tensor_namespace

        args = self.node._ctx.args
        with cr.no_grad():
            grads = self.op.vjp(tensor_namespace, cr.tensor(grad_out), self.needs, self.node, *args, **self.attrs)
        return tuple(None if g is None else np.asarray(g.data) for g in grads)

    def fast_vjp(self, grad_out: np.ndarray, inputs: tuple[Any, ...] | None = None, out: Any = None) -> tuple:
        out = self.node.data if out is None else out
        return self.op.fast_vjp(grad_out, self.needs, out, *(inputs or self.inputs), **self.attrs)

    def tangents(self, rng: np.random.Generator) -> tuple[Any, ...]:
        """A random tangent for each input that carries one (a tensor requiring grad), else None."""
        return tuple(
            rng.standard_normal(a.shape) if isinstance(a, cr.Tensor) and a.requires_grad else None
            for a in self.node._ctx.args
        )


def rule_calls(outputs: list) -> list[RuleCall]:
    """Every op node of the graph behind ``outputs``, in graph order, ready to call its rules directly."""
    calls = []
    for node in cr.autograd.topological_order([o for o in outputs if o.requires_grad]):
        ctx = node._ctx
        if ctx is None:
            continue
        inputs = tuple(a.data if isinstance(a, cr.Tensor) else a for a in ctx.args)
        needs = tuple(isinstance(a, cr.Tensor) and a.requires_grad for a in ctx.args)
        calls.append(RuleCall(ctx.op, node, needs, inputs, ctx.attrs))
    return calls


def copy_run(run: Any, tmp: Any, change: Callable[[Any], None]) -> str:
    """A copy of a trained run directory (its files) under ``tmp``, with ``change(copy)`` applied; its path."""
    copy = tmp / "run-copy"
    copy.mkdir()
    for item in run.iterdir():
        if item.is_file():
            (copy / item.name).write_bytes(item.read_bytes())
    change(copy)
    return str(copy)
