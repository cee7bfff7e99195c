"""A script that tests/test_distributed.py starts under ``mpiexec -n 2`` (and once as one process).

``python distributed_worker.py MODE BATCH OUT``: trains a small MLP with ``fit(..., distributed=True)`` for 20
steps (160 samples, 2 epochs of 10 batches) from seed 0 and, on rank 0, saves the weights to OUT (.npz).
MODE ``train`` just trains; ``fit-ddp`` trains a ``DistributedDataParallel`` with fit; ``loop`` trains the
same steps in a hand-written loop with ``DistributedDataParallel`` and ``DistributedSampler``; ``bn`` trains a
model with BatchNorm and saves every rank's state (OUT.rank0.npz, OUT.rank1.npz); ``raise`` makes rank 1 raise
at its 5th step; ``kill`` makes rank 1 kill itself (SIGKILL) at its 5th step; ``hang`` makes rank 1 stop
calling collectives (sleep) at its 5th step; ``hooks`` checks what one ``backward()`` of
``DistributedDataParallel`` leaves in ``.grad`` (overlap, unused parameters, ``no_sync``, ``retain_graph``,
``create_graph``, a backward that raised) against the gradients of the whole batch computed on this rank alone,
in float64, and saves the errors and counters as JSON (OUT.rankR.json).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import numpy as np

import chainrule as cr
from chainrule import data, distributed, nn, optim
from chainrule.train import Callback, fit


class Misbehave(Callback):
    def __init__(self, mode: str, rank: int) -> None:
        self.mode, self.rank = mode, rank

    def on_batch_end(self, state):
        if self.rank != 1 or state.step != 5:
            return
        if self.mode == "raise":
            raise ValueError("rank 1 was told to fail")
        if self.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.mode == "hang":
            time.sleep(120)


def main() -> None:
    mode, batch, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    group = distributed.init()
    inputs = np.random.default_rng(5).normal(size=(160, 4)).astype(np.float32)
    targets = (inputs[:, 0] * inputs[:, 1] > 0).astype(np.int64)
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))
    if mode == "bn":
        model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 2))
        out = f"{out}.rank{group.rank}.npz"
    if mode == "hooks":
        _hooks(group, f"{out}.rank{group.rank}.json")
        return
    if mode == "loop":
        _loop(model, inputs, targets, batch)
    elif mode == "fit-ddp":  # fit given the wrapped model: backward averages, fit averages only the loss
        _fit(distributed.DistributedDataParallel(model), inputs, targets, batch, Misbehave(mode, group.rank))
    else:
        _fit(model, inputs, targets, batch, Misbehave(mode, group.rank))
    if group.rank == 0 or mode == "bn":
        np.savez(out, **{name: tensor.data for name, tensor in model.state_dict().items()})


def _loop(model, inputs, targets, batch):
    """The steps fit takes, written out: rank 0's weights, each rank's share of the shuffle, averaged gradients."""
    parallel = distributed.DistributedDataParallel(model)
    optimizer = optim.SGD(parallel.parameters(), lr=0.5)
    cr.manual_seed(1)  # what fit(seed=1) does before shuffling
    dataset = data.TensorDataset(inputs, targets)
    loader = data.DataLoader(dataset, batch_size=batch, shuffle=True, sampler=distributed.DistributedSampler(dataset))
    for _ in range(2):
        for x, y in loader:
            loss = nn.functional.cross_entropy(parallel(x), y)
            optimizer.zero_grad()
            loss.backward()  # returns with the gradients averaged over the ranks
            optimizer.step()


class TwoBranches(nn.Module):
    """An MLP with a branch only rank 0 uses (``use_branch``) and a layer nobody uses."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden, self.out = nn.Linear(4, 16), nn.Linear(16, 2)
        self.branch, self.unused = nn.Linear(4, 2), nn.Linear(2, 2)

    def forward(self, x, use_branch):
        y = self.out(nn.functional.tanh(self.hidden(x)))
        return y + self.branch(x) if use_branch else y


