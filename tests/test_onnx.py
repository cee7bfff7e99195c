"""ONNX export: every layer and every ready-made CLI model computes the same in onnxruntime as in chainrule.

The table of measured differences (the README's) prints with::

    PYTHONPATH=src python -m pytest tests/test_onnx.py -q -s -k parity_table
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import chainrule as cr  # noqa: E402
import chainrule.onnx  # noqa: E402
from chainrule import nn  # noqa: E402
from chainrule.cli import main  # noqa: E402
from chainrule.errors import ArgumentError, DTypeError  # noqa: E402
from chainrule.nn import activation  # noqa: E402
from chainrule.train.models import MODELS, build_model  # noqa: E402

TOLERANCE = 1e-5  # float32, max absolute difference


def _normal(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _with_running_stats(layer: Any, features: int) -> Any:
    """A BatchNorm whose running statistics and affine parameters are not the defaults."""
    rng = np.random.default_rng(1)
    layer.running_mean.data[...] = rng.standard_normal(features)
    layer.running_var.data[...] = rng.uniform(0.5, 2.0, features)
    if layer.weight is not None:
        layer.weight.data[...] = rng.standard_normal(features)
        layer.bias.data[...] = rng.standard_normal(features)
    return layer


def _cli_model(kind: str) -> Any:
    return build_model({"model": kind, "input_shape": [1, 28, 28], "num_classes": 10, "hidden": [32], "dropout": 0.25})


# name -> (model builder, input shape (batch first) or an input maker, opset); every case also runs at another batch
IMAGE, SEQUENCE, VECTOR = (2, 3, 9, 9), (2, 5, 6), (3, 6)
CASES: dict[str, tuple[Callable[[], Any], Any, int]] = {
    "Linear": (lambda: nn.Linear(6, 4), VECTOR, 17),
    "Linear (3-d input, no bias)": (lambda: nn.Linear(6, 4, bias=False), SEQUENCE, 17),
    "Conv1d (stride 2, padding 1, dilation 2)": (
        lambda: nn.Conv1d(5, 4, 3, stride=2, padding=1, dilation=2),
        SEQUENCE[:1] + (5, 11),
        17,
    ),
    "Conv2d (padding same)": (lambda: nn.Conv2d(3, 4, 3, padding="same"), IMAGE, 17),
    "Conv2d (stride 2, no bias)": (lambda: nn.Conv2d(3, 4, (3, 2), stride=2, padding=(1, 0), bias=False), IMAGE, 17),
    "MaxPool1d": (lambda: nn.MaxPool1d(3, stride=2, padding=1), (2, 3, 10), 17),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), IMAGE, 17),
    "MaxPool2d (padding, dilation)": (lambda: nn.MaxPool2d(3, stride=2, padding=1, dilation=2), IMAGE, 17),
    "AvgPool1d": (lambda: nn.AvgPool1d(2), (2, 3, 10), 17),
    "AvgPool2d (padding counts)": (lambda: nn.AvgPool2d(3, stride=2, padding=1), IMAGE, 17),
    "AdaptiveAvgPool2d(1)": (lambda: nn.AdaptiveAvgPool2d(1), IMAGE, 17),
    "AdaptiveAvgPool2d(3)": (lambda: nn.AdaptiveAvgPool2d(3), IMAGE, 17),
    "BatchNorm1d (N, C)": (lambda: _with_running_stats(nn.BatchNorm1d(6), 6), VECTOR, 17),
    "BatchNorm1d (N, C, L)": (lambda: _with_running_stats(nn.BatchNorm1d(5, affine=False), 5), (2, 5, 6), 17),
    "BatchNorm2d": (lambda: _with_running_stats(nn.BatchNorm2d(3), 3), IMAGE, 17),
    "LayerNorm": (lambda: nn.LayerNorm(6), SEQUENCE, 17),
    "LayerNorm (2 axes, no affine)": (lambda: nn.LayerNorm((5, 6), elementwise_affine=False), SEQUENCE, 17),
    "Dropout (eval)": (lambda: nn.Dropout(0.5), VECTOR, 17),
    "Embedding": (
        lambda: nn.Embedding(10, 4),
        lambda batch: np.random.default_rng(batch).integers(0, 10, (batch, 7)),
        17,
    ),
    "Identity": (lambda: nn.Identity(), VECTOR, 17),
    "Flatten": (lambda: nn.Flatten(), IMAGE, 17),
    "Flatten(2, 3)": (lambda: nn.Flatten(2, 3), IMAGE, 17),
    "Unflatten": (lambda: nn.Unflatten(1, (2, 3)), VECTOR, 17),
    "Sigmoid": (lambda: nn.Sigmoid(), VECTOR, 17),
    "Tanh": (lambda: nn.Tanh(), VECTOR, 17),
    "ReLU": (lambda: nn.ReLU(), VECTOR, 17),
    "LeakyReLU(0.2)": (lambda: nn.LeakyReLU(0.2), VECTOR, 17),
    "ELU(0.7)": (lambda: nn.ELU(0.7), VECTOR, 17),
    "GELU (opset 17: Erf)": (lambda: nn.GELU(), VECTOR, 17),
    "GELU (opset 20: Gelu)": (lambda: nn.GELU(), VECTOR, 20),
    "SiLU": (lambda: nn.SiLU(), VECTOR, 17),
    "Softplus": (lambda: nn.Softplus(), VECTOR, 17),
    "Softplus(beta=2)": (lambda: nn.Softplus(beta=2.0), VECTOR, 17),
    "Softsign": (lambda: nn.Softsign(), VECTOR, 17),
    "SigmoidFamily(logistic)": (lambda: nn.SigmoidFamily("logistic"), VECTOR, 17),
    "SigmoidFamily(tanh)": (lambda: nn.SigmoidFamily("tanh"), VECTOR, 17),
    "SigmoidFamily(arctan)": (lambda: nn.SigmoidFamily("arctan"), VECTOR, 17),
    "SigmoidFamily(erf)": (lambda: nn.SigmoidFamily("erf"), VECTOR, 17),
    "SigmoidFamily(algebraic)": (lambda: nn.SigmoidFamily("algebraic"), VECTOR, 17),
    "SigmoidFamily(softsign)": (lambda: nn.SigmoidFamily("softsign"), VECTOR, 17),
    "SigmoidFamily(gudermannian)": (lambda: nn.SigmoidFamily("gudermannian"), VECTOR, 17),
    "Softmax(dim=1)": (lambda: nn.Softmax(dim=1), SEQUENCE, 17),
    "LogSoftmax": (lambda: nn.LogSoftmax(), VECTOR, 17),
    "Sequential (conv, BN, pool, MLP)": (
        lambda: nn.Sequential(
            nn.Conv2d(3, 4, 3),
            _with_running_stats(nn.BatchNorm2d(4), 4),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * 3 * 3, 5),
            nn.Dropout(0.3),
            nn.Tanh(),
            nn.Linear(5, 2),
            nn.LogSoftmax(dim=1),
        ),
        IMAGE,
        17,
    ),
    "RNN (tanh)": (lambda: nn.RNN(6, 5), (5, 2, 6), 17),
    "RNN (relu, 2 layers, batch_first)": (
        lambda: nn.RNN(6, 5, num_layers=2, nonlinearity="relu", batch_first=True),
        SEQUENCE,
        17,
    ),
    "RNN (unbatched)": (lambda: nn.RNN(6, 5), (5, 6), 17),
    "LSTM": (lambda: nn.LSTM(6, 5), (5, 2, 6), 17),
    "LSTM (2 layers, batch_first)": (lambda: nn.LSTM(6, 5, num_layers=2, batch_first=True), SEQUENCE, 17),
    "LSTM (no bias)": (lambda: nn.LSTM(6, 5, bias=False), (5, 2, 6), 17),
    "GRU": (lambda: nn.GRU(6, 5), (5, 2, 6), 17),
    "GRU (3 layers, batch_first)": (lambda: nn.GRU(6, 5, num_layers=3, batch_first=True), SEQUENCE, 17),
    "GRU (no bias, unbatched)": (lambda: nn.GRU(6, 5, bias=False), (5, 6), 17),
    **{f"CLI model {kind}": (functools.partial(_cli_model, kind), (2, 1, 28, 28), 17) for kind in MODELS},
}


def _flat(result: Any) -> list[np.ndarray]:
    if isinstance(result, cr.Tensor):
        return [result.data]
    return [array for part in result for array in _flat(part)]


def _batched(name: str, spec: Any) -> Callable[[int, int], np.ndarray]:
    """Inputs of the case at batch ``batch``: the batch axis is 1 for (T, N, F) and absent for unbatched (T, F)."""

    def make(batch: int, seed: int) -> np.ndarray:
        if callable(spec):
            return np.asarray(spec(batch), dtype=np.int64)
        shape = list(spec)
        if name.startswith(("RNN", "LSTM", "GRU")) and "batch_first" not in name:
            if len(shape) == 3:
                shape[1] = batch
            return _normal(*shape, seed=seed)
        shape[0] = batch
        return _normal(*shape, seed=seed)

    return make


@functools.cache
def max_difference(name: str) -> float:
    """Export case ``name`` at one batch size, run it in onnxruntime at two (the batch is dynamic), return the
    largest absolute difference from chainrule over every output."""
    build, spec, opset = CASES[name]
    cr.manual_seed(0)
    model = build()
    make = _batched(name, spec)
    proto = chainrule.onnx.to_onnx(model, make(2, 0), opset=opset)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch, seed in ((2, 1), (5, 2)):
        x = make(batch, seed)
        got = session.run(None, {"input": x})
        with cr.no_grad():
            expected = _flat(model.eval()(cr.tensor(x)))
        assert [g.shape for g in got] == [e.shape for e in expected], name
        worst = max(worst, *(float(np.max(np.abs(g - e))) for g, e in zip(got, expected)))
    return worst


@pytest.mark.parametrize("name", list(CASES))
def test_onnxruntime_computes_what_chainrule_computes(name):
    assert max_difference(name) <= TOLERANCE


def test_parity_table():
    """The README's table (``-s`` shows it)."""
    cells = [f"{name} | {max_difference(name):.1e}" for name in CASES]
    half = (len(cells) + 1) // 2
    rows = [f"| {left} | {right} |" for left, right in zip(cells[:half], [*cells[half:], " | "])]
    print("\n| layer | max abs diff | layer | max abs diff |\n|---|---|---|---|\n" + "\n".join(rows))
    assert all(max_difference(name) <= TOLERANCE for name in CASES)


