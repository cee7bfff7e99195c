"""The whole-layer recurrent primitives (``lstm_layer``, ``gru_layer``, ``rnn_layer``) behind nn.RNN/LSTM/GRU.

The op table (``helpers.OP_CASES``) checks each primitive's forward, VJP, JVP, second derivatives, fast VJP and
saves declaration; here: one node per layer, gradient of gradient through a layer against PyTorch, the fast VJP
without the forward's saved buffer (it recomputes), and a multi-layer layer with dropout against the per-step
composition it replaced.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import autograd, nn
from chainrule.ops import OPS
from chainrule.tensor import apply
from helpers import TORCH_MISSING, torch

needs_torch = pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
KINDS = ["RNN", "LSTM", "GRU"]


def _pair(kind: str, layers: int = 1, **kwargs):
    ours = getattr(nn, kind)(3, 4, num_layers=layers, **kwargs).double()
    theirs = getattr(torch.nn, kind)(3, 4, num_layers=layers, **kwargs).double()
    ours.load_state_dict({name: value.detach().numpy() for name, value in theirs.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("kind", KINDS)
def test_one_node_per_layer(kind):
    layer = getattr(nn, kind)(3, 4, num_layers=2)
    output, _ = layer(cr.randn(9, 2, 3))
    ops = [node.grad_fn for node in autograd.topological_order([output]) if node.grad_fn]
    name = {"RNN": "rnn_layer", "LSTM": "lstm_layer", "GRU": "gru_layer"}[kind]
    assert ops.count(name) == 2
    assert len(ops) < 12  # no per-step nodes: 9 steps of the old graph were about 5 nodes each


@needs_torch
@pytest.mark.parametrize("kind", KINDS)
def test_gradient_of_gradient_through_a_layer_matches_pytorch(kind):
    """create_graph=True runs the generic rules (the per-step composition), which record a graph of their own."""
    ours, theirs = _pair(kind)
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    x_ours = cr.tensor(x, requires_grad=True)
    x_theirs = torch.tensor(x, requires_grad=True)
    output, _ = ours(x_ours)
    t_output, _ = theirs(x_theirs)
    (grad,) = autograd.grad((output * output).sum(), x_ours, create_graph=True)
    (t_grad,) = torch.autograd.grad((t_output * t_output).sum(), x_theirs, create_graph=True)
    np.testing.assert_allclose(grad.data, t_grad.detach().numpy(), rtol=1e-9, atol=1e-12)
    (grad * grad).sum().backward()
    (t_grad * t_grad).sum().backward()
    np.testing.assert_allclose(x_ours.grad.data, x_theirs.grad.numpy(), rtol=1e-8, atol=1e-11)
    weight = ours.weight_hh_l0.grad.data
    np.testing.assert_allclose(weight, theirs.weight_hh_l0.grad.numpy(), rtol=1e-8, atol=1e-11)


@pytest.mark.parametrize("name", ["lstm_layer", "gru_layer"])
def test_fast_vjp_recomputes_without_the_saved_buffer(name):
    """The fast VJP reads the activations from the output's buffer; handed a copy of the output, it
    recomputes them and gives the same gradients."""
    rng = np.random.default_rng(1)
    gates = 4 if name == "lstm_layer" else 3
    states = [rng.standard_normal((2, 3))] * (2 if name == "lstm_layer" else 1)
    arrays = [rng.standard_normal((5, 2, 4)), *states, rng.standard_normal((gates * 3, 4))]
    arrays += [rng.standard_normal((gates * 3, 3))]
    arrays += [rng.standard_normal(gates * 3)] * (1 if name == "lstm_layer" else 2)  # summed, or b_ih and b_hh
    op = OPS[name]
    out = op.forward(*arrays)
    assert out.base is not None
    grad_out = rng.standard_normal(out.shape)
    needs = (True,) * len(arrays)
    with_buffer = op.fast_vjp(grad_out, needs, out, *arrays)
    recomputed = op.fast_vjp(grad_out, needs, out.copy(), *arrays)
    for want, got in zip(with_buffer, recomputed):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_stacked_layers_with_dropout_match_the_per_step_composition(kind):
    """Two layers with dropout between them: the same values and gradients as the per-step graph written out
    with linear and the elementwise ops (dropout draws the same mask for the whole sequence at once)."""
    cr.manual_seed(0)
    layer = getattr(nn, kind)(3, 4, num_layers=2, dropout=0.5).double()
    x = cr.tensor(np.random.default_rng(2).standard_normal((5, 2, 3)), requires_grad=True)
    cr.manual_seed(7)
    output, _ = layer(x)
    (output.sum() * 1.5).backward()
    grads = {name: p.grad.data.copy() for name, p in layer.named_parameters()}
    x_grad = x.grad.data.copy()
    for p in [x, *layer.parameters()]:
        p.grad = None
    cr.manual_seed(7)
    reference = _per_step(layer, kind, x)
    np.testing.assert_allclose(output.data, reference.data, rtol=1e-12)
    (reference.sum() * 1.5).backward()
    np.testing.assert_allclose(x.grad.data, x_grad, rtol=1e-10)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad.data, grads[name], rtol=1e-10, atol=1e-13, err_msg=name)


def _per_step(layer, kind: str, x):
    """The layer's forward as the per-step graph: one linear and the gate ops per step."""
    F = nn.functional
    inputs, size = x, layer.hidden_size
    for index in range(layer.num_layers):
        w_ih, w_hh = getattr(layer, f"weight_ih_l{index}"), getattr(layer, f"weight_hh_l{index}")
        b_ih, b_hh = getattr(layer, f"bias_ih_l{index}"), getattr(layer, f"bias_hh_l{index}")
        h = c = cr.zeros(x.shape[1], size, dtype="float64")
        outputs = []
        for t in range(x.shape[0]):
            if kind == "GRU":
                a, m = F.linear(inputs[t], w_ih, b_ih), F.linear(h, w_hh, b_hh)
                r, z = cr.sigmoid(a[:, :size] + m[:, :size]), cr.sigmoid(a[:, size : 2 * size] + m[:, size : 2 * size])
                n = cr.tanh(a[:, 2 * size :] + r * m[:, 2 * size :])
                h = n + z * (h - n)
            elif kind == "LSTM":
                cell = apply(OPS["lstm_cell"], F.linear(inputs[t], w_ih, b_ih) + F.linear(h, w_hh, b_hh), c)
                h, c = cell[0], cell[1]
            else:
                h = cr.tanh(F.linear(inputs[t], w_ih, b_ih) + F.linear(h, w_hh, b_hh))
            outputs.append(h)
        inputs = cr.stack(outputs)
        if index < layer.num_layers - 1:
            inputs = F.dropout(inputs, layer.dropout)
    return inputs


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_batch_runs_forward_and_backward(kind):
    layer = getattr(nn, kind)(3, 4, num_layers=2)
    x = cr.zeros(5, 0, 3, requires_grad=True)
    output, _ = layer(x)
    output.sum().backward()
    assert output.shape == (5, 0, 4) and x.grad.shape == (5, 0, 3)
    assert not layer.weight_hh_l1.grad.data.any()
