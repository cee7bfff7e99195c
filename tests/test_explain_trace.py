"""explain.trace and the worked example: every number against a hand calculation, the engine and
finite differences; renderers; errors; the ``chainrule explain`` command."""

from __future__ import annotations

import copy
import itertools
import json
import math
import re

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.cli import main
from chainrule.errors import ArgumentError, ShapeError
from chainrule.explain import (
    Trace,
    explain_network,
    trace,
    train_steps,
    worked_example,
    worked_example_model,
    worked_example_trace,
)


# ---------------------------------------------------------------------------------------------------
# The worked example by hand: plain Python floats, no chainrule
# ---------------------------------------------------------------------------------------------------
def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def worked_by_hand(w, b1=0.35, b2=0.60, i1=0.05, i2=0.10, t1=0.01, t2=0.99, lr=0.5):
    """One step of the 2-2-2 sigmoid network, written out: returns every number of the tables."""
    w1, w2, w3, w4, w5, w6, w7, w8 = w
    net_h1 = w1 * i1 + w2 * i2 + b1
    net_h2 = w3 * i1 + w4 * i2 + b1
    out_h1, out_h2 = sigmoid(net_h1), sigmoid(net_h2)
    net_o1 = w5 * out_h1 + w6 * out_h2 + b2
    net_o2 = w7 * out_h1 + w8 * out_h2 + b2
    out_o1, out_o2 = sigmoid(net_o1), sigmoid(net_o2)
    e_o1, e_o2 = 0.5 * (t1 - out_o1) ** 2, 0.5 * (t2 - out_o2) ** 2
    # output layer: dE/dout = -(target - out), dout/dnet = out (1 - out)
    de_dout_o1, de_dout_o2 = -(t1 - out_o1), -(t2 - out_o2)
    dout_dnet_o1, dout_dnet_o2 = out_o1 * (1 - out_o1), out_o2 * (1 - out_o2)
    delta_o1, delta_o2 = de_dout_o1 * dout_dnet_o1, de_dout_o2 * dout_dnet_o2
    # hidden layer: the error of h1 arrives by two paths, through o1 (w5) and o2 (w7)
    de_dout_h1 = delta_o1 * w5 + delta_o2 * w7
    de_dout_h2 = delta_o1 * w6 + delta_o2 * w8
    dout_dnet_h1, dout_dnet_h2 = out_h1 * (1 - out_h1), out_h2 * (1 - out_h2)
    delta_h1, delta_h2 = de_dout_h1 * dout_dnet_h1, de_dout_h2 * dout_dnet_h2
    # rows in backward order: (name, dE/dout, dout/dnet, dnet/dp, grad, paths, old)
    backward = [
        ("o1", "w5", de_dout_o1, dout_dnet_o1, out_h1, delta_o1 * out_h1, None, w5),
        ("o1", "w6", de_dout_o1, dout_dnet_o1, out_h2, delta_o1 * out_h2, None, w6),
        ("o1", "b2", de_dout_o1, dout_dnet_o1, 1.0, delta_o1, None, b2),
        ("o2", "w7", de_dout_o2, dout_dnet_o2, out_h1, delta_o2 * out_h1, None, w7),
        ("o2", "w8", de_dout_o2, dout_dnet_o2, out_h2, delta_o2 * out_h2, None, w8),
        ("o2", "b2", de_dout_o2, dout_dnet_o2, 1.0, delta_o2, None, b2),
        ("h1", "w1", de_dout_h1, dout_dnet_h1, i1, delta_h1 * i1, 2, w1),
        ("h1", "w2", de_dout_h1, dout_dnet_h1, i2, delta_h1 * i2, 2, w2),
        ("h1", "b1", de_dout_h1, dout_dnet_h1, 1.0, delta_h1, 2, b1),
        ("h2", "w3", de_dout_h2, dout_dnet_h2, i1, delta_h2 * i1, 2, w3),
        ("h2", "w4", de_dout_h2, dout_dnet_h2, i2, delta_h2 * i2, 2, w4),
        ("h2", "b1", de_dout_h2, dout_dnet_h2, 1.0, delta_h2, 2, b1),
    ]
    new = {name: old - lr * grad for _, name, _, _, _, grad, _, old in backward if name.startswith("w")}
    return {
        "forward": [
            ("h1", (w1, i1, w2, i2, b1), net_h1, out_h1),
            ("h2", (w3, i1, w4, i2, b1), net_h2, out_h2),
            ("o1", (w5, out_h1, w6, out_h2, b2), net_o1, out_o1),
            ("o2", (w7, out_h1, w8, out_h2, b2), net_o2, out_o2),
        ],
        "terms": [("o1", t1, out_o1, e_o1), ("o2", t2, out_o2, e_o2)],
        "total": e_o1 + e_o2,
        "backward": backward,
        "new": new,
    }


