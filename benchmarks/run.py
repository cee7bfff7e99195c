"""Speed of chainrule against PyTorch (and of the scalar engine against micrograd), measured side by side.

Every measurement runs in a fresh child process, so that peak memory (``ru_maxrss``) belongs to one framework
and one workload, and so that the thread count is fixed before NumPy or torch is imported
(``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``), and again inside the child for every BLAS
library loaded (``threadpoolctl.threadpool_limits``) and for PyTorch's own pool (``torch.set_num_threads``):
both sides always run with the same number of threads. Children run interleaved (chainrule, reference,
chainrule, reference ...) so that load from other processes hits both sides alike; the table reports medians
over the repeats.

Thread counts: by default the machine's (``os.cpu_count()``) and one, a table for each (users run with every
core; the one-thread figures show the per-op costs without threading effects). The kernel line says which
BLAS NumPy uses there (threadpoolctl: ``internal_api``, ``architecture``, ``num_threads``, version): an
``OPENBLAS_CORETYPE`` set in the environment (a workaround some machines carry for old OpenBLAS builds) can
pick a slower kernel than the CPU supports. ``--openblas unset`` removes ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` from the child processes' environment (only theirs; the output says so), ``--openblas
both`` measures with and without them.

Workloads (issue 6):

``mlp``     784-256-128-10 ReLU, batch 128, SGD momentum 0.9, one epoch of Fashion-MNIST (60,000 images)
``cnn``     Conv(1,16,5,p2)-ReLU-MaxPool2-Conv(16,32,5,p2)-ReLU-MaxPool2-Linear(1568,10), same training
``lstm``    LSTM(28→128) over the 28 rows of each image + Linear(128,10) on the last output, same training
``gru``     GRU(28→128), likewise
``moons``   the micrograd demo step (MLP 2-16-16-1, hinge + L2, 100 points): tensor engine vs PyTorch
``scalar``  the same step on the scalar engine (``chainrule.Value``) vs the ``micrograd`` package
``import``  ``import chainrule`` vs ``import torch``

For the matmul-heavy workloads the table also shows the share of the machine's float32 GEMM throughput
(NumPy, square matrices, same thread count) that chainrule reaches: model FLOPs / epoch time / GEMM FLOP/s.

Memory: "peak" is the process's peak resident memory during training (data loading excluded), "working set"
that peak minus the resident memory before the first step, and "RSS change, 2nd half" the change of
resident memory between the middle and the end of the epoch: memory that grows step after step shows there.

Usage::

    python benchmarks/run.py                     # everything, full epochs, 3 repeats, all cores and one thread
    python benchmarks/run.py --quick             # 1/10 of an epoch, for a fast look
    python benchmarks/run.py mlp cnn --repeats 5 --threads 1 --json results.json
    python benchmarks/run.py cnn --quick --openblas both   # with and without OPENBLAS_CORETYPE/L2_SIZE
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("mlp", "cnn", "lstm", "gru", "moons", "scalar", "import")
EPOCH_WORKLOADS = ("mlp", "cnn", "lstm", "gru")
#: environment variables ``--openblas unset`` removes from the child processes (never from this process)
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
BATCH, LR, MOMENTUM = 128, 0.05, 0.9
WARMUP_BATCHES = 3
MOONS_STEPS, SCALAR_STEPS = 50, 5


# ---------------------------------------------------------------------------------------------------
# FLOPs of one training epoch (multiply-adds count 2): forward, weight gradients, and input gradients
# wherever the input needs one (not for the first layer, whose input is the data).
# ---------------------------------------------------------------------------------------------------
def _training_flops(layers: list[tuple[int, int, int]]) -> int:
    """``layers``: (positions, fan_in, fan_out) per weight layer, first layer first; FLOPs per sample."""
    flops = 0
    for index, (positions, fan_in, fan_out) in enumerate(layers):
        product = 2 * positions * fan_in * fan_out
        flops += product * (2 if index == 0 else 3)  # forward + grad_w (+ grad_x)
    return flops


FLOPS_PER_SAMPLE = {
    "mlp": _training_flops([(1, 784, 256), (1, 256, 128), (1, 128, 10)]),
    "cnn": _training_flops([(28 * 28, 1 * 25, 16), (14 * 14, 16 * 25, 32), (1, 1568, 10)]),
    # The LSTM's gate product over [x_t, h_t]: the x part needs no input gradient, the h part does.
    "lstm": 28 * (2 * 2 * 4 * 128 * 28 + 3 * 2 * 4 * 128 * 128) + _training_flops([(1, 128, 10)]),
    "gru": 28 * (2 * 2 * 3 * 128 * 28 + 3 * 2 * 3 * 128 * 128) + _training_flops([(1, 128, 10)]),
}


# ---------------------------------------------------------------------------------------------------
# Child side: one framework, one workload, one process
# ---------------------------------------------------------------------------------------------------
def _rss_mb() -> float:
    """Resident memory now (Linux), in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """Peak resident memory of this process, in MiB: since the last :func:`_reset_peak` where possible."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _reset_peak() -> None:
    """Start the peak (VmHWM) afresh, so that loading the data does not count as training (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


def _images(quick: bool):
    """Fashion-MNIST training images (N, 1, 28, 28) float32 and labels, shuffled once with a fixed seed."""
    import numpy as np

    from chainrule import data

    train, _, _ = data.fashion_mnist(download=False)
    images, labels = train.arrays
    order = np.random.default_rng(0).permutation(len(images))
    if quick:
        order = order[: len(order) // 10]
    return np.ascontiguousarray(images[order]), np.ascontiguousarray(labels[order])


def _batches(images, labels, workload: str):
    shape = {"mlp": (-1, 784), "cnn": (-1, 1, 28, 28), "lstm": (-1, 28, 28), "gru": (-1, 28, 28)}[workload]
    for start in range(0, len(images), BATCH):
        yield images[start : start + BATCH].reshape(shape), labels[start : start + BATCH]


def _epoch(framework: str, workload: str, images, labels) -> dict:
    """One timed training epoch of ``workload`` in ``framework``."""
    return _timed_epoch(training_step(framework, workload), workload, images, labels)


def training_step(framework: str, workload: str):
    """``step(x, y) -> loss`` of ``workload`` in ``framework`` (one SGD step on a batch of NumPy arrays): the same
    model code for both, since chainrule's ``nn`` and ``optim`` take PyTorch's names and arguments.
    ``benchmarks/step_ab.py`` times the same step."""
    if framework == "chainrule":
        import chainrule as lib
        from chainrule import nn, optim
        from chainrule.nn import functional as F

        as_input, as_labels = lib.as_tensor, lambda y: y  # no copy, as torch.from_numpy
    else:
        import torch as lib
        from torch import nn, optim
        from torch.nn import functional as F

        as_input = as_labels = lib.from_numpy
    lib.manual_seed(0)
    if workload == "mlp":
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    elif workload == "cnn":
        model = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(1568, 10),
        )  # fmt: skip
    else:
        layer = nn.LSTM if workload == "lstm" else nn.GRU
        recurrent, head = layer(28, 128, batch_first=True), nn.Linear(128, 10)
        model = nn.ModuleList([recurrent, head])
    optimizer = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step(x, y) -> float:
        inputs = as_input(x)
        if workload in ("lstm", "gru"):
            output, _ = recurrent(inputs)  # (N, 28, 128)
            logits = head(output[:, -1])
        else:
            logits = model(inputs)
        loss = F.cross_entropy(logits, as_labels(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def _timed_epoch(step, workload: str, images, labels) -> dict:
    _reset_peak()
    base = _rss_mb()
    for x, y in list(_batches(images, labels, workload))[:WARMUP_BATCHES]:  # first-call costs, not timed
        step(x, y)
    batches = list(_batches(images, labels, workload))
    half = len(batches) // 2
    start = time.perf_counter()
    losses = [step(x, y) for x, y in batches[:half]]
    middle_mb = _rss_mb()  # a leak per step would show as growth over the second half
    losses += [step(x, y) for x, y in batches[half:]]
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "base_mb": base,
        "late_growth_mb": _rss_mb() - middle_mb,
        "last_loss": statistics.fmean(losses[-20:]),
    }


def _moons_data():
    """100 points of two noisy half circles, labels ±1 (the micrograd demo's data, generated here)."""
    import numpy as np

    rng = np.random.default_rng(0)
    angles = rng.uniform(0, np.pi, 100)
    upper = np.arange(100) < 50
    points = np.where(
        upper[:, None],
        np.stack([np.cos(angles), np.sin(angles)], 1),
        np.stack([1 - np.cos(angles), 0.5 - np.sin(angles)], 1),
    )
    points = points + rng.normal(0, 0.1, points.shape)
    return points.astype(np.float32), np.where(upper, 1.0, -1.0).astype(np.float32)


def _moons(framework: str) -> dict:
    """Milliseconds per full-batch step: forward, hinge + L2 loss, backward, SGD update."""
    return _timed_steps(moons_step(framework), MOONS_STEPS)


def moons_step(framework: str):
    """``step()``: one full-batch step of the micrograd moons demo in ``framework`` (also timed by step_ab.py)."""
    points, signs = _moons_data()
    if framework == "chainrule":
        import chainrule as cr
        from chainrule import nn

        cr.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
        x, y, no_grad = cr.tensor(points), cr.tensor(signs).reshape(-1, 1), cr.no_grad
    else:
        import torch
        from torch import nn

        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
        x, y, no_grad = torch.from_numpy(points), torch.from_numpy(signs).reshape(-1, 1), torch.no_grad
    parameters = list(model.parameters())

    def step() -> None:
        loss = (1.0 - y * model(x)).relu().mean() + 1e-4 * sum((p * p).sum() for p in parameters)
        for p in parameters:
            p.grad = None
        loss.backward()
        with no_grad():
            for p in parameters:
                p -= 0.05 * p.grad

    return step


def _scalar(framework: str) -> dict:
    """The same step on scalar engines: one Python object per number."""
    points, signs = _moons_data()
    points, signs = points.astype(float).tolist(), signs.astype(float).tolist()
    if framework == "chainrule":
        from chainrule.scalar import MLP

        model = MLP(2, [16, 16, 1], activation="relu", seed=0)
    else:
        import random

        from micrograd.nn import MLP

        random.seed(0)
        model = MLP(2, [16, 16, 1])
    parameters = model.parameters()

    def step() -> None:
        scores = [model(point) for point in points]
        hinge = sum((1 + -label * score).relu() for label, score in zip(signs, scores)) * (1.0 / len(points))
        loss = hinge + 1e-4 * sum(p * p for p in parameters)
        for p in parameters:
            p.grad = 0.0
        loss.backward()
        for p in parameters:
            p.data -= 0.05 * p.grad

    return _timed_steps(step, SCALAR_STEPS)


def _timed_steps(step, count: int) -> dict:
    step()  # warm-up
    times = []
    for _ in range(count):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times)}


