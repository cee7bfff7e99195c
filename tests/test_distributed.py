"""chainrule.distributed: the sampler's shards, one process behaving as before, and, under ``mpiexec -n 2`` on
this machine, two ranks at batch B/2 taking the same 20 steps as one process at batch B, ``chainrule train``
writing one run, and a failing, killed or hanging rank ending the job with a line naming what happened.

The MPI tests skip only where mpi4py or mpiexec cannot be found (``pip install 'chainrule[distributed]'``
provides both: mpi4py and the mpich wheel, whose ``mpiexec`` lands next to the Python executable)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import distributed, nn
from chainrule.data import DataLoader, TensorDataset
from chainrule.errors import ArgumentError, CheckpointError, DataError, DistributedError
from chainrule.train import fit

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
WORKER = HERE / "distributed_worker.py"


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"  # the mpich wheel installs it next to python
    return str(beside) if beside.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
HAVE_MPI = importlib.util.find_spec("mpi4py") is not None and MPIEXEC is not None
needs_mpi = pytest.mark.skipif(
    not HAVE_MPI, reason="mpi4py or mpiexec not found: pip install 'chainrule[distributed]' (mpi4py and mpich)"
)


def _run(args: list[str], cwd: Path, ranks: int | None = 2, timeout: float = 60, **env: str):
    """Run ``args`` (after ``python``) under ``mpiexec -n ranks`` (or as one process for None), from ``cwd``."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]), **env}
    launcher = [] if ranks is None else [MPIEXEC, "-n", str(ranks)]
    command = [*launcher, sys.executable, *args]
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


# -- the sampler and one process ---------------------------------------------------------------------------
@pytest.mark.parametrize("n, ranks", [(10, 3), (12, 4), (5, 2), (2, 3)])
def test_the_shards_of_an_order_cover_it_once_padded_to_equal_sizes(n, ranks):
    order = np.random.default_rng(0).permutation(n)
    shards = [distributed.DistributedSampler(range(n), ranks, r).indices(order) for r in range(ranks)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == -(-n // ranks)
    assert set(np.concatenate(shards)) == set(range(n))
    uneven = [distributed.DistributedSampler(range(n), ranks, r, pad=False).indices(order) for r in range(ranks)]
    assert sorted(np.concatenate(uneven).tolist()) == list(range(n))
    dropped = [distributed.DistributedSampler(range(n), ranks, r, drop_last=True).indices(order) for r in range(ranks)]
    assert sum(len(s) for s in dropped) == n - n % ranks


def test_batch_k_of_all_ranks_is_batch_k_of_one_process():
    # Rank r takes positions r, r + N, ...: batch k of every rank together is batch k of one process at N * b.
    ds = TensorDataset(np.arange(24, dtype=np.float32), np.arange(24))
    one = [x.data for x, _ in DataLoader(ds, batch_size=6, shuffle=True, seed=3)]
    ranks = [
        [x.data for x, _ in DataLoader(ds, 3, True, seed=3, sampler=distributed.DistributedSampler(ds, 2, r))]
        for r in range(2)
    ]
    for k, batch in enumerate(one):
        assert sorted(batch.tolist()) == sorted(ranks[0][k].tolist() + ranks[1][k].tolist())


def test_bad_sampler_arguments_are_refused_by_name():
    with pytest.raises(ArgumentError, match="rank must be an integer in \\[0, 2\\)"):
        distributed.DistributedSampler(range(4), 2, 2)
    with pytest.raises(ArgumentError, match="num_replicas"):
        distributed.DistributedSampler(range(4), 0, 0)


def test_without_mpiexec_the_group_has_one_rank_and_fit_is_unchanged():
    group = distributed.init()
    assert (group.rank, group.size) == (0, 1) or distributed.launched_by_mpi()
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    weights = []
    for flag in (None, True):
        cr.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
        fit(model, (x, y), optimizer="sgd", lr=0.3, epochs=2, batch_size=8, seed=1, verbose=0, distributed=flag)
        weights.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_with_one_rank_the_wrapper_is_the_plain_model():
    # No mpiexec: no hook is registered, backward is the plain one, no_sync and average_gradients do nothing.
    cr.manual_seed(0)
    plain = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    ddp = distributed.DistributedDataParallel(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)))
    ddp.module.load_state_dict(plain.state_dict())
    x = cr.tensor(np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32))
    (plain(x) ** 2).mean().backward()
    with ddp.no_sync():
        (ddp(x) ** 2).mean().backward()
    assert ddp.average_gradients(0.5) == 0.5 and ddp.group.mean(0.25) == 0.25
    for a, b in zip(plain.parameters(), ddp.parameters()):
        np.testing.assert_array_equal(a.grad.data, b.grad.data)
    assert ddp.overlap["buckets"] == 0 and ddp.collectives_per_step == 2  # one bucket and the flags
    with pytest.raises(ArgumentError, match="bucket_bytes must be a positive integer, got 0"):
        distributed.DistributedDataParallel(nn.Linear(1, 1), bucket_bytes=0)


