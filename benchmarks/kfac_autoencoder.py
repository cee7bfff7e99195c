"""K-FAC against SGD with momentum and Adam on the MNIST deep autoencoder (Hinton & Salakhutdinov 2006).

The model of Martens & Grosse (2015): an encoder 784-1000-500-250-30 with logistic hidden units and a linear
30-unit code, the mirror-image decoder, and a logistic output trained with binary cross-entropy (summed over
the 784 pixels, averaged over the batch), Martens (2010)'s sparse initialisation. Each optimizer's step size is
picked from a small grid (the value that reaches the target first, or the lowest final error if none does):
the learning rate of SGD (momentum 0.9) and Adam, and for K-FAC the KL bound κ of its clipping, which alone
sets the step length whenever the clipping is active (the learning rate, 1, only caps it). The table reports,
for the best value of each method, the iterations and the time (training steps only, evaluations excluded;
wall-clock and CPU) to reach a fixed training reconstruction error: the squared error summed over the pixels
of an image, averaged over a fixed subset of training images (the error Martens & Grosse plot).

The default run is a smaller variant so that it finishes in a few minutes on a 2-core machine: 784-250-100-30
(and mirror) on 10,000 training images, batch 250, at most 300 iterations per run, target 30, one BLAS thread;
K-FAC with damping 0.03, momentum 0.9, factors every 5 steps and inverses every 20.
``--full`` runs the paper's 784-1000-500-250-30 on all 60,000 images (batch 1000; hours on this machine).

Usage::

    python benchmarks/kfac_autoencoder.py                      # the small variant, a few minutes
    python benchmarks/kfac_autoencoder.py --full --iterations 2000 --target 10 --threads 2
    python benchmarks/kfac_autoencoder.py --widths 784,500,250,30 --target 20 --out ae.png
    python benchmarks/kfac_autoencoder.py --methods kfac --inverse eigen --adaptive-damping   # K-FAC's options

Writes a PNG of the error curves (``--out``, default ``kfac_autoencoder.png`` in the current directory) and a
JSON of every run next to it. MNIST comes from ``$CHAINRULE_DATA/mnist`` (default ``../shared/data``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import chainrule as cr
from chainrule import data, nn, optim
from chainrule.errors import DataError
from chainrule.io import atomic_write_bytes
from chainrule.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("CHAINRULE_DATA", str(ROOT.parent / "shared" / "data"))

GRIDS = {
    "sgd": [0.001, 0.003, 0.01],
    "adam": [1e-3, 3e-3, 1e-2],
    "kfac": [1e-2, 1e-1, 1.0],  # the KL bound κ: with clipping active it alone sets the step length (lr caps it)
}


def sparse_init_(layer: nn.Linear, generator: np.random.Generator, nonzero: int = 15) -> None:
    """Martens (2010)'s sparse initialisation, used for this benchmark since: each unit has ``nonzero`` incoming
    weights drawn from N(0, 1), the others zero, and a zero bias."""
    weight = np.zeros(layer.weight.shape, dtype=layer.weight.dtype)
    count = min(nonzero, weight.shape[1])
    for unit in range(weight.shape[0]):
        chosen = generator.choice(weight.shape[1], size=count, replace=False)
        weight[unit, chosen] = generator.standard_normal(count)
    with cr.no_grad():
        layer.weight.copy_(cr.tensor(weight))
        layer.bias.zero_()


def autoencoder(widths: list[int], seed: int, init: str = "sparse") -> nn.Sequential:
    """Encoder ``widths`` (logistic hidden units, linear code), the mirror decoder; outputs are logits."""
    cr.manual_seed(seed)
    generator = np.random.default_rng(seed)
    sizes = widths + widths[-2::-1]
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(fan_in, fan_out))
        if init == "sparse":
            sparse_init_(layers[-1], generator)
        is_code = index == len(widths) - 2
        is_output = index == len(sizes) - 2
        if not (is_code or is_output):
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def reconstruction_error(model: nn.Module, images: np.ndarray) -> float:
    """Squared error summed over an image's pixels, averaged over the images."""
    with cr.no_grad():
        model.eval()
        recon = model(cr.tensor(images)).sigmoid().data
        model.train()
    return float(((recon - images) ** 2).sum(axis=1).mean())