def _gemm(size: int = 1024, repeats: int = 10) -> dict:
    """The machine's float32 GEMM throughput through NumPy (best of ``repeats``), in GFLOP/s."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    out = np.empty((size, size), dtype=np.float32)
    np.matmul(a, b, out=out)
    best = min(_time(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return {"seconds": best, "gflops": 2 * size**3 / best / 1e9}


def _kernel() -> dict:
    """Which BLAS NumPy calls, as threadpoolctl sees it in this process (after NumPy's import)."""
    import numpy as np  # noqa: F401  (loads the BLAS library)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"internal_api": "unknown (threadpoolctl not installed)"}
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            keys = ("internal_api", "architecture", "num_threads", "version", "threading_layer")
            return {key: pool.get(key) for key in keys}
    return {"internal_api": "none found"}


def _limit_threads(threads: int) -> None:
    """Every BLAS/OpenMP pool loaded so far to ``threads`` (the environment variables set by the parent
    already did this for libraries that read them at load time; this catches the others)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=threads)


def _time(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def child(workload: str, framework: str, threads: int, quick: bool) -> dict:
    """Run one measurement in this (fresh) process and return it as a dict."""
    if workload == "import":
        start = time.perf_counter()
        __import__(framework)
        return {"seconds": time.perf_counter() - start}
    import numpy  # noqa: F401  (both sides: NumPy's BLAS is loaded before the limits are set)

    if framework == "torch":
        import torch

        torch.set_num_threads(threads)
    _limit_threads(threads)
    if workload == "gemm":
        return {**_gemm(), "kernel": _kernel()}
    if workload == "moons":
        result = _moons(framework)
    elif workload == "scalar":
        result = _scalar(framework)
    else:
        images, labels = _images(quick)
        result = _epoch(framework, workload, images, labels)
        result["images"] = len(images)
    result["peak_mb"] = _peak_mb()
    return result


# ---------------------------------------------------------------------------------------------------
# Parent side: spawn the children, interleaved, and summarise
# ---------------------------------------------------------------------------------------------------
def _spawn(workload: str, framework: str, threads: int, quick: bool, unset_openblas: bool = False) -> dict:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
        env[name] = str(threads)
    if unset_openblas:
        for name in OPENBLAS_OVERRIDES:
            env.pop(name, None)
    command = [sys.executable, __file__, "--child", workload, framework, "--threads", str(threads)]
    if quick:
        command.append("--quick")
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return {"error": tail[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _available(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def measure(workloads: list[str], threads: int, repeats: int, quick: bool, unset_openblas: bool = False) -> dict:
    reference = {name: "torch" for name in WORKLOADS}
    reference["scalar"] = "micrograd"
    results: dict = {"gemm": None, "kernel": None, "rows": {}}
    if "import" in workloads:
        _compile_chainrule()
    gemms = [_spawn("gemm", "numpy", threads, quick, unset_openblas) for _ in range(3)]
    if all("error" not in gemm for gemm in gemms):
        results["gemm"] = statistics.median(gemm["gflops"] for gemm in gemms)
        results["kernel"] = gemms[0]["kernel"]
    for workload in workloads:
        sides = {"chainrule": [], reference[workload]: []}
        missing = not _available(reference[workload])
        for _ in range(repeats):  # interleaved: both sides see the same background load
            for framework, runs in sides.items():
                if framework != "chainrule" and missing:
                    continue
                runs.append(_spawn(workload, framework, threads, quick, unset_openblas))
                where = f"{threads} thread{'s' * (threads > 1)}"
                print(f"  {where:9s} {workload:7s} {framework:10s} {_short(runs[-1])}", file=sys.stderr, flush=True)
        results["rows"][workload] = {
            "reference": reference[workload],
            "missing": f"{reference[workload]} not installed" if missing else None,
            **{framework: _summary(runs) for framework, runs in sides.items()},
        }
    return results


def _compile_chainrule() -> None:
    """Write chainrule's bytecode, as ``pip install`` does for a wheel (PyTorch's is there already): with
    ``PYTHONDONTWRITEBYTECODE`` set or an editable install, every import would otherwise compile the source."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("chainrule")
    for location in spec.submodule_search_locations or []:
        compileall.compile_dir(location, quiet=1)


