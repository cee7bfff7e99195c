"""Unusual images and arrays for ``chainrule predict`` and :func:`chainrule.data.prepare_image`: one table.

Every file row writes one file and runs ``chainrule predict RUN FILE`` on a small digits run. It either fails
with exit 1 and one line on stderr that names the file and what was expected, or succeeds with one line per
sample, a class and a finite percentage (``nan%`` never). Where the file holds a clearly drawn digit of the
test set, the answer must be the class the model gives the raw test array.

Every array row calls :func:`prepare_image` (or :func:`prepare_samples`) directly and expects a
``DataError`` naming what was expected, or a sample of the data set's shape in ``[0, 1]``.

Choices the table pins: the file's content decides how it is read, not its name; a blank image (nothing
drawn) is refused, a blank ``.npy`` sample is not (it is the model's own format); raw pixel values may be
0..1, 0..255 (and 0..16 for digits), never negative; channels come last.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from chainrule.cli import main
from chainrule.data import DatasetInfo, prepare_image, prepare_samples
from chainrule.errors import DataError

pytest.importorskip("PIL", reason="reading images needs Pillow (the plot extra)")
pytest.importorskip("sklearn", reason="the digits data set ships with scikit-learn")
pytest.importorskip("safetensors", reason="runs write checkpoints")
from PIL import Image

OK = None  # the row succeeds


@dataclass(frozen=True)
class FileRow:
    """``write(path)`` writes the file; ``parts`` must all be in the one-line error, or ``OK`` with ``lines``
    prediction lines (``same_class``: the answer is the model's answer on the raw test digit)."""

    name: str
    suffix: str
    write: Callable[[Path], object]
    parts: tuple[str, ...] | None
    lines: int = 1
    same_class: bool = False
    run: str = "digits"


def fails(name: str, suffix: str, write: Callable[[Path], object], *parts: str, run: str = "digits") -> FileRow:
    return FileRow(name, suffix, write, parts, run=run)


def works(
    name: str,
    suffix: str,
    write: Callable[[Path], object],
    lines: int = 1,
    same_class: bool = False,
    run: str = "digits",
) -> FileRow:
    return FileRow(name, suffix, write, OK, lines, same_class, run)


# -- what the files hold ---------------------------------------------------------------------------------
def _digit() -> np.ndarray:
    """The first test digit, light on dark in [0, 1], 8×8."""
    from chainrule.data import load

    return load("digits").test.arrays[0][0, 0]


def _paper(side: int = 160) -> np.ndarray:
    """The test digit drawn large, dark on light, off-centre on a 240×200 canvas: uint8."""
    ink = np.asarray(Image.fromarray(np.round(_digit() * 255).astype(np.uint8)).resize((side, side), Image.BILINEAR))
    canvas = np.zeros((240, 200), dtype=np.uint8)
    canvas[60 : 60 + side, 10 : 10 + side] = ink
    return 255 - canvas


def _pil(array: np.ndarray, mode: str | None = None, fmt: str = "PNG", **options: object) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        image = Image.fromarray(array)
        if mode is not None:
            image = image.convert(mode)
        image.save(path, format=fmt, **options)

    return write


def _bytes(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data() if callable(data) else data)


def _npy(array: object, **header: object) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with open(path, "wb") as file:
            np.save(file, array, allow_pickle=True)

    return write


def _npy_header(shape: tuple[int, ...], descr: str = "<f4", payload: bytes = b"") -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with open(path, "wb") as file:
            np.lib.format.write_array_header_1_0(file, {"descr": descr, "fortran_order": False, "shape": shape})
            file.write(payload)

    return write


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def _bmp_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + width * height * 3, 0, 0, 54) + info


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _rgba(alpha: np.ndarray, rgb: int = 0) -> np.ndarray:
    return np.dstack([np.full((*alpha.shape, 3), rgb, dtype=np.uint8), alpha.astype(np.uint8)])


def _line(width: int = 10000) -> np.ndarray:
    row = np.full((1, width), 255, dtype=np.uint8)
    row[0, 4000:6000] = 0
    return row


