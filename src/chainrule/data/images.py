"""Image data sets: scikit-learn's 8×8 digits, MNIST and Fashion-MNIST.

MNIST and Fashion-MNIST are read from the four standard IDX files (gzip or raw), found in the first of:
the ``root`` argument (or its ``<name>/`` subdirectory), ``$CHAINRULE_DATA/<name>/``,
``~/.cache/chainrule/<name>/`` and, for Fashion-MNIST, ``/usr/share/datasets/fashion-mnist`` (Debian's
``dataset-fashion-mnist`` package). Every file is checked against the SHA-256 of its decompressed
bytes. When no directory holds the files and ``download=True``, they are fetched into
``~/.cache/chainrule/<name>/``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

from chainrule.data.dataset import TensorDataset
from chainrule.data.idx import _read_bytes_of, _read_file
from chainrule.data.splits import DatasetInfo, Splits, split_arrays
from chainrule.errors import CheckpointError, DataError

__all__ = ["digits", "mnist", "fashion_mnist", "locate", "search_dirs", "cache_dir", "IDX_FILES"]

#: The four files of MNIST-style data sets, without the ``.gz`` suffix.
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

#: SHA-256 of the decompressed IDX bytes of each file (the hash does not depend on the compression).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

#: Download mirrors, tried in order; each serves ``<file>.gz``.
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion_mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

#: Directories searched after ``root``, ``$CHAINRULE_DATA`` and the cache, per data set.
SYSTEM_DIRS = {"mnist": [], "fashion_mnist": [Path("/usr/share/datasets/fashion-mnist")]}

CLASS_NAMES = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}

_TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


# -- digits ------------------------------------------------------------------------------------------
def digits(test_fraction: float = 0.2, seed: int = 0) -> Splits:
    """scikit-learn's 1,797 handwritten digits of 8×8 pixels, scaled to ``[0, 1]``.

    Parameters
    ----------
    test_fraction : float
        Share of samples held out for testing, after a seeded shuffle (0.2 gives 1438 / 359).
    seed : int
        Seeds the shuffle.

    Returns
    -------
    Splits
        Images ``(N, 1, 8, 8)`` float32 in ``[0, 1]`` (pixel values divided by 16), labels ``(N,)`` int64.

    Raises
    ------
    DataError
        When scikit-learn is not installed.

    Examples
    --------
    >>> train, test, info = digits()
    >>> len(train), len(test), train.arrays[0].shape[1:]
    (1438, 359, (1, 8, 8))
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise DataError(
            "digits: the digits data set ships with scikit-learn, which is not installed; "
            "pip install 'chainrule[datasets]'"
        ) from error
    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]  # (N, 1, 8, 8)
    labels = bunch.target.astype(np.int64)  # (N,)
    train, test = split_arrays((images, labels), test_fraction, seed, "digits")
    info = DatasetInfo(
        name="digits",
        task="classification",
        input_shape=(1, 8, 8),
        num_classes=10,
        class_names=[str(digit) for digit in range(10)],
        source="scikit-learn",
        metadata={"seed": seed, "test_fraction": test_fraction},
    )
    return Splits(train, test, info)


# -- finding files -----------------------------------------------------------------------------------
def cache_dir(name: str) -> Path:
    """Where downloads of ``name`` go: ``~/.cache/chainrule/<name>``.

    Examples
    --------
    >>> cache_dir("mnist").parts[-3:]
    ('.cache', 'chainrule', 'mnist')
    """
    return Path.home() / ".cache" / "chainrule" / name


