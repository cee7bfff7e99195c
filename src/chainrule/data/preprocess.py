"""Read a user's own image the way the data set's images were made, so that a model trained on it can read it.

A model trained on MNIST has only ever seen light digits on a black background, fitted into a 20×20 box and
centred by their centre of mass in 28×28; one trained on scikit-learn's digits has seen 8×8 block counts of
32×32 bitmaps whose digit fills the height. A photo or a drawing is none of that: dark ink on light paper,
a margin, off centre, hundreds of pixels wide. :func:`prepare_image` repeats the data set's own steps:

1. **Ink.** Colour becomes luminance (ITU-R 601 weights, as Pillow's ``"L"``). When the border is
   transparent, the alpha channel is the ink (a drawing exported from a canvas); otherwise transparent parts
   lie on white paper. When the border is light the image is inverted (dark on light -> light on dark).
   The border's level becomes 0 and the strongest ink 1.
2. **Crop** to the bounding box of the ink (pixels above ``INK_THRESHOLD`` after step 1).
3. **Square**: pad the box to a square, centred, so the aspect ratio is kept.
4. **Area-average** (a box filter: each output pixel is the mean of the input area it covers) down to the
   data set's box: 20×20 for MNIST, 32×32 then 4×4 block means to 8×8 for digits (how the UCI
   ``optdigits`` bitmaps were counted into 0..16), 28×28 for Fashion-MNIST.
5. **Place**: MNIST's 20×20 box goes into 28×28 at the integer shift that brings its centre of mass to the
   centre; the others are centred by their box.
6. **Scale** to the data set's range: the loaders give ``[0, 1]`` float32 for all three (digits divided by 16,
   MNIST by 255), and so does this.

:func:`read_image` and :func:`read_array` read files with their sizes checked before anything large is
allocated (the image header's width and height, the ``.npy`` header's shape against the file size), and
:func:`save_image` writes what the model saw as a PNG.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from chainrule.data.splits import DatasetInfo
from chainrule.errors import DataError

__all__ = [
    "prepare_image",
    "prepare_samples",
    "read_image",
    "read_array",
    "save_image",
    "is_npy",
    "Framing",
    "FRAMINGS",
    "MAX_PIXELS",
    "MAX_VALUES",
    "INK_THRESHOLD",
]

#: Images with more pixels than this are refused before they are decoded (40 megapixels: a 400 KB PNG of
#: 20000×20000 would otherwise take 2.4 GB and seconds to decode).
MAX_PIXELS = 40_000_000
#: ``.npy`` arrays with more values than this are refused before they are read.
MAX_VALUES = 100_000_000
#: After the ink is scaled to ``[0, 1]``, pixels above this count for the bounding box.
INK_THRESHOLD = 0.05
#: Ink whose strongest pixel differs from the background by less than this is no drawing.
MIN_CONTRAST = 0.02

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class Framing:
    """How a data set framed its images.

    Attributes
    ----------
    size : tuple of int
        The image's ``(height, width)``.
    box : int
        The longest side of the ink's bounding box is scaled to this many pixels.
    centre : {"mass", "box"}
        ``"mass"`` places the box so that its centre of mass lies at the image centre (MNIST);
        ``"box"`` centres the box itself.
    bitmap : int or None
        When set, the ink is first drawn into a ``bitmap × bitmap`` square and then averaged over
        non-overlapping blocks down to ``size`` (digits: 32×32 into 4×4 blocks).
    """

    size: tuple[int, int]
    box: int
    centre: Literal["mass", "box"] = "box"
    bitmap: int | None = None


#: The framings of the image data sets chainrule knows.
FRAMINGS: dict[str, Framing] = {
    "digits": Framing((8, 8), box=8, centre="box", bitmap=32),
    "mnist": Framing((28, 28), box=20, centre="mass"),
    "fashion_mnist": Framing((28, 28), box=28, centre="box"),
}


# -- which data set ------------------------------------------------------------------------------------
def _framing(like: str | DatasetInfo, where: str) -> tuple[Framing, tuple[int, ...]]:
    """The framing of ``like`` and the shape of one sample of it."""
    if isinstance(like, DatasetInfo):
        shape = tuple(int(n) for n in like.input_shape)
        if like.name in FRAMINGS and FRAMINGS[like.name].size == shape[-2:]:
            return FRAMINGS[like.name], shape
        if len(shape) == 2 or (len(shape) == 3 and shape[0] == 1):
            height, width = shape[-2:]
            return Framing((height, width), box=min(height, width)), shape
        raise DataError(
            f"{where}: data set {like.name!r} takes samples of shape {shape}, not one-channel images "
            "of shape (1, height, width)"
        )
    if isinstance(like, str) and like in FRAMINGS:
        return FRAMINGS[like], (1, *FRAMINGS[like].size)
    raise DataError(f"{where}: like must be one of {', '.join(map(repr, FRAMINGS))} or a DatasetInfo, got {like!r}")


# -- checking arrays -------------------------------------------------------------------------------------
def _check_numeric(array: np.ndarray, where: str) -> np.ndarray:
    """Refuse what cannot hold pixel values: non-numeric dtypes, no values, NaN or infinity, negatives."""
    kind = array.dtype.kind
    if array.dtype.names is not None or kind not in "biuf":
        raise DataError(f"{where}: expected real numbers (bool, integer or float), got dtype {array.dtype}")
    if array.size == 0:
        raise DataError(f"{where}: the array is empty (shape {array.shape})")
    if kind == "f" and not np.isfinite(array).all():
        count = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise DataError(f"{where}: {count} of {array.size} values are NaN or infinite; expected finite pixel values")
    if kind in "if" and array.min() < 0:
        raise DataError(f"{where}: expected pixel values >= 0, found {array.min()}")
    return array


def _full_scale(array: np.ndarray, where: str) -> float:
    """The value of a white pixel: 1 for bool and floats in [0, 1], 255 for 8-bit, 65535 for 16-bit."""
    if array.dtype.kind == "b":
        return 1.0
    if array.dtype == np.uint16:
        return 65535.0
    peak = float(array.max())
    if array.dtype.kind == "f" and peak <= 1.0:
        return 1.0
    if peak <= 255:
        return 255.0
    if array.dtype.kind in "iu" and peak <= 65535:
        return 65535.0
    raise DataError(
        f"{where}: pixel values go up to {peak:g}; expected 0..1 (float), 0..255 (8-bit) or 0..65535 (16-bit)"
    )


def _channels(image: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Gray levels in [0, 1] and the alpha channel (or None), both ``(H, W)`` float32."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] == 1 and array.shape[-1] not in (1, 2, 3, 4):
        array = array[0]  # one sample in the data set's own (1, H, W) layout
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (2, 3, 4)):
        hint = ""
        if array.ndim == 3 and array.shape[0] in (3, 4):
            hint = f" (channels first? np.moveaxis(image, 0, -1) gives {(*array.shape[1:], array.shape[0])})"
        raise DataError(
            f"{where}: expected an image of shape (H, W), (H, W, 3) RGB or (H, W, 4) RGBA, "
            f"channels last; got shape {array.shape}{hint}"
        )
    pixels = array.shape[0] * array.shape[1]
    if pixels > MAX_PIXELS:
        raise DataError(f"{where}: the image has {array.shape[1]}×{array.shape[0]} pixels, more than {MAX_PIXELS:,}")
    _check_numeric(array, where)
    scale = np.float32(_full_scale(array, where))
    values = array.astype(np.float32) / scale
    if values.ndim == 2:
        return values, None
    alpha = values[..., -1] if values.shape[-1] in (2, 4) else None
    color = values[..., : 3 if values.shape[-1] >= 3 else 1]
    if color.shape[-1] == 3:
        gray = color @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    else:
        gray = color[..., 0]
    return gray, alpha


def _border(image: np.ndarray) -> np.ndarray:
    """The pixels of the outermost rows and columns."""
    return np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])


def _ink(gray: np.ndarray, alpha: np.ndarray | None, where: str) -> np.ndarray:
    """Ink in [0, 1] on a background of 0: light on dark, whatever the drawing was."""
    if alpha is not None and np.median(_border(alpha)) < 0.5:
        ink = alpha  # a transparent background: whatever was painted is the ink, whatever its colour
    else:
        if alpha is not None:
            gray = gray * alpha + (1.0 - alpha)  # transparent parts lie on white paper
        ink = 1.0 - gray if np.median(_border(gray)) > 0.5 else gray  # dark on light -> light on dark
    ink = ink - np.float32(np.median(_border(ink)))
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise DataError(
            f"{where}: the image is blank (no pixel differs from the background by {MIN_CONTRAST:.0%} or more); "
            "expected a drawing on a plain background"
        )
    return np.clip(ink / np.float32(peak), 0.0, 1.0)


# -- geometry --------------------------------------------------------------------------------------------
def _bounding_box(ink: np.ndarray, threshold: float = INK_THRESHOLD) -> tuple[slice, slice]:
    """Rows and columns from the first to the last that hold ink above ``threshold``."""
    rows = np.flatnonzero((ink > threshold).any(axis=1))
    cols = np.flatnonzero((ink > threshold).any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _pad_to_square(image: np.ndarray) -> np.ndarray:
    """Zeros around ``image``, evenly on both sides of the shorter axis, so that height equals width."""
    height, width = image.shape
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = np.zeros((side, side), dtype=image.dtype)
    square[top : top + height, left : left + width] = image
    return square


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)``: output pixel ``i`` covers input ``[i·s, (i+1)·s)``, ``s = n_in / n_out``; each weight is
    the share of that interval lying in an input pixel, so every row sums to 1."""
    scale = n_in / n_out
    edges = np.arange(n_out + 1) * scale
    pixel = np.arange(n_in)
    overlap = np.minimum(edges[1:, None], pixel[None, :] + 1) - np.maximum(edges[:-1, None], pixel[None, :])
    return (np.clip(overlap, 0.0, None) / scale).astype(np.float32)