def _pickled(path: Path) -> None:
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def _fortran(path: Path) -> None:
    np.save(path, np.asfortranarray(_digit() * 16))


def _paper_float() -> np.ndarray:
    return _paper().astype(np.float64) / 255


FILE_ROWS = [
    # files that are not images, or not readable
    fails("empty file named .png", ".png", _bytes(b""), "cannot read it as an image"),
    fails("empty file named .npy", ".npy", _bytes(b""), "cannot read it as an image"),
    fails("text named .png", ".png", _bytes(b"not an image at all\n"), "cannot read it as an image"),
    fails("truncated PNG", ".png", _bytes(lambda: _png_bytes(_paper())[:300]), "cannot read it as an image"),
    fails("PNG header only", ".png", _bytes(_png_header(64, 64)), "cannot read it as an image"),
    fails("PNG header of 20000×20000", ".png", _bytes(_png_header(20000, 20000)), "20000×20000", "limit of 40,000,000"),
    fails("PNG header of 1×50000000", ".png", _bytes(_png_header(1, 50_000_000)), "1×50000000", "40,000,000"),
    fails("BMP header of 10000×10000", ".bmp", _bytes(_bmp_header(10000, 10000)), "10000×10000", "40,000,000"),
    fails("a directory", "", lambda path: path.mkdir(), "is not a file"),
    fails("nothing there", ".png", lambda path: None, "does not exist"),
    # images with nothing drawn
    fails("all white", ".png", _pil(np.full((50, 50), 255, np.uint8)), "blank", "expected a drawing"),
    fails("all black", ".png", _pil(np.zeros((50, 50), np.uint8)), "blank"),
    fails("all mid gray", ".png", _pil(np.full((50, 50), 128, np.uint8)), "blank"),
    fails("1×1 pixel", ".png", _pil(np.zeros((1, 1), np.uint8)), "blank"),
    fails("RGBA fully transparent", ".png", _pil(_rgba(np.zeros((50, 50)), rgb=200)), "blank"),
    fails(
        "faint noise only", ".png", _pil(np.full((50, 50), 250, np.uint8) - (np.eye(50, dtype=np.uint8) * 2)), "blank"
    ),
    # images in every layout Pillow gives
    works("gray PNG, dark on light", ".png", _pil(_paper()), same_class=True),
    works("gray PNG, light on dark", ".png", _pil(255 - _paper()), same_class=True),
    works("RGB PNG", ".png", _pil(_paper(), "RGB"), same_class=True),
    works(
        "RGB PNG, coloured ink on coloured paper",
        ".png",
        _pil(np.dstack([_paper(), _paper() // 2 + 100, np.full((240, 200), 180, np.uint8)])),
        same_class=True,
    ),
    works("RGBA opaque", ".png", _pil(_paper(), "RGBA"), same_class=True),
    works("RGBA ink as alpha on transparent", ".png", _pil(_rgba(255 - _paper())), same_class=True),
    works("RGBA white ink as alpha", ".png", _pil(_rgba(255 - _paper(), rgb=255)), same_class=True),
    works("gray+alpha (LA)", ".png", _pil(_paper(), "LA"), same_class=True),
    works("16-bit gray PNG", ".png", _pil(_paper().astype(np.uint16) * 257), same_class=True),
    works("palette PNG", ".png", _pil(_paper(), "P"), same_class=True),
    works("1-bit PNG", ".png", _pil(_paper(), "1"), same_class=True),
    works("JPEG", ".jpg", _pil(_paper(), fmt="JPEG", quality=80), same_class=True),
    works("CMYK JPEG (4 channels, not RGBA)", ".jpg", _pil(_paper(), "CMYK", fmt="JPEG"), same_class=True),
    works("GIF", ".gif", _pil(_paper(), fmt="GIF"), same_class=True),
    works("BMP", ".bmp", _pil(_paper(), fmt="BMP"), same_class=True),
    works("TIFF float32", ".tif", _pil(_paper().astype(np.float32) / 255, fmt="TIFF"), same_class=True),
    works("PNG named .jpg", ".jpg", _pil(_paper()), same_class=True),
    works("PNG named .npy", ".npy", _pil(_paper()), same_class=True),
    works("PNG without a suffix", "", _pil(_paper()), same_class=True),
    works("1×10000 line", ".png", _pil(_line())),
    works("10000×1 line", ".png", _pil(_line().T.copy())),
    works(
        "3×3 with one dark pixel", ".png", _pil(np.array([[255, 255, 255], [255, 0, 255], [255, 255, 255]], np.uint8))
    ),
    # .npy arrays of samples in the data set's layout
    works("npy (8, 8) in 0..1", ".npy", _npy(_digit()), same_class=True),
    works("npy (8, 8) counts 0..16", ".npy", _npy(_digit() * 16), same_class=True),
    works("npy (8, 8) int64 0..16", ".npy", _npy(np.round(_digit() * 16).astype(np.int64)), same_class=True),
    works("npy (8, 8) uint8 0..255", ".npy", _npy(np.round(_digit() * 255).astype(np.uint8)), same_class=True),
    works("npy (8, 8) float16", ".npy", _npy(_digit().astype(np.float16)), same_class=True),
    works("npy (8, 8) big-endian", ".npy", _npy(_digit().astype(">f4")), same_class=True),
    works("npy (8, 8) Fortran order", ".npy", _fortran, same_class=True),
    works("npy (8, 8) bool", ".npy", _npy(_digit() > 0.5)),
    works("npy (8, 8) all zeros (a sample, not a drawing)", ".npy", _npy(np.zeros((8, 8)))),
    works("npy (1, 8, 8)", ".npy", _npy(_digit()[None]), same_class=True),
    works("npy (3, 8, 8)", ".npy", _npy(np.stack([_digit()] * 3)), lines=3),
    works("npy (2, 1, 8, 8)", ".npy", _npy(np.stack([_digit()[None]] * 2)), lines=2),
    works("npy (64,) flattened", ".npy", _npy(_digit().ravel()), same_class=True),
    works("npy (5, 64)", ".npy", _npy(np.tile(_digit().ravel(), (5, 1))), lines=5),
    # .npy arrays that are one big image
    works("npy (240, 200) float dark on light", ".npy", _npy(_paper_float()), same_class=True),
    works("npy (240, 200, 3) uint8", ".npy", _npy(np.dstack([_paper()] * 3)), same_class=True),
    works("npy (240, 200, 4) RGBA", ".npy", _npy(_rgba(255 - _paper())), same_class=True),
    # .npy arrays that cannot be samples or images
    fails("npy of pickled objects", ".npy", _pickled, "dtype object", "never unpickled"),
    fails("npy (0, 8, 8)", ".npy", _npy(np.zeros((0, 8, 8))), "no samples", "(0, 8, 8)"),
    fails("npy (0, 28, 28)", ".npy", _npy(np.zeros((0, 28, 28))), "expected samples of digits", "(0, 28, 28)"),
    fails("npy 0-d", ".npy", _npy(np.float32(3)), "expected samples of digits of shape (1, 8, 8)", "shape ()"),
    fails("npy (7,)", ".npy", _npy(np.zeros(7)), "expected samples of digits", "(7,)"),
    fails("npy (2, 3, 8, 8)", ".npy", _npy(np.zeros((2, 3, 8, 8))), "expected samples", "(2, 3, 8, 8)"),
    fails(
        "npy (3, 200, 200) channels first", ".npy", _npy(np.zeros((3, 200, 200))), "expected samples", "(3, 200, 200)"
    ),
    fails("npy (200, 200, 5)", ".npy", _npy(np.zeros((200, 200, 5))), "expected samples", "(200, 200, 5)"),
    fails("npy (200, 200) blank", ".npy", _npy(np.ones((200, 200))), "blank"),
    fails("npy (200, 200) with NaN", ".npy", _npy(np.where(np.eye(200) > 0, np.nan, 1.0)), "200 of 40000", "NaN"),
    fails("npy (8, 8) NaN", ".npy", _npy(np.full((8, 8), np.nan)), "64 of 64 values are NaN"),
    fails("npy (8, 8) inf", ".npy", _npy(np.full((8, 8), np.inf)), "NaN or infinite"),
    fails("npy (8, 8) complex", ".npy", _npy(np.zeros((8, 8), complex)), "dtype complex128", "expected numbers"),
    fails("npy datetime64", ".npy", _npy(np.zeros((8, 8), "datetime64[s]")), "datetime64", "expected numbers"),
    fails("npy timedelta64", ".npy", _npy(np.zeros((8, 8), "timedelta64[s]")), "timedelta64", "expected numbers"),
    fails("npy strings", ".npy", _npy(np.full((8, 8), "ab")), "<U2", "expected numbers"),
    fails("npy bytes", ".npy", _npy(np.full((8, 8), b"ab")), "|S2", "expected numbers"),
    fails("npy structured", ".npy", _npy(np.zeros((8, 8), [("r", "f4"), ("g", "f4")])), "expected numbers"),
    fails("npy (8, 8) negative", ".npy", _npy(_digit() - 0.5), ">= 0", "-0.5"),
    fails("npy (8, 8) up to 1000", ".npy", _npy(_digit() * 1000), "up to 1000", "0..255"),
    fails("npy header of 10¹¹ floats", ".npy", _npy_header((10**11,)), "declares shape (100000000000,)", "100,000,000"),
    fails(
        "npy header larger than the file",
        ".npy",
        _npy_header((100, 8, 8), payload=b"\0" * 64),
        "declares shape (100, 8, 8)",
        "holds 64 bytes",
    ),
    fails("npy header of objects", ".npy", _npy_header((8, 8), descr="|O"), "object", "never unpickled"),
    fails(
        "npy magic, broken header",
        ".npy",
        _bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': <f4" + b" " * 10),
        "not a readable .npy file",
    ),
    # a run whose samples are not images
    fails("image to a moons run", ".png", _pil(_paper()), "not images", "(2,)", run="moons"),
    works("npy (2,) to a moons run, negative values kept", ".npy", _npy(np.array([-1.5, 0.25])), run="moons"),
    works("npy (4, 2) to a moons run", ".npy", _npy(np.zeros((4, 2))), lines=4, run="moons"),
    fails("npy (3,) to a moons run", ".npy", _npy(np.zeros(3)), "expected samples of moons of shape (2,)", run="moons"),
    fails("npy NaN to a moons run", ".npy", _npy(np.array([np.nan, 0.0])), "NaN", run="moons"),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for name, argv in {
        "digits": ["--hidden", "64", "--epochs", "8"],
        "moons": ["--data", "moons", "--epochs", "1"],
    }.items():
        out[name] = tmp_path_factory.mktemp(name)
        assert main(["train", *argv, "--out", str(out[name]), "--quiet", "--no-plots"]) == 0
    from chainrule.train.loop import predict
    from chainrule.train.runs import load_run

    model, _ = load_run(out["digits"])
    out["digit_class"] = str(int(predict(model, _digit()[None, None]).argmax()))
    return out


@pytest.mark.parametrize("row", FILE_ROWS, ids=[row.name for row in FILE_ROWS])
def test_predict_a_file(row, runs, tmp_path, capsys):
    path = tmp_path / f"input{row.suffix}"
    row.write(path)
    capsys.readouterr()
    code = main(["predict", str(runs[row.run]), str(path)])
    out, err = capsys.readouterr()
    if row.parts is None:
        assert code == 0, err
        lines = out.splitlines()
        assert len(lines) == row.lines, out
        assert all(line.startswith(str(path)) and "%" in line and "nan" not in line for line in lines), out
        if row.same_class:
            assert lines[0].split(": ", 1)[1].split(" (")[0] == runs["digit_class"], out
    else:
        assert code == 1 and out == "", (out, err)
        assert err.startswith("chainrule: error: predict: ") and err.count("\n") == 1, err
        assert str(path) in err, err
        for part in row.parts:
            assert part in err, (part, err)


# -- arrays for prepare_image / prepare_samples ---------------------------------------------------------
def _stroke(dtype: object = np.float64, scale: float = 1.0) -> np.ndarray:
    paper = np.ones((60, 50))
    paper[10:50, 20:26] = 0.0
    return (paper * scale).astype(dtype)


@dataclass(frozen=True)
class ArrayRow:
    name: str
    call: Callable[[], np.ndarray]
    parts: tuple[str, ...] | None  # None: a sample of shape ``shape`` in [0, 1], not all zero
    shape: tuple[int, ...] = (1, 28, 28)


def refused(name: str, call: Callable[[], np.ndarray], *parts: str) -> ArrayRow:
    return ArrayRow(name, call, parts)


def prepared(name: str, call: Callable[[], np.ndarray], shape: tuple[int, ...] = (1, 28, 28)) -> ArrayRow:
    return ArrayRow(name, call, None, shape)


MOONS = DatasetInfo("moons", "classification", (2,), 2)

ARRAY_ROWS = [
    refused("NaN", lambda: prepare_image(np.where(_stroke() > 0, np.nan, 0.0)), "NaN or infinite"),
    refused("-inf", lambda: prepare_image(np.full((5, 5), -np.inf)), "NaN or infinite"),
    refused("complex", lambda: prepare_image(_stroke().astype(complex)), "complex128", "expected real numbers"),
    refused("object", lambda: prepare_image(np.array([[1, None]], dtype=object)), "dtype object"),
    refused("datetime64", lambda: prepare_image(np.zeros((5, 5), "datetime64[D]")), "datetime64[D]"),
    refused("strings", lambda: prepare_image(np.full((5, 5), "x")), "<U1"),
    refused("structured", lambda: prepare_image(np.zeros((5, 5), [("a", "f4")])), "expected real numbers"),
    refused("nested lists of str", lambda: prepare_image([["a", "b"], ["c", "d"]]), "<U1"),
    refused("0×0", lambda: prepare_image(np.zeros((0, 0))), "empty", "(0, 0)"),
    refused("5×0", lambda: prepare_image(np.zeros((5, 0))), "empty"),
    refused("1-D", lambda: prepare_image(np.zeros(100)), "expected an image of shape (H, W)", "(100,)"),
    refused("0-d", lambda: prepare_image(np.float64(1.0)), "expected an image", "shape ()"),
    refused("4-D", lambda: prepare_image(np.zeros((2, 5, 5, 3))), "(2, 5, 5, 3)"),
    refused("channels first RGB", lambda: prepare_image(np.zeros((3, 40, 40))), "channels first?", "(40, 40, 3)"),
    refused("5 channels", lambda: prepare_image(np.zeros((40, 40, 5))), "(H, W, 4) RGBA", "(40, 40, 5)"),
    refused("negative", lambda: prepare_image(_stroke() - 0.5), ">= 0", "-0.5"),
    refused("negative int8", lambda: prepare_image(np.full((5, 5), -3, np.int8)), ">= 0", "-3"),
    refused("float above 255", lambda: prepare_image(_stroke(scale=300.0)), "up to 300", "0..255"),
    refused("int above 65535", lambda: prepare_image(_stroke(np.int64, 70000.0)), "up to 70000", "65535"),
    refused("blank float", lambda: prepare_image(np.ones((30, 30))), "blank"),
    refused("blank bool", lambda: prepare_image(np.zeros((30, 30), bool)), "blank"),
    refused("blank RGBA transparent", lambda: prepare_image(np.zeros((30, 30, 4))), "blank"),
    refused("1×1", lambda: prepare_image(np.zeros((1, 1))), "blank"),
    refused("too many pixels", lambda: prepare_image(np.zeros((1, 40_000_001), bool)), "more than 40,000,000"),
    refused("unknown data set", lambda: prepare_image(_stroke(), like="cifar10"), "like must be one of", "'mnist'"),
    refused("non-image data set", lambda: prepare_image(_stroke(), like=MOONS), "'moons'", "not one-channel images"),
    refused("named in errors", lambda: prepare_image(np.ones((9, 9)), source="digit.png"), "digit.png: "),
    refused(
        "samples: wrong shape", lambda: prepare_samples(np.zeros((28, 28)), like="digits"), "(1, 8, 8)", "(28, 28)"
    ),
    refused("samples: complex", lambda: prepare_samples(np.zeros((8, 8), complex), like="digits"), "complex128"),
    refused("samples: empty", lambda: prepare_samples(np.zeros((0, 64)), like="digits"), "no samples"),
    refused("samples: NaN", lambda: prepare_samples(np.full(64, np.nan), like="digits"), "NaN"),
    refused("samples: negative", lambda: prepare_samples(np.full(64, -1.0), like="digits"), ">= 0"),
    refused("samples: above 255", lambda: prepare_samples(np.full(784, 256.0), like="mnist"), "up to 256"),
    prepared("float 0..1", lambda: prepare_image(_stroke())),
    prepared("float 0..255", lambda: prepare_image(_stroke(scale=255.0))),
    prepared("uint8", lambda: prepare_image(_stroke(np.uint8, 255.0))),
    prepared("uint16", lambda: prepare_image(_stroke(np.uint16, 65535.0))),
    prepared("int32 0..255", lambda: prepare_image(_stroke(np.int32, 255.0))),
    prepared("float32", lambda: prepare_image(_stroke(np.float32))),
    prepared("float16", lambda: prepare_image(_stroke(np.float16))),
    prepared("bool", lambda: prepare_image(_stroke() > 0.5)),
    prepared("nested lists", lambda: prepare_image(_stroke().tolist())),
    prepared("(H, W, 1)", lambda: prepare_image(_stroke()[..., None])),
    prepared("(1, H, W)", lambda: prepare_image(_stroke()[None])),
    prepared("gray+alpha", lambda: prepare_image(np.dstack([_stroke(), np.ones((60, 50))]))),
    prepared("RGB", lambda: prepare_image(np.dstack([_stroke()] * 3))),
    prepared("RGBA ink as alpha", lambda: prepare_image(np.dstack([np.zeros((60, 50, 3)), 1 - _stroke()]))),
    prepared("digits", lambda: prepare_image(_stroke(), like="digits"), (1, 8, 8)),
    prepared("fashion_mnist", lambda: prepare_image(_stroke(), like="fashion_mnist"), (1, 28, 28)),
    prepared("1×10000 line", lambda: prepare_image(_line()), (1, 28, 28)),
    prepared("one pixel of ink", lambda: prepare_image(np.pad(np.zeros((1, 1)), 5, constant_values=1.0))),
    prepared("Fortran order", lambda: prepare_image(np.asfortranarray(_stroke()))),
    prepared("a strided view", lambda: prepare_image(np.kron(_stroke(), np.ones((2, 2)))[::2, ::2])),
    prepared("samples: raw counts", lambda: prepare_samples(np.full((2, 8, 8), 16.0), like="digits"), (2, 1, 8, 8)),
    prepared(
        "samples: uint8 MNIST", lambda: prepare_samples(np.full((28, 28), 255, np.uint8), like="mnist"), (1, 1, 28, 28)
    ),
]


@pytest.mark.parametrize("row", ARRAY_ROWS, ids=[row.name for row in ARRAY_ROWS])
def test_prepare_an_array(row):
    if row.parts is None:
        sample = row.call()
        assert sample.shape == row.shape and sample.dtype == np.float32
        assert np.isfinite(sample).all() and sample.min() >= 0 and 0 < sample.max() <= 1
        return
    with pytest.raises(DataError) as info:
        row.call()
    message = str(info.value)
    assert "\n" not in message, message
    for part in row.parts:
        assert part in message, (part, message)


def test_the_table_is_large_enough():
    assert len(FILE_ROWS) + len(ARRAY_ROWS) >= 50
