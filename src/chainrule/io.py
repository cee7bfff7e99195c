"""Saving and loading: arrays in safetensors, everything else as JSON in its header; never pickle.

:func:`save` takes a state dict, an optimizer state dict, or any nesting of dicts, lists and tuples whose
leaves are tensors, arrays, numbers, strings, booleans or None. The arrays go into a safetensors file;
the structure around them, with a format version, goes into the same file's metadata as JSON.

A safetensors file is an 8-byte little-endian header length, a JSON header, then the raw array bytes::

    [ n : u64 LE ][ n bytes: {"__metadata__": {...}, "name": {"dtype": "F32", "shape": [2, 3],
                                                              "data_offsets": [0, 24]}, ...} ][ data ]

:func:`load` reads this container's header itself and checks every field before the data is decoded (header
length within the file, UTF-8 JSON without duplicate keys, known dtypes, sizes that match the offsets,
offsets that tile the data region exactly), so a corrupt or hostile file is answered with a
:class:`~chainrule.errors.CheckpointError` naming the file and the fault, and nothing in a file is ever
executed or imported; only then does the ``safetensors`` library decode the arrays. Writing is atomic and
durable (:func:`atomic_write_bytes`).

Saving and loading need the ``safetensors`` package (``pip install 'chainrule[io]'``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chainrule.errors import ArgumentError, CheckpointError
from chainrule.tensor import Tensor, _wrap

if TYPE_CHECKING:  # pragma: no cover
    from chainrule.nn.module import IncompatibleKeys, Module

__all__ = [
    "save", "load", "load_into", "atomic_write_bytes", "read_json_strict", "temp_suffix", "temp_writer_dead",
    "FORMAT_VERSION", "load_safetensors",
]  # fmt: skip

FORMAT_VERSION = 1
_TREE_KEY = "chainrule.tree"
_VERSION_KEY = "chainrule.format_version"

MAX_HEADER_BYTES = 100_000_000  # the safetensors reference implementation's own limit
_MAX_NDIM = 64  # NumPy's limit
# safetensors dtype names -> little-endian NumPy dtypes (BF16 and the F8 types have no NumPy dtype)
_DTYPES = {
    "BOOL": np.dtype("|b1"),
    "U8": np.dtype("|u1"),
    "I8": np.dtype("|i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}
_NONFINITE_CHOICES = ("warn", "error", "ignore")

STALE_TEMP_SECONDS = 15 * 60
"""A temporary file left by a writer is removed by the next save of the same path once its writer's
process on this host is gone, or once it has not been touched for this long (writers on other hosts, whose
processes cannot be seen from here)."""


def _safetensors(what: str = "saving") -> Any:
    try:
        import safetensors.numpy
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise CheckpointError(f"{what} needs the 'safetensors' package: pip install 'chainrule[io]'") from None
    return safetensors


# ---------------------------------------------------------------------------------------------------
# The structure around the arrays: a JSON tree
# ---------------------------------------------------------------------------------------------------
def _flatten(value: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """The JSON skeleton of ``value``; arrays are moved into ``arrays`` under their path."""
    if isinstance(value, (Tensor, np.ndarray)):
        array = value.data if isinstance(value, Tensor) else value
        if array.dtype.kind not in "biuf":
            raise CheckpointError(f"save: {path or 'value'} has dtype {array.dtype}, which cannot be saved")
        key = path or "value"
        # not np.ascontiguousarray, which turns a 0-d array into shape (1,)
        arrays[key] = array if array.flags.c_contiguous else array.copy(order="C")
        return {"__tensor__" if isinstance(value, Tensor) else "__array__": key}
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise CheckpointError(f"save: dictionary keys must be strings or integers, got {k!r} at {path!r}")
            items.append([k, _flatten(v, arrays, f"{path}/{k}" if path else str(k))])
        return {"__dict__": items}
    if isinstance(value, (list, tuple)):
        items = [_flatten(v, arrays, f"{path}/{i}" if path else str(i)) for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, np.generic):
        return _flatten(value.item(), arrays, path)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    raise CheckpointError(f"save: cannot save a value of type {type(value).__name__} at {path or 'top level'!r}")


def _unflatten(node: Any, arrays: dict[str, np.ndarray], used: set[str], where: str) -> Any:
    if isinstance(node, list):
        return [_unflatten(v, arrays, used, where) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) != 1:
        raise CheckpointError(f"load: {where}: malformed structure entry {_short(sorted(node))}")
    ((kind, payload),) = node.items()
    if kind in ("__tensor__", "__array__"):
        if not isinstance(payload, str) or payload not in arrays:
            raise CheckpointError(
                f"load: {where}: the structure refers to array {_short(payload)}, which is not in the file"
            )
        if payload in used:
            raise CheckpointError(f"load: {where}: the structure refers to array {_short(payload)} twice")
        used.add(payload)
        array = arrays[payload]
        return _wrap(array) if kind == "__tensor__" else array
    if kind == "__dict__":
        if not isinstance(payload, list) or not all(isinstance(p, list) and len(p) == 2 for p in payload):
            raise CheckpointError(f"load: {where}: malformed dictionary entry")
        result = {}
        for key, value in payload:
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise CheckpointError(f"load: {where}: dictionary key {_short(key)} is neither a string nor an integer")
            if key in result:
                raise CheckpointError(f"load: {where}: duplicate key {_short(key)}")
            result[key] = _unflatten(value, arrays, used, where)
        return result
    if kind == "__tuple__":
        if not isinstance(payload, list):
            raise CheckpointError(f"load: {where}: malformed tuple entry")
        return tuple(_unflatten(v, arrays, used, where) for v in payload)
    if kind == "__float__":
        if payload not in ("nan", "inf", "-inf"):
            raise CheckpointError(f"load: {where}: unknown float {_short(payload)}")
        return float(payload)
    raise CheckpointError(f"load: {where}: unknown structure entry {_short(kind)}")


# ---------------------------------------------------------------------------------------------------
# Reading the safetensors container, checking every field
# ---------------------------------------------------------------------------------------------------
class _Fault(Exception):
    """What is wrong with a file; :func:`load` adds the file's name and raises CheckpointError."""


