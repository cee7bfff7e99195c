"""The training loop: it learns, it is reproducible, callbacks act, and a resumed run matches bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn, optim
from chainrule.data import DataLoader, TensorDataset
from chainrule.train import (
    EarlyStopping,
    HistoryLogger,
    LRScheduler,
    ModelCheckpoint,
    NonFiniteLossError,
    evaluate,
    fit,
    predict,
)
from three_blobs import three_blobs


def _model(dropout=0.0):
    layers = [nn.Linear(2, 16), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(16, 3))


def test_fit_learns_and_records_every_epoch():
    cr.manual_seed(0)
    x, y = three_blobs(240)
    model = _model()
    history = fit(model, (x, y), loss="cross_entropy", optimizer="sgd", lr=0.1, epochs=15, batch_size=16,
                  val_split=0.25, verbose=0)  # fmt: skip
    assert len(history) == 15
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"} <= set(history.keys)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["val_accuracy"][-1] > 0.9
    result = evaluate(model, (x, y), loss="cross_entropy")
    assert result["accuracy"] > 0.9 and result["loss"] == pytest.approx(
        float(nn.CrossEntropyLoss()(cr.tensor(predict(model, x)), cr.tensor(y)).item()), rel=1e-5
    )
    assert model.training  # evaluate restores the mode it found


def test_the_seed_reaches_shuffling_and_dropout():
    x, y = three_blobs(240)

    def run():
        cr.manual_seed(3)
        model = _model(dropout=0.3)
        return fit(model, (x, y), optimizer="adam", lr=0.01, epochs=3, batch_size=32, seed=7, verbose=0)["loss"]

    first, second = run(), run()
    assert first == second
    cr.manual_seed(3)
    other = fit(_model(dropout=0.3), (x, y), optimizer="adam", lr=0.01, epochs=3, batch_size=32, seed=8, verbose=0)
    assert other["loss"] != first


def test_fit_accepts_datasets_and_loaders():
    x, y = three_blobs(64)
    cr.manual_seed(0)
    loader = DataLoader(TensorDataset(x, y), batch_size=10, shuffle=True)
    history = fit(_model(), loader, epochs=2, verbose=0, val_data=TensorDataset(x, y))
    assert len(history) == 2 and "val_loss" in history


def test_early_stopping_stops_and_restores_the_best_weights():
    x, y = three_blobs(60)
    cr.manual_seed(0)
    model = _model()
    snapshots = []

    class Snapshot(EarlyStopping):
        def on_epoch_end(self, state):
            super().on_epoch_end(state)
            snapshots.append({k: v.data.copy() for k, v in state.model.state_dict().items()})

    stop = Snapshot(monitor="val_loss", patience=2)
    # a learning rate this large makes the validation loss bounce, so patience runs out
    history = fit(model, (x, y), optimizer="sgd", lr=5.0, epochs=50, val_data=(x, y), callbacks=[stop], verbose=0)
    assert len(history) < 50
    best_epoch, _ = history.best("val_loss")
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.data, snapshots[best_epoch - 1][key])


def test_scheduler_callback_changes_the_learning_rate():
    x, y = three_blobs(40)
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, (x, y), optimizer=opt, epochs=4, callbacks=[LRScheduler(optim.lr_scheduler.StepLR(opt, 2))],
                  verbose=0)  # fmt: skip
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.01, 0.01])


def _training_run(directory, epochs, resume=None):
    x, y = three_blobs(120)
    cr.manual_seed(11)
    model = _model(dropout=0.2)
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
    losses = []

    class StepLosses(HistoryLogger):
        def on_batch_end(self, state):
            losses.append(state.loss)

    stop = EarlyStopping("val_loss", patience=10, restore_best=True)  # its counters and best weights are resumed too
    callbacks = [ModelCheckpoint(directory), LRScheduler(sched), StepLosses(directory / "h.json"), stop]
    history = fit(model, (x, y), optimizer=opt, epochs=epochs, batch_size=16, val_split=0.2, seed=5,
                  callbacks=callbacks, verbose=0, resume=resume)  # fmt: skip
    return history, losses, model


def test_a_resumed_run_matches_an_uninterrupted_one_bit_for_bit(tmp_path):
    pytest.importorskip("safetensors", reason="checkpoints need the io extra")
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    full_dir.mkdir(), part_dir.mkdir()
    full_history, full_losses, full_model = _training_run(full_dir, 5)
    _, first_losses, _ = _training_run(part_dir, 2)
    history, rest_losses, model = _training_run(part_dir, 5, resume=part_dir / "last.safetensors")
    assert first_losses + rest_losses == full_losses  # exact equality, every step
    assert history["loss"] == full_history["loss"] and history["lr"] == full_history["lr"]
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value.data, full_model.state_dict()[key].data)


def test_a_nan_batch_stops_in_that_step_and_leaves_the_checkpoint(tmp_path):
    pytest.importorskip("safetensors", reason="checkpoints need the io extra")
    x, y = three_blobs(64)
    cr.manual_seed(0)
    model = _model()
    fit(model, (x, y), epochs=1, batch_size=16, callbacks=[ModelCheckpoint(tmp_path, monitor="loss")], verbose=0)
    before = (tmp_path / "last.safetensors").read_bytes()
    x_bad = x.copy()
    x_bad[20] = np.nan  # in the second batch of 16 when not shuffled
    loader = DataLoader(TensorDataset(x_bad, y), batch_size=16, shuffle=False)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 2 \(epoch 1, batch 2 of 4\)"):
        fit(model, loader, epochs=1, callbacks=[ModelCheckpoint(tmp_path, monitor="loss")], verbose=0)
    assert (tmp_path / "last.safetensors").read_bytes() == before


def test_bad_arguments_are_explained():
    x, y = three_blobs(10)
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        fit(_model(), (x, y), epochs=-1, verbose=0)
    with pytest.raises(ValueError, match="unknown loss 'crossentropy'"):
        fit(_model(), (x, y), loss="crossentropy", verbose=0)
    with pytest.raises(ValueError, match="either val_data or val_split"):
        fit(_model(), (x, y), val_data=(x, y), val_split=0.1, verbose=0)
    with pytest.raises(cr.errors.ChainruleError, match="'val_loss' is not in the epoch's record"):
        fit(_model(), (x, y), epochs=1, callbacks=[EarlyStopping()], verbose=0)


def test_regression_learns_to_within_5_percent_of_least_squares():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x @ np.array([1.5, -2.0, 0.5]) + 0.3 + rng.normal(scale=0.5, size=400)).astype(np.float32)[:, None]
    design = np.hstack([x, np.ones((400, 1))]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)
    best_mse = float(np.mean((design @ coef - y) ** 2))
    cr.manual_seed(0)
    model = nn.Linear(3, 1)
    fit(model, (x, y), loss="mse", optimizer="sgd", lr=0.05, epochs=40, batch_size=32, verbose=0)
    mse = float(np.mean((predict(model, x) - y) ** 2))
    assert mse <= 1.05 * best_mse
    assert math.isfinite(mse)


# A checkpoint that loads safely but is not what resuming needs: each names the file and the entry.
BROKEN_CHECKPOINTS = {
    "no model": (lambda c: c.pop("model"), "has no 'model' entry"),
    "no optimizer": (lambda c: c.pop("optimizer"), "has no 'optimizer' entry"),
    "no epoch": (lambda c: c.pop("epoch"), "has no 'epoch' entry"),
    "no rng": (lambda c: c.pop("rng"), "has no 'rng' entry"),
    "epoch of text": (lambda c: c.update(epoch="3"), "'epoch' entry should be an integer, got str"),
    "step a bool": (lambda c: c.update(step=True), "'step' entry should be an integer, got bool"),
    "negative epoch": (lambda c: c.update(epoch=-1), "'epoch' entry is negative"),
    "model a list": (lambda c: c.update(model=[1, 2]), "'model' entry should be a dict, got list"),
    "optimizer malformed": (lambda c: c["optimizer"].update(state={"x": {}}), "'optimizer' entry is malformed"),
    "history malformed": (lambda c: c.update(history={"records": 5}), "'history' entry is malformed"),
    "rng malformed": (lambda c: c.update(rng={"bit_generator": "nope"}), "'rng' entry is malformed"),
    "not a checkpoint": (lambda c: c.pop("format"), "is not a training checkpoint"),
}


@pytest.mark.parametrize("case", list(BROKEN_CHECKPOINTS))
def test_resuming_from_a_broken_checkpoint_names_the_file_and_entry(tmp_path, case):
    pytest.importorskip("safetensors", reason="checkpoints need the io extra")
    x, y = three_blobs(32)
    model = _model()
    fit(model, (x, y), epochs=1, batch_size=16, callbacks=[ModelCheckpoint(tmp_path)], verbose=0)
    checkpoint = cr.load(tmp_path / "last.safetensors")
    corrupt, message = BROKEN_CHECKPOINTS[case]
    corrupt(checkpoint)
    broken = tmp_path / f"broken-{case.replace(' ', '-')}.safetensors"
    cr.save(checkpoint, broken)
    with pytest.raises(cr.CheckpointError, match=f"fit: '.*{broken.name}'") as info:
        fit(_model(), (x, y), epochs=2, batch_size=16, verbose=0, resume=broken)
    assert message in str(info.value)


def test_resuming_with_another_kind_of_optimizer_is_refused(tmp_path):
    pytest.importorskip("safetensors", reason="checkpoints need the io extra")
    x, y = three_blobs(40)
    model = _model()
    fit(model, (x, y), optimizer=optim.SGD(model.parameters(), lr=0.1, momentum=0.9), epochs=1, verbose=0,
        callbacks=[ModelCheckpoint(tmp_path, monitor="loss")])  # fmt: skip
    with pytest.raises(cr.CheckpointError, match="SGD optimizer, not of this Adagrad"):
        fit(model, (x, y), optimizer=optim.Adagrad(model.parameters()), epochs=2, verbose=0,
            resume=tmp_path / "last.safetensors")  # fmt: skip


def test_fit_records_early_stopping_so_the_diagnosis_does_not_suggest_it(tmp_path):
    from chainrule.train.history import History

    x, y = three_blobs(60)
    cr.manual_seed(0)
    overfit = [{"epoch": e, "loss": 1 / e, "val_loss": 0.5 + abs(e - 3) * 0.2} for e in range(1, 9)]
    assert "early stopping" in History(overfit).diagnosis()
    assert "early stopping" not in History(overfit).diagnosis(early_stopping=True)  # the parameter still works
    history = fit(_model(), (x, y), lr=0.1, epochs=3, val_data=(x, y), verbose=0,
                  callbacks=[EarlyStopping(monitor="val_loss", patience=1, restore_best=True)])  # fmt: skip
    assert history.meta == {"early_stopping": True}
    history.records = overfit
    assert "early stopping" not in history.diagnosis()
    history.save_json(tmp_path / "h.json")
    import json

    assert History.from_dict(json.loads((tmp_path / "h.json").read_text())).meta == {"early_stopping": True}
    assert fit(_model(), (x, y), lr=0.1, epochs=1, verbose=0).meta == {}


@pytest.mark.parametrize(
    "losses, start",
    [
        ([0.5, 0.05, 0.0011, 1.42, 1.42], "Diverged"),  # a resume with --lr 0.5 blew up a converged run
        ([2.0, 1.0, 0.3, 0.9], "Diverged"),
        ([1.0, 0.8, 0.79, 0.79], "Underfitting"),  # leveled off, not diverged
        ([1.0, 0.26, 0.25, 0.26], "Good fit"),  # noise at the bottom is no divergence
    ],
)
def test_a_training_loss_far_above_its_minimum_is_called_unstable(losses, start):
    from chainrule.train.history import History

    records = [{"epoch": e, "loss": v, "val_loss": v} for e, v in enumerate(losses, start=1)]
    text = History(records).diagnosis()
    assert text.startswith(start), text
    if start == "Diverged":
        assert "lower the learning rate" in text and "higher" not in text
        no_val = History([{"epoch": e, "loss": v} for e, v in enumerate(losses, start=1)]).diagnosis()
        assert no_val.startswith("Diverged")


@pytest.mark.parametrize(
    "given, field, plain",
    [
        ({"hidden": (32,)}, "hidden", [32]),
        ({"hidden": np.array([8, 4])}, "hidden", [8, 4]),
        ({"lr": np.float32(0.25)}, "lr", 0.25),
        ({"epochs": np.int64(1)}, "epochs", 1),
        ({"momentum": np.float64(0.5)}, "momentum", 0.5),
    ],
)
def test_train_config_takes_tuples_and_numpy_scalars(given, field, plain, tmp_path):
    pytest.importorskip("safetensors", reason="runs write checkpoints")
    from chainrule.train.runs import TrainConfig, train_run

    config = TrainConfig(data="xor", out=str(tmp_path / "r"), plots=False, **{"hidden": [4], "epochs": 1, **given})
    value = getattr(config, field)
    assert value == plain and type(value) is type(plain)
    assert all(type(v) is int for v in config.hidden)
    train_run(config, verbose=0)


def test_train_config_momentum_range_matches_sgd(tmp_path):
    from chainrule.errors import ArgumentError
    from chainrule.train.runs import TrainConfig, train_run

    with pytest.raises(ArgumentError, match=r"train: TrainConfig field 'momentum' must be in \[0, 1\), got 1.0"):
        train_run(TrainConfig(data="xor", momentum=1.0, out=str(tmp_path / "r")), verbose=0)
    assert not (tmp_path / "r").exists()
