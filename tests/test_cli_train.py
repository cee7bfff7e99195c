"""``chainrule train / evaluate / predict / datasets`` end to end on small runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chainrule.cli import main

pytest.importorskip("safetensors", reason="runs write checkpoints (pip install 'chainrule[io]')")


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    pytest.importorskip("sklearn", reason="the digits dataset ships with scikit-learn")
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--epochs", "3", "--out", str(out), "--quiet", "--no-plots", "--hidden", "32"])
    assert code == 0
    return out


def test_train_writes_a_complete_run_directory(digits_run, capsys):
    files = {p.name for p in digits_run.iterdir()}
    assert {"config.json", "model.safetensors", "last.safetensors", "best.safetensors", "history.json",
            "history.csv"} <= files  # fmt: skip
    config = json.loads((digits_run / "config.json").read_text())
    assert config["data"]["input_shape"] == [1, 8, 8] and config["test"]["accuracy"] > 0.8
    assert len(json.loads((digits_run / "history.json").read_text())["records"]) == 3


def test_evaluate_and_predict_a_run(digits_run, capsys, tmp_path):
    assert main(["evaluate", str(digits_run)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "Confusion matrix" in out
    from sklearn.datasets import load_digits

    images = load_digits().images[:2].astype(np.float32)
    path = tmp_path / "two.npy"
    np.save(path, images)
    assert main(["predict", str(digits_run), str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{path}[0]: ")


def test_resume_continues_to_more_epochs(digits_run, capsys):
    assert main(["train", "--epochs", "4", "--out", str(digits_run), "--quiet", "--no-plots", "--hidden", "32",
                 "--resume"]) == 0  # fmt: skip
    assert len(json.loads((digits_run / "history.json").read_text())["records"]) == 4


def test_plots_for_a_2d_dataset(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="plots need the plot extra")
    assert main(["train", "--data", "moons", "--epochs", "2", "--out", str(tmp_path), "--quiet"]) == 0
    assert {"curves.png", "confusion.png", "decision_boundary.png"} <= {p.name for p in tmp_path.iterdir()}


def test_errors_are_one_line_and_bad_usage_exits_2(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chainrule: error: ") and "is not a run directory" in err and err.count("\n") == 1
    for argv in (["train", "--lr", "nan"], ["train", "--epochs", "0"], ["train", "--hidden", "12,x"],
                 ["train", "--data", "nope"], ["demo", "xor", "--steps", "-1"]):  # fmt: skip
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2


def test_datasets_lists_where_each_was_found(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "mnist" in out and "fashion_mnist" in out


def test_predict_reads_a_png_like_the_array_it_shows(digits_run, capsys, tmp_path):
    matplotlib = pytest.importorskip("matplotlib", reason="reading PNG images needs the plot extra")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.datasets import load_digits

    image = load_digits().images[0].astype(np.float32) / 16.0
    np.save(tmp_path / "zero.npy", image[None])
    plt.imsave(tmp_path / "paper.png", image, cmap="gray_r", vmin=0, vmax=1)  # dark ink on light paper
    plt.imsave(tmp_path / "screen.png", image, cmap="gray", vmin=0, vmax=1)  # light ink on dark
    assert (
        main(["predict", str(digits_run), *(str(tmp_path / f) for f in ("zero.npy", "paper.png", "screen.png"))]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert len({line.split(": ", 1)[1].split(" (")[0] for line in lines}) == 1, lines  # the same top class


def test_cosine_schedule_lowers_the_learning_rate_to_zero(tmp_path, capsys):
    assert main(["train", "--data", "xor", "--hidden", "4", "--epochs", "4", "--lr", "0.2", "--schedule", "cosine",
                 "--out", str(tmp_path), "--quiet", "--no-plots"]) == 0  # fmt: skip
    lrs = [record["lr"] for record in json.loads((tmp_path / "history.json").read_text())["records"]]
    assert lrs == pytest.approx([0.2, 0.2 * (1 + np.cos(np.pi / 4)) / 2, 0.1, 0.2 * (1 + np.cos(3 * np.pi / 4)) / 2])


EARLY = ["train", "--hidden", "32", "--epochs", "15", "--patience", "2", "--schedule", "cosine", "--limit", "600",
         "--lr", "0.3", "--quiet", "--no-plots"]  # fmt: skip


def _killed_at_epoch(monkeypatch, epoch):
    """Make the next run die (as from Ctrl-C) when ``epoch`` begins, after the previous epoch's checkpoint."""
    from chainrule.train.callbacks import ProgressBar

    original = ProgressBar.on_epoch_begin

    def interrupt(self, state):
        if state.epoch == epoch:
            raise KeyboardInterrupt
        original(self, state)

    monkeypatch.setattr(ProgressBar, "on_epoch_begin", interrupt)


