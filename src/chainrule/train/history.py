"""What :func:`chainrule.train.fit` returns: one record per epoch, and a one-sentence diagnosis of the fit."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from chainrule.io import atomic_write_bytes

__all__ = ["History"]


@dataclass
class History:
    """Per-epoch records of a training run.

    Each record is a dict with ``epoch`` (1-based), ``loss`` and the training metrics, ``val_loss`` and
    ``val_<metric>`` when there is validation data, ``lr`` (of the first parameter group) and ``time``
    (seconds the epoch took). ``history["val_loss"]`` is the list of one key over the epochs.

    Examples
    --------
    >>> h = History()
    >>> h.append({"epoch": 1, "loss": 0.9, "val_loss": 1.0})
    >>> h.append({"epoch": 2, "loss": 0.5, "val_loss": 0.6})
    >>> h["loss"]
    [0.9, 0.5]
    >>> h.best("val_loss")
    (2, 0.6)
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    #: What the run used that the records do not show: ``{"early_stopping": True}`` when :func:`fit` ran
    #: with an :class:`~chainrule.train.EarlyStopping` callback (saved with the records).
    meta: dict[str, Any] = field(default_factory=dict)

    def append(self, record: dict[str, Any]) -> None:
        """Add the record of one finished epoch."""
        self.records.append(dict(record))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list[Any]:
        if not any(key in r for r in self.records):
            known = sorted({k for r in self.records for k in r})
            raise KeyError(f"History has no {key!r}; it has {known}")
        return [r.get(key, math.nan) for r in self.records]

    def __contains__(self, key: str) -> bool:
        return any(key in r for r in self.records)

    @property
    def keys(self) -> list[str]:
        """Every key that appears in a record, in first-seen order."""
        seen: dict[str, None] = {}
        for record in self.records:
            seen.update(dict.fromkeys(record))
        return list(seen)

    def best(self, key: str, mode: str = "min") -> tuple[int, float]:
        """``(epoch, value)`` of the best value of ``key`` (lowest for ``mode="min"``, highest for ``"max"``)."""
        values = [(r["epoch"], r[key]) for r in self.records if key in r and not math.isnan(r[key])]
        if not values:
            raise KeyError(f"History has no finite values of {key!r}")
        return (min if mode == "min" else max)(values, key=lambda item: item[1])

    # -- persistence ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"records": [dict(r) for r in self.records]}
        if self.meta:
            state["meta"] = dict(self.meta)
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> History:
        """The inverse of :meth:`to_dict` and :meth:`save_json` (whose "nan" and "inf" strings become floats)."""
        meta = state.get("meta")
        records = [{key: _from_json(value) for key, value in r.items()} for r in state.get("records", [])]
        return cls(records, dict(meta) if isinstance(meta, dict) else {})

    def save_json(self, path: str | os.PathLike[str]) -> None:
        """Write the records as strict JSON (atomically): a NaN or infinite value is the string ``"nan"``,
        ``"inf"`` or ``"-inf"`` (JSON has no such numbers), which :meth:`from_dict` reads back as a float."""
        state = self.to_dict()
        state["records"] = [{key: _to_json(value) for key, value in r.items()} for r in self.records]
        atomic_write_bytes(path, (json.dumps(state, indent=1, allow_nan=False) + "\n").encode())

    def save_csv(self, path: str | os.PathLike[str]) -> None:
        """Write one row per epoch, one column per key (atomically)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.keys, restval="")
        writer.writeheader()
        writer.writerows(self.records)
        atomic_write_bytes(path, buffer.getvalue().encode())

    # -- diagnosis -----------------------------------------------------------------------------------
    def diagnosis(self, early_stopping: bool | None = None, test_accuracy: float | None = None) -> str:
        """One sentence on how the fit went: diverged, overfitting, underfitting, still learning, or a good fit.

        The training loss diverged (the run became unstable) when it ends more than twice its minimum, rising
        after it; the model is not learning when it did not fall at all. Otherwise the rules compare the
        training and validation losses: overfitting when the validation loss has risen more than 10% above its
        minimum while the training loss kept falling, or when it ends more than
        twice the training loss; still learning when the training loss fell more than 5% over the last
        epochs; underfitting when training and validation losses stay close but high compared with where
        they started; otherwise a good fit. A validation loss below the training loss, or a perfect
        ``test_accuracy``, is never called overfitting; one epoch is too few to judge; NaN or infinite
        losses are reported, never compared.

        Parameters
        ----------
        early_stopping : bool, optional
            Early stopping was in use (the advice then does not suggest it). Default: what :func:`fit` recorded
            in :attr:`meta` (``True`` when it ran with an :class:`~chainrule.train.EarlyStopping` callback).
        test_accuracy : float, optional
            The accuracy on the test split, when known.

        Examples
        --------
        >>> h = History([{"epoch": e, "loss": 1 / e, "val_loss": 1 / e + 0.05} for e in range(1, 6)])
        >>> h.diagnosis()[:21]
        'Still learning: the t'
        >>> History([{"epoch": 1, "loss": 0.6257, "val_loss": float("nan")}]).diagnosis()[:40]
        'The validation loss is nan in epoch 1: c'
        >>> History([{"epoch": e, "loss": 2e6} for e in (1, 2, 3)]).diagnosis()[:35]
        'Not learning: the training loss did'
        """
        if not self.records:
            return "No epochs were run."
        losses = [float(r.get("loss", math.nan)) for r in self.records]
        first, last = losses[0], losses[-1]
        if not all(math.isfinite(v) for v in losses):
            return "The training loss became non-finite: lower the learning rate, clip gradients or check the data."
        has_val = "val_loss" in self
        val = [float(r.get("val_loss", math.nan)) for r in self.records]
        final_val = val[-1]
        if has_val and not math.isfinite(final_val):
            return (
                f"The validation loss is {final_val} in epoch {len(val)}: check the validation data for NaN/Inf, "
                "or lower the learning rate if the model's outputs overflow."
            )
        if early_stopping is None:
            early_stopping = bool(self.meta.get("early_stopping", False))
        best_loss = min(losses)
        best_at = losses.index(best_loss) + 1
        if last > 2 * best_loss and last - best_loss > 0.01 and best_at < len(losses):
            return (
                f"Diverged: the training loss rose from its minimum {best_loss:.4g} (epoch {best_at}) to {last:.4g}; "
                "training became unstable: lower the learning rate (or clip gradients)."
            )
        if len(losses) == 1:
            shown = f" and validation loss {final_val:.4g}" if has_val else ""
            return f"One epoch: training loss {last:.4g}{shown}; too early to judge the fit, train for more epochs."
        if last >= 0.99 * first:
            return (
                f"Not learning: the training loss did not fall over {len(losses)} epochs ({first:.4g} to {last:.4g}); "
                "a learning rate that is too large (or too small), or data and labels that do not match, are the "
                "usual causes."
            )
        tail = losses[-3] if len(losses) >= 3 else first
        still_falling = last < 0.95 * tail
        if not has_val:
            base = f"Training loss went from {first:.4g} to {last:.4g} over {len(losses)} epochs"
            return base + (
                " and is still falling: train longer." if still_falling else "; no validation data to judge fit."
            )
        remedies = (
            "weight decay, dropout or more data"
            if early_stopping
            else "early stopping, weight decay, dropout or more data"
        )
        may_overfit = final_val > last and test_accuracy != 1.0
        finite = [(epoch, value) for epoch, value in enumerate(val, start=1) if math.isfinite(value)]
        best_epoch, best_val = min(finite, key=lambda item: item[1])
        if may_overfit and final_val > 1.1 * best_val and last < losses[best_epoch - 1] and best_epoch < len(val):
            return (
                f"Overfitting: validation loss bottomed at {best_val:.4g} in epoch {best_epoch} and rose to "
                f"{final_val:.4g} while training loss kept falling to {last:.4g}; use {remedies}."
            )
        if may_overfit and final_val > 2 * last and final_val - last > 0.05:
            return (
                f"Overfitting: validation loss {final_val:.4g} is {final_val / max(last, 1e-12):.1f}x the training "
                f"loss {last:.4g}; regularize (weight decay, dropout) or get more data."
            )
        if still_falling:
            return (
                f"Still learning: the training loss fell from {tail:.4g} to {last:.4g} over the last epochs "
                f"(validation {final_val:.4g}); train for more epochs."
            )
        if last > 0.5 * first and first > 0:
            change = "only fell" if last < first else "went"
            return (
                f"Underfitting: the training loss {change} from {first:.4g} to {last:.4g} and validation is "
                f"{final_val:.4g}; use a larger model, a higher learning rate or more epochs."
            )
        return (
            f"Good fit: training loss {last:.4g} and validation loss {final_val:.4g} are close, and the loss has "
            "leveled off."
        )


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _to_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _from_json(value: Any) -> Any:
    return _NONFINITE.get(value, value) if isinstance(value, str) else value
