"""A script that tests/test_distributed.py starts under ``mpiexec -n 2`` (and once as one process).

``python distributed_worker.py MODE BATCH OUT``: trains a small MLP with ``fit(..., distributed=True)`` for 20
steps (160 samples, 2 epochs of 10 batches) from seed 0 and, on rank 0, saves the weights to OUT (.npz).
MODE ``train`` just trains; ``raise`` makes rank 1 raise at its 5th step; ``kill`` makes rank 1 kill itself
(SIGKILL) at its 5th step; ``hang`` makes rank 1 stop calling collectives (sleep) at its 5th step.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

import chainrule as cr
from chainrule import distributed, nn
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
    fit(
        model,
        (inputs, targets),
        optimizer="sgd",
        lr=0.5,
        epochs=2,
        batch_size=batch,
        seed=1,
        verbose=2,
        callbacks=[Misbehave(mode, group.rank)],
        distributed=True,
    )
    if group.rank == 0:
        np.savez(out, **{name: tensor.data for name, tensor in model.state_dict().items()})


if __name__ == "__main__":
    main()
