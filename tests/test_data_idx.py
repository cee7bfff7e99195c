"""The IDX reader and writer: round trips, hashes and every kind of corrupt file."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from chainrule.data import read_idx, sha256_of_idx, write_idx
from chainrule.errors import DataError

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
SHAPES = [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, dtype, shape, suffix):
    values = (np.arange(np.prod(shape)) - 3).reshape(shape)
    if np.dtype(dtype).kind == "f":
        values = values * 0.5
    array = values.astype(dtype)
    path = tmp_path / f"array{suffix}"
    write_idx(path, array)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if suffix else b"\x00\x00")
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == shape
    np.testing.assert_array_equal(back, array)


def test_gzip_detected_by_content_not_name(tmp_path):
    write_idx(tmp_path / "plain.gz", np.arange(4, dtype=np.uint8))
    (tmp_path / "compressed").write_bytes((tmp_path / "plain.gz").read_bytes())
    assert read_idx(tmp_path / "compressed").tolist() == [0, 1, 2, 3]


def test_sha256_same_for_gz_and_raw(tmp_path):
    array = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "a", array)
    assert sha256_of_idx(tmp_path / "a.gz") == sha256_of_idx(tmp_path / "a")
    write_idx(tmp_path / "b", array + 1)
    assert sha256_of_idx(tmp_path / "b") != sha256_of_idx(tmp_path / "a")


def test_write_idx_rejects_unsupported_arrays(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        write_idx(tmp_path / "x", np.zeros(3, np.int64))
    with pytest.raises(DataError, match="dimensions"):
        write_idx(tmp_path / "x", np.zeros((1, 1, 1, 1, 1), np.uint8))
    assert not list(tmp_path.iterdir())


def _valid() -> bytes:
    # 00 00 08 02, dims 2 x 3, six ubyte values
    return bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))


CORRUPTIONS = {
    "bad magic": (lambda b: b"\x01" + b[1:], "magic"),
    "bad type code": (lambda b: b[:2] + b"\x07" + b[3:], "type code 0x07"),
    "zero dimensions": (lambda b: b[:3] + b"\x00" + b[4:], "dimensions"),
    "too many dimensions": (lambda b: b[:3] + b"\x05" + b[4:], "dimensions"),
    "truncated magic": (lambda b: b[:3], "header is truncated"),
    "truncated header": (lambda b: b[:9], "header is truncated"),
    "zero size": (lambda b: b[:4] + b"\x00\x00\x00\x00" + b[8:], "positive"),
    "truncated payload": (lambda b: b[:-1], "2×3 = 6 bytes of data but the file holds 5"),
    "extra bytes": (lambda b: b + b"\x00", "6 bytes of data but the file holds 7"),
    "empty": (lambda b: b"", "header is truncated"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
@pytest.mark.parametrize("compress", [False, True])
def test_corrupt_files_raise_data_error_naming_file(tmp_path, case, compress):
    corrupt, message = CORRUPTIONS[case]
    data = corrupt(_valid())
    path = tmp_path / f"broken-idx-{case.replace(' ', '-')}"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(DataError, match="broken-idx") as info:
        read_idx(path)
    assert message in str(info.value)


def test_multibyte_size_message(tmp_path):
    path = tmp_path / "floats-idx2"
    write_idx(path, np.zeros((2, 3), np.float32))
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(
        DataError, match=r"floats-idx2: the header says 2×3 × 4 = 24 bytes of data but the file holds 22"
    ):
        read_idx(path)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    write_idx(path, np.arange(200, dtype=np.uint8).reshape(2, 10, 10))
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*gzip"):
        read_idx(path)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        sha256_of_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothing-here"):
        read_idx(tmp_path / "nothing-here")
