"""Training at the edges: NaN validation losses, non-finite evaluation data, the diagnosis and the progress bar."""

from __future__ import annotations

import io
import json
import math
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.train import History, NonFiniteLossError, ProgressBar, TerminateOnNaN, evaluate, fit
from three_blobs import three_blobs


def _model():
    cr.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3))


def _poisoned(n_bad=3):
    x, y = three_blobs(60, seed=1)
    x[:n_bad, 0] = np.nan
    return x, y


def test_a_nan_validation_loss_warns_once_when_it_first_appears():
    with pytest.warns(RuntimeWarning, match=r"epoch 1, validation data: the inputs hold 3 non-finite values") as seen:
        history = fit(_model(), three_blobs(120), val_data=_poisoned(), epochs=3, verbose=0, seed=0, optimizer="sgd")
    assert len([w for w in seen if "validation" in str(w.message)]) == 1
    assert len(history) == 3 and math.isnan(history["val_loss"][-1])


def test_terminate_on_nan_can_watch_the_validation_loss():
    callback = TerminateOnNaN(monitor=("loss", "val_loss"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(NonFiniteLossError, match=r"val_loss became nan in epoch 1"):
            fit(_model(), three_blobs(120), val_data=_poisoned(), epochs=3, verbose=0, callbacks=[callback], seed=0)
    with pytest.raises(ValueError, match="TerminateOnNaN: monitor"):
        TerminateOnNaN(monitor=())


def test_evaluate_on_non_finite_inputs_warns_once_with_the_count():
    with pytest.warns(RuntimeWarning, match=r"evaluate: the inputs hold 3 non-finite values") as seen:
        result = evaluate(_model(), _poisoned(), loss="cross_entropy")
    assert len(seen) == 1 and math.isnan(result["loss"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(_model(), three_blobs(120), loss="cross_entropy")  # finite: silent


def test_predict_on_non_finite_inputs_warns_with_the_count():
    from chainrule.train import predict

    x, _ = _poisoned()
    with pytest.warns(RuntimeWarning, match=r"predict: the inputs hold 3 non-finite values"):
        predict(_model(), x)


def _history(train, val=None):
    return History(
        [{"epoch": e, "loss": t, **({} if val is None else {"val_loss": val[e - 1]})} for e, t in enumerate(train, 1)]
    )


NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("train", "val", "start"),
    [
        ([1.0, NAN], [1.0, 1.0], "The training loss became non-finite"),
        ([1.0, INF], None, "The training loss became non-finite"),
        ([1.0, 0.5], [NAN, NAN], "The validation loss is nan in epoch 2"),
        ([1.0, 0.5], [0.9, INF], "The validation loss is inf in epoch 2"),
        ([1.0, 0.5, 0.4], [NAN, 0.6, 0.5], "Still learning"),
        ([1.0, 0.5, 0.4], [-INF, 0.6, 0.7], "Overfitting: validation loss bottomed at 0.6"),
    ],
)
def test_diagnosis_never_raises_on_non_finite_values(train, val, start):
    assert _history(train, val).diagnosis().startswith(start)


def test_history_json_is_strict_and_reads_back_non_finite_values(tmp_path):
    history = _history([1.0, 0.5], [NAN, INF])
    history.save_json(tmp_path / "history.json")
    text = (tmp_path / "history.json").read_text()
    state = json.loads(text, parse_constant=lambda token: pytest.fail(f"non-standard JSON token {token}"))
    back = History.from_dict(state)
    assert math.isnan(back["val_loss"][0]) and back["val_loss"][1] == INF and back["loss"] == [1.0, 0.5]


def test_diagnosis_after_one_epoch_does_not_claim_a_fall():
    text = _history([0.6257], [0.6301]).diagnosis()
    assert text.startswith("One epoch") and "fell" not in text
    assert "fell" not in _history([0.6257]).diagnosis()


def test_no_overfitting_when_validation_is_below_training_or_the_test_is_perfect():
    below = _history([1.0, 0.6, 0.3, 0.29], [0.05, 0.01, 0.02, 0.028])
    assert not below.diagnosis().startswith("Overfitting")
    above = _history([1.0, 0.6, 0.3, 0.29], [0.5, 0.2, 0.3, 0.4])
    assert above.diagnosis().startswith("Overfitting")
    assert not above.diagnosis(test_accuracy=1.0).startswith("Overfitting")


def test_diagnosis_does_not_suggest_early_stopping_when_it_is_in_use():
    history = _history([1.0, 0.6, 0.3, 0.29], [0.5, 0.2, 0.3, 0.4])
    assert "early stopping" in history.diagnosis()
    assert "early stopping" not in history.diagnosis(early_stopping=True)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_prints_the_epoch_summary_on_its_own_line():
    pytest.importorskip("tqdm")
    out = _Terminal()
    callbacks = [ProgressBar(1, file=out)]
    fit(_model(), three_blobs(120), val_split=0.25, epochs=2, callbacks=callbacks, seed=0, metrics=["accuracy"])
    lines = [line.strip() for line in out.getvalue().replace("\r", "\n").splitlines()]
    summaries = [line for line in lines if line.startswith("epoch 2/2  loss")]
    assert summaries and "val_loss" in summaries[-1] and "val_accuracy" in summaries[-1]
