"""The IDX file format of MNIST and Fashion-MNIST: reading, writing and content hashes.

An IDX file is a 4-byte magic number ``00 00 <type code> <ndim>``, then ``ndim`` big-endian uint32
dimension sizes, then the values in C order, big-endian. Files may be gzip-compressed; compression is
recognised by its magic bytes ``1f 8b``, never by the file name. Every malformed file raises
:class:`~chainrule.errors.DataError` naming the file and the field that is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import zlib
from typing import Any, BinaryIO

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
#: The most data bytes a file may declare (MNIST's training images hold 47 MB): a header asking for more
#: is rejected before anything is allocated or decompressed.
MAX_DATA_BYTES = 1 << 30
#: How much surplus data past the declared size is counted (to name it in the message) before giving up.
_MAX_SURPLUS_COUNTED = 1 << 20
_CHUNK = 1 << 16


class _GzipStream:
    """The decompressed bytes of a gzip stream, produced only as far as they are read.

    A decompression bomb therefore costs no more memory than the reader asks for. Concatenated gzip
    members are read as one stream (as ``gzip.decompress`` does); zero padding after the last member is
    allowed, any other trailing bytes are an error.
    """

    def __init__(self, compressed: BinaryIO, path: str | os.PathLike[str], prefix: bytes):
        self._compressed, self._path = compressed, path
        self._inflater = zlib.decompressobj(wbits=31)  # 31: a gzip header and CRC-32 trailer
        self._input = prefix  # compressed bytes read from the file but not yet inflated
        self._finished = False

    def _error(self, what: str) -> DataError:
        return DataError(f"{self._path}: the gzip stream is {what}; download the file again")

    def _next_member(self) -> None:
        """After the end of a member: start the next one, or finish when only zero padding is left."""
        rest = self._inflater.unused_data
        while len(rest) < 2 and (more := self._compressed.read(_CHUNK)):
            rest += more
        if rest.startswith(_GZIP_MAGIC):
            self._inflater, self._input = zlib.decompressobj(wbits=31), rest
            return
        while rest:
            if rest.strip(b"\0"):
                raise self._error("followed by bytes that are not gzip data")
            rest = self._compressed.read(_CHUNK)
        self._finished = True

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer``; fewer bytes than its length only when the stream ends first."""
        filled = 0
        while filled < len(buffer) and not self._finished:
            if self._inflater.eof:
                self._next_member()
                continue
            data = self._input or self._compressed.read(_CHUNK)
            if not data:
                raise self._error("truncated")
            try:
                chunk = self._inflater.decompress(data, len(buffer) - filled)
            except zlib.error as error:
                raise self._error(f"corrupt ({error})") from None
            self._input = self._inflater.unconsumed_tail
            buffer[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        return filled


class _RawStream:
    """An uncompressed file, with its size known up front so a wrong size is caught before allocating."""

    def __init__(self, file: Any, prefix: bytes):  # an open binary file (with readinto)
        self._file, self._prefix = file, prefix
        position = file.tell()
        self.size = len(prefix) + file.seek(0, os.SEEK_END) - position
        file.seek(position)

    def readinto(self, buffer: memoryview) -> int:
        filled = min(len(self._prefix), len(buffer))
        buffer[:filled], self._prefix = self._prefix[:filled], self._prefix[filled:]
        while filled < len(buffer) and (count := self._file.readinto(buffer[filled:])):
            filled += count
        return filled


def _read_exactly(stream: _GzipStream | _RawStream, count: int) -> bytearray:
    """Up to ``count`` bytes of ``stream``; fewer only when it ends first."""
    data = bytearray(count)
    del data[stream.readinto(memoryview(data)) :]
    return data


def _count_surplus(stream: _GzipStream | _RawStream) -> tuple[int, bool]:
    """How many bytes are left in ``stream``, counted up to a cap; and whether the cap was hit."""
    scratch = memoryview(bytearray(_CHUNK))
    surplus = 0
    while surplus <= _MAX_SURPLUS_COUNTED and (count := stream.readinto(scratch)):
        surplus += count
    return surplus, surplus > _MAX_SURPLUS_COUNTED


def _describe_size(dims: tuple[int, ...], dtype: np.dtype) -> str:
    sizes = "×".join(str(d) for d in dims)
    itemsize = "" if dtype.itemsize == 1 else f" × {dtype.itemsize}"
    return f"{sizes}{itemsize} = {math.prod(dims) * dtype.itemsize} bytes"


def _read_header(stream: _GzipStream | _RawStream, path: str | os.PathLike[str]) -> tuple[bytes, int, tuple]:
    """The header bytes, type code and dimension sizes, each field checked."""
    magic = bytes(_read_exactly(stream, 4))
    if len(magic) < 4:
        raise DataError(f"{path}: the header is truncated: the file holds {len(magic)} bytes, an IDX header needs 4+")
    if magic[0] != 0 or magic[1] != 0:
        raise DataError(
            f"{path}: not an IDX file: the magic number must start with bytes 00 00, got {magic[0]:02x} {magic[1]:02x}"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X} ({d.str[1:]})" for c, d in IDX_TYPES.items())
        raise DataError(f"{path}: unknown IDX type code 0x{code:02X} in the magic number; known codes: {known}")
    if not 1 <= ndim <= _MAX_NDIM:
        raise DataError(f"{path}: the magic number gives {ndim} dimensions; expected 1 to {_MAX_NDIM}")
    header_length = 4 + 4 * ndim
    sizes = bytes(_read_exactly(stream, 4 * ndim))
    if len(sizes) < 4 * ndim:
        raise DataError(
            f"{path}: the header is truncated: {ndim} dimensions need a {header_length}-byte header "
            f"but the file holds {4 + len(sizes)} bytes"
        )
    dims = tuple(int(d) for d in np.frombuffer(sizes, dtype=">u4"))
    if any(d == 0 for d in dims):
        raise DataError(f"{path}: the header gives dimension sizes {dims}; every size must be positive")
    dtype = IDX_TYPES[code]
    if math.prod(dims) * dtype.itemsize > MAX_DATA_BYTES:
        raise DataError(
            f"{path}: the header gives dimension sizes {dims}, {_describe_size(dims, dtype)} of data, "
            f"beyond the limit of {MAX_DATA_BYTES} bytes"
        )
    return magic + sizes, code, dims


def _read_stream(file: BinaryIO, path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
    """The array in the IDX file ``file`` (raw or gzip) and the SHA-256 of its decompressed bytes.

    The header is read first; no more than the data size it declares is ever read or decompressed.
    """
    prefix = file.read(2)
    stream = _GzipStream(file, path, prefix) if prefix == _GZIP_MAGIC else _RawStream(file, prefix)
    header, code, dims = _read_header(stream, path)
    dtype = IDX_TYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    if isinstance(stream, _RawStream) and stream.size - len(header) != expected:
        actual = stream.size - len(header)
        raise DataError(f"{path}: the header says {_describe_size(dims, dtype)} of data but the file holds {actual}")
    # np.empty commits memory only as it is written: a short gzip stream costs what it holds.
    payload = np.empty(expected, dtype=np.uint8)
    actual, capped = stream.readinto(payload.data), False  # payload.data: the array's own buffer
    if actual == expected:
        surplus, capped = _count_surplus(stream)  # also reads to the gzip trailer, checking its CRC-32
        actual += surplus
    if actual != expected:
        holds = f"more than {actual}" if actual > expected and capped else str(actual)
        raise DataError(f"{path}: the header says {_describe_size(dims, dtype)} of data but the file holds {holds}")
    digest = hashlib.sha256(header)
    digest.update(payload.data)
    values = payload.view(dtype).reshape(dims)
    if not dtype.isnative:
        values = values.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return values, digest.hexdigest()


def _read_file(path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
    """The array in the IDX file at ``path`` and the SHA-256 of its decompressed bytes."""
    try:
        with open(path, "rb") as file:
            return _read_stream(file, path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an IDX file") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read the file: {error.strerror or error}") from error


def _read_bytes_of(body: bytes, where: str) -> tuple[np.ndarray, str]:
    """As :func:`_read_file`, for the bytes of a file already in memory (a download)."""
    return _read_stream(io.BytesIO(body), where)


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
        When the file is missing, its gzip stream is truncated or corrupt, its header is wrong, its
        data size differs from what the header declares, or the header declares more than
        ``MAX_DATA_BYTES``; the message names the file and the field. Nothing beyond the declared size
        is read or decompressed, so a small ``.gz`` that inflates to gigabytes costs no memory.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte.gz")
    >>> write_idx(path, np.array([7, 2, 1], np.uint8))
    >>> read_idx(path)
    array([7, 2, 1], dtype=uint8)
    """
    return _read_file(path)[0]


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
    return _read_file(path)[1]