WEIGHTS = (0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55)


def g(value):
    """How the tables print a number."""
    return "0" if value == 0 else f"{value:.9g}"


def text_rows(text, title_start):
    """The rows of the text table whose title starts with ``title_start``, as lists of cells."""
    block = next(b for b in text.split("\n\n") if b.startswith(title_start))
    lines = block.splitlines()[4:]  # title, underline, headers, rule
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


# ---------------------------------------------------------------------------------------------------
# The worked example
# ---------------------------------------------------------------------------------------------------
def test_worked_example_rows_equal_the_hand_calculation():
    hand = worked_by_hand(WEIGHTS)
    t = worked_example_trace()
    assert [r.label for r in t.forward_rows] == ["h1", "h2", "o1", "o2"]
    for row, (label, _, net, out) in zip(t.forward_rows, hand["forward"]):
        assert row.label == label and row.activation == "Sigmoid"
        assert row.net == pytest.approx(net, rel=1e-14) and row.out == pytest.approx(out, rel=1e-14)
    assert [(r.label, r.target, r.term) for r in t.loss_terms] == [
        (label, target, pytest.approx(term, rel=1e-14)) for label, target, _, term in hand["terms"]
    ]
    assert t.loss == pytest.approx(hand["total"], rel=1e-14)
    assert len(t.backward_rows) == len(hand["backward"])
    for row, (neuron, name, de_dout, dout_dnet, dnet_dp, grad, paths, old) in zip(t.backward_rows, hand["backward"]):
        assert (row.neuron_label, row.name, row.paths) == (neuron, name, paths)
        assert row.de_dout == pytest.approx(de_dout, rel=1e-13)
        assert row.dout_dnet == pytest.approx(dout_dnet, rel=1e-13)
        assert row.dnet_dparam == pytest.approx(dnet_dp, rel=1e-14)
        assert row.grad == pytest.approx(grad, rel=1e-12)
        assert row.old == old
        if name.startswith("b"):
            assert row.frozen and row.new == old  # the textbook keeps its biases
        else:
            assert not row.frozen and row.new == pytest.approx(hand["new"][name], rel=1e-14)


def test_worked_example_matches_the_textbook_to_8_decimals():
    model = worked_example_model()
    assert model[0].weight.dtype == np.float64 and [type(m).__name__ for m in model] == ["Linear", "Sigmoid"] * 2
    assert model[0].weight.tolist() == [[0.15, 0.20], [0.25, 0.30]] and model[0].bias.tolist() == [0.35, 0.35]
    t = worked_example_trace()
    forward = {r.label: r for r in t.forward_rows}
    assert round(forward["h1"].net, 8) == 0.3775
    textbook_outs = {"h1": 0.593269992, "h2": 0.596884378, "o1": 0.75136507, "o2": 0.772928465}
    for label, value in textbook_outs.items():
        assert forward[label].out == pytest.approx(value, abs=5e-9)
    assert t.loss == pytest.approx(0.298371109, abs=5e-9)
    new = {r.name: r.new for r in t.backward_rows if r.kind == "weight"}
    textbook_new = {
        "w5": 0.35891648, "w6": 0.408666186, "w7": 0.511301270, "w8": 0.561370121,
        "w1": 0.149780716, "w2": 0.19956143, "w3": 0.24975114, "w4": 0.29950229,
    }  # fmt: skip
    for name, value in textbook_new.items():
        assert new[name] == pytest.approx(value, abs=1e-8), name


