"""Tests of chainrule.explain: graph drawing, whole-model gradient checks, the gradient monitor and the
vanishing-gradient demo."""

from __future__ import annotations

import itertools
import math
import shutil
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

import chainrule as cr
from chainrule import Value, nn
from chainrule.errors import ArgumentError, ChainruleError, GradientError
from chainrule.explain.check import check_model, gradcheck_command
from chainrule.explain.graph import graph
from chainrule.explain.monitor import GradientMonitor, GradientWarning, layers_with_weights
from chainrule.explain.vanishing import vanishing_demo
from chainrule.train import fit

HAS_DOT = shutil.which("dot") is not None


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# graph
# ---------------------------------------------------------------------------------------------------
def _abc():
    a = cr.tensor([[1.0, -2.0]], requires_grad=True)
    b = cr.tensor([[0.5, 3.0]], requires_grad=True)
    c = cr.tensor([[0.1, 0.2]], requires_grad=True)
    return a, b, c


def test_graph_of_tanh_of_affine_has_the_ops_and_edges():
    a, b, c = _abc()
    g = graph((a * b + c).tanh(), names={"a": a, "b": b, "c": c})
    assert g.ops() == ["mul", "add", "tanh"]
    by_title = {node.title: node.key for node in g.nodes}
    mul, add, tanh = (by_title[name] for name in ("mul", "add", "tanh"))
    product = next(n.key for n in g.nodes if n.inputs == [mul])
    total = next(n.key for n in g.nodes if n.inputs == [add])
    assert set(g.edges) == {
        (by_title["a"], mul),
        (by_title["b"], mul),
        (mul, product),
        (product, add),
        (by_title["c"], add),
        (add, total),
        (total, tanh),
        (tanh, g.root),
    }
    dot = g.to_dot()
    assert dot.startswith("digraph chainrule {") and dot.rstrip().endswith("}")
    for source, target in g.edges:
        assert f"  {source} -> {target};" in dot
    assert 'label="a\\nshape (1, 2) float32"' in dot
    assert dot.count("shape=ellipse") == 3


def test_graph_shows_values_and_leaf_grads():
    a, b, c = _abc()
    out = (a * b + c).tanh().sum()
    out.backward(retain_graph=True)
    g = graph(out, show="values", names={"a": a})
    a_node = next(n for n in g.nodes if n.title == "a")
    assert a_node.details[0] == "[[ 1., -2.]]"
    assert a_node.details[1].startswith("grad [[")
    shapes = graph(out, names={"a": a})
    assert any(d.startswith("grad norm") for d in next(n for n in shapes.nodes if n.title == "a").details)
    assert all(len(n.details) == 1 for n in graph(out, grads=False).nodes if n.kind == "tensor")


def test_graph_escapes_dot_labels():
    a = cr.tensor([1.0], requires_grad=True)
    g = graph(a * 2, names={'we"ird\\name': a})
    assert 'label="we\\"ird\\\\name\\nshape (1,) float32"' in g.to_dot()


def test_graph_of_values_and_text_references_shared_nodes():
    x = Value(2.0, label="x")
    y = Value(-1.0, label="y")
    z = (x * y + x).tanh()
    z.backward()
    g = graph(z)
    assert g.ops() == ["*", "+", "tanh"]
    text = g.to_text()
    assert text.count("] x  data 2  grad") == 1  # x printed once, then referred to
    assert "(see [n0] above)" in text
    assert text.splitlines()[0].endswith("<- tanh")
    dot = g.to_dot()
    assert "x\\ndata 2\\ngrad" in dot


def test_graph_after_backward_without_retain_graph_says_what_to_do():
    a = cr.tensor([1.0, 2.0], requires_grad=True)
    out = (a * a).sum()
    out.backward()
    with pytest.raises(GradientError, match="retain_graph=True"):
        graph(out)


