"""Data-parallel step time over MPI: one rank against two, and what the gradient allreduce costs.

The workload is the MLP of ``benchmarks/run.py`` (784-256-128-10 ReLU, SGD momentum 0.9, cross-entropy) on
random inputs, with a global batch of 128: one rank at batch 128, two ranks at batch 64 each. Each
measurement runs ``mpiexec -n N python benchmarks/distributed.py --worker`` in a fresh job; every rank uses one
BLAS thread (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` set to 1 in the children
only), so N ranks use N cores. Each rank takes ``--steps`` steps after 5 warm-up steps; the table shows rank 0's
median step time (forward, backward, allreduce, optimizer step), its mean time inside collectives (waiting for
the other rank included), the median time of the allreduce alone (started right after a barrier, so
without the waiting), the bytes it hands to the allreduce per step (payload: the gradients, plus 8 bytes per
parameter tensor), the bytes each rank sends per step in a ring allreduce (2(N-1)/N of the payload), the
collectives per step and how many of them ``backward()`` started before its sweep ended (the overlap).

With more than one rank it measures three ways of averaging: ``after backward`` (``backward()`` under
``no_sync()``, then ``average_gradients()``: every bucket starts once backward is done, the way before
``DistributedDataParallel`` hooked into backward), ``overlapped`` with the default 25 MB bucket (the whole MLP
in one bucket, which can only start when the last gradient arrives) and ``overlapped`` with 128 KiB buckets.

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
BUCKET_BYTES = 25 * 2**20  # chainrule.distributed.BUCKET_BYTES: the whole MLP in one bucket
# 128 KiB: 4 buckets (output layer and layer 2's bias; layer 2's weight; layer 1's bias; layer 1's weight, 784 KB).
# The first two start before backward computes layer 1's weight gradient (a 784x64x256 product) and overlap it.
SMALL_BUCKET = 2**17


def _worker(steps: int, mode: str, bucket_bytes: int) -> None:
    import numpy as np

    import chainrule as cr
    from chainrule import distributed, nn, optim

    group = distributed.init()
    batch = GLOBAL_BATCH // group.size
    cr.manual_seed(0)
    model = distributed.DistributedDataParallel(
        nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)),
        bucket_bytes=bucket_bytes,
    )
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    source = np.random.default_rng(group.rank)
    images = cr.tensor(source.random((batch, 784), dtype=np.float32))
    labels = cr.tensor(source.integers(0, 10, batch))
    times, comm, in_backward = [], [], []
    for step in range(steps + 5):
        started, waited = time.perf_counter(), group.comm_seconds
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        if mode == "overlapped":  # the buckets' allreduces start inside backward, which returns averaged
            loss.backward()
        else:  # the old way: backward without communication, then every bucket at once
            with model.no_sync():
                loss.backward()
            model.average_gradients()
        optimizer.step()
        if step >= 5:
            times.append(time.perf_counter() - started)
            comm.append(group.comm_seconds - waited)
            in_backward.append(model.overlap["started_in_backward"])
    # The allreduce alone: each one starts right after a barrier, so waiting for a slower rank is left out.
    alone = []
    for _ in range(50 if group.size > 1 else 0):
        group.comm.Barrier()
        started = time.perf_counter()
        model.averager()
        alone.append(time.perf_counter() - started)
    if group.rank == 0:
        payload = model.bytes_per_step if mode == "overlapped" else model.averager.bytes_per_step - 8
        collectives = model.collectives_per_step if mode == "overlapped" else model.averager.collectives_per_step
        result = {
            "ranks": group.size,
            "mode": mode if group.size > 1 else "-",
            "bucket_bytes": bucket_bytes,
            "batch_per_rank": batch,
            "step_ms_median": 1e3 * float(np.median(times)),
            "comm_ms_mean": 1e3 * float(np.mean(comm)),
            "allreduce_ms_median": 1e3 * float(np.median(alone)) if alone else 0.0,
            "bytes_per_step": payload if group.size > 1 else 0,
            # what a ring (or reduce-scatter + allgather) allreduce sends from each rank: 2(N-1)/N of the payload
            "bytes_sent_per_rank": round(2 * (group.size - 1) / group.size * payload),
            "gradient_bytes": sum(p.data.nbytes for p in model.parameters()),
            "collectives_per_step": collectives if group.size > 1 else 0,
            "buckets_started_in_backward": int(np.median(in_backward)) if group.size > 1 else 0,
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
    parser.add_argument("--mode", default="overlapped", help=argparse.SUPPRESS)
    parser.add_argument("--bucket-bytes", type=int, default=BUCKET_BYTES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.steps, args.mode, args.bucket_bytes)
        return
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    results = []
    runs = [(1, "overlapped", BUCKET_BYTES)] if 1 in args.ranks else []
    for ranks in (r for r in args.ranks if r > 1):  # the old explicit averaging, then the overlapped one
        runs += [(ranks, "after backward", BUCKET_BYTES), (ranks, "overlapped", BUCKET_BYTES)]
        runs += [(ranks, "overlapped", SMALL_BUCKET)]
    for ranks, mode, bucket in runs:
        command = [_mpiexec(), "-n", str(ranks), sys.executable, __file__, "--worker", "--steps", str(args.steps)]
        command += ["--mode", mode, "--bucket-bytes", str(bucket)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            sys.exit(f"benchmarks/distributed.py: {ranks} rank(s) failed: {done.stderr.strip()[-500:]}")
        results.append(json.loads(lines[0][len("RESULT ") :]))
    base = results[0]["step_ms_median"]  # the speed-up is against the first --ranks (1 by default)
    print(f"MLP 784-256-128-10, global batch {GLOBAL_BATCH}, {args.steps} steps, 1 BLAS thread per rank")
    print(f"{'ranks':>5} {'averaging':>14} {'bucket B':>10} {'batch/rank':>10} {'step ms':>8} {'comm ms':>8}"
          f" {'allreduce ms':>12} {'payload B':>10} {'sent B/rank':>11} {'collectives':>11} {'in backward':>11}"
          f" {'speed-up':>8}")  # fmt: skip
    for r in results:
        print(
            f"{r['ranks']:>5} {r['mode']:>14} {r['bucket_bytes']:>10,} {r['batch_per_rank']:>10} "
            f"{r['step_ms_median']:>8.2f} {r['comm_ms_mean']:>8.2f} {r['allreduce_ms_median']:>12.2f} "
            f"{r['bytes_per_step']:>10,} {r['bytes_sent_per_rank']:>11,} {r['collectives_per_step']:>11} "
            f"{r['buckets_started_in_backward']:>11} {base / r['step_ms_median']:>7.2f}x"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
