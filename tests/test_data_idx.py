"""The IDX reader and writer: round trips, hashes and every kind of corrupt file."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import numpy as np
import pytest

from chainrule.data import idx, images, read_idx, sha256_of_idx, write_idx
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
    "absurd size": (lambda b: b[:4] + b"\xff" * 8 + b[12:], "beyond the limit of"),
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


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _flip_deflate_byte(compressed: bytes) -> bytes:
    corrupt = bytearray(compressed)
    corrupt[12] ^= 0xFF  # inside the deflate data, after the 10-byte gzip header
    return bytes(corrupt)


def _with_crc(compressed: bytes, crc: int) -> bytes:
    return compressed[:-8] + crc.to_bytes(4, "little") + compressed[-4:]


# Corruptions of the gzip layer of the valid file: (compressed bytes, what the message says).
GZIP_CORRUPTIONS = {
    "truncated gzip": (lambda z: z[:-12], "gzip stream is truncated"),
    "gzip cut in the header": (lambda z: z[:6], "gzip stream is truncated"),
    "bad gzip crc": (lambda z: _with_crc(z, zlib.crc32(b"other")), "gzip stream is corrupt"),
    "bad gzip length": (lambda z: z[:-4] + b"\x00\x01\x00\x00", "gzip stream is corrupt"),
    "corrupt deflate data": (_flip_deflate_byte, "gzip stream"),
    "trailing garbage": (lambda z: z + b"garbage", "not gzip data"),
}


@pytest.mark.parametrize("case", list(GZIP_CORRUPTIONS))
def test_corrupt_gzip_raises_data_error_naming_file(tmp_path, case):
    corrupt, message = GZIP_CORRUPTIONS[case]
    path = tmp_path / f"broken-gz-{case.replace(' ', '-')}.gz"
    path.write_bytes(corrupt(_gzip(_valid())))
    with pytest.raises(DataError, match="broken-gz") as info:
        read_idx(path)
    assert message in str(info.value)


def test_concatenated_members_and_zero_padding_are_read(tmp_path):
    data = _valid()
    path = tmp_path / "members.gz"
    path.write_bytes(_gzip(data[:7]) + _gzip(data[7:]) + bytes(100))
    assert read_idx(path).tolist() == [[0, 1, 2], [3, 4, 5]]


def _bomb(tmp_path, header: bytes, payload_bytes: int):
    """A small .gz: ``header`` followed by ``payload_bytes`` zeros, compressed in chunks."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(header)]
    chunk = bytes(1 << 20)
    for _ in range(payload_bytes >> 20):
        parts.append(compressor.compress(chunk))
    parts.append(compressor.flush())
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(b"".join(parts))
    return path


def test_decompression_bomb_stops_at_the_declared_size(tmp_path):
    # Declares one 28×28 image; inflates to 64 MiB.
    path = _bomb(tmp_path, bytes([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28]), 64 << 20)
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"bomb-idx3-ubyte.gz: the header says 1×28×28 = 784 bytes of data") as info:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "but the file holds more than" in str(info.value)
    assert peak < 4 << 20


def test_declared_size_beyond_the_cap_is_rejected_before_decompressing(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "MAX_DATA_BYTES", 1 << 20)
    # 2000 images of 28×28 = 1.5 MB declared, over the (lowered) cap; the payload is never inflated.
    path = _bomb(tmp_path, bytes([0, 0, 8, 3, 0, 0, 7, 208, 0, 0, 0, 28, 0, 0, 0, 28]), 2 << 20)
    with pytest.raises(DataError, match=r"bomb-idx3-ubyte.gz: the header gives dimension sizes \(2000, 28, 28\)"):
        read_idx(path)


def test_raw_size_mismatch_is_caught_before_allocating(tmp_path):
    path = tmp_path / "huge-claim-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0x40, 0, 0, 0, 1, 0, 0, 0, 0, 0x80]) + bytes(10))  # 512 MiB declared
    tracemalloc.start()
    try:
        with pytest.raises(
            DataError,
            match="huge-claim-idx3-ubyte: the header says 16384×256×128 = 536870912 bytes of data "
            "but the file holds 10$",
        ):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_directory_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        read_idx(tmp_path)


# -- one split of MNIST: image and label files that do not fit together ----------------------------------
def _split(tmp_path, images_array, labels_array):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images_array)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels_array)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(2, np.uint8))


SPLIT_CORRUPTIONS = {
    "count mismatch": (
        np.zeros((3, 28, 28), np.uint8),
        np.zeros(2, np.uint8),
        r"image count of .*train-images-idx3-ubyte.gz \(3\) differs from the label count of "
        r".*train-labels-idx1-ubyte.gz \(2\)",
    ),
    "label out of range": (
        np.zeros((3, 28, 28), np.uint8),
        np.array([1, 10, 2], np.uint8),
        r"train-labels-idx1-ubyte.gz: label 1 is 10, outside the classes 0..9",
    ),
    "images not 28x28": (
        np.zeros((3, 32, 32), np.uint8),
        np.zeros(3, np.uint8),
        r"train-images-idx3-ubyte.gz: expected images of shape \(N, 28, 28\) and type uint8, got shape \(3, 32, 32\)",
    ),
    "images of floats": (
        np.zeros((3, 28, 28), np.float32),
        np.zeros(3, np.uint8),
        r"train-images-idx3-ubyte.gz: .* got shape \(3, 28, 28\) of type float32",
    ),
    "labels of two dimensions": (
        np.zeros((3, 28, 28), np.uint8),
        np.zeros((3, 1), np.uint8),
        r"train-labels-idx1-ubyte.gz: expected labels of shape \(N,\)",
    ),
}


@pytest.mark.parametrize("case", list(SPLIT_CORRUPTIONS))
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_split_that_does_not_fit_together(tmp_path, monkeypatch, case, name):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CHAINRULE_DATA", raising=False)
    images_array, labels_array, message = SPLIT_CORRUPTIONS[case]
    _split(tmp_path, images_array, labels_array)
    with pytest.raises(DataError, match=message):
        images._load_idx_set(name, tmp_path, download=False, limit=None)


def test_valid_split_with_foreign_content_fails_the_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _split(tmp_path, np.zeros((3, 28, 28), np.uint8), np.array([0, 9, 5], np.uint8))
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is not the original"):
        images._load_idx_set("mnist", tmp_path, download=False, limit=None)


def test_corpus_has_at_least_15_distinct_corrupt_files():
    assert len(CORRUPTIONS) + len(GZIP_CORRUPTIONS) + len(SPLIT_CORRUPTIONS) + 3 >= 15  # + bomb, cap, raw claim
