"""The ``chainrule`` command turns a corrupt file or a diverging run into one line and exit code 1.

Each test breaks one file a command reads (a checkpoint to resume from, a run's model, an IDX file of
MNIST) or poisons one batch, and checks the message names the file, fits on one line, and that
``--debug`` lets the exception and its traceback through instead.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.data import catalog, write_idx
from chainrule.errors import CheckpointError, DataError
from chainrule.train import NonFiniteLossError

pytest.importorskip("safetensors", reason="runs write checkpoints (pip install 'chainrule[io]')")

TRAIN_XOR = ["train", "--data", "xor", "--hidden", "4", "--quiet", "--no-plots", "--val-split", "0"]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No cache and no CHAINRULE_DATA: only the files a test writes are found."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CHAINRULE_DATA", raising=False)
    return tmp_path


def _one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("chainrule: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _corrupt(path, offset: int = 20) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))


def test_train_resume_from_a_corrupt_checkpoint(isolated, capsys):
    run = isolated / "run"
    assert main([*TRAIN_XOR, "--epochs", "1", "--out", str(run)]) == 0
    _corrupt(run / "last.safetensors")
    capsys.readouterr()
    argv = [*TRAIN_XOR, "--epochs", "2", "--out", str(run), "--resume"]
    assert main(argv) == 1
    _one_line_error(capsys, "last.safetensors")
    with pytest.raises(CheckpointError, match="last.safetensors"):
        main([*argv, "--debug"])


def test_evaluate_a_run_with_a_corrupt_model(isolated, capsys):
    run = isolated / "run"
    assert main([*TRAIN_XOR, "--epochs", "1", "--out", str(run)]) == 0
    (run / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes()[:-3])
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 1
    _one_line_error(capsys, "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        main(["evaluate", str(run), "--debug"])


def _mnist_files(directory, images=None, labels=None):
    write_idx(directory / "train-images-idx3-ubyte.gz", np.zeros((4, 28, 28), np.uint8) if images is None else images)
    write_idx(directory / "train-labels-idx1-ubyte.gz", np.arange(4, dtype=np.uint8) if labels is None else labels)
    write_idx(directory / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    write_idx(directory / "t10k-labels-idx1-ubyte.gz", np.arange(2, dtype=np.uint8))


MNIST_CORRUPTIONS = {
    "truncated gzip": (lambda d: (d / "train-images-idx3-ubyte.gz").write_bytes(
        (d / "train-images-idx3-ubyte.gz").read_bytes()[:-10]), "train-images-idx3-ubyte.gz: the gzip stream"),
    "bad magic": (lambda d: (d / "train-labels-idx1-ubyte.gz").write_bytes(b"\x01\x02\x08\x01"),
                  "train-labels-idx1-ubyte.gz: not an IDX file"),
    "label out of range": (lambda d: _mnist_files(d, labels=np.array([0, 1, 12, 3], np.uint8)),
                           "train-labels-idx1-ubyte.gz: label 2 is 12"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MNIST_CORRUPTIONS))
def test_train_on_a_corrupt_mnist_file(isolated, capsys, case):
    data_dir = isolated / "data"
    data_dir.mkdir()
    _mnist_files(data_dir)
    corrupt, fragment = MNIST_CORRUPTIONS[case]
    corrupt(data_dir)
    argv = ["train", "--data", "mnist", "--data-dir", str(data_dir), "--out", str(isolated / "run"), "--quiet"]
    assert main(argv) == 1
    _one_line_error(capsys, str(data_dir), fragment)
    with pytest.raises(DataError, match=fragment):
        main([*argv, "--debug"])


def test_a_nan_batch_stops_training_and_keeps_the_last_checkpoint(isolated, capsys, monkeypatch):
    run = isolated / "run"
    assert main([*TRAIN_XOR, "--epochs", "1", "--out", str(run)]) == 0
    before = (run / "last.safetensors").read_bytes()
    clean_xor = catalog.DATASETS["xor"]

    def poisoned_xor(**kwargs):
        splits = clean_xor(**kwargs)
        splits.train.arrays[0][5] = np.nan  # one sample: one batch of the next epoch
        return splits

    monkeypatch.setitem(catalog.DATASETS, "xor", poisoned_xor)
    capsys.readouterr()
    argv = [*TRAIN_XOR, "--epochs", "2", "--out", str(run), "--resume"]
    assert main(argv) == 1
    _one_line_error(capsys, "loss became nan at step", "(epoch 2, batch")
    assert (run / "last.safetensors").read_bytes() == before
    with pytest.raises(NonFiniteLossError):
        main([*argv, "--debug"])
    assert (run / "last.safetensors").read_bytes() == before


def test_debug_prints_the_traceback_from_the_installed_command(isolated):
    missing = isolated / "no-such-run"
    command = [sys.executable, "-c", "import sys; from chainrule.cli import main; sys.exit(main())"]
    quiet = subprocess.run([*command, "evaluate", str(missing)], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 1 and quiet.stderr.count("\n") == 1 and "Traceback" not in quiet.stderr
    loud = subprocess.run([*command, "evaluate", str(missing), "--debug"], capture_output=True, text=True, timeout=120)
    assert loud.returncode == 1 and "Traceback (most recent call last)" in loud.stderr and str(missing) in loud.stderr
