"""Data-parallel step time over MPI: one rank against two, and what the gradient allreduce costs.

The workload is the MLP of ``benchmarks/run.py`` (784-256-128-10 ReLU, SGD momentum 0.9, cross-entropy) on
random inputs, with a global batch of 128: one rank at batch 128, two ranks at batch 64 each. Each
measurement runs ``mpiexec -n N python benchmarks/distributed.py --worker`` in a fresh job; every rank uses one
BLAS thread (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` set to 1 in the children
only), so N ranks use N cores. Each rank takes ``--steps`` steps after 5 warm-up steps; the table shows rank 0's
median step time (forward, backward, allreduce, optimizer step), its mean time inside collectives (waiting for
the other rank included), the median time of the allreduce alone (started right after a barrier, so
without the waiting), the bytes it hands to the allreduce per step (payload: the gradients, plus 8 bytes per
parameter tensor and for the loss), the bytes each rank sends per step in a ring allreduce (2(N-1)/N of the
payload), and the collectives per step.

Usage::

    python benchmarks/distributed.py                 # 1 and 2 ranks, 200 steps each
    python benchmarks/distributed.py --ranks 1 2 4 --steps 100 --json results-distributed.json

Needs the ``distributed`` extra (mpi4py and mpiexec).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

GLOBAL_BATCH = 128


def _worker(steps: int) -> None:
    import numpy as np

    import chainrule as cr
    from chainrule import distributed, nn, optim

    group = distributed.init()
    batch = GLOBAL_BATCH // group.size
    cr.manual_seed(0)
    model = distributed.DistributedDataParallel(
        nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    )
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    source = np.random.default_rng(group.rank)
    images = cr.tensor(source.random((batch, 784), dtype=np.float32))
    labels = cr.tensor(source.integers(0, 10, batch))
    times, comm = [], []
    for step in range(steps + 5):
        started, waited = time.perf_counter(), group.comm_seconds
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        model.average_gradients(loss.item())
        optimizer.step()
        if step >= 5:
            times.append(time.perf_counter() - started)
            comm.append(group.comm_seconds - waited)
    # The allreduce alone: each one starts right after a barrier, so waiting for a slower rank is left out.
    alone = []
    for _ in range(50 if group.size > 1 else 0):
        group.comm.Barrier()
        started = time.perf_counter()
        model.average_gradients(0.0)
        alone.append(time.perf_counter() - started)
    if group.rank == 0:
        result = {
            "ranks": group.size,
            "batch_per_rank": batch,
            "step_ms_median": 1e3 * float(np.median(times)),
            "comm_ms_mean": 1e3 * float(np.mean(comm)),
            "allreduce_ms_median": 1e3 * float(np.median(alone)) if alone else 0.0,
            "bytes_per_step": model.averager.bytes_per_step if group.size > 1 else 0,
            # what a ring (or reduce-scatter + allgather) allreduce sends from each rank: 2(N-1)/N of the payload
            "bytes_sent_per_rank": round(2 * (group.size - 1) / group.size * model.averager.bytes_per_step),
            "gradient_bytes": sum(p.data.nbytes for p in model.parameters()),
            "collectives_per_step": model.averager.collectives_per_step if group.size > 1 else 0,
        }
        print("RESULT " + json.dumps(result))


def _mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        sys.exit("benchmarks/distributed.py: mpiexec not found: pip install 'chainrule[distributed]'")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.steps)
        return
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    results = []
    for ranks in args.ranks:
        command = [_mpiexec(), "-n", str(ranks), sys.executable, __file__, "--worker", "--steps", str(args.steps)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            sys.exit(f"benchmarks/distributed.py: {ranks} rank(s) failed: {done.stderr.strip()[-500:]}")
        results.append(json.loads(lines[0][len("RESULT ") :]))
    base = results[0]["step_ms_median"]  # the speed-up is against the first --ranks (1 by default)
    print(f"MLP 784-256-128-10, global batch {GLOBAL_BATCH}, {args.steps} steps, 1 BLAS thread per rank")
    print(f"{'ranks':>5} {'batch/rank':>10} {'step ms':>8} {'comm ms':>8} {'allreduce ms':>12} {'payload B':>10}"
          f" {'sent B/rank':>11} {'collectives':>11} {'speed-up':>8}")  # fmt: skip
    for r in results:
        print(
            f"{r['ranks']:>5} {r['batch_per_rank']:>10} {r['step_ms_median']:>8.2f} {r['comm_ms_mean']:>8.2f} "
            f"{r['allreduce_ms_median']:>12.2f} "
            f"{r['bytes_per_step']:>10,} {r['bytes_sent_per_rank']:>11,} {r['collectives_per_step']:>11} "
            f"{base / r['step_ms_median']:>7.2f}x"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
