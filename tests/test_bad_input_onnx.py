"""Bad input to ``chainrule.onnx.export``, ``chainrule export RUN --onnx FILE`` and ``cr.io.load_safetensors``.

Every row must raise the named exception from :mod:`chainrule.errors` with a message holding every listed
phrase (the function or flag, the value, what was expected); CLI rows must exit 2 (usage) or 1 (error) with
exactly one line on stderr. Nothing is written where a row fails, and no user file is replaced unasked.

Choices the tables pin:

- A layer that refuses the example input (wrong shape or dtype) is reported as the *example* not fitting the
  model, prefixed ``onnx.export: example_input of shape ... does not fit the model:``, then the layer's words.
- ``overwrite`` is a real bool (``overwrite="no"`` would be true); ``path`` is a str or path-like.
- The CLI's ``--onnx`` must end in ``.onnx``, so that ``--onnx RUN/model.safetensors --force`` cannot replace a
  file of another kind; a directory, a missing parent and an ``--opset`` out of range are usage errors, found
  before the run is read.
- ``load_safetensors`` names itself; BF16/F8 files are refused with the PyTorch conversion to use.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import chainrule as cr  # noqa: E402
import chainrule.onnx  # noqa: E402
from chainrule import nn  # noqa: E402
from chainrule.cli import main  # noqa: E402
from chainrule.errors import ArgumentError, ChainruleError, CheckpointError, DTypeError, ShapeError  # noqa: E402
from helpers import copy_run  # noqa: E402

export = chainrule.onnx.export


def _linear() -> nn.Module:
    cr.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU())


def _x(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


class Boom(nn.Module):
    def forward(self, x: Any) -> Any:
        raise RuntimeError("boom")


class Wrapper(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), Boom()))

    def forward(self, x: Any) -> Any:
        return self.inner(x)


def _existing(tmp: Path) -> str:
    path = tmp / "mine.onnx"
    path.write_text("my file")
    return str(path)


# (name, call(tmp), error, phrases)
EXPORT_ROWS: list[tuple[str, Callable[[Path], Any], type[Exception], tuple[str, ...]]] = [
    ("path is a directory", lambda tmp: export(_linear(), _x(2, 4), tmp), ArgumentError, ("is a directory",)),
    ("path ends in a slash", lambda tmp: export(_linear(), _x(2, 4), f"{tmp}/new/"), ArgumentError,
     ("new/'", "is a directory")),
    ("parent missing", lambda tmp: export(_linear(), _x(2, 4), tmp / "no" / "m.onnx"), ArgumentError,
     ("onnx.export", "does not exist")),
    ("existing file", lambda tmp: export(_linear(), _x(2, 4), _existing(tmp)), ArgumentError,
     ("already exists", "overwrite=True")),
    ("overwrite not a bool", lambda tmp: export(_linear(), _x(2, 4), _existing(tmp), overwrite="no"), ArgumentError,
     ("overwrite must be True or False", "'no'")),
    ("path None", lambda tmp: export(_linear(), _x(2, 4), None), ArgumentError, ("onnx.export: path", "None")),
    ("path an int", lambda tmp: export(_linear(), _x(2, 4), 3), ArgumentError, ("onnx.export: path", "3")),
    ("example wrong features", lambda tmp: export(_linear(), _x(2, 5), tmp / "a.onnx"), ShapeError,
     ("onnx.export: example_input of shape (2, 5)", "does not fit the model", "(*, 4)")),
    ("example 0-d", lambda tmp: export(_linear(), np.float32(1.0), tmp / "a.onnx"), ShapeError,
     ("example_input of shape ()",)),
    ("example float64", lambda tmp: export(_linear(), np.ones((2, 4)), tmp / "a.onnx"), DTypeError,
     ("example_input is float64", "float32")),
    ("example int for Linear", lambda tmp: export(_linear(), np.ones((2, 4), dtype=np.int64), tmp / "a.onnx"),
     DTypeError, ("example_input of shape (2, 4) (int64)", "floating-point")),
    ("example bool", lambda tmp: export(_linear(), np.ones((2, 4), dtype=bool), tmp / "a.onnx"), DTypeError,
     ("example_input has dtype bool",)),
    ("example strings", lambda tmp: export(_linear(), "abc", tmp / "a.onnx"), DTypeError,
     ("onnx.export: example_input", "strings")),
    ("conv wrong channels", lambda tmp: export(nn.Conv2d(1, 2, 3), _x(1, 3, 8, 8), tmp / "a.onnx"), ShapeError,
     ("example_input of shape (1, 3, 8, 8)", "C = 1")),
    ("lstm wrong features", lambda tmp: export(nn.LSTM(4, 3), _x(5, 2, 6), tmp / "a.onnx"), ShapeError,
     ("example_input of shape (5, 2, 6)", "6 features")),
    ("embedding float indices", lambda tmp: export(nn.Embedding(10, 3), _x(2, 4), tmp / "a.onnx"), DTypeError,
     ("example_input", "indices must be integers")),
    ("embedding index out of range", lambda tmp: export(nn.Embedding(10, 3), np.full((2, 4), 99), tmp / "a.onnx"),
     ShapeError, ("example_input", "[0, 9]")),
    ("opset a string", lambda tmp: export(_linear(), _x(2, 4), tmp / "a.onnx", opset="17"), ArgumentError,
     ("opset must be an integer", "'17'")),
    ("opset negative", lambda tmp: export(_linear(), _x(2, 4), tmp / "a.onnx", opset=-1), ArgumentError,
     ("opset must be between 17", "got -1")),
    ("opset float", lambda tmp: export(_linear(), _x(2, 4), tmp / "a.onnx", opset=17.0), ArgumentError, ("17.0",)),
    ("model not a module", lambda tmp: export(lambda v: v, _x(2, 4), tmp / "a.onnx"), ArgumentError,
     ("must be a chainrule Module", "function")),
    ("unsupported layer", lambda tmp: export(nn.Sequential(nn.Linear(4, 3), Boom()), _x(2, 4), tmp / "a.onnx"),
     ArgumentError, ("no ONNX converter for layer Boom at '1'",)),
    ("unsupported layer nested deep",
     lambda tmp: export(nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), Boom()))), _x(2, 4),
                        tmp / "a.onnx"),
     ArgumentError, ("layer Boom at '0.1.1'",)),
    ("unsupported model itself", lambda tmp: export(Wrapper(), _x(2, 4), tmp / "a.onnx"), ArgumentError,
     ("layer Wrapper (the model itself)",)),
]  # fmt: skip


@pytest.mark.parametrize("row", EXPORT_ROWS, ids=[row[0] for row in EXPORT_ROWS])
def test_bad_export(row: Any, tmp_path: Path) -> None:
    _, call, error, parts = row
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(error) as caught:
        call(tmp_path)
    message = str(caught.value)
    for part in parts:
        assert part in message, message
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "mine.onnx") == before  # nothing written
    if (tmp_path / "mine.onnx").exists():
        assert (tmp_path / "mine.onnx").read_text() == "my file"


def test_export_restores_training_mode_when_a_layer_refuses(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5), nn.Linear(2, 2))
    with pytest.raises(ShapeError, match="does not fit the model"):
        export(model, _x(2, 4), tmp_path / "a.onnx")
    assert all(module.training for module in model.modules())


# -- the command line ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("onnx-cli") / "run"
    flags = ["--data", "xor", "--hidden", "4", "--epochs", "1", "--quiet", "--no-plots"]
    assert main(["train", *flags, "--out", str(directory)]) == 0
    return directory


def _truncate(copy: Path) -> None:
    data = (copy / "model.safetensors").read_bytes()
    (copy / "model.safetensors").write_bytes(data[: len(data) // 2])


def _bad_config(copy: Path) -> None:
    (copy / "config.json").write_text(json.dumps({"model": 1}))


# (name, argv(tmp, run), exit code, phrases)
CLI_ROWS: list[tuple[str, Callable[[Path, Path], list[str]], int, tuple[str, ...]]] = [
    ("onnx is a directory", lambda tmp, run: [str(run), "--onnx", str(tmp)], 2, ("--onnx", "ending in .onnx")),
    ("onnx a directory named .onnx", lambda tmp, run: [str(run), "--onnx", _dir(tmp)], 2,
     ("--onnx", "is a directory")),
    ("onnx ends in a slash", lambda tmp, run: [str(run), "--onnx", f"{tmp}/x.onnx/"], 2, ("--onnx",)),
    ("onnx empty", lambda tmp, run: [str(run), "--onnx", ""], 2, ("--onnx", "''")),
    ("onnx another kind of file", lambda tmp, run: [str(run), "--onnx", str(run / "model.safetensors"), "--force"],
     2, ("--onnx", "model.safetensors", ".onnx")),
    ("onnx parent missing", lambda tmp, run: [str(run), "--onnx", str(tmp / "no" / "m.onnx")], 2,
     ("--onnx", "does not exist")),
    ("onnx exists", lambda tmp, run: [str(run), "--onnx", _existing(tmp)], 1, ("already exists", "--force")),
    ("opset words", lambda tmp, run: [str(run), "--onnx", str(tmp / "m.onnx"), "--opset", "x"], 2,
     ("--opset", "'x'")),
    ("opset negative", lambda tmp, run: [str(run), "--onnx", str(tmp / "m.onnx"), "--opset", "-1"], 2,
     ("--opset", "'-1'")),
    ("opset too old", lambda tmp, run: [str(run), "--onnx", str(tmp / "m.onnx"), "--opset", "16"], 2,
     ("--opset must be from 17", "got 16")),
    ("opset too new", lambda tmp, run: [str(run), "--onnx", str(tmp / "m.onnx"), "--opset", "999"], 2,
     ("--opset", "got 999")),
    ("run missing", lambda tmp, run: [str(tmp / "none"), "--onnx", str(tmp / "m.onnx")], 1,
     ("is not a run directory",)),
    ("not a run", lambda tmp, run: [str(tmp), "--onnx", str(tmp / "m.onnx")], 1, ("is not a run directory",)),
    ("truncated weights", lambda tmp, run: [copy_run(run, tmp, _truncate), "--onnx", str(tmp / "m.onnx")], 1,
     ("model.safetensors", "truncated")),
    ("corrupt config", lambda tmp, run: [copy_run(run, tmp, _bad_config), "--onnx", str(tmp / "m.onnx")], 1,
     ("config.json", "'model'")),
    ("no --onnx", lambda tmp, run: [str(run)], 2, ("--onnx",)),
]  # fmt: skip


def _dir(tmp: Path) -> str:
    (tmp / "d.onnx").mkdir()
    return str(tmp / "d.onnx")


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)


@pytest.mark.parametrize("row", CLI_ROWS, ids=[row[0] for row in CLI_ROWS])
def test_bad_export_command(row: Any, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, argv, code, parts = row
    weights = (run / "model.safetensors").read_bytes()
    assert _exit_code(["export", *argv(tmp_path, run)]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err, err
    for part in parts:
        assert part in err, err
    assert not (tmp_path / "m.onnx").exists()
    assert (run / "model.safetensors").read_bytes() == weights  # the run is never touched
    if (tmp_path / "mine.onnx").exists():
        assert (tmp_path / "mine.onnx").read_text() == "my file"


def test_export_command_without_the_onnx_extra(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = sys.modules["chainrule.onnx.export"]  # the attribute chainrule.onnx.export is the function

    def missing() -> Any:
        raise ChainruleError("onnx.export needs the 'onnx' package: pip install 'chainrule[onnx]'")

    monkeypatch.setattr(module, "_onnx", missing)
    assert _exit_code(["export", str(run), "--onnx", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chainrule[onnx]" in err
    assert not (tmp_path / "m.onnx").exists()


# -- load_safetensors --------------------------------------------------------------------------------------
def _file(tmp: Path, name: str, data: bytes) -> str:
    (tmp / name).write_bytes(data)
    return str(tmp / name)


def _good(tmp: Path) -> bytes:
    cr.save({"weight": cr.ones(3, 4), "bias": cr.zeros(3)}, tmp / "good.safetensors")
    return (tmp / "good.safetensors").read_bytes()


def _header(dtype: str) -> bytes:
    header = json.dumps({"w": {"dtype": dtype, "shape": [2], "data_offsets": [0, 4]}}).encode()
    return len(header).to_bytes(8, "little") + header + b"\0" * 4


LOAD_ROWS: list[tuple[str, Callable[[Path], Any], type[Exception], tuple[str, ...]]] = [
    ("missing file", lambda tmp: str(tmp / "none.safetensors"), CheckpointError,
     ("load_safetensors", "none.safetensors", "does not exist")),
    ("a directory", lambda tmp: str(tmp), CheckpointError, ("load_safetensors", "not a file")),
    ("path None", lambda tmp: None, ArgumentError, ("load_safetensors: path", "None")),
    ("not safetensors", lambda tmp: _file(tmp, "x.safetensors", b"hello world, this is text"), CheckpointError,
     ("load_safetensors", "header length")),
    ("empty file", lambda tmp: _file(tmp, "e.safetensors", b""), CheckpointError, ("0 bytes long",)),
    ("truncated data", lambda tmp: _file(tmp, "t.safetensors", _good(tmp)[:-5]), CheckpointError,
     ("load_safetensors", "out of bounds")),
    ("truncated header", lambda tmp: _file(tmp, "h.safetensors", _good(tmp)[:20]), CheckpointError,
     ("truncated",)),
    ("bf16", lambda tmp: _file(tmp, "b.safetensors", _header("BF16")), CheckpointError,
     ("'BF16'", "v.float()")),
    ("f8", lambda tmp: _file(tmp, "f8.safetensors", _header("F8_E4M3")), CheckpointError, ("'F8_E4M3'", "float()")),
    ("unknown dtype", lambda tmp: _file(tmp, "u.safetensors", _header("Q4")), CheckpointError, ("'Q4'",)),
]  # fmt: skip


@pytest.mark.parametrize("row", LOAD_ROWS, ids=[row[0] for row in LOAD_ROWS])
def test_bad_safetensors_file(row: Any, tmp_path: Path) -> None:
    _, path, error, parts = row
    with pytest.raises(error) as caught:
        cr.io.load_safetensors(path(tmp_path))
    message = str(caught.value)
    for part in parts:
        assert part in message, message


def test_fp16_loads_and_converts_into_a_float32_model(tmp_path: Path) -> None:
    header = json.dumps({"weight": {"dtype": "F16", "shape": [1, 2], "data_offsets": [0, 4]},
                         "bias": {"dtype": "F16", "shape": [1], "data_offsets": [4, 6]}}).encode()  # fmt: skip
    data = np.array([0.5, -1.5, 2.0], dtype="<f2").tobytes()
    path = _file(tmp_path, "h.safetensors", len(header).to_bytes(8, "little") + header + data)
    state = cr.io.load_safetensors(path)
    assert state["weight"].dtype == np.float16
    layer = nn.Linear(2, 1)
    layer.load_state_dict(state)
    assert layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.numpy(), [[0.5, -1.5]])


@pytest.mark.parametrize(
    "state, parts",
    [
        ({"weight": np.ones((2, 4), np.float32), "bias": np.ones(2, np.float32)}, ("weight: shape (2, 4)", "(3, 4)")),
        ({"weight": np.ones((3, 4), np.float32)}, ("missing keys: bias",)),
        ({"weight": np.ones((3, 4), np.float32), "bias": np.ones(3, np.float32), "extra": np.ones(1, np.float32)},
         ("unexpected keys: extra",)),
    ],
    ids=["shape", "missing", "unexpected"],
)  # fmt: skip
def test_strict_keys_that_do_not_match(state: dict[str, np.ndarray], parts: tuple[str, ...], tmp_path: Path) -> None:
    import safetensors.numpy

    path = tmp_path / "s.safetensors"
    safetensors.numpy.save_file(state, str(path))
    layer = nn.Linear(4, 3)
    before = layer.weight.numpy().copy()
    with pytest.raises(CheckpointError) as caught:
        layer.load_state_dict(cr.io.load_safetensors(path))
    for part in parts:
        assert part in str(caught.value)
    np.testing.assert_array_equal(layer.weight.numpy(), before)  # nothing half-loaded


def test_a_graph_onnx_rejects_is_one_chainrule_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def reject(*args: Any, **kwargs: Any) -> None:
        raise onnx.checker.ValidationError("Field 'shape' of 'type' is required but missing.")

    monkeypatch.setattr(onnx.checker, "check_model", reject)
    with pytest.raises(ChainruleError, match=r"onnx.export: the graph for Sequential failed onnx's checker"):
        export(_linear(), _x(2, 4), tmp_path / "a.onnx")
    assert not (tmp_path / "a.onnx").exists()


def test_a_failed_write_names_onnx_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = sys.modules["chainrule.onnx.export"]

    def fail(path: Any, data: bytes) -> None:
        raise CheckpointError(f"save: could not write {str(path)!r}: Permission denied [EACCES]")

    monkeypatch.setattr(module, "atomic_write_bytes", fail)
    with pytest.raises(CheckpointError, match=r"^onnx.export: save: could not write .*EACCES"):
        export(_linear(), _x(2, 4), tmp_path / "a.onnx")
