"""DataLoader, datasets, random_split and transforms."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import (
    DataLoader,
    Dataset,
    Standardize,
    Subset,
    TensorDataset,
    flatten,
    one_hot,
    random_split,
    scale_to_unit,
)
from chainrule.errors import DataError, ShapeError


def _dataset(n: int = 10) -> TensorDataset:
    return TensorDataset(np.arange(n * 2, dtype=np.float32).reshape(n, 2), np.arange(n))


def _epoch_order(loader: DataLoader) -> list[int]:
    return [int(i) for _, labels in loader for i in labels.data]


class _Squares(Dataset):
    """A data set without get_batch: the loader must stack samples."""

    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return np.full(3, index, np.float64), index * index


# -- TensorDataset, Subset ---------------------------------------------------------------------------
def test_tensor_dataset_accepts_tensors_and_checks_first_dimension():
    ds = TensorDataset(cr.tensor([[1.0, 2.0], [3.0, 4.0]]), np.array([0, 1]))
    assert all(isinstance(a, np.ndarray) for a in ds.arrays)
    assert len(ds) == 2 and ds[1][1] == 1
    with pytest.raises(ShapeError, match=r"\(3, 2\).*\(4,\)"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))


def test_subset_get_batch_maps_indices():
    part = Subset(_dataset(), [9, 3, 5])
    (inputs, labels) = part.get_batch(np.array([2, 0]))
    assert labels.tolist() == [5, 9]
    assert inputs.shape == (2, 2)


# -- DataLoader ----------------------------------------------------------------------------------------
def test_shuffled_batches_cover_every_index_once():
    loader = DataLoader(_dataset(23), batch_size=5, shuffle=True, seed=1)
    order = _epoch_order(loader)
    assert sorted(order) == list(range(23))
    assert order != list(range(23))
    assert len(loader) == 5
    assert [len(labels.data) for _, labels in loader] == [5, 5, 5, 5, 3]


def test_drop_last():
    loader = DataLoader(_dataset(23), batch_size=5, drop_last=True)
    assert len(loader) == 4
    assert [len(labels.data) for _, labels in loader] == [5, 5, 5, 5]
    assert len(DataLoader(_dataset(20), batch_size=5, drop_last=True)) == 4


def test_same_seed_same_order_new_epoch_new_order():
    first = DataLoader(_dataset(50), batch_size=7, shuffle=True, seed=3)
    second = DataLoader(_dataset(50), batch_size=7, shuffle=True, seed=np.random.default_rng(3))
    epoch1, epoch2 = _epoch_order(first), _epoch_order(first)
    assert epoch1 != epoch2
    assert _epoch_order(second) == epoch1
    assert _epoch_order(second) == epoch2
    assert isinstance(first.generator, np.random.Generator)


def test_seed_none_follows_manual_seed_even_after_construction():
    loader = DataLoader(_dataset(50), batch_size=7, shuffle=True)
    cr.manual_seed(0)
    first = _epoch_order(loader)
    assert loader.generator is cr.default_generator()
    cr.manual_seed(0)  # replaces the global generator object; the loader must follow it
    assert _epoch_order(loader) == first
    assert loader.generator is cr.default_generator()
    assert _epoch_order(loader) != first


def test_unshuffled_batches_are_read_only_views():
    ds = _dataset(10)
    inputs, labels = next(iter(DataLoader(ds, batch_size=4)))
    assert isinstance(inputs, cr.Tensor) and isinstance(labels, cr.Tensor)
    assert np.shares_memory(inputs.data, ds.arrays[0])
    with pytest.raises(ValueError):
        inputs.data[0, 0] = 99.0
    assert ds.arrays[0][0, 0] == 0.0
    shuffled_inputs, _ = next(iter(DataLoader(ds, batch_size=4, shuffle=True, seed=0)))
    assert not shuffled_inputs.data.flags.writeable


def test_dtype_rules_and_single_array_tuple():
    ds = TensorDataset(
        np.zeros((4, 2), np.float64),
        np.zeros(4, np.float32),
        np.zeros(4, np.uint8),
        np.zeros(4, np.int32),
        np.zeros(4, bool),
    )
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert [t.dtype for t in batch] == [np.float64, np.float32, np.int64, np.int64, np.bool_]
    (only,) = next(iter(DataLoader(TensorDataset(np.ones(3)), batch_size=2)))
    assert isinstance(only, cr.Tensor)


def test_generic_dataset_is_stacked():
    batches = list(DataLoader(_Squares(), batch_size=2))
    assert [b[1].data.tolist() for b in batches] == [[0, 1], [4, 9], [16]]
    assert batches[0][0].shape == (2, 3) and batches[0][0].dtype == np.float64


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"batch_size": 0}, ValueError),
        ({"batch_size": 2.5}, ValueError),
        ({"batch_size": True}, ValueError),
        ({"shuffle": "yes"}, TypeError),
        ({"drop_last": 1}, TypeError),
        ({"seed": -1}, ValueError),
    ],
)
def test_loader_validates_hyperparameters(kwargs, error):
    with pytest.raises(error, match="DataLoader"):
        DataLoader(_dataset(), **kwargs)


def test_empty_dataset_is_an_error():
    with pytest.raises(DataError, match="empty"):
        DataLoader(TensorDataset(np.zeros((0, 3))))


# -- random_split --------------------------------------------------------------------------------------
def test_random_split_fractions_and_counts():
    ds = _dataset(10)
    parts = random_split(ds, [0.5, 0.3, 0.2], seed=0)
    assert [len(p) for p in parts] == [5, 3, 2]
    indices = np.concatenate([p.indices for p in parts])
    assert sorted(indices.tolist()) == list(range(10))
    # floor(11 * f) = [3, 3, 3]; the 2 left over go round-robin to the first parts, as in PyTorch
    assert [len(p) for p in random_split(_dataset(11), [1 / 3, 1 / 3, 1 / 3], seed=0)] == [4, 4, 3]
    assert [len(p) for p in random_split(ds, [7, 3], seed=0)] == [7, 3]
    again = random_split(ds, [7, 3], seed=0)
    assert again[0].indices.tolist() == random_split(ds, [7, 3], seed=0)[0].indices.tolist()


def test_random_split_seed_none_uses_global_generator():
    cr.manual_seed(5)
    first = random_split(_dataset(), [5, 5])[0].indices.tolist()
    cr.manual_seed(5)
    assert random_split(_dataset(), [5, 5])[0].indices.tolist() == first


@pytest.mark.parametrize(
    ("lengths", "match"),
    [([6, 5], "sum to 11"), ([0.5, 0.4], "not 1"), ([], "empty"), ([-1, 11], "non-negative"), ([1.5, -0.5], "[0, 1]")],
)
def test_random_split_errors(lengths, match):
    with pytest.raises(ValueError, match=match):
        random_split(_dataset(), lengths, seed=0)


# -- transforms ----------------------------------------------------------------------------------------
def test_scale_to_unit_and_flatten():
    pixels = np.array([[0, 255], [51, 102]], np.uint8)
    scaled = scale_to_unit(pixels)
    assert scaled.dtype == np.float32 and scaled.max() == 1.0
    assert scale_to_unit(np.array([0.0, 4.0])).tolist() == [0.0, 1.0]
    assert flatten(np.zeros((3, 1, 4, 4))).shape == (3, 16)


def test_standardize_round_trip_and_state():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(200, 4)).astype(np.float32)
    x[:, 2] = 7.0  # a constant feature: std 0 is replaced by 1
    scaler = Standardize()
    z = scaler.fit_transform(x)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z[:, [0, 1, 3]].std(axis=0), 1.0, atol=1e-4)
    assert np.all(z[:, 2] == 0.0)
    np.testing.assert_allclose(scaler.inverse_transform(z), x, rtol=1e-5, atol=1e-6)
    restored = Standardize()
    restored.load_state_dict(scaler.state_dict())
    np.testing.assert_array_equal(restored.transform(x), z)


def test_standardize_before_fit_is_an_error():
    with pytest.raises(DataError, match="fit"):
        Standardize().transform(np.zeros((2, 2)))
    scaler = Standardize().fit(np.zeros((2, 3)))
    with pytest.raises(ShapeError, match=r"\(3,\)"):
        scaler.transform(np.zeros((2, 4)))


def test_one_hot_and_errors():
    assert one_hot(np.array([1, 0])).tolist() == [[0.0, 1.0], [1.0, 0.0]]
    with pytest.raises(DataError, match="label 3"):
        one_hot(np.array([0, 3]), num_classes=3)
    with pytest.raises(DataError, match="label -1"):
        one_hot(np.array([-1, 0]), num_classes=3)
    with pytest.raises(DataError, match="integers"):
        one_hot(np.array([0.5]), num_classes=3)
