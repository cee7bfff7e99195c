"""Collection without the optional extras: what needs scikit-learn is left out or skipped, with the reason.

``chainrule.sklearn`` subclasses scikit-learn's estimators, so without scikit-learn its module cannot even be
imported and ``--doctest-modules`` would stop the whole run with a collection error. It is left out of the
collection (the header says so), and any other doctest that fails only for want of scikit-learn is reported as
skipped, with the reason. The tests
under ``tests/`` that need scikit-learn skip by themselves (``pytest.importorskip``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Generator
from typing import Any

import pytest

SKLEARN_MISSING = (
    "scikit-learn is not installed (pip install -e '.[datasets]')"
    if importlib.util.find_spec("sklearn") is None
    else None
)

ONNX_MISSING = "onnx is not installed (pip install -e '.[onnx]')" if importlib.util.find_spec("onnx") is None else None

# Paths relative to this file that pytest does not collect.
collect_ignore = ["src/chainrule/sklearn.py"] if SKLEARN_MISSING else []
collect_ignore += ["src/chainrule/onnx/export.py"] if ONNX_MISSING else []  # its doctests export models


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    if SKLEARN_MISSING:
        lines.append(f"{SKLEARN_MISSING}: src/chainrule/sklearn.py is not collected, its doctests do not run")
    if ONNX_MISSING:
        lines.append(f"{ONNX_MISSING}: src/chainrule/onnx/export.py is not collected, its doctests do not run")
    return lines


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, Any]:
    """A doctest that failed only because scikit-learn is missing (it imports it, or loads the digits through it)
    is reported as skipped, with the reason."""
    report = yield
    is_doctest = getattr(item, "dtest", None) is not None
    if SKLEARN_MISSING and is_doctest and report.failed and _needs_sklearn(report.longreprtext):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), 0, f"Skipped: {SKLEARN_MISSING}; this example needs it")
    return report


def _needs_sklearn(failure: str) -> bool:
    """The failure names scikit-learn (``No module named 'sklearn'``, or chainrule's own "needs scikit-learn")."""
    return "sklearn" in failure or "scikit-learn" in failure
