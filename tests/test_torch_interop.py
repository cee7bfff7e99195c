"""PyTorch weights in and out: safetensors files move a state dict between PyTorch and chainrule unchanged.

In: ``safetensors.torch.save_file(torch_model.state_dict(), path)``, then
``model.load_state_dict(cr.io.load_safetensors(path))``. Out: ``cr.save(model.state_dict(), path)``, then
``torch_model.load_state_dict(safetensors.torch.load_file(path))``. Both ways the two models then compute the
same outputs (float32, max abs difference <= 1e-6); the table prints with::

    PYTHONPATH=src python -m pytest tests/test_torch_interop.py -q -s -k interop_table
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

import chainrule as cr
from chainrule import nn
from chainrule.train.models import SequenceClassifier, build_model
from helpers import TORCH_MISSING, torch

pytestmark = pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
safetensors_torch = pytest.importorskip("safetensors.torch", reason="the io extra: pip install 'chainrule[io]'")

TOLERANCE = 1e-6


def _twin(module: Any) -> Any:
    """The PyTorch module with the same structure, names and hyperparameters as chainrule's ``module``."""
    tnn = torch.nn
    kind = type(module)
    if kind is nn.Sequential:
        return tnn.Sequential(*(_twin(child) for child in module))
    if kind is SequenceClassifier:
        return _TorchSequenceClassifier(_twin(module.rnn), _twin(module.head))
    if kind is nn.Linear:
        return tnn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
    if kind in (nn.Conv1d, nn.Conv2d):
        return getattr(tnn, kind.__name__)(
            module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
            padding=module.padding, dilation=module.dilation, bias=module.bias is not None,
        )  # fmt: skip
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
        return getattr(tnn, kind.__name__)(module.num_features, eps=module.eps, affine=module.affine)
    if kind is nn.LayerNorm:
        return tnn.LayerNorm(module.normalized_shape, eps=module.eps, elementwise_affine=module.weight is not None)
    if kind is nn.Embedding:
        return tnn.Embedding(module.num_embeddings, module.embedding_dim)
    if kind in (nn.RNN, nn.LSTM, nn.GRU):
        extra = {"nonlinearity": module.nonlinearity} if kind is nn.RNN else {}
        return getattr(tnn, kind.__name__)(
            module.input_size, module.hidden_size, num_layers=module.num_layers, bias=module.bias,
            batch_first=module.batch_first, **extra,
        )  # fmt: skip
    if kind is nn.MaxPool2d:
        return tnn.MaxPool2d(module.kernel_size, module.stride, module.padding)
    if kind is nn.Dropout:
        return tnn.Dropout(module.p)
    if kind is nn.Flatten:
        return tnn.Flatten(module.start_dim, module.end_dim)
    return getattr(tnn, kind.__name__)()  # the activations without arguments


class _TorchSequenceClassifier(torch.nn.Module if torch is not None else object):  # type: ignore[misc]
    """PyTorch's form of :class:`chainrule.train.models.SequenceClassifier` (the same forward)."""

    def __init__(self, rnn: Any, head: Any) -> None:
        super().__init__()
        self.rnn, self.head = rnn, head

    def forward(self, x: Any) -> Any:
        if x.ndim == 4:
            x = x.reshape(x.shape[0], x.shape[2], x.shape[3])
        output, _ = self.rnn(x)
        return self.head(output[:, -1])


def _cli_model(kind: str) -> Any:
    return build_model({"model": kind, "input_shape": [1, 28, 28], "num_classes": 10, "hidden": [32], "dropout": 0.2})


# name -> (chainrule model builder, input shape or an input maker)
IMAGE = (4, 3, 9, 9)
CASES: dict[str, tuple[Callable[[], Any], Any]] = {
    "Linear": (lambda: nn.Linear(6, 4), (4, 6)),
    "Conv1d (stride 2, padding 1, dilation 2)": (
        lambda: nn.Conv1d(5, 4, 3, stride=2, padding=1, dilation=2),
        (4, 5, 11),
    ),
    "Conv2d": (lambda: nn.Conv2d(3, 4, 3, padding=1), IMAGE),
    "Conv2d (no bias, stride 2)": (lambda: nn.Conv2d(3, 4, (3, 2), stride=2, bias=False), IMAGE),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(6), (4, 6)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3), IMAGE),
    "LayerNorm": (lambda: nn.LayerNorm((5, 6)), (4, 5, 6)),
    "Embedding": (lambda: nn.Embedding(10, 4), lambda: np.random.default_rng(3).integers(0, 10, (4, 7))),
    "RNN (relu, 2 layers)": (lambda: nn.RNN(6, 5, num_layers=2, nonlinearity="relu"), (7, 4, 6)),
    "LSTM (2 layers, batch_first)": (lambda: nn.LSTM(6, 5, num_layers=2, batch_first=True), (4, 7, 6)),
    "LSTM (no bias)": (lambda: nn.LSTM(6, 5, bias=False), (7, 4, 6)),
    "GRU (2 layers)": (lambda: nn.GRU(6, 5, num_layers=2), (7, 4, 6)),
    **{f"CLI model {kind}": (functools.partial(_cli_model, kind), (4, 1, 28, 28)) for kind in ("mlp", "cnn", "gru")},
    "CLI model lstm": (functools.partial(_cli_model, "lstm"), (4, 1, 28, 28)),
}


def _input(spec: Any) -> np.ndarray:
    if callable(spec):
        return np.asarray(spec(), dtype=np.int64)
    return np.random.default_rng(2).standard_normal(spec).astype(np.float32)