def _strict_json(text: str | bytes, what: str) -> Any:
    """Parse JSON, rejecting duplicate keys and the non-standard constants NaN and Infinity."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise _Fault(f"{what} has the key {_short(key)} twice")
            result[key] = value
        return result

    def no_constants(name: str) -> Any:
        raise _Fault(f"{what} contains {name}, which is not JSON")

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except json.JSONDecodeError as error:
        raise _Fault(f"{what} is not valid JSON: {error}") from None
    except RecursionError:
        raise _Fault(f"{what} is nested too deeply") from None


def read_json_strict(
    path: str | os.PathLike[str],
    what: str | None = None,
    max_bytes: int = 1 << 20,
    error: type[Exception] = CheckpointError,
) -> Any:
    """The JSON document in the file ``path``, read as untrusted input.

    Strict JSON: a key given twice in one object, the non-standard constants ``NaN`` and ``Infinity``, text
    that is not UTF-8, a file larger than ``max_bytes`` and nesting deeper than the parser's recursion are all
    refused. Every failure is one ``error`` naming the file (``what``, default its quoted path).

    Parameters
    ----------
    path : str or path-like
        The file to read.
    what : str, optional
        How messages name the file (default: ``repr`` of the path).
    max_bytes : int
        The largest file accepted.
    error : type
        The exception class raised (:class:`~chainrule.errors.CheckpointError` by default).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "c.json")
    >>> _ = open(path, "w").write('{"a": 1, "a": 2}')
    >>> read_json_strict(path, "c.json")
    Traceback (most recent call last):
    ...
    chainrule.errors.CheckpointError: c.json has the key 'a' twice
    """
    what = what if what is not None else repr(os.fspath(path))
    try:
        if os.path.isdir(path):
            raise error(f"{what} is a directory, expected a JSON file")
        size = os.stat(path).st_size
        if size > max_bytes:
            raise error(f"{what} is {size:,} bytes; expected at most {max_bytes:,}")
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as failure:
        raise error(f"{what} cannot be read ({failure.strerror or failure})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} is not valid JSON: not a text file (expected UTF-8)") from None
    try:
        return _strict_json(text, what)
    except _Fault as fault:
        raise error(str(fault)) from None


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: a hostile file must not make a message huge."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _int_list(value: Any, length: int | None = None) -> bool:
    return (
        isinstance(value, list)
        and (length is None or len(value) == length)
        and all(type(v) is int for v in value)  # not bool, not float
    )


def _read_container(handle: Any, file_size: int) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The metadata and arrays of a safetensors file, after checking every field of its header."""
    prefix = handle.read(8)
    if len(prefix) < 8:
        raise _Fault(
            f"the file is {len(prefix)} bytes long, too short for a safetensors file (8 bytes of header length first)"
        )
    header_length = int.from_bytes(prefix, "little")
    if header_length > MAX_HEADER_BYTES:
        raise _Fault(f"the header length is {header_length} bytes, over the limit of {MAX_HEADER_BYTES}")
    if header_length > file_size - 8:
        raise _Fault(f"the header length is {header_length} bytes, but only {file_size - 8} bytes follow (truncated?)")
    if header_length < 2:
        raise _Fault(f"the header length is {header_length} bytes, too short for a JSON object")
    header_bytes = handle.read(header_length)
    if len(header_bytes) != header_length:
        raise _Fault("the file ended while its header was being read (was it truncated while loading?)")
    try:
        header_text = header_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Fault(f"the header is not UTF-8 (byte {error.start} of the header)") from None
    header = _strict_json(header_text, "the header")
    if not isinstance(header, dict):
        raise _Fault(f"the header is a JSON {type(header).__name__}, not an object")

    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _Fault("__metadata__ in the header is not an object of strings")

    entries = []  # (begin, end, name, dtype, shape)
    data_size = file_size - 8 - header_length
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _Fault(f"tensor {_short(name)}: expected exactly the fields dtype, shape and data_offsets")
        dtype = _DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if dtype is None:
            raise _Fault(f"tensor {_short(name)}: unknown or unsupported dtype {_short(entry['dtype'])}")
        shape = entry["shape"]
        if not _int_list(shape) or len(shape) > _MAX_NDIM:
            raise _Fault(f"tensor {_short(name)}: shape {_short(shape)} is not a list of at most {_MAX_NDIM} integers")
        if any(dim < 0 for dim in shape):
            raise _Fault(f"tensor {_short(name)}: shape {_short(shape)} has a negative dimension")
        offsets = entry["data_offsets"]
        if not _int_list(offsets, 2) or not 0 <= offsets[0] <= offsets[1]:
            raise _Fault(
                f"tensor {_short(name)}: data_offsets {_short(offsets)} are not two integers 0 <= begin <= end"
            )
        begin, end = offsets
        if end > data_size:
            raise _Fault(
                f"tensor {_short(name)}: data_offsets [{begin}, {end}] are out of bounds: "
                f"the data region has {data_size} bytes"
            )
        size = math.prod(shape) * dtype.itemsize  # Python integers: no overflow
        if size != end - begin:
            raise _Fault(
                f"tensor {_short(name)}: shape {_short(shape)} of {entry['dtype']} needs {size} bytes, "
                f"but data_offsets [{begin}, {end}] span {end - begin}"
            )
        entries.append((begin, end, name, dtype, shape))

    entries.sort(key=lambda e: (e[0], e[1]))
    position, previous = 0, None
    for begin, end, name, _, _ in entries:
        if begin < position:
            raise _Fault(f"tensor {_short(name)} overlaps tensor {_short(previous)} (bytes {begin} to {position})")
        if begin > position:
            raise _Fault(f"{begin - position} unused byte(s) in the data region before tensor {_short(name)}")
        position, previous = end, name
    if position != data_size:
        raise _Fault(f"{data_size - position} trailing byte(s) after the last tensor")

    data = handle.read(data_size + 1)
    if len(data) != data_size:
        raise _Fault("the file changed size while it was being read")
    # Every field is known good: the safetensors library decodes the arrays.
    try:
        decoded = _safetensors("loading").numpy.load(prefix + header_bytes + data)
    except CheckpointError:
        raise
    except Exception as error:  # safetensors raises its own error types
        raise _Fault(f"the safetensors library could not decode it: {error}") from None
    return metadata, {name: np.array(array, copy=True) for name, array in decoded.items()}  # writable copies