def test_graph_of_deep_chain_is_iterative():
    x = cr.tensor([0.5], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    g = graph(y)
    assert len(g.ops()) == 5000
    assert len(g.to_dot().splitlines()) > 10000
    text = g.to_text()
    assert len(text.splitlines()) == 5001
    assert max(len(line) for line in text.splitlines()) < 80  # a chain stays in one column


def test_graph_rejects_bad_arguments(tmp_path):
    a = cr.tensor([1.0], requires_grad=True)
    with pytest.raises(ArgumentError):
        graph(a, show="everything")
    with pytest.raises(ArgumentError):
        graph(np.ones(2))
    with pytest.raises(ArgumentError, match="suffix"):
        graph(a * 2).save(tmp_path / "g.jpeg")


def test_graph_save_dot_and_text(tmp_path):
    a, b, c = _abc()
    g = graph((a * b + c).tanh())
    assert g.save(tmp_path / "g.dot").read_text() == g.to_dot()
    assert g.save(tmp_path / "g.txt").read_text() == g.to_text()


def test_graph_picture_without_graphviz_raises_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    g = graph(cr.tensor([1.0], requires_grad=True) * 2)
    with pytest.raises(ChainruleError, match="Graphviz"):
        g.save(tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()
    assert g._repr_svg_() is None


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz 'dot' is not installed")
def test_graph_svg_with_graphviz(tmp_path):  # pragma: no cover - needs Graphviz
    a, b, c = _abc()
    g = graph((a * b + c).tanh())
    assert "<svg" in g.save(tmp_path / "g.svg").read_text()
    assert "<svg" in g._repr_svg_()


# ---------------------------------------------------------------------------------------------------
# check_model
# ---------------------------------------------------------------------------------------------------
def _data(n=5, features=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, features))


@pytest.mark.parametrize("activation", [nn.Tanh, nn.Sigmoid, nn.ReLU])
def test_check_model_passes_for_mlps(activation):
    cr.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 6), activation(), nn.Linear(6, 2))
    result = check_model(model, _data(), _data(5, 2, seed=1), loss="mse")
    assert result.ok, str(result)
    assert [p.name for p in result.parameters] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(p.max_rel_error < 1e-5 for p in result.parameters)
    assert model[0].weight.dtype == np.float32  # the user's model is not converted


def test_check_model_tiny_cnn_and_lstm():
    cr.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * 2 * 2, 3))
    images = np.random.default_rng(0).normal(size=(2, 1, 6, 6))
    assert check_model(cnn, images, np.array([0, 2]), loss="cross_entropy").ok

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 4, batch_first=True)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            output, _ = self.lstm(x)
            return self.head(output[:, -1])

    sequences = np.random.default_rng(1).normal(size=(2, 3, 3))
    result = check_model(Recurrent(), sequences, np.array([1, 0]), loss="cross_entropy")
    assert result.ok, str(result)


class _Detached(nn.Module):
    """A layer whose forward uses the weight twice but whose graph sees it once: y = xWᵀ + (xWᵀ).detach()."""

    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(3, 3)
        self.broken = nn.Linear(3, 2)

    def forward(self, x):
        hidden = self.inner(x).tanh()
        product = self.broken(hidden)
        return product + product.detach()


def test_check_model_reports_a_broken_gradient_by_name():
    cr.manual_seed(0)
    result = check_model(_Detached(), _data(), _data(5, 2, seed=1), loss="mse")
    assert not result.ok
    assert "broken.weight" in result.failed and "broken.bias" in result.failed
    broken = result["broken.weight"]
    assert not broken.passed
    assert broken.numerical == pytest.approx(2 * broken.analytic, rel=1e-4)
    text = str(result)
    assert "FAIL" in text and "FAILED: " in text and "broken.weight" in text.splitlines()[-1]
    assert result.to_dict()["ok"] is False


def test_check_model_samples_big_parameters_reproducibly():
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 10), nn.Tanh(), nn.Linear(10, 1))
    x, y = _data(4, 30), _data(4, 1)
    first = check_model(model, x, y, max_elements=50)
    second = check_model(model, x, y, max_elements=50)
    assert first["0.weight"].checked == 50 and first["0.bias"].checked == 10
    assert first.to_dict() == second.to_dict()


def test_check_model_callable_loss_and_errors():
    cr.manual_seed(0)
    model = nn.Linear(3, 1)
    result = check_model(model, _data(), None, loss=lambda out, _: (out**2).mean())
    assert result.ok
    with pytest.raises(ArgumentError):
        check_model(model, _data(), _data(5, 1), loss="hinge")
    with pytest.raises(ArgumentError):
        check_model("not a model", _data(), _data(5, 1))


