"""A/B timing of one training step between two chainrule source trees (or settings), interleaved.

For a change that makes a step faster: export the old sources (``git archive <commit> src | tar -x -C /tmp/old``)
and time the same step with each, alternating A, B, A, B ... in fresh child processes, so that load from other
processes hits both alike; each child reports the median of its timed steps, the table the median over children.

Workloads: the benchmark's (``benchmarks/run.py``) models on random data, batch 128:
``lstm`` LSTM(28→128) + Linear, ``gru`` GRU(28→128) + Linear, ``cnn`` the two-convolution network, ``mlp``;
``moons`` is ``benchmarks/run.py``'s micrograd step (MLP 2-16-16-1, hinge + L2, 100 points, plain SGD).

Usage::

    python benchmarks/step_ab.py lstm gru --a /tmp/old/src --b src --threads 1 --repeats 5
    python benchmarks/step_ab.py cnn --a src --b src --b-env CHAINRULE_FAST=0   # a setting instead of a tree
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH, STEPS, WARMUP = 128, 20, 3


def child(workload: str, steps: int, clock: str = "wall") -> dict:
    """The median time of one step of ``workload``: ``benchmarks/run.py``'s own step, on random data."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from run import moons_step, training_step

    if workload == "moons":  # a millisecond-sized step: ten times as many
        step, warmup, steps = moons_step("chainrule"), WARMUP * 10, steps * 10
    else:
        rng = np.random.default_rng(0)
        shape = {"mlp": (BATCH, 784), "cnn": (BATCH, 1, 28, 28)}.get(workload, (BATCH, 28, 28))
        x, y = rng.standard_normal(shape, dtype=np.float32), rng.integers(0, 10, BATCH)
        train_step = training_step("chainrule", workload)

        def step() -> None:
            train_step(x, y)

        warmup = WARMUP
    for _ in range(warmup):
        step()
    # CPU time of this process: on a loaded machine it counts only this process's work (at one thread it is
    # the wall time a quiet machine would show; with more threads it adds them up, so use wall time there).
    timer = time.process_time if clock == "cpu" else time.perf_counter
    times = []
    for _ in range(steps):
        start = timer()
        step()
        times.append(timer() - start)
    return {"ms": 1000 * statistics.median(times)}


def _spawn(workload: str, source: str, threads: int, steps: int, extra_env: list[str], clock: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(Path(source).resolve()))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    env.update(item.split("=", 1) for item in extra_env)
    command = [sys.executable, __file__, "--child", workload, "--steps", str(steps), "--clock", clock]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{workload} with {source}: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["ms"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workloads", nargs="*", default=["lstm", "gru"])
    parser.add_argument("--a", default="src", help="source tree A (a directory holding chainrule/)")
    parser.add_argument("--b", default="src", help="source tree B")
    parser.add_argument("--a-env", nargs="*", default=[], metavar="NAME=VALUE", help="environment for A only")
    parser.add_argument("--b-env", nargs="*", default=[], metavar="NAME=VALUE", help="environment for B only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="children per side")
    parser.add_argument("--steps", type=int, default=STEPS, help="timed steps per child")
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="cpu: process CPU time (one thread, loaded machine)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.clock)))
        return 0
    how = f"{args.threads} thread(s), {args.clock} clock, median of {args.repeats}"
    print(f"| workload | A ms/step | B ms/step | B ÷ A | {how} |")
    print("|---|---|---|---|---|")
    for workload in args.workloads:
        a_times, b_times = [], []
        for _ in range(args.repeats):
            a_times.append(_spawn(workload, args.a, args.threads, args.steps, args.a_env, args.clock))
            b_times.append(_spawn(workload, args.b, args.threads, args.steps, args.b_env, args.clock))
        a, b = statistics.median(a_times), statistics.median(b_times)
        runs = f"A {' '.join(f'{t:.2f}' for t in a_times)}; B {' '.join(f'{t:.2f}' for t in b_times)}"
        print(f"| {workload} | {a:.2f} | {b:.2f} | {b / a:.2f} | {runs} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