def test_every_layer_and_activation_has_a_converter():
    layers = [getattr(nn, name) for name in nn.__all__ if isinstance(getattr(nn, name), type)]
    not_layers = {nn.Module, nn.Parameter, nn.ModuleList, nn.ModuleDict}
    losses = {cls for cls in layers if cls.__module__ == "chainrule.nn.loss"}
    exportable = [cls for cls in layers if cls not in not_layers | losses]
    missing = [cls.__name__ for cls in exportable if cls not in chainrule.onnx.CONVERTERS]
    assert missing == []
    assert all(getattr(activation, name) in chainrule.onnx.CONVERTERS for name in activation.__all__)


def test_recurrent_weights_are_reordered_to_onnx_gate_order():
    lstm = nn.LSTM(2, 3)
    proto = chainrule.onnx.to_onnx(lstm, _normal(4, 1, 2))
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert [n.op_type for n in proto.graph.node].count("LSTM") == 1  # ONNX's own op, not unrolled steps
    i, f, g, o = np.split(lstm.weight_ih_l0.data, 4)
    np.testing.assert_array_equal(weights["W_l0"][0], np.concatenate([i, o, f, g]))
    gru = nn.GRU(2, 3)
    proto = chainrule.onnx.to_onnx(gru, _normal(4, 1, 2))
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    r, z, n = np.split(gru.weight_hh_l0.data, 3)
    np.testing.assert_array_equal(weights["R_l0"][0], np.concatenate([z, r, n]))


