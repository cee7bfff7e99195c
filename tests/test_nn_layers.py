"""Every layer against PyTorch with identical weights (copied through state_dict), in float64, and
gradcheck of the layers' function forms."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn
from helpers import TORCH_MISSING, torch

needs_torch = pytest.mark.skipif(torch is None, reason=TORCH_MISSING)


def _torch_state_as_numpy(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def _compare(ours, theirs, inputs, *, train=True, output_index=None, seed=0, rtol=1e-9):
    """Load PyTorch's weights into ours, run both on the same float64 input, compare outputs and gradients."""
    rng = np.random.default_rng(seed)
    ours.double()
    theirs.double()
    ours.load_state_dict(_torch_state_as_numpy(theirs))
    ours.train(train)
    theirs.train(train)
    x = cr.tensor(inputs, requires_grad=inputs.dtype.kind == "f")
    tx = torch.tensor(inputs, requires_grad=inputs.dtype.kind == "f")
    out, t_out = ours(x), theirs(tx)
    if output_index is not None:
        out, t_out = out[output_index], t_out[output_index]
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=rtol, atol=1e-12)
    cotangent = rng.standard_normal(out.shape)
    (out * cr.tensor(cotangent)).sum().backward()
    (t_out * torch.tensor(cotangent)).sum().backward()
    if inputs.dtype.kind == "f":
        np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=rtol, atol=1e-12)
    t_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        np.testing.assert_allclose(param.grad.data, t_params[name].grad.numpy(), rtol=rtol, atol=1e-11, err_msg=name)
    t_buffers = dict(theirs.named_buffers())
    for name, buffer in ours.named_buffers():
        np.testing.assert_allclose(buffer.data, t_buffers[name].numpy(), rtol=rtol, atol=1e-12, err_msg=name)


def _x(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


LAYERS = [
    ("linear", lambda m: m.Linear(5, 3), (4, 5)),
    ("linear-batched-nobias", lambda m: m.Linear(5, 3, bias=False), (2, 4, 5)),
    ("conv2d", lambda m: m.Conv2d(3, 4, 3), (2, 3, 9, 8)),
    ("conv2d-stride-pad", lambda m: m.Conv2d(3, 4, (3, 2), stride=2, padding=1), (2, 3, 9, 8)),
    ("conv2d-dilation-nobias", lambda m: m.Conv2d(2, 3, 3, dilation=2, padding=2, bias=False), (2, 2, 7, 7)),
    ("conv2d-same", lambda m: m.Conv2d(2, 3, 5, padding="same"), (1, 2, 6, 6)),
    ("conv1d", lambda m: m.Conv1d(3, 4, 3, stride=2, padding=1), (2, 3, 10)),
    ("maxpool2d", lambda m: m.MaxPool2d(2), (2, 3, 8, 6)),
    ("maxpool2d-overlap-pad", lambda m: m.MaxPool2d(3, stride=2, padding=1), (2, 3, 7, 9)),
    ("maxpool2d-odd", lambda m: m.MaxPool2d(2), (1, 2, 7, 5)),
    ("maxpool1d", lambda m: m.MaxPool1d(3, stride=2), (2, 3, 11)),
    ("avgpool2d", lambda m: m.AvgPool2d(2), (2, 3, 8, 6)),
    ("avgpool2d-pad", lambda m: m.AvgPool2d(3, stride=2, padding=1), (2, 3, 7, 9)),
    ("avgpool1d", lambda m: m.AvgPool1d(3, stride=2), (2, 3, 11)),
    ("adaptive-global", lambda m: m.AdaptiveAvgPool2d(1), (2, 3, 6, 4)),
    ("adaptive-uneven", lambda m: m.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 5)),
    ("batchnorm1d", lambda m: m.BatchNorm1d(4), (8, 4)),
    ("batchnorm1d-3d", lambda m: m.BatchNorm1d(4, momentum=0.3), (8, 4, 5)),
    ("batchnorm2d", lambda m: m.BatchNorm2d(3), (4, 3, 5, 5)),
    ("layernorm", lambda m: m.LayerNorm(5), (4, 5)),
    ("layernorm-2d", lambda m: m.LayerNorm((3, 5)), (2, 3, 5)),
    ("flatten", lambda m: m.Flatten(), (2, 3, 4)),
    ("unflatten", lambda m: m.Unflatten(1, (3, 4)), (2, 12)),
    ("sequential-mlp", lambda m: m.Sequential(m.Linear(6, 8), m.Tanh(), m.Linear(8, 3)), (5, 6)),
    (
        "lenet",
        lambda m: m.Sequential(
            m.Conv2d(1, 4, 5, padding=2), m.ReLU(), m.MaxPool2d(2), m.Flatten(), m.Linear(4 * 7 * 7, 10)
        ),
        (3, 1, 14, 14),
    ),
]