def test_gradcheck_command_report():
    report, ok = gradcheck_command("4,8,3", activation="tanh", loss="mse")
    assert ok
    lines = report.splitlines()
    assert lines[0] == "Gradient check: MLP 4-8-3 with tanh, mse loss, batch 4, seed 0"
    assert lines[1].split()[:3] == ["parameter", "shape", "checked"]
    assert lines[-1].startswith("all 4 parameters pass")
    _, ok = gradcheck_command("2,5,5,3", activation="relu", loss="cross_entropy", batch=6, seed=3)
    assert ok
    with pytest.raises(ArgumentError):
        gradcheck_command("4,x")
    with pytest.raises(ArgumentError):
        gradcheck_command("4", activation="tanh")
    with pytest.raises(ArgumentError):
        gradcheck_command("4,3", activation="swish")


# ---------------------------------------------------------------------------------------------------
# GradientMonitor
# ---------------------------------------------------------------------------------------------------
def _classification(n=64, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 2)).astype(np.float32)
    return x, (x[:, 0] * x[:, 1] > 0).astype(np.int64)


def test_monitor_records_every_layer_with_fit():
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 2))
    monitor = GradientMonitor(every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientWarning)
        fit(model, _classification(), epochs=2, batch_size=16, callbacks=[monitor], optimizer="sgd", lr=0.1, verbose=0)
    assert monitor.steps() == [2, 4, 6, 8]
    weights = [r for r in monitor.records if "grad_norm" in r]
    assert [r["layer"] for r in weights[:3]] == ["0", "2", "4"]
    # measured from the weights kept after the previous step (the exact value is checked in the next test)
    first = weights[0]
    assert first["update_ratio"] > 0 and math.isfinite(first["update_ratio"])
    activations = {r["type"]: r for r in monitor.records if "grad_norm" not in r}
    assert 0 <= activations["ReLU"]["dead_fraction"] <= 1
    assert 0 <= activations["Sigmoid"]["saturated_fraction"] <= 1
    assert all(not module._forward_hooks for module in model.modules())  # hooks removed at the end
    summary = monitor.summary()
    assert "update/weight" in summary and "dead" in summary and "saturated" in summary


