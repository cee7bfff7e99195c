"""Bad input to the command line: one table of odd arguments, files and environments, every subcommand.

Every row runs ``main(argv)`` in-process and must end with exit code 1 (an error inside a command) or 2 (bad
usage), exactly one line on stderr (``chainrule...: error: ...``, never a traceback) and the phrases that let
a user find the culprit: the flag, the file or the value.

Choices the table pins:

- Usage errors (argparse) are one line too, ending in ``(see 'chainrule explain --help')``.
- ``explain --format json`` writes strict JSON: an infinite or NaN number is the string ``"inf"``,
  ``"-inf"`` or ``"nan"`` (see ``test_cli_edges.py``).
- A model that would not fit in memory is refused before anything is allocated, with the estimate.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from chainrule import _checks
from chainrule.cli import main
from helpers import copy_run


@dataclass(frozen=True)
class Odd:
    """One odd invocation: ``argv`` (or ``argv(tmp, run)`` building files first) must exit ``code`` with
    one stderr line holding every phrase of ``parts``; ``env`` is set (``None``: unset) for the run."""

    name: str
    argv: list[str] | Callable[[Path, Path], list[str]]
    code: int
    parts: tuple[str, ...]
    env: dict[str, str | None] = field(default_factory=dict)


def odd(name: str, argv, code: int, *parts: str, env: dict[str, str | None] | None = None) -> Odd:
    return Odd(name, argv, code, parts, env or {})


# -- files the rows read ---------------------------------------------------------------------------------
def _write(tmp: Path, name: str, content: str | bytes) -> str:
    path = tmp / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def _weights(layers) -> str:
    return json.dumps({"layers": layers})


GOOD_LAYER = {"weight": [[0.5, -0.5]], "bias": [0.1]}
EXPLAIN = ["explain", "--model", "2,1", "--input", "1,0", "--target", "1"]


def _explain_weights(name: str, content: str | bytes):
    return lambda tmp, run: [*EXPLAIN, "--weights", _write(tmp, name, content)]


def _truncate(name: str, keep: int | None = None):
    def change(run_dir: Path) -> None:
        data = (run_dir / name).read_bytes()
        (run_dir / name).write_bytes(data[: len(data) // 2 if keep is None else keep])

    return change


def _rewrite_config(edit: Callable[[dict], None]):
    def change(run_dir: Path) -> None:
        config = json.loads((run_dir / "config.json").read_text())
        edit(config)
        (run_dir / "config.json").write_text(json.dumps(config))

    return change


def _npy(tmp: Path, name: str, array) -> str:
    path = tmp / name
    np.save(path, array)
    return str(path)


DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "2," + str(10**12) + ",1"

# -- explain -----------------------------------------------------------------------------------------------
EXPLAIN_ROWS = [
    odd("explain model 0", ["explain", "--model", "0", "--input", "1", "--target", "1"], 2, "--model", "'0'"),
    odd("explain model negative", ["explain", "--model", "2,-1,1", "--input", "1,0", "--target", "1"], 2, "--model"),
    odd(
        "explain model float", ["explain", "--model", "2,1e9,1", "--input", "1,0", "--target", "1"], 2, "--model", "1e9"
    ),
    odd("explain model one width", ["explain", "--model", "3", "--input", "1,0,0", "--target", "1"], 1, "at least two"),
    odd("explain model empty", ["explain", "--model", "", "--input", "1", "--target", "1"], 2, "--model"),
    odd("explain model commas", ["explain", "--model", ",,", "--input", "1", "--target", "1"], 2, "--model"),
    odd(
        "explain model huge",
        ["explain", "--model", "2,100000,1", "--input", "1,0", "--target", "1"],
        1,
        "explain",
        "2-100000-1",
        "GiB",
    ),
    odd(
        "explain model astronomically wide",
        ["explain", "--model", HUGE, "--input", "1,0", "--target", "1"],
        1,
        "would need about",
    ),
    odd(
        "explain model deep and wide",
        ["explain", "--model", ",".join(["1", *["5000"] * 6, "1"]), "--input", "1", "--target", "1"],
        1,
        "would need about",
    ),
    odd("explain input nan", [*EXPLAIN[:3], "--input", "nan,0", "--target", "1"], 2, "--input", "nan"),
    odd("explain input inf", [*EXPLAIN[:3], "--input", "inf,0", "--target", "1"], 2, "--input", "inf"),
    odd("explain input empty", [*EXPLAIN[:3], "--input", "", "--target", "1"], 2, "--input"),
    odd("explain input words", [*EXPLAIN[:3], "--input", "one,two", "--target", "1"], 2, "--input", "one,two"),
    odd(
        "explain input too many",
        [*EXPLAIN[:3], "--input", "1,0,3", "--target", "1"],
        2,
        "--input has 3 values",
        "--model 2,1 starts with 2",
    ),
    odd("explain input too few", [*EXPLAIN[:3], "--input", "1", "--target", "1"], 2, "--input has 1 value but"),
    odd("explain input overflows", [*EXPLAIN[:3], "--input", "1e400,0", "--target", "1"], 2, "--input", "1e400"),
    odd("explain target nan", [*EXPLAIN[:5], "--target", "nan"], 2, "--target", "nan"),
    odd(
        "explain target wrong count",
        [*EXPLAIN[:5], "--target", "1,0"],
        2,
        "--target has 2 values",
        "ends with 1 outputs",
    ),
    odd(
        "explain target not a class",
        ["explain", "--model", "2,3", "--input", "1,0", "--target", "1.5", "--loss", "cross_entropy"],
        2,
        "--target must be one class index in [0, 3)",
        "1.5",
    ),
    odd(
        "explain target class too big",
        ["explain", "--model", "2,3", "--input", "1,0", "--target", "3", "--loss", "cross_entropy"],
        2,
        "--target must be one class index in [0, 3)",
    ),
    odd("explain target missing", ["explain", "--model", "2,1", "--input", "1,0"], 2, "needs --target"),
    odd("explain nothing", ["explain"], 2, "needs --model, --input, --target"),
    odd("explain lr negative", [*EXPLAIN, "--lr", "-1"], 2, "--lr", "'-1'"),
    odd("explain lr nan", [*EXPLAIN, "--lr", "nan"], 2, "--lr", "nan"),
    odd("explain steps negative", [*EXPLAIN, "--steps", "-3"], 2, "--steps", "'-3'"),
    odd("explain seed words", [*EXPLAIN, "--seed", "abc"], 2, "--seed", "'abc'"),
    odd("explain format bogus", [*EXPLAIN, "--format", "bogus"], 2, "--format", "bogus"),
    odd("explain loss bogus", [*EXPLAIN, "--loss", "hinge"], 2, "--loss", "hinge"),
    odd("explain activation bogus", [*EXPLAIN, "--activation", "swish"], 2, "--activation", "swish"),
    odd("explain example bogus", ["explain", "nonsense"], 2, "EXAMPLE", "nonsense"),
    odd("explain vanishing depth 0", ["explain", "vanishing", "--depth", "0"], 2, "--depth", "'0'"),
    odd(
        "explain vanishing too big",
        ["explain", "vanishing", "--depth", "1000", "--width", "100000"],
        1,
        "vanishing",
        "would need about",
    ),
    odd(
        "explain vanishing plot into a missing dir",
        lambda tmp, run: [
            "explain",
            "vanishing",
            "--depth",
            "2",
            "--steps",
            "1",
            "--plot",
            str(tmp / "absent" / "plot.png"),
        ],
        1,
        "absent",
    ),
    odd("explain modes sizes 0", ["explain", "modes", "--sizes", "0"], 2, "--sizes"),
    odd(
        "explain modes sizes huge",
        ["explain", "modes", "--sizes", str(10**12), "--repeats", "1"],
        1,
        "modes",
        "would need about",
    ),
    odd("worked-example steps words", ["explain", "worked-example", "--steps", "x"], 2, "--steps", "'x'"),
    odd(
        "activations plot is a directory",
        lambda tmp, run: ["explain", "activations", "--plot", str(tmp)],
        1,
        "could not write",
        "Is a directory",
    ),
]

# -- explain --weights files --------------------------------------------------------------------------------
WEIGHTS_ROWS = [
    odd("weights nested 10^5 deep", _explain_weights("deep.json", DEEP), 1, "deep.json", "nested too deeply"),
    odd(
        "weights nested deep inside a layer",
        _explain_weights("deep2.json", '{"layers": [{"weight": ' + DEEP + ', "bias": [0]}]}'),
        1,
        "deep2.json",
        "nested too deeply",
    ),
    odd(
        "weights NaN token",
        _explain_weights("nan.json", '{"layers": [{"weight": [[NaN, 1]], "bias": [0]}]}'),
        1,
        "nan.json",
        "NaN, which is not JSON",
    ),
    odd(
        "weights key twice",
        _explain_weights("twice.json", '{"layers": [], "layers": [{"weight": [[1, 1]], "bias": [0]}]}'),
        1,
        "twice.json",
        "'layers' twice",
    ),
    odd(
        "weights Infinity token",
        _explain_weights("inf.json", '{"layers": [{"weight": [[1, 1]], "bias": [-Infinity]}]}'),
        1,
        "inf.json",
        "-Infinity, which is not JSON",
    ),
    odd(
        "weights overflowing number",
        _explain_weights("big.json", '{"layers": [{"weight": [[1e999, 1]], "bias": [0]}]}'),
        1,
        "big.json",
        "non-finite",
    ),
    odd(
        "weights wrong shape",
        _explain_weights("shape.json", _weights([{"weight": [[1, 2, 3]], "bias": [0]}])),
        1,
        "shape.json",
        "layer 1 weight has shape (1, 3), expected (1, 2)",
    ),
    odd(
        "weights ragged",
        _explain_weights("ragged.json", _weights([{"weight": [[1], [1, 2]], "bias": [0]}])),
        1,
        "ragged.json",
        "layer 1 weight must be numbers of shape (1, 2)",
    ),
    odd(
        "weights strings",
        _explain_weights("str.json", _weights([{"weight": [["a", "b"]], "bias": [0]}])),
        1,
        "str.json",
        "must be numbers",
    ),
    odd(
        "weights null",
        _explain_weights("null.json", _weights([{"weight": None, "bias": [0]}])),
        1,
        "null.json",
        "layer 1 weight",
    ),
    odd(
        "weights booleans",
        _explain_weights("bool.json", _weights([{"weight": [[True, False]], "bias": [0]}])),
        1,
        "bool.json",
        "layer 1 weight must be numbers",
    ),
    odd(
        "weights missing key",
        _explain_weights("key.json", _weights([{"weights": [[1, 1]], "bias": [0]}])),
        1,
        "key.json",
        'layer 1 must be {"weight"',
    ),
    odd(
        "weights extra key",
        _explain_weights("extra.json", _weights([{**GOOD_LAYER, "gain": 2}])),
        1,
        "extra.json",
        "layer 1 must be",
    ),
    odd(
        "weights too many layers",
        _explain_weights("many.json", _weights([GOOD_LAYER, GOOD_LAYER])),
        1,
        "many.json",
        "has 2 layers but the model has 1",
    ),
    odd(
        "weights no layers key",
        _explain_weights("nolayers.json", '{"weight": []}'),
        1,
        "nolayers.json",
        "expected an object",
    ),
    odd("weights a list", _explain_weights("list.json", "[1, 2]"), 1, "list.json", "expected an object"),
    odd("weights a number", _explain_weights("number.json", "3"), 1, "number.json", "expected an object"),
    odd("weights empty file", _explain_weights("empty.json", ""), 1, "empty.json", "not valid JSON"),
    odd(
        "weights truncated", _explain_weights("cut.json", _weights([GOOD_LAYER])[:-5]), 1, "cut.json", "not valid JSON"
    ),
    odd("weights binary", _explain_weights("binary.json", bytes(range(256))), 1, "binary.json", "not a text file"),
    odd("weights a directory", lambda tmp, run: [*EXPLAIN, "--weights", str(tmp)], 1, "is a directory"),
    odd(
        "weights missing",
        lambda tmp, run: [*EXPLAIN, "--weights", str(tmp / "absent.json")],
        1,
        "absent.json",
        "cannot be read",
    ),
]

# -- gradcheck ---------------------------------------------------------------------------------------------------
GRADCHECK_ROWS = [
    odd("gradcheck model 0", ["gradcheck", "--model", "0"], 2, "--model", "'0'"),
    odd("gradcheck model one width", ["gradcheck", "--model", "4"], 1, "gradcheck", "two positive widths"),
    odd("gradcheck model words", ["gradcheck", "--model", "a,b"], 2, "--model", "'a,b'"),
    odd("gradcheck model huge", ["gradcheck", "--model", HUGE], 1, "gradcheck", "would need about", "parameters"),
    odd("gradcheck huge batch", ["gradcheck", "--batch", str(10**12)], 1, "gradcheck", "batch", "would need about"),
    odd("gradcheck batch 0", ["gradcheck", "--batch", "0"], 2, "--batch", "'0'"),
    odd("gradcheck activation bogus", ["gradcheck", "--activation", "swish"], 1, "unknown activation 'swish'"),
    odd("gradcheck loss bogus", ["gradcheck", "--loss", "bce"], 2, "--loss", "bce"),
    odd("gradcheck seed negative", ["gradcheck", "--seed", "-1"], 2, "--seed", "'-1'"),
]

# -- evaluate and predict ------------------------------------------------------------------------------------------
RUN_ROWS = [
    odd(
        "evaluate missing dir",
        lambda tmp, run: ["evaluate", str(tmp / "absent")],
        1,
        "absent",
        "is not a run directory",
    ),
    odd("evaluate empty dir", lambda tmp, run: ["evaluate", str(tmp)], 1, str(Path("")), "is not a run directory"),
    odd(
        "evaluate a file",
        lambda tmp, run: ["evaluate", _write(tmp, "notes.txt", "x")],
        1,
        "notes.txt",
        "is not a run directory",
    ),
    odd(
        "evaluate truncated model",
        lambda tmp, run: ["evaluate", copy_run(run, tmp, _truncate("model.safetensors"))],
        1,
        "model.safetensors",
    ),
    odd(
        "evaluate model of 3 bytes",
        lambda tmp, run: ["evaluate", copy_run(run, tmp, _truncate("model.safetensors", 3))],
        1,
        "model.safetensors",
    ),
    odd(
        "evaluate truncated config",
        lambda tmp, run: ["evaluate", copy_run(run, tmp, _truncate("config.json"))],
        1,
        "config.json",
        "not valid JSON",
    ),
    odd(
        "evaluate config a list",
        lambda tmp, run: ["evaluate", copy_run(run, tmp, lambda d: (d / "config.json").write_text("[]"))],
        1,
        "config.json",
    ),
    odd(
        "evaluate config without data",
        lambda tmp, run: ["evaluate", copy_run(run, tmp, _rewrite_config(lambda c: c.pop("data")))],
        1,
        "config.json",
    ),
    odd(
        "evaluate config unknown model",
        lambda tmp, run: ["evaluate", copy_run(run, tmp, _rewrite_config(lambda c: c["model"].update(model="tree")))],
        1,
        "config.json",
        "model.model",
        "'tree'",
    ),
    odd(
        "evaluate other dataset shape",
        lambda tmp, run: ["evaluate", str(run), "--data", "digits"],
        1,
        "evaluate",
        "shape",
    ),
    odd("evaluate bogus data", lambda tmp, run: ["evaluate", str(run), "--data", "imagenet"], 2, "--data", "imagenet"),
    odd("evaluate limit 0", lambda tmp, run: ["evaluate", str(run), "--limit", "0"], 2, "--limit", "'0'"),
    odd("evaluate no run dir", ["evaluate"], 2, "run_dir"),
    odd(
        "predict on a non-run dir",
        lambda tmp, run: ["predict", str(tmp), _npy(tmp, "x.npy", np.zeros((1, 2)))],
        1,
        "is not a run directory",
    ),
    odd("predict missing file", lambda tmp, run: ["predict", str(run), str(tmp / "absent.npy")], 1, "absent.npy"),
    odd(
        "predict wrong shape",
        lambda tmp, run: ["predict", str(run), _npy(tmp, "x.npy", np.zeros((1, 5)))],
        1,
        "x.npy",
        "got shape (1, 5)",
        "(2,)",
    ),
    odd(
        "predict object array",
        lambda tmp, run: ["predict", str(run), _write(tmp, "o.npy", b"\x93NUMPY garbage")],
        1,
        "o.npy",
    ),
    odd("predict top 0", lambda tmp, run: ["predict", str(run), "x.npy", "--top", "0"], 2, "--top", "'0'"),
    odd("predict no files", lambda tmp, run: ["predict", str(run)], 2, "IMAGE_OR_NPY"),
]

# -- datasets, demo, the command itself, the environment ---------------------------------------------------------------
OTHER_ROWS = [
    odd(
        "datasets data-dir a file",
        lambda tmp, run: ["datasets", "--data-dir", _write(tmp, "f.txt", "x")],
        1,
        "--data-dir",
        "f.txt",
        "not a directory",
    ),
    odd(
        "datasets data-dir missing",
        lambda tmp, run: ["datasets", "--data-dir", str(tmp / "absent")],
        1,
        "--data-dir",
        "absent",
        "does not exist",
    ),
    odd("datasets data-dir empty string", ["datasets", "--data-dir", ""], 1, "--data-dir", "empty"),
    odd(
        "CHAINRULE_DATA a file",
        lambda tmp, run: ["datasets"],
        1,
        "CHAINRULE_DATA",
        "not a directory",
        env={"CHAINRULE_DATA": __file__},
    ),
    odd(
        "CHAINRULE_DATA missing",
        ["datasets"],
        1,
        "CHAINRULE_DATA",
        "does not exist",
        env={"CHAINRULE_DATA": "/nonexistent/chainrule-data"},
    ),
    odd(
        "CHAINRULE_DATA a file, train mnist",
        lambda tmp, run: ["train", "--data", "mnist", "--out", str(tmp / "r"), "--quiet"],
        1,
        "CHAINRULE_DATA",
        "not a directory",
        env={"CHAINRULE_DATA": __file__},
    ),
    odd("demo unknown", ["demo", "tetris"], 2, "tetris", "xor"),
    odd("demo none", ["demo"], 2, "DEMO"),
    odd("demo xor steps 0", ["demo", "xor", "--steps", "0"], 2, "--steps", "'0'"),
    odd("demo xor lr 0", ["demo", "xor", "--lr", "0"], 2, "--lr", "'0'"),
    odd("demo xor lr inf", ["demo", "xor", "--lr", "inf"], 2, "--lr", "'inf'"),
    odd("demo xor diverges", ["demo", "xor", "--lr", "50", "--steps", "200"], 1, "demo xor", "--lr 50"),
    odd("demo xor hidden huge", ["demo", "xor", "--hidden", str(10**12)], 1, "train_xor", "2-1000000000000-1"),
    odd("demo xor engine bogus", ["demo", "xor", "--engine", "gpu"], 2, "--engine", "gpu"),
    odd("unknown command", ["fly"], 2, "fly"),
    odd("unknown flag", ["datasets", "--colour"], 2, "--colour"),
    odd(
        "train hidden huge",
        lambda tmp, run: [
            "train",
            "--data",
            "xor",
            "--hidden",
            "1000000,1000000",
            "--out",
            str(tmp / "r"),
            "--quiet",
            "--no-plots",
        ],
        1,
        "1,000,006,000,002 parameters",
        "TiB",
    ),
]

ROWS = EXPLAIN_ROWS + WEIGHTS_ROWS + GRADCHECK_ROWS + RUN_ROWS + OTHER_ROWS


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny run (xor, one epoch) that the evaluate and predict rows copy and break."""
    pytest.importorskip("safetensors", reason="runs write checkpoints (pip install 'chainrule[io]')")
    run = tmp_path_factory.mktemp("trained") / "run"
    argv = ["train", "--data", "xor", "--hidden", "4", "--epochs", "1", "--quiet", "--no-plots", "--out", str(run)]
    assert main(argv) == 0
    return run


def test_the_table_is_large_enough():
    assert len(ROWS) >= 70
    assert len({row.name for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_odd_input_is_one_line_and_an_exit_code(row, tmp_path, monkeypatch, capsys, request):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no cached datasets, no downloads into the real cache
    monkeypatch.setattr(_checks, "memory_budget", lambda: 4 * 2**30)  # the same refusals on any machine
    for key, value in row.env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    if callable(row.argv):
        run = request.getfixturevalue("trained_run") if row in RUN_ROWS else Path(os.devnull)
        capsys.readouterr()
        argv = row.argv(tmp_path, run)
    else:
        argv = row.argv
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == row.code, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and ": error: " in err, err
    for part in row.parts:
        assert part in err, f"{part!r} not in {err!r}"
