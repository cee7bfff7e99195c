"""Toy generators, digits, MNIST / Fashion-MNIST files, and the registry."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from chainrule import data
from chainrule.data import images
from chainrule.errors import DataError


def _shared_data() -> Path:
    env = os.environ.get("CHAINRULE_DATA")
    # The repository's parent holds shared/ (e.g. /work/shared/data next to /work/main).
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


MNIST_DIR = _shared_data() / "mnist"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_mnist = pytest.mark.skipif(
    not all((MNIST_DIR / f"{stem}.gz").is_file() for stem in images.IDX_FILES),
    reason=f"the shared MNIST files are not in {MNIST_DIR} (set CHAINRULE_DATA to the directory holding mnist/)",
)
needs_fashion = pytest.mark.skipif(
    not FASHION_DIR.is_dir(), reason=f"{FASHION_DIR} is absent (Debian package dataset-fashion-mnist)"
)


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    """No cache and no CHAINRULE_DATA: only what a test puts in place is found."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CHAINRULE_DATA", raising=False)
    return tmp_path / "home"


# -- toy generators ------------------------------------------------------------------------------------
CLASSIFIERS = ["xor", "moons", "circles", "spirals", "blobs"]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_toy_classification_shapes_and_determinism(name):
    train, test, info = data.load(name, n_samples=200, seed=3)
    assert len(train) == 160 and len(test) == 40
    inputs, labels = train.arrays
    assert inputs.shape == (160, 2) and inputs.dtype == np.float32
    assert labels.shape == (160,) and labels.dtype == np.int64
    assert info.task == "classification" and info.input_shape == (2,)
    assert set(labels.tolist()) == set(range(info.num_classes))
    again = data.load(name, n_samples=200, seed=3)
    for first, second in zip(train.arrays + test.arrays, again.train.arrays + again.test.arrays):
        np.testing.assert_array_equal(first, second)
    other = data.load(name, n_samples=200, seed=4)
    assert not np.array_equal(other.train.arrays[0], inputs)


def test_spirals_classes_and_blobs_features():
    assert data.spirals(n_samples=100, n_classes=4).info.num_classes == 4
    train = data.blobs(n_samples=50, n_features=3, centers=5).train
    assert train.arrays[0].shape == (40, 3) and train.arrays[1].max() <= 4


def test_linear_regression_matches_its_true_model():
    train, _, info = data.linear_regression(n_samples=500, n_features=5, noise=0.1)
    inputs, targets = train.arrays
    assert inputs.shape == (400, 5) and targets.shape == (400, 1) and targets.dtype == np.float32
    assert info.task == "regression" and info.num_classes is None
    weight, bias = np.array(info.metadata["weight"]), np.array(info.metadata["bias"])
    assert weight.shape == (5,) and bias.shape == (1,)
    residual = targets[:, 0] - (inputs @ weight + bias[0])
    assert abs(residual.std() - 0.1) < 0.02


def test_toy_argument_errors():
    with pytest.raises(ValueError, match="n_samples"):
        data.xor(n_samples=0)
    with pytest.raises(ValueError, match="test_fraction"):
        data.moons(test_fraction=1.0)


# -- digits ----------------------------------------------------------------------------------------------
def test_digits():
    pytest.importorskip("sklearn", reason="digits needs scikit-learn")
    train, test, info = data.digits()
    assert len(train) == 1438 and len(test) == 359
    images_, labels = train.arrays
    assert images_.shape == (1438, 1, 8, 8) and images_.dtype == np.float32
    assert images_.min() == 0.0 and images_.max() == 1.0
    assert labels.dtype == np.int64 and info.num_classes == 10


# -- MNIST / Fashion-MNIST -------------------------------------------------------------------------------
@needs_mnist
def test_mnist_from_shared_directory(empty_home, monkeypatch):
    splits = data.mnist(root=MNIST_DIR.parent, download=False, limit=300)
    train_images, train_labels = splits.train.arrays
    assert train_images.shape == (300, 1, 28, 28) and train_images.dtype == np.float32
    assert 0.0 <= train_images.min() and train_images.max() == 1.0
    assert train_labels.dtype == np.int64 and train_labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert len(splits.test) == 300 and splits.test.arrays[1][:3].tolist() == [7, 2, 1]
    assert Path(splits.info.source) == MNIST_DIR
    # The same files through $CHAINRULE_DATA/mnist/.
    monkeypatch.setenv("CHAINRULE_DATA", str(MNIST_DIR.parent))
    assert data.locate("mnist") == MNIST_DIR