def load(path: str | os.PathLike[str], *, nonfinite: str = "warn") -> Any:
    """Load what :func:`save` wrote. Tensors come back as tensors, arrays as arrays. Nothing is unpickled.

    Every field of the file is checked before its arrays are read: see the module docstring.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.
    nonfinite : {"warn", "error", "ignore"}
        What to do when a floating-point array holds NaN or Inf: a ``RuntimeWarning`` (the default),
        a ``CheckpointError``, or nothing.

    Raises
    ------
    CheckpointError
        If the file is missing, not a chainrule safetensors file, from a newer format, or corrupt, or
        (with ``nonfinite="error"``) holds NaN or Inf. The message names the file and the fault.

    Examples
    --------
    >>> import tempfile, os
    >>> import chainrule as cr
    >>> path = os.path.join(tempfile.mkdtemp(), "state.safetensors")
    >>> cr.save({"step": 3, "weights": cr.ones(2)}, path)
    >>> cr.load(path)
    {'step': 3, 'weights': tensor([1., 1.])}
    """
    if nonfinite not in _NONFINITE_CHOICES:
        raise ArgumentError(f"load: nonfinite must be one of {_NONFINITE_CHOICES}, got {nonfinite!r}")
    name = str(path)
    metadata, arrays = _read_file("load", name)
    try:
        version = metadata.get(_VERSION_KEY)
        if version is None or _TREE_KEY not in metadata:
            raise _Fault("not written by chainrule.save (a safetensors file without chainrule metadata)")
        if not (version.isascii() and version.isdigit() and len(version) <= 9) or int(version) < 1:
            raise _Fault(f"invalid format version {_short(version)}")
        if int(version) > FORMAT_VERSION:
            raise _Fault(
                f"format version {version} is from a newer chainrule; this one reads up to "
                f"{FORMAT_VERSION} (upgrade chainrule)"
            )
        tree = _strict_json(metadata[_TREE_KEY], "the structure header")
    except _Fault as fault:
        raise CheckpointError(f"load: {name!r}: {fault}") from None

    used: set[str] = set()
    try:
        result = _unflatten(tree, arrays, used, repr(name))
    except RecursionError:
        raise CheckpointError(f"load: {name!r}: the structure header is nested too deeply") from None
    unused = sorted(set(arrays) - used)
    if unused:
        raise CheckpointError(f"load: {name!r}: the file holds arrays the structure does not mention: {_short(unused)}")

    _check_finite(name, arrays, nonfinite)
    return result