def test_worked_example_text_prints_exactly_the_hand_numbers():
    hand = worked_by_hand(WEIGHTS)
    text = worked_example_trace().to_text()

    forward = text_rows(text, "Forward pass")
    assert len(forward) == 4
    for cells, (label, (wa, xa, wb, xb, bias), net, out) in zip(forward, hand["forward"]):
        layer = "1" if label.startswith("h") else "2"
        numbers = f"{g(wa)}×{g(xa)} + {g(wb)}×{g(xb)} + {g(bias)}"
        assert cells[0] == layer and cells[1] == label
        assert cells[3:] == [numbers, g(net), "Sigmoid", g(out)]

    loss = text_rows(text, "Loss: E = ½ Σ (target − out)²")
    assert loss == [[label, g(t), g(o), g(term)] for label, t, o, term in hand["terms"]] + [["total", g(hand["total"])]]

    backward = text_rows(text, "Backward pass")
    expected = []
    for neuron, name, de_dout, dout_dnet, dnet_dp, grad, paths, _ in hand["backward"]:
        layer = "2" if neuron.startswith("o") else "1"
        middle = [] if paths is None else [str(paths)]
        expected.append([layer, neuron, name, g(de_dout), *middle, g(dout_dnet), g(dnet_dp), g(grad)])
    assert backward == expected

    update = text_rows(text, "SGD step: new = old − lr · ∂E/∂p, lr = 0.5")
    expected = []
    for neuron, name, _, _, _, grad, _, old in hand["backward"]:
        layer = "2" if neuron.startswith("o") else "1"  # every parameter names its layer
        new = "(frozen)" if name.startswith("b") else g(hand["new"][name])
        expected.append([layer, name, g(old), g(grad), new])
    assert update == expected


def test_error_after_10000_steps_equals_a_hand_training_loop():
    w = list(WEIGHTS)
    for _ in range(10_000):
        step = worked_by_hand(w)
        w = [step["new"][f"w{k}"] for k in range(1, 9)]
    by_hand = worked_by_hand(w)["total"]
    losses = worked_example_trace().step_losses(10_000)
    assert len(losses) == 10_001
    assert losses[0] == pytest.approx(0.298371109, abs=5e-9)
    assert losses[-1] == pytest.approx(by_hand, rel=1e-9)
    assert losses[-1] == pytest.approx(0.0000351085, abs=1e-8)  # the textbook's figure, to its rounding


def test_worked_example_text_and_formats():
    text = worked_example(steps=3)
    for part in ("Forward pass", "Loss: E = ½ Σ", "Backward pass", "SGD step", "error after N steps"):
        assert part in text
    data = json.loads(worked_example(steps=3, format="json"))
    assert data["loss"] == worked_example_trace().loss and set(data["errors_after"]) == {"3"}
    assert "<table>" in worked_example(steps=0, format="html")
    assert "| w5 |" in worked_example(steps=0, format="markdown")
    with pytest.raises(ValueError, match="format"):
        worked_example(steps=0, format="pdf")


# ---------------------------------------------------------------------------------------------------
# Any small network: the engine, finite differences, fan-out
# ---------------------------------------------------------------------------------------------------
def tanh_net(widths=(2, 3, 1), seed=0, activation=nn.Tanh):
    cr.manual_seed(seed)
    modules = []
    for fan_in, fan_out in itertools.pairwise(widths):
        modules += [nn.Linear(fan_in, fan_out), activation()]
    return nn.Sequential(*modules[:-1])


def as_target(target):
    """float64 targets (a float32 0.7 is not 0.7), integer class indices as they are."""
    array = np.asarray(target)
    return cr.tensor(array if array.dtype.kind == "i" else array.astype(np.float64))


def loss_at(model, x, target, loss_fn):
    with cr.no_grad():
        return float(loss_fn(model(cr.tensor([x], dtype=cr.float64)), as_target(target)).item())


