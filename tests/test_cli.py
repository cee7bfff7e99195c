"""The command line: the quickstart's demo, exit codes, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chainrule.cli import main


def test_demo_xor_trains_and_prints_the_loss_falling(capsys):
    assert main(["demo", "xor", "--steps", "300"]) == 0
    out = capsys.readouterr().out
    assert "Learned XOR." in out
    losses = [float(line.split()[-1]) for line in out.splitlines() if line.strip().startswith("step")]
    assert losses[-1] < 0.01 < losses[0]


def test_demo_xor_on_the_scalar_engine(capsys):
    assert main(["demo", "xor", "--engine", "scalar", "--steps", "300"]) == 0
    assert "scalar engine" in capsys.readouterr().out


def test_bad_values_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", "xor", "--steps", "0"])
    assert info.value.code == 2
    assert "--steps: expected a positive integer, got '0'" in capsys.readouterr().err


def test_errors_inside_a_command_exit_1_with_one_line(capsys):
    assert main(["evaluate", "/nonexistent/run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chainrule: error: ") and err.count("\n") == 1


def test_bad_usage_exits_2():
    with pytest.raises(SystemExit) as info:
        main(["demo", "nonsense"])
    assert info.value.code == 2
    assert main([]) == 2


def test_console_script_runs_as_module():
    result = subprocess.run([sys.executable, "-m", "chainrule.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("chainrule ")


def test_gradcheck_command_passes_and_reports_every_parameter(capsys):
    assert main(["gradcheck", "--model", "3,5,2", "--loss", "cross_entropy", "--activation", "sigmoid"]) == 0
    out = capsys.readouterr().out
    assert "all 4 parameters pass" in out and "0.weight" in out and "2.bias" in out


def test_explain_demos_print_measured_numbers(capsys):
    assert main(["explain", "vanishing", "--depth", "6", "--steps", "5"]) == 0
    out = capsys.readouterr().out
    assert "first ÷ last" in out and "vanishing" in out
    assert main(["explain", "activations"]) == 0
    assert "softsign" in capsys.readouterr().out
    assert main(["explain", "modes", "--sizes", "4,8", "--repeats", "1"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[:2] for row in rows] == [["4", "4"], ["8", "8"]]  # N parameters took N JVPs


def test_explain_format_may_come_before_or_after_the_example(capsys):
    assert main(["explain", "--format", "json", "worked-example", "--steps", "1"]) == 0
    before = capsys.readouterr().out
    assert main(["explain", "worked-example", "--steps", "1", "--format", "json"]) == 0
    assert before == capsys.readouterr().out and before.lstrip().startswith("{")
