"""The array-backend seam: the engine runs on a second array library, the array-API reference ``array_api_strict``.

:mod:`chainrule.backend` answers which library holds the arrays; ``apply`` runs a primitive's
``array_forward`` on that library, the backward runs the generic rules on its namespace (never the NumPy
fast rules), and SGD, Adam, RMSprop and Adagrad update its arrays in place. Each result is compared with the
same computation on NumPy (float32 and float64).

What runs on ``array_api_strict`` (forward and backward): every entry of the op table (``helpers.OP_CASES``)
but ``getitem``, i.e. the arithmetic (``rpow_scalar`` included), ``where`` (a NumPy condition is copied into
the library), ``matmul``/``linear``, every elementwise row (``erf`` as a series the standard's functions
can compute, within 18 ulp of ``math.erf``) and ``gelu``, the reductions (``max``/``min`` with ties and
NaN groups, ``prod`` at zeros), ``softmax``/``log_softmax``, the shape ops, ``pad``, ``unfold``/``fold``,
``conv`` (1-d and 2-d), ``max_pool`` (ties, NaN windows and padding as on NumPy), ``softmax_cross_entropy``
(NumPy labels and weights are copied into the library), ``binary_cross_entropy``, ``lstm_cell`` and the
whole-layer ``lstm_layer``/``gru_layer``/``rnn_layer``. Also comparisons, ``mse_loss`` and
``nn.functional.binary_cross_entropy`` (its [0, 1] check runs in the library).

What does not: ``getitem`` with integer arrays or masks (the table's advanced-index cases): the library
refuses NumPy index arrays (a ShapeError naming getitem), and the gradient would need a scatter-add the
standard lacks (``scatter_add`` refuses with a DTypeError). A primitive without an ``array_forward``
(none today) raises a :class:`~chainrule.errors.DTypeError` naming the op and the library. Not checked
here: the JVP rules. NumPy-only: views and in-place changes are not version-tracked, ``create_graph=True``
(the tensor namespace reads NumPy constants), anomaly mode, ``Tensor.numpy()``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.backend import get_namespace
from chainrule.errors import ArgumentError, DTypeError, ShapeError
from chainrule.tensor import apply
from helpers import OP_CASES, as_outputs

xs = pytest.importorskip("array_api_strict")

CASES = {case.name: case for case in OP_CASES}
# every elementwise row with an array-API forward runs, so a new row is checked here without a new line
ROWS = [name for name, op in cr.ops.ELEMENTWISE.items() if op.array_forward is not None and name in CASES]
SUPPORTED = [
    *ROWS,
    *"add sub mul div pow pow_scalar rsub_scalar rdiv_scalar rpow_scalar maximum minimum where matmul linear".split(),
    *"gelu softsign silu sum mean max min prod var std logsumexp softmax log_softmax".split(),
    *"reshape permute transpose broadcast_to expand squeeze_unsqueeze flatten concatenate stack split pad".split(),
    *"softmax_cross_entropy binary_cross_entropy unfold fold conv2d conv1d max_pool max_pool_2x2".split(),
    *"lstm_cell lstm_layer gru_layer rnn_layer_tanh rnn_layer_relu".split(),
]
CHECK = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _strict(array: np.ndarray, dtype: np.dtype) -> object:
    return xs.asarray(array.astype(dtype))


def _values(array: object) -> np.ndarray:
    return np.asarray(array)


def test_get_namespace():
    assert get_namespace(np.ones(2), 1.0, None) is np
    assert get_namespace() is np
    assert get_namespace(xs.ones(2), 2.0) is xs
    assert get_namespace(np.ones(2), xs.ones(2)) is xs


def test_the_table_lists_every_supported_case():
    assert set(SUPPORTED) <= set(CASES)
    assert set(CASES) - set(SUPPORTED) == {"getitem"}  # the module docstring says why
    assert all(op.array_forward is not None for op in cr.ops.OPS.values())


def test_indexing_with_arrays_or_masks_is_refused_naming_getitem():
    t = cr.tensor(xs.asarray([[1.0, -2.0], [3.0, 0.5]]), requires_grad=True)
    for index in (np.array([0, 0, 1]), np.array([[True, False], [False, True]])):
        with pytest.raises(ShapeError, match="^getitem: "):
            t[index]
    with pytest.raises(DTypeError, match="^scatter_add: indexing with arrays or masks runs on NumPy arrays only"):
        apply(cr.ops.OPS["scatter_add"], t, index=(np.array([0, 0]),), shape=(3, 2))


@pytest.mark.parametrize("name", SUPPORTED)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@CHECK
@given(data=st.data())
def test_op_runs_on_array_api_strict(name, dtype, data):
    drawn = data.draw(CASES[name].inputs)
    tolerance = 1e-12 if dtype == np.float64 else 2e-5
    on_numpy = [cr.tensor(a.astype(dtype), requires_grad=True) for a in drawn.arrays]
    on_strict = [cr.tensor(_strict(a, dtype), requires_grad=True) for a in drawn.arrays]
    expected, outputs = as_outputs(drawn.fn(*on_numpy)), as_outputs(drawn.fn(*on_strict))
    for out, ref in zip(outputs, expected):
        assert get_namespace(out.data) is xs, f"{name} left array_api_strict"
        assert out.dtype == ref.dtype and out.shape == ref.shape
        np.testing.assert_allclose(_values(out.data), ref.data, rtol=tolerance, atol=tolerance)
    sum((o * 1.5).sum() for o in as_outputs(drawn.fn(*on_numpy))).backward()
    sum((o * 1.5).sum() for o in outputs).backward()
    for leaf, ref in zip(on_strict, on_numpy):
        assert leaf.grad is not None and get_namespace(leaf.grad.data) is xs
        assert leaf.grad.dtype == ref.grad.dtype and leaf.grad.shape == ref.grad.shape
        np.testing.assert_allclose(_values(leaf.grad.data), ref.grad.data, rtol=tolerance, atol=tolerance)


def test_an_op_without_array_forward_names_itself_and_the_library(monkeypatch):
    monkeypatch.setattr(cr.ops.OPS["erf"], "array_forward", None)  # every entry of the table has one today
    t = cr.tensor(xs.asarray([[1.0, -2.0], [3.0, 0.5]]))
    with pytest.raises(DTypeError, match="^erf: runs on NumPy arrays only, not on array_api_strict arrays"):
        cr.gelu(t)


@pytest.mark.parametrize(("dtype", "ulps"), [(np.float64, 32), (np.float32, 16)])
def test_erf_without_a_standard_function_is_within_a_few_ulps(dtype, ulps):
    """The standard has no erf: the library's is a positive series (ops._array_erf), checked against math.erf."""
    grid = np.concatenate([np.linspace(-7.0, 7.0, 20001), [0.0, -0.0, 1e-300, -1e-30, np.inf, -np.inf]]).astype(dtype)
    exact = np.array([math.erf(v) for v in grid.astype(np.float64)])
    result = _values(cr.erf(cr.tensor(xs.asarray(grid))).data).astype(np.float64)
    assert np.all(np.abs(result - exact) <= ulps * np.spacing(np.abs(exact).astype(dtype)).astype(np.float64))
    np.testing.assert_array_equal(np.signbit(result), np.signbit(exact))
    assert np.isnan(_values(cr.erf(cr.tensor(xs.asarray([np.nan], dtype=xs.float32))).data)).all()


