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
from chainrule.cli import build_parser
from chainrule.train.config import resolve
from chainrule.train.runs import TRAIN_FLAGS, TrainConfig, train_run

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("CHAINRULE_DATA", str(ROOT.parent / "shared" / "data"))

# name: (the arguments of `chainrule train`, as the README shows them, target test accuracy). Every row runs
# with the command line's defaults (the presets of chainrule.train.config) except what its arguments say.
ROWS: dict[str, tuple[list[str], float]] = {
    "digits-mlp": ([], 0.98),
    "mnist-mlp": (["--data", "mnist", "--model", "mlp", "--epochs", "15"], 0.98),
    "mnist-cnn": (["--data", "mnist", "--model", "cnn", "--epochs", "8"], 0.99),
    "fashion-mlp": (["--data", "fashion_mnist", "--model", "mlp", "--epochs", "25"], 0.89),
    "fashion-cnn": (["--data", "fashion_mnist", "--model", "cnn", "--epochs", "20"], 0.92),
}
REGRESSION = ["--data", "linear_regression", "--model", "linear"]


def cli_config(arguments: list[str]) -> TrainConfig:
    """The TrainConfig that ``chainrule train ARGUMENTS`` runs (the same parser and the same defaults)."""
    args = build_parser().parse_args(["train", *arguments])
    return TrainConfig(**resolve({name: getattr(args, name) for name in TRAIN_FLAGS}))


def run_classification(name: str, arguments: list[str], target: float, out: Path, verbose: int = 0) -> str:
    config = cli_config(arguments)
    dataset = config.data
    if dataset in ("mnist", "fashion_mnist") and data.locate(dataset) is None:
        return f"| {name} | skipped: {dataset} files not found | ≥ {target:.0%} | | |"
    started = time.perf_counter()
    result = train_run(replace(config, out=str(out / name), plots=False), verbose=verbose)
    seconds = time.perf_counter() - started
    accuracy = result.test["accuracy"]
    verdict = "met" if accuracy >= target else "SHORT"
    command = " ".join(["chainrule train", *arguments])
    return f"| {name}: `{command}` | {accuracy:.2%} | ≥ {target:.0%} | {seconds:.0f} s | {verdict} |"


def run_regression(out: Path) -> str:
    config = cli_config(REGRESSION)
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
        f"| regression: `chainrule train {' '.join(REGRESSION)}` (test MSE) | {trained_mse:.5f} vs least squares "
        f"{lstsq_mse:.5f} (ratio {ratio:.3f}) | ≤ 1.05 | {seconds:.0f} s | {verdict} |"
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