@needs_torch
@pytest.mark.parametrize("name, build, shape", LAYERS, ids=[layer[0] for layer in LAYERS])
def test_layer_matches_pytorch(name, build, shape):
    _compare(build(nn), build(torch.nn), _x(*shape))


@needs_torch
@pytest.mark.parametrize("name", ["batchnorm1d", "batchnorm2d"])
def test_batchnorm_eval_mode_uses_running_statistics(name):
    build, shape = {layer[0]: (layer[1], layer[2]) for layer in LAYERS}[name]
    ours, theirs = build(nn).double(), build(torch.nn).double()
    ours.load_state_dict(_torch_state_as_numpy(theirs))
    for seed in range(3):  # a few training batches move the running statistics
        batch = _x(*shape, seed=seed) * 2 + 1
        ours(cr.tensor(batch))
        theirs(torch.tensor(batch))
    np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(), rtol=1e-12)
    assert ours.num_batches_tracked.item() == 3
    _compare_state_then_eval(ours, theirs, _x(*shape, seed=9))


def _compare_state_then_eval(ours, theirs, inputs):
    ours.eval()
    theirs.eval()
    out = ours(cr.tensor(inputs))
    np.testing.assert_allclose(out.data, theirs(torch.tensor(inputs)).detach().numpy(), rtol=1e-10)


# Every activation module has a PyTorch twin of the same name, except the sigmoid family (ours alone).
ACTIVATIONS = [name for name in nn.activation.__all__ if name != "SigmoidFamily"]


@needs_torch
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_module_matches_pytorch(name):
    kwargs = {"dim": -1} if name in ("Softmax", "LogSoftmax") else {}
    x = _x(4, 5) * 3
    x[np.abs(x) < 1e-3] = 0.5  # away from kinks
    _compare(getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs), x)


@needs_torch
def test_embedding_matches_pytorch_with_repeated_indices():
    indices = np.array([[0, 3, 3], [9, 0, 3]])
    _compare(nn.Embedding(10, 4), torch.nn.Embedding(10, 4), indices)
    _compare(nn.Embedding(10, 4, padding_idx=3), torch.nn.Embedding(10, 4, padding_idx=3), indices)


RECURRENT = [
    ("rnn-tanh-2layers", lambda m: m.RNN(4, 6, num_layers=2), (7, 3, 4)),
    ("rnn-relu-batch-first", lambda m: m.RNN(4, 6, nonlinearity="relu", batch_first=True), (3, 7, 4)),
    ("lstm-2layers", lambda m: m.LSTM(4, 6, num_layers=2), (7, 3, 4)),
    ("lstm-batch-first", lambda m: m.LSTM(4, 5, batch_first=True), (3, 6, 4)),
    ("lstm-unbatched", lambda m: m.LSTM(4, 5), (6, 4)),
    ("gru-2layers", lambda m: m.GRU(4, 6, num_layers=2), (7, 3, 4)),
    ("gru-batch-first-nobias", lambda m: m.GRU(4, 6, batch_first=True, bias=False), (3, 7, 4)),
]


@needs_torch
@pytest.mark.parametrize("name, build, shape", RECURRENT, ids=[r[0] for r in RECURRENT])
def test_recurrent_output_and_gradients_match_pytorch(name, build, shape):
    _compare(build(nn), build(torch.nn), _x(*shape), output_index=0)


