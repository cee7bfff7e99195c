"""Accuracy targets of the training issue, measured end to end with the same code ``chainrule train`` runs.

Each row trains one model from scratch (fixed seed), evaluates it on the dataset's test split and prints the
test accuracy, the target and the wall time. The regression row compares the test mean squared error of a
linear model trained by gradient descent with that of the closed-form least-squares fit (``numpy.linalg.lstsq``)
on the same split.

Usage::

    python benchmarks/accuracy.py                 # every row whose data is present
    python benchmarks/accuracy.py digits-mlp regression
    python benchmarks/accuracy.py --list

MNIST is read from ``$CHAINRULE_DATA/mnist`` (CI and this repository use ``../shared/data``), Fashion-MNIST from
``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``) or ``$CHAINRULE_DATA``. Rows whose
data is missing are reported as skipped. The full table takes tens of minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from chainrule import data
from chainrule.train.runs import TrainConfig, train_run

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("CHAINRULE_DATA", str(ROOT.parent / "shared" / "data"))

# name: (config, target test accuracy)
ROWS: dict[str, tuple[TrainConfig, float]] = {
    "digits-mlp": (TrainConfig(), 0.98),
    "mnist-mlp": (
        TrainConfig(data="mnist", hidden=[512, 256], epochs=15, lr=0.05, batch_size=128, val_split=0.0),
        0.98,
    ),
    "mnist-cnn": (
        TrainConfig(data="mnist", model="cnn", hidden=[128], epochs=8, lr=0.05, batch_size=128, val_split=0.0),
        0.99,
    ),
    "fashion-mlp": (
        TrainConfig(
            data="fashion_mnist",
            hidden=[512, 256],
            epochs=25,
            lr=0.001,
            optimizer="adam",
            batch_size=128,
            dropout=0.2,
            val_split=0.0,
        ),
        0.89,
    ),
    "fashion-cnn": (
        TrainConfig(
            data="fashion_mnist",
            model="cnn",
            hidden=[256],
            epochs=20,
            lr=0.05,
            batch_size=128,
            dropout=0.3,
            schedule="cosine",
            val_split=0.0,
        ),
        0.92,
    ),
}


def run_classification(name: str, config: TrainConfig, target: float, out: Path, verbose: int = 0) -> str:
    dataset = config.data
    if dataset in ("mnist", "fashion_mnist") and data.locate(dataset) is None:
        return f"| {name} | skipped: {dataset} files not found | ≥ {target:.0%} | | |"
    started = time.perf_counter()
    result = train_run(replace(config, out=str(out / name), plots=False), verbose=verbose)
    seconds = time.perf_counter() - started
    accuracy = result.test["accuracy"]
    verdict = "met" if accuracy >= target else "SHORT"
    return f"| {name} | {accuracy:.2%} | ≥ {target:.0%} | {seconds:.0f} s | {verdict} |"


def run_regression(out: Path) -> str:
    config = TrainConfig(
        data="linear_regression", model="linear", epochs=200, lr=0.01, optimizer="sgd", momentum=0.9,
        batch_size=32, val_split=0.0,
    )  # fmt: skip
    started = time.perf_counter()
    result = train_run(replace(config, out=str(out / "regression"), plots=False), verbose=0)
    seconds = time.perf_counter() - started
    splits = data.load("linear_regression")
    (x_train, y_train), (x_test, y_test) = splits.train.arrays, splits.test.arrays
    design = np.hstack([x_train, np.ones((len(x_train), 1))]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, y_train.astype(np.float64), rcond=None)
    lstsq_mse = float(np.mean((np.hstack([x_test, np.ones((len(x_test), 1))]) @ coef - y_test) ** 2))
    trained_mse = result.test["rmse"] ** 2
    ratio = trained_mse / lstsq_mse
    verdict = "met" if ratio <= 1.05 else "SHORT"
    return (
        f"| regression (linear, test MSE) | {trained_mse:.5f} vs least squares {lstsq_mse:.5f} "
        f"(ratio {ratio:.3f}) | ≤ 1.05 | {seconds:.0f} s | {verdict} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*", help="rows to run (default: all); see --list")
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    parser.add_argument("--verbose", action="store_true", help="print a line per epoch")
    args = parser.parse_args(argv)
    names = [*ROWS, "regression"]
    if args.list:
        print("\n".join(names))
        return 0
    unknown = [row for row in args.rows if row not in names]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {names}")
    print("| run | test result | target | time | |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.rows or names:
            line = (
                run_regression(Path(tmp))
                if name == "regression"
                else run_classification(name, *ROWS[name], Path(tmp), 2 if args.verbose else 0)
            )
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