def test_an_unbatched_sample_keeps_its_static_shape():
    proto = chainrule.onnx.to_onnx(nn.Sequential(nn.Linear(3, 2), nn.Tanh()), _normal(3))
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [3]
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": _normal(3)})[0].shape == (2,)


def test_export_writes_a_file_that_passes_the_full_checker_and_keeps_training_mode(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5), nn.BatchNorm1d(3))
    path = tmp_path / "model.onnx"
    chainrule.onnx.export(model, _normal(2, 4), path)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert model.training and all(m.training for m in model.modules())
    assert [i.name for i in loaded.graph.input] == ["input"] and [o.name for o in loaded.graph.output] == ["output"]
    assert loaded.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {"0.weight", "0.bias", "2.running_mean"} <= {t.name for t in loaded.graph.initializer}


def test_an_existing_file_is_replaced_only_with_overwrite(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"mine")
    with pytest.raises(ArgumentError, match="already exists; pass overwrite=True"):
        chainrule.onnx.export(nn.Linear(2, 2), _normal(1, 2), path)
    assert path.read_bytes() == b"mine"
    chainrule.onnx.export(nn.Linear(2, 2), _normal(1, 2), path, overwrite=True)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


class Doubler(nn.Module):
    def forward(self, x):
        return x * 2


