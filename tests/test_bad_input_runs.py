"""Bad input at the edges of a run: odd ``chainrule train`` flags, tampered run directories, resumes that change
what a run is, and ``--out`` paths that cannot hold a run.

Every row is answered by exit code 2 (bad usage, argparse's message naming the flag), exit code 1 (one line,
``chainrule: error: ...``, naming the field, flag or file, no traceback) or a correct result (exit 0). The tampered
rows copy one small trained run and change one thing in it.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chainrule.cli import main

pytest.importorskip("safetensors", reason="runs write checkpoints (pip install 'chainrule[io]')")

TRAIN = ["train", "--data", "xor", "--hidden", "4", "--quiet", "--no-plots", "--val-split", "0", "--epochs", "1"]


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        return int(exit_.code)


def _check(capsys: Any, code: int, expected: int, parts: tuple[str, ...]) -> None:
    captured = capsys.readouterr()
    err = captured.err
    assert code == expected, f"exit {code}, expected {expected}: {err}"
    assert "Traceback" not in err, err
    if expected == 1:
        assert err.startswith("chainrule: error: ") and err.count("\n") == 1, err
    if expected == 2:
        err = err.strip().splitlines()[-1]  # argparse: the usage, then one line naming the flag
    for part in parts:
        assert part in (err if expected else captured.out), f"{part!r} not in {err or captured.out!r}"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base") / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(base_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(base_run, copy)
    return copy


# -- 1. flags of `chainrule train` --------------------------------------------------------------------
@dataclass(frozen=True)
class Flags:
    name: str
    argv: tuple[str, ...]
    code: int
    parts: tuple[str, ...]


def flags(name: str, argv: list[str], code: int, *parts: str) -> Flags:
    return Flags(name, tuple(argv), code, parts)


FLAG_ROWS = [
    flags("epochs 0", ["--epochs", "0"], 2, "--epochs", "positive"),
    flags("epochs negative", ["--epochs", "-3"], 2, "--epochs"),
    flags("epochs fractional", ["--epochs", "1.5"], 2, "--epochs", "1.5"),
    flags("lr zero", ["--lr", "0"], 2, "--lr"),
    flags("lr negative", ["--lr", "-0.1"], 2, "--lr"),
    flags("lr nan", ["--lr", "nan"], 2, "--lr", "finite"),
    flags("lr inf", ["--lr", "inf"], 2, "--lr", "finite"),
    flags("lr word", ["--lr", "fast"], 2, "--lr", "fast"),
    flags("dropout 1", ["--dropout", "1"], 2, "--dropout"),
    flags("dropout negative", ["--dropout", "-0.1"], 2, "--dropout"),
    flags("hidden zero", ["--hidden", "0"], 2, "--hidden"),
    flags("hidden words", ["--hidden", "a,b"], 2, "--hidden", "a,b"),
    flags("hidden empty", ["--hidden", ","], 2, "--hidden"),
    flags("hidden huge", ["--hidden", "1000000000"], 1, "parameters", "GiB", "limit"),
    flags("hidden deep and wide", ["--hidden", ",".join(["40000"] * 3)], 1, "parameters", "limit"),
    flags("batch size 0", ["--batch-size", "0"], 2, "--batch-size"),
    flags("batch size larger than the data", ["--batch-size", "100000"], 0, "Test"),
    flags("val split 1", ["--val-split", "1"], 2, "--val-split"),
    flags("momentum above 1", ["--momentum", "1.5"], 2, "--momentum"),
    flags("weight decay negative", ["--weight-decay", "-1"], 2, "--weight-decay"),
    flags("seed negative", ["--seed", "-1"], 2, "--seed"),
    flags("limit 0", ["--limit", "0"], 2, "--limit"),
    flags("patience negative", ["--patience", "-1"], 2, "--patience"),
    flags("unknown data", ["--data", "imagenet"], 2, "--data", "imagenet"),
    flags("unknown model", ["--model", "transformer"], 2, "--model", "transformer"),
    flags("unknown optimizer", ["--optimizer", "lbfgs"], 2, "--optimizer"),
    flags("unknown schedule", ["--schedule", "step"], 2, "--schedule"),
    flags("resume and force together", ["--resume", "--force"], 2, "--force", "--resume"),
    flags("cnn on 2-d points", ["--model", "cnn"], 1, "--model cnn", "--data xor", "(C, H, W)"),
    flags("lstm on 2-d points", ["--model", "lstm"], 1, "--model lstm", "--data xor", "(1, H, W)"),
    flags("gru on 2-d points", ["--model", "gru"], 1, "--model gru", "--data xor"),
    flags("abbreviated --epoch", ["--epoch", "3"], 2, "--epoch"),
    flags("abbreviated --hid", ["--hid", "3"], 2, "--hid"),
    flags("hidden trailing comma", ["--hidden", "128,"], 2, "--hidden", "128,"),
    flags("hidden empty part", ["--hidden", "128,,64"], 2, "--hidden", "128,,64"),
    flags("hidden leading comma", ["--hidden", ",8"], 2, "--hidden"),
    flags("limit leaves no validation", ["--limit", "5", "--val-split", "0.1"], 1, "--limit 5", "--val-split 0.1"),
    flags("momentum 1 is refused", ["--momentum", "1"], 2, "--momentum"),
    flags("adam without --lr gets adam's rate", ["--optimizer", "adam"], 0, "Test"),
    flags("cosine schedule over one epoch", ["--schedule", "cosine"], 0, "Test"),
    flags("patience with no validation split", ["--patience", "1", "--epochs", "2"], 0, "Test"),
    flags("limit 1 sample", ["--limit", "1"], 0, "Test (1 samples)"),
]


@pytest.mark.parametrize("row", FLAG_ROWS, ids=[r.name for r in FLAG_ROWS])
def test_train_flags(row: Flags, tmp_path: Path, capsys: Any) -> None:
    code = _run([*TRAIN, "--out", str(tmp_path / "run"), *row.argv])
    _check(capsys, code, row.code, row.parts)


# -- 2. where the run goes ----------------------------------------------------------------------------
def _a_file(tmp: Path) -> str:
    (tmp / "file.txt").write_text("not a directory")
    return str(tmp / "file.txt")


def _under_a_file(tmp: Path) -> str:
    return str(Path(_a_file(tmp)) / "run")


def _full_dir(tmp: Path) -> str:
    (tmp / "notes").mkdir()
    (tmp / "notes" / "todo.txt").write_text("mine")
    return str(tmp / "notes")


USER_FILES = {"thesis.tex": "\\begin{document}", "src/code.py": "print('mine')", "a.png": "png"}


def _user_files(tmp: Path) -> str:
    for path, text in USER_FILES.items():
        (tmp / "thesis" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "thesis" / path).write_text(text)
    (tmp / "thesis" / "config.json").write_text("{}")  # even with a config.json it is not only a run
    return str(tmp / "thesis")


def _run_and_a_file(tmp: Path) -> str:
    assert main([*TRAIN, "--out", str(tmp / "r")]) == 0
    (tmp / "r" / "notes.txt").write_text("mine")
    return str(tmp / "r")


def _cwd_run(tmp: Path) -> str:
    assert main([*TRAIN, "--out", str(tmp / "r")]) == 0
    import os

    os.chdir(tmp / "r")
    return "."


def _empty_dir(tmp: Path) -> str:
    (tmp / "empty").mkdir()
    return str(tmp / "empty")


OUT_ROWS = [
    ("out is a file", _a_file, [], 1, ("file.txt", "is a file")),
    ("out under a file", _under_a_file, [], 1, ("file.txt",)),
    ("out holds other files", _full_dir, [], 1, ("notes", "todo.txt", "not a run")),
    ("force on a folder of user files", _user_files, ["--force"], 1, ("not a run", "src", "thesis.tex")),
    ("force on a run with a user file", _run_and_a_file, ["--force"], 1, ("notes.txt",)),
    ("force on the current directory", _cwd_run, ["--force"], 1, ("current directory",)),
    ("out is an empty directory", _empty_dir, [], 0, ("Test",)),
    ("resume where nothing was trained", _empty_dir, ["--resume"], 1, ("last.safetensors", "does not exist")),
    ("resume a file", _a_file, ["--resume"], 1, ("file.txt",)),
]


@pytest.mark.parametrize("name, where, extra, code, parts", OUT_ROWS, ids=[r[0] for r in OUT_ROWS])
def test_train_out(
    name: str, where: Callable, extra: list, code: int, parts: tuple, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a row may change the current directory; this puts it back afterwards
    out = where(tmp_path)
    capsys.readouterr()
    result = _run([*TRAIN, "--out", out, *extra])
    out_text, err = capsys.readouterr()
    sys.stdout.write(out_text), sys.stderr.write(err)  # read again by _check
    _check(capsys, result, code, parts)
    if "not a run" in err:
        assert "--force" not in err  # --force would not replace it either
    if name == "out holds other files":
        assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"
    if name.startswith("force on a folder"):  # the user's own files survive
        assert {p: (tmp_path / "thesis" / p).read_text() for p in USER_FILES} == USER_FILES
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


# -- 3. tampered config.json, read by evaluate and predict ---------------------------------------------
def _edit(change: Callable[[dict], Any]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        config = json.loads((run / "config.json").read_text())
        replaced = change(config)
        value = config if replaced is None else replaced
        (run / "config.json").write_text(json.dumps(value))

    return apply


def _raw(text: str | bytes) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        (run / "config.json").write_bytes(text.encode() if isinstance(text, str) else text)

    return apply


def _set(section: str, key: str, value: Any) -> Callable[[Path], None]:
    return _edit(lambda c: c[section].__setitem__(key, value))


def _drop(section: str, key: str | None = None) -> Callable[[Path], None]:
    def change(config: dict) -> None:
        del (config if key is None else config[section])[section if key is None else key]

    return _edit(change)


def _nan_token(run: Path) -> None:
    text = (run / "config.json").read_text().replace('"dropout": 0.0', '"dropout": NaN', 1)
    assert "NaN" in text
    (run / "config.json").write_text(text)


def _remove(name: str) -> Callable[[Path], None]:
    return lambda run: (run / name).unlink()


CONFIG_ROWS = [
    ("not json", _raw("{model: mlp"), 1, ("config.json", "not valid JSON")),
    ("not utf-8", _raw(b"\xff\xfe{}"), 1, ("config.json", "not valid JSON")),
    ("a list", _raw("[1, 2]"), 1, ("JSON object", "list")),
    ("a string", _raw('"mlp"'), 1, ("JSON object", "str")),
    ("null", _raw("null"), 1, ("JSON object",)),
    ("nested deeply", _raw("[" * 100_000 + "]" * 100_000), 1, ("nested too deeply",)),
    ("NaN token", _nan_token, 1, ("NaN",)),
    ("Infinity token", _raw('{"model": {"dropout": Infinity}}'), 1, ("Infinity",)),
    ("huge file", _raw(" " * (2 << 20) + "{}"), 1, ("bytes",)),
    ("no model", _drop("model"), 1, ("'model'",)),
    ("no data", _drop("data"), 1, ("'data'",)),
    ("model is a list", _set("model", "model", ["mlp"]), 1, ("model.model",)),
    ("model section a string", _edit(lambda c: c.__setitem__("model", "mlp")), 1, ("'model'", "object")),
    ("unknown model kind", _set("model", "model", "transformer"), 1, ("model.model", "transformer")),
    ("no input shape", _drop("model", "input_shape"), 1, ("model.input_shape",)),
    ("input shape a string", _set("model", "input_shape", "2"), 1, ("model.input_shape",)),
    ("input shape negative", _set("model", "input_shape", [-2]), 1, ("model.input_shape[0]", "-2")),
    ("input shape 4-d", _set("model", "input_shape", [1, 1, 1, 2]), 1, ("model.input_shape",)),
    ("input shape huge", _set("model", "input_shape", [10**12]), 1, ("model.input_shape[0]",)),
    ("input shape float", _set("model", "input_shape", [2.0]), 1, ("model.input_shape[0]", "integer")),
    ("classes a string", _set("model", "num_classes", "2"), 1, ("model.num_classes", "integer")),
    ("classes zero", _set("model", "num_classes", 0), 1, ("model.num_classes",)),
    ("classes a bool", _set("model", "num_classes", True), 1, ("model.num_classes",)),
    ("classes huge", _set("model", "num_classes", 10**9), 1, ("model.num_classes",)),
    ("hidden huge", _set("model", "hidden", [10**9]), 1, ("parameters", "GiB")),
    ("hidden empty", _set("model", "hidden", []), 1, ("model.hidden",)),
    ("hidden fractional", _set("model", "hidden", [2.5]), 1, ("model.hidden[0]",)),
    ("hidden nested", _set("model", "hidden", [[4]]), 1, ("model.hidden[0]",)),
    ("hidden other widths", _set("model", "hidden", [8]), 1, ("model.safetensors",)),
    ("unknown activation", _set("model", "activation", "swish"), 1, ("model.activation", "swish")),
    ("dropout above 1", _set("model", "dropout", 1.5), 1, ("model.dropout",)),
    ("unknown data set", _set("data", "name", "imagenet"), 1, ("data.name", "imagenet")),
    ("unknown task", _set("data", "task", "segmentation"), 1, ("data.task",)),
    ("data shape differs", _set("data", "input_shape", [3]), 1, ("data.input_shape",)),
    ("data classes negative", _set("data", "num_classes", -1), 1, ("data.num_classes",)),
    ("class names a number", _set("data", "class_names", 5), 1, ("data.class_names",)),
    ("class names too few", _set("data", "class_names", ["a"]), 1, ("data.class_names", "1 names")),
    ("train lr a word", _set("train", "lr", "fast"), 1, ("train.lr",)),
    ("train epochs negative", _set("train", "epochs", -3), 1, ("train.epochs",)),
    ("train unknown field", _set("train", "warp", 9), 1, ("train.warp",)),
    ("train section a list", _edit(lambda c: c.__setitem__("train", [])), 1, ("'train'",)),
    ("extra top-level field is kept", _edit(lambda c: c.__setitem__("notes", {"by": "me"})), 0, ("accuracy",)),
    ("no test metrics", _drop("test"), 0, ("accuracy",)),
    ("config.json missing", _remove("config.json"), 1, ("not a run directory",)),
    ("weights missing", _remove("model.safetensors"), 1, ("not a run directory",)),
]


@pytest.mark.parametrize("name, tamper, code, parts", CONFIG_ROWS, ids=[r[0] for r in CONFIG_ROWS])
def test_evaluate_a_tampered_run(name: str, tamper: Callable, code: int, parts: tuple, run_copy: Path, capsys) -> None:
    tamper(run_copy)
    _check(capsys, _run(["evaluate", str(run_copy)]), code, parts)


PREDICT_ROWS = [
    r for r in CONFIG_ROWS if r[0] in ("a list", "no model", "classes a string", "hidden huge", "NaN token")
]


@pytest.mark.parametrize("name, tamper, code, parts", PREDICT_ROWS, ids=[r[0] for r in PREDICT_ROWS])
def test_predict_with_a_tampered_run(name, tamper, code, parts, run_copy: Path, tmp_path: Path, capsys) -> None:
    tamper(run_copy)
    points = tmp_path / "points.npy"
    np.save(points, np.zeros((2, 2), dtype=np.float32))
    _check(capsys, _run(["predict", str(run_copy), str(points)]), code, parts)


# -- 4. resuming with other settings ------------------------------------------------------------------
RESUME_ROWS = [
    ("hidden", ["--hidden", "8"], 1, ("--hidden 8", "the run has 4")),
    ("activation", ["--activation", "tanh"], 1, ("--activation tanh",)),
    ("dropout", ["--dropout", "0.5"], 1, ("--dropout 0.5",)),
    ("model", ["--model", "linear"], 1, ("--model linear",)),
    ("data", ["--data", "moons"], 1, ("--data moons",)),
    ("optimizer adam", ["--optimizer", "adam"], 1, ("--optimizer adam", "the run has sgd")),
    ("optimizer adagrad", ["--optimizer", "adagrad"], 1, ("--optimizer adagrad",)),
    ("momentum", ["--momentum", "0.5"], 1, ("--momentum 0.5",)),
    ("weight decay", ["--weight-decay", "0.1"], 1, ("--weight-decay 0.1",)),
    ("batch size", ["--batch-size", "7"], 1, ("--batch-size 7",)),
    ("seed", ["--seed", "3"], 1, ("--seed 3",)),
    ("val split", ["--val-split", "0.2"], 1, ("--val-split 0.2",)),
    ("limit", ["--limit", "50"], 1, ("--limit 50",)),
    ("two at once", ["--hidden", "8", "--optimizer", "adam"], 1, ("--hidden 8", "--optimizer adam")),
    ("more epochs", ["--epochs", "3"], 0, ("resumed; changed: epochs",)),
    ("new learning rate", ["--epochs", "2", "--lr", "0.5"], 0, ("changed: epochs, lr",)),
    ("cosine from here on", ["--epochs", "3", "--schedule", "cosine"], 0, ("schedule",)),
    ("early stopping from here on", ["--epochs", "3", "--patience", "1"], 0, ("patience",)),
    ("the same epochs again", [], 1, ("already has 1 epoch", "--epochs N with N > 1")),
    ("fewer epochs", ["--epochs", "1", "--lr", "0.5"], 1, ("already has 1 epoch",)),
    ("a new rate but no epochs", ["--lr", "0.5"], 1, ("already has 1 epoch",)),
    ("another --out is no change", ["--epochs", "2", "--out", "SAME"], 0, ("changed: epochs)",)),
]


@pytest.mark.parametrize("name, extra, code, parts", RESUME_ROWS, ids=[r[0] for r in RESUME_ROWS])
def test_resume_with_other_settings(name: str, extra: list, code: int, parts: tuple, run_copy: Path, capsys) -> None:
    argv = [*TRAIN, "--out", str(run_copy), "--resume"]
    for i in range(0, len(extra), 2):  # a flag given twice: the later one wins, as in argparse
        argv += extra[i : i + 2]
    argv = [str(run_copy) if a == "SAME" else a for a in argv]
    before = {p.name: p.read_bytes() for p in run_copy.iterdir()}
    _check(capsys, _run(argv), code, parts)
    if code:
        assert {p.name: p.read_bytes() for p in run_copy.iterdir()} == before  # a refused resume changes nothing
    else:
        train = json.loads((run_copy / "config.json").read_text())["train"]
        given = dict(zip(extra[::2], extra[1::2]))
        assert str(train["lr"]) == given.get("--lr", "0.1") and train["schedule"] == given.get("--schedule", "constant")


def _tamper_checkpoint(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        from chainrule.io import load, save

        saved = load(run / "last.safetensors")
        change(saved)
        save(saved, run / "last.safetensors")

    return apply


CHECKPOINT_ROWS = [
    ("no config", _tamper_checkpoint(lambda s: s.pop("config")), ("does not record",)),
    ("config train a list", _tamper_checkpoint(lambda s: s["config"].__setitem__("train", [])), ("does not record",)),
    (
        "train hidden a word",
        _tamper_checkpoint(lambda s: s["config"]["train"].__setitem__("hidden", "x")),
        ("train.hidden",),
    ),
    (
        "train optimizer unknown",
        _tamper_checkpoint(lambda s: s["config"]["train"].__setitem__("optimizer", "sgdx")),
        ("train.optimizer", "sgdx"),
    ),
    (
        "train seed negative",
        _tamper_checkpoint(lambda s: s["config"]["train"].__setitem__("seed", -1)),
        ("train.seed",),
    ),
]


@pytest.mark.parametrize("name, tamper, parts", CHECKPOINT_ROWS, ids=[r[0] for r in CHECKPOINT_ROWS])
def test_resume_from_a_tampered_checkpoint_config(name: str, tamper: Callable, parts: tuple, run_copy, capsys) -> None:
    tamper(run_copy)
    _check(capsys, _run([*TRAIN, "--out", str(run_copy), "--resume", "--epochs", "2"]), 1, ("last.safetensors", *parts))


def test_the_sweep_has_enough_rows() -> None:
    rows = len(FLAG_ROWS) + len(OUT_ROWS) + len(CONFIG_ROWS) + len(PREDICT_ROWS) + len(RESUME_ROWS)
    assert rows + len(CHECKPOINT_ROWS) >= 50