def test_monitor_update_ratio_matches_sgd_formula():
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4, bias=False), nn.Tanh(), nn.Linear(4, 1, bias=False))
    optimizer = cr.optim.SGD(model.parameters(), lr=0.05)
    monitor = GradientMonitor()
    monitor.attach(model)
    x, y = cr.Tensor(_classification(8)[0]), cr.zeros(8, 1)
    before = model[0].weight.data.copy()
    loss = ((model(x) - y) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    record = monitor.record_step(1)[0]
    grad_norm = np.linalg.norm(model[0].weight.grad.data)
    assert record["grad_norm"] == pytest.approx(grad_norm, rel=1e-5)
    assert record["update_ratio"] == pytest.approx(0.05 * grad_norm / np.linalg.norm(before), rel=1e-4)
    monitor.detach()


def test_monitor_warns_about_exploding_gradients_once_per_layer():
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    for layer in (model[0], model[2], model[4]):
        nn.init.normal_(layer.weight, 0.0, 30.0)  # huge init: the logits and their gradients blow up
    monitor = GradientMonitor(explode_norm=1e3)
    with pytest.warns(GradientWarning, match="exploding gradients") as caught:
        fit(model, _classification(), epochs=2, batch_size=16, callbacks=[monitor], optimizer="sgd", lr=0.01, verbose=0)
    exploding = [w for w in caught if "exploding" in str(w.message)]
    layers = [layer for kind, layer, _ in monitor.warnings_ if kind == "exploding"]
    assert len(exploding) == len(layers) == len(set(layers)) >= 1  # once per layer, not every step
    message = str(exploding[0].message)
    assert "clip_grad_norm_" in message and "learning rate" in message and "layer '" in message


def test_monitor_detects_nonfinite_gradients():
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    monitor = GradientMonitor(stream=None)
    monitor.on_train_begin(SimpleNamespace(model=model, step=0))
    for param in model.parameters():
        param.grad = cr.ones(*param.shape)
    model[0].weight.grad.data[0, 0] = np.nan
    with pytest.warns(GradientWarning, match="non-finite gradient") as caught:
        monitor.on_batch_end(SimpleNamespace(model=model, step=1, epoch=1))
    assert len(caught) == 1 and "'0' (Linear)" in str(caught[0].message)
    assert monitor.warnings_[0][:2] == ("nonfinite", "0")
    monitor.on_train_end(SimpleNamespace(model=model))


def test_monitor_stream_and_no_warn(capsys):
    import sys

    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    monitor = GradientMonitor(warn=False, stream=sys.stdout, vanish_ratio=0.5)
    monitor.attach(model)
    model[0].weight.grad = cr.full((3, 2), 1e-6)
    model[1].weight.grad = cr.ones(1, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monitor.record_step(1)
        monitor.record_step(2)
    out = capsys.readouterr().out
    assert out.count("GradientWarning: vanishing gradients") == 1
    assert "ReLU or GELU" in out and "kaiming_normal_" in out


def test_monitor_validates_and_finds_layers():
    with pytest.raises(ArgumentError):
        GradientMonitor(every=0)
    with pytest.raises(ArgumentError):
        GradientMonitor(vanish_ratio=0)
    model = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.LSTM(3, 2))
    found = {name: len(weights) for name, _, weights in layers_with_weights(model)}
    assert found == {"0": 1, "1": 2, "2": 2}


@pytest.mark.skipif(not _has_matplotlib(), reason="needs matplotlib")
def test_monitor_plot(tmp_path):
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    monitor = GradientMonitor()
    fit(model, _classification(), epochs=1, batch_size=16, callbacks=[monitor], verbose=0)
    path = monitor.plot(tmp_path / "norms.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ChainruleError):
        GradientMonitor().plot(tmp_path / "empty.png")


# ---------------------------------------------------------------------------------------------------
# vanishing demo
# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo():
    return vanishing_demo(depth=10, width=32, steps=20, seed=0)


def test_vanishing_demo_measures_the_gap(demo):
    # Measured at these settings: sigmoid first/last ≈ 7e-9, ReLU + He ≈ 0.2.
    assert demo.sigmoid.ratio < 1e-5
    assert demo.relu.ratio > 0.1
    sigmoid_norms = demo.sigmoid.mean_norms()
    assert all(earlier < later for earlier, later in itertools.pairwise(sigmoid_norms))  # shrinks backwards
    assert len(sigmoid_norms) == len(demo.relu.mean_norms()) == 10
    assert demo.relu.losses[-1] < demo.relu.losses[0]


def test_vanishing_demo_warnings(demo):
    assert "vanishing" in demo.sigmoid.warnings
    assert demo.relu.warnings == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vanishing_demo(depth=6, width=8, steps=1, warn=True)
    messages = [str(w.message) for w in caught if issubclass(w.category, GradientWarning)]
    assert messages and messages[0].startswith("vanishing gradients at step 1: layer '0' (Linear)")


def test_vanishing_demo_report(demo):
    text = str(demo)
    assert "first ÷ last" in text and "sigmoid + standard init" in text and "ReLU + He init" in text
    assert text.splitlines()[-1].startswith("The sigmoid net's first layer gets")
    with pytest.raises(ArgumentError):
        vanishing_demo(depth=1)


@pytest.mark.skipif(not _has_matplotlib(), reason="needs matplotlib")
def test_vanishing_demo_plot(tmp_path):
    result = vanishing_demo(depth=4, width=8, steps=3, plot=tmp_path / "vanishing.png")
    assert result.plot_path.read_bytes()[:4] == b"\x89PNG"
    assert str(result.plot_path) in str(result)


def test_monitor_warns_about_dead_relus_and_saturated_units_that_stay():
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 2))
    model[0].bias.data[:6] = -100.0  # 6 of 8 units can never fire on these inputs: dead
    model[2].weight.data[:] = 50.0  # every sigmoid input is far from 0: saturated
    monitor = GradientMonitor(patience=3)
    with pytest.warns(GradientWarning) as caught:
        fit(model, _classification(), epochs=1, batch_size=16, callbacks=[monitor], optimizer="sgd", lr=0.0, verbose=0)
    kinds = {kind: layer for kind, layer, _ in monitor.warnings_}
    assert kinds["dead"] == "1" and kinds["saturated"] == "3"
    dead = next(str(w.message) for w in caught if "dead ReLUs" in str(w.message))
    assert "75% of the units of '1'" in dead and "LeakyReLU" in dead
    first_dead = [r for r in monitor.records if r.get("type") == "ReLU"]
    assert all(r["dead_fraction"] >= 0.75 for r in first_dead)


