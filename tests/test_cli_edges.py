"""Trust at the edges of the command line: every failure one line, pipes closed early, strict JSON.

The bad-argument sweep is in ``test_bad_input_cli.py``; these tests pin the mechanisms behind it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from chainrule import _checks
from chainrule.cli import main
from chainrule.errors import ArgumentError

SRC = os.path.join(os.path.dirname(__file__), os.pardir, "src")


def _one_line(capsys, *fragments: str) -> str:
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("chainrule: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _array_memory_error() -> MemoryError:
    """NumPy's own ``_ArrayMemoryError``, from an allocation no machine satisfies (nothing is allocated)."""
    try:
        np.zeros((10**6, 10**7))
    except MemoryError as error:
        return error
    raise AssertionError("80 TB were allocated")


def _raise(error: BaseException):
    def run(args):
        raise error

    return run


@pytest.mark.parametrize(
    ("error", "fragments"),
    [
        (KeyError("hidden"), ("KeyError", "hidden")),
        (MemoryError("Unable to allocate 74.5 GiB for an array"), ("out of memory", "74.5 GiB")),
        (_array_memory_error(), ("out of memory", "Unable to allocate", "TiB", "(1000000, 10000000)")),
        (RecursionError("maximum recursion depth exceeded"), ("nested too deeply",)),
        (RuntimeError("two\nlines"), ("RuntimeError: two lines",)),
        (AssertionError(), ("AssertionError",)),
    ],
    ids=["KeyError", "MemoryError", "ArrayMemoryError", "RecursionError", "multi-line", "empty"],
)
def test_any_exception_is_one_line_and_exit_1(monkeypatch, capsys, error, fragments):
    import chainrule.cli as cli

    monkeypatch.setattr(cli, "_datasets", _raise(error))
    assert main(["datasets"]) == 1
    _one_line(capsys, *fragments)
    with pytest.raises(type(error)):
        main(["datasets", "--debug"])


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys):
    import chainrule.cli as cli

    monkeypatch.setattr(cli, "_datasets", _raise(KeyboardInterrupt()))
    assert main(["datasets"]) == 130
    assert capsys.readouterr().err == "chainrule: interrupted\n"


def test_a_closed_stdout_ends_quietly_in_process(monkeypatch, capsys):
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["datasets"]) == 141
    assert capsys.readouterr().err == ""


def test_a_pipeline_closing_early_ends_quietly():
    """``chainrule datasets | head -0``: the reader is gone before the first line is written."""
    env = {**os.environ, "PYTHONPATH": os.path.abspath(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainrule", "datasets"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 141
    assert err == b""


def test_numpy_warnings_never_print_before_the_error(monkeypatch, capsys):
    import chainrule.cli as cli

    def overflow(args):
        np.exp(np.array([1000.0]))  # RuntimeWarning: overflow, outside the command
        raise ArithmeticError("the loss became inf")

    monkeypatch.setattr(cli, "_datasets", overflow)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy warning would raise here and change the message
        assert main(["datasets"]) == 1
    _one_line(capsys, "the loss became inf")


def test_library_warnings_print_as_one_line(monkeypatch, capsys):
    import chainrule.cli as cli

    def warn(args):
        warnings.warn("validation loss is nan\nin epoch 1", RuntimeWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(cli, "_datasets", warn)
    assert main(["datasets"]) == 0
    assert capsys.readouterr().err == "chainrule: warning: validation loss is nan in epoch 1\n"


# -- memory estimates ------------------------------------------------------------------------------------
def test_parameter_count_of_widths_is_exact_for_huge_widths():
    assert _checks.mlp_parameter_count([2, 3, 1]) == 13
    assert _checks.mlp_parameter_count([2, 10**9, 1]) == 2 * 10**9 + 10**9 + 10**9 + 1
    assert _checks.mlp_parameter_count([5]) == 0


def test_memory_check_names_the_figures():
    with pytest.raises(ArgumentError, match=r"explain: a net would need about 2\.0 GiB of memory, more than the 1\.0"):
        _checks.fits_in_memory("explain", "a net", 2 * 2**30, budget=2**30)
    _checks.fits_in_memory("explain", "a net", 2**30, budget=2**30)


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "--model", "2,100000,1", "--input", "1,0", "--target", "1"],
        ["explain", "--model", "2,1000000000,1", "--input", "1,0", "--target", "1"],
        ["gradcheck", "--model", "2,1000000000,1"],
        ["gradcheck", "--model", "100000,100000,100000"],
    ],
)
def test_huge_models_are_refused_before_allocating(capsys, monkeypatch, argv):
    monkeypatch.setattr(_checks, "memory_budget", lambda: 4 * 2**30)  # the same refusals on any machine
    assert main(argv) == 1
    _one_line(capsys, "would need about", "GiB", "parameters", "use smaller widths")


# -- strict JSON -------------------------------------------------------------------------------------------
def test_explain_json_is_strict_even_when_values_overflow(capsys):
    argv = ["explain", "--model", "2,3,1", "--input", "1e200,1e200", "--target", "1", "--activation", "identity"]
    assert main([*argv, "--loss", "sse", "--format", "json"]) == 0
    text = capsys.readouterr().out

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    record = json.loads(text, parse_constant=refuse)
    assert record["loss"] == "inf"
    assert float(record["loss"]) == float("inf")


# -- polish: what the commands print -------------------------------------------------------------------------
def test_demo_xor_losses_keep_enough_digits_to_see_them_fall(capsys):
    assert main(["demo", "xor"]) == 0
    shown = [line.split()[-1] for line in capsys.readouterr().out.splitlines() if line.strip().startswith("step")]
    assert len(set(shown)) == len(shown) == 11, shown  # late in training the loss is tiny but still shown falling
    assert all(float(value) > 0 for value in shown)
    assert [float(v) for v in shown] == sorted((float(v) for v in shown), reverse=True)


def test_demo_xor_diverging_is_one_line_not_silent_nan(capsys):
    assert main(["demo", "xor", "--steps", "500", "--lr", "5"]) == 1
    err = _one_line(capsys, "demo xor: the loss became", "--lr 5 is too large")
    assert "nan" in err or "inf" in err


def test_explain_update_table_names_each_parameters_layer(capsys):
    assert main(["explain", "--model", "2,2,1", "--input", "1,0", "--target", "1"]) == 0
    text = capsys.readouterr().out
    update = text[text.index("SGD step") :].splitlines()
    assert update[2].split()[:2] == ["layer", "param"]
    layers = [line.split()[0] for line in update[4:] if line.strip()]
    assert layers == ["2"] * 3 + ["1"] * 6


def test_classification_report_columns_line_up_with_long_names_and_many_classes():
    from chainrule.train.metrics import classification_report

    names = [f"class {i}" for i in range(11)] + ["a very long class name indeed"]
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 12, 500)
    predicted = np.where(rng.random(500) < 0.7, targets, rng.integers(0, 12, 500))
    predicted[:150] = 3  # a column of three-digit counts
    report = classification_report(predicted, targets, names)
    per_class, matrix = report.split("\n\n")
    for block in (per_class.splitlines(), matrix.splitlines()[1:]):
        assert len({len(line) for line in block}) == 1, block  # right-aligned columns: equal line lengths
        assert len(block) == 13
    assert "a very long class name indeed" in per_class and "11 a very long class name indeed" in matrix