def _check_finite(name: str, arrays: dict[str, np.ndarray], nonfinite: str) -> None:
    """Warn about (or refuse, or ignore) floating-point arrays that hold NaN or Inf."""
    if nonfinite != "ignore":
        bad = [key for key, array in arrays.items() if array.dtype.kind == "f" and not np.isfinite(array).all()]
        if bad:
            message = f"load: {name!r}: NaN or Inf values in {', '.join(_short(b, 40) for b in bad[:5])}" + (
                f" and {len(bad) - 5} more arrays" if len(bad) > 5 else ""
            )
            if nonfinite == "error":
                raise CheckpointError(message)
            warnings.warn(message + " (pass nonfinite='error' to refuse such files)", RuntimeWarning, stacklevel=3)


def load_safetensors(path: str | os.PathLike[str], *, nonfinite: str = "warn") -> dict[str, Tensor]:
    """The tensors of any safetensors file by name, e.g. a PyTorch ``state_dict`` shared as safetensors.

    :func:`load` reads only files that :func:`save` wrote (it needs the structure in their metadata); this
    reads the flat ``{name: tensor}`` files other tools write, such as ``safetensors.torch.save_file(
    model.state_dict(), path)``, with the same checks of every header field (the metadata is ignored).
    chainrule's layers use PyTorch's parameter names and layouts, so the result loads into the equivalent
    chainrule model with ``load_state_dict``. The file's dtypes are kept (``load_state_dict`` converts to the
    model's); BF16 and the F8 types have no NumPy dtype and are refused.

    Parameters
    ----------
    path : str or path-like
        A safetensors file.
    nonfinite : {"warn", "error", "ignore"}
        As for :func:`load`.

    Raises
    ------
    CheckpointError
        If the file is missing or corrupt, or holds a dtype NumPy does not have, naming the file and the fault.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import safetensors.numpy
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> path = os.path.join(tempfile.mkdtemp(), "shared.safetensors")
    >>> safetensors.numpy.save_file({"weight": np.ones((2, 3), np.float32), "bias": np.zeros(2, np.float32)}, path)
    >>> state = cr.io.load_safetensors(path)
    >>> sorted(state)
    ['bias', 'weight']
    >>> nn.Linear(3, 2).load_state_dict(state)
    IncompatibleKeys(missing_keys=[], unexpected_keys=[])
    """
    if nonfinite not in _NONFINITE_CHOICES:
        raise ArgumentError(f"load_safetensors: nonfinite must be one of {_NONFINITE_CHOICES}, got {nonfinite!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentError(f"load_safetensors: path must be a file name, got {type(path).__name__} {path!r}")
    name = str(os.fspath(path))
    hint = (
        "; NumPy has no such dtype: convert in PyTorch before saving, e.g. "
        "save_file({k: v.float() for k, v in state_dict.items()}, path)"
    )
    _, arrays = _read_file("load_safetensors", name, dtype_hint=hint)
    _check_finite(name, arrays, nonfinite)
    return {key: _wrap(arrays[key]) for key in sorted(arrays)}


def _read_file(owner: str, name: str, dtype_hint: str = "") -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """The metadata and arrays of the safetensors file ``name``, or a CheckpointError naming ``owner``;
    ``dtype_hint`` is added to the message of a dtype NumPy lacks (BF16, F8)."""
    if not os.path.isfile(name):
        raise CheckpointError(f"{owner}: {name!r} does not exist or is not a file")
    try:
        with open(name, "rb") as handle:
            return _read_container(handle, os.fstat(handle.fileno()).st_size)
    except _Fault as fault:
        hint = dtype_hint if "dtype 'BF16'" in str(fault) or "dtype 'F8" in str(fault) else ""
        raise CheckpointError(f"{owner}: {name!r}: {fault}{hint}") from None
    except OSError as error:
        raise CheckpointError(f"{owner}: could not read {name!r}: {error.strerror or error}") from None


def load_into(
    module: Module, path: str | os.PathLike[str], *, strict: bool = True, nonfinite: str = "warn"
) -> IncompatibleKeys:
    """Load the state dict saved at ``path`` into ``module``: :func:`load`, then ``module.load_state_dict``.

    Unlike the two calls written out, an error about missing, unexpected or mismatched parameters
    names the file as well as the keys and shapes.

    Examples
    --------
    >>> import tempfile, os
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> cr.save(nn.Linear(3, 2).state_dict(), path)
    >>> cr.io.load_into(nn.Linear(3, 2), path)
    IncompatibleKeys(missing_keys=[], unexpected_keys=[])
    """
    state = load(path, nonfinite=nonfinite)
    if not isinstance(state, dict):
        raise CheckpointError(f"load: {str(path)!r}: holds a {type(state).__name__}, not a state dict")
    try:
        return module.load_state_dict(state, strict=strict)
    except CheckpointError as error:
        raise CheckpointError(f"load: {str(path)!r}: does not fit the model: {error}") from None


# ---------------------------------------------------------------------------------------------------
# Writing: atomic and durable
# ---------------------------------------------------------------------------------------------------
def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that the file is always either the old or the new content.

    The bytes go to a temporary file ``.<name>.tmp-<host>-<pid>-<random>`` in the same directory, which is
    fsynced and renamed over ``path`` (``os.replace``); the directory is then fsynced so that the rename
    survives a power cut. On any error the temporary file is removed, the old file is left as it was, and
    the error is raised as a ``CheckpointError`` naming the file. Temporary files of writers that were
    killed are removed by the next write of the same path (see :data:`STALE_TEMP_SECONDS`).

    Examples
    --------
    >>> import tempfile, os
    >>> from chainrule.io import atomic_write_bytes
    >>> directory = tempfile.mkdtemp()
    >>> atomic_write_bytes(os.path.join(directory, "notes.txt"), b"epoch 3")
    >>> os.listdir(directory)
    ['notes.txt']
    """
    target = Path(path)
    directory = target.parent
    if not directory.is_dir():
        raise CheckpointError(f"save: directory {str(directory)!r} does not exist")
    _remove_stale_temps(directory, target.name)
    temp = directory / f".{target.name}.tmp-{temp_suffix()}-{os.urandom(4).hex()}"
    try:
        # 0o666 lets the umask decide the permissions, as for any file the user creates.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as error:
        raise _write_error(target, error) from error
    try:
        try:
            view = memoryview(data).cast("B")
            while view:
                written = os.write(fd, view)  # may write less than asked: loop
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(error, OSError):
            raise _write_error(target, error) from error
        raise
    _fsync_directory(directory, target)


def _write_error(target: Path, error: OSError) -> CheckpointError:
    code = errno.errorcode.get(error.errno or 0)
    reason = f"{error.strerror or error}" + (f" [{code}]" if code else "")
    return CheckpointError(f"save: could not write {str(target)!r}: {reason}; the previous file, if any, is unchanged")


def _fsync_directory(directory: Path, target: Path) -> None:
    """Make the rename durable. Skipped where directories cannot be opened or synced (Windows, some FUSE)."""
    if os.name == "nt":  # pragma: no cover
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError as error:  # pragma: no cover - depends on the file system
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise CheckpointError(
                f"save: {str(target)!r} was written, but syncing its directory failed: {error.strerror or error}"
            ) from error
    finally:
        os.close(fd)


def _temp_host() -> str:
    """This machine's name as it appears in temporary file names (no ``-``, which separates the fields)."""
    import re
    import socket

    name = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname() or "localhost")[:40]
    return name or "localhost"