def test_an_unsupported_layer_is_named_with_its_path():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), Doubler()))
    with pytest.raises(ArgumentError, match=r"no ONNX converter for layer Doubler at '1\.1'"):
        chainrule.onnx.to_onnx(model, _normal(1, 2))
    with pytest.raises(ArgumentError, match="Doubler .the model itself."):
        chainrule.onnx.to_onnx(Doubler(), _normal(1, 2))
    with pytest.raises(ArgumentError, match="BatchNorm1d at '0' has no running statistics"):
        chainrule.onnx.to_onnx(nn.Sequential(nn.BatchNorm1d(2, track_running_stats=False)), _normal(3, 2))
    with pytest.raises(ArgumentError, match="Linear at '1' receives a tuple"):
        chainrule.onnx.to_onnx(nn.Sequential(nn.GRU(2, 3), nn.Linear(3, 1)), _normal(4, 1, 2))
    with pytest.raises(ArgumentError, match="AdaptiveAvgPool2d at '' pools 9x9 to 2x2"):
        chainrule.onnx.to_onnx(nn.AdaptiveAvgPool2d(2), _normal(*IMAGE))


def test_bad_arguments_raise_chainrule_errors(tmp_path):
    with pytest.raises(ArgumentError, match="opset must be between 17 and"):
        chainrule.onnx.to_onnx(nn.Linear(2, 2), _normal(1, 2), opset=13)
    with pytest.raises(DTypeError, match="example_input is float64 but the model's parameters are float32"):
        chainrule.onnx.to_onnx(nn.Linear(2, 2), np.zeros((1, 2)))
    with pytest.raises(ArgumentError, match="must be a chainrule Module"):
        chainrule.onnx.to_onnx(lambda x: x, _normal(1, 2))
    with pytest.raises(ArgumentError, match="is a directory"):
        chainrule.onnx.export(nn.Linear(2, 2), _normal(1, 2), tmp_path)


def test_cli_exports_a_trained_run(tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--data", "xor", "--hidden", "4", "--epochs", "1", "--quiet", "--no-plots"]
    assert main(["train", *flags, "--out", str(run)]) == 0
    target = tmp_path / "model.onnx"
    assert main(["export", str(run), "--onnx", str(target)]) == 0
    assert "output (batch, 2)" in capsys.readouterr().out
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    model, _ = cr.train.load_run(run)
    x = _normal(7, 2)
    with cr.no_grad():
        expected = model(cr.tensor(x)).data
    np.testing.assert_allclose(session.run(None, {"input": x})[0], expected, atol=TOLERANCE, rtol=0)

    assert main(["export", str(run), "--onnx", str(target)]) == 1  # exists
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists; pass --force" in err
    assert main(["export", str(run), "--onnx", str(target), "--force"]) == 0
    assert main(["export", str(tmp_path / "nothing"), "--onnx", str(tmp_path / "x.onnx")]) == 1
    assert "is not a run directory" in capsys.readouterr().err


def _readme_python(title: str) -> str:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index(f"## {title}\n") :].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return block


def test_the_readme_snippet_runs_as_written_twice(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    snippet = _readme_python("ONNX export")
    for _ in range(2):  # overwrite=True: a second run replaces the file
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(snippet, "README.md", "exec"), {})
        assert float(printed.getvalue()) <= TOLERANCE