@pytest.mark.parametrize("reduce", [cr.max, cr.min, cr.prod])
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_ties_nans_and_zeros_reduce_as_on_numpy(reduce, axis):
    """The table draws distinct values; here ties share max/min's gradient, a NaN group gives it to its
    NaNs, and prod's gradient at one and at two zeros is the product of the others."""
    for rows in (
        [[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]],
        [[1.0, np.nan, 3.0], [np.nan, 0.5, np.nan]],
        [[2.0, 0.0, 3.0], [0.0, 4.0, 0.0]],
    ):
        on_numpy = cr.tensor(np.array(rows), requires_grad=True)
        on_strict = cr.tensor(xs.asarray(rows), requires_grad=True)
        expected, result = reduce(on_numpy, axis=axis), reduce(on_strict, axis=axis)
        (expected * 1.5).sum().backward()
        (result * 1.5).sum().backward()
        np.testing.assert_array_equal(_values(result.data), expected.data)
        assert get_namespace(on_strict.grad.data) is xs
        np.testing.assert_array_equal(_values(on_strict.grad.data), on_numpy.grad.data)


@pytest.mark.parametrize(("kernel", "padding"), [(2, 0), (3, 1), (2, 1)])
def test_max_pool_ties_and_nans_as_on_numpy(kernel, padding):
    """Ties: the first maximum of a window (row-major) takes the gradient; a window holding NaN outputs NaN
    and its last NaN takes it; padding never does (stride 1: the windows overlap)."""
    image = np.zeros((5, 5))
    image[:2, :2] = 3.0  # a tie in the top-left windows
    image[3:, 3] = np.nan  # two NaNs in the bottom-right ones
    weights = np.arange(1.0, 1.0 + 36.0)  # a different gradient per window
    results = []
    for asarray in (np.asarray, xs.asarray):
        x = cr.tensor(asarray(image.reshape(1, 1, 5, 5)), requires_grad=True)
        y = F.max_pool2d(x, kernel, stride=1, padding=padding)
        (y * cr.tensor(asarray(weights[: y.data.shape[2] * y.data.shape[3]].reshape(y.shape)))).sum().backward()
        results.append((_values(y.data), _values(x.grad.data)))
    assert np.isnan(results[0][0]).any() and not np.isnan(results[0][0]).all()
    np.testing.assert_array_equal(results[1][0], results[0][0])
    np.testing.assert_array_equal(results[1][1], results[0][1])