def test_a_run_trained_on_two_ranks_does_not_resume_on_one(tmp_path):
    pytest.importorskip("safetensors", reason="checkpoints need safetensors (pip install 'chainrule[io]')")
    from chainrule.train import ModelCheckpoint

    x, y = np.eye(4, dtype=np.float32), np.arange(4) % 2
    model = nn.Linear(4, 2)
    fit(model, (x, y), epochs=1, verbose=0, callbacks=[ModelCheckpoint(tmp_path)])
    saved = cr.load(tmp_path / "last.safetensors")
    saved["history"]["meta"] = {"world_size": 2}  # as a two-rank run records it
    cr.save(saved, tmp_path / "two.safetensors")
    with pytest.raises(CheckpointError, match="trained on 2 ranks and this run has 1: resume it with mpiexec -n 2"):
        fit(model, (x, y), epochs=2, verbose=0, resume=tmp_path / "two.safetensors")


def test_fewer_samples_than_ranks_is_a_data_error():
    from chainrule.train.data_parallel import DataParallelFit

    parallel = DataParallelFit(distributed.ProcessGroup(None), nn.Linear(1, 1))
    parallel.group.size = 3  # as if three ranks trained on two samples
    with pytest.raises(DataError, match="2 samples, fewer than the 3 ranks"):
        parallel.shard(DataLoader(TensorDataset(np.ones((2, 1), np.float32), np.ones(2)), 1))
    # a loader that already has a sampler is this rank's share already: not sharded twice
    ds = TensorDataset(np.ones((6, 1), np.float32), np.ones(6))
    given = DataLoader(ds, 2, sampler=distributed.DistributedSampler(ds, 3, 1))
    assert parallel.shard(given) is given


# -- two ranks under mpiexec -----------------------------------------------------------------------------
def _max_difference(a_path: Path, b_path: Path) -> float:
    a, b = np.load(a_path), np.load(b_path)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@needs_mpi
def test_two_ranks_at_half_the_batch_take_the_steps_of_one_process(tmp_path):
    # 160 samples, 2 epochs: 20 SGD steps at batch 16 on one process, at batch 8 on each of two ranks.
    one = _run([str(WORKER), "train", "16", str(tmp_path / "one.npz")], tmp_path, ranks=None)
    two = _run([str(WORKER), "train", "8", str(tmp_path / "two.npz")], tmp_path)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    difference = _max_difference(tmp_path / "one.npz", tmp_path / "two.npz")
    print(f"fit: max |w(1 process, batch 16) - w(2 ranks, batch 8)| after 20 steps: {difference:.2e}")
    assert difference <= 1e-6  # float32: only the order of the sums differs
    assert two.stdout.count("epoch 2/2") == 1  # rank 0 alone prints, with the loss of the whole batch
    assert one.stdout.splitlines()[-1].split("lr")[0] == two.stdout.splitlines()[-1].split("lr")[0]

    # The hand-written loop (DistributedDataParallel, DistributedSampler, no averaging call: backward averages)
    # takes the same steps as fit.
    loop = _run([str(WORKER), "loop", "8", str(tmp_path / "loop.npz")], tmp_path)
    assert loop.returncode == 0, loop.stderr
    difference = _max_difference(tmp_path / "one.npz", tmp_path / "loop.npz")
    print(f"loop: max |w(1 process, batch 16) - w(2 ranks, batch 8)| after 20 steps: {difference:.2e}")
    assert difference <= 1e-6

    # fit given the wrapped model: backward averages the gradients, fit only the loss
    wrapped = _run([str(WORKER), "fit-ddp", "8", str(tmp_path / "wrapped.npz")], tmp_path)
    assert wrapped.returncode == 0, wrapped.stderr
    assert _max_difference(tmp_path / "two.npz", tmp_path / "wrapped.npz") == 0.0
    assert two.stdout.splitlines()[-1].split("(")[0] == wrapped.stdout.splitlines()[-1].split("(")[0]


@needs_mpi
def test_backward_of_the_wrapped_model_returns_with_the_average_of_the_ranks_gradients(tmp_path):
    # float64, each rank's half of 8 samples vs the whole batch on one rank alone (see the worker's _hooks):
    # rank 0 also uses a branch rank 1 does not, and a layer nobody uses keeps grad None.
    result = _run([str(WORKER), "hooks", "8", str(tmp_path / "h")], tmp_path)
    assert result.returncode == 0, result.stderr
    for rank in range(2):
        report = json.loads((tmp_path / f"h.rank{rank}.json").read_text())
        checks = ("backward", "backward_again", "retain_graph", "no_sync", "create_graph", "double_backward")
        assert report["failed_overlap"]["buckets"] > 0  # some were in flight when the hook raised
        for check in (*checks, "after_failure"):
            for name, error in report[check].items():
                if name.startswith("unused"):
                    assert error == "both None", (rank, check, name)
                else:
                    assert error <= 1e-12, (rank, check, name, error)
        assert report["no_sync_sent_bytes"] == 0 and report["grad_requires_grad"]
        assert report["grad_sweep"] == {"sent": 0, "grads": [True] * 8}  # autograd.grad: nothing averaged
        # Overlap, counted: one bucket per parameter (8). The first backward cuts them in registration order,
        # so the unused layer's bucket, first in line, holds every bucket back to the end of the sweep.
        # Then they are rebuilt in the order rank 0's gradients arrived, unused last: 6 buckets start inside
        # the sweep on rank 0, the first while 5 used parameters still wait for their gradients. Rank 1 does
        # not use the branch (2 parameters): their buckets start at the end, and the ones after them with them.
        assert report["first_overlap"] == {"buckets": 8, "started_in_backward": 0, "pending_at_first_start": 0}
        overlap = report["overlap"]
        assert overlap["buckets"] == 8 and overlap["pending_at_first_start"] == 7
        assert overlap["started_in_backward"] == 6 if rank == 0 else 1 <= overlap["started_in_backward"] < 6