@needs_torch
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_recurrent_final_state_and_initial_state_match_pytorch(kind):
    rng = np.random.default_rng(4)
    ours, theirs = getattr(nn, kind)(3, 5, num_layers=2).double(), getattr(torch.nn, kind)(3, 5, num_layers=2).double()
    ours.load_state_dict(_torch_state_as_numpy(theirs))
    x = rng.standard_normal((6, 2, 3))
    h0 = rng.standard_normal((2, 2, 5))
    c0 = rng.standard_normal((2, 2, 5))
    state = (cr.tensor(h0), cr.tensor(c0)) if kind == "LSTM" else cr.tensor(h0)
    t_state = (torch.tensor(h0), torch.tensor(c0)) if kind == "LSTM" else torch.tensor(h0)
    out, final = ours(cr.tensor(x), state)
    t_out, t_final = theirs(torch.tensor(x), t_state)
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-10)
    finals = final if kind == "LSTM" else (final,)
    t_finals = t_final if kind == "LSTM" else (t_final,)
    for ours_state, their_state in zip(finals, t_finals):
        np.testing.assert_allclose(ours_state.data, their_state.detach().numpy(), rtol=1e-10)


def test_dropout_scales_and_is_reproducible():
    layer = nn.Dropout(0.25)
    x = cr.ones(20000)
    cr.manual_seed(3)
    first = layer(x)
    cr.manual_seed(3)
    second = layer(x)
    np.testing.assert_array_equal(first.data, second.data)
    assert set(np.unique(first.data)) == {0.0, np.float32(1 / 0.75)}
    assert abs((first.data == 0).mean() - 0.25) < 0.02
    layer.eval()
    assert layer(x) is x


def test_dropout_gradient_passes_only_kept_units():
    cr.manual_seed(0)
    x = cr.ones(100, requires_grad=True)
    out = F.dropout(x, 0.5)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.data, out.data)


FUNCTION_FORMS = [
    ("linear", lambda x, w, b: F.linear(x, w, b), [(3, 4), (2, 4), (2,)]),
    ("conv2d", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), [(1, 2, 5, 5), (3, 2, 3, 3), (3,)]),
    ("conv1d-dilated", lambda x, w: F.conv1d(x, w, dilation=2), [(2, 2, 7), (3, 2, 2)]),
    ("max_pool2d", lambda x: F.max_pool2d(x, 3, 2, 1), [(1, 2, 5, 5)]),
    ("avg_pool2d", lambda x: F.avg_pool2d(x, 2, 1), [(1, 2, 4, 5)]),
    ("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (2, 3)), [(1, 1, 5, 4)]),
    ("batch_norm", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [(5, 3), (3,), (3,)]),
    ("layer_norm", lambda x, w, b: F.layer_norm(x, (4,), w, b), [(3, 4), (4,), (4,)]),
    ("embedding", lambda w: F.embedding(np.array([1, 1, 0, 2]), w), [(3, 2)]),
]


@pytest.mark.parametrize("name, function, shapes", FUNCTION_FORMS, ids=[f[0] for f in FUNCTION_FORMS])
def test_function_forms_pass_gradcheck(name, function, shapes):
    rng = np.random.default_rng(5)
    inputs = [rng.standard_normal(s) for s in shapes]
    assert cr.gradcheck(function, inputs)


@pytest.mark.parametrize("name, function, shapes", FUNCTION_FORMS[:3], ids=[f[0] for f in FUNCTION_FORMS[:3]])
def test_linear_and_convolution_second_derivatives(name, function, shapes):
    rng = np.random.default_rng(6)
    assert cr.gradgradcheck(function, [rng.standard_normal(s) for s in shapes])


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_recurrent_layers_pass_gradcheck(kind):
    layer = getattr(nn, kind)(2, 3).double()
    names = [name for name, _ in layer.named_parameters()]

    def run(x, *weights):
        layer._parameters.update(dict(zip(names, weights)))  # the checked tensors stand in for the weights
        return layer(x)[0]

    rng = np.random.default_rng(7)
    weights = [p.data.copy() for p in layer.parameters()]
    assert cr.gradcheck(run, [rng.standard_normal((4, 2, 2)), *weights], modes=("reverse",))


