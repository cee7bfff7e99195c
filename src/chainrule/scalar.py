"""The scalar engine: :class:`Value`, one number and its gradient, plus a micrograd-shaped MLP.

This is the teaching engine. Each op builds its output and, right there, states the local derivative
of the output with respect to each input. Backpropagation is the same iterative walk as for tensors
(:func:`chainrule.autograd.backpropagate`): a Value is a graph node with parents and local derivatives,
and the chain rule multiplies ``grad_out`` by each local derivative on the way back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chainrule import autograd
from chainrule.errors import ArgumentError, DTypeError, GradientError

if TYPE_CHECKING:
    import random

__all__ = ["Value", "Neuron", "Layer", "MLP"]


class Value:
    """A scalar that remembers how it was computed, so its gradient can be found by the chain rule.

    Parameters
    ----------
    data : float
        The number.

    Attributes
    ----------
    data : float
        The number.
    grad : float
        ``dL/dself`` after ``L.backward()`` (accumulates; reset with ``zero_grad`` or ``grad = 0``).

    Examples
    --------
    >>> from chainrule import Value
    >>> a, b = Value(2.0), Value(-3.0)
    >>> c = a * b + a ** 2          # c = ab + a²
    >>> c.backward()
    >>> a.grad, b.grad               # dc/da = b + 2a, dc/db = a
    (1.0, 2.0)
    """

    __slots__ = ("_local_grads", "_parents", "data", "grad", "label", "op")

    def __init__(
        self,
        data: float,
        _parents: tuple[Value, ...] = (),
        _local_grads: tuple[float, ...] = (),
        op: str = "",
        label: str = "",
    ) -> None:
        if isinstance(data, Value):
            data = data.data
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            try:
                data = float(data)
            except (TypeError, ValueError):
                raise DTypeError(f"Value: expected a real number, got {type(data).__name__}") from None
        self.data = float(data)
        self.grad = 0.0
        self._parents = _parents
        self._local_grads = _local_grads  # d self / d parent, one per parent
        self.op = op
        self.label = label

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    # -- ops: each states its local derivatives next to its value --------------------------------------
    def __add__(self, other: Any) -> Value:
        other = _value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0), "+")

    def __mul__(self, other: Any) -> Value:
        other = _value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data), "*")

    def __pow__(self, exponent: float) -> Value:
        """``self ** exponent`` for a constant exponent; local derivative :math:`n x^{n-1}`.

        Float semantics where they are defined, PyTorch's slopes at 0: ``0 ** 0`` is 1 with slope 0,
        ``0 ** 0.5`` is 0 with slope inf. Undefined or unrepresentable results raise instead of turning
        into NaN or inf silently.

        Raises
        ------
        ArgumentError
            For ``0 ** negative`` (division by zero) and a negative base with a fractional exponent
            (not a real number); ``DTypeError`` for an exponent that is not an int or float.
        OverflowError
            When the result does not fit a float.

        Examples
        --------
        >>> from chainrule import Value
        >>> x = Value(3.0)
        >>> y = x ** 2
        >>> y.backward()
        >>> y.data, x.grad
        (9.0, 6.0)
        """
        if not isinstance(exponent, (int, float)) or isinstance(exponent, bool):
            raise DTypeError(f"Value.__pow__: the exponent must be an int or float, got {type(exponent).__name__}")
        if self.data == 0 and exponent < 0:
            raise ArgumentError(f"Value.__pow__: {self.data} ** {exponent} divides by zero")
        try:
            out = self.data**exponent
            if exponent == 0:
                local = 0.0
            elif self.data == 0 and exponent < 1:
                local = math.inf  # the slope of x ** p at 0 for 0 < p < 1, as in PyTorch
            else:
                local = exponent * self.data ** (exponent - 1)
        except OverflowError:
            raise OverflowError(f"Value.__pow__: {self.data} ** {exponent} overflows a float") from None
        if isinstance(out, complex) or isinstance(local, complex):
            raise ArgumentError(f"Value.__pow__: {self.data} ** {exponent} is not a real number")
        return Value(out, (self,), (local,), f"**{exponent}")

    def exp(self) -> Value:
        try:
            out = math.exp(self.data)
        except OverflowError:
            raise OverflowError(f"Value.exp: exp({self.data}) overflows a float") from None
        return Value(out, (self,), (out,), "exp")

    def log(self) -> Value:
        if self.data <= 0:
            raise ArgumentError(f"Value.log: log of {self.data} is undefined (needs a positive number)")
        return Value(math.log(self.data), (self,), (1.0 / self.data,), "log")

    def tanh(self) -> Value:
        out = math.tanh(self.data)
        return Value(out, (self,), (1.0 - out * out,), "tanh")

    def sigmoid(self) -> Value:
        z = math.exp(-abs(self.data))  # no overflow for large |x|
        out = 1.0 / (1.0 + z) if self.data >= 0 else z / (1.0 + z)
        return Value(out, (self,), (out * (1.0 - out),), "sigmoid")

    def relu(self) -> Value:
        return Value(max(self.data, 0.0), (self,), (1.0 if self.data > 0 else 0.0,), "relu")

    # -- composed ops: no derivatives of their own ---------------------------------------------------------
    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Any) -> Value:
        return self + (-_value(other))

    def __truediv__(self, other: Any) -> Value:
        other = _value(other)
        if other.data == 0:
            raise ArgumentError(f"Value.__truediv__: division by zero ({self.data} / 0)")
        return self * other**-1

    def __radd__(self, other: Any) -> Value:
        return self + other

    def __rmul__(self, other: Any) -> Value:
        return self * other

    def __rsub__(self, other: Any) -> Value:
        return _value(other) - self

    def __rtruediv__(self, other: Any) -> Value:
        return _value(other) / self

    # -- backpropagation --------------------------------------------------------------------------------
    def backward(self) -> None:
        """Fill ``.grad`` of every Value this one depends on with ``d self / d that``.

        Gradients accumulate, as in micrograd and PyTorch: zero them between steps.
        """
        autograd.backpropagate([self], [1.0], retain_graph=True)

    # Node protocol used by chainrule.autograd
    def _graph_parents(self) -> tuple[Value, ...]:
        return self._parents

    def _vjp(self, grad_out: float, create_graph: bool, needed: set[int] | None) -> list[tuple[Value, float]]:
        if create_graph:
            raise GradientError("Value: the scalar engine computes first derivatives only; use Tensor for higher order")
        self.grad += grad_out  # interior nodes keep their gradient too, for the teaching tables
        return [(parent, local * grad_out) for parent, local in zip(self._parents, self._local_grads)]

    def _jvp(self, tangents: dict[int, float], create_graph: bool) -> float:
        return sum(local * tangents.get(id(p), 0.0) for p, local in zip(self._parents, self._local_grads))

    def _accumulate(self, grad: float) -> None:
        self.grad += grad

    def _release(self) -> None:
        """The scalar engine keeps its graph (it is small and is drawn by the teaching tools)."""


def _value(x: Any) -> Value:
    return x if isinstance(x, Value) else Value(x)


# ---------------------------------------------------------------------------------------------------
# A micrograd-shaped neural network on Values
# ---------------------------------------------------------------------------------------------------
class _ScalarModule:
    def parameters(self) -> list[Value]:
        return []

    def zero_grad(self) -> None:
        """Reset the gradient of every parameter to 0."""
        for p in self.parameters():
            p.grad = 0.0


class Neuron(_ScalarModule):
    """One neuron: :math:`\\phi(\\sum_i w_i x_i + b)` with ``phi`` = tanh, relu, sigmoid or linear.

    Weights start uniform in [-1, 1] from ``rng`` (a ``random.Random``; seed it for reproducibility).
    """

    def __init__(self, n_inputs: int, activation: str = "tanh", rng: random.Random | None = None) -> None:
        if activation not in ("tanh", "relu", "sigmoid", "linear"):
            raise ValueError(f"Neuron: activation must be tanh, relu, sigmoid or linear, got {activation!r}")
        if not rng:
            import random  # here, not at the top: only the scalar MLPs need it

            rng = random.Random()
        self.w = [Value(rng.uniform(-1, 1)) for _ in range(n_inputs)]
        self.b = Value(0.0)
        self.activation = activation

    def __call__(self, x: Sequence[Any]) -> Value:
        if len(x) != len(self.w):
            raise ValueError(f"Neuron: expected {len(self.w)} inputs, got {len(x)}")
        net = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return net if self.activation == "linear" else getattr(net, self.activation)()

    def parameters(self) -> list[Value]:
        return [*self.w, self.b]


class Layer(_ScalarModule):
    """A fully connected layer of :class:`Neuron`."""

    def __init__(
        self, n_inputs: int, n_outputs: int, activation: str = "tanh", rng: random.Random | None = None
    ) -> None:
        self.neurons = [Neuron(n_inputs, activation, rng) for _ in range(n_outputs)]

    def __call__(self, x: Sequence[Any]) -> Value | list[Value]:
        outs = [n(x) for n in self.neurons]
        return outs[0] if len(outs) == 1 else outs

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]


class MLP(_ScalarModule):
    """A multilayer perceptron of scalar Values: hidden layers use ``activation``, the last is linear.

    Parameters
    ----------
    n_inputs : int
        Number of inputs.
    sizes : sequence of int
        Width of each layer, the last one being the number of outputs.
    activation : str
        tanh (default), relu or sigmoid for the hidden layers.
    seed : int, optional
        Seed for the initial weights.

    Examples
    --------
    >>> from chainrule.scalar import MLP
    >>> net = MLP(2, [4, 1], seed=0)
    >>> out = net([1.0, -2.0])
    >>> out.backward()
    >>> len(net.parameters())
    17
    """

    def __init__(self, n_inputs: int, sizes: Sequence[int], activation: str = "tanh", seed: int | None = None) -> None:
        if activation not in ("tanh", "relu", "sigmoid"):
            raise ValueError(f"MLP: activation must be tanh, relu or sigmoid, got {activation!r}")
        if not sizes or any(int(n) < 1 for n in sizes) or n_inputs < 1:
            raise ValueError(f"MLP: need n_inputs >= 1 and at least one layer of width >= 1, got {n_inputs}, {sizes}")
        import random  # here, not at the top: only the scalar MLPs need it

        rng = random.Random(seed)
        widths = [n_inputs, *sizes]
        self.layers = [
            Layer(widths[i], widths[i + 1], activation if i < len(sizes) - 1 else "linear", rng)
            for i in range(len(sizes))
        ]

    def __call__(self, x: Sequence[Any]) -> Any:  # a Value for one output, else a list of Values
        out: Any = x
        for layer in self.layers:
            out = layer(out)
            out = [out] if isinstance(out, Value) and layer is not self.layers[-1] else out
        return out

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]
