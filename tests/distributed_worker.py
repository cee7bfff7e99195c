"""A script that tests/test_distributed.py starts under ``mpiexec -n 2`` (and once as one process).

``python distributed_worker.py MODE BATCH OUT``: trains a small MLP with ``fit(..., distributed=True)`` for 20
steps (160 samples, 2 epochs of 10 batches) from seed 0 and, on rank 0, saves the weights to OUT (.npz).
MODE ``train`` just trains; ``loop`` trains the same steps in a hand-written loop with
``DistributedDataParallel`` and ``DistributedSampler``; ``bn`` trains a model with BatchNorm and saves every
rank's state (OUT.rank0.npz, OUT.rank1.npz); ``raise`` makes rank 1 raise at its 5th step;
``kill`` makes rank 1 kill itself (SIGKILL) at its 5th step; ``hang`` makes rank 1 stop calling collectives
(sleep) at its 5th step.
"""

from __future__ import annotations

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
    if mode == "loop":
        _loop(model, inputs, targets, batch)
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
            loss.backward()
            parallel.average_gradients()
            optimizer.step()


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
