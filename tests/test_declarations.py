"""An op is declared once, in ``chainrule.functions``; the exports and the Tensor methods follow from it.

``functions.__all__`` is what ``chainrule`` exports, a function marked ``@_method`` is the Tensor method of its
name, and ``nn.functional`` re-exports the same objects. These tests keep the three from drifting apart: a new
op that is a function but not a method (or a method but not a function) fails here until it is declared or
listed below with its reason.
"""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import functions
from chainrule.tensor import Tensor

# Public functions that are deliberately not Tensor methods, with the reason.
NOT_METHODS = {
    "as_tensor": "a conversion of any value into a tensor, not an op on one",
    "where": "its first argument is the boolean condition, not the tensor operated on",
    "concatenate": "takes a sequence of tensors",
    "cat": "takes a sequence of tensors (alias of concatenate)",
    "stack": "takes a sequence of tensors",
    "pad": "a function only, as in NumPy (np.pad) and PyTorch (F.pad)",
}

# Methods that take the shape loose (x.reshape(2, 3)) as well as one sequence: method name -> its function.
LOOSE_SHAPE = {"reshape": "reshape", "view": "reshape", "permute": "permute", "expand": "expand"}

# Public methods written in tensor.py itself, not declared in chainrule.functions, with the reason.
NATIVE_METHODS = {
    # ops that are not functions of chainrule
    "pow": "the method form of the ** operator",
    "all": "boolean reduction without gradient",
    "any": "boolean reduction without gradient",
    # the tensor object itself: values, dtype, autograd, in-place updates
    "item": "value",
    "numpy": "value",
    "tolist": "value",
    "numel": "shape",
    "size": "shape",
    "detach": "graph",
    "clone": "graph",
    "backward": "graph",
    "retain_grad": "graph (documented absence)",
    "register_hook": "graph (gradient hooks)",
    "requires_grad_": "graph",
    "to": "dtype",
    "astype": "dtype",
    "float": "dtype",
    "double": "dtype",
    "long": "dtype",
    "zero_": "in place",
    "fill_": "in place",
    "copy_": "in place",
}


def _defined_in_functions() -> dict[str, object]:
    """The public functions written in chainrule/functions.py (not the ones it imports)."""
    return {
        name: value
        for name, value in vars(functions).items()
        if not name.startswith("_") and inspect.isfunction(value) and value.__module__ == functions.__name__
    }


def _public_methods() -> dict[str, object]:
    """Tensor's public methods (properties excluded)."""
    return {name: value for name, value in vars(Tensor).items() if not name.startswith("_") and callable(value)}


def test_every_public_function_is_in_all():
    missing = sorted(set(_defined_in_functions()) - set(functions.__all__))
    assert missing == [], f"public functions missing from chainrule.functions.__all__: {missing}"
    assert len(functions.__all__) == len(set(functions.__all__))
    assert all(callable(getattr(functions, name)) for name in functions.__all__)


def test_chainrule_exports_every_function_as_the_same_object():
    for name in functions.__all__:
        assert getattr(cr, name) is getattr(functions, name), name
        assert name in cr.__all__, name


@pytest.mark.parametrize("name", sorted(set(functions.__all__) - set(NOT_METHODS)))
def test_every_function_that_takes_a_tensor_is_a_method(name):
    function = getattr(functions, name)
    method = vars(Tensor).get(name)
    assert method is not None, f"chainrule.{name} is not a Tensor method; declare it with @_method or list it"
    if name in LOOSE_SHAPE:
        return  # an adapter; checked by test_loose_shape_methods
    assert method is function, f"Tensor.{name} is not chainrule.{name} itself"


def test_listed_exceptions_are_real_functions():
    assert set(NOT_METHODS) <= set(functions.__all__)
    assert not set(NOT_METHODS) & set(vars(Tensor)), "a function listed as no method is a method"


def test_every_method_is_a_declared_function_or_native():
    for name, method in _public_methods().items():
        if name in NATIVE_METHODS:
            assert name not in functions.__all__, f"Tensor.{name} is written in tensor.py and declared as a function"
            assert method.__module__ == "chainrule.tensor", name
        elif name in LOOSE_SHAPE:
            assert method.__module__ == functions.__name__, name
        else:
            assert name in functions.__all__ and method is getattr(functions, name), (
                f"Tensor.{name} is neither declared in chainrule.functions nor listed in NATIVE_METHODS"
            )
    assert set(NATIVE_METHODS) <= set(_public_methods())


@pytest.mark.parametrize(("method", "function"), sorted(LOOSE_SHAPE.items()))
def test_loose_shape_methods(method, function):
    x = cr.arange(6).reshape((1, 2, 3)).to(cr.float32)
    shape = {"reshape": (3, 2), "view": (3, 2), "permute": (2, 0, 1), "expand": (4, 1, 2, 3)}[method]
    expected = getattr(cr, function)(x, shape).numpy()
    bound = getattr(x, method)
    for result in (bound(*shape), bound(shape), bound(list(shape))):
        np.testing.assert_array_equal(result.numpy(), expected)


def test_aliases_are_one_object():
    assert functions.clamp is functions.clip and Tensor.clamp is Tensor.clip is functions.clip
    assert functions.cat is functions.concatenate


def test_nn_functional_reexports_the_same_objects():
    reexported = [name for name in F.__all__ if name in functions.__all__]
    assert len(reexported) >= 10
    for name in reexported:
        assert getattr(F, name) is getattr(functions, name), name
    assert all(hasattr(F, name) for name in F.__all__)


def test_tensor_module_does_not_import_functions():
    tree = ast.parse((Path(functions.__file__).parent / "tensor.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported |= {node.module or ""} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert "chainrule.functions" not in imported


def test_import_tensor_alone_gives_the_methods():
    src = str(Path(cr.__file__).parent.parent)
    code = "from chainrule.tensor import Tensor; t = Tensor([1.0, 4.0]); "
    code += "print(t.sqrt().sum().item(), t.view(2, 1).shape)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3.0", "(2,", "1)"]


def test_elementwise_rows_are_classes_of_chainrule_ops_so_graphs_pickle():
    """A row's class is bound in chainrule.ops as a class statement would bind it: pickle finds it by name."""
    import pickle

    for name, op in cr.ops.ELEMENTWISE.items():
        assert getattr(cr.ops, op.__name__) is op, name
        assert pickle.loads(pickle.dumps(op)) is op
    y = cr.sigmoid(cr.exp(cr.tensor([0.5, -1.0], requires_grad=True)))
    assert pickle.loads(pickle.dumps(y)).tolist() == y.tolist()