def test_binary_cross_entropy_at_certain_probabilities_is_finite_as_on_numpy():
    p, t = [0.0, 1.0, 0.5, 1e-9], [1.0, 0.0, 0.25, 0.0]
    losses = []
    for asarray in (np.asarray, xs.asarray):
        probabilities = cr.tensor(asarray(p), requires_grad=True)
        loss = apply(cr.ops.OPS["binary_cross_entropy"], probabilities, cr.tensor(asarray(t)))
        loss.sum().backward()
        losses.append((_values(loss.data), _values(probabilities.grad.data)))
    np.testing.assert_allclose(losses[1][0], losses[0][0], rtol=1e-12)  # log1p on both: -log(1 - 1e-9) exact
    np.testing.assert_allclose(losses[1][1], losses[0][1], rtol=1e-12)
    assert losses[0][0][0] == 100.0 and np.isfinite(losses[1][1]).all()


def test_where_and_comparisons_stay_in_the_library():
    a = cr.tensor(xs.asarray([1.0, -2.0, 3.0]), requires_grad=True)
    b = cr.tensor(xs.asarray([0.5, 0.5, 0.5]), requires_grad=True)
    condition = a > 0
    assert get_namespace(condition.data) is xs and condition.dtype == np.bool_
    y = cr.where(condition, a, b)
    (y * y).sum().backward()
    np.testing.assert_array_equal(_values(y.data), [1.0, 0.5, 3.0])
    np.testing.assert_array_equal(_values(a.grad.data), [2.0, 0.0, 6.0])
    np.testing.assert_array_equal(_values(b.grad.data), [0.0, 1.0, 0.0])


def test_tensor_keeps_the_library_and_reports_numpy_dtypes():
    t = cr.tensor(xs.asarray([1.0, 2.0], dtype=xs.float64))
    assert get_namespace(t.data) is xs and t.dtype == np.float64
    assert t.sum().item() == 3.0 and type(t.sum().item()) is float
    with pytest.raises(DTypeError, match="requires_grad: .* int64"):
        cr.tensor(xs.asarray([1, 2])).requires_grad_(True)
    with pytest.raises(ShapeError, match="^matmul: .*input shapes \\(2,\\) and \\(3,\\)"):
        cr.tensor(xs.asarray([1.0, 2.0])) @ cr.tensor(xs.asarray([1.0, 2.0, 3.0]))
    assert cr.tensor(xs.asarray([1, 2]), dtype="float32").dtype == np.float32
    assert cr.tensor(xs.asarray([1, 2], dtype=xs.uint8)).dtype == np.int64  # as from NumPy
    with pytest.raises(DTypeError, match="tensor"):
        cr.tensor(xs.asarray([1, 2], dtype=xs.complex64))


