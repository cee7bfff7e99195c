"""The model's trainable parameters as one flat vector, and the model evaluated at another such vector.

Curvature operators act on :math:`\\theta \\in \\mathbb{R}^P`, every trainable parameter flattened (C order)
and concatenated in :meth:`~chainrule.nn.Module.named_parameters` order. :class:`ParameterSpace` converts
between that vector and the list of parameter-shaped arrays, and :meth:`ParameterSpace.call` runs the
model with its parameters replaced by slices of a tensor :math:`\\theta`, so that the function transforms of
:mod:`chainrule.func` can differentiate the model's output with respect to :math:`\\theta`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from chainrule.curvature.linalg import real_array
from chainrule.errors import ArgumentError, DTypeError, ShapeError
from chainrule.functions import as_tensor
from chainrule.nn.module import Module
from chainrule.tensor import Tensor

__all__ = ["ParameterSpace"]


class ParameterSpace:
    """The trainable parameters of ``model``: names, shapes and offsets in the flat vector.

    Parameters
    ----------
    model : Module
        Its parameters with ``requires_grad=True`` make up the space (frozen ones stay fixed). A parameter
        shared by two modules appears once. All must have the same floating dtype.

    Attributes
    ----------
    names : list of str
        Dotted names, as in ``named_parameters()``.
    shapes : list of tuple
        Each parameter's shape.
    offsets : list of int
        Where each parameter starts in the flat vector; ``offsets[-1]`` is the size :math:`P`.
    dtype : numpy.dtype
        The parameters' dtype, used for every vector of the space.

    Examples
    --------
    >>> from chainrule import nn
    >>> space = ParameterSpace(nn.Linear(3, 2))
    >>> space.names, space.shapes, space.size
    (['weight', 'bias'], [(2, 3), (2,)], 8)
    >>> [a.shape for a in space.unflatten(space.vector())]
    [(2, 3), (2,)]
    """

    def __init__(self, model: Module) -> None:
        if not isinstance(model, Module):
            raise ArgumentError(f"curvature: model must be a chainrule nn.Module, got {type(model).__name__}")
        self.model = model
        params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        if not params:
            raise ArgumentError(f"curvature: {type(model).__name__} has no trainable parameters")
        dtypes = {p.dtype for _, p in params}
        if len(dtypes) != 1 or next(iter(dtypes)).kind != "f":
            raise DTypeError(
                f"curvature: the trainable parameters must share one float dtype, got {sorted(map(str, dtypes))}"
            )
        self.names = [name for name, _ in params]
        self.shapes = [tuple(p.shape) for _, p in params]
        self.offsets = [0, *np.cumsum([int(np.prod(s, dtype=np.int64)) for s in self.shapes]).tolist()]
        self.dtype = np.dtype(next(iter(dtypes)))
        slot = {id(p): index for index, (_, p) in enumerate(params)}
        # every (module, attribute) that holds a trainable parameter, shared ones included
        self._holders = [
            (module, attribute, slot[id(p)])
            for module in model.modules()
            for attribute, p in module._parameters.items()
            if p is not None and id(p) in slot
        ]
        self._params = [p for _, p in params]

    def subset(self, names: Sequence[str]) -> tuple[ParameterSpace, np.ndarray]:
        """The space of the parameters ``names`` alone, and their coordinates in this space's flat vector.

        The subset converts vectors like the whole space (``flatten``, ``unflatten``) but cannot
        :meth:`call` the model; :meth:`CurvatureOperator.block` uses it.
        """
        if not names:
            raise ArgumentError(f"curvature: block() needs at least one parameter name, one of {self.names}")
        unknown = [name for name in names if name not in self.names]
        if unknown:
            raise ArgumentError(f"curvature: unknown parameters {unknown}; the model has {self.names}")
        chosen = [self.names.index(name) for name in dict.fromkeys(names)]
        part = object.__new__(ParameterSpace)
        part.model, part.dtype, part._holders = self.model, self.dtype, []
        part.names = [self.names[i] for i in chosen]
        part.shapes = [self.shapes[i] for i in chosen]
        part.offsets = [0, *np.cumsum([self.offsets[i + 1] - self.offsets[i] for i in chosen]).tolist()]
        part._params = [self._params[i] for i in chosen]
        index = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in chosen])
        return part, index

    @property
    def size(self) -> int:
        """:math:`P`, the number of trainable scalars."""
        return int(self.offsets[-1])

    def vector(self) -> np.ndarray:
        """A copy of the current parameter values as one flat vector of shape ``(P,)``."""
        return np.concatenate([np.asarray(p.data, dtype=self.dtype).ravel() for p in self._params])

    def flatten(self, values: Sequence[Any]) -> np.ndarray:
        """Concatenate parameter-shaped arrays (or tensors) into one flat vector of shape ``(P,)``."""
        if len(values) != len(self.shapes):
            raise ShapeError(f"curvature: got {len(values)} arrays for {len(self.shapes)} parameters {self.names}")
        parts = []
        for name, shape, value in zip(self.names, self.shapes, values):
            array = real_array("curvature", f"the array for {name!r}", value, self.dtype)
            if array.shape != shape:
                raise ShapeError(f"curvature: the array for {name!r} has shape {array.shape}, expected {shape}")
            parts.append(array.ravel())
        return np.concatenate(parts)

    def unflatten(self, flat: np.ndarray) -> list[np.ndarray]:
        """Split a flat vector of shape ``(P,)`` into parameter-shaped arrays (views)."""
        flat = np.asarray(flat)
        if flat.shape != (self.size,):
            raise ShapeError(f"curvature: expected a vector of shape ({self.size},), got {flat.shape}")
        return [flat[a:b].reshape(s) for a, b, s in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]

    @contextmanager
    def substituted(self, theta: Tensor) -> Iterator[None]:
        """Inside the block the model's trainable parameters are slices of ``theta`` (shape ``(P,)``)."""
        pieces = [theta[a:b].reshape(s) for a, b, s in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]
        saved = [(module, attribute, module._parameters[attribute]) for module, attribute, _ in self._holders]
        try:
            for module, attribute, index in self._holders:
                module._parameters[attribute] = pieces[index]
            yield
        finally:
            for module, attribute, original in saved:
                module._parameters[attribute] = original

    def call(self, theta: Tensor, inputs: Any) -> Tensor:
        """``model(inputs)`` with the parameters taken from ``theta``: differentiable in ``theta``."""
        with self.substituted(theta):
            return as_tensor(self.model(inputs))
