"""A short run of the fuzz harness (``benchmarks/fuzz.py``) and property tests of the two file readers.

The readers take untrusted bytes: whatever they are given, they return or raise their declared exception
(``CheckpointError`` from ``load``, ``DataError`` from ``read_idx``), quickly. The full run (100,000 inputs
for each) is a benchmark: ``python benchmarks/fuzz.py``.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import struct
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainrule.data import read_idx
from chainrule.data.idx import IDX_TYPES, MAX_DATA_BYTES
from chainrule.errors import CheckpointError, DataError
from chainrule.io import load


def _harness():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py"
    spec = importlib.util.spec_from_file_location("chainrule_fuzz_harness", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


fuzz = _harness()
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("target", ["load", "idx"])
def test_short_fuzz_run_raises_only_declared_errors(target, tmp_path):
    report = fuzz.fuzz(target, n=300, seed=1234, workdir=tmp_path)
    assert report.inputs == 300
    assert report.ok, fuzz.describe(report) + "\n" + "\n".join(why for *_, why in report.failures[:3])
    assert report.slowest < fuzz.SLOW_SECONDS
    # The mutations reach past the first check: some inputs are valid files, most are refused.
    assert report.outcomes["accepted"] > 0
    assert sum(count for outcome, count in report.outcomes.items() if outcome.startswith(target_error(target))) > 150


def target_error(target: str) -> str:
    return {"load": "CheckpointError", "idx": "DataError"}[target]


def test_failures_are_written_with_their_reason(tmp_path):
    report = fuzz.Report("idx", failures=[(7, "flip bits", b"\x00\x01", "undeclared exception: X")])
    fuzz.write_failures(report, tmp_path / "out")
    assert (tmp_path / "out" / "idx-000007.bin").read_bytes() == b"\x00\x01"
    assert "flip bits" in (tmp_path / "out" / "idx-000007.txt").read_text()


def test_an_undeclared_exception_is_a_failure(tmp_path):
    def broken(path, rng):
        raise KeyError("oops")

    target = fuzz.Target("broken", ".bin", broken, (DataError,), fuzz.idx_seeds, fuzz._mutate_idx_header)
    outcome, failure, _ = fuzz.check_input(target, tmp_path / "x.bin", b"", None)
    assert outcome == "KeyError" and "undeclared exception" in failure


# -- IDX: any bytes; and headers built field by field --------------------------------------------------------
@FAST
@given(data=st.binary(max_size=300), compress=st.booleans())
def test_read_idx_of_any_bytes(tmp_path, data, compress):
    path = tmp_path / "any-idx"
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    try:
        array = read_idx(path)
    except DataError as error:
        assert str(path) in str(error)
    else:
        assert array.size * array.dtype.itemsize == len(data) - 4 - 4 * array.ndim


@FAST
@given(
    code=st.integers(0, 255),
    ndim=st.integers(0, 6),
    dims=st.lists(st.one_of(st.integers(0, 6), st.sampled_from([2**16, 2**31, 2**32 - 1])), min_size=6, max_size=6),
    extra=st.sampled_from([-1, 0, 0, 0, 1]),
    compress=st.booleans(),
)
def test_read_idx_accepts_exactly_the_valid_headers(tmp_path, code, ndim, dims, extra, compress):
    dims = dims[:ndim]
    dtype = IDX_TYPES.get(code)
    size = math.prod(dims) * (dtype.itemsize if dtype else 1)
    payload = bytes(range(256)) * (min(size, 4096) // 256 + 1)
    payload = payload[: max(0, min(size, 4096) + extra)]
    data = bytes([0, 0, code, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims) + payload
    path = tmp_path / "built-idx"
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    valid = dtype is not None and 1 <= ndim <= 4 and all(dims) and size <= 4096 and extra == 0
    if not valid:
        with pytest.raises(DataError, match="built-idx"):
            read_idx(path)
        return
    array = read_idx(path)
    assert array.shape == tuple(dims) and array.dtype == dtype.newbyteorder("=")
    np.testing.assert_array_equal(array, np.frombuffer(payload, dtype).reshape(dims))
    assert size <= MAX_DATA_BYTES


# -- checkpoints: any bytes; and safetensors headers built field by field ----------------------------------
def _load_quietly(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return load(path)


@FAST
@given(data=st.binary(max_size=300))
def test_load_of_any_bytes(tmp_path, data):
    path = tmp_path / "any.safetensors"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="any.safetensors"):
        _load_quietly(path)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=4,
)
TENSOR_ENTRY = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F64", "I64", "U8", "BOOL", "BF16", "F8_E4M3", "X"]) | JSON_VALUES,
        "shape": st.lists(st.integers(-2, 5) | st.sampled_from([2**31, 2**63]), max_size=4) | JSON_VALUES,
        "data_offsets": st.lists(st.integers(-1, 40), min_size=2, max_size=2) | JSON_VALUES,
    }
)
TREE = st.sampled_from(
    ['{"__array__": "w"}', '{"__dict__": [["w", {"__tensor__": "w"}]]}', '{"__tensor__": 1}', "[", '"w"']
) | st.text(max_size=20)


@FAST
@given(
    entry=TENSOR_ENTRY,
    tree=TREE,
    version=st.sampled_from(["1", "2", "0", "01", "x", ""]),
    payload=st.binary(max_size=40),
)
def test_load_of_built_headers(tmp_path, entry, tree, version, payload):
    header = {"__metadata__": {"chainrule.format_version": version, "chainrule.tree": tree}, "w": entry}
    text = json.dumps(header).encode()
    path = tmp_path / "built.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + payload)
    try:
        _load_quietly(path)
    except CheckpointError as error:
        assert "built.safetensors" in str(error)
