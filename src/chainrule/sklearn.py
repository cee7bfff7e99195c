"""scikit-learn estimators: :class:`MLPClassifier` and :class:`MLPRegressor` trained by chainrule.

They follow scikit-learn's conventions (hyperparameters stored as given in ``__init__`` and validated in
``fit``; fitted attributes end in ``_``; ``fit``/``partial_fit``/``predict``/``predict_proba``/``score``), so
they work in pipelines, grid searches and ``cross_val_score``. Inside, each is a
:class:`chainrule.nn.Sequential` MLP in float64 trained by :func:`chainrule.train.fit`, available after
fitting as ``model_``.

Needs scikit-learn (``pip install 'chainrule[datasets]'``).

Examples
--------
>>> from sklearn.datasets import load_iris
>>> from chainrule.sklearn import MLPClassifier
>>> X, y = load_iris(return_X_y=True)
>>> clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=500, random_state=0).fit(X, y)
>>> clf.score(X, y) > 0.9
True
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("chainrule.sklearn needs scikit-learn: pip install 'chainrule[datasets]'") from error

from chainrule import nn, rng
from chainrule.autograd import no_grad
from chainrule.nn.registry import ACTIVATIONS
from chainrule.tensor import Tensor
from chainrule.train.callbacks import Callback, EarlyStopping
from chainrule.train.loop import OPTIMIZERS, fit, make_optimizer

__all__ = ["MLPClassifier", "MLPRegressor"]

_SKLEARN_NAMES = {"logistic": "sigmoid"}  # scikit-learn's activation names that differ from ours


class _LossCurve(Callback):
    """Collects the training loss of every epoch into the estimator's ``loss_curve_``."""

    def __init__(self, curve: list[float]) -> None:
        self.curve = curve

    def on_epoch_end(self, state: Any) -> None:
        self.curve.append(float(state.record["loss"]))


