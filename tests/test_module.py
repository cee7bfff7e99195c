"""Module mechanics: registration, traversal, modes, state dicts, dtype conversion, display, hooks, init."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.nn import init
from helpers import TORCH_MISSING, torch


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.5))
        self.norm = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.norm(self.features(x)))


def test_registration_and_names():
    net = Net()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["features.0.weight", "features.0.bias", "norm.weight", "norm.bias", "head.weight", "head.bias"]
    assert [name for name, _ in net.named_buffers()] == [
        "norm.running_mean",
        "norm.running_var",
        "norm.num_batches_tracked",
    ]
    assert [type(m).__name__ for m in net.children()] == ["Sequential", "BatchNorm1d", "Linear"]
    assert net.num_parameters() == 4 * 8 + 8 + 8 + 8 + 8 * 3 + 3
    assert "total" in net.summary()


def test_shared_parameters_are_listed_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    assert len(list(model.parameters())) == 2


def test_train_and_eval_reach_every_module():
    net = Net()
    net.eval()
    assert all(not m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_state_dict_round_trip_and_errors():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)
    state = a.state_dict()
    del state["head.bias"]
    state["extra.weight"] = np.zeros(2)
    state["head.weight"] = np.zeros((2, 2))
    with pytest.raises(cr.CheckpointError) as info:
        b.load_state_dict(state)
    message = str(info.value)
    assert "missing keys: head.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "head.weight: shape (2, 2) in the state dict, (3, 8) in the model" in message
    result = b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "head.bias"}, strict=False)
    assert result.missing_keys == ["head.bias"]


def test_load_state_dict_keeps_parameter_identity():
    layer = nn.Linear(2, 2)
    weight = layer.weight
    layer.load_state_dict({"weight": np.ones((2, 2)), "bias": np.zeros(2)})
    assert layer.weight is weight
    np.testing.assert_array_equal(weight.data, np.ones((2, 2), dtype=np.float32))


@pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
def test_pytorch_state_dict_as_numpy_loads_and_predicts_the_same():
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    ours = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(ours(cr.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_to_dtype_converts_in_place():
    net = Net()
    first = net.head.weight
    net.double()
    assert net.head.weight is first and first.dtype == np.float64
    assert net.norm.running_mean.dtype == np.float64
    assert net.norm.num_batches_tracked.dtype == np.int64
    assert net(cr.randn(5, 4, dtype="float64")).dtype == np.float64


def test_zero_grad_and_requires_grad():
    net = Net()
    net(cr.randn(6, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.features.requires_grad_(False)
    assert [p.requires_grad for p in net.parameters()] == [False, False, True, True, True, True]


def test_repr_is_a_tree():
    text = repr(Net())
    assert "(features): Sequential(\n    (0): Linear(in_features=4, out_features=8, bias=True)" in text
    assert "(norm): BatchNorm1d(8, eps=1e-05, momentum=0.1, affine=True)" in text


def test_forward_hooks_see_outputs():
    layer = nn.Linear(2, 3)
    seen = []
    remove = layer.register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    layer(cr.ones(4, 2))
    remove()
    layer(cr.ones(4, 2))
    assert seen == [(4, 3)]


def test_containers():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    heads = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 4)})
    assert sorted(heads.keys()) == ["a", "b"] and heads["b"].out_features == 4
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh())
    model.append(nn.Linear(3, 1))
    assert len(model) == 3 and isinstance(model[-1], nn.Linear) and len(model[:2]) == 2
    assert nn.Identity()(cr.ones(2)).shape == (2,)


def test_layer_errors_name_the_layer_and_shapes():
    with pytest.raises(
        cr.ShapeError,
        match=r"Linear\(in_features=4, out_features=2, bias=True\): expected input of shape \(\*, 4\), got \(3, 5\)",
    ):
        nn.Linear(4, 2)(cr.ones(3, 5))
    with pytest.raises(
        cr.ShapeError, match=r"Conv2d\(.*\): expected input \(N, C, H, W\) with C = 3, got shape \(2, 1, 8, 8\)"
    ):
        nn.Conv2d(3, 4, 3)(cr.ones(2, 1, 8, 8))
    with pytest.raises(cr.ShapeError, match="smaller than the window"):
        nn.MaxPool2d(5)(cr.ones(1, 1, 3, 3))
    with pytest.raises(cr.ShapeError, match=r"BatchNorm1d\(4\): expected input"):
        nn.BatchNorm1d(4)(cr.ones(3, 5))
    with pytest.raises(cr.ShapeError, match="embedding: indices must be in \\[0, 9\\]"):
        nn.Embedding(10, 2)(cr.tensor([3, 10]))
    with pytest.raises(cr.ShapeError, match=r"LSTM\(input_size=3\): input has 4 features"):
        nn.LSTM(3, 5)(cr.ones(6, 2, 4))
    with pytest.raises(ValueError, match="Linear: in_features and out_features must be positive"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match="Dropout: p must be in"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="only groups=1"):
        nn.Conv2d(2, 2, 3, groups=2)


def test_initialisers_follow_their_distributions():
    cr.manual_seed(0)
    w = cr.zeros(400, 300)
    init.kaiming_normal_(w, nonlinearity="relu")
    assert w.data.std() == pytest.approx(np.sqrt(2 / 300), rel=0.02)
    init.xavier_uniform_(w)
    assert np.abs(w.data).max() <= np.sqrt(6 / 700) + 1e-7
    assert w.data.std() == pytest.approx(np.sqrt(2 / 700), rel=0.02)
    init.orthogonal_(w)
    np.testing.assert_allclose(w.data.T @ w.data, np.eye(300), atol=1e-5)
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(np.sqrt(2 / 1.04))
    layer = nn.Linear(100, 50)
    assert np.abs(layer.weight.data).max() <= 0.1 and np.abs(layer.bias.data).max() <= 0.1


def test_seed_makes_initialisation_reproducible():
    cr.manual_seed(7)
    first = nn.Linear(5, 5).weight.data.copy()
    cr.manual_seed(7)
    np.testing.assert_array_equal(nn.Linear(5, 5).weight.data, first)


def test_clipping_and_penalties():
    a = cr.tensor([3.0, 0.0], requires_grad=True)
    b = cr.tensor([4.0], requires_grad=True)
    a.grad, b.grad = cr.tensor([3.0, 0.0]), cr.tensor([4.0])
    total = nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
    assert total == pytest.approx(5.0)
    assert np.sqrt((a.grad.data**2).sum() + (b.grad.data**2).sum()) == pytest.approx(1.0, rel=1e-5)
    b.grad = cr.tensor([np.inf])
    with pytest.raises(cr.GradientError, match="NaN or infinity"):
        nn.utils.clip_grad_norm_([a, b], 1.0, error_if_nonfinite=True)
    a.grad = cr.tensor([-5.0, 0.5])
    nn.utils.clip_grad_value_([a], 1.0)
    np.testing.assert_array_equal(a.grad.data, [-1.0, 0.5])
    penalty = nn.utils.l1_penalty([a, b], weight=0.1)
    assert penalty.item() == pytest.approx(0.7)
    penalty.backward()
    np.testing.assert_allclose(a.grad.data, [-1.0 + 0.1, 0.5])
