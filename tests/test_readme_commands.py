"""Every ``chainrule ...`` line of the README's ```bash blocks runs as written (shortened with ``--limit`` and
``--epochs``), exits 0, and every training command's loss falls; the "Training from Python" snippet gives the same
numbers twice. The commands are read from the README, so the README and this test cannot drift apart."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import data
from chainrule.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
pytest.importorskip("safetensors", reason="runs write checkpoints (pip install 'chainrule[io]')")
pytest.importorskip("sklearn", reason="the digits dataset ships with scikit-learn")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def _commands(block: str) -> list[list[str]]:
    """The argument lists of the ``chainrule`` commands of one bash block (after any ``&&``, before ``#``)."""
    commands = []
    for line in block.splitlines():
        line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        for part in line.split("&&"):
            words = shlex.split(part)
            if words and words[0].endswith("chainrule"):
                commands.append(words[1:])
    return commands


def _sections() -> dict[str, list[list[str]]]:
    """The commands of each ``## `` section's bash blocks, in order: a section is one session of a user."""
    sections = {}
    for section in re.split(r"^## ", README.read_text(), flags=re.M)[1:]:
        title = section.splitlines()[0]
        commands = [c for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S) for c in _commands(block)]
        if commands:
            sections[title] = commands
    return sections


SECTIONS = _sections()
BLOCKS = list(SECTIONS.values())


def test_the_readme_has_its_commands():
    flat = [" ".join(c) for block in BLOCKS for c in block]
    assert "train" in flat and "train --data mnist --model cnn --epochs 8" in flat and len(flat) >= 10


def _shortened(argv: list[str]) -> list[str]:
    """A train command cut to a few quick epochs on a few samples; other commands as they are."""
    if argv[:1] != ["train"]:
        return argv
    argv = list(argv)
    epochs = 3 if "--resume" in argv else 2
    if "--epochs" in argv:
        argv[argv.index("--epochs") + 1] = str(epochs)
    else:
        argv += ["--epochs", str(epochs)]
    return [*argv, "--limit", "300", "--quiet", "--no-plots"]


def _needs_missing_data(argv: list[str]) -> str | None:
    if "--data" in argv:
        name = argv[argv.index("--data") + 1]
        if name in ("mnist", "fashion_mnist") and data.locate(name) is None:
            return name
    return None


@pytest.mark.parametrize("commands", BLOCKS, ids=list(SECTIONS))
def test_each_readme_section_runs_and_learns(commands, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if any(c[:2] == ["predict", "runs/digits-mlp"] for c in commands):
        pytest.importorskip("matplotlib", reason="predict reads PNG images with matplotlib")
        import matplotlib.image
        from sklearn.datasets import load_digits

        matplotlib.image.imsave(tmp_path / "digit.png", load_digits().images[0], cmap="gray", vmin=0, vmax=16)
    for argv in commands:
        missing = _needs_missing_data(argv)
        if missing:
            continue  # run what can run; the data set's own tests skip with the reason
        argv = _shortened(argv)
        assert main(argv) == 0, f"chainrule {' '.join(argv)}: {capsys.readouterr().err}"
        if argv[0] == "train":
            out = re.search(r"-> (\S+)", capsys.readouterr().out).group(1)
            records = json.loads((Path(out) / "history.json").read_text())["records"]
            assert records[-1]["loss"] < records[0]["loss"], f"the loss did not fall: chainrule {' '.join(argv)}"


def test_the_training_from_python_snippet_gives_the_same_numbers_twice():
    (snippet,) = [block for block in _blocks("python") if "from chainrule.train import" in block]
    snippet = snippet.replace("epochs=30", "epochs=3")
    outputs = []
    for _ in range(2):
        cr.manual_seed(12345 + len(outputs))  # whatever state the global generator is in before the snippet
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(snippet, "README.md", "exec"), {})
        outputs.append(re.sub(r"\(\d+\.\ds\)", "", printed.getvalue()))  # all but the epoch times
    assert outputs[0] == outputs[1] and "accuracy" in outputs[0]


def test_fit_with_a_seed_repeats_a_run_after_manual_seed():
    from chainrule import nn
    from chainrule.train import fit

    x = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    losses = []
    for _ in range(2):
        cr.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.ReLU(), nn.Linear(8, 2))
        losses.append(fit(model, (x, y), epochs=3, batch_size=8, val_split=0.25, seed=0, verbose=0)["loss"])
    assert losses[0] == losses[1]


def test_the_training_from_python_blocks_run_in_order_as_one_session(tmp_path, monkeypatch):
    """The snippet, the loop by hand and the save/load/load_run block, in one namespace, as a user pastes them."""
    start = README.read_text().index("## Training from Python")
    section = README.read_text()[start:].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 3 and "optimizer = optim." in blocks[1] and "load_run" in blocks[2]
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "1", "--quiet", "--no-plots"]) == 0  # the quickstart's run: runs/digits-mlp
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block.replace("epochs=30", "epochs=2"), "README.md", "exec"), namespace)
    assert "total" in printed.getvalue()  # model.summary()
    for name, value in namespace["model"].state_dict().items():
        np.testing.assert_array_equal(namespace["restored"].state_dict()[name].numpy(), value.numpy())
    assert namespace["config"]["data"]["name"] == "digits" and not namespace["run_model"].training