def _run_files(run):
    from chainrule.io import load

    config = json.loads((run / "config.json").read_text())
    history = json.loads((run / "history.json").read_text())
    return load(run / "model.safetensors"), history["records"], config["test"]


def test_a_killed_early_stopping_run_resumes_to_the_same_model_bit_for_bit(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn", reason="the digits dataset ships with scikit-learn")
    full, part = tmp_path / "full", tmp_path / "part"
    assert main([*EARLY, "--out", str(full)]) == 0
    weights, records, test = _run_files(full)
    best = min(records, key=lambda r: r["val_loss"])["epoch"]
    assert len(records) < 15 and best < len(records)  # it stopped early, after its best epoch
    with monkeypatch.context() as patch:
        _killed_at_epoch(patch, best + 1)
        assert main([*EARLY, "--out", str(part)]) == 130
    assert main([*EARLY, "--out", str(part), "--resume"]) == 0
    resumed_weights, resumed_records, resumed_test = _run_files(part)
    for name, array in weights.items():
        np.testing.assert_array_equal(resumed_weights[name], array)
    strip = [{k: v for k, v in r.items() if k != "time"} for r in records]
    assert [{k: v for k, v in r.items() if k != "time"} for r in resumed_records] == strip
    assert resumed_test == test


def test_resume_applies_and_records_a_new_learning_rate(tmp_path, capsys):
    pytest.importorskip("sklearn", reason="the digits dataset ships with scikit-learn")
    quick = ["train", "--hidden", "16", "--limit", "200", "--quiet", "--no-plots", "--out", str(tmp_path / "r")]
    assert main([*quick, "--epochs", "2"]) == 0
    assert main([*quick, "--epochs", "4", "--lr", "0.5", "--resume"]) == 0
    records = json.loads((tmp_path / "r" / "history.json").read_text())["records"]
    assert [r["lr"] for r in records] == [0.1, 0.1, 0.5, 0.5]
    train = json.loads((tmp_path / "r" / "config.json").read_text())["train"]
    assert train["lr"] == 0.5 and train["epochs"] == 4 and train["hidden"] == [16]


def test_a_second_train_into_the_same_directory_is_refused_and_force_replaces_it(tmp_path, capsys):
    pytest.importorskip("sklearn", reason="the digits dataset ships with scikit-learn")
    quick = ["train", "--hidden", "16", "--limit", "200", "--quiet", "--no-plots", "--out", str(tmp_path / "r")]
    assert main([*quick, "--epochs", "1"]) == 0
    before = (tmp_path / "r" / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main([*quick, "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert "--force" in err and "--resume" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "r" / "model.safetensors").read_bytes() == before  # untouched
    assert main([*quick, "--epochs", "2", "--force"]) == 0
    assert len(json.loads((tmp_path / "r" / "history.json").read_text())["records"]) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no temporary or old directory left


def test_force_keeps_the_old_run_when_the_new_one_fails_before_its_first_checkpoint(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn", reason="the digits dataset ships with scikit-learn")
    quick = ["train", "--hidden", "16", "--limit", "200", "--quiet", "--no-plots", "--out", str(tmp_path / "r")]
    assert main([*quick, "--epochs", "1"]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    with monkeypatch.context() as patch:
        _killed_at_epoch(patch, 1)
        assert main([*quick, "--epochs", "3", "--force"]) == 130
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_train_help_shows_every_default_and_the_presets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    words = " ".join(out.split())
    assert "fashion_mnist mlp hidden 512,256" in words and "--force" in out and "first N test samples" in words
    for flag in ("--hidden", "--epochs", "--lr", "--optimizer", "--momentum", "--batch-size", "--val-split", "--seed"):
        section = out.split(flag, 2)[-1].split("\n  --", 1)[0]
        assert "default" in section, flag


def test_defaults_depend_on_the_data_and_model_and_a_passed_flag_wins():
    from chainrule.train.config import resolve

    cnn = resolve({"data": "mnist", "model": "cnn"})
    assert (cnn["lr"], cnn["batch_size"], cnn["hidden"], cnn["epochs"]) == (0.05, 128, [128], 8)
    assert resolve({"data": "mnist", "model": "cnn", "lr": 0.2})["lr"] == 0.2
    assert resolve({"data": "mnist", "model": "mlp", "optimizer": "adam"})["lr"] == 0.001
    assert resolve({"data": "fashion_mnist", "model": "mlp", "optimizer": "sgd"})["lr"] == 0.1
    assert resolve({})["hidden"] == [128, 64] and resolve({})["lr"] == 0.1


def test_the_misclassified_plot_says_how_many_are_shown_of_how_many(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="plots need the plot extra")
    from chainrule.train import plots

    titles = []
    real_save = plots._save
    monkeypatch.setattr(plots, "_save", lambda figure, path: titles.append(figure._suptitle.get_text())
                        or real_save(figure, path))  # fmt: skip
    images, targets = np.zeros((100, 1, 4, 4)), np.zeros(100, dtype=int)
    plots.plot_misclassified(images, targets, np.r_[np.ones(50, int), np.zeros(50, int)], tmp_path / "m.png")
    plots.plot_misclassified(images[:10], targets[:10], np.r_[np.ones(3, int), np.zeros(7, int)], tmp_path / "n.png")
    assert titles == [
        "36 shown of 50 misclassified images of 100 (true → predicted)",
        "all 3 misclassified images of 10 (true → predicted)",
    ]


def test_force_removes_what_a_killed_force_run_left(tmp_path, capsys):
    pytest.importorskip("sklearn", reason="the digits dataset ships with scikit-learn")
    quick = ["train", "--hidden", "16", "--limit", "200", "--quiet", "--no-plots", "--out", str(tmp_path / "r")]
    assert main([*quick, "--epochs", "1"]) == 0
    from chainrule.io import temp_suffix

    host = temp_suffix().rsplit("-", 1)[0]
    (tmp_path / f".r.tmp-{host}-999999999").mkdir()  # a --force run killed with SIGKILL; no such process now
    (tmp_path / ".r.tmp-otherhost-999999999").mkdir()  # a writer on another host: may be alive, kept
    assert main([*quick, "--epochs", "1", "--force"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.tmp-otherhost-999999999", "r"]


def test_a_regression_run_trains_evaluates_and_predicts(tmp_path, capsys):
    run = tmp_path / "R"
    assert main(["train", "--data", "linear_regression", "--model", "linear", "--epochs", "2", "--quiet",
                 "--no-plots", "--out", str(run)]) == 0  # fmt: skip
    assert json.loads((run / "config.json").read_text())["data"]["num_classes"] is None
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    assert "r2" in capsys.readouterr().out
    samples = tmp_path / "x.npy"
    np.save(samples, np.zeros((2, 5), dtype=np.float32))
    assert main(["predict", str(run), str(samples)]) == 0
    out = capsys.readouterr().out
    assert out.count("x.npy[") == 2
    from chainrule.train import load_run

    assert load_run(run)[1]["data"]["task"] == "regression"


def test_a_config_json_with_a_key_twice_is_refused(digits_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(digits_run, copy)
    text = (copy / "config.json").read_text()
    (copy / "config.json").write_text(text.replace('"data": {', '"data": {"name": "digits"}, "data": {', 1))
    assert main(["evaluate", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "config.json" in err and "'data' twice" in err


def test_a_failed_new_run_leaves_no_empty_directory(tmp_path, capsys):
    pytest.importorskip("sklearn", reason="the digits dataset ships with scikit-learn")
    out = tmp_path / "runs" / "div"
    assert main(["train", "--epochs", "1", "--lr", "1e6", "--quiet", "--no-plots",
                 "--out", str(out)]) == 1  # fmt: skip
    assert "loss became" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_force_refuses_a_folder_of_user_files_before_training(tmp_path, capsys):
    folder = tmp_path / "folder"
    (folder / "src").mkdir(parents=True)
    (folder / "thesis.tex").write_text("mine")
    (folder / "src" / "code.py").write_text("print()")
    assert main(["train", "--data", "xor", "--force", "--out", str(folder), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "Training" not in captured.out and "not a run directory (src, thesis.tex)" in captured.err
    assert "--force" not in captured.err.split("(")[-1]
    assert (folder / "thesis.tex").read_text() == "mine" and (folder / "src" / "code.py").read_text() == "print()"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_resume_of_a_finished_run_changes_nothing(tmp_path, capsys):
    quick = ["train", "--data", "xor", "--hidden", "4", "--quiet", "--no-plots", "--out", str(tmp_path / "r")]
    assert main([*quick, "--epochs", "3"]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()}
    capsys.readouterr()
    assert main([*quick, "--resume", "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert "already has 3 epochs; pass --epochs N with N > 3 to train more" in err
    assert main([*quick, "--resume", "--lr", "0.5"]) == 1
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir()} == before


def test_evaluate_shows_top3_accuracy_only_with_more_than_three_classes(tmp_path, capsys):
    assert main(["train", "--data", "xor", "--epochs", "2", "--quiet", "--no-plots", "--out", str(tmp_path / "x")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "x")]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "top3_accuracy" not in out  # with two classes it would always be 1.0
