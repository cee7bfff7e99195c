"""``chainrule explain curvature``: the operators' numbers, in every format; its errors are one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chainrule import curvature, data, nn, rng
from chainrule.cli import main
from chainrule.explain.network import build_network


def _json(capsys, *argv):
    assert main(["explain", "curvature", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_matrices_are_the_operators_matrices(capsys):
    report = _json(capsys, "--model", "2,3,1", "--steps", "0", "--samples", "6", "--seed", "3")
    assert [stage["name"] for stage in report["stages"]] == ["initialisation"]
    rng.manual_seed(3)
    model = build_network([2, 3, 1], "tanh")
    x, labels = data.load("xor", n_samples=6, test_fraction=0.0, seed=3).train.arrays
    x, y = np.asarray(x, dtype=np.float64), np.asarray(labels, dtype=np.float64).reshape(-1, 1)
    stage = report["stages"][0]
    for name, build in [
        ("Hessian", curvature.hessian),
        ("GGN", curvature.ggn),
        ("Fisher", curvature.fisher),
        ("empirical Fisher", curvature.empirical_fisher),
    ]:
        dense = build(model, nn.MSELoss(), x, y).to_dense()
        np.testing.assert_allclose(np.array(stage["matrices"][name]), dense, rtol=0, atol=1e-14)
        np.testing.assert_allclose(stage["eigenvalues"][name], np.linalg.eigvalsh(dense)[::-1][:6], atol=1e-9)
        assert stage["traces"][name] == pytest.approx(np.trace(dense), abs=1e-12)
    assert len(report["parameters"]) == 13 and report["parameters"][0] == "W1[0,0]"
    assert stage["distances"]["Fisher vs GGN"] < 1e-12


@pytest.mark.parametrize("loss, model", [("mse", "2,3,1"), ("cross_entropy", "2,3,2")])
def test_training_brings_the_hessian_to_the_ggn_and_the_findings_say_so(capsys, loss, model):
    report = _json(capsys, "--model", model, "--loss", loss, "--steps", "300")
    first, last = report["stages"]
    assert last["name"] == "after 300 steps" and last["residual"] < first["residual"]
    assert last["distances"]["Hessian vs GGN"] < first["distances"]["Hessian vs GGN"]
    assert max(s["distances"]["Fisher vs GGN"] for s in report["stages"]) < 1e-10
    assert last["distances"]["empirical Fisher vs Fisher"] > 0.1
    findings = " ".join(report["findings"])
    assert "GGN = Fisher exactly" in findings and "fell from" in findings and "empirical Fisher differs" in findings


def test_text_markdown_and_html_show_the_same_tables(capsys):
    argv = ["explain", "curvature", "--steps", "20", "--samples", "4"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "Eigenvalues and traces, after 20 steps" in text and "Hessian, initialisation" in text
    assert "GGN = Fisher exactly for squared error" in text
    assert main([*argv, "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out
    assert "### Eigenvalues and traces, initialisation" in markdown and "- Hessian → GGN" in markdown
    assert main(["explain", "--format", "html", "curvature", "--steps", "20", "--samples", "4"]) == 0
    html = capsys.readouterr().out
    assert html.count("<table>") == text.count("\n=") and "<li>GGN = Fisher exactly" in html


def test_plot_writes_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curvature.png"
    assert main(["explain", "curvature", "--steps", "5", "--samples", "4", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"heatmaps written to {path}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "3,3,1"], "--model must start with 2 inputs"),
        (["--loss", "cross_entropy"], "needs 2 outputs, --model ends with 1"),
        (["--data", "blobs"], "needs 1 output (binary) or 3 (one-hot)"),
        (["--model", "2,20,20,2"], "at most 200"),
        (["--samples", "1"], "--samples"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(["explain", "curvature", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_diverging_run_is_one_error_line(capsys):
    assert main(["explain", "curvature", "--lr", "100", "--steps", "50"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chainrule: error: explain curvature:") and "smaller --lr" in err and err.count("\n") == 1
