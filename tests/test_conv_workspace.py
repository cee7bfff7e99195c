"""The convolution primitive's workspace: its im2col buffers are reused across steps, and never while a graph
still needs them (two forwards before one backward, ``retain_graph``, a kept output)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.ops import OPS, _Workspace

Conv = OPS["conv"]


def _grads(layer, x, scale=1.0):
    """Weight, bias and input gradients of ``scale * sum(layer(x)**2)`` from a graph of its own."""
    x = cr.tensor(x, requires_grad=True)
    layer.zero_grad()
    (scale * (layer(x) ** 2).sum()).backward()
    return layer.weight.grad.data.copy(), layer.bias.grad.data.copy(), x.grad.data.copy()


def test_workspace_hands_out_memory_only_when_nothing_holds_it():
    space = _Workspace(blocks=2)
    first = space.take((3, 4), np.float32)
    assert first.shape == (3, 4) and first.dtype == np.float32
    view = first[1:]
    second = space.take((3, 4), np.float32)
    assert second.base is not first.base
    del first
    assert space.take((3, 4), np.float32).base is not view.base  # a view still holds it
    del view
    gc.collect()
    smaller = space.take((2, 5), np.float32)  # a free block that holds 10 values is reused
    assert smaller.base.size == 12
    assert space.take((12,), np.float64).base.dtype == np.float64  # never another dtype's block
    assert space.take((100,), np.float32).size == 100  # the pool is full: allocated, not kept
    assert len(space._pool) == 2


def test_a_conv_step_reuses_its_buffer_once_the_graph_is_gone():
    layer = nn.Conv2d(2, 3, 3, padding=1)
    x = cr.randn(4, 2, 6, 6)
    (layer(x) ** 2).sum().backward()
    gc.collect()
    y = layer(x)
    buffer = id(y.data.base)  # not the buffer itself: holding it would keep it taken
    del y
    gc.collect()
    assert id(layer(x).data.base) == buffer


def test_two_forwards_before_one_backward():
    rng = np.random.default_rng(0)
    layer = nn.Conv2d(2, 3, 3, padding=1).double()
    x1, x2 = rng.standard_normal((4, 2, 6, 6)), rng.standard_normal((4, 2, 6, 6))
    expected1, expected2 = _grads(layer, x1), _grads(layer, x2, scale=2.0)
    t1, t2 = cr.tensor(x1, requires_grad=True), cr.tensor(x2, requires_grad=True)
    layer.zero_grad()
    loss1 = (layer(t1) ** 2).sum()
    loss2 = 2.0 * (layer(t2) ** 2).sum()  # the same shapes: it must not take loss1's buffer
    loss2.backward()
    np.testing.assert_allclose(layer.weight.grad.data, expected2[0], rtol=1e-12)
    layer.zero_grad()
    loss1.backward()
    for got, want in zip((layer.weight.grad.data, layer.bias.grad.data, t1.grad.data), expected1):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(t2.grad.data, expected2[2], rtol=1e-12)


def test_retain_graph_backward_twice_with_forwards_in_between():
    rng = np.random.default_rng(1)
    layer = nn.Conv2d(1, 2, 3).double()
    x = rng.standard_normal((3, 1, 5, 5))
    want = _grads(layer, x)[0]
    layer.zero_grad()
    loss = (layer(cr.tensor(x)) ** 2).sum()
    loss.backward(retain_graph=True)
    for _ in range(3):
        layer(cr.tensor(rng.standard_normal((3, 1, 5, 5))))  # forwards that could take a freed buffer
    layer.weight.grad = None
    loss.backward()
    np.testing.assert_allclose(layer.weight.grad.data, want, rtol=1e-12)


def test_a_kept_output_keeps_its_values():
    layer = nn.Conv2d(1, 2, 3)
    with cr.no_grad():
        first = layer(cr.ones(2, 1, 5, 5))
        values = first.data.copy()
        for _ in range(3):
            layer(cr.zeros(2, 1, 5, 5))
    np.testing.assert_array_equal(first.data, values)


@pytest.mark.parametrize("padding, stride, dilation", [((0, 0), (1, 1), (1, 1)), ((2, 1), (2, 3), (1, 2))])
def test_fast_vjp_without_the_saved_columns_builds_them_again(padding, stride, dilation):
    rng = np.random.default_rng(2)
    x, weight = rng.standard_normal((2, 3, 7, 8)), rng.standard_normal((4, 3, 3, 2))
    attrs = {"stride": stride, "padding": padding, "dilation": dilation}
    out = Conv.forward(x, weight, **attrs)
    grad_out = rng.standard_normal(out.shape)
    with_buffer = Conv.fast_vjp(grad_out, (True, True), out, x, weight, **attrs)
    rebuilt = Conv.fast_vjp(grad_out, (True, True), np.array(out), x, weight, **attrs)
    for got, want in zip(rebuilt, with_buffer):
        np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("spatial", [1, 2])
@pytest.mark.parametrize("kernel, padding, dilation", [(1, 0, 1), (3, 1, 1), (3, 2, 2), (5, 2, 1), (2, 0, 2)])
def test_stride_one_input_gradient_over_padded_rows_matches_the_generic_rule(spatial, kernel, padding, dilation):
    """Stride 1 takes the col2im over padded rows (one contiguous add per kernel offset); the generic rule
    (fold of Wᵀ G) is the reference."""
    from chainrule.ops import numpy_namespace

    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 6, 7)[: 2 + spatial])
    weight = rng.standard_normal((4, 2) + (kernel,) * spatial)
    attrs = {"stride": (1,) * spatial, "padding": (padding,) * spatial, "dilation": (dilation,) * spatial}
    out = Conv.forward(x, weight, **attrs)
    grad_out = rng.standard_normal(out.shape)
    fast = Conv.fast_vjp(grad_out, (True, False), out, x, weight, **attrs)[0]
    generic = Conv.vjp(numpy_namespace, grad_out, (True, False), out, x, weight, **attrs)[0]
    np.testing.assert_allclose(fast, generic, rtol=1e-12, atol=1e-12)