class _BaseMLP(BaseEstimator):
    """The shared machinery: parameter checks, the network, the training loop."""

    _loss = "mse"

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (100,),
        activation: str = "relu",
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate_init: float = 0.001,
        max_iter: int = 200,
        momentum: float = 0.9,
        tol: float = 1e-4,
        n_iter_no_change: int = 10,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.momentum = momentum
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.verbose = verbose

    # -- validation --------------------------------------------------------------------------------
    def _check_params(self) -> list[int]:
        name = type(self).__name__
        given = self.hidden_layer_sizes
        sizes = [given] if isinstance(given, numbers.Integral) else list(given)
        if any(not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
            raise ValueError(f"{name}: hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        if _SKLEARN_NAMES.get(self.activation, self.activation) not in ACTIVATIONS:
            raise ValueError(f"{name}: unknown activation {self.activation!r}")
        if self.solver not in OPTIMIZERS:
            raise ValueError(f"{name}: solver must be one of {', '.join(OPTIMIZERS)}, got {self.solver!r}")
        checks = [
            ("alpha", self.alpha, 0.0, True),
            ("learning_rate_init", self.learning_rate_init, 0.0, False),
            ("tol", self.tol, 0.0, True),
            ("momentum", self.momentum, 0.0, True),
        ]
        for key, value, low, inclusive in checks:
            if (
                not isinstance(value, numbers.Real)
                or not np.isfinite(value)
                or value < low
                or (not inclusive and value == low)
            ):
                raise ValueError(
                    f"{name}: {key} must be a finite number {'>=' if inclusive else '>'} {low}, got {value!r}"
                )
        for key in ("max_iter", "n_iter_no_change"):
            value = getattr(self, key)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name}: {key} must be a positive integer, got {value!r}")
        if self.batch_size != "auto" and (not isinstance(self.batch_size, numbers.Integral) or self.batch_size < 1):
            raise ValueError(f"{name}: batch_size must be 'auto' or a positive integer, got {self.batch_size!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"{name}: validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        return [int(s) for s in sizes]

    def _build(self, n_features: int, n_outputs: int, sizes: list[int]) -> nn.Module:
        activation = ACTIVATIONS[_SKLEARN_NAMES.get(self.activation, self.activation)]
        layers: list[nn.Module] = []
        width = n_features
        for size in sizes:
            layers += [nn.Linear(width, size), activation()]
            width = size
        layers.append(nn.Linear(width, n_outputs))
        return nn.Sequential(*layers).double()

    def _optimizer(self) -> Any:
        return make_optimizer(
            self.solver, self.model_.parameters(), lr=self.learning_rate_init, weight_decay=self.alpha,
            momentum=self.momentum,
        )  # fmt: skip

    # -- training ----------------------------------------------------------------------------------
    def _train(self, X: np.ndarray, targets: np.ndarray, n_outputs: int, epochs: int, incremental: bool) -> None:
        sizes = self._check_params()
        if not incremental or not hasattr(self, "model_"):
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            self._generator = np.random.default_rng(seed)
            with rng.using(self._generator):
                self.model_ = self._build(X.shape[1], n_outputs, sizes)
            self._solver = self._optimizer()
            self.loss_curve_: list[float] = []
            self.n_iter_ = 0
        batch_size = min(200, len(X)) if self.batch_size == "auto" else min(int(self.batch_size), len(X))
        callbacks: list[Callback] = [_LossCurve(self.loss_curve_)]
        validate = self.early_stopping and not incremental and len(X) >= 10
        if not incremental:
            monitor = "val_loss" if validate else "loss"
            callbacks.append(
                EarlyStopping(monitor, patience=self.n_iter_no_change, min_delta=self.tol, restore_best=validate)
            )
        with rng.using(self._generator):
            history = fit(
                self.model_,
                (X, targets),
                loss=self._loss,
                optimizer=self._solver,
                epochs=epochs,
                batch_size=batch_size,
                val_split=self.validation_fraction if validate else None,
                metrics=[],
                callbacks=callbacks,
                verbose=2 if self.verbose else 0,
            )
        self.n_iter_ += len(history)
        self.loss_ = self.loss_curve_[-1]
        if not incremental and len(history) == epochs and epochs == self.max_iter:
            warnings.warn(
                f"{type(self).__name__}: stopped after max_iter={self.max_iter} epochs without converging "
                f"(tol={self.tol}); raise max_iter or learning_rate_init",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _forward(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        self.model_.eval()
        with no_grad():
            return self.model_(Tensor(X)).data


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multi-layer perceptron classifier trained with cross-entropy by chainrule.

    Parameters follow :class:`sklearn.neural_network.MLPClassifier`: ``hidden_layer_sizes``,
    ``activation`` (relu, tanh, logistic, identity, or any of chainrule's: gelu, silu, elu, …), ``solver``
    (adam, sgd, adamw, rmsprop, adagrad), ``alpha`` (L2, as the optimizer's weight decay),
    ``batch_size`` (``"auto"`` = min(200, n)), ``learning_rate_init``, ``max_iter`` (epochs), ``momentum``
    (sgd/rmsprop), ``tol`` and ``n_iter_no_change`` (stop when the training loss — or with
    ``early_stopping`` the validation loss — stops improving), ``validation_fraction``, ``random_state``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    model_ : chainrule.nn.Sequential
    loss_, loss_curve_, n_iter_, n_features_in_
    """

    _loss = "cross_entropy"

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train from scratch for up to ``max_iter`` epochs. Shapes: X (n_samples, n_features), y (n_samples,)."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self._encoder = LabelEncoder().fit(y)
        self.classes_ = self._encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"MLPClassifier: y has 1 class ({self.classes_[0]!r}); need at least 2 classes")
        self._train(X, self._encoder.transform(y).astype(np.int64), len(self.classes_), self.max_iter, False)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y). The first call needs ``classes``, every label that will ever appear."""
        first = not hasattr(self, "model_")
        X, y = validate_data(self, X, y, dtype=np.float64, reset=first)
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ValueError("MLPClassifier.partial_fit: the first call needs classes=, all labels to expect")
            self._encoder = LabelEncoder().fit(np.asarray(classes))
            self.classes_ = self._encoder.classes_
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if len(unknown):
            raise ValueError(
                f"MLPClassifier.partial_fit: labels {unknown.tolist()} are not in classes {self.classes_.tolist()}"
            )
        self._train(X, self._encoder.transform(y).astype(np.int64), len(self.classes_), 1, True)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (softmax of the outputs), shape (n_samples, n_classes)."""
        scores = self._forward(X)
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample, shape (n_samples,)."""
        scores = self._forward(X)  # first: raises NotFittedError before classes_ exists
        return self.classes_[scores.argmax(axis=1)]


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multi-layer perceptron regressor trained with the mean squared error by chainrule.

    Parameters as :class:`MLPClassifier`. Targets may be 1-d (n_samples,) or 2-d (n_samples, n_targets).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.linspace(-1, 1, 200)[:, None]
    >>> reg = MLPRegressor(hidden_layer_sizes=(32,), activation="tanh", learning_rate_init=0.01,
    ...                    max_iter=500, random_state=0).fit(X, X[:, 0] ** 2)
    >>> reg.score(X, X[:, 0] ** 2) > 0.95
    True
    """

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # 2-d targets are several outputs, not a column to ravel
        return tags

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        """Train from scratch for up to ``max_iter`` epochs."""
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=True)
        self._train(X, self._targets(y, True), 1 if y.ndim == 1 else y.shape[1], self.max_iter, False)
        return self

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over (X, y)."""
        first = not hasattr(self, "model_")
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=True, reset=first)
        self._train(X, self._targets(y, first), 1 if y.ndim == 1 else y.shape[1], 1, True)
        return self

    def _targets(self, y: np.ndarray, first: bool) -> np.ndarray:
        if first:
            self._single_output = y.ndim == 1
        return np.asarray(y, dtype=np.float64).reshape(len(y), -1)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions, shape (n_samples,) for 1-d targets, else (n_samples, n_targets)."""
        out = self._forward(X)
        return out[:, 0] if self._single_output else out
