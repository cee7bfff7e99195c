"""Checkpoints that cannot hurt you: a corpus of crafted files, each refused with one exception type.

:func:`crafted_files` builds the corpus from a small valid checkpoint; every file must be refused by
``chainrule.load`` with a ``CheckpointError`` whose message names the file and the fault, and a sentinel
file proves that no payload ran. Files that are valid containers but do not fit a model are refused by
``chainrule.io.load_into``.
"""

from __future__ import annotations

import ast
import errno
import itertools
import json
import math
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.io import FORMAT_VERSION, STALE_TEMP_SECONDS, _temp_host, load_into

SRC = Path(cr.__file__).parent


class SentinelPayload:
    """Unpickling this creates the sentinel file: proof that a loader ran code from a file."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def small_model() -> nn.Module:
    cr.manual_seed(0)
    return nn.Linear(2, 2)


def valid_checkpoint(tmp_path: Path) -> bytes:
    path = tmp_path / "valid.safetensors"
    cr.save(small_model().state_dict(), path)
    return path.read_bytes()


def split(blob: bytes) -> tuple[dict, bytes]:
    """The header (as a dict, key order kept) and data region of a safetensors file."""
    length = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8 : 8 + length]), blob[8 + length :]


def container(header: dict | bytes | str, data: bytes = b"", length: int | None = None) -> bytes:
    """A safetensors file around ``header`` (a dict is dumped as JSON) and ``data``."""
    if isinstance(header, dict):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode()
    return struct.pack("<Q", len(header) if length is None else length) + header + data


def crafted_files(valid: bytes, sentinel: Path) -> list[tuple[str, bytes, str]]:
    """``(label, file content, fragment of the expected message)`` for every crafted bad file."""
    header, data = split(valid)
    metadata = header["__metadata__"]
    names = [k for k in header if k != "__metadata__"]
    first, second = names[0], names[1]
    later = max(names, key=lambda name: header[name]["data_offsets"][0])

    def edit(change, extra_data: bytes = b"") -> bytes:
        edited = json.loads(json.dumps(header))
        change(edited)
        return container(edited, data + extra_data)

    def shifted(entry: dict, by: int) -> list[int]:
        return [offset + by for offset in entry["data_offsets"]]

    def with_tree(tree_text: str) -> bytes:
        def change(h):
            h["__metadata__"]["chainrule.tree"] = tree_text

        return edit(change)

    def dims(shape, offsets=None, dtype="F32") -> bytes:
        entry = {"dtype": dtype, "shape": shape, "data_offsets": offsets or [0, 4]}
        return container({"__metadata__": metadata, "x": entry}, b"\0" * entry["data_offsets"][1])

    payload = pickle.dumps(SentinelPayload(sentinel))
    raw = json.dumps(header).encode()
    duplicate_tensor = raw.replace(b"{", b'{"%s": %s, ' % (first.encode(), json.dumps(header[first]).encode()), 1)
    duplicate_metadata = raw.replace(b'"__metadata__": {', b'"__metadata__": {"chainrule.format_version": "1", ', 1)

    return [
        ("pickle payload", payload, "header length"),
        ("pickle payload inside the header", container(payload, data), "header"),
        ("numpy pickle renamed", b"\x93NUMPY\x01\x00" + payload, "header length"),
        ("garbage", b"GARBAGE!" * 16, "header length"),
        ("zip magic", b"PK\x03\x04" + b"\0" * 60, "header length"),
        ("header beyond the file", container(raw, data, length=len(raw) + len(data) + 1), "only"),
        ("absurd header length", container(raw, data, length=2**62), "over the limit"),
        ("header length 0", container(b"", data), "too short"),
        ("non-UTF-8 header", container(b'{"\xff\xfe": 1}'), "not UTF-8"),
        ("invalid JSON", container(b'{"a": '), "not valid JSON"),
        ("JSON array header", container(b"[1, 2]"), "not an object"),
        ("NaN constant in header", container(b'{"__metadata__": {}, "x": NaN}'), "NaN"),
        ("duplicate tensor names", container(duplicate_tensor, data), "twice"),
        ("duplicate metadata keys", container(duplicate_metadata, data), "twice"),
        ("unknown dtype", edit(lambda h: h[first].update(dtype="F128")), "unknown or unsupported dtype"),
        ("bfloat16", edit(lambda h: h[first].update(dtype="BF16")), "unknown or unsupported dtype"),
        ("dtype not a string", edit(lambda h: h[first].update(dtype=7)), "dtype"),
        ("negative dimension", dims([-1, 1]), "negative dimension"),
        ("overflowing dimensions", dims([2**62, 2**62]), "needs"),
        ("dimension past 64 bits", dims([2**70]), "needs"),
        ("zero-size shape over bytes", dims([0, 5]), "needs 0 bytes"),
        ("float dimension", dims([1.0]), "not a list"),
        ("boolean dimension", dims([True]), "not a list"),
        ("shape scalar", dims(4), "not a list"),
        ("too many dimensions", dims([1] * 65), "at most 64"),
        ("size does not match offsets", edit(lambda h: h[first].update(shape=[3, 3])), "needs"),
        ("offsets out of bounds", edit(lambda h: h[second].update(data_offsets=[len(data), len(data) + 8])), "out of"),
        ("offsets reversed", edit(lambda h: h[first].update(data_offsets=[8, 0])), "begin <= end"),
        ("negative offset", edit(lambda h: h[first].update(data_offsets=[-8, 0])), "begin <= end"),
        (
            "gap between tensors",
            edit(lambda h: h[later].update(data_offsets=shifted(h[later], 4)), b"\0" * 4),
            "unused",
        ),
        ("overlapping offsets", edit(lambda h: h[later].update(data_offsets=shifted(h[later], -4))), "overlaps"),
        ("trailing bytes", container(header, data + b"\0"), "trailing byte(s)"),
        ("extra field", edit(lambda h: h[first].update(code="import os")), "exactly the fields"),
        ("tensor entry not an object", edit(lambda h: h.update({first: [1, 2]})), "exactly the fields"),
        ("plain safetensors", edit(lambda h: h.pop("__metadata__")), "not written by chainrule"),
        ("metadata not strings", edit(lambda h: h["__metadata__"].update(x=1)), "not an object of strings"),
        ("format version from the future", edit(lambda h: metadata_set(h, FORMAT_VERSION + 1)), "newer chainrule"),
        ("format version not a number", edit(lambda h: metadata_set(h, "1.0")), "invalid format version"),
        ("format version zero", edit(lambda h: metadata_set(h, 0)), "invalid format version"),
        ("format version of 5000 digits", edit(lambda h: metadata_set(h, "9" * 5000)), "invalid format version"),
        ("structure not JSON", with_tree("{not json"), "structure header is not valid JSON"),
        ("structure with duplicate keys", with_tree('{"__dict__": [], "__dict__": []}'), "twice"),
        ("structure names a missing array", with_tree('{"__tensor__": "nope"}'), "not in the file"),
        ("structure leaves arrays out", with_tree("[]"), "does not mention"),
        ("structure refers twice", with_tree(json.dumps([{"__tensor__": first}] * 2)), "twice"),
        ("structure asks for code", with_tree('{"__reduce__": ["os", "system"]}'), "unknown structure entry"),
        ("structure nested too deeply", with_tree("[" * 100_000 + "]" * 100_000), "nested too deeply"),
    ]


def metadata_set(header: dict, version) -> None:
    header["__metadata__"]["chainrule.format_version"] = str(version)


def expect_refused(path: Path, fragment: str, **kwargs) -> str:
    with pytest.raises(cr.CheckpointError) as info:
        cr.load(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    assert fragment in message, message
    return message


def test_crafted_files_are_refused_and_run_nothing(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    corpus = crafted_files(valid_checkpoint(tmp_path), sentinel)
    assert len(corpus) >= 25
    for index, (label, content, fragment) in enumerate(corpus):
        path = tmp_path / f"crafted-{index}.safetensors"
        path.write_bytes(content)
        try:
            expect_refused(path, fragment)
        except BaseException as error:
            raise AssertionError(f"crafted file {label!r}") from error
    assert not sentinel.exists(), "a crafted file ran code"
    # The payload is live: unpickling it (what a pickle-based loader would do) creates the sentinel.
    pickle.loads(corpus[0][1])
    assert sentinel.exists()


def test_truncation_at_every_byte_is_refused(tmp_path):
    valid = valid_checkpoint(tmp_path)
    path = tmp_path / "truncated.safetensors"
    for size in range(len(valid)):
        path.write_bytes(valid[:size])
        with pytest.raises(cr.CheckpointError, match="truncated.safetensors"):
            cr.load(path)
    path.write_bytes(valid)
    assert set(cr.load(path)) == {"weight", "bias"}


def test_files_that_do_not_fit_the_model_name_file_keys_and_shapes(tmp_path):
    state = small_model().state_dict()
    cases = {
        "missing": ({"weight": state["weight"]}, "missing keys: bias"),
        "extra": ({**state, "scale": cr.ones(2)}, "unexpected keys: scale"),
        "shape": ({**state, "weight": cr.ones(3, 2)}, "weight: shape (3, 2) in the state dict, (2, 2) in the model"),
        "not a dict": ([state["weight"]], "not a state dict"),
    }
    for label, (content, fragment) in cases.items():
        path = tmp_path / f"{label}.safetensors"
        cr.save(content, path)
        with pytest.raises(cr.CheckpointError) as info:
            load_into(small_model(), path)
        assert str(path) in str(info.value) and fragment in str(info.value)
    path = tmp_path / "good.safetensors"
    cr.save(state, path)
    model = nn.Linear(2, 2)
    assert load_into(model, path) == ([], [])
    np.testing.assert_array_equal(model.weight.data, state["weight"].data)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_weights_warn_by_default_and_fail_on_request(tmp_path, bad):
    state = small_model().state_dict()
    state["weight"].data[0, 1] = bad
    path = tmp_path / "diverged.safetensors"
    cr.save(state, path)
    with pytest.warns(RuntimeWarning, match=r"diverged\.safetensors.* NaN or Inf values in 'weight'"):
        loaded = cr.load(path)
    assert loaded["weight"].data[0, 1] == bad or math.isnan(bad)
    expect_refused(path, "NaN or Inf values in 'weight'", nonfinite="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cr.load(path, nonfinite="ignore")
    with pytest.raises(cr.ArgumentError, match="nonfinite"):
        cr.load(path, nonfinite="raise")


def test_every_supported_dtype_and_shape_round_trips(tmp_path):
    values = {
        "f32": cr.randn(2, 3),
        "f64": np.linspace(0, 1, 5),
        "i64": np.arange(-3, 3),
        "u8": np.arange(4, dtype=np.uint8),
        "i32": np.arange(4, dtype=np.int32).reshape(2, 2),
        "f16": np.ones(3, dtype=np.float16),
        "bool": np.array([True, False]),
        "scalar": cr.tensor(2.5),
        "scalar array": np.array(7),
        "empty": np.zeros((0, 3)),
        "strided": np.arange(12.0).reshape(3, 4)[:, ::2],
        "big-endian": np.arange(3, dtype=">i8"),
        "plain": [1, 2.5, "text", None, True, (1, 2), {"nested": {1: math.nan}}],
    }
    path = tmp_path / "all.safetensors"
    cr.save(values, path)
    loaded = cr.load(path)
    assert list(loaded) == list(values)
    for key, value in values.items():
        if key == "plain":
            continue
        expected = value.data if isinstance(value, cr.Tensor) else value
        got = loaded[key].data if isinstance(value, cr.Tensor) else loaded[key]
        assert isinstance(loaded[key], type(value)), key
        assert got.shape == expected.shape and got.dtype == expected.dtype.newbyteorder("="), key
        assert got.flags.writeable, key
        np.testing.assert_array_equal(got, expected)
    assert loaded["plain"][:6] == [1, 2.5, "text", None, True, (1, 2)]
    assert math.isnan(loaded["plain"][6]["nested"][1])


def test_missing_file_and_directory_are_refused(tmp_path):
    expect_refused(tmp_path / "absent.safetensors", "does not exist")
    expect_refused(tmp_path, "not a file")


# -- no code from files ---------------------------------------------------------------------------------
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}
# Allowed exceptions, as "path:line" with the reason. There are none.
ALLOWED: dict[str, str] = {}


def forbidden_constructs(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append((node.lineno, f"{func.id}()"))
            if isinstance(func, ast.Attribute) and func.attr in ("import_module", "__import__"):
                found.append((node.lineno, f".{func.attr}()"))
            for keyword in node.keywords:
                if keyword.arg == "allow_pickle" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    found.append((node.lineno, "allow_pickle other than False"))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, f"import {a.name}") for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES
            ]
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            imported = {a.name for a in node.names}
            if module in FORBIDDEN_MODULES or (module == "importlib" and imported & {"import_module", "__import__"}):
                found.append((node.lineno, f"from {node.module} import {', '.join(sorted(imported))}"))
    return found


def test_the_scanner_finds_what_it_looks_for():
    source = "import pickle\nfrom importlib import import_module\nx = eval('1')\nnp.load(f, allow_pickle=True)\n"
    assert [line for line, _ in forbidden_constructs(source)] == [1, 2, 3, 4]
    assert forbidden_constructs("model.eval()\nnp.load(f, allow_pickle=False)\n") == []


def test_source_never_unpickles_evaluates_or_imports_by_name():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for line, what in forbidden_constructs(text):
            where = f"{path.relative_to(SRC)}:{line}"
            if where not in ALLOWED:
                found.append(f"{where}: {what}")
        if "allow_pickle=True" in text:
            found.append(f"{path.relative_to(SRC)}: allow_pickle=True")
    assert not found, "\n".join(found)


# -- atomic, durable saving -----------------------------------------------------------------------------
def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


def assert_state_equal(loaded: dict, expected: dict) -> None:
    assert list(loaded) == list(expected)
    for key in expected:
        np.testing.assert_array_equal(loaded[key].data, expected[key].data, err_msg=key)


def two_states() -> tuple[dict, dict]:
    cr.manual_seed(1)
    state_a = nn.Linear(32, 32).state_dict()
    state_b = nn.Linear(32, 32).state_dict()
    return state_a, state_b


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch, failing):
    state_a, state_b = two_states()
    path = tmp_path / "model.safetensors"
    cr.save(state_a, path)
    real = getattr(os, failing)
    calls = []

    def full_disk(*args):
        if failing == "write" and not calls:  # the first write gets part of the way, like a disk filling up
            calls.append(args)
            return real(args[0], bytes(args[1][:100]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, failing, full_disk)
    with pytest.raises(cr.CheckpointError) as info:
        cr.save(state_b, path)
    monkeypatch.undo()
    message = str(info.value)
    assert str(path) in message and "No space left on device [ENOSPC]" in message
    assert "previous file, if any, is unchanged" in message
    assert_state_equal(cr.load(path), state_a)
    assert temp_files(tmp_path) == []


def test_an_interrupted_save_removes_its_temporary_and_reraises(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cr.save({"x": cr.ones(2)}, path)
    assert list(tmp_path.iterdir()) == []


def test_saving_into_a_missing_directory_is_a_checkpoint_error(tmp_path):
    with pytest.raises(cr.CheckpointError, match="does not exist"):
        cr.save({"x": cr.ones(2)}, tmp_path / "absent" / "model.safetensors")


def test_stale_temporaries_are_removed_by_the_next_save(tmp_path):
    path = tmp_path / "model.safetensors"
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    host = _temp_host()
    names = {
        "dead writer": f".model.safetensors.tmp-{host}-{dead_pid}-0a1b2c3d",
        "live writer": f".model.safetensors.tmp-{host}-{os.getpid()}-0a1b2c3d",
        "untouched for an hour": f".model.safetensors.tmp-{host}-{os.getpid()}-99999999",
        "another file's": f".other.safetensors.tmp-{host}-{dead_pid}-0a1b2c3d",
        "not ours": ".model.safetensors.tmp-notapid",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"partial")
    hour_ago = time.time() - 3600
    os.utime(tmp_path / names["untouched for an hour"], (hour_ago, hour_ago))
    cr.save({"x": cr.ones(2)}, path)
    kept = {label for label, name in names.items() if (tmp_path / name).exists()}
    assert kept == {"live writer", "another file's", "not ours"}


def _alive_child():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_live_foreign_writers_temporary_is_kept(tmp_path):
    """Another process on this host is still writing: its temporary survives our save."""
    child = _alive_child()
    try:
        temp = tmp_path / f".model.safetensors.tmp-{_temp_host()}-{child.pid}-0a1b2c3d"
        temp.write_bytes(b"partial")
        cr.save({"x": cr.ones(2)}, tmp_path / "model.safetensors")
        assert temp.exists()
    finally:
        child.kill()
        child.wait()
    cr.save({"x": cr.ones(2)}, tmp_path / "model.safetensors")  # now its writer is dead
    assert not temp.exists()


def test_temporaries_of_other_hosts_wait_for_the_grace_period(tmp_path):
    """A pid from another machine means nothing here: only the age may condemn its temporary."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_here = int(finished.stdout)
    fresh = tmp_path / f".model.safetensors.tmp-other-host.example-{dead_here}-0a1b2c3d"
    old = tmp_path / f".model.safetensors.tmp-other-host.example-{dead_here}-99999999"
    legacy = tmp_path / f".model.safetensors.tmp-{dead_here}-0a1b2c3d"  # no host: as foreign
    for temp in (fresh, old, legacy):
        temp.write_bytes(b"partial")
    long_ago = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(old, (long_ago, long_ago))
    cr.save({"x": cr.ones(2)}, tmp_path / "model.safetensors")
    assert fresh.exists() and legacy.exists() and not old.exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and SIGKILL (POSIX)")
def test_a_save_killed_at_any_moment_leaves_the_old_or_the_new_state(tmp_path):
    """A child saves states A and B alternately, forever; it is killed with SIGKILL at random moments."""
    state_a, state_b = two_states()
    path = tmp_path / "model.safetensors"
    cr.save(state_a, path)
    rng = np.random.default_rng(0)
    seen = {"A": 0, "B": 0}
    killed_mid_write = 0
    holds_a = True
    for _ in range(60):
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            try:
                for index in itertools.count(int(holds_a)):  # first the state the file does not hold
                    cr.save(state_b if index % 2 else state_a, path)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, 0.04))  # one save takes a few to tens of milliseconds (fsync)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        killed_mid_write += bool(temp_files(tmp_path))
        loaded = cr.load(path, nonfinite="error")
        holds_a = all(np.array_equal(loaded[k].data, state_a[k].data) for k in state_a)
        if not holds_a:
            assert_state_equal(loaded, state_b)
        seen["A" if holds_a else "B"] += 1
    assert seen["A"] and seen["B"], seen  # the children did save, and often
    assert killed_mid_write, "no kill landed during a write; the test proves nothing"
    cr.save(state_a, path)  # the writers are dead: their temporaries go
    assert temp_files(tmp_path) == []
