"""Parity with PyTorch may not skip in CI.

Locally, a test that compares with PyTorch skips when PyTorch is missing, with the reason
``helpers.TORCH_MISSING``. When the environment variable ``CHAINRULE_REQUIRE_PARITY`` is set to a non-empty value
other than ``0`` (``.ci/run`` sets it), such a skip is turned into an error instead, so that a CI environment
without PyTorch cannot pass while a fifth of the suite silently did not run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from typing import Any

import pytest

REQUIRE_PARITY = os.environ.get("CHAINRULE_REQUIRE_PARITY", "") not in ("", "0")


def pytest_report_header(config: pytest.Config) -> str:
    if REQUIRE_PARITY:
        return "parity: required (CHAINRULE_REQUIRE_PARITY is set): a test skipped for a missing PyTorch fails"
    return "parity: tests that compare with PyTorch skip if it is missing (set CHAINRULE_REQUIRE_PARITY=1 to fail)"


def _torch_missing_reason() -> str | None:
    """``helpers.TORCH_MISSING``, read from the helpers module the tests imported (it pulls in PyTorch)."""
    helpers = sys.modules.get("helpers")
    return getattr(helpers, "TORCH_MISSING", None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, Any]:
    report = yield
    if REQUIRE_PARITY and report.skipped:
        reason = _torch_missing_reason()
        if reason and reason in str(report.longrepr):
            report.outcome = "failed"
            report.longrepr = f"{reason}; CHAINRULE_REQUIRE_PARITY is set, so a parity test may not skip"
    return report
