"""CHAINRULE_REQUIRE_PARITY (set by .ci/run) turns a parity test skipped for a missing PyTorch into an error.

Each row runs a small pytest session in a temporary directory with this directory's ``conftest.py`` and a
``helpers.py`` whose ``TORCH_MISSING`` is the reason of a skip, as when PyTorch is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent

SESSION = """
import pytest
from helpers import TORCH_MISSING

@pytest.mark.skipif(True, reason=TORCH_MISSING)
def test_parity_by_mark():
    pass

def test_parity_by_call():
    pytest.skip(TORCH_MISSING)

def test_other_skip():
    pytest.skip("Graphviz is not installed")

def test_runs():
    pass
"""

# (value of CHAINRULE_REQUIRE_PARITY or None for unset, exit status, expected counts in the summary line)
ROWS = [
    (None, 0, "1 passed, 3 skipped"),
    ("0", 0, "1 passed, 3 skipped"),
    ("1", 1, "1 failed, 1 passed, 1 skipped, 1 error"),
]


@pytest.mark.parametrize("value, status, summary", ROWS)
def test_a_parity_skip_fails_only_when_parity_is_required(tmp_path, value, status, summary):
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "helpers.py").write_text('TORCH_MISSING = "PyTorch is not installed (test)"\n')
    (tmp_path / "test_session.py").write_text(SESSION)
    env = {k: v for k, v in os.environ.items() if k != "CHAINRULE_REQUIRE_PARITY"}
    if value is not None:
        env["CHAINRULE_REQUIRE_PARITY"] = value
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_session.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == status, done.stdout + done.stderr
    assert summary in done.stdout, done.stdout
    if status:
        assert "CHAINRULE_REQUIRE_PARITY is set, so a parity test may not skip" in done.stdout
