"""``chainrule.data.preprocess``: each step against a closed form, then whole drawings against the test set."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

from chainrule.data import DatasetInfo, prepare_image, prepare_samples, read_array, read_image, save_image
from chainrule.data import preprocess as pp
from chainrule.errors import DataError

PIL = pytest.importorskip("PIL", reason="reading images needs Pillow (the plot extra)")
from PIL import Image  # noqa: E402


# -- the steps -----------------------------------------------------------------------------------------
def test_area_resize_averages_whole_blocks():
    blocks = np.array([[1.0, 2.0], [3.0, 4.0]])
    image = np.kron(blocks, np.ones((4, 4))) + np.tile([[0.5, -0.5], [-0.5, 0.5]], (4, 4))  # block mean stays
    np.testing.assert_allclose(pp._area_resize(image, (2, 2)), blocks, atol=1e-6)


def test_area_resize_weighs_partial_pixels_by_their_share():
    weights = pp._area_weights(3, 2)  # each output covers 1.5 input pixels
    np.testing.assert_allclose(weights, [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]], atol=1e-6)
    image = np.array([[3.0, 6.0, 9.0]])
    np.testing.assert_allclose(pp._area_resize(image, (1, 2)), [[4.0, 8.0]], atol=1e-5)
    np.testing.assert_allclose(pp._area_resize(np.full((7, 5), 0.25), (20, 3)), 0.25, atol=1e-6)  # flat stays flat


def test_area_resize_keeps_the_mean():
    image = np.random.default_rng(0).random((97, 61))
    assert pp._area_resize(image, (20, 20)).mean() == pytest.approx(image.mean(), rel=1e-5)


def test_centre_of_mass_and_placement():
    box = np.zeros((20, 20))
    box[8, 9] = 1.0
    box[10, 9] = 1.0
    assert pp._centre_of_mass(box) == pytest.approx((9.0, 9.0))
    canvas = pp._place(box, (28, 28), "mass")  # MNIST: centre of mass at index (14, 14)
    assert set(zip(*np.nonzero(canvas))) == {(13, 14), (15, 14)}
    centred = pp._place(np.ones((4, 2)), (8, 8), "box")
    assert np.nonzero(centred.any(axis=1))[0].tolist() == [2, 3, 4, 5]
    assert np.nonzero(centred.any(axis=0))[0].tolist() == [3, 4]


def test_placement_stays_on_the_canvas():
    box = np.zeros((20, 20))
    box[0, 0] = 1.0  # centre of mass in a corner: the shift is clamped so the whole box stays inside
    canvas = pp._place(box, (28, 28), "mass")
    assert canvas[8, 8] == 1.0 and canvas.sum() == 1.0


def test_ink_inverts_by_the_border_and_scales_to_one():
    paper = np.full((10, 10), 0.9)
    paper[3:7, 4] = 0.3
    ink = pp._ink(paper, None, "test")
    expected = np.zeros((10, 10))
    expected[3:7, 4] = 1.0
    np.testing.assert_allclose(ink, expected, atol=1e-6)
    np.testing.assert_allclose(pp._ink(1.0 - paper, None, "test"), expected, atol=1e-6)  # light on dark as is


def test_alpha_is_the_ink_on_a_transparent_background():
    rng = np.random.default_rng(0)
    alpha = np.zeros((10, 10))
    alpha[2:8, 5] = 1.0
    colour = rng.random((10, 10))  # whatever colour lies under transparent pixels does not count
    np.testing.assert_allclose(pp._ink(colour, alpha, "test"), alpha, atol=1e-6)
    opaque = np.ones((10, 10))
    gray = np.full((10, 10), 0.8)
    gray[2:8, 5] = 0.0
    np.testing.assert_allclose(pp._ink(gray, opaque, "test"), alpha, atol=1e-6)  # opaque: read the colour


def test_bounding_box_and_square():
    ink = np.zeros((10, 12))
    ink[2:5, 3:9] = 1.0
    rows, cols = pp._bounding_box(ink)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (2, 5, 3, 9)
    square = pp._pad_to_square(ink[rows, cols])
    assert square.shape == (6, 6) and square[1:4].all() and not square[0].any() and not square[4:].any()


# -- whole images ----------------------------------------------------------------------------------------
def _stroke_on_paper(height=200, width=160, top=30, left=100):
    paper = np.ones((height, width))
    paper[top : top + 110, left : left + 20] = 0.0
    return paper


def test_position_and_scale_of_the_drawing_do_not_matter():
    small = prepare_image(_stroke_on_paper(), like="mnist")
    moved = prepare_image(_stroke_on_paper(300, 400, top=150, left=20), like="mnist")
    bigger = prepare_image(np.kron(_stroke_on_paper(), np.ones((3, 3))), like="mnist")
    np.testing.assert_allclose(moved, small, atol=1e-6)
    np.testing.assert_allclose(bigger, small, atol=1e-5)


def test_value_ranges_and_dtypes_give_the_same_sample():
    paper = _stroke_on_paper()
    expected = prepare_image(paper, like="digits")
    for image in (paper * 255, (paper * 255).astype(np.uint8), (paper * 65535).astype(np.uint16), paper > 0.5,
                  np.repeat(paper[..., None], 3, axis=2), np.dstack([paper, np.ones_like(paper)])):  # fmt: skip
        np.testing.assert_allclose(prepare_image(image, like="digits"), expected, atol=1e-6)


def test_digits_fill_their_height_and_mnist_its_20_pixel_box():
    digit = prepare_image(_stroke_on_paper(), like="digits")[0]
    assert digit.any(axis=1).all()  # like every one of scikit-learn's 1,797 digits
    sample = prepare_image(_stroke_on_paper(), like="mnist")[0]
    rows = np.flatnonzero(sample.any(axis=1))
    assert rows.max() - rows.min() + 1 == 20


def test_the_test_sets_own_images_come_back_unchanged():
    from chainrule.data import load

    images = load("digits").test.arrays[0][:50]
    prepared = np.stack([prepare_image(image, like="digits") for image in images])
    same = np.abs(prepared - images).max(axis=(1, 2, 3)) < 1e-6
    assert same.mean() > 0.7  # the rest moved by half a pixel: an odd width cannot be centred in 8 columns


def test_prepare_samples_scales_raw_counts_and_keeps_other_data_as_is():
    raw = np.arange(64, dtype=np.float64).reshape(8, 8) % 17
    np.testing.assert_allclose(prepare_samples(raw, like="digits")[0, 0], raw / 16, atol=1e-6)
    moons = DatasetInfo("moons", "classification", (2,), 2)
    np.testing.assert_array_equal(prepare_samples(np.array([[-3.0, 7.5]]), like=moons), [[-3.0, 7.5]])


def test_dataset_info_of_another_image_size():
    info = DatasetInfo("tiny", "classification", (1, 5, 7), 2)
    assert prepare_image(_stroke_on_paper(), like=info).shape == (1, 5, 7)


# -- files -----------------------------------------------------------------------------------------------
def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_a_huge_png_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(20000, 20000) + b"\0" * 100)
    with pytest.raises(DataError, match=r"20000×20000 = 400,000,000 pixels, more than the limit of 40,000,000"):
        read_image(path)


def test_a_npy_header_larger_than_its_file_is_refused(tmp_path):
    path = tmp_path / "huge.npy"
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**11,)}
    with open(path, "wb") as file:
        np.lib.format.write_array_header_1_0(file, header)
    with pytest.raises(DataError, match=r"declares shape \(100000000000,\)"):
        read_array(path)
    header["shape"] = (100, 8, 8)
    with open(path, "wb") as file:
        np.lib.format.write_array_header_1_0(file, header)
        file.write(b"\0" * 100)
    with pytest.raises(DataError, match=r"25,600 bytes\) but holds 100 bytes"):
        read_array(path)


def test_save_image_writes_what_it_is_given(tmp_path):
    images = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    path = save_image(images, tmp_path / "seen.png", scale=1)
    pixels = read_image(path)
    assert pixels.shape == (8, 3 * 8 + 2 * 2)
    np.testing.assert_allclose(pixels[:, 10:18] / 255, images[1, 0], atol=1 / 255)


# -- drawings read as well as the test set ----------------------------------------------------------------
def redraw(sample: np.ndarray, rng: np.random.Generator, side: int = 160, alpha: bool = False) -> np.ndarray:
    """A light-on-dark ``(H, W)`` sample drawn large, dark on light paper (or as alpha ink), off-centre."""
    ink = np.asarray(
        Image.fromarray(np.round(sample * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BILINEAR)
    )
    height, width = side + int(rng.integers(20, side)), side + int(rng.integers(20, side))
    top, left = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
    canvas = np.zeros((height, width), dtype=np.uint8)
    canvas[top : top + side, left : left + side] = ink
    if alpha:
        return np.dstack([np.zeros((height, width, 3), dtype=np.uint8), canvas])
    return 255 - canvas


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    pytest.importorskip("sklearn", reason="the digits data set ships with scikit-learn")
    pytest.importorskip("safetensors", reason="runs write checkpoints")
    from chainrule.cli import main

    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--epochs", "8", "--hidden", "64", "--out", str(out), "--quiet", "--no-plots"]) == 0
    return out


def test_redrawn_test_images_are_read_about_as_well_as_the_raw_arrays(digits_run):
    from chainrule.data import load
    from chainrule.train.loop import predict
    from chainrule.train.runs import load_run

    model, _ = load_run(digits_run)
    test = load("digits").test
    images, labels = test.arrays[0][:60], test.arrays[1][:60]
    rng = np.random.default_rng(0)
    raw = (predict(model, images).argmax(axis=1) == labels).mean()
    for alpha in (False, True):
        drawn = np.stack([prepare_image(redraw(image[0], rng, alpha=alpha), like="digits") for image in images])
        accuracy = (predict(model, drawn).argmax(axis=1) == labels).mean()
        assert accuracy >= raw - 0.05, (alpha, raw, accuracy)


def test_predict_a_drawing_and_show_what_the_model_saw(digits_run, tmp_path, capsys):
    from chainrule.cli import main
    from chainrule.data import load

    test = load("digits").test
    image, label = test.arrays[0][0, 0], int(test.arrays[1][0])
    drawing = tmp_path / "digit.png"
    Image.fromarray(redraw(image, np.random.default_rng(1))).save(drawing)
    shown = tmp_path / "seen.png"
    assert main(["predict", str(digits_run), str(drawing), "--show", str(shown)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{drawing}: {label} (") and f"to {shown}" in out
    seen = read_image(shown)
    assert seen.shape == (112, 112)
    np.testing.assert_allclose(seen[::14, ::14] / 255, prepare_image(read_image(drawing), like="digits")[0], atol=0.01)
    assert main(["predict", str(digits_run), str(drawing), "--show", str(drawing)]) == 1  # never the input
    assert "is one of the inputs" in capsys.readouterr().err
    assert read_image(drawing).shape != (112, 112)
    config = json.loads((digits_run / "config.json").read_text())
    assert config["data"]["name"] == "digits"
