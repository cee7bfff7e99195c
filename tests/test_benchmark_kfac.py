"""``benchmarks/kfac_autoencoder.py`` without the MNIST files: one message and exit status 1, no traceback."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def test_missing_mnist_is_one_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path / "data"))  # empty: no mnist/ there
    monkeypatch.setenv("HOME", str(tmp_path))  # nor in ~/.cache/chainrule/mnist
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "kfac_autoencoder.py"
    spec = importlib.util.spec_from_file_location("chainrule_kfac_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path / "ae.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kfac_autoencoder.py: error: mnist: the MNIST files were not found")
    assert "Traceback" not in err and "CHAINRULE_DATA" in err
    assert not (tmp_path / "ae.png").exists()