def test_sigmoid_family_has_slope_one_at_the_origin():
    family = F.sigmoid_family()
    assert len(family) == 7
    for name, function in family.items():
        x = cr.tensor([0.0], dtype="float64", requires_grad=True)
        y = function(x)
        y.sum().backward()
        assert abs(y.item()) < 1e-12, name
        assert x.grad.item() == pytest.approx(1.0, rel=1e-9), name
        big = function(cr.tensor([50.0], dtype="float64")).item()
        assert 0.8 < big < 2.0001, name  # bounded: saturates
    np.testing.assert_allclose(family["arctan"](cr.tensor([1.0], dtype="float64")).data, [np.pi / 4])
    np.testing.assert_allclose(
        family["gudermannian"](cr.tensor([1.0], dtype="float64")).data, [2 * np.arctan(np.tanh(0.5))]
    )


@pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
@pytest.mark.parametrize("geometry", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)])
def test_max_pool_ties_and_nan_follow_pytorch(geometry):
    """Ties (a ReLU'd input is full of zeros) give the gradient to the first maximum of the window, and a NaN
    in a window is its maximum, as in PyTorch; overlapping windows add up."""
    kernel, stride, padding = geometry
    rng = np.random.default_rng(8)
    values = np.maximum(np.round(rng.standard_normal((2, 3, 7, 6)), 0), 0.0)  # many exact ties at 0 and 1
    values[0, 1, 2, 3] = np.nan
    cotangent = rng.standard_normal(F.max_pool2d(cr.tensor(values), kernel, stride, padding).shape)
    x = cr.tensor(values, requires_grad=True)
    t = torch.tensor(values, requires_grad=True)
    out = F.max_pool2d(x, kernel, stride, padding)
    t_out = torch.nn.functional.max_pool2d(t, kernel, stride, padding)
    np.testing.assert_array_equal(out.data, t_out.detach().numpy())
    (out * cotangent).sum().backward()
    (t_out * torch.from_numpy(cotangent)).sum().backward()
    np.testing.assert_allclose(x.grad.data, t.grad.numpy(), rtol=1e-12, atol=1e-15)  # overlaps: sum order
    _, tangent_out = cr.func.jvp(lambda v: F.max_pool2d(v, kernel, stride, padding), (values,), (np.ones_like(values),))
    np.testing.assert_array_equal(np.isnan(tangent_out.data), False)


@pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 1, 1)])
def test_max_pool_gradient_with_non_finite_values_matches_pytorch(kernel, stride, padding):
    """A non-finite cotangent reaches only each window's winner (the others get 0, not inf · 0 = NaN); two
    NaNs in a window: PyTorch's kernel picks the last; an all -inf window beside padding: the input's own
    element wins, not the padding."""
    values = np.arange(16.0).reshape(1, 1, 4, 4) - 8.0
    values[0, 0, 0, 2] = values[0, 0, 1, 3] = np.nan
    values[0, 0, 3, 0] = values[0, 0, 3, 1] = values[0, 0, 2, 0] = -np.inf
    x = cr.tensor(values, requires_grad=True)
    t = torch.tensor(values, requires_grad=True)
    out = F.max_pool2d(x, kernel, stride, padding)
    t_out = torch.nn.functional.max_pool2d(t, kernel, stride, padding)
    np.testing.assert_array_equal(out.data, t_out.detach().numpy())
    cotangent = np.resize([np.inf, 1.0, -np.inf, 2.0, np.nan, 3.0], out.shape)
    (out * cr.tensor(cotangent)).sum().backward()
    (t_out * torch.from_numpy(cotangent)).sum().backward()
    np.testing.assert_array_equal(x.grad.data, t.grad.numpy())


@pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
def test_relu_gradient_with_non_finite_values_matches_pytorch():
    values = np.array([np.nan, -1.0, 2.0, 0.0, -3.0, 4.0])
    cotangent = np.array([1.0, np.inf, np.nan, np.nan, -np.inf, np.inf])
    x = cr.tensor(values, requires_grad=True)
    t = torch.tensor(values, requires_grad=True)
    F.relu(x).backward(cotangent)
    torch.relu(t).backward(torch.from_numpy(cotangent))
    np.testing.assert_array_equal(x.grad.data, t.grad.numpy())