def temp_suffix() -> str:
    """``<host>-<pid>``: what a temporary file or directory name ends with, so that
    :func:`temp_writer_dead` can tell later whether its writer is gone."""
    return f"{_temp_host()}-{os.getpid()}"


def temp_writer_dead(host: str | None, pid: str) -> bool:
    """Whether the writer of a temporary named with ``host`` and ``pid`` (the two fields of
    :func:`temp_suffix`) is certainly gone: it ran on this host and its process no longer exists.
    A writer on another host, or of a name without a host (``None``), is never known to be dead."""
    return host == _temp_host() and pid.isdigit() and not _process_alive(int(pid))


def _remove_stale_temps(directory: Path, name: str) -> None:
    """Remove the ``.<name>.tmp-<host>-<pid>-<random>`` files of dead writers on this host, and any that
    are untouched for :data:`STALE_TEMP_SECONDS` (writers on other hosts, or in names without a host)."""
    prefix = f".{name}.tmp-"
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:  # pragma: no cover - an unreadable directory: the write itself will report it
        return
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        fields = entry.name[len(prefix) :].rsplit("-", 2)
        if len(fields) < 2 or not fields[-2].isdigit() or not fields[-1]:
            continue
        host = fields[0] if len(fields) == 3 else None  # None: an older name, host unknown
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            dead_here = temp_writer_dead(host, fields[-2])
            if age > STALE_TEMP_SECONDS or dead_here:
                os.unlink(entry.path)
        except OSError:  # another writer removed it first, or it cannot be removed: not ours to fix
            continue


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be writing (when unsure: yes)."""
    if pid <= 0:
        return False
    if pid == os.getpid() or os.name == "nt":  # another thread of ours; Windows has no signal 0
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists but belongs to another user
        return True
    return True


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Save a state dict (or any nesting of dicts/lists/tuples of tensors, arrays and plain values) to ``path``.

    Examples
    --------
    >>> import tempfile, os
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> model = nn.Linear(3, 2)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> cr.save(model.state_dict(), path)
    >>> restored = nn.Linear(3, 2)
    >>> _ = restored.load_state_dict(cr.load(path))
    >>> bool((restored.weight == model.weight).all())
    True
    """
    st = _safetensors()
    arrays: dict[str, np.ndarray] = {}
    tree = _flatten(obj, arrays, "")
    metadata = {_VERSION_KEY: str(FORMAT_VERSION), _TREE_KEY: json.dumps(tree)}
    try:
        data = st.numpy.save(arrays, metadata=metadata)
    except Exception as error:  # safetensors raises its own error types
        raise CheckpointError(f"save: could not encode {str(path)!r}: {error}") from None
    atomic_write_bytes(path, data)
