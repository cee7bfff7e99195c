"""What :func:`chainrule.train.fit` does differently with ``distributed=``: the few places where N ranks differ
from one process, gathered in one object so the loop itself stays the same.

1. the data: each rank trains on its :class:`DistributedSampler` share of every epoch's order, and evaluates
   its share of the validation data (every rank splits and shuffles with rank 0's random state, so the
   shares fit together);
2. the callbacks: rank 0 prints and writes (checkpoints, history); the others run silent, without writers;
3. the start: a resumed run must have been trained on as many ranks; then every rank takes rank 0's weights,
   buffers and random-generator state;
4. each step: gradients (and the batch loss) averaged over the ranks between ``backward()`` and ``step()``;
5. each epoch: outputs and targets gathered from all ranks, so loss and metrics describe the whole data, and
   BatchNorm's running statistics averaged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from chainrule import rng
from chainrule.distributed.group import ProcessGroup, init
from chainrule.distributed.parallel import DistributedDataParallel, GradientAverager, average_buffers, broadcast_module
from chainrule.distributed.sampler import DistributedSampler
from chainrule.errors import CheckpointError, DataError
from chainrule.nn.module import Module

if TYPE_CHECKING:  # pragma: no cover
    from chainrule.data import DataLoader
    from chainrule.train.callbacks import Callback, TrainState

__all__ = ["DataParallelFit"]


def _group(distributed: Any) -> ProcessGroup:
    if distributed is True:
        return init()
    if isinstance(distributed, ProcessGroup):
        return distributed
    raise TypeError(f"fit: distributed must be True or a chainrule.distributed.ProcessGroup, got {distributed!r}")


class DataParallelFit:
    """The data-parallel side of one ``fit`` call (see the module docstring for the five places).

    Parameters
    ----------
    distributed : True or ProcessGroup
        ``True``: :func:`chainrule.distributed.init`'s group.
    model : Module
    """

    def __init__(self, distributed: Any, model: Module) -> None:
        self.group = _group(distributed)
        self.model = model
        self.averager = GradientAverager(model.parameters(), self.group)
        # Every rank draws what rank 0 draws: the validation split, and then each epoch's order.
        rng.set_state(self.group.broadcast_json(rng.get_state(), "broadcast of the random generator"))

    @property
    def rank(self) -> int:
        return self.group.rank

    # 1. the data ----------------------------------------------------------------------------------------
    def shard(self, loader: DataLoader, pad: bool = True) -> DataLoader:
        """``loader`` over this rank's share of each epoch (padded to equal shares for training)."""
        from chainrule.data import DataLoader

        if loader.sampler is not None:  # already this rank's share (a DataLoader given with a DistributedSampler)
            return loader
        samples, size = len(loader.dataset), self.group.size
        if samples < size:
            raise DataError(f"fit: the data has {samples} samples, fewer than the {size} ranks training on it")
        sampler = DistributedSampler(loader.dataset, size, self.group.rank, drop_last=loader.drop_last, pad=pad)
        seed = loader._own_generator  # the loader's own generator carries on; None keeps the global one
        return DataLoader(loader.dataset, loader.batch_size, loader.shuffle, loader.drop_last, seed, sampler=sampler)

    # 2. the callbacks -----------------------------------------------------------------------------------
    def callbacks(self, callbacks: list[Callback]) -> list[Callback]:
        """On rank 0 all of them; on the others no file writers (checkpoints, history) and no progress output."""
        from chainrule.train.callbacks import HistoryLogger, ModelCheckpoint, ProgressBar

        if self.group.is_leader:
            return callbacks
        kept = [cb for cb in callbacks if not isinstance(cb, (ModelCheckpoint, HistoryLogger))]
        return [ProgressBar(0) if isinstance(cb, ProgressBar) else cb for cb in kept]

    # 3. the start ---------------------------------------------------------------------------------------
    def begin(self, state: TrainState, resumed: bool) -> None:
        """Refuse a resumed run trained on another number of ranks; then rank 0's state on every rank."""
        if resumed:
            check_world_size(state, self.group.size)
        if self.group.size > 1:
            state.history.meta["world_size"] = self.group.size
        broadcast_module(self.model, self.group)

    # 4. each step ---------------------------------------------------------------------------------------
    def average_gradients(self, loss: float) -> float:
        """Average the gradients over the ranks; return the batch loss averaged over the ranks."""
        if isinstance(self.model, DistributedDataParallel):  # backward averaged them already: only the loss
            mean = self.model.average_gradients(loss)
            assert mean is not None
            return mean
        (mean_loss,) = self.averager(loss)
        return mean_loss

    # 5. each epoch --------------------------------------------------------------------------------------
    def combine(
        self, mean_loss: float, outputs: np.ndarray, targets: np.ndarray, gather: bool
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """The loss over all ranks' samples (weighted by their counts) and, with ``gather``, every rank's
        outputs and targets (so any metric, not only a mean, comes out as on one process)."""
        if self.group.size == 1:
            return mean_loss, outputs, targets
        totals = np.array([mean_loss * len(targets), len(targets)], np.float64)
        self.group.allreduce_sum(totals, "the epoch's loss")
        if gather:
            outputs = self.group.allgather_rows(outputs, "the epoch's outputs")
            targets = self.group.allgather_rows(targets, "the epoch's targets")
        return float(totals[0] / totals[1]), outputs, targets

    def end_epoch(self) -> None:
        average_buffers(self.model, self.group)


def check_world_size(state: TrainState, size: int) -> None:
    """A run resumes on as many ranks as it was trained on (its history records the number, absent for one)."""
    trained_on = state.history.meta.get("world_size", 1)
    if trained_on != size:
        raise CheckpointError(
            f"fit: the checkpoint was trained on {trained_on} rank{'s' if trained_on != 1 else ''} and this run has "
            f"{size}: resume it with {'mpiexec -n ' + str(trained_on) if trained_on > 1 else 'one process'} "
            "(each rank's share of the data, hence every step, depends on the number of ranks)"
        )
