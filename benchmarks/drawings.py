"""Are a user's own drawings read as well as the test set? Accuracy on the raw test arrays against the same test
images re-drawn the way a person would hand them to ``chainrule predict``.

Each test image is drawn large (its side scaled to about 200 pixels, bilinear), as dark ink on light paper,
at a random place on a bigger canvas, and saved as a PNG; a second variant is black ink whose alpha channel is
the ink on a transparent canvas. The PNGs are read back with :func:`chainrule.data.read_image` and
:func:`chainrule.data.prepare_image` (what ``chainrule predict`` does) and classified by the same model.

Usage::

    python benchmarks/drawings.py                 # digits, and MNIST when $CHAINRULE_DATA has it
    python benchmarks/drawings.py --count 300 --mnist-limit 10000 --mnist-epochs 2

A printed row: data set, test images, accuracy on the raw arrays, on the paper drawings, on the alpha drawings.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from chainrule import data
from chainrule.train.loop import predict
from chainrule.train.runs import TrainConfig, load_run, train_run

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("CHAINRULE_DATA", str(ROOT.parent / "shared" / "data"))


def redraw(sample: np.ndarray, rng: np.random.Generator, side: int = 200, alpha: bool = False) -> np.ndarray:
    """A ``(H, W)`` light-on-dark sample in [0, 1] drawn ``side`` pixels large at a random place on a bigger
    canvas: uint8 gray dark on light paper, or RGBA black ink with the ink as alpha on a transparent canvas."""
    from PIL import Image

    ink = Image.fromarray(np.round(sample * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BILINEAR)
    ink = np.asarray(ink)
    height, width = side + int(rng.integers(20, side)), side + int(rng.integers(20, side))
    top, left = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
    canvas = np.zeros((height, width), dtype=np.uint8)
    canvas[top : top + side, left : left + side] = ink
    if alpha:
        rgba = np.zeros((height, width, 4), dtype=np.uint8)
        rgba[..., 3] = canvas
        return rgba
    return 255 - canvas


def accuracies(run_dir: Path, images: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Accuracy on the raw arrays, on paper drawings, on alpha drawings (each read back from a PNG)."""
    from PIL import Image

    model, config = load_run(run_dir)
    info = data.DatasetInfo(config["data"]["name"], "classification", tuple(config["data"]["input_shape"]), 10)
    raw = (predict(model, images).argmax(axis=1) == labels).mean()
    rng = np.random.default_rng(seed)
    scores = []
    with tempfile.TemporaryDirectory() as folder:
        for alpha in (False, True):
            prepared = []
            for i, sample in enumerate(images[:, 0]):
                path = Path(folder) / f"{i}.png"
                Image.fromarray(redraw(sample, rng, alpha=alpha)).save(path)
                prepared.append(data.prepare_image(data.read_image(path), like=info))
            scores.append((predict(model, np.stack(prepared)).argmax(axis=1) == labels).mean())
    return float(raw), float(scores[0]), float(scores[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="test images per data set (default 300)")
    parser.add_argument("--digits-epochs", type=int, default=20)
    parser.add_argument("--mnist-epochs", type=int, default=2)
    parser.add_argument("--mnist-limit", type=int, default=10000, help="training images of MNIST (default 10000)")
    args = parser.parse_args(argv)
    rows = [("digits", TrainConfig(epochs=args.digits_epochs, plots=False))]
    if data.locate("mnist") is not None:
        rows.append(("mnist", TrainConfig(data="mnist", epochs=args.mnist_epochs, limit=args.mnist_limit, plots=False)))
    else:
        print("(MNIST not found under $CHAINRULE_DATA: digits only)")
    print(f"{'data':<8} {'images':>6} {'raw':>7} {'paper':>7} {'alpha':>7} {'seconds':>8}")
    for name, config in rows:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            config.out = folder
            train_run(config, verbose=0)
            test = data.load(name).test if name == "digits" else data.load(name, limit=args.count).test
            images, labels = test.arrays[0][: args.count], test.arrays[-1][: args.count]
            raw, paper, alpha = accuracies(Path(folder), images, labels)
        seconds = time.perf_counter() - start
        print(f"{name:<8} {len(labels):>6} {raw:>7.1%} {paper:>7.1%} {alpha:>7.1%} {seconds:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
