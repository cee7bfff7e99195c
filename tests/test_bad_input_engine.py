"""Unusual inputs to the tensor engine, one row each: a clear chainrule error naming what is wrong, or the right value.

The sweep of issue 13 (section 1 and the engine's share of the 300 inputs): creation from odd data, dtypes that
cannot be computed in, operators with odd operands, axes and shapes, indexing, in-place updates, backward and the
function transforms with odd arguments, NumPy functions and allocation sizes. No row may end in a raw NumPy or
Python traceback from inside chainrule, a RuntimeWarning or a silently wrong value.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule import func
from chainrule.errors import (
    ArgumentError,
    ChainruleError,
    DTypeError,
    GradientError,
    IndexingError,
    ShapeError,
)


def w():
    return cr.tensor([1.0, 2.0], requires_grad=True)


def _backward_twice():
    y = (w() * w()).sum()
    y.backward()
    y.backward()


def _grad_of(f, x):
    return func.grad(f)(x)


REFUSED = [
    # -- creation: data that is not numbers ---------------------------------------------------------------------
    ("None", lambda: cr.tensor(None), DTypeError, "dtype object"),
    ("a set", lambda: cr.tensor({1, 2}), DTypeError, "dtype object"),
    ("a dict", lambda: cr.tensor({"a": 1}), DTypeError, "dtype object"),
    ("an int beyond 64 bits", lambda: cr.tensor(2**70), DTypeError, "dtype object"),
    ("a negative int beyond 64 bits", lambda: cr.tensor([-(2**70)]), DTypeError, "dtype object"),
    ("a generator", lambda: cr.tensor(x for x in range(3)), DTypeError, "dtype object"),
    ("ragged lists", lambda: cr.tensor([[1.0], [2.0, 3.0]]), DTypeError, "cannot convert list"),
    ("a Python complex", lambda: cr.tensor(1 + 2j), DTypeError, "complex128"),
    ("a complex array", lambda: cr.tensor(np.array([1j])), DTypeError, "complex numbers"),
    ("a complex64 array", lambda: cr.tensor(np.ones(2, np.complex64)), DTypeError, "complex64"),
    ("bytes", lambda: cr.tensor(b"ab"), DTypeError, "bytes"),
    ("a string", lambda: cr.tensor("1.0"), DTypeError, "strings"),
    ("a string array", lambda: cr.tensor(np.array(["a", "b"])), DTypeError, "strings"),
    ("datetime64", lambda: cr.tensor(np.array(["2020-01-01"], dtype="datetime64[D]")), DTypeError, "dates"),
    ("timedelta64", lambda: cr.tensor(np.array([1], dtype="timedelta64[s]")), DTypeError, "time differences"),
    ("structured records", lambda: cr.tensor(np.zeros(2, dtype=[("a", "f4")])), DTypeError, "structured"),
    ("longdouble", lambda: cr.tensor(np.ones(2, dtype=np.longdouble)), DTypeError, "extended precision"),
    ("uint64 beyond int64", lambda: cr.tensor(np.array([2**64 - 1], dtype=np.uint64)), DTypeError, "does not fit"),
    ("uint64 just beyond", lambda: cr.tensor(np.array([2**63], dtype=np.uint64)), DTypeError, "does not fit"),
    ("object array of numbers", lambda: cr.tensor(np.array([1.0, 2.0], dtype=object)), DTypeError, "objects"),
    ("NaN to int64", lambda: cr.tensor([float("nan")], dtype=cr.int64), DTypeError, "NaN or infinity to int64"),
    ("inf to int64", lambda: cr.tensor([float("inf")], dtype=cr.int64), DTypeError, "NaN or infinity"),
    ("-inf to bool", lambda: cr.tensor([-float("inf")], dtype=cr.bool_), DTypeError, "NaN or infinity"),
    ("dtype complex", lambda: cr.tensor([1.0], dtype=np.complex64), DTypeError, "complex64 is not supported"),
    ("dtype float16", lambda: cr.ones(2, dtype="float16"), DTypeError, "float16 is not supported"),
    ("dtype bogus", lambda: cr.tensor([1.0], dtype="bogus"), DTypeError, "unknown dtype"),
    ("dtype str", lambda: cr.ones(2, dtype=str), DTypeError, "not supported"),
    ("requires_grad a string", lambda: cr.tensor([1.0], requires_grad="yes"), ArgumentError, "True or False"),
    ("requires_grad None", lambda: cr.tensor([1.0], requires_grad=None), ArgumentError, "True or False"),
    ("requires_grad on int data", lambda: cr.tensor([1, 2], requires_grad=True), DTypeError, "floating-point"),
    (
        "requires_grad attribute on bool",
        lambda: setattr(cr.ones(2, dtype=cr.bool_), "requires_grad", True),
        DTypeError,
        "bool",
    ),
    # -- creation: sizes ----------------------------------------------------------------------------------------------
    ("zeros of 10^12 elements", lambda: cr.zeros(10**6, 10**6), ArgumentError, "3.6 TiB of memory"),
    ("float64 zeros count 8 bytes", lambda: cr.zeros(10**6, 10**6, dtype=cr.float64), ArgumentError, "7.3 TiB"),
    ("ones of 10^15 elements", lambda: cr.ones((10**5, 10**5, 10**5)), ArgumentError, "this machine has"),
    ("randn of 10^13", lambda: cr.randn(10**13), ArgumentError, "memory"),
    ("zeros of 1.5", lambda: cr.zeros(1.5), ArgumentError, "integers"),
    ("zeros of a string", lambda: cr.zeros("a"), ArgumentError, "integers"),
    ("rand of a float", lambda: cr.rand(2.5), ArgumentError, "integers"),
    ("randn negative", lambda: cr.randn(-2), ShapeError, "negative"),
    ("arange to NaN", lambda: cr.arange(0, float("nan")), ArgumentError, "stop must be finite"),
    ("arange to inf", lambda: cr.arange(0, float("inf")), ArgumentError, "finite"),
    ("arange from -inf", lambda: cr.arange(float("-inf"), 0), ArgumentError, "start must be finite"),
    ("arange step NaN", lambda: cr.arange(0, 5, float("nan")), ArgumentError, "step must be finite"),
    ("arange of 10^15", lambda: cr.arange(0, 1e15), ArgumentError, "memory"),
    ("arange of a string", lambda: cr.arange("5"), ArgumentError, "must be a number"),
    ("arange step 0", lambda: cr.arange(0, 5, 0), ArgumentError, "step must not be zero"),
    ("manual_seed float", lambda: cr.manual_seed(1.5), ArgumentError, "non-negative integer"),
    ("manual_seed str", lambda: cr.manual_seed("a"), ArgumentError, "non-negative integer"),
    ("manual_seed negative", lambda: cr.manual_seed(-3), ArgumentError, "non-negative integer"),
    # -- operators with odd operands ------------------------------------------------------------------------------
    ("w + str", lambda: w() + "a", DTypeError, "add"),
    ("w + None", lambda: w() + None, DTypeError, "add"),
    ("w + 3 elements", lambda: w() + [1, 2, 3], ShapeError, "cannot be broadcast"),
    ("w * complex scalar", lambda: w() * 1j, DTypeError, "complex number"),
    ("w * numpy complex scalar", lambda: w() * np.complex64(1j), DTypeError, "complex number"),
    ("w + complex array", lambda: w() + np.array([1j, 2]), DTypeError, "complex"),
    ("w * object array", lambda: w() * np.array([1, "a"], dtype=object), DTypeError, "objects"),
    ("w * string array", lambda: w() * np.array(["a", "b"]), DTypeError, "strings"),
    ("w * datetime", lambda: w() * np.datetime64("2020-01-01"), DTypeError, "mul"),
    ("w - longdouble array", lambda: w() - np.ones(2, dtype=np.longdouble), DTypeError, "extended precision"),
    ("w @ scalar", lambda: w() @ 2.0, ShapeError, "at least 1 dimension"),
    ("matmul misaligned", lambda: cr.ones(2, 3) @ cr.ones(4, 2), ShapeError, "not aligned"),
    ("w < str", lambda: w() < "a", ShapeError, "cannot be compared"),
    ("~ of a float tensor", lambda: ~cr.ones(2), DTypeError, "only boolean"),
    ("where with a float condition", lambda: cr.where(cr.tensor([1.0, 0.0]), w(), w()), DTypeError, "boolean"),
    # -- axes and shapes -------------------------------------------------------------------------------------------
    ("sum axis out of range", lambda: w().sum(5), ShapeError, "out of range"),
    ("sum axis float", lambda: w().sum(1.5), ArgumentError, "axis must be an integer"),
    ("sum axis str", lambda: w().sum("x"), ArgumentError, "axis must be an integer"),
    ("sum axis bool", lambda: w().sum(True), ArgumentError, "bool"),
    ("mean of empty", lambda: cr.tensor([]).mean(), ShapeError, "empty axis"),
    ("max of empty", lambda: cr.tensor(np.zeros((0,))).max(), ShapeError, "empty"),
    ("softmax axis 3", lambda: w().softmax(3), ShapeError, "out of range"),
    ("reshape -1 -1", lambda: w().reshape(-1, -1), ShapeError, "cannot reshape"),
    ("reshape to 3", lambda: w().reshape(3), ShapeError, "cannot reshape"),
    ("reshape to str", lambda: w().reshape("a"), ArgumentError, "sequence of integers"),
    ("reshape to float", lambda: w().reshape(1.5), ArgumentError, "sequence of integers"),
    ("transpose axis 5", lambda: w().transpose(0, 5), ShapeError, "out of range"),
    ("permute repeats", lambda: cr.ones(2, 2).permute(0, 0), ShapeError, "not a permutation"),
    ("expand to 3", lambda: w().expand(3), ShapeError, "cannot broadcast"),
    ("concatenate nothing", lambda: cr.concatenate([]), ShapeError, "at least one"),
    ("concatenate mixed ranks", lambda: cr.concatenate([w(), cr.ones(2, 2)]), ShapeError, "differ"),
    ("stack nothing", lambda: cr.stack([]), ShapeError, "at least one"),
    ("split size 0", lambda: w().split(0), ShapeError, "positive"),
    ("split sizes too big", lambda: w().split([1, 5]), ShapeError, "do not add up"),
    ("pad negative", lambda: cr.functions.pad(w(), (-1, -1)), ShapeError, "negative pad"),
    # -- indexing ---------------------------------------------------------------------------------------------------
    ("index a float", lambda: w()[1.5], IndexingError, "valid indices"),
    ("index a string", lambda: w()["a"], IndexingError, "valid indices"),
    ("index out of range", lambda: w()[5], IndexingError, "out of bounds"),
    ("too many indices", lambda: w()[0, 0], IndexingError, "too many indices"),
    ("index by a float tensor", lambda: w()[cr.tensor([0.5])], IndexingError, "integers or booleans"),
    ("a float tensor as a Python index", lambda: [1, 2, 3][cr.tensor(1.0)], DTypeError, "integer tensor"),
    ("item of two elements", lambda: w().item(), ShapeError, "one-element"),
    ("item of none", lambda: cr.tensor([]).item(), ShapeError, "one-element"),
    ("len of 0-d", lambda: len(cr.tensor(1.0)), ShapeError, "0-d"),
    ("bool of two elements", lambda: bool(cr.ones(2)), ShapeError, "ambiguous"),
    # -- in-place updates -----------------------------------------------------------------------------------------
    ("setitem a string", lambda: cr.tensor([1.0, 2.0]).__setitem__(0, "a"), ShapeError, "__setitem__"),
    ("setitem NaN into int", lambda: cr.tensor([1, 2]).__setitem__(0, float("nan")), ShapeError, "NaN"),
    ("fill_ a string", lambda: cr.tensor([1.0, 2.0]).fill_("a"), ArgumentError, "fill_"),
    ("+= a float into int", lambda: cr.tensor([1, 2]).__iadd__(1.5), ShapeError, "+="),
    ("copy_ of 3 into 2", lambda: cr.tensor([1.0, 2.0]).copy_([1, 2, 3]), ShapeError, "copy_"),
    ("+= on a leaf that requires grad", lambda: w().__iadd__(1), GradientError, "no_grad"),
    ("+= on an op's output", lambda: (w() * 2).__iadd__(1), GradientError, "corrupt its graph"),
    ("grad of the wrong shape", lambda: setattr(w(), "grad", cr.zeros(3)), ShapeError, "shape (3,)"),
    ("grad of the wrong dtype", lambda: setattr(w(), "grad", cr.zeros(2, dtype=cr.float64)), DTypeError, "float64"),
    ("grad an ndarray", lambda: setattr(w(), "grad", np.zeros(2)), ArgumentError, "ndarray"),
    ("grad an int tensor", lambda: setattr(w(), "grad", cr.zeros(2, dtype=cr.int64)), DTypeError, "int64"),
    # -- backward and the transforms --------------------------------------------------------------------------------
    ("backward of a vector", lambda: (w() * 2).backward(), GradientError, "one-element output"),
    ("backward grad of wrong shape", lambda: (w() * 2).backward(cr.ones(3)), ShapeError, "grad has shape"),
    ("backward grad a string", lambda: (w() * 2).backward("a"), DTypeError, "strings"),
    ("backward twice", _backward_twice, GradientError, "second time"),
    ("backward of an int tensor", lambda: cr.tensor([1, 2]).sum().backward(), GradientError, "does not require"),
    ("grad of a constant", lambda: cr.autograd.grad(cr.tensor(1.0), w()), GradientError, "does not require grad"),
    (
        "grad of an unused input",
        lambda: cr.autograd.grad((w() * 2).sum(), cr.tensor([1.0], requires_grad=True)),
        GradientError,
        "allow_unused",
    ),
    (
        "func.grad of a vector function",
        lambda: _grad_of(lambda x: x * 2, cr.tensor([1.0, 2.0])),
        ShapeError,
        "one-element",
    ),
    ("func.grad of a string", lambda: _grad_of(lambda x: x.sum(), "a"), DTypeError, "strings"),
    (
        "func.jacobian returning None",
        lambda: func.jacobian(lambda x: None)(cr.tensor([1.0, 2.0])),
        DTypeError,
        "object",
    ),
    (
        "func.hessian of an int input",
        lambda: func.hessian(lambda x: (x * x).sum())(cr.tensor([1, 2])),
        GradientError,
        "int64",
    ),
    (
        "func.jvp tangent of the wrong shape",
        lambda: func.jvp(lambda x: x * 2, (cr.tensor([1.0, 2.0]),), (cr.tensor([1.0, 2.0, 3.0]),)),
        ShapeError,
        "tangent 0",
    ),
    (
        "func.vjp cotangent of the wrong shape",
        lambda: func.vjp(lambda x: x * 2, cr.tensor([1.0, 2.0]))[1](cr.ones(3)),
        ShapeError,
        "cotangent",
    ),
    ("gradcheck of a non-function", lambda: cr.gradcheck(3, (w(),)), ArgumentError, "must be a function"),
    ("gradgradcheck of a non-function", lambda: cr.gradgradcheck("f", (w(),)), ArgumentError, "must be a function"),
    # -- NumPy functions must not drop the graph -------------------------------------------------------------------
    (
        "np.concatenate of tensors that require grad",
        lambda: np.concatenate([w(), w()]),
        ArgumentError,
        "chainrule.concatenate",
    ),
    ("np.sum of a tensor that requires grad", lambda: np.sum(w()), ArgumentError, "chainrule.sum"),
    ("np.mean", lambda: np.mean(w()), ArgumentError, "chainrule.mean"),
    ("np.stack", lambda: np.stack([w(), w()]), ArgumentError, "chainrule.stack"),
    ("np.dot", lambda: np.dot(w(), w()), ArgumentError, "drop it from the graph"),
    ("np.where", lambda: np.where(w() > 0, w(), 0.0), ArgumentError, "chainrule.where"),
    ("np.clip", lambda: np.clip(w(), 0, 1), ArgumentError, "chainrule.clip"),
    ("np.linalg.norm", lambda: np.linalg.norm(w()), ArgumentError, "drop it from the graph"),
    ("np.exp (a ufunc)", lambda: np.exp(w()), TypeError, "does not support ufuncs"),
    # -- the scalar engine -----------------------------------------------------------------------------------------
    ("Value of a string", lambda: cr.Value("a"), DTypeError, "real number"),
    ("Value + str", lambda: cr.Value(1.0) + "a", DTypeError, "real number"),
    ("Value ** Value", lambda: cr.Value(2.0) ** cr.Value(2.0), DTypeError, "exponent"),
    ("Value log of -1", lambda: cr.Value(-1.0).log(), ArgumentError, "undefined"),
]


@pytest.mark.parametrize("call, error, phrase", [row[1:] for row in REFUSED], ids=[row[0] for row in REFUSED])
def test_refused_with_a_clear_error(call, error, phrase):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on the way to the error
        with pytest.raises(error) as caught:
            call()
    if error is not TypeError:
        assert isinstance(caught.value, ChainruleError), type(caught.value)
    assert phrase in str(caught.value), str(caught.value)


def _under_no_grad(call):
    with cr.no_grad():
        return call()


def _values(t):
    return np.asarray(t.detach().numpy() if isinstance(t, cr.Tensor) else t)


ACCEPTED = [
    ("an empty list", lambda: cr.tensor([]), np.zeros(0, np.float32)),
    ("uint64 that fits", lambda: cr.tensor(np.array([5], dtype=np.uint64)), np.array([5])),
    ("uint8 image data", lambda: cr.tensor(np.array([0, 255], dtype=np.uint8)), np.array([0, 255])),
    ("float16 widened to float32", lambda: cr.tensor(np.array([1.5], dtype=np.float16)), np.array([1.5], np.float32)),
    ("float data to int64 truncates", lambda: cr.tensor([1.7, -2.2], dtype=cr.int64), np.array([1, -2])),
    ("w + list", lambda: w() + [1, 2], np.array([2.0, 4.0])),
    ("w + uint8 array", lambda: w() + np.array([1, 2], dtype=np.uint8), np.array([2.0, 4.0], np.float32)),
    ("getitem None", lambda: w()[None], np.array([[1.0, 2.0]])),
    ("getitem ellipsis", lambda: w()[...], np.array([1.0, 2.0])),
    ("clip min above max (max wins, as PyTorch)", lambda: w().clip(3, 1), np.array([1.0, 1.0])),
    ("fill_ an int tensor with 1.5 truncates", lambda: cr.tensor([1, 2]).fill_(1.5), np.array([1, 1])),
    ("np.concatenate of constants", lambda: np.concatenate([cr.ones(1), cr.zeros(1)]), np.array([1.0, 0.0])),
    ("np.allclose of constants", lambda: np.allclose(cr.ones(2), [1, 1]), np.array(True)),
    ("np.shape of a tensor that requires grad", lambda: np.shape(w()), np.array([2])),
    ("np.asarray of a tensor", lambda: np.asarray(cr.tensor([1.0, 2.0])), np.array([1.0, 2.0])),
    ("np.sum under detach", lambda: np.sum(w().detach()), np.array(3.0)),
    (
        "np.linalg.norm under no_grad (monitoring)",
        lambda: _under_no_grad(lambda: np.linalg.norm(w())),
        np.array(np.sqrt(5.0), np.float32),
    ),
    ("func.grad of a constant function", lambda: func.grad(lambda x: x.sum() * 0)(cr.tensor([1.0, 2.0])), np.zeros(2)),
    ("int matmul float", lambda: cr.ones(2, 2, dtype=cr.int64) @ cr.ones(2, 2), np.full((2, 2), 2.0)),
    ("manual_seed beyond 64 bits", lambda: cr.manual_seed(2**70) and cr.tensor(1.0), np.array(1.0)),
]


@pytest.mark.parametrize("call, expected", [row[1:] for row in ACCEPTED], ids=[row[0] for row in ACCEPTED])
def test_accepted_with_the_right_value(call, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = call()
    np.testing.assert_array_equal(_values(result), expected)
    if isinstance(result, cr.Tensor):
        assert result.dtype in (cr.float32, cr.float64, cr.int64, cr.bool_)


def test_the_sweep_is_at_least_150_inputs():
    assert len(REFUSED) + len(ACCEPTED) >= 150