@needs_mpi
def test_every_rank_ends_with_the_same_weights_and_batchnorm_statistics(tmp_path):
    # BatchNorm normalises with each rank's own batch, so the ranks' running statistics differ during an
    # epoch; fit averages them after each one, and the averaged gradients keep the weights identical.
    result = _run([str(WORKER), "bn", "8", str(tmp_path / "bn")], tmp_path)
    assert result.returncode == 0, result.stderr
    ranks = [np.load(tmp_path / f"bn.rank{r}.npz") for r in range(2)]
    assert any("running_mean" in key for key in ranks[0])
    for key in ranks[0]:
        np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)


@needs_mpi
def test_chainrule_train_under_mpiexec_writes_one_run_and_prints_once(tmp_path):
    pytest.importorskip("safetensors", reason="runs write checkpoints (pip install 'chainrule[io]')")
    train = ["-m", "chainrule", "train", "--data", "xor", "--epochs", "2", "--out", "run", "--no-plots"]
    result = _run(train, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Training mlp on xor") == 1 and result.stdout.count("Wrote ") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert json.loads((tmp_path / "run" / "history.json").read_text())["meta"]["world_size"] == 2
    # resumed on as many ranks, the run ends as one that never stopped
    resumed = _run(["-m", "chainrule", "train", "--out", "run", "--resume", "--epochs", "3"], tmp_path)
    straight = _run([*train[:-5], "--epochs", "3", "--out", "straight", "--no-plots"], tmp_path)
    assert resumed.returncode == 0 and straight.returncode == 0, resumed.stderr + straight.stderr
    weights = [cr.load(tmp_path / name / "model.safetensors") for name in ("run", "straight")]
    for key in weights[0]:
        np.testing.assert_array_equal(weights[0][key].data, weights[1][key].data)
    # the same run resumed on one process is refused, naming the number of ranks it needs
    refused = _run(["-m", "chainrule", "train", "--out", "run", "--resume", "--epochs", "4"], tmp_path, ranks=None)
    assert refused.returncode == 1 and "resume it with mpiexec -n 2" in refused.stderr


@needs_mpi
def test_an_error_every_rank_meets_is_one_line_naming_the_rank(tmp_path):
    (tmp_path / "taken").write_text("a file, not a run directory")
    result = _run(["-m", "chainrule", "train", "--data", "xor", "--out", "taken"], tmp_path, timeout=30)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("chainrule: error:")]
    # Rank 0 prints and aborts the job; another rank waits a second first, so it is normally gone by then (on a
    # loaded machine rank 0 may come later, and then that rank's line is the one printed).
    expected = [f"chainrule: error: rank {r} of 2: train: --out 'taken' is a file, not a directory" for r in (0, 1)]
    assert errors and all(line in expected for line in errors), result.stderr


def test_mpiexec_without_mpi4py_is_one_clear_error(monkeypatch):
    from chainrule.distributed import group

    monkeypatch.setattr(group, "_group", None)
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py fails
    with pytest.raises(DistributedError, match="started by mpiexec but mpi4py is not installed"):
        distributed.init()
    monkeypatch.setenv("PMI_SIZE", "1")  # mpiexec -n 1: one process, MPI or not
    assert distributed.init().size == 1


@needs_mpi
@pytest.mark.parametrize("mode", ["raise", "kill"])
def test_a_rank_that_raises_or_dies_ends_the_job(tmp_path, mode):
    result = _run([str(WORKER), mode, "8", str(tmp_path / "w.npz")], tmp_path, timeout=30)
    assert result.returncode != 0
    assert not (tmp_path / "w.npz").exists()
    if mode == "raise":
        assert "chainrule.distributed: rank 1 of 2 failed: rank 1 was told to fail" in result.stderr


@needs_mpi
def test_a_rank_that_hangs_makes_the_others_time_out(tmp_path):
    result = _run([str(WORKER), "hang", "8", str(tmp_path / "w.npz")], tmp_path, timeout=30, CHAINRULE_DIST_TIMEOUT="2")
    assert result.returncode != 0
    assert "rank 0 of 2 failed: the gradient allreduce timed out after 2 s" in result.stderr