def finite_differences(model, x, target, loss_fn, eps=1e-6):
    """Central differences of the loss for every weight and bias, in float64, keyed like trace's keys."""
    model = copy.deepcopy(model).double()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    grads = {}
    for number, linear in enumerate(linears, start=1):
        for kind, param in (("w", linear.weight), ("b", linear.bias)):
            for index in np.ndindex(param.shape):
                saved = param.data[index]
                param.data[index] = saved + eps
                up = loss_at(model, x, target, loss_fn)
                param.data[index] = saved - eps
                down = loss_at(model, x, target, loss_fn)
                param.data[index] = saved
                grads[f"L{number}.{kind}[{','.join(map(str, index))}]"] = (up - down) / (2 * eps)
    return grads


def engine_grads(model, x, target, loss_fn):
    model = copy.deepcopy(model).double()
    loss_fn(model(cr.tensor([x], dtype=cr.float64)), as_target(target)).backward()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    grads = {}
    for number, linear in enumerate(linears, start=1):
        for kind, param in (("w", linear.weight), ("b", linear.bias)):
            for index in np.ndindex(param.shape):
                grads[f"L{number}.{kind}[{','.join(map(str, index))}]"] = float(param.grad.data[index])
    return grads


def test_tanh_2_3_1_gradients_equal_engine_and_finite_differences():
    model = tanh_net()
    x, target = [1.0, -0.5], [0.7]
    t = trace(model, x, target, loss="mse", lr=0.1)
    assert len(t.forward_rows) == 4 and len(t.backward_rows) == 3 * 3 + 4
    engine = engine_grads(model, x, [target], cr.nn.functional.mse_loss)
    numeric = finite_differences(model, x, [target], cr.nn.functional.mse_loss)
    assert {row.key for row in t.backward_rows} == set(engine)
    for row in t.backward_rows:
        assert row.grad == pytest.approx(engine[row.key], rel=1e-12, abs=1e-15)
        assert row.grad == pytest.approx(numeric[row.key], rel=1e-6, abs=1e-9)
        assert row.grad == pytest.approx(row.de_dout * row.dout_dnet * row.dnet_dparam, rel=1e-12, abs=1e-15)
        assert row.new == pytest.approx(row.old - 0.1 * row.grad, rel=1e-14)
    hidden = [r for r in t.forward_rows if r.layer == 1]
    for row in t.backward_rows:
        if row.layer == 1:
            assert row.dout_dnet == pytest.approx(1 - math.tanh(hidden[row.neuron].net) ** 2, rel=1e-12)


@pytest.mark.parametrize(
    ("loss", "target", "loss_fn", "last"),
    [
        ("sse", [0.3, -0.2], lambda o, t: cr.nn.functional.mse_loss(o, t, "sum"), None),
        ("half_sse", [0.3, -0.2], lambda o, t: 0.5 * cr.nn.functional.mse_loss(o, t, "sum"), None),
        ("bce", [1.0, 0.0], cr.nn.functional.binary_cross_entropy, nn.Sigmoid),
        ("cross_entropy", 1, cr.nn.functional.cross_entropy, None),
        (nn.MSELoss(), [0.3, -0.2], cr.nn.functional.mse_loss, None),
    ],
)
def test_other_losses_match_finite_differences_and_terms_sum_to_the_loss(loss, target, loss_fn, last):
    model = tanh_net((3, 4, 2), seed=1, activation=nn.ReLU)
    if last is not None:
        model.append(last())
    x = [0.5, -1.0, 2.0]
    t = trace(model, x, target, loss=loss)
    numeric = finite_differences(model, x, [target], loss_fn)
    for row in t.backward_rows:
        assert row.grad == pytest.approx(numeric[row.key], rel=1e-5, abs=1e-8), row.key
    if t.loss_terms:
        assert sum(term.term for term in t.loss_terms) == pytest.approx(t.loss, rel=1e-12)
    else:
        assert isinstance(loss, nn.Module)