@needs_fashion
def test_fashion_mnist_from_debian_package(empty_home):
    train, test, info = data.fashion_mnist(download=False, limit=300)
    assert train.arrays[0].shape == (300, 1, 28, 28) and len(test) == 300
    assert info.class_names[0] == "T-shirt/top" and info.class_names[9] == "Ankle boot"


@needs_mnist
def test_hash_mismatch_names_file_and_hashes(tmp_path, empty_home):
    copy = tmp_path / "copy"
    copy.mkdir()
    for stem in images.IDX_FILES:
        if stem != "train-labels-idx1-ubyte":
            (copy / f"{stem}.gz").symlink_to(MNIST_DIR / f"{stem}.gz")
    labels = bytearray(gzip.decompress((MNIST_DIR / "train-labels-idx1-ubyte.gz").read_bytes()))
    labels[100] = (labels[100] + 1) % 10  # still a valid IDX file, just not the original
    (copy / "train-labels-idx1-ubyte").write_bytes(bytes(labels))
    expected = images.SHA256["mnist"]["train-labels-idx1-ubyte"]
    with pytest.raises(DataError, match="train-labels-idx1-ubyte") as info:
        data.mnist(root=copy, download=False)
    assert expected in str(info.value)
    assert "SHA-256" in str(info.value)


def test_missing_files_list_every_directory(tmp_path, empty_home, monkeypatch):
    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError) as info:
        data.mnist(root=tmp_path / "root", download=False)
    message = str(info.value)
    for directory in (tmp_path / "root", tmp_path / "env" / "mnist", empty_home / ".cache" / "chainrule" / "mnist"):
        assert str(directory) in message
    assert "CHAINRULE_DATA" in message and "train-images-idx3-ubyte.gz" in message
    assert data.locate("mnist", root=tmp_path / "root") is None


@needs_mnist
def test_download_from_mirror_into_cache(empty_home, monkeypatch):
    monkeypatch.setitem(images.MIRRORS, "mnist", ["file:///nonexistent-mirror/", MNIST_DIR.as_uri() + "/"])
    splits = data.mnist(limit=5)
    cache = empty_home / ".cache" / "chainrule" / "mnist"
    assert Path(splits.info.source) == cache
    assert all((cache / f"{stem}.gz").is_file() for stem in images.IDX_FILES)
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


def test_download_failure_is_a_data_error(empty_home, monkeypatch):
    monkeypatch.setitem(images.MIRRORS, "mnist", ["file:///nonexistent-mirror/"])
    with pytest.raises(DataError, match="download failed"):
        data.mnist(limit=5)


# -- registry --------------------------------------------------------------------------------------------
def test_registry_names_and_load_errors():
    assert list(data.DATASETS) == [
        "xor",
        "moons",
        "circles",
        "spirals",
        "blobs",
        "linear_regression",
        "digits",
        "mnist",
        "fashion_mnist",
    ]
    with pytest.raises(ValueError, match="choose one of xor, moons"):
        data.load("cifar10")
    with pytest.raises(TypeError, match="'xor' does not take n_classes"):
        data.load("xor", n_classes=3)
    assert len(data.load("xor", n_samples=50, test_fraction=0.5).test) == 25


def test_describe_lines(empty_home):
    statuses = data.describe()
    assert [s.name for s in statuses] == list(data.DATASETS)
    by_name = {s.name: s for s in statuses}
    assert by_name["xor"].available and by_name["xor"].where == "generated"
    assert not by_name["mnist"].available
    assert "chainrule train --data mnist" in by_name["mnist"].where
    lines = [str(s) for s in statuses]
    columns = {line.index(s.where) for line, s in zip(lines, statuses)}
    assert len(columns) == 1  # the "where" column is aligned
    assert "xor" in data.available() and "mnist" not in data.available()


@needs_mnist
def test_describe_finds_root(empty_home):
    status = {s.name: s for s in data.describe(root=MNIST_DIR.parent)}["mnist"]
    assert status.available and status.where == str(MNIST_DIR)