def test_monitor_needs_the_fraction_to_stay_high():
    monitor = GradientMonitor(patience=3, unit_fraction=0.5)
    for step, fraction in enumerate([0.9, 0.9, 0.1, 0.9, 0.9], start=1):
        monitor._check_units({"type": "ReLU", "layer": "1", "dead_fraction": fraction}, step)
    assert monitor.warnings_ == []  # never three high steps in a row
    with pytest.raises(cr.ArgumentError, match="unit_fraction"):
        GradientMonitor(unit_fraction=0)
    with pytest.raises(cr.ArgumentError, match="patience"):
        GradientMonitor(patience=0)


class _FunctionalReLUNet(nn.Module):
    """Linear → x.relu() (a function, not a module) → Linear: the ReLU is seen only at the second layer's input."""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.first = nn.Linear(2, hidden)
        self.second = nn.Linear(hidden, 2)

    def forward(self, x):
        return self.second(self.first(x).relu())


def test_monitor_sees_dead_units_of_a_functional_relu():
    cr.manual_seed(0)
    model = _FunctionalReLUNet()
    model.first.bias.data[:6] = -100.0  # 6 of 8 units never fire on these inputs
    monitor = GradientMonitor(patience=3)
    with pytest.warns(GradientWarning, match="dead units") as caught:
        fit(model, _classification(), epochs=1, batch_size=16, callbacks=[monitor], optimizer="sgd", lr=0.0, verbose=0)
    assert [(kind, layer) for kind, layer, _ in monitor.warnings_] == [("dead", "second")]
    message = next(str(w.message) for w in caught if "dead units" in str(w.message))
    assert "75% of the input units of layer 'second'" in message and "seen at the input of layer 'second'" in message
    second = [r for r in monitor.records if r["layer"] == "second"]
    assert len(second) == 4 and all(r["input_zero_fraction"] == 0.75 for r in second)
    first = [r for r in monitor.records if r["layer"] == "first"]
    assert all(math.isnan(r["input_zero_fraction"]) for r in first)  # the data is not counted
    assert "input zeros 75%" in monitor.summary()
    # hooks gone after fit
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())


def test_monitor_healthy_functional_relu_is_not_warned():
    cr.manual_seed(0)
    model = _FunctionalReLUNet(16)
    monitor = GradientMonitor(patience=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GradientWarning)
        fit(model, _classification(), epochs=1, batch_size=16, callbacks=[monitor], verbose=0)
    second = [r for r in monitor.records if r["layer"] == "second"]
    assert all(0 <= r["input_zero_fraction"] < 0.5 for r in second)


def test_monitor_output_grad_norm_matches_autograd_grad():
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    x = cr.Tensor(np.random.default_rng(1).normal(size=(4, 3)))
    target = cr.Tensor(np.random.default_rng(2).normal(size=(4, 2)))
    # independently: ∂L/∂y for each layer's output y, from chainrule.autograd.grad on the same forward
    h = model[0](x)
    a = model[1](h)
    out = model[2](a)
    loss = ((out - target) ** 2).sum()
    dh, dout = cr.autograd.grad(loss, [h, out])
    monitor = GradientMonitor()
    monitor.attach(model)
    model.zero_grad()
    ((model(x) - target) ** 2).sum().backward()
    records = {r["layer"]: r for r in monitor.record_step(1) if "grad_norm" in r}
    monitor.detach()
    assert records["0"]["output_grad_norm"] == pytest.approx(np.linalg.norm(dh.data), rel=1e-12)
    assert records["2"]["output_grad_norm"] == pytest.approx(np.linalg.norm(dout.data), rel=1e-12)
    assert np.linalg.norm(dout.data) != pytest.approx(np.linalg.norm(dh.data))  # the two differ: a real check
    assert all(not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())