def test_fan_out_paths_count_the_downstream_neurons():
    model = tanh_net((2, 3, 4, 1), seed=2)
    t = trace(model, [0.3, 0.9], [0.5])
    for row in t.backward_rows:
        expected = {1: 4, 2: 1, 3: None}[row.layer]
        assert row.paths == expected
        if expected is not None:
            assert len(row.path_terms) == expected
            assert sum(row.path_terms) == pytest.approx(row.de_dout, rel=1e-12, abs=1e-15)
    text_paths = {cells[4] for cells in text_rows(t.to_text(), "Backward pass") if cells[0] == "1"}
    assert text_paths == {"4"}


def test_activation_modules_of_all_kinds():
    for activation in (nn.Sigmoid, nn.ReLU, lambda: nn.LeakyReLU(0.2), nn.GELU, nn.Identity, nn.SiLU):
        model = tanh_net((2, 3, 2), seed=3, activation=activation)
        t = trace(model, [0.4, -0.8], [0.1, 0.2], loss="half_sse")
        numeric = finite_differences(model, [0.4, -0.8], [[0.1, 0.2]], lambda o, t: 0.5 * ((o - t) ** 2).sum())
        for row in t.backward_rows:
            assert row.grad == pytest.approx(numeric[row.key], rel=1e-5, abs=1e-8)


def test_the_users_model_is_unchanged_unless_apply():
    model = tanh_net()
    before = [p.data.copy() for p in model.parameters()]
    t = trace(model, [1.0, 0.0], [1.0], lr=0.5)
    for param, saved in zip(model.parameters(), before):
        assert param.dtype == np.float32 and np.array_equal(param.data, saved) and param.grad is None
    assert not t.applied
    t = trace(model, [1.0, 0.0], [1.0], lr=0.5, apply=True)
    assert t.applied
    assert float(model[2].bias.data[0]) == pytest.approx(t.backward_rows[3].new, rel=1e-6)
    assert model[0].weight.dtype == np.float32
    # step_losses after apply starts from the weights before the step
    assert t.step_losses(0) == [pytest.approx(t.loss)]


def test_train_steps_reduces_the_error_and_leaves_the_model():
    model = tanh_net()
    before = model[0].weight.data.copy()
    losses = train_steps(model, [1.0, 0.0], [1.0], loss="mse", lr=0.1, steps=30)
    assert len(losses) == 31 and losses[-1] < losses[0]
    assert np.array_equal(model[0].weight.data, before)
    with pytest.raises(ArgumentError, match="steps"):
        train_steps(model, [1.0, 0.0], [1.0], steps=-1)


# ---------------------------------------------------------------------------------------------------
# Renderers
# ---------------------------------------------------------------------------------------------------
def test_renderers():
    t = trace(tanh_net(), [1.0, 0.0], [1.0], names={"L1.w[0,0]": "<w&1>", "x[0]": "a|b"})
    text = str(t)
    assert text == t.to_text()
    assert "Forward pass" in text and "Backward pass" in text and "<w&1>" in text

    markdown = t.to_markdown()
    assert "| layer | neuron |" in markdown and "|---|" in markdown and "a\\|b" in markdown

    page = t._repr_html_()
    assert page == t.to_html() and "<table>" in page and "<th>layer</th>" in page
    assert "&lt;w&amp;1&gt;" in page and "<w&1>" not in page

    data = json.loads(t.to_json())
    assert data == json.loads(json.dumps(t.to_dict()))
    assert data["loss"] == t.loss
    assert [row["grad"] for row in data["backward"]] == [row.grad for row in t.backward_rows]
    assert [row["out"] for row in data["forward"]] == [row.out for row in t.forward_rows]
    assert isinstance(t, Trace)


