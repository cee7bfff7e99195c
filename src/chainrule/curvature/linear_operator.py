"""``CurvatureOperator``: a symmetric :math:`P \\times P` matrix known only through its products with vectors.

The Hessian, GGN and Fisher operators of :mod:`chainrule.curvature.operators` are instances. A product
accepts a flat vector (NumPy array or tensor, shape ``(P,)``), a block of vectors ``(P, k)``, or a list of
parameter-shaped arrays, and answers in the same form. Everything else — the dense matrix, the diagonal,
the trace, the top eigenpairs, CG solves — is built from products (:mod:`chainrule.curvature.linalg`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.curvature import linalg
from chainrule.curvature.params import ParameterSpace
from chainrule.errors import ArgumentError, ChainruleError, GradientError, ShapeError
from chainrule.tensor import Tensor, _wrap

__all__ = ["CurvatureOperator", "DENSE_LIMIT", "EXACT_LIMIT"]

#: ``to_dense()`` refuses operators larger than this many rows (a P × P float64 matrix of 2048 rows is 32 MiB
#: and takes 2048 products).
DENSE_LIMIT = 2048
#: ``method="auto"`` computes the diagonal and the trace exactly (P products with unit vectors) up to this P.
EXACT_LIMIT = 256


class CurvatureOperator:
    """A symmetric linear operator over the flattened parameters of a model.

    Parameters
    ----------
    name : str
        What it is, e.g. ``"Hessian"``, used in messages.
    matvec : callable
        ``matvec(v)`` for a flat NumPy vector of shape ``(P,)``, returning shape ``(P,)``.
    space : ParameterSpace
        The parameters: converts between flat vectors and lists of parameter-shaped arrays.

    Attributes
    ----------
    products : int
        How many products with vectors have been computed (the cost of everything done with it).

    Examples
    --------
    >>> import numpy as np
    >>> from chainrule import nn
    >>> space = ParameterSpace(nn.Linear(1, 1))
    >>> double = CurvatureOperator("2I", lambda v: 2 * v, space)
    >>> double.shape, (double @ np.array([1.0, 3.0])).tolist()
    ((2, 2), [2.0, 6.0])
    >>> double.trace(), double.eigh(1)[0].tolist()
    (4.0, [2.0])
    """

    def __init__(self, name: str, matvec: Callable[[np.ndarray], np.ndarray], space: ParameterSpace) -> None:
        self.name = name
        self.space = space
        self._matvec = matvec
        self.products = 0

    @property
    def shape(self) -> tuple[int, int]:
        """``(P, P)``."""
        return (self.space.size, self.space.size)

    @property
    def dtype(self) -> np.dtype:
        """The parameters' dtype; every vector is converted to it."""
        return self.space.dtype

    def __repr__(self) -> str:
        return f"CurvatureOperator({self.name}, shape={self.shape}, dtype={self.dtype})"

    # -- products ---------------------------------------------------------------------------------------
    def flat(self, value: Any) -> np.ndarray:
        """``value`` (flat vector, tensor or list of parameter-shaped arrays) as a flat array of shape ``(P,)``."""
        if isinstance(value, (list, tuple)):
            return self.space.flatten(value)
        array = linalg.real_array(self.name, "the vector", value, self.dtype)
        if array.shape != (self.space.size,):
            raise ShapeError(
                f"{self.name}: expected a vector of shape ({self.space.size},) or a list of arrays shaped like "
                f"{self.space.names}, got shape {array.shape}"
            )
        return array

    def like(self, flat: np.ndarray, template: Any) -> Any:
        """The flat vector ``flat`` in the form of ``template`` (array, tensor, or list of arrays/tensors)."""
        if isinstance(template, (list, tuple)):
            pieces = [piece.copy() for piece in self.space.unflatten(flat)]
            if template and isinstance(template[0], Tensor):
                return [_wrap(piece) for piece in pieces]
            return pieces
        return _wrap(flat) if isinstance(template, Tensor) else flat

    def _product(self, flat: np.ndarray) -> np.ndarray:
        if not np.all(np.isfinite(flat)):
            raise ArgumentError(f"{self.name}: the vector has a non-finite value")
        self.products += 1
        product = np.asarray(self._matvec(flat), dtype=self.dtype)
        if not np.all(np.isfinite(product)):
            raise GradientError(
                f"{self.name}: a product has a non-finite value (the curvature overflows at these parameters)"
            )
        return product

    def matvec(self, vector: Any) -> Any:
        """:math:`C v` for ``v`` of shape ``(P,)`` (array or tensor), ``(P, k)`` (k products, column by
        column) or a list of parameter-shaped arrays; the result has the same form."""
        if not isinstance(vector, (list, tuple)):
            array = linalg.real_array(self.name, "the vector", vector, self.dtype)
            if array.ndim == 2 and array.shape[0] == self.space.size:
                block = array
                columns = [self._product(block[:, j]) for j in range(block.shape[1])]
                result = np.stack(columns, axis=1) if columns else np.zeros((self.space.size, 0), self.dtype)
                return _wrap(result) if isinstance(vector, Tensor) else result
        return self.like(self._product(self.flat(vector)), vector)

    def __matmul__(self, vector: Any) -> Any:
        return self.matvec(vector)

    def block(self, *names: str) -> CurvatureOperator:
        """The diagonal block of the parameters ``names`` (e.g. ``"0.weight"``): the operator
        :math:`E^\top C E` over those coordinates alone, :math:`E` the embedding into the full vector.

        Each product embeds the vector with zeros elsewhere, multiplies by the whole operator and keeps
        the block's rows, so a block costs as much per product as the full operator.

        Examples
        --------
        >>> import numpy as np
        >>> from chainrule import nn
        >>> space = ParameterSpace(nn.Linear(2, 1))
        >>> C = CurvatureOperator("diag", lambda v: np.arange(1.0, 4.0) * v, space)
        >>> C.block("bias").to_dense().tolist()
        [[3.0]]
        """
        part, index = self.space.subset(list(names))

        def matvec(v: np.ndarray) -> np.ndarray:
            full = np.zeros(self.space.size, dtype=self.dtype)
            full[index] = v
            return self._product(full)[index]

        return CurvatureOperator(f"{self.name} block {', '.join(part.names)}", matvec, part)

    # -- derived quantities -------------------------------------------------------------------------------
    def to_dense(self, limit: int = DENSE_LIMIT) -> np.ndarray:
        """The full matrix, shape ``(P, P)``, from :math:`P` products with unit vectors.

        Refuses (``ArgumentError``) when :math:`P` exceeds ``limit``: use :meth:`diagonal`, :meth:`trace`
        or :meth:`eigh` instead, which need far fewer products.
        """
        size = self.space.size
        limit = linalg._positive_int(f"{self.name}.to_dense", "limit", limit)
        if size > limit:
            raise ArgumentError(
                f"{self.name}.to_dense: the model has {size:,} parameters, over the limit of {limit:,} "
                f"(a {size:,} × {size:,} matrix, {size:,} products); use diagonal(), trace() or eigh(), "
                "or pass a larger limit="
            )
        dense = self.matvec(np.eye(size, dtype=self.dtype))
        return np.asarray(dense)

    def diagonal(self, method: str = "auto", samples: int = 100, seed: int = 0) -> np.ndarray:
        """The diagonal, shape ``(P,)``: ``"exact"`` from :math:`P` unit vectors, ``"hutchinson"`` estimated
        from ``samples`` products (:func:`~chainrule.curvature.linalg.hutchinson_diagonal`); ``"auto"`` is
        exact up to :data:`EXACT_LIMIT` parameters."""
        method = self._method("diagonal", method, ("auto", "exact", "hutchinson"))
        if method == "exact":
            eye = np.eye(self.space.size, dtype=self.dtype)
            return np.array([self._product(eye[j])[j] for j in range(self.space.size)], dtype=self.dtype)
        return linalg.hutchinson_diagonal(self, samples=samples, seed=seed)

    def trace(self, method: str = "auto", samples: int = 99, seed: int = 0) -> float:
        """:math:`\\operatorname{tr} C`: ``"exact"`` (sum of the exact diagonal), ``"hutchinson"`` or
        ``"hutch++"`` from ``samples`` products; ``"auto"`` is exact up to :data:`EXACT_LIMIT` parameters,
        Hutch++ beyond (lower variance than Hutchinson for the decaying spectra of curvature matrices)."""
        method = self._method("trace", method, ("auto", "exact", "hutchinson", "hutch++"))
        if method == "exact":
            return float(np.sum(self.diagonal("exact")))
        if method == "hutchinson":
            return linalg.hutchinson_trace(self, samples=samples, seed=seed)
        return linalg.hutchpp_trace(self, samples=samples, seed=seed)

    def _method(self, owner: str, method: str, choices: Sequence[str]) -> str:
        if method not in choices:
            raise ArgumentError(f"{self.name}.{owner}: method must be one of {', '.join(choices)}, got {method!r}")
        if method == "auto":
            return "exact" if self.space.size <= EXACT_LIMIT else choices[-1]
        return method

    def eigh(
        self,
        k: int = 1,
        which: str = "largest",
        method: str = "lanczos",
        maxiter: int | None = None,
        tol: float = 1e-10,
        seed: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top-``k`` eigenvalues (shape ``(k,)``) and eigenvectors (shape ``(P, k)``, flat).

        ``method="lanczos"`` (the default) runs the built-in :func:`~chainrule.curvature.linalg.lanczos`
        with full reorthogonalisation: no dependency, deterministic for a seed, and no spurious copies of
        eigenvalues, at :math:`O(P m)` memory — right for the few extreme eigenvalues curvature analysis
        asks for. ``method="scipy"`` calls ARPACK (``scipy.sparse.linalg.eigsh`` on :meth:`to_scipy`),
        implicitly restarted and better for many eigenvalues of a large model; it needs SciPy (the
        ``curvature`` extra) and ``k < P``. ``which``: ``"largest"``, ``"smallest"`` or ``"magnitude"``.
        """
        if method == "lanczos":
            return linalg.lanczos(self, k=k, which=which, maxiter=maxiter, tol=tol, seed=seed)
        if method != "scipy":
            raise ArgumentError(f"{self.name}.eigh: method must be 'lanczos' or 'scipy', got {method!r}")
        owner = f"{self.name}.eigh"
        if which not in ("largest", "smallest", "magnitude"):
            raise ArgumentError(f"{owner}: which must be largest, smallest or magnitude, got {which!r}")
        k = linalg._positive_int(owner, "k", k)
        if not k < self.space.size:
            raise ArgumentError(f"{owner}: method='scipy' needs 1 <= k < {self.space.size}, got k={k}")
        maxiter = None if maxiter is None else linalg._positive_int(owner, "maxiter", maxiter)
        tol = linalg._finite_number(owner, "tol", tol)
        start = np.random.default_rng(linalg.check_seed(owner, seed)).standard_normal(self.space.size)
        code = {"largest": "LA", "smallest": "SA", "magnitude": "LM"}[which]
        try:
            from scipy.sparse.linalg import ArpackNoConvergence, eigsh
        except ImportError:
            raise ChainruleError(f"{owner}(method='scipy') needs SciPy: pip install 'chainrule[curvature]'") from None
        try:
            values, vectors = eigsh(self.to_scipy(), k=k, which=code, v0=start, maxiter=maxiter, tol=tol)
        except ArpackNoConvergence as error:
            raise ChainruleError(
                f"{owner}: ARPACK did not converge ({error}); pass a larger maxiter= or use method='lanczos'"
            ) from None
        order = linalg._select(values, k, which)
        return values[order], vectors[:, order]

    def to_scipy(self) -> Any:
        """A ``scipy.sparse.linalg.LinearOperator`` whose products call this operator (needs SciPy:
        ``pip install 'chainrule[curvature]'``)."""
        try:
            from scipy.sparse.linalg import LinearOperator
        except ImportError:
            raise ChainruleError(f"{self.name}.to_scipy needs SciPy: pip install 'chainrule[curvature]'") from None
        return LinearOperator(
            self.shape, matvec=lambda v: self._product(np.asarray(v, dtype=self.dtype).reshape(-1)),
            rmatvec=lambda v: self._product(np.asarray(v, dtype=self.dtype).reshape(-1)), dtype=self.dtype,
        )  # fmt: skip