def _area_resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a 2-D image with a box filter: each output pixel is the mean of the input area it covers
    (for an integer factor, the mean of a block); separable, so two matrix products."""
    if image.shape == tuple(shape):
        return image.astype(np.float32)
    rows, cols = _area_weights(image.shape[0], shape[0]), _area_weights(image.shape[1], shape[1])
    return rows @ image.astype(np.float32) @ cols.T


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """The ink-weighted mean row and column (pixel indices)."""
    total = float(image.sum())
    rows = float(image.sum(axis=1) @ np.arange(image.shape[0])) / total
    cols = float(image.sum(axis=0) @ np.arange(image.shape[1])) / total
    return rows, cols


def _place(box: np.ndarray, size: tuple[int, int], centre: str) -> np.ndarray:
    """``box`` on a black ``size`` canvas: centred, or shifted by whole pixels so that its centre of mass lies
    at the canvas centre (as far as the canvas allows)."""
    (height, width), (box_h, box_w) = size, box.shape
    top, left = (height - box_h) / 2, (width - box_w) / 2
    if centre == "mass":  # MNIST's centres of mass lie at pixel index (14, 14) of 28×28: size / 2, not (size - 1) / 2
        rows, cols = _centre_of_mass(box)
        top, left = height / 2 - rows, width / 2 - cols
    top = min(max(math.floor(top + 0.5), 0), height - box_h)
    left = min(max(math.floor(left + 0.5), 0), width - box_w)
    canvas = np.zeros(size, dtype=np.float32)
    canvas[top : top + box_h, left : left + box_w] = box
    return canvas


# -- the public steps ----------------------------------------------------------------------------------
def prepare_image(image: np.ndarray, like: str | DatasetInfo = "mnist", *, source: str | None = None) -> np.ndarray:
    """One image, drawn or photographed, made into one sample of a data set the way its own images were made.

    Parameters
    ----------
    image : array_like
        ``(H, W)`` gray levels, ``(H, W, 2)`` gray and alpha, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, channels
        last; bool, integers (0..255, or 0..65535 for ``uint16``) or floats (0..1, or 0..255). Dark on light
        or light on dark; any size up to :data:`MAX_PIXELS`; the digit anywhere on it.
    like : {"mnist", "digits", "fashion_mnist"} or DatasetInfo
        The data set to imitate (see :data:`FRAMINGS`). Another image data set's :class:`DatasetInfo` with
        samples ``(1, H, W)`` gets its longest side fitted to the image and centred.
    source : str, optional
        What to call the image in error messages, e.g. its file name.

    Returns
    -------
    numpy.ndarray
        float32 of the data set's sample shape (``(1, 28, 28)`` for MNIST, ``(1, 8, 8)`` for digits), light
        ink on 0, scaled to ``[0, 1]`` as the loaders in :mod:`chainrule.data` scale theirs.

    Raises
    ------
    DataError
        For what cannot be an image: a dtype other than bool, integer or float; NaN or infinite values;
        negative values or values above 65535; no values; a shape that is not one of the above; more than
        :data:`MAX_PIXELS` pixels; a blank image (nothing drawn).

    Notes
    -----
    The steps, in order (the module documentation says why each one):

    1. ink: luminance; alpha is the ink where the border is transparent; inverted when the border is light;
       the border's level becomes 0 and the strongest ink 1;
    2. crop to the bounding box of pixels above :data:`INK_THRESHOLD`;
    3. pad to a square, centred (the aspect ratio is kept);
    4. area-average (box filter) to the data set's box: MNIST 20×20; digits 32×32, then the mean of each
       4×4 block gives 8×8 (the UCI optdigits counts of 0..16, divided by 16); Fashion-MNIST 28×28;
    5. place: MNIST's box at the whole-pixel shift that brings its centre of mass to the centre of 28×28,
       the others centred.

    Examples
    --------
    A dark "1" drawn off-centre on white paper, read like MNIST:

    >>> import numpy as np
    >>> paper = np.ones((200, 160))
    >>> paper[30:140, 100:120] = 0.0
    >>> sample = prepare_image(paper, like="mnist")
    >>> sample.shape, sample.dtype
    ((1, 28, 28), dtype('float32'))
    >>> float(sample[0, 0, 0]), float(sample.max())  # light ink on black, in [0, 1]
    (0.0, 1.0)
    >>> rows, cols = np.nonzero(sample[0])
    >>> int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())  # 20 rows tall, in the middle
    (4, 23, 12, 15)

    The same stroke read like scikit-learn's 8×8 digits fills their height:

    >>> digit = prepare_image(paper, like="digits")
    >>> digit.shape, np.nonzero(digit[0].any(axis=1))[0].tolist()
    ((1, 8, 8), [0, 1, 2, 3, 4, 5, 6, 7])
    """
    where = "prepare_image" if source is None else source
    framing, shape = _framing(like, where)
    gray, alpha = _channels(image, where)
    ink = _ink(gray, alpha, where)
    square = _pad_to_square(ink[_bounding_box(ink)])
    if framing.bitmap is not None:  # draw into the bitmap, then count each block's ink
        bitmap = _area_resize(square, (framing.bitmap, framing.bitmap))
        block_h, block_w = framing.bitmap // framing.size[0], framing.bitmap // framing.size[1]
        box = bitmap.reshape(framing.size[0], block_h, framing.size[1], block_w).mean(axis=(1, 3))
    else:
        box = _area_resize(square, (framing.box, framing.box))
    sample = _place(box, framing.size, framing.centre)
    return np.clip(sample, 0.0, 1.0).astype(np.float32).reshape(shape)


def prepare_samples(array: np.ndarray, like: str | DatasetInfo, *, source: str | None = None) -> np.ndarray:
    """Samples already in a data set's own layout, checked and scaled to the loader's range.

    Parameters
    ----------
    array : array_like
        One sample (e.g. ``(8, 8)`` or ``(1, 8, 8)`` for digits, ``(64,)`` flattened) or a stack of them
        (``(N, 8, 8)``, ``(N, 1, 8, 8)``, ``(N, 64)``). For image data sets the values may be in ``[0, 1]``,
        or raw: 0..16 for digits (scikit-learn's counts) or 0..255 (8-bit pixels), and are scaled to
        ``[0, 1]``; for other data sets they are taken as they are.
    like : {"mnist", "digits", "fashion_mnist"} or DatasetInfo
        The data set whose samples these are.
    source : str, optional
        What to call the array in error messages.

    Returns
    -------
    numpy.ndarray
        ``(N, *input_shape)`` float32.

    Raises
    ------
    DataError
        For a dtype other than bool, integer or float, no values, NaN or infinity, a shape whose trailing
        axes are not one sample, or (image data sets) values below 0 or above 255.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> raw = load_digits().images[:3]  # 0..16
    >>> samples = prepare_samples(raw, like="digits")
    >>> samples.shape, float(samples.max())
    ((3, 1, 8, 8), 1.0)
    """
    where = "prepare_samples" if source is None else source
    if isinstance(like, DatasetInfo):
        shape, name = tuple(int(n) for n in like.input_shape), like.name
        is_image = (len(shape) == 3 and shape[0] == 1) or len(shape) == 2
    else:
        shape = _framing(like, where)[1]
        name, is_image = like, True
    array = np.asarray(array)
    if array.dtype.names is not None or array.dtype.kind not in "biuf":
        raise DataError(f"{where}: expected real numbers (bool, integer or float), got dtype {array.dtype}")
    size = math.prod(shape)
    layouts = [shape, shape[-2:] if is_image else shape, (size,)]
    for layout in layouts:
        if array.shape[array.ndim - len(layout) :] == tuple(layout) and array.ndim <= len(layout) + 1:
            break
    else:
        raise DataError(
            f"{where}: expected samples of {name} of shape {shape} (or a stack of them, N first), got shape "
            f"{array.shape}"
        )
    if array.size == 0:
        raise DataError(f"{where}: the array holds no samples (shape {array.shape})")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        count = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise DataError(f"{where}: {count} of {array.size} values are NaN or infinite; expected finite values")
    values = array.astype(np.float32).reshape(-1, *shape)
    if not is_image:
        return values
    low, peak = float(values.min()), float(values.max())
    if low < 0:
        raise DataError(f"{where}: expected pixel values >= 0 (0..1, or raw 0..255), found {low:g}")
    if peak > 1.0:
        if name == "digits" and peak <= 16:
            values = values / np.float32(16.0)  # scikit-learn's counts of ink in 4×4 blocks
        elif peak <= 255:
            values = values / np.float32(255.0)
        else:
            raise DataError(f"{where}: pixel values go up to {peak:g}; expected 0..1, or raw 0..255")
    return values


# -- files -----------------------------------------------------------------------------------------------
def _too_many_pixels(width: int, height: int, where: str) -> DataError:
    return DataError(
        f"{where}: the image is {width}×{height} = {width * height:,} pixels, more than the limit of "
        f"{MAX_PIXELS:,}; scale it down first"
    )


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """The pixels of an image file (PNG, JPEG, BMP, GIF, ... whatever Pillow reads), sized before decoding.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Its content decides the format, not its name.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8 gray, ``(H, W, 3)`` uint8 RGB, ``(H, W, 4)`` uint8 RGBA (when the image has
        transparency), ``(H, W)`` uint16 (16-bit gray), ``(H, W)`` int32 or float32 (32-bit modes). Palette,
        CMYK, YCbCr and other modes are converted to RGB(A) by Pillow. Only the first frame of an animation.

    Raises
    ------
    DataError
        When the file is missing, is not an image Pillow can read, is truncated, or has more than
        :data:`MAX_PIXELS` pixels (checked from the header, before decoding).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "dot.png"
    >>> Image.fromarray(np.full((3, 5), 255, dtype=np.uint8)).save(path)
    >>> read_image(path).shape
    (3, 5)
    """
    path = Path(path)
    where = f"{str(path)!r}"
    try:
        with open(path, "rb") as file:
            head = file.read(24)
    except OSError as error:
        raise DataError(f"{where}: cannot read the file: {error.strerror or error}") from None
    if head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":  # width and height at a fixed offset
        width, height = struct.unpack(">II", head[16:24])
        if width * height > MAX_PIXELS:
            raise _too_many_pixels(width, height, where)
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"{where}: reading images needs Pillow: pip install 'chainrule[plot]'") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit applies
        try:
            with Image.open(path) as opened:  # reads the header only
                width, height = opened.size
                if width * height > MAX_PIXELS:
                    raise _too_many_pixels(width, height, where)
                return _pixels(opened)
        except DataError:
            raise
        except Image.DecompressionBombError as error:
            raise DataError(f"{where}: {error}") from None
        except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ... for broken files
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DataError(f"{where}: cannot read it as an image ({message})") from None


def _pixels(image: object) -> np.ndarray:
    """A Pillow image's pixels as an array, in one of the layouts :func:`read_image` promises."""
    mode = image.mode  # type: ignore[attr-defined]
    if mode.startswith("I;16"):
        return np.asarray(image, dtype=np.uint16)
    if mode in ("I", "F", "L"):
        return np.asarray(image)
    transparent = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info  # type: ignore[attr-defined]
    return np.asarray(image.convert("RGBA" if transparent else "RGB"))  # type: ignore[attr-defined]


def read_array(path: str | os.PathLike[str]) -> np.ndarray:
    """A ``.npy`` array, its header checked against the file before anything is allocated; never unpickles.

    Raises
    ------
    DataError
        When the file is not a ``.npy`` file, holds Python objects or a structured dtype, declares more
        values than :data:`MAX_VALUES` or more bytes than the file holds.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
    >>> np.save(path, np.zeros((2, 8, 8)))
    >>> read_array(path).shape
    (2, 8, 8)
    """
    path = Path(path)
    where = f"{str(path)!r}"
    fmt = np.lib.format
    try:
        with open(path, "rb") as file:
            try:
                version = fmt.read_magic(file)
                if version == (1, 0):
                    shape, _fortran, dtype = fmt.read_array_header_1_0(file)
                elif version == (2, 0):
                    shape, _fortran, dtype = fmt.read_array_header_2_0(file)
                else:
                    raise ValueError(f"format version {version[0]}.{version[1]} (1.0 and 2.0 are read)")
            except Exception as error:  # NumPy's header parser raises ValueError, SyntaxError, TokenError, ...
                message = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise DataError(f"{where}: not a readable .npy file: {message}") from None
            if dtype.hasobject or dtype.names is not None or dtype.kind not in "biuf":
                raise DataError(
                    f"{where}: holds dtype {dtype}; expected numbers (bool, integer or float); "
                    "Python objects are never unpickled"
                )
            count = math.prod(shape)
            if count > MAX_VALUES:
                raise DataError(f"{where}: declares shape {shape} = {count:,} values, more than {MAX_VALUES:,}")
            available = os.fstat(file.fileno()).st_size - file.tell()
            if count * dtype.itemsize > available:
                raise DataError(
                    f"{where}: declares shape {shape} of {dtype} ({count * dtype.itemsize:,} bytes) but holds "
                    f"{available:,} bytes after its header (truncated?)"
                )
            file.seek(0)
            return np.load(file, allow_pickle=False)
    except OSError as error:
        raise DataError(f"{where}: cannot read the file: {error.strerror or error}") from None


def is_npy(path: str | os.PathLike[str]) -> bool:
    """Whether the file starts with the ``.npy`` magic string (whatever its name says)."""
    try:
        with open(path, "rb") as file:
            return file.read(len(_NPY_MAGIC)) == _NPY_MAGIC
    except OSError:
        return False


def save_image(images: np.ndarray, path: str | os.PathLike[str], *, scale: int | None = None) -> Path:
    """Write images with values in ``[0, 1]`` (0 black, 1 white) side by side as one PNG, atomically.

    Parameters
    ----------
    images : array_like
        ``(H, W)``, ``(N, H, W)`` or ``(N, 1, H, W)``.
    path : str or os.PathLike
        Where to write; must end in ``.png``. The file appears complete or not at all.
    scale : int, optional
        Each pixel becomes a ``scale × scale`` square (default: about 112 pixels per image side).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = save_image(np.eye(8), pathlib.Path(tempfile.mkdtemp()) / "eye.png", scale=2)
    >>> read_image(path).shape
    (16, 16)
    """
    from chainrule.io import atomic_write_bytes

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise DataError(f"save_image: {str(path)!r} must end in .png")
    array = np.asarray(images, dtype=np.float32)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.size == 0:
        raise DataError(f"save_image: expected (H, W), (N, H, W) or (N, 1, H, W) images, got shape {array.shape}")
    count, height, width = array.shape
    scale = scale or max(1, 112 // max(height, width))
    gap = 2  # gray lines between the images
    grid = np.full((height * scale, count * (width * scale + gap) - gap), 128, dtype=np.uint8)
    tiles = np.clip(np.nan_to_num(array) * 255 + 0.5, 0, 255).astype(np.uint8).repeat(scale, 1).repeat(scale, 2)
    for i, tile in enumerate(tiles):
        left = i * (width * scale + gap)
        grid[:, left : left + width * scale] = tile
    try:
        from PIL import Image
    except ImportError:
        raise DataError("save_image: writing PNG images needs Pillow: pip install 'chainrule[plot]'") from None
    import io

    buffer = io.BytesIO()
    Image.fromarray(grid).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return path