def _flat(result: Any) -> list[np.ndarray]:
    if isinstance(result, cr.Tensor):
        return [result.data]
    if torch is not None and isinstance(result, torch.Tensor):
        return [result.detach().numpy()]
    return [array for part in result for array in _flat(part)]


def _outputs_differ(model: Any, twin: Any, x: np.ndarray) -> float:
    model.eval()
    twin.eval()
    with cr.no_grad():
        ours = _flat(model(cr.tensor(x)))
    with torch.no_grad():
        theirs = _flat(twin(torch.from_numpy(x)))
    assert [a.shape for a in ours] == [b.shape for b in theirs]
    return max(float(np.max(np.abs(a - b))) for a, b in zip(ours, theirs))


def _trained_statistics(twin: Any, x: np.ndarray) -> None:
    """Give PyTorch's BatchNorm layers running statistics and a batch count that are not the defaults."""
    if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in twin.modules()):
        twin.train()
        with torch.no_grad():
            for _ in range(3):
                twin(torch.from_numpy(x) * 2 + 1)


def torch_to_chainrule(name: str, path: str) -> float:
    build, spec = CASES[name]
    cr.manual_seed(0)
    torch.manual_seed(0)
    model, x = build(), _input(spec)
    twin = _twin(model)
    _trained_statistics(twin, x)
    safetensors_torch.save_file(twin.state_dict(), path)
    result = model.load_state_dict(cr.io.load_safetensors(path))
    assert result == ([], [])
    for key, value in twin.state_dict().items():  # names and layouts unchanged, values exact
        np.testing.assert_array_equal(model.state_dict()[key].data, value.numpy(), err_msg=key)
        assert model.state_dict()[key].dtype == value.numpy().dtype, key
    return _outputs_differ(model, twin, x)


def chainrule_to_torch(name: str, path: str) -> float:
    build, spec = CASES[name]
    cr.manual_seed(1)
    model, x = build(), _input(spec)
    if any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in model.modules()):
        model.train()
        with cr.no_grad():
            for _ in range(3):
                model(cr.tensor(x * 2 + 1))
    cr.save(model.state_dict(), path)
    twin = _twin(model)
    twin.load_state_dict(safetensors_torch.load_file(path))  # strict: every name matches
    for key, value in twin.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), model.state_dict()[key].data, err_msg=key)
        assert value.numpy().dtype == model.state_dict()[key].dtype, key  # num_batches_tracked stays int64
    return _outputs_differ(model, twin, x)


@pytest.mark.parametrize("name", list(CASES))
def test_pytorch_weights_load_into_chainrule(name, tmp_path):
    assert torch_to_chainrule(name, str(tmp_path / "torch.safetensors")) <= TOLERANCE


@pytest.mark.parametrize("name", list(CASES))
def test_chainrule_weights_load_into_pytorch(name, tmp_path):
    assert chainrule_to_torch(name, str(tmp_path / "chainrule.safetensors")) <= TOLERANCE


def test_batch_count_keeps_its_dtype_and_value_both_ways(tmp_path):
    model = nn.BatchNorm1d(3)
    with cr.no_grad():
        model(cr.randn(5, 3))
        model(cr.randn(5, 3))
    cr.save(model.state_dict(), tmp_path / "bn.safetensors")
    loaded = safetensors_torch.load_file(str(tmp_path / "bn.safetensors"))
    assert loaded["num_batches_tracked"].dtype == torch.int64 and int(loaded["num_batches_tracked"]) == 2
    twin = torch.nn.BatchNorm1d(3)
    twin.load_state_dict(loaded)
    assert int(twin.num_batches_tracked) == 2


def test_a_file_for_another_model_is_refused_naming_the_keys(tmp_path):
    path = str(tmp_path / "linear.safetensors")
    safetensors_torch.save_file(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(cr.CheckpointError, match=r"weight: shape \(2, 3\) in the state dict, \(4, 3\) in the model"):
        nn.Linear(3, 4).load_state_dict(cr.io.load_safetensors(path))
    bf16 = str(tmp_path / "bf16.safetensors")
    safetensors_torch.save_file({"weight": torch.zeros(2, dtype=torch.bfloat16)}, bf16)
    with pytest.raises(cr.CheckpointError, match="unsupported dtype"):
        cr.io.load_safetensors(bf16)


def test_interop_table(tmp_path):
    """The README's table (``-s`` shows it)."""
    rows = []
    for k, name in enumerate(CASES):
        into = torch_to_chainrule(name, str(tmp_path / f"in{k}.safetensors"))
        out = chainrule_to_torch(name, str(tmp_path / f"out{k}.safetensors"))
        rows.append(f"| {name} | {into:.1e} | {out:.1e} |")
    print("\n| layer | PyTorch → chainrule | chainrule → PyTorch |\n|---|---|---|\n" + "\n".join(rows))


def test_the_readme_snippet_runs_as_written(tmp_path, monkeypatch):
    pytest.importorskip("sklearn", reason="the quickstart's run trains on the digits, which ship with scikit-learn")
    from chainrule.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "1", "--quiet", "--no-plots"]) == 0  # the quickstart's runs/digits-mlp
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("## PyTorch weights in and out\n") :].split("\n## ", 1)[0]
    (snippet,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    printed = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, "README.md", "exec"), namespace)
    assert float(printed.getvalue()) <= TOLERANCE
    model, _ = cr.train.load_run("runs/digits-mlp")
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32)
    assert _outputs_differ(model, namespace["mlp"], x) <= TOLERANCE