def test_a_small_cnn_with_cross_entropy_as_on_numpy():
    """conv2d, relu, max_pool2d, linear and cross_entropy (labels from NumPy) composed: loss and gradients."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((3, 2, 6, 6)), rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)]
    arrays += [rng.standard_normal((5, 36)) * 0.3]
    labels = np.array([0, 4, 2])
    results = []
    for asarray in (np.asarray, xs.asarray):
        x, weight, bias, dense = (cr.tensor(asarray(a), requires_grad=True) for a in arrays)
        features = F.max_pool2d(F.relu(F.conv2d(x, weight, bias, padding=1)), 2, stride=2)  # (3, 4, 3, 3)
        loss = F.cross_entropy(F.linear(features.reshape(3, 36), dense), labels)
        loss.backward()
        results.append([_values(loss.data)] + [_values(t.grad.data) for t in (x, weight, bias, dense)])
    for got, expected in zip(results[1], results[0]):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


OPTIMIZERS = {
    "sgd": lambda params: cr.optim.SGD(params, lr=0.1, momentum=0.9),
    "adam": lambda params: cr.optim.Adam(params, lr=0.05),
    "rmsprop": lambda params: cr.optim.RMSprop(params, lr=0.01),
    "rmsprop_centered_momentum": lambda params: cr.optim.RMSprop(params, lr=0.005, momentum=0.5, centered=True),
    "adagrad": lambda params: cr.optim.Adagrad(params, lr=0.1, initial_accumulator_value=0.1),
}


def _mlp_losses(asarray, optimizer: str, steps: int = 20) -> list[float]:
    """A 2-8-1 ReLU network fitting 8 points with MSE: the loss after each optimizer step."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (8, 2))
    y = (x[:, :1] * x[:, 1:] > 0).astype(np.float64)
    arrays = [rng.normal(0, 0.7, (8, 2)), np.zeros(8), rng.normal(0, 0.7, (1, 8)), np.zeros(1)]
    params = [cr.tensor(asarray(a), requires_grad=True) for a in arrays]
    w1, b1, w2, b2 = params
    inputs, targets = cr.tensor(asarray(x)), cr.tensor(asarray(y))
    opt = OPTIMIZERS[optimizer](params)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.mse_loss(F.linear(F.relu(F.linear(inputs, w1, b1)), w2, b2), targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(get_namespace(p.data) is get_namespace(asarray(np.ones(1))) for p in params)
    return losses


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_mlp_trains_on_array_api_strict_as_on_numpy(optimizer):
    expected = _mlp_losses(np.asarray, optimizer)
    losses = _mlp_losses(xs.asarray, optimizer)
    assert expected[-1] < 0.5 * expected[0]  # it learns
    np.testing.assert_allclose(losses, expected, rtol=1e-10, atol=1e-12)


def test_binary_cross_entropy_loss_checks_its_probabilities_in_the_library():
    probabilities = [0.2, 0.9, 0.5]
    targets = [0.0, 1.0, 1.0]
    on_strict = cr.tensor(xs.asarray(probabilities), requires_grad=True)
    on_numpy = cr.tensor(np.asarray(probabilities), requires_grad=True)
    loss = F.binary_cross_entropy(on_strict, cr.tensor(xs.asarray(targets)))
    expected = F.binary_cross_entropy(on_numpy, cr.tensor(np.asarray(targets)))
    loss.backward()
    expected.backward()
    assert get_namespace(loss.data) is xs and get_namespace(on_strict.grad.data) is xs
    np.testing.assert_allclose(_values(loss.data), expected.data, rtol=1e-12)
    np.testing.assert_allclose(_values(on_strict.grad.data), on_numpy.grad.data, rtol=1e-12)
    with pytest.raises(ArgumentError, match="binary_cross_entropy: input must be probabilities"):
        F.binary_cross_entropy(cr.tensor(xs.asarray([1.5])), cr.tensor(xs.asarray([1.0])))