def run(
    method: str, value: float, train_images: np.ndarray, eval_images: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    """Train one model with one optimizer and step size (``value``: the learning rate, for K-FAC the KL bound
    κ); the error curve with its step count and time."""
    model = autoencoder(args.widths, args.seed, args.init)
    kfac = method == "kfac"
    opt: Any
    if kfac:
        opt = optim.KFAC(
            model,
            lr=args.kfac_lr,
            damping=args.damping,
            momentum=args.kfac_momentum,
            kl_clip=value,
            stat_decay=0.95,
            inverse_every=args.inverse_every,
            factor_every=args.factor_every,
            likelihood="bernoulli",
            inverse=args.inverse,
            adaptive_damping=args.adaptive_damping,
            damping_every=args.damping_every,
            seed=args.seed,
        )
    elif method == "sgd":
        opt = optim.SGD(model.parameters(), lr=value, momentum=0.9)
    else:
        opt = optim.Adam(model.parameters(), lr=value)
    order = np.random.default_rng(args.seed)
    curve = [(0, 0.0, 0.0, reconstruction_error(model, eval_images))]  # (step, wall s, CPU s, error)
    elapsed, cpu, reached = 0.0, 0.0, None
    batches = len(train_images) // args.batch_size
    permutation = order.permutation(len(train_images))
    for step in range(1, args.iterations + 1):
        if (step - 1) % batches == 0:
            permutation = order.permutation(len(train_images))
        chosen = permutation[((step - 1) % batches) * args.batch_size : ((step - 1) % batches + 1) * args.batch_size]
        batch = cr.tensor(train_images[chosen])
        start, cpu_start = time.perf_counter(), time.process_time()
        output = model(batch)
        loss = F.binary_cross_entropy_with_logits(output, batch, reduction="sum") / len(chosen)
        opt.zero_grad()
        if kfac:
            opt.backward(loss, output)
        else:
            loss.backward()
        if kfac and args.adaptive_damping:  # the loss at the new point, on the same batch (a forward pass)
            opt.step(
                lambda batch=batch: (
                    F.binary_cross_entropy_with_logits(model(batch), batch, reduction="sum") / len(batch)
                )
            )
        else:
            opt.step()
        elapsed += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
        if not np.isfinite(loss.item()):
            break
        if step % args.eval_every == 0 or step == args.iterations:
            error = reconstruction_error(model, eval_images)
            curve.append((step, elapsed, cpu, error))
            if reached is None and error <= args.target:
                reached = (step, elapsed, cpu)
                if not args.keep_going:
                    break
    if kfac:
        opt.remove_hooks()
    return {
        "method": method,
        "step_size": value,
        "step_size_name": "kl_clip" if kfac else "lr",
        "curve": curve,
        "reached_at": None
        if reached is None
        else {"iterations": reached[0], "seconds": reached[1], "cpu_seconds": reached[2]},
        "final_error": curve[-1][3],
        "final_damping": opt.param_groups[0]["damping"] if kfac else None,
        "seconds_per_step": elapsed / max(curve[-1][0], 1),
        "cpu_seconds_per_step": cpu / max(curve[-1][0], 1),
    }


def _step_label(entry: dict[str, Any]) -> str:
    return f"{'κ' if entry['step_size_name'] == 'kl_clip' else 'lr'}={entry['step_size']:g}"


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run that reached the target in the fewest iterations, else the one with the lowest final error."""
    hit = [r for r in runs if r["reached_at"] is not None]
    if hit:
        return min(hit, key=lambda r: r["reached_at"]["iterations"])
    return min(runs, key=lambda r: r["final_error"] if np.isfinite(r["final_error"]) else np.inf)


def plot(results: dict[str, list[dict[str, Any]]], chosen: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"kfac": "tab:red", "sgd": "tab:blue", "adam": "tab:green"}
    figure, (by_step, by_time, by_cpu) = plt.subplots(1, 3, figsize=(15, 4.2))
    for method, runs in results.items():
        for entry in runs:
            steps, seconds, cpu_seconds, errors = zip(*entry["curve"])
            is_best = entry is chosen[method]
            style: dict[str, Any] = {"color": colours[method], "alpha": 1.0 if is_best else 0.25}
            label = f"{method.upper()} {_step_label(entry)}" + (" (best)" if is_best else "")
            by_step.plot(steps, errors, label=label, lw=2 if is_best else 1, **style)
            if is_best:
                by_time.plot(seconds, errors, label=label, lw=2, **style)
                by_cpu.plot(cpu_seconds, errors, label=label, lw=2, **style)
    axes = ((by_step, "iterations"), (by_time, "training wall-clock (s)"), (by_cpu, "training CPU time (s)"))
    for axis, name in axes:
        axis.axhline(args.target, color="black", ls="--", lw=1, label=f"target {args.target:g}")
        axis.set_xlabel(name)
        axis.set_ylabel("training reconstruction error (squared, per image)")
        axis.set_yscale("log")
        axis.grid(alpha=0.3)
    for axis in (by_step, by_time, by_cpu):
        axis.legend(fontsize=7)
    size = "-".join(map(str, args.widths))
    figure.suptitle(f"MNIST autoencoder {size} (mirror), batch {args.batch_size}, {args.train_size} images")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(args.out, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the paper's 784-1000-500-250-30 on 60,000 images")
    parser.add_argument("--widths", type=lambda s: [int(w) for w in s.split(",")], default=None)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--eval-size", type=int, default=1000)
    parser.add_argument("--target", type=float, default=None, help="training reconstruction error to reach")
    parser.add_argument("--methods", default="kfac,sgd,adam")
    parser.add_argument("--damping", type=float, default=0.03)
    parser.add_argument("--kfac-lr", type=float, default=1.0, help="K-FAC's lr (its grid is over the KL bound)")
    parser.add_argument("--inverse-every", type=int, default=20)
    parser.add_argument("--factor-every", type=int, default=5)
    parser.add_argument("--kfac-momentum", type=float, default=0.9)
    parser.add_argument(
        "--inverse",
        choices=("factored", "eigen"),
        default="factored",
        help="K-FAC's damped inverse: factored (pi-corrected) or eigen (exact damping)",
    )
    parser.add_argument(
        "--adaptive-damping", action="store_true", help="K-FAC: Levenberg-Marquardt damping (starts at --damping)"
    )
    parser.add_argument("--damping-every", type=int, default=5, help="K-FAC: T of the adaptive damping")
    parser.add_argument(
        "--init",
        choices=("sparse", "default"),
        default="sparse",
        help="sparse: Martens (2010), as in the paper; default: the layers' own initialisation",
    )
    parser.add_argument("--grid", action="append", default=[], help="METHOD=lr1,lr2,... (replaces the default grid)")
    parser.add_argument("--keep-going", action="store_true", help="train to --iterations even after the target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (threadpoolctl; 0: leave as is)")
    parser.add_argument("--out", type=Path, default=Path("kfac_autoencoder.png"))
    args = parser.parse_args(argv)
    if args.widths is None:
        args.widths = [784, 1000, 500, 250, 30] if args.full else [784, 250, 100, 30]
    if args.train_size is None:
        args.train_size = 60000 if args.full else 10000
    if args.batch_size is None:
        args.batch_size = 1000 if args.full else 250
    if args.target is None:
        args.target = 30.0
    grids = dict(GRIDS)
    for item in args.grid:
        method, _, values = item.partition("=")
        grids[method] = [float(v) for v in values.split(",")]

    try:
        train, _, _ = data.mnist(download=False, limit=args.train_size)
    except DataError as error:  # one message saying where it looked and what to do, not a traceback
        print(f"kfac_autoencoder.py: error: {error}", file=sys.stderr)
        return 1
    images = train.arrays[0].reshape(-1, 784).astype(np.float32)
    eval_images = images[: args.eval_size]
    print(f"autoencoder {args.widths} (mirror), {len(images)} images, batch {args.batch_size}, target {args.target}")
    limits = contextlib.nullcontext()
    if args.threads:
        try:
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(args.threads)
        except ImportError:
            print("threadpoolctl is not installed: BLAS uses its default number of threads")
    with limits:
        results = run_all(args, grids, images, eval_images)
    report(results, args)
    return 0


def run_all(
    args: argparse.Namespace, grids: dict[str, list[float]], images: np.ndarray, eval_images: np.ndarray
) -> dict[str, list[dict[str, Any]]]:
    """Every method at every learning rate of its grid."""
    results: dict[str, list[dict[str, Any]]] = {}
    for method in args.methods.split(","):
        results[method] = []
        for value in grids[method]:
            entry = run(method, value, images, eval_images, args)
            results[method].append(entry)
            reached = entry["reached_at"]
            where = f"{reached['iterations']} it, {reached['seconds']:.1f} s" if reached else "not reached"
            print(
                f"  {method:5s} {_step_label(entry):12s} final error {entry['final_error']:8.3f}  target: {where}  "
                f"({entry['seconds_per_step'] * 1000:.0f} ms/step)",
                flush=True,
            )
    return results


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    """The table of the best run per method, the PNG and the JSON."""
    chosen = {method: best(runs) for method, runs in results.items()}
    print("\nbest learning rate per method (seconds: training steps only, wall-clock and CPU):")
    columns = ("step size", "iterations", "wall s", "CPU s", "ms/step", "final")
    widths = (12, 11, 8, 8, 8, 8)
    print(f"  {'method':6s} " + " ".join(f"{name:>{width}s}" for name, width in zip(columns, widths)))
    for method, entry in chosen.items():
        reached = entry["reached_at"]
        its = str(reached["iterations"]) if reached else "-"
        wall = f"{reached['seconds']:.1f}" if reached else "-"
        cpu = f"{reached['cpu_seconds']:.1f}" if reached else "-"
        print(
            f"  {method:6s} {_step_label(entry):>12s} {its:>11s} {wall:>8s} {cpu:>8s} "
            f"{entry['seconds_per_step'] * 1000:8.0f} {entry['final_error']:8.2f}"
        )
    plot(results, chosen, args)
    summary = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "runs": results}
    atomic_write_bytes(args.out.with_suffix(".json"), json.dumps(summary, indent=1).encode())
    print(f"\nwrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    raise SystemExit(main())
