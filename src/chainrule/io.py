"""Saving and loading: arrays in safetensors, everything else as JSON in its header; never pickle.

:func:`save` takes a state dict, an optimizer state dict, or any nesting of dicts, lists and tuples whose
leaves are tensors, arrays, numbers, strings, booleans or None. The arrays go into a safetensors file;
the structure around them, with a format version, goes into the same file's metadata as JSON. Writing
is atomic: a temporary file in the same directory, flushed and fsynced, then renamed over the target.

Needs the ``safetensors`` package (``pip install 'chainrule[io]'``).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.errors import CheckpointError
from chainrule.tensor import Tensor, _wrap

__all__ = ["save", "load", "atomic_write_bytes", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_TREE_KEY = "chainrule.tree"
_VERSION_KEY = "chainrule.format_version"


def _safetensors() -> Any:
    try:
        import safetensors.numpy
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise CheckpointError(
            "saving and loading need the 'safetensors' package: pip install 'chainrule[io]'"
        ) from None
    return safetensors


def _flatten(value: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """The JSON skeleton of ``value``; arrays are moved into ``arrays`` under their path."""
    if isinstance(value, (Tensor, np.ndarray)):
        array = value.data if isinstance(value, Tensor) else value
        if array.dtype.kind not in "biuf":
            raise CheckpointError(f"save: {path or 'value'} has dtype {array.dtype}, which cannot be saved")
        key = path or "value"
        arrays[key] = np.ascontiguousarray(array)
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


def _unflatten(node: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    if isinstance(node, list):
        return [_unflatten(v, arrays, where) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) != 1:
        raise CheckpointError(f"load: {where}: malformed structure entry {sorted(node)!r}")
    ((kind, payload),) = node.items()
    if kind in ("__tensor__", "__array__"):
        if payload not in arrays:
            raise CheckpointError(f"load: {where}: the structure refers to array {payload!r}, which is not in the file")
        array = arrays[payload]
        return _wrap(array) if kind == "__tensor__" else array
    if kind == "__dict__":
        if not isinstance(payload, list) or not all(isinstance(p, list) and len(p) == 2 for p in payload):
            raise CheckpointError(f"load: {where}: malformed dictionary entry")
        result = {}
        for key, value in payload:
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise CheckpointError(f"load: {where}: dictionary key {key!r} is neither a string nor an integer")
            if key in result:
                raise CheckpointError(f"load: {where}: duplicate key {key!r}")
            result[key] = _unflatten(value, arrays, where)
        return result
    if kind == "__tuple__":
        if not isinstance(payload, list):
            raise CheckpointError(f"load: {where}: malformed tuple entry")
        return tuple(_unflatten(v, arrays, where) for v in payload)
    if kind == "__float__":
        if payload not in ("nan", "inf", "-inf"):
            raise CheckpointError(f"load: {where}: unknown float {payload!r}")
        return float(payload)
    raise CheckpointError(f"load: {where}: unknown structure entry {kind!r}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that the file is always either the old or the new content.

    The bytes go to a temporary file in the same directory, which is flushed, fsynced and renamed over
    ``path``; the directory is then fsynced so the rename survives a power cut. On any error the temporary
    file is removed and the old file is left as it was.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise CheckpointError(f"save: directory {str(directory)!r} does not exist")
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException as error:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError):
            raise CheckpointError(
                f"save: could not write {str(target)!r}: {error.strerror or error}; "
                "the previous file, if any, is unchanged"
            ) from error
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover - file systems that refuse fsync on directories
        pass
    finally:
        os.close(dir_fd)


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


def load(path: str | os.PathLike[str]) -> Any:
    """Load what :func:`save` wrote. Tensors come back as tensors, arrays as arrays. Nothing is unpickled.

    Raises
    ------
    CheckpointError
        If the file is missing, not a chainrule safetensors file, from a newer format, or corrupt.
    """
    st = _safetensors()
    name = str(path)
    if not os.path.isfile(name):
        raise CheckpointError(f"load: {name!r} does not exist or is not a file")
    try:
        with st.safe_open(name, framework="numpy") as handle:
            metadata = handle.metadata() or {}
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # safetensors reports corrupt headers and data with its own exceptions
        raise CheckpointError(f"load: {name!r} is not a valid safetensors file: {error}") from None
    version = metadata.get(_VERSION_KEY)
    if version is None or _TREE_KEY not in metadata:
        raise CheckpointError(f"load: {name!r} is a safetensors file but not one written by chainrule.save")
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise CheckpointError(
            f"load: {name!r} has format version {version!r}; this chainrule reads up to "
            f"{FORMAT_VERSION} (upgrade chainrule)"
        )
    try:
        tree = json.loads(metadata[_TREE_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"load: {name!r} has a corrupt structure header: {error}") from None
    return _unflatten(tree, {k: np.array(v) for k, v in arrays.items()}, name)
