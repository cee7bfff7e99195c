"""Matrix-free linear algebra on symmetric operators: Lanczos spectra, Hutchinson and Hutch++ traces and
diagonals, and conjugate-gradient solves.

Every function takes an *operator*: a square NumPy array, or any object with ``shape == (P, P)`` and
``matvec(v)`` mapping a vector of shape ``(P,)`` to ``(P,)`` (a
:class:`~chainrule.curvature.CurvatureOperator` or a ``scipy.sparse.linalg.LinearOperator``). Only
products with vectors are used, so the matrix is never formed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.errors import ArgumentError, DTypeError, ShapeError
from chainrule.tensor import Tensor

__all__ = ["lanczos", "hutchinson_trace", "hutchpp_trace", "hutchinson_diagonal", "cg", "CGResult", "check_seed"]

Matvec = Callable[[np.ndarray], np.ndarray]


def _as_matvec(operator: Any, owner: str, symmetric: bool = False) -> tuple[Matvec, int, np.dtype]:
    """``(matvec on flat vectors, P, dtype)`` for an array or an operator object.

    The matvec refuses a product with NaN or Inf (``ArgumentError``) rather than letting it spread into the
    result; with ``symmetric=True`` an array must be symmetric (Lanczos and CG assume it).
    """
    if isinstance(operator, np.ndarray):
        if operator.ndim != 2 or operator.shape[0] != operator.shape[1]:
            raise ShapeError(f"{owner}: expected a square matrix, got shape {operator.shape}")
        if operator.dtype.kind not in "biuf":
            raise DTypeError(f"{owner}: expected a real matrix (float, int or bool), got dtype {operator.dtype}")
        matrix = operator
        dtype = matrix.dtype if matrix.dtype.kind == "f" else np.dtype(np.float64)
        if not np.all(np.isfinite(matrix)):
            raise ArgumentError(f"{owner}: the matrix has a non-finite value (NaN or Inf)")
        scale = max(1.0, float(np.abs(matrix).max(initial=0)))
        if symmetric and not np.allclose(matrix, matrix.T, rtol=1e-6, atol=1e-12 * scale):
            gap = float(np.abs(matrix - matrix.T).max())
            raise ArgumentError(f"{owner}: the matrix is not symmetric (|A - Aᵀ| up to {gap:.3g})")
        raw: Matvec = lambda v: matrix @ v  # noqa: E731
    else:
        shape = getattr(operator, "shape", None)
        if not callable(getattr(operator, "matvec", None)) or shape is None or len(shape) != 2 or shape[0] != shape[1]:
            raise ArgumentError(
                f"{owner}: expected a square array or an operator with shape (P, P) and matvec(), "
                f"got {type(operator).__name__}"
            )
        dtype = np.dtype(getattr(operator, "dtype", None) or np.float64)
        if dtype.kind not in "f":
            dtype = np.dtype(np.float64)
        raw = lambda v: np.asarray(operator.matvec(v)).reshape(-1)  # noqa: E731

    def matvec(v: np.ndarray) -> np.ndarray:
        product = raw(v)
        if not np.all(np.isfinite(product)):
            raise ArgumentError(f"{owner}: a product with the operator has a non-finite value (NaN or Inf)")
        return product

    return matvec, int(operator.shape[0]), dtype


def real_array(owner: str, name: str, value: Any, dtype: np.dtype) -> np.ndarray:
    """``value`` (array-like or tensor) as an array of ``dtype``; refuses complex, string and object data
    (``DTypeError``) instead of dropping imaginary parts or failing inside NumPy."""
    data = value.data if isinstance(value, Tensor) else value
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as error:  # ragged nested lists
        raise ShapeError(f"{owner}: {name} is not a rectangular array ({error})") from None
    if array.dtype.kind not in "biuf":
        raise DTypeError(f"{owner}: {name} must be real numbers (float, int or bool), got dtype {array.dtype}")
    return array.astype(dtype, copy=False)


def check_seed(owner: str, seed: Any) -> int:
    """``seed`` as an ``int``, or an ``ArgumentError`` unless it is a non-negative integer (as for
    :func:`chainrule.manual_seed`)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ArgumentError(f"{owner}: seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _positive_int(owner: str, name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ArgumentError(f"{owner}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _finite_number(owner: str, name: str, value: Any) -> float:
    """``value`` as a float, or an ``ArgumentError`` unless it is a finite real number >= 0 (bools refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ArgumentError(f"{owner}: {name} must be a finite number >= 0, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ArgumentError(f"{owner}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _rademacher(generator: np.random.Generator, size: int, count: int, dtype: np.dtype) -> np.ndarray:
    """``(size, count)`` random signs ±1."""
    return (generator.integers(0, 2, size=(size, count)) * 2 - 1).astype(dtype)


def _apply(matvec: Matvec, block: np.ndarray) -> np.ndarray:
    """``A @ block`` column by column, for ``block`` of shape ``(P, k)``."""
    return np.stack([matvec(block[:, j]) for j in range(block.shape[1])], axis=1) if block.shape[1] else block


def hutchinson_trace(operator: Any, samples: int = 30, seed: int = 0) -> float:
    """Hutchinson's estimate :math:`\\operatorname{tr} A \\approx \\frac1m \\sum_{i=1}^m z_i^\\top A z_i`.

    With Rademacher vectors :math:`z_i` (entries ±1) the estimate is unbiased with variance
    :math:`\\frac2m (\\|A\\|_F^2 - \\sum_j A_{jj}^2)`. Costs ``samples`` products.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.diag([1.0, 2.0, 3.0])
    >>> hutchinson_trace(A, samples=5)   # exact for a diagonal matrix: z_j² = 1
    6.0
    """
    matvec, size, dtype = _as_matvec(operator, "hutchinson_trace")
    samples = _positive_int("hutchinson_trace", "samples", samples)
    seed = check_seed("hutchinson_trace", seed)
    probes = _rademacher(np.random.default_rng(seed), size, samples, dtype)  # (P, m)
    return float(np.sum(probes * _apply(matvec, probes)) / samples)


def hutchpp_trace(operator: Any, samples: int = 30, seed: int = 0) -> float:
    """Hutch++ (Meyer, Musco, Musco & Woodruff 2021): exact trace of a sketched top subspace plus
    Hutchinson on the rest.

    With :math:`m` products: :math:`S, G \\in \\{\\pm1\\}^{P \\times m/3}`, :math:`Q = \\operatorname{orth}(AS)`,

    .. math:: \\operatorname{tr} A \\approx \\operatorname{tr}(Q^\\top A Q)
              + \\tfrac{3}{m} \\operatorname{tr}\\big(G^\\top (I - QQ^\\top) A (I - QQ^\\top) G\\big).

    Its error falls as :math:`1/m` rather than :math:`1/\\sqrt m` when the spectrum decays, as curvature
    spectra do. ``samples`` (at least 3) is the number of products.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.diag([100.0, 1.0, 0.01, 0.0])
    >>> round(hutchpp_trace(A, samples=12), 6)     # the sketch spans all four directions: exact
    101.01
    """
    matvec, size, dtype = _as_matvec(operator, "hutchpp_trace")
    samples = _positive_int("hutchpp_trace", "samples", samples, low=3)
    seed = check_seed("hutchpp_trace", seed)
    generator = np.random.default_rng(seed)
    third = samples // 3
    sketch = _rademacher(generator, size, third, dtype)  # (P, m/3)
    basis, _ = np.linalg.qr(_apply(matvec, sketch))  # (P, ≤m/3)
    top = float(np.trace(basis.T @ _apply(matvec, basis)))
    rest = samples - 2 * third
    probes = _rademacher(generator, size, rest, dtype)
    probes -= basis @ (basis.T @ probes)  # (I − QQᵀ) G
    return top + float(np.sum(probes * _apply(matvec, probes)) / rest)


def hutchinson_diagonal(operator: Any, samples: int = 30, seed: int = 0) -> np.ndarray:
    """Estimate :math:`\\operatorname{diag} A \\approx \\frac1m \\sum_i z_i \\odot A z_i` with Rademacher
    :math:`z_i` (Bekas, Kokiopoulou & Saad 2007). Unbiased; costs ``samples`` products. Shape ``(P,)``.

    Examples
    --------
    >>> import numpy as np
    >>> hutchinson_diagonal(np.diag([1.0, 2.0]), samples=3).tolist()
    [1.0, 2.0]
    """
    matvec, size, dtype = _as_matvec(operator, "hutchinson_diagonal")
    samples = _positive_int("hutchinson_diagonal", "samples", samples)
    seed = check_seed("hutchinson_diagonal", seed)
    probes = _rademacher(np.random.default_rng(seed), size, samples, dtype)
    return np.asarray(np.mean(probes * _apply(matvec, probes), axis=1))


_WHICH = ("largest", "smallest", "magnitude")


def lanczos(
    operator: Any,
    k: int = 1,
    which: str = "largest",
    maxiter: int | None = None,
    tol: float = 1e-10,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` eigenpairs of a symmetric operator by Lanczos with full reorthogonalisation.

    Lanczos builds an orthonormal basis :math:`Q_m` of the Krylov space
    :math:`\\{q, Aq, \\dots, A^{m-1}q\\}` in which :math:`T_m = Q_m^\\top A Q_m` is tridiagonal; the
    eigenpairs of :math:`T_m` (Ritz pairs) converge to the extreme eigenpairs of :math:`A` first. Every new
    vector is orthogonalised again against all earlier ones (twice), which removes the spurious copies of
    converged eigenvalues plain Lanczos produces in floating point: :math:`O(P m)` memory, fine for the small
    ``k`` this is meant for. When the Krylov space closes (an invariant subspace, e.g. a low-rank GGN) the
    iteration restarts with a fresh random vector orthogonal to the basis, so with ``m = P`` the result is
    the exact spectrum, and a repeated eigenvalue is found as often as ``k`` needs once the first
    invariant subspace has closed (before that, like every single-vector Krylov method, it sees each
    distinct eigenvalue once). It stops when the residual bound :math:`|\\beta_m s_{mi}|` of each wanted Ritz pair
    is below ``tol`` times the largest Ritz value's magnitude.

    Parameters
    ----------
    operator : array or operator
        Symmetric, ``(P, P)``.
    k : int
        How many eigenpairs.
    which : {"largest", "smallest", "magnitude"}
        Algebraically largest, smallest, or largest in absolute value.
    maxiter : int, optional
        Lanczos steps (products); default ``min(P, max(4k, 40))``, at most ``P``.
    tol : float
        Relative residual at which a Ritz pair counts as converged.
    seed : int
        Seeds the start vector.

    Returns
    -------
    (values, vectors)
        ``values`` shape ``(k,)`` in the order ``which`` asks for (largest first), ``vectors`` shape
        ``(P, k)`` with orthonormal columns.

    Examples
    --------
    >>> import numpy as np
    >>> values, vectors = lanczos(np.diag([3.0, -5.0, 1.0, 2.0]), k=2)
    >>> np.round(values, 12).tolist()
    [3.0, 2.0]
    >>> np.round(lanczos(np.diag([3.0, -5.0, 1.0, 2.0]), k=1, which="magnitude")[0], 12).tolist()
    [-5.0]
    """
    matvec, size, dtype = _as_matvec(operator, "lanczos", symmetric=True)
    k = _positive_int("lanczos", "k", k)
    if k > size:
        raise ArgumentError(f"lanczos: k={k} exceeds the operator's size {size}")
    if which not in _WHICH:
        raise ArgumentError(f"lanczos: which must be one of {', '.join(_WHICH)}, got {which!r}")
    steps = min(size, max(4 * k, 40)) if maxiter is None else _positive_int("lanczos", "maxiter", maxiter)
    steps = max(min(steps, size), k)
    tol = _finite_number("lanczos", "tol", tol)
    seed = check_seed("lanczos", seed)
    work = np.float64 if dtype.itemsize >= 8 else dtype
    generator = np.random.default_rng(seed)
    basis = np.zeros((steps + 1, size), dtype=work)  # rows q_0 … q_m
    alphas, betas = np.zeros(steps), np.zeros(steps)
    start = generator.standard_normal(size)
    basis[0] = start / np.linalg.norm(start)
    done = 0
    restarted = False
    for j in range(steps):
        w = np.asarray(matvec(basis[j].astype(dtype)), dtype=work)
        alphas[j] = basis[j] @ w
        for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        betas[j] = np.linalg.norm(w)
        done = j + 1
        scale = max(np.max(np.abs(alphas[:done])), 1e-300)
        if done == size:
            break
        closed = betas[j] <= 1e-12 * scale
        if closed:  # an invariant subspace: its Ritz values are exact; restart orthogonally to the basis
            betas[j] = 0.0
            fresh = generator.standard_normal(size)
            for _ in range(2):
                fresh -= basis[:done].T @ (basis[:done] @ fresh)
            basis[j + 1] = fresh / np.linalg.norm(fresh)
        else:
            basis[j + 1] = w / betas[j]
        # A random start sees each distinct eigenvalue once; only after the first invariant subspace has
        # closed and the complement been probed can a repeated eigenvalue (a null space) be counted right.
        may_stop = not closed or restarted
        restarted = restarted or closed
        if may_stop and done >= k and _converged(alphas[:done], betas[:done], k, which, tol):
            break
    values, ritz = np.linalg.eigh(
        np.diag(alphas[:done]) + np.diag(betas[: done - 1], 1) + np.diag(betas[: done - 1], -1)
    )
    chosen = _select(values, k, which)
    vectors = basis[:done].T @ ritz[:, chosen]
    return values[chosen].astype(dtype), vectors.astype(dtype)


def _select(values: np.ndarray, k: int, which: str) -> np.ndarray:
    if which == "largest":
        return np.argsort(-values, kind="stable")[:k]
    if which == "smallest":
        return np.argsort(values, kind="stable")[:k]
    return np.argsort(-np.abs(values), kind="stable")[:k]


def _converged(alphas: np.ndarray, betas: np.ndarray, k: int, which: str, tol: float) -> bool:
    """Whether the ``k`` wanted Ritz pairs of the tridiagonal matrix have residual ≤ tol·max|θ|."""
    m = len(alphas)
    values, ritz = np.linalg.eigh(np.diag(alphas) + np.diag(betas[:-1], 1) + np.diag(betas[:-1], -1))
    chosen = _select(values, k, which)
    residuals = np.abs(betas[-1] * ritz[m - 1, chosen])
    return bool(np.all(residuals <= tol * max(np.max(np.abs(values)), 1e-300)))


@dataclass
class CGResult:
    """The outcome of :func:`cg`.

    Attributes
    ----------
    x : array or list of arrays
        The solution, in the form ``b`` was given in.
    converged : bool
        Whether :math:`\\|b - (C + \\lambda I)x\\| \\le \\mathrm{tol}\\,\\|b\\|` was reached.
    iterations : int
        CG steps taken (one operator product each).
    residual_norm : float
        The final relative residual :math:`\\|b - (C+\\lambda I)x\\| / \\|b\\|`, recomputed with a product.
    residuals : list of float
        The relative residual after each step (CG's recurrence).
    reason : str
        ``"converged"``, ``"maxiter"`` or ``"non-positive curvature"`` (a direction with
        :math:`p^\\top (C + \\lambda I) p \\le 0`: the damped operator is not positive definite).
    """

    x: Any
    converged: bool
    iterations: int
    residual_norm: float
    residuals: list[float] = field(default_factory=list)
    reason: str = "converged"

    def __str__(self) -> str:
        state = "converged" if self.converged else f"did NOT converge ({self.reason})"
        return f"CG {state} in {self.iterations} iterations, relative residual {self.residual_norm:.3g}"


def cg(
    operator: Any,
    b: Any,
    damping: float = 0.0,
    tol: float = 1e-10,
    maxiter: int | None = None,
    x0: Any = None,
) -> CGResult:
    """Solve :math:`(C + \\lambda I)\\,x = b` by conjugate gradients, using only products with :math:`C`.

    CG needs :math:`C + \\lambda I` symmetric positive definite: the GGN and the Fisher are positive
    semi-definite, so any :math:`\\lambda > 0` works (a natural-gradient step is
    :math:`x = (F + \\lambda I)^{-1} \\nabla L`); the Hessian may be indefinite away from a minimum, and then
    CG stops at the first direction of non-positive curvature and says so in ``reason``. In exact
    arithmetic CG finishes in at most :math:`P` steps; each step costs one product. Stopping at non-positive
    curvature also issues a ``RuntimeWarning`` (the returned ``x`` is then no solution), with a lower bound on the
    damping the operator would need.

    Parameters
    ----------
    operator : CurvatureOperator, array or operator
        :math:`C`, shape ``(P, P)``.
    b : array, tensor, or list of parameter-shaped arrays
        Right-hand side; a list needs a :class:`~chainrule.curvature.CurvatureOperator`.
    damping : float
        :math:`\\lambda \\ge 0`.
    tol : float
        Stop when the relative residual :math:`\\|r\\|/\\|b\\|` is at most ``tol``.
    maxiter : int, optional
        Default ``10 P``.
    x0 : like b, optional
        Start (default zero).

    Returns
    -------
    CGResult
        ``x`` in the form of ``b``, with the convergence report; ``str(result)`` says it in one line.

    Examples
    --------
    >>> import numpy as np
    >>> result = cg(np.array([[4.0, 1.0], [1.0, 3.0]]), np.array([1.0, 2.0]), damping=1.0)
    >>> np.round(result.x, 6).tolist(), result.converged
    ([0.105263, 0.473684], True)
    >>> print(result)
    CG converged in 2 iterations, relative residual 0
    """
    matvec, size, dtype = _as_matvec(operator, "cg", symmetric=True)
    damping = _finite_number("cg", "damping", damping)
    tol = _finite_number("cg", "tol", tol)
    maxiter = 10 * size if maxiter is None else _positive_int("cg", "maxiter", maxiter)
    # a CurvatureOperator converts lists of parameter-shaped arrays; an array or SciPy operator takes flat vectors
    converts = not isinstance(operator, np.ndarray) and callable(getattr(operator, "like", None))
    to_flat = operator.flat if converts else None
    from_flat = operator.like if converts else None
    rhs = to_flat(b) if to_flat else real_array("cg", "b", b, dtype)
    if rhs.shape != (size,):
        raise ShapeError(f"cg: b has shape {rhs.shape}, the operator is {size} × {size}")
    if not np.all(np.isfinite(rhs)):
        raise ArgumentError("cg: b has a non-finite value")

    def damped(v: np.ndarray) -> np.ndarray:
        return np.asarray(matvec(v), dtype=dtype) + damping * v

    x = np.zeros(size, dtype=dtype) if x0 is None else (to_flat(x0) if to_flat else real_array("cg", "x0", x0, dtype))
    if x.shape != (size,):
        raise ShapeError(f"cg: x0 has shape {x.shape}, the operator is {size} × {size}")
    if not np.all(np.isfinite(x)):
        raise ArgumentError("cg: x0 has a non-finite value")
    b_norm = float(np.linalg.norm(rhs))
    result = CGResult(x, True, 0, 0.0)
    if b_norm == 0:
        result.x = from_flat(np.zeros(size, dtype=dtype), b) if from_flat else np.zeros(size, dtype=dtype)
        return result
    residual = rhs - damped(x) if x0 is not None else rhs.copy()
    direction = residual.copy()
    rho = float(residual @ residual)
    reason = "maxiter"
    iterations = 0
    if math.sqrt(rho) <= tol * b_norm:
        reason = "converged"
    else:
        for iterations in range(1, maxiter + 1):
            product = damped(direction)
            curvature = float(direction @ product)
            if not curvature > 0:
                reason = "non-positive curvature"
                iterations -= 1
                rayleigh = (curvature / float(direction @ direction) - damping) or 0.0  # pᵀCp/pᵀp >= λmin(C)
                needed = max(0.0, -rayleigh)
                warnings.warn(
                    f"cg: stopped after {iterations} iterations at a direction of non-positive curvature: "
                    f"C + λI (damping={damping:g}) is not positive definite, so x does not solve the system; C has "
                    f"an eigenvalue <= {rayleigh:.3g}: raise damping above {needed:.3g} at least, or use the GGN "
                    "or the Fisher, which are positive semi-definite",
                    RuntimeWarning,
                    stacklevel=2,
                )
                break
            step = rho / curvature
            x = x + step * direction
            residual = residual - step * product
            rho_next = float(residual @ residual)
            result.residuals.append(math.sqrt(rho_next) / b_norm)
            if math.sqrt(rho_next) <= tol * b_norm:
                reason = "converged"
                break
            direction = residual + (rho_next / rho) * direction
            rho = rho_next
    result.iterations = iterations
    result.residual_norm = float(np.linalg.norm(rhs - damped(x)) / b_norm)
    result.reason = reason
    result.converged = reason == "converged"
    result.x = from_flat(x, b) if from_flat else x
    return result
