"""The IDX file format of MNIST and Fashion-MNIST: reading, writing and content hashes.

An IDX file is a 4-byte magic number ``00 00 <type code> <ndim>``, then ``ndim`` big-endian uint32
dimension sizes, then the values in C order, big-endian. Files may be gzip-compressed; compression is
recognised by its magic bytes ``1f 8b``, never by the file name. Every malformed file raises
:class:`~chainrule.errors.DataError` naming the file and the field that is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from pathlib import Path

import numpy as np

from chainrule.errors import CheckpointError, DataError, DTypeError

__all__ = ["read_idx", "write_idx", "sha256_of_idx", "IDX_TYPES"]

#: IDX type code -> the big-endian NumPy dtype it stands for.
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND = {(dtype.kind, dtype.itemsize): code for code, dtype in IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_NDIM = 4


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's IDX bytes, decompressed when the file starts with the gzip magic bytes."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read the file: {error.strerror or error}") from error
    return _decompress(raw, path)


def _decompress(raw: bytes, path: str | os.PathLike[str]) -> bytes:
    """``raw`` decompressed when it starts with the gzip magic bytes, else unchanged."""
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise DataError(
            f"{path}: the gzip stream is truncated or corrupt ({error}); download the file again"
        ) from error


def _parse(data: bytes, path: str | os.PathLike[str]) -> np.ndarray:
    """The array in the IDX bytes ``data`` (already decompressed) read from ``path``."""
    if len(data) < 4:
        raise DataError(f"{path}: the header is truncated: the file holds {len(data)} bytes, an IDX header needs 4+")
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"{path}: not an IDX file: the magic number must start with bytes 00 00, got {data[0]:02x} {data[1]:02x}"
        )
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X} ({d.str[1:]})" for c, d in IDX_TYPES.items())
        raise DataError(f"{path}: unknown IDX type code 0x{code:02X} in the magic number; known codes: {known}")
    if not 1 <= ndim <= _MAX_NDIM:
        raise DataError(f"{path}: the magic number gives {ndim} dimensions; expected 1 to {_MAX_NDIM}")
    header_length = 4 + 4 * ndim
    if len(data) < header_length:
        raise DataError(
            f"{path}: the header is truncated: {ndim} dimensions need a {header_length}-byte header "
            f"but the file holds {len(data)} bytes"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if any(d == 0 for d in dims):
        raise DataError(f"{path}: the header gives dimension sizes {dims}; every size must be positive")
    dtype = IDX_TYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    actual = len(data) - header_length
    if actual != expected:
        sizes = "×".join(str(d) for d in dims)
        itemsize = "" if dtype.itemsize == 1 else f" × {dtype.itemsize}"
        raise DataError(
            f"{path}: the header says {sizes}{itemsize} = {expected} bytes of data but the file holds {actual}"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header_length).reshape(dims)
    return values.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed.

    Parameters
    ----------
    path : str or os.PathLike
        The file; gzip compression is detected from its first two bytes.

    Returns
    -------
    numpy.ndarray
        Shape as in the header (1 to 4 dimensions), native byte order, of dtype uint8, int8, int16,
        int32, float32 or float64 as the type code says.

    Raises
    ------
    DataError
        When the file is missing, its gzip stream is truncated, or its header or size is wrong; the
        message names the file and the field.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte.gz")
    >>> write_idx(path, np.array([7, 2, 1], np.uint8))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    return _parse(_read_bytes(path), path)


def _encode(array: np.ndarray, where: str) -> bytes:
    """The IDX bytes (uncompressed) of ``array``."""
    code = _CODE_OF_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        supported = ", ".join(d.str[1:] for d in IDX_TYPES.values())
        raise DTypeError(f"{where}: IDX cannot hold dtype {array.dtype}; supported: {supported}")
    if not 1 <= array.ndim <= _MAX_NDIM:
        raise DataError(f"{where}: IDX files hold 1 to {_MAX_NDIM} dimensions, got shape {array.shape}")
    if array.size == 0:
        raise DataError(f"{where}: IDX dimension sizes must be positive, got shape {array.shape}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzip-compressed when ``path`` ends with ``.gz``.

    The write is atomic: the bytes go to a temporary file in the same directory, which then replaces
    ``path``, so a crash never leaves a half-written file.

    Parameters
    ----------
    path : str or os.PathLike
        The destination.
    array : numpy.ndarray
        1 to 4 dimensions, all positive; dtype uint8, int8, int16, int32, float32 or float64.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "images-idx3-ubyte")
    >>> write_idx(path, np.zeros((2, 28, 28), np.uint8))
    >>> read_idx(path).shape
    (2, 28, 28)
    """
    from chainrule.io import atomic_write_bytes

    data = _encode(np.asarray(array), f"write_idx({str(path)!r})")
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    try:
        atomic_write_bytes(path, data)
    except CheckpointError as error:
        raise DataError(f"write_idx: could not write {str(path)!r}: {error}") from error


def sha256_of_idx(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of the file's decompressed IDX bytes: the same for the ``.gz`` and the raw file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> write_idx(os.path.join(folder, "a.gz"), np.arange(3, dtype=np.uint8))
    >>> write_idx(os.path.join(folder, "a"), np.arange(3, dtype=np.uint8))
    >>> sha256_of_idx(os.path.join(folder, "a.gz")) == sha256_of_idx(os.path.join(folder, "a"))
    True
    """
    return hashlib.sha256(_read_bytes(path)).hexdigest()
