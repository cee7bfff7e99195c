"""Metrics and the history's diagnosis, against scikit-learn and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chainrule.errors import ShapeError
from chainrule.train import History, accuracy, confusion_matrix, mae, precision_recall_f1, r2_score, rmse
from chainrule.train.metrics import get_metric, top_k_accuracy

sklearn_metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn (the datasets extra) is the reference")


@pytest.fixture
def labels():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 4, 300)
    scores = rng.normal(size=(300, 4)) + 2.0 * np.eye(4)[targets]
    return scores, targets


def test_classification_metrics_match_scikit_learn(labels):
    scores, targets = labels
    predicted = scores.argmax(axis=1)
    assert accuracy(scores, targets) == pytest.approx(sklearn_metrics.accuracy_score(targets, predicted))
    np.testing.assert_array_equal(
        confusion_matrix(scores, targets), sklearn_metrics.confusion_matrix(targets, predicted)
    )
    p, r, f = precision_recall_f1(scores, targets)
    ref = sklearn_metrics.precision_recall_fscore_support(targets, predicted, average="macro")
    assert (p, r, f) == pytest.approx(ref[:3])
    for k in (1, 2, 3):
        expected = sklearn_metrics.top_k_accuracy_score(targets, scores, k=k)
        assert top_k_accuracy(scores, targets, k) == pytest.approx(expected)


def test_regression_metrics_match_scikit_learn():
    rng = np.random.default_rng(1)
    y = rng.normal(size=50)
    pred = y + rng.normal(scale=0.3, size=50)
    assert mae(pred, y) == pytest.approx(sklearn_metrics.mean_absolute_error(y, pred))
    assert rmse(pred, y) == pytest.approx(math.sqrt(sklearn_metrics.mean_squared_error(y, pred)))
    assert r2_score(pred, y) == pytest.approx(sklearn_metrics.r2_score(y, pred))
    assert r2_score(pred[:, None], y) == pytest.approx(sklearn_metrics.r2_score(y, pred))  # (N, 1) predictions


def test_metric_errors_name_the_shapes():
    with pytest.raises(ShapeError, match=r"accuracy: outputs of shape \(3, 2\) do not fit targets of shape \(4,\)"):
        accuracy(np.zeros((3, 2)), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="unknown metric 'acc'"):
        get_metric("acc")
    assert get_metric("top2_accuracy")[0] == "top2_accuracy"


def _history(train, val):
    return History([{"epoch": i + 1, "loss": t, "val_loss": v} for i, (t, v) in enumerate(zip(train, val))])


@pytest.mark.parametrize(
    ("train", "val", "verdict"),
    [
        ([1.0, 0.5, 0.3, 0.2, 0.1, 0.05], [1.0, 0.6, 0.5, 0.6, 0.7, 0.8], "Overfitting"),
        ([1.0, 0.95, 0.93, 0.92, 0.92], [1.0, 0.96, 0.95, 0.95, 0.95], "Underfitting"),
        ([1.0, 0.5, 0.3, 0.2, 0.1], [1.0, 0.55, 0.35, 0.25, 0.15], "Still learning"),
        ([1.0, 0.2, 0.1, 0.1, 0.1], [1.0, 0.22, 0.12, 0.11, 0.11], "Good fit"),
    ],
)
def test_history_diagnosis_names_the_regime(train, val, verdict):
    assert _history(train, val).diagnosis().startswith(verdict)


def test_history_round_trips_and_writes_files(tmp_path):
    history = _history([1.0, 0.5], [1.1, 0.6])
    assert History.from_dict(history.to_dict()).records == history.records
    history.save_csv(tmp_path / "h.csv")
    history.save_json(tmp_path / "h.json")
    assert (tmp_path / "h.csv").read_text().splitlines()[0] == "epoch,loss,val_loss"
    assert history.best("val_loss") == (2, 0.6)
    with pytest.raises(KeyError, match="has no 'accuracy'"):
        history["accuracy"]


def test_the_curves_mark_the_best_validation_epoch_in_a_panel_per_quantity(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="plots need the plot extra")
    from chainrule.train import plots

    history = History()
    for epoch, (loss, val_loss, acc, val_acc) in enumerate(
        [(1.0, 0.9, 0.5, 0.6), (0.5, 0.4, 0.7, 0.8), (0.3, 0.6, 0.9, 0.7)], start=1
    ):
        history.append({"epoch": epoch, "loss": loss, "val_loss": val_loss, "accuracy": acc, "val_accuracy": val_acc})
    seen = []
    real_save = plots._save

    def save(figure, path):  # read the figure before _save clears it
        for ax in figure.axes:
            lines = {line.get_linestyle(): line for line in ax.get_lines()}
            seen.append((ax.get_title(), list(lines[":"].get_xdata()), lines["-"].get_color(), lines["--"].get_color()))
        return real_save(figure, path)

    monkeypatch.setattr(plots, "_save", save)
    plots.plot_history(history, tmp_path / "curves.png")
    assert [title for title, *_ in seen] == ["loss", "accuracy"]
    for _, best, training_colour, validation_colour in seen:
        assert best == [2, 2]  # both best validation epochs are epoch 2: lowest loss, highest accuracy
        assert training_colour != validation_colour
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_the_best_epoch_label_stays_inside_the_panel(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="plots need the plot extra")
    from chainrule.train import plots

    history = History()
    for epoch, val_loss in enumerate([0.9, 0.8, 0.7, 0.6, 0.5], start=1):  # best loss last, best accuracy first
        history.append({"epoch": epoch, "loss": 1.0, "val_loss": val_loss, "accuracy": 0.5, "val_accuracy": val_loss})
    seen = []
    real_save = plots._save

    def save(figure, path):
        seen.extend((ax.get_title(), text.get_text(), text.get_ha()) for ax in figure.axes for text in ax.texts)
        return real_save(figure, path)

    monkeypatch.setattr(plots, "_save", save)
    plots.plot_history(history, tmp_path / "curves.png")
    assert seen == [("loss", "best: epoch 5", "right"), ("accuracy", "best: epoch 1", "left")]