def _short(run: dict) -> str:
    return run.get("error") or f"{run['seconds']:.4f} s, peak {run.get('peak_mb', 0):.0f} MiB"


def _summary(runs: list[dict]) -> dict | None:
    good = [run for run in runs if "error" not in run]
    if not good:
        return {"error": runs[0]["error"]} if runs else None
    summary = {"seconds": statistics.median(run["seconds"] for run in good), "runs": good}
    if "peak_mb" in good[0]:
        summary["peak_mb"] = statistics.median(run["peak_mb"] for run in good)
    if "base_mb" in good[0]:
        summary["train_mb"] = statistics.median(run["peak_mb"] - run["base_mb"] for run in good)
        summary["late_growth_mb"] = statistics.median(run["late_growth_mb"] for run in good)
    return summary


def table(results: dict, quick: bool) -> str:
    """The results as a Markdown table."""
    unit = {"moons": "ms/step", "scalar": "ms/step", "import": "s"}
    lines = [
        "| workload | chainrule | reference | ratio | peak MiB in training (cr / ref) | working set MiB (cr / ref) "
        "| RSS change, 2nd half of the epoch (cr / ref) | % of GEMM peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload, row in results["rows"].items():
        mine, theirs = row["chainrule"], row.get(row["reference"])
        label = workload + (" (1/10 epoch)" if quick and workload in EPOCH_WORKLOADS else "")
        scale, suffix = (1000, " ms") if unit.get(workload) == "ms/step" else (1, " s")
        if mine is None or "error" in mine:
            lines.append(f"| {label} | error: {mine and mine['error']} | | | | | | |")
            continue
        mine_text = f"{mine['seconds'] * scale:.3g}{suffix}"
        if row["missing"] or theirs is None or "error" in theirs:
            why = row["missing"] or (theirs and theirs["error"])
            lines.append(f"| {label} | {mine_text} | {why} | | | | | |")
            continue
        ratio = mine["seconds"] / theirs["seconds"]
        peak = f"{mine['peak_mb']:.0f} / {theirs['peak_mb']:.0f}" if "peak_mb" in mine else ""
        train = f"{mine['train_mb']:.0f} / {theirs['train_mb']:.0f}" if "train_mb" in mine else ""
        late = f"{mine['late_growth_mb']:+.0f} / {theirs['late_growth_mb']:+.0f}" if "train_mb" in mine else ""
        gemm = ""
        if workload in FLOPS_PER_SAMPLE and results["gemm"]:
            images = mine["runs"][0]["images"]
            achieved = FLOPS_PER_SAMPLE[workload] * images / mine["seconds"] / 1e9
            gemm = f"{100 * achieved / results['gemm']:.0f}% ({achieved:.1f} GFLOP/s)"
        ref_text = f"{theirs['seconds'] * scale:.3g}{suffix} ({row['reference']})"
        lines.append(f"| {label} | {mine_text} | {ref_text} | {ratio:.2f}× | {peak} | {train} | {late} | {gemm} |")
    if results["gemm"]:
        lines.append(f"\nNumPy float32 GEMM (1024³): {results['gemm']:.1f} GFLOP/s.")
    if results.get("kernel"):
        lines.append(kernel_line(results["kernel"]))
    return "\n".join(lines)


def kernel_line(kernel: dict) -> str:
    """The BLAS NumPy uses, in one line (threadpoolctl's names)."""
    fields = ", ".join(f"{key} {value}" for key, value in kernel.items() if value is not None)
    return f"NumPy's BLAS (threadpoolctl): {fields}."


def openblas_note(unset: bool) -> str:
    """What the child processes saw of the OpenBLAS overrides."""
    present = {name: os.environ[name] for name in OPENBLAS_OVERRIDES if name in os.environ}
    shown = ", ".join(f"{name}={value}" for name, value in present.items()) or "neither is set in this environment"
    if unset:
        return f"Child processes ran with {' and '.join(OPENBLAS_OVERRIDES)} unset (this shell: {shown})."
    return f"Child processes inherit the environment's {' / '.join(OPENBLAS_OVERRIDES)} ({shown})."


def scaling(by_threads: dict) -> str:
    """chainrule's epoch time at each thread count against its one-thread time (> 1: threads slow it down)."""
    if 1 not in by_threads or len(by_threads) < 2:
        return ""
    lines = []
    for threads, results in by_threads.items():
        if threads == 1:
            continue
        parts = []
        for workload, row in results["rows"].items():
            mine, single = row["chainrule"], by_threads[1]["rows"].get(workload, {}).get("chainrule")
            if mine and single and "error" not in mine and "error" not in single:
                parts.append(f"{workload} {mine['seconds'] / single['seconds']:.2f}")
        lines.append(f"chainrule at {threads} threads ÷ chainrule at 1 thread: " + ", ".join(parts) + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workloads", nargs="*", help="default: all")
    parser.add_argument("--quick", action="store_true", help="1/10 of an epoch per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side (median reported)")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=sorted({os.cpu_count() or 1, 1}, reverse=True),
        help="thread counts, the same on both sides; a table for each (default: the machine's count and 1)",
    )
    parser.add_argument(
        "--openblas",
        choices=("keep", "unset", "both"),
        default="keep",
        help="child processes keep the environment's OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE, run without them, or both",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "FRAMEWORK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.threads[0], args.quick)))
        return 0
    workloads = args.workloads or list(WORKLOADS)
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    settings = {"keep": [False], "unset": [True], "both": [False, True]}[args.openblas]
    everything: dict = {"runs": []}
    for unset in settings:
        by_threads = {}
        for threads in args.threads:
            results = measure(workloads, threads, args.repeats, args.quick, unset)
            results["settings"] = {
                "threads": threads,
                "repeats": args.repeats,
                "quick": args.quick,
                "openblas_overrides_unset": unset,
                "python": platform.python_version(),
                "machine": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(),
            }
            by_threads[threads] = results
            everything["runs"].append(results)
            print(f"\n### {threads} thread{'s' * (threads > 1)} on each side\n")
            print(table(results, args.quick))
        print("\n" + openblas_note(unset))
        note = scaling(by_threads)
        if note:
            print(note)
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