def _hooks(group, out):
    """Each check: DDP on this rank's half of 8 samples vs the whole batch on a plain copy, float64."""
    rank, size = group.rank, group.size
    x = np.random.default_rng(7).normal(size=(8, 4))
    y = np.arange(8) % 2
    half = slice(4 * rank, 4 * rank + 4)
    cr.manual_seed(0)
    plain = TwoBranches().double()
    ddp = distributed.DistributedDataParallel(TwoBranches().double(), bucket_bytes=1)  # one bucket per parameter
    ddp.module.load_state_dict(plain.state_dict())
    names = [name for name, _ in plain.named_parameters()]

    def local_loss(model, rows, r):
        return nn.functional.cross_entropy(model(cr.tensor(x[rows]), use_branch=(r == 0)), cr.tensor(y[rows]))

    def whole_loss(model):  # the mean over the ranks of each rank's mean loss: the loss of the whole batch
        return sum(local_loss(model, slice(4 * r, 4 * r + 4), r) for r in range(size)) / size

    def errors(reference):
        got = dict(ddp.module.named_parameters())
        result = {}
        for name in names:
            if reference[name] is None or got[name].grad is None:
                result[name] = "both None" if reference[name] is None and got[name].grad is None else "one None"
            else:
                result[name] = float(np.abs(got[name].grad.data - reference[name]).max())
        return result

    def zero():
        for p in ddp.parameters():
            p.grad = None

    report = {}
    # 1. one backward: the average of the ranks' gradients, with the buckets started during the sweep
    grads = cr.autograd.grad(whole_loss(plain), list(plain.parameters())[:6], allow_unused=True)
    reference = {**{n: g.data for n, g in zip(names, grads)}, "unused.weight": None, "unused.bias": None}
    zero()
    local_loss(ddp, half, rank).backward()
    report["backward"] = errors(reference)
    report["first_overlap"] = dict(ddp.overlap)  # buckets in registration order: the unused layer's holds them
    zero()
    local_loss(ddp, half, rank).backward()  # buckets rebuilt in the order the gradients arrived
    report["backward_again"] = errors(reference)
    report["overlap"] = dict(ddp.overlap)
    # 2. a second backward of the same graph (retain_graph) accumulates: twice the average
    zero()
    loss = local_loss(ddp, half, rank)
    loss.backward(retain_graph=True)
    loss.backward()
    report["retain_graph"] = errors({k: None if v is None else 2 * v for k, v in reference.items()})
    # 3. accumulation over two micro-batches: the first under no_sync, the second averaging the sums
    zero()
    counted = ddp.group.bytes_sent
    with ddp.no_sync():
        local_loss(ddp, slice(4 * rank, 4 * rank + 2), rank).backward()
    report["no_sync_sent_bytes"] = ddp.group.bytes_sent - counted
    local_loss(ddp, slice(4 * rank + 2, 4 * rank + 4), rank).backward()
    # the sum of the two micro-batches' losses of every rank, over the ranks
    accumulated = sum(local_loss(plain, slice(4 * r + k, 4 * r + k + 2), r) for r in range(size) for k in (0, 2))
    grads = cr.autograd.grad(accumulated / size, list(plain.parameters())[:6], allow_unused=True)
    unused = {"unused.weight": None, "unused.bias": None}
    report["no_sync"] = errors({**{n: g.data for n, g in zip(names, grads)}, **unused})
    # 4. create_graph: .grad is the average and differentiable; the gradient of |grad|^2 through DDP is the
    #    gradient of |grad of the whole batch's loss|^2
    zero()
    local_loss(ddp, half, rank).backward(create_graph=True)
    report["create_graph"] = errors(reference)
    used = [*ddp.module.hidden.parameters(), *ddp.module.out.parameters()]  # on every rank
    report["grad_requires_grad"] = all(p.grad.requires_grad for p in used)
    penalty = sum((p.grad**2).sum() for p in ddp.parameters() if p.grad is not None)
    zero()
    penalty.backward()
    first = cr.autograd.grad(whole_loss(plain), list(plain.parameters())[:6], create_graph=True, allow_unused=True)
    second = cr.autograd.grad(sum((g**2).sum() for g in first if g is not None), list(plain.parameters())[:6])
    report["double_backward"] = errors(
        {**{n: g.data for n, g in zip(names, second)}, "unused.weight": None, "unused.bias": None}
    )
    # 5. autograd.grad through the wrapped model leaves .grad alone and communicates nothing
    zero()
    counted = ddp.group.bytes_sent
    cr.autograd.grad(local_loss(ddp, half, rank), list(ddp.parameters())[:2])
    report["grad_sweep"] = {"sent": ddp.group.bytes_sent - counted, "grads": [p.grad is None for p in ddp.parameters()]}

    # 6. a backward that raises half-way (some buckets started) leaves the next backward averaging correctly
    def fail(grad):
        raise ValueError("told to fail")

    zero()
    handle = ddp.module.hidden.weight.register_hook(fail)
    try:
        local_loss(ddp, half, rank).backward()
    except ValueError:
        report["failed_overlap"] = dict(ddp.overlap)
    handle.remove()
    zero()
    local_loss(ddp, half, rank).backward()
    report["after_failure"] = errors(reference)
    with open(out, "w") as file:
        json.dump(report, file)


def _fit(model, inputs, targets, batch, misbehave):
    fit(
        model,
        (inputs, targets),
        optimizer="sgd",
        lr=0.5,
        epochs=2,
        batch_size=batch,
        seed=1,
        verbose=2,
        callbacks=[misbehave],
        distributed=True,
    )


if __name__ == "__main__":
    main()
