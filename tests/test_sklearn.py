"""The scikit-learn estimators pass scikit-learn's own estimator checks and learn like sklearn's MLP."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimators need scikit-learn (pip install 'chainrule[datasets]')")

from sklearn.datasets import load_digits, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from chainrule.sklearn import MLPClassifier, MLPRegressor


@pytest.mark.parametrize("estimator", [MLPClassifier(max_iter=50), MLPRegressor(max_iter=50)], ids=type)
def test_passes_scikit_learn_estimator_checks(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_estimator(estimator)


def test_classifier_learns_digits_like_scikit_learn():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), max_iter=60, random_state=0))
    clf.fit(X_train, y_train)
    assert clf.score(X_test, y_test) > 0.95
    proba = clf.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_, np.arange(10))


def test_random_state_makes_fits_identical_and_partial_fit_continues():
    X, y = load_digits(return_X_y=True)
    X = X[:300] / 16.0
    y = y[:300]
    a = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=3)
    b = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert a.fit(X, y).loss_curve_ == b.fit(X, y).loss_curve_
    online = MLPClassifier(hidden_layer_sizes=(16,), random_state=0)
    online.partial_fit(X, y, classes=np.arange(10))
    first = online.loss_
    for _ in range(5):
        online.partial_fit(X, y)
    assert online.n_iter_ == 6 and online.loss_ < first
    with pytest.raises(ValueError, match="labels \\[11\\] are not in classes"):
        online.partial_fit(X[:2], np.array([11, 1]))


def test_regressor_matches_the_least_squares_fit():
    X, y = make_regression(n_samples=300, n_features=4, noise=5.0, random_state=0)
    y = y / y.std()  # targets of unit scale, as for any gradient-trained regressor
    reg = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(), learning_rate_init=0.05, max_iter=300,
                                                       random_state=0))  # fmt: skip
    reg.fit(X, y)
    design = np.hstack([X, np.ones((300, 1))])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    best = np.mean((design @ coef - y) ** 2)
    assert np.mean((reg.predict(X) - y) ** 2) <= 1.05 * best


def test_bad_hyperparameters_are_rejected_in_fit_not_init():
    clf = MLPClassifier(hidden_layer_sizes=(0,))  # scikit-learn convention: __init__ only stores
    with pytest.raises(ValueError, match="hidden_layer_sizes must be positive integers"):
        clf.fit(np.zeros((4, 2)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="solver must be one of"):
        MLPRegressor(solver="lbfgs").fit(np.zeros((4, 2)), np.zeros(4))
