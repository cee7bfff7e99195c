"""Fuzz the two file readers that take untrusted input: ``chainrule.io.load`` and ``chainrule.data.read_idx``.

Each input is a valid file (a few seeds of each kind) mutated by a seeded random generator: bit flips,
interesting byte values, truncations, insertions, deletions, splices with another seed, and edits of the
structure itself (the safetensors JSON header; the IDX magic number and dimension sizes, before or after
gzip). An input passes when the reader returns, raises its declared exception (``CheckpointError`` for
``load``, ``DataError`` for ``read_idx``) or warns with ``RuntimeWarning`` (NaN/Inf weights), and takes
under a second. Anything else (another exception type, another warning, a slow input) is a failure: the
input is written to ``--failures`` with its traceback, and the exit status is 1.

Usage::

    python benchmarks/fuzz.py                      # 100,000 inputs for each reader
    python benchmarks/fuzz.py --n 2000 --seed 7    # a quick run
    python benchmarks/fuzz.py --target idx --failures /tmp/fuzz-failures

``tests/test_fuzz.py`` runs a few hundred inputs of each through the same functions in CI.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import struct
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import chainrule as cr
from chainrule import nn
from chainrule.data import read_idx, write_idx
from chainrule.errors import CheckpointError, DataError
from chainrule.io import load, save

SLOW_SECONDS = 1.0
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)
INTERESTING_INTS = (0, 1, -1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53, 2**63, 2**64, -(2**63), 10**30)


# -- seeds: small valid files ---------------------------------------------------------------------------
def checkpoint_seeds(directory: Path) -> list[bytes]:
    """A model state dict, an optimizer state dict with moments, and a nested structure with scalars."""
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    optimizer = cr.optim.Adam(model.parameters(), lr=0.01)
    loss = model(cr.ones(5, 3)).sum()
    loss.backward()
    optimizer.step()
    trees = [
        model.state_dict(),
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3, "step": 12},
        {"a": [1, 2.5, None, True, "x"], "b": (np.arange(6, dtype=np.int64).reshape(2, 3),), "c": cr.zeros(0)},
        {"halves": np.ones(4, np.float16), "bytes": np.arange(5, dtype=np.uint8), "flags": np.array([True, False])},
    ]
    seeds = []
    for i, tree in enumerate(trees):
        path = directory / f"seed-{i}.safetensors"
        save(tree, path)
        seeds.append(path.read_bytes())
    return seeds


def idx_seeds(directory: Path) -> list[bytes]:
    """IDX files of every type code and 1 to 4 dimensions, raw and gzip-compressed."""
    arrays = [
        np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5),
        np.array([7, 2, 1, 0, 4], np.uint8),
        np.arange(-6, 6, dtype=np.int8).reshape(3, 4),
        np.arange(12, dtype=np.int16).reshape(2, 3, 2),
        np.arange(4, dtype=np.int32),
        np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 2, 1, 2),
        np.array([0.5, np.nan, np.inf], np.float64),
    ]
    seeds = []
    for i, array in enumerate(arrays):
        for suffix in ("", ".gz"):
            path = directory / f"seed-{i}{suffix}"
            write_idx(path, array)
            seeds.append(path.read_bytes())
    return seeds


# -- mutations ------------------------------------------------------------------------------------------
def _flip_bits(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(len(data))
        data[position] ^= 1 << rng.randrange(8)


def _set_bytes(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.choice(INTERESTING_BYTES)


def _truncate(data: bytearray, rng: random.Random) -> None:
    del data[rng.randrange(len(data)) :]


def _insert(data: bytearray, rng: random.Random) -> None:
    position = rng.randrange(len(data) + 1)
    data[position:position] = rng.randbytes(rng.choice((1, 4, 8, rng.randint(1, 200))))


def _delete(data: bytearray, rng: random.Random) -> None:
    start = rng.randrange(len(data))
    del data[start : start + rng.randint(1, 16)]


def _duplicate(data: bytearray, rng: random.Random) -> None:
    start = rng.randrange(len(data))
    chunk = data[start : start + rng.randint(1, 64)]
    position = rng.randrange(len(data) + 1)
    data[position:position] = chunk * rng.randint(1, 4)


BYTE_MUTATIONS: dict[str, Callable[[bytearray, random.Random], None]] = {
    "flip bits": _flip_bits,
    "set bytes": _set_bytes,
    "truncate": _truncate,
    "insert": _insert,
    "delete": _delete,
    "duplicate": _duplicate,
}


def _splice(seed: bytes, other: bytes, rng: random.Random) -> bytes:
    return seed[: rng.randrange(len(seed) + 1)] + other[rng.randrange(len(other) + 1) :]


def _odd_value(rng: random.Random) -> object:
    return rng.choice(
        [
            rng.choice(INTERESTING_INTS),
            -rng.randint(1, 100),
            1.5,
            float("nan"),
            "",
            "F32",
            "BF16",
            None,
            True,
            [],
            [rng.choice(INTERESTING_INTS)] * rng.randint(0, 70),
            {"x": 1},
            "é" * 3,
        ]
    )


def _edit_json(node: object, rng: random.Random, depth: int = 0) -> object:
    """``node`` with one random edit somewhere inside: a value replaced, a key dropped, renamed or added."""
    if isinstance(node, dict) and node and rng.random() < 0.7:
        key = rng.choice(list(node))
        action = rng.random()
        if action < 0.15:
            del node[key]
        elif action < 0.25:
            node[key + rng.choice(["_", "\x00", "0"])] = node.pop(key)
        elif action < 0.35:
            node[rng.choice(["dtype", "shape", "data_offsets", "__metadata__", "extra"])] = _odd_value(rng)
        else:
            node[key] = _edit_json(node[key], rng, depth + 1)
        return node
    if isinstance(node, list) and node and rng.random() < 0.7:
        index = rng.randrange(len(node))
        if rng.random() < 0.2:
            del node[index]
        else:
            node[index] = _edit_json(node[index], rng, depth + 1)
        return node
    if isinstance(node, str) and node[:1] in "{[" and rng.random() < 0.8:
        # The chainrule metadata holds JSON inside JSON strings (the structure tree).
        try:
            inner = json.loads(node)
        except ValueError:
            return node + rng.choice(["}", "\\", "\ud800", ""])
        return json.dumps(_edit_json(inner, rng, depth + 1))
    return _odd_value(rng)


def _mutate_safetensors_header(seed: bytes, rng: random.Random) -> bytes:
    """Edit the JSON header; keep the 8-byte length right most of the time so the edit reaches the checks."""
    (length,) = struct.unpack("<Q", seed[:8])
    if rng.random() < 0.25 and len(seed) > 8 + length:
        # Only the array bytes: still a valid file, with other values (NaN and Inf among them).
        data = bytearray(seed)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(8 + length, len(data))] = rng.choice((*INTERESTING_BYTES, rng.randrange(256)))
        return bytes(data)
    header = json.loads(seed[8 : 8 + length])
    header = _edit_json(header, rng)
    text = json.dumps(header, allow_nan=True).encode()
    if rng.random() < 0.1:
        text = text.replace(b'"', b"'", 1) if rng.random() < 0.5 else text[: rng.randrange(len(text) + 1)]
    declared = len(text) if rng.random() < 0.85 else rng.choice([0, len(text) - 1, len(text) + 1, 2**63, 10**8])
    return struct.pack("<Q", declared % 2**64) + text + seed[8 + length :]


def _mutate_idx_header(seed: bytes, rng: random.Random) -> bytes:
    """Edit the magic number or a dimension size of the decompressed file, then compress again if it was."""
    compressed = seed[:2] == b"\x1f\x8b"
    data = bytearray(gzip.decompress(seed) if compressed else seed)
    ndim = data[3]
    choice = rng.random()
    if choice < 0.25:
        data[2] = rng.choice([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0x0A, 0xFF])
    elif choice < 0.45:
        data[3] = rng.choice([0, 1, 2, 3, 4, 5, 255])
    elif choice < 0.9:
        dimension = 4 + 4 * rng.randrange(ndim)
        data[dimension : dimension + 4] = rng.choice([0, 1, 2, 28, 2**16, 2**31, 2**32 - 1]).to_bytes(4, "big")
    else:
        # A valid header declaring little data, followed by a long run of zeros: a small decompression bomb.
        data += bytes(rng.choice([1, 100, 1 << 16, 1 << 20]))
    mutated = bytes(data)
    return gzip.compress(mutated, mtime=0) if compressed and rng.random() < 0.9 else mutated


@dataclass
class Target:
    """One reader under test: how to call it, what it may raise, its seeds, its structure-aware mutation."""

    name: str
    suffix: str
    call: Callable[[Path, random.Random], object]
    declared: tuple[type[BaseException], ...]
    seeds: Callable[[Path], list[bytes]]
    mutate_structure: Callable[[bytes, random.Random], bytes]


def _load(path: Path, rng: random.Random) -> object:
    return load(path, nonfinite="error" if rng.random() < 0.2 else "warn")


def _read_idx(path: Path, rng: random.Random) -> object:
    return read_idx(path)


TARGETS = {
    "load": Target("load", ".safetensors", _load, (CheckpointError,), checkpoint_seeds, _mutate_safetensors_header),
    "idx": Target("idx", "-idx-ubyte", _read_idx, (DataError,), idx_seeds, _mutate_idx_header),
}


def mutate(seeds: list[bytes], target: Target, rng: random.Random) -> tuple[bytes, str]:
    """One fuzz input: a seed changed by one to four mutations; and a label saying how."""
    seed = rng.choice(seeds)
    roll = rng.random()
    if roll < 0.3:
        return target.mutate_structure(seed, rng), "structure"
    if roll < 0.4:
        return _splice(seed, rng.choice(seeds), rng), "splice"
    if roll < 0.45:
        return rng.randbytes(rng.randint(0, 64)), "random bytes"
    data = bytearray(seed)
    names = []
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        name = rng.choice(list(BYTE_MUTATIONS))
        BYTE_MUTATIONS[name](data, rng)
        names.append(name)
    return bytes(data), "+".join(names) or "empty"


# -- running --------------------------------------------------------------------------------------------
@dataclass
class Report:
    """What a run saw for one target."""

    target: str
    inputs: int = 0
    outcomes: Counter = field(default_factory=Counter)  # "accepted", exception or warning type names
    failures: list[tuple[int, str, bytes, str]] = field(default_factory=list)  # (index, how, input, why)
    slowest: float = 0.0
    slowest_how: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def check_input(target: Target, path: Path, data: bytes, rng: random.Random) -> tuple[str, str | None, float]:
    """Run ``target`` on ``data`` written to ``path``: (outcome, why it failed or None, seconds)."""
    path.write_bytes(data)
    failure = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            target.call(path, rng)
            outcome = "accepted"
        except target.declared as error:
            outcome = type(error).__name__
        except Exception as error:  # the harness exists to find these
            outcome = type(error).__name__
            failure = "undeclared exception:\n" + "".join(traceback.format_exception(error))
        seconds = time.perf_counter() - start
    for warning in caught:
        kind = warning.category.__name__
        if not issubclass(warning.category, RuntimeWarning):
            failure = (failure or "") + f"undeclared warning {kind}: {warning.message}\n"
        outcome += f" + {kind}"
    if seconds > SLOW_SECONDS:
        failure = (failure or "") + f"slow: {seconds:.3f} s\n"
    return outcome, failure, seconds


def fuzz(name: str, n: int, seed: int = 0, workdir: Path | None = None, progress: bool = False) -> Report:
    """Run ``n`` mutated inputs against target ``name`` ("load" or "idx") and report what happened."""
    target = TARGETS[name]
    report = Report(name)
    rng = random.Random(f"{seed}:{name}")
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        folder = Path(scratch)
        seeds = target.seeds(folder)
        path = folder / f"input{target.suffix}"
        begin = time.perf_counter()
        for index in range(n):
            data, how = mutate(seeds, target, rng)
            outcome, failure, seconds = check_input(target, path, data, rng)
            report.inputs += 1
            report.outcomes[outcome] += 1
            if seconds > report.slowest:
                report.slowest, report.slowest_how = seconds, how
            if failure is not None:
                report.failures.append((index, how, data, failure))
            if progress and (index + 1) % 10_000 == 0:
                print(f"  {name}: {index + 1} inputs, {time.perf_counter() - begin:.0f} s", file=sys.stderr)
        report.seconds = time.perf_counter() - begin
    return report


def write_failures(report: Report, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for index, how, data, why in report.failures:
        stem = directory / f"{report.target}-{index:06d}"
        stem.with_suffix(".bin").write_bytes(data)
        stem.with_suffix(".txt").write_text(f"mutation: {how}\n{why}")


def describe(report: Report) -> str:
    lines = [
        f"{report.target}: {report.inputs} inputs in {report.seconds:.1f} s, "
        f"slowest {report.slowest * 1000:.1f} ms ({report.slowest_how}), {len(report.failures)} failures",
    ]
    for outcome, count in report.outcomes.most_common():
        lines.append(f"  {count:8d}  {outcome}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="inputs per target (default 100,000)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the mutations")
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--failures", type=Path, default=Path("fuzz-failures"), help="where failing inputs go")
    args = parser.parse_args(argv)
    names = list(TARGETS) if args.target == "all" else [args.target]
    ok = True
    for name in names:
        report = fuzz(name, args.n, args.seed, progress=True)
        print(describe(report), flush=True)
        if not report.ok:
            ok = False
            write_failures(report, args.failures)
            print(f"  failing inputs written to {args.failures}/", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