# ---------------------------------------------------------------------------------------------------
# Errors name the layer and the shapes
# ---------------------------------------------------------------------------------------------------
def test_bad_models_and_data_raise_clear_errors():
    with pytest.raises(ArgumentError, match=r"module 0 \(Conv1d\) is not supported"):
        trace(nn.Sequential(nn.Conv1d(1, 1, 3), nn.Linear(2, 1)), [1.0, 2.0], [1.0])
    with pytest.raises(ArgumentError, match=r"module 1 \(Softmax\)"):
        trace(nn.Sequential(nn.Linear(2, 2), nn.Softmax()), [1.0, 2.0], [1.0, 0.0])
    with pytest.raises(ShapeError, match=r"layer 1 \(Linear\(in_features=2.*expects 2 inputs, got x of shape \(3,\)"):
        trace(tanh_net(), [1.0, 2.0, 3.0], [1.0])
    with pytest.raises(
        ShapeError, match=r"target has shape \(2,\) but the last layer \(layer 2.*expected shape \(1,\)"
    ):
        trace(tanh_net(), [1.0, 2.0], [1.0, 0.0])
    with pytest.raises(ShapeError, match=r"module 1 \(Linear\) expects 4 inputs but layer 1 gives 3"):
        trace(nn.Sequential(nn.Linear(2, 3), nn.Linear(4, 1)), [1.0, 2.0], [1.0])
    with pytest.raises(ArgumentError, match="class index in \\[0, 1\\)"):
        trace(tanh_net(), [1.0, 2.0], 3, loss="cross_entropy")
    with pytest.raises(ArgumentError, match="unknown loss 'hinge'"):
        trace(tanh_net(), [1.0, 2.0], [1.0], loss="hinge")
    with pytest.raises(ArgumentError, match="unknown key 'w1'"):
        trace(tanh_net(), [1.0, 2.0], [1.0], names={"w1": "w1"})
    with pytest.raises(ArgumentError, match="lr"):
        trace(tanh_net(), [1.0, 2.0], [1.0], lr=float("nan"))

    class Mixing(nn.Module):  # not elementwise: every output depends on every input
        def forward(self, x):
            return x * x.sum()

    with pytest.raises(ArgumentError, match=r"module 1 \(Mixing\) is not elementwise"):
        trace(nn.Sequential(nn.Linear(2, 2), Mixing()), [1.0, 2.0], [1.0, 0.0])


# ---------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------
def test_cli_worked_example(capsys):
    assert main(["explain", "worked-example", "--steps", "5"]) == 0
    out = capsys.readouterr().out
    assert "0.298371109" in out and "0.35891648" in out and "0.149780716" in out
    assert main(["explain", "worked-example", "--steps", "0", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] == pytest.approx(0.298371109, abs=5e-9)


def test_cli_custom_network(capsys, tmp_path):
    args = ["explain", "--model", "2,3,1", "--activation", "tanh", "--loss", "mse", "--input", "1,0"]
    assert main([*args, "--target", "1", "--seed", "0", "--lr", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "Forward pass" in out and "Tanh" in out
    expected = explain_network([2, 3, 1], [1.0, 0.0], [1.0], activation="tanh", seed=0).to_text()
    assert out == expected

    weights = {"layers": [{"weight": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], "bias": [0, 0, 0]}]}
    weights["layers"].append({"weight": [[1.0, -1.0, 0.5]], "bias": [0.25]})
    path = tmp_path / "w.json"
    path.write_text(json.dumps(weights))
    assert main([*args, "--target", "1", "--weights", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["forward"][0]["weights"] == [0.1, 0.2] and data["forward"][3]["bias"] == 0.25


def test_cli_bad_values_exit_2_and_bad_weights_exit_1(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["explain", "--model", "2,x", "--input", "1,0", "--target", "1"])
    assert info.value.code == 2
    assert "--model: expected comma-separated" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["explain", "--input", "1,0"])
    assert info.value.code == 2
    assert "needs --model, --target" in capsys.readouterr().err

    path = tmp_path / "w.json"
    path.write_text(json.dumps({"layers": [{"weight": [[1.0, 2.0]], "bias": [0.0]}, {"weight": [[1.0]], "bias": [0]}]}))
    assert main(["explain", "--model", "2,3,1", "--input", "1,0", "--target", "1", "--weights", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chainrule: error: ") and err.count("\n") == 1
    assert "layer 1 weight has shape (1, 2), expected (3, 2)" in err
    path.write_text("{not json")
    assert main(["explain", "--model", "2,1", "--input", "1,0", "--target", "1", "--weights", str(path)]) == 1
    assert "not valid JSON" in capsys.readouterr().err