def _existing_dir(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path, or a ``DataError`` naming ``what`` when it is empty or a file.

    Such a setting would otherwise be skipped in silence (and the files downloaded again); a directory that
    does not exist yet is listed among the searched ones when the files are not found.
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise DataError(f"{what} is empty; give a directory, or leave it unset")
    directory = Path(text)
    if directory.exists() and not directory.is_dir():
        raise DataError(f"{what} {str(directory)!r} is not a directory (it should hold <name>/ folders or the files)")
    return directory


def search_dirs(name: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The directories searched for data set ``name``'s files, in order.

    Examples
    --------
    >>> str(search_dirs("mnist", root="/data")[0])
    '/data'
    """
    if name not in SHA256:
        raise ValueError(f"search_dirs: unknown file data set {name!r}; known: {', '.join(SHA256)}")
    dirs: list[Path] = []
    if root is not None:
        dirs += [_existing_dir(root, "the data directory (--data-dir)"), Path(root) / name]
    env = os.environ.get("CHAINRULE_DATA")
    if env:
        dirs.append(_existing_dir(env, "CHAINRULE_DATA") / name)
    dirs.append(cache_dir(name))
    dirs += SYSTEM_DIRS[name]
    unique: list[Path] = []
    for directory in dirs:
        if directory not in unique:
            unique.append(directory)
    return unique


def _file_in(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` raw or with ``.gz``, whichever exists (raw first: it reads faster)."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def locate(name: str, root: str | os.PathLike[str] | None = None) -> Path | None:
    """The first searched directory that holds all four IDX files of ``name``, or None.

    Parameters
    ----------
    name : {"mnist", "fashion_mnist"}
        The data set.
    root : str or os.PathLike, optional
        Searched first (itself, then its ``<name>/`` subdirectory).

    Examples
    --------
    >>> import tempfile
    >>> locate("mnist", root=tempfile.mkdtemp()) is None or True
    True
    """
    for directory in search_dirs(name, root):
        if all(_file_in(directory, stem) is not None for stem in IDX_FILES):
            return directory
    return None


def _not_found(name: str, root: str | os.PathLike[str] | None, reason: str) -> DataError:
    title = _TITLES[name]
    lines = [f"{name}: the {title} files were not found ({reason}). Searched:"]
    for directory in search_dirs(name, root):
        present = [stem for stem in IDX_FILES if _file_in(directory, stem) is not None]
        state = "no such directory" if not directory.is_dir() else f"{len(present)} of 4 files"
        lines.append(f"  {directory}  ({state})")
    files = ", ".join(f"{stem}.gz" for stem in IDX_FILES)
    lines.append(
        f"Put the four files ({files}; gzip or raw) in {cache_dir(name)}/, or in <dir>/{name}/ and set "
        f"CHAINRULE_DATA=<dir>, or pass root=<dir> (--data-dir <dir> on the command line); or call "
        f"{name}(download=True) while online (the command line downloads by itself) "
        f"(fetches from {MIRRORS[name][0]})."
    )
    return DataError("\n".join(lines))


# -- downloading -------------------------------------------------------------------------------------
def _fetch(url: str, label: str) -> bytes:
    """The body at ``url``, with a progress bar on stderr when tqdm is installed."""
    import urllib.request  # here, not at the top: it pulls in ssl, email and socket (slow to import)

    with urllib.request.urlopen(url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        bar = None if tqdm is None else tqdm(total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr)
        chunks = []
        try:
            while chunk := response.read(1 << 16):
                chunks.append(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    return b"".join(chunks)


def _download(name: str, root: str | os.PathLike[str] | None) -> Path:
    """Fetch the missing files of ``name`` into its cache directory, verified; return the directory."""
    from chainrule.io import atomic_write_bytes

    target = cache_dir(name)
    target.mkdir(parents=True, exist_ok=True)
    for stem in IDX_FILES:
        if _file_in(target, stem) is not None:
            continue
        failures = []
        for mirror in MIRRORS[name]:
            url = f"{mirror}{stem}.gz"
            try:
                body = _fetch(url, f"{name}/{stem}.gz")
            except (OSError, ValueError) as error:  # urllib's URLError is an OSError
                failures.append(f"{url}: {getattr(error, 'reason', error)}")
                continue
            try:
                actual = _read_bytes_of(body, url)[1]
            except DataError as error:
                failures.append(str(error))
                continue
            if actual != SHA256[name][stem]:
                failures.append(f"{url}: SHA-256 {actual} does not match the expected {SHA256[name][stem]}")
                continue
            try:
                atomic_write_bytes(target / f"{stem}.gz", body)
            except CheckpointError as error:
                raise DataError(f"{name}: could not save the download in {target}: {error}") from error
            break
        else:
            raise _not_found(name, root, "the download failed: " + "; ".join(failures))
    return target


# -- loading -----------------------------------------------------------------------------------------
def _verify(name: str, path: Path, actual: str) -> None:
    stem = path.name.removesuffix(".gz")
    expected = SHA256[name][stem]
    if actual != expected:
        raise DataError(
            f"{name}: {path} is not the original {stem}: its decompressed SHA-256 is {actual}, "
            f"expected {expected}; delete it and download the file again"
        )


def _check_split(name: str, images_path: Path, images: np.ndarray, labels_path: Path, labels: np.ndarray) -> None:
    """The images and labels of one split fit together: 28×28 uint8 images, one label 0..9 for each.

    The hashes would catch these too; checked first so that the message names the field that is wrong.
    """
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"{name}: {images_path}: expected images of shape (N, 28, 28) and type uint8, "
            f"got shape {images.shape} of type {images.dtype}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{name}: {labels_path}: expected labels of shape (N,) and type uint8, "
            f"got shape {labels.shape} of type {labels.dtype}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{name}: the image count of {images_path} ({images.shape[0]}) differs from the label count "
            f"of {labels_path} ({labels.shape[0]})"
        )
    num_classes = len(CLASS_NAMES[name])
    if labels.max() >= num_classes:
        index = int(np.argmax(labels >= num_classes))
        raise DataError(
            f"{name}: {labels_path}: label {index} is {labels[index]}, outside the classes 0..{num_classes - 1}"
        )


def _load_idx_set(name: str, root: str | os.PathLike[str] | None, download: bool, limit: int | None) -> Splits:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise ValueError(f"{name}: limit must be a positive integer or None, got {limit!r}")
    directory = locate(name, root)
    if directory is None:
        if not download:
            raise _not_found(name, root, "download=False")
        directory = _download(name, root)
    parts = []
    for images_stem, labels_stem in (IDX_FILES[:2], IDX_FILES[2:]):
        images_path, labels_path = _file_in(directory, images_stem), _file_in(directory, labels_stem)
        if images_path is None or labels_path is None:  # locate() found all four; a file removed since
            raise _not_found(name, root, f"{images_stem} or {labels_stem} is missing from {directory}")
        images, images_sha256 = _read_file(images_path)  # (N, 28, 28) uint8
        labels, labels_sha256 = _read_file(labels_path)  # (N,) uint8
        _check_split(name, images_path, images, labels_path, labels)
        _verify(name, images_path, images_sha256)
        _verify(name, labels_path, labels_sha256)
        images, labels = images[:limit], labels[:limit]
        pixels = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]  # (N, 1, 28, 28)
        parts.append((pixels, labels.astype(np.int64)))
    info = DatasetInfo(
        name=name,
        task="classification",
        input_shape=(1, 28, 28),
        num_classes=10,
        class_names=list(CLASS_NAMES[name]),
        source=str(directory),
        metadata={"sha256": dict(SHA256[name]), "limit": limit},
    )
    return Splits(TensorDataset(*parts[0]), TensorDataset(*parts[1]), info)


def mnist(root: str | os.PathLike[str] | None = None, download: bool = True, limit: int | None = None) -> Splits:
    """MNIST handwritten digits: 60,000 training and 10,000 test images of 28×28 pixels.

    Parameters
    ----------
    root : str or os.PathLike, optional
        A directory holding the four IDX files (or a ``mnist/`` subdirectory with them), searched first.
    download : bool
        Fetch the files into ``~/.cache/chainrule/mnist/`` when no searched directory has them.
    limit : int, optional
        Keep only the first ``limit`` samples of each split.

    Returns
    -------
    Splits
        Images ``(N, 1, 28, 28)`` float32 in ``[0, 1]``, labels ``(N,)`` int64; ``info.source`` is the
        directory the files came from.

    Raises
    ------
    DataError
        When the files are missing (and cannot be downloaded, the message lists every directory searched),
        corrupt, or differ from the originals (SHA-256 of the decompressed bytes).

    Examples
    --------
    >>> try:
    ...     train, test, info = mnist(download=False, limit=10)
    ... except DataError:
    ...     pass  # the files are not on this machine
    """
    return _load_idx_set("mnist", root, download, limit)


def fashion_mnist(
    root: str | os.PathLike[str] | None = None, download: bool = True, limit: int | None = None
) -> Splits:
    """Fashion-MNIST: 70,000 28×28 images of clothing in 10 classes (Zalando Research).

    Parameters
    ----------
    root : str or os.PathLike, optional
        A directory holding the four IDX files (or a ``fashion_mnist/`` subdirectory with them).
    download : bool
        Fetch the files into ``~/.cache/chainrule/fashion_mnist/`` when no searched directory has them.
    limit : int, optional
        Keep only the first ``limit`` samples of each split.

    Returns
    -------
    Splits
        Images ``(N, 1, 28, 28)`` float32 in ``[0, 1]``, labels ``(N,)`` int64; class names in
        ``info.class_names`` ("T-shirt/top", "Trouser", ...).

    Raises
    ------
    DataError
        As for :func:`mnist`.

    Examples
    --------
    >>> try:
    ...     info = fashion_mnist(download=False, limit=10).info
    ... except DataError:
    ...     pass  # the files are not on this machine
    """
    return _load_idx_set("fashion_mnist", root, download, limit)


def sklearn_available() -> bool:
    """Whether scikit-learn (needed by :func:`digits`) can be imported, without importing it."""
    return importlib.util.find_spec("sklearn") is not None
