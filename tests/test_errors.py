"""Bad input answered clearly: each op family raises a chainrule error naming the op and the shapes."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr


@pytest.mark.parametrize(
    "call, error, message",
    [
        # arithmetic and broadcasting
        (lambda: cr.ones(3) + cr.ones(4), cr.ShapeError, r"add: shapes \(3,\) and \(4,\) cannot be broadcast"),
        (lambda: cr.ones(2, 3) * cr.ones(3, 2), cr.ShapeError, r"mul: shapes \(2, 3\) and \(3, 2\)"),
        (lambda: cr.maximum(cr.ones(2), cr.ones(5)), cr.ShapeError, r"maximum: shapes \(2,\) and \(5,\)"),
        (
            lambda: cr.where(cr.ones(2), cr.ones(2), 0.0),
            cr.DTypeError,
            "where: the condition must be boolean, got dtype float32",
        ),
        # matmul
        (
            lambda: cr.ones(64, 1568) @ cr.ones(6272, 10),
            cr.ShapeError,
            r"matmul: shapes \(64, 1568\) and \(6272, 10\) are not aligned",
        ),
        (
            lambda: cr.matmul(cr.tensor(2.0), cr.ones(2)),
            cr.ShapeError,
            "matmul: both operands need at least 1 dimension",
        ),
        # reductions
        (lambda: cr.ones(2, 3).sum(axis=2), cr.ShapeError, "axis 2 is out of range for a tensor of 2 dimensions"),
        (lambda: cr.ones(2, 3).mean(axis=(0, 0)), cr.ShapeError, "repeats an axis"),
        (lambda: cr.zeros(0).max(), cr.ShapeError, r"max: cannot reduce an empty tensor of shape \(0,\)"),
        (lambda: cr.ones(1).var(), cr.ShapeError, "no degrees of freedom"),
        (lambda: cr.ones(2, 3).softmax(axis=3), cr.ShapeError, "axis 3 is out of range"),
        # shape ops
        (
            lambda: cr.ones(2, 3).reshape(4, 2),
            cr.ShapeError,
            r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into shape \(4, 2\)",
        ),
        (lambda: cr.ones(2, 3).permute(0, 0), cr.ShapeError, "not a permutation"),
        (
            lambda: cr.broadcast_to(cr.ones(3), (2, 4)),
            cr.ShapeError,
            r"broadcast_to: cannot broadcast shape \(3,\) to \(2, 4\)",
        ),
        (lambda: cr.ones(2, 3).squeeze(0), cr.ShapeError, r"squeeze: axis 0 has size 2"),
        (
            lambda: cr.concatenate([cr.ones(2, 3), cr.ones(2, 4)], axis=0),
            cr.ShapeError,
            r"concatenate: shapes \(2, 3\), \(2, 4\) differ outside axis 0",
        ),
        (lambda: cr.stack([cr.ones(2), cr.ones(3)]), cr.ShapeError, "stack: all tensors need the same shape"),
        (lambda: cr.split(cr.ones(5), [2, 2]), cr.ShapeError, "do not add up to 5"),
        (lambda: cr.pad(cr.ones(2, 2), [(1, 1)] * 3), cr.ShapeError, "pad: pad_width"),
        # indexing
        (lambda: cr.ones(3)[5], cr.IndexingError, r"getitem: index 5 is out of bounds.*shape \(3,\)"),
        (lambda: cr.ones(3)[cr.tensor([0.5])], cr.IndexingError, "must be integers or booleans"),
        (lambda: cr.ones(3)[np.array([True, False])], cr.IndexingError, "getitem"),
        # dtypes and conversion
        (lambda: cr.tensor(["a", "b"]), cr.DTypeError, "cannot make a tensor from data of dtype"),
        (lambda: cr.tensor([[1.0], [2.0, 3.0]]), cr.DTypeError, "cannot convert list"),
        (lambda: cr.ones(2, dtype="float16"), cr.DTypeError, "dtype float16 is not supported"),
        (lambda: cr.tensor([1, 2], requires_grad=True), cr.DTypeError, "only floating-point tensors"),
        (lambda: ~cr.ones(2), cr.DTypeError, "only boolean tensors"),
        # conversion of multi-element tensors
        (lambda: bool(cr.ones(3)), cr.ShapeError, "truth value of a tensor with 3 elements is ambiguous"),
        (lambda: cr.ones(3).item(), cr.ShapeError, r"item: only a one-element tensor has an item.*\(3,\)"),
        (lambda: len(cr.tensor(1.0)), cr.ShapeError, "len\\(\\) of a 0-d tensor"),
        # creation
        (lambda: cr.zeros(-1, 2), cr.ShapeError, "negative sizes"),
        (lambda: cr.manual_seed(-3), ValueError, "non-negative integer"),
        (lambda: cr.arange(0, 5, 0), ValueError, "step must not be zero"),
    ],
)
def test_bad_input_raises_a_clear_chainrule_error(call, error, message):
    with pytest.raises(error, match=message) as info:
        call()
    assert isinstance(info.value, (cr.ChainruleError, ValueError))


def test_errors_keep_builtin_bases():
    assert issubclass(cr.ShapeError, ValueError)
    assert issubclass(cr.DTypeError, TypeError)
    assert issubclass(cr.IndexingError, IndexError)
    assert issubclass(cr.GradientError, RuntimeError)


def test_no_numpy_exception_escapes_from_ops():
    """A sample of wrong calls across the API: every one is a ChainruleError, never a raw NumPy error."""
    wrong_calls = [
        lambda: cr.ones(3) - cr.ones(2),
        lambda: cr.ones(3) / cr.ones(2),
        lambda: cr.ones(3) ** cr.ones(2),
        lambda: cr.ones(2, 2)[0, 0, 0],
        lambda: cr.ones(2, 3).flatten(1, 0),
        lambda: cr.ones(2).logsumexp(axis=1),
        lambda: cr.ones(2).unsqueeze(3),
        lambda: cr.ones(2, 3).transpose(0, 2),
        lambda: cr.ones(3).expand(2, 2),
        lambda: cr.ones(2).argmax(axis=1),
    ]
    for call in wrong_calls:
        with pytest.raises(cr.ChainruleError):
            call()


def test_stable_functions_are_finite_at_plus_minus_1e4_in_float32():
    x = cr.tensor([-1e4, -50.0, 0.0, 50.0, 1e4], requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for fn in (cr.sigmoid, cr.softplus, cr.log_softmax, lambda t: cr.logsumexp(t, keepdims=True), cr.softmax):
            out = fn(x)
            assert out.dtype == np.float32
            assert np.all(np.isfinite(out.data)), fn
            (out * 1.0).sum().backward()
            assert np.all(np.isfinite(x.grad.data)), fn
            x.grad = None
    np.testing.assert_allclose(cr.sigmoid(x).data, [0, 1.9287e-22, 0.5, 1, 1], rtol=1e-4)
    np.testing.assert_allclose(cr.softplus(x).data, [0, 1.9287e-22, np.log(2), 50, 1e4], rtol=1e-4)
    assert cr.logsumexp(x).item() == pytest.approx(1e4)


def test_argument_error_is_both_value_and_type_error():
    assert issubclass(cr.ArgumentError, cr.ChainruleError)
    assert issubclass(cr.ArgumentError, ValueError) and issubclass(cr.ArgumentError, TypeError)
    assert cr.errors.ArgumentError is cr.ArgumentError and "ArgumentError" in cr.errors.__all__


@pytest.mark.parametrize("name", ["stack", "cat", "concatenate"])
def test_stack_and_cat_refuse_a_single_tensor(name):
    with pytest.raises(cr.ArgumentError, match="expects a sequence .* got a Tensor"):
        getattr(cr, name)(cr.ones(2, 3))
