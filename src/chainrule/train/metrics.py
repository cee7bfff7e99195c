"""Metrics on NumPy arrays: classification (accuracy, top-k, confusion matrix, precision/recall/F1) and
regression (MAE, RMSE, R²).

Every metric takes ``(outputs, targets)``: for classification ``outputs`` are scores of shape (N, C)
(logits or probabilities; only their order matters) or predicted labels of shape (N,), and ``targets`` are
labels of shape (N,); for regression both have the same shape. :func:`get_metric` turns a name such as
``"accuracy"`` or ``"top5_accuracy"`` into the function, which is how :func:`chainrule.train.fit` reads
``metrics=[...]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.errors import ShapeError
from chainrule.tensor import Tensor

__all__ = [
    "classification_report",
    "accuracy",
    "top_k_accuracy",
    "confusion_matrix",
    "precision_recall_f1",
    "mae",
    "rmse",
    "r2_score",
    "get_metric",
    "METRICS",
]


def _array(value: Any) -> np.ndarray:
    return value.data if isinstance(value, Tensor) else np.asarray(value)


def _labels(outputs: Any, targets: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels (argmax over the last axis of scores, or the labels themselves) and the targets."""
    outputs, targets = _array(outputs), _array(targets)
    predicted = outputs.argmax(axis=-1) if outputs.ndim == targets.ndim + 1 else outputs
    if outputs.ndim == targets.ndim + 1 and outputs.shape[-1] == 1:  # one logit per sample: binary
        predicted = (outputs[..., 0] > 0).astype(np.int64)
    if predicted.shape != targets.shape:
        raise ShapeError(
            f"{name}: outputs of shape {outputs.shape} do not fit targets of shape {targets.shape} "
            "(expected scores (N, C) or labels (N,) for N targets)"
        )
    return predicted, targets


def accuracy(outputs: Any, targets: Any) -> float:
    """Fraction of samples whose predicted class equals the target.

    .. math:: \\text{accuracy} = \\frac{1}{N}\\sum_i [\\arg\\max_c s_{ic} = y_i]

    Examples
    --------
    >>> accuracy([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]], [0, 1, 1])
    0.6666666666666666
    """
    predicted, targets = _labels(outputs, targets, "accuracy")
    return float(np.mean(predicted == targets)) if targets.size else float("nan")


def top_k_accuracy(outputs: Any, targets: Any, k: int = 5) -> float:
    """Fraction of samples whose target is among the ``k`` highest scores. Shapes: outputs (N, C), targets (N,).

    Examples
    --------
    >>> top_k_accuracy([[0.1, 0.5, 0.4], [0.8, 0.15, 0.05]], [2, 1], k=2)
    1.0
    """
    scores, targets = _array(outputs), _array(targets)
    if scores.ndim != 2 or targets.shape != scores.shape[:1]:
        raise ShapeError(
            f"top_k_accuracy: expected scores (N, C) and targets (N,), got {scores.shape} and {targets.shape}"
        )
    if not 1 <= k:
        raise ValueError(f"top_k_accuracy: k must be a positive integer, got {k!r}")
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float(np.mean((top == targets[:, None]).any(axis=1))) if targets.size else float("nan")


def confusion_matrix(outputs: Any, targets: Any, num_classes: int | None = None) -> np.ndarray:
    """Counts ``M[i, j]`` of samples of true class ``i`` predicted as class ``j``; shape (C, C), int64.

    Examples
    --------
    >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2])
    array([[1, 0, 0],
           [0, 1, 0],
           [0, 1, 1]])
    """
    predicted, targets = _labels(outputs, targets, "confusion_matrix")
    if num_classes is None:
        num_classes = int(max(predicted.max(initial=-1), targets.max(initial=-1))) + 1
    if predicted.size and (
        min(predicted.min(), targets.min()) < 0 or max(predicted.max(), targets.max()) >= num_classes
    ):
        raise ValueError(f"confusion_matrix: labels must lie in [0, {num_classes}), got values outside")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (targets.astype(np.int64), predicted.astype(np.int64)), 1)
    return matrix


def precision_recall_f1(
    outputs: Any, targets: Any, num_classes: int | None = None, average: str = "macro"
) -> tuple[float, float, float] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision ``TP/(TP+FP)``, recall ``TP/(TP+FN)`` and F1 (their harmonic mean) per class.

    ``average="macro"`` returns the unweighted means over classes, ``"none"`` the per-class arrays.
    A class never predicted (or never present) counts as 0 for the undefined ratio.

    Examples
    --------
    >>> p, r, f = precision_recall_f1([0, 1, 1, 1], [0, 1, 0, 1])
    >>> round(p, 4), round(r, 4), round(f, 4)
    (0.8333, 0.75, 0.7333)
    """
    if average not in ("macro", "none"):
        raise ValueError(f"precision_recall_f1: average must be 'macro' or 'none', got {average!r}")
    matrix = confusion_matrix(outputs, targets, num_classes).astype(np.float64)
    true_positive = np.diag(matrix)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(true_positive / matrix.sum(axis=0))
        recall = np.nan_to_num(true_positive / matrix.sum(axis=1))
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    if average == "none":
        return precision, recall, f1
    return float(precision.mean()), float(recall.mean()), float(f1.mean())


def classification_report(
    outputs: Any, targets: Any, class_names: Sequence[str] | None = None, num_classes: int | None = None
) -> str:
    """Per-class precision, recall, F1 and support, then the confusion matrix, as aligned text.

    Every column is as wide as its widest cell, so long class names and 10 or more classes line up; the
    confusion matrix names its rows (true classes) and numbers its columns (predicted, in the same order).

    Examples
    --------
    >>> print(classification_report([0, 1, 1], [0, 1, 0], ["cat", "dog"]))
    class  precision  recall      f1  support
    cat       1.0000  0.5000  0.6667        2
    dog       0.5000  1.0000  0.6667        1
    <BLANKLINE>
    Confusion matrix (rows: true class, columns: predicted class):
    true \\ predicted  0  1
    0 cat             1  1
    1 dog             0  1
    """
    matrix = confusion_matrix(
        outputs, targets, num_classes if num_classes is not None else (len(class_names or []) or None)
    )
    classes = matrix.shape[0]
    names = [str(name) for name in class_names] if class_names else [str(i) for i in range(classes)]
    if len(names) != classes:
        raise ValueError(f"classification_report: {len(names)} class names for {classes} classes")
    precision, recall, f1 = (np.atleast_1d(v) for v in precision_recall_f1(outputs, targets, classes, average="none"))
    support = matrix.sum(axis=1)
    rows = [["class", "precision", "recall", "f1", "support"]]
    rows += [
        [name, f"{p:.4f}", f"{r:.4f}", f"{f:.4f}", str(n)]
        for name, p, r, f, n in zip(names, precision, recall, f1, support)
    ]
    lines = _aligned(rows)
    labelled = [f"{i} {name}" if name != str(i) else name for i, name in enumerate(names)]
    grid = [["true \\ predicted", *map(str, range(classes))]]
    grid += [[label, *map(str, row)] for label, row in zip(labelled, matrix.tolist())]
    return "\n".join([*lines, "", "Confusion matrix (rows: true class, columns: predicted class):", *_aligned(grid)])


def _aligned(rows: list[list[str]]) -> list[str]:
    """Rows of cells as lines: the first column left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) if column == 0 else cell.rjust(w) for column, (cell, w) in enumerate(zip(row, widths)))
        for row in rows
    ]


def _pair(outputs: Any, targets: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    outputs, targets = _array(outputs).astype(np.float64), _array(targets).astype(np.float64)
    if outputs.shape != targets.shape:
        if outputs.size == targets.size and outputs.shape[:1] == targets.shape[:1]:
            outputs = outputs.reshape(targets.shape)  # (N, 1) predictions against (N,) targets
        else:
            raise ShapeError(
                f"{name}: predictions of shape {outputs.shape} do not match targets of shape {targets.shape}"
            )
    return outputs, targets


def mae(outputs: Any, targets: Any) -> float:
    """Mean absolute error :math:`\\frac1N\\sum|\\hat y - y|`.

    Examples
    --------
    >>> mae([1.0, 2.0], [0.0, 4.0])
    1.5
    """
    outputs, targets = _pair(outputs, targets, "mae")
    return float(np.mean(np.abs(outputs - targets)))


def rmse(outputs: Any, targets: Any) -> float:
    """Root mean squared error :math:`\\sqrt{\\frac1N\\sum(\\hat y - y)^2}`.

    Examples
    --------
    >>> rmse([1.0, 2.0], [0.0, 4.0])
    1.5811388300841898
    """
    outputs, targets = _pair(outputs, targets, "rmse")
    return float(np.sqrt(np.mean((outputs - targets) ** 2)))


def r2_score(outputs: Any, targets: Any) -> float:
    """Coefficient of determination :math:`1 - \\sum(y-\\hat y)^2 / \\sum(y-\\bar y)^2` (1 is perfect).

    Examples
    --------
    >>> r2_score([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    0.7857142857142857
    """
    outputs, targets = _pair(outputs, targets, "r2")
    residual = np.sum((targets - outputs) ** 2)
    total = np.sum((targets - targets.mean(axis=0)) ** 2)
    return float(1.0 - residual / total) if total > 0 else float("nan")


METRICS: dict[str, Callable[[Any, Any], float]] = {
    "accuracy": accuracy,
    "mae": mae,
    "rmse": rmse,
    "r2": r2_score,
}


def get_metric(name: str | Callable[[Any, Any], float]) -> tuple[str, Callable[[Any, Any], float]]:
    """The ``(name, function)`` of a metric given by name (``accuracy``, ``top5_accuracy``, ``mae``, ``rmse``,
    ``r2``) or as a function ``f(outputs, targets) -> float`` (named after the function).

    Examples
    --------
    >>> name, fn = get_metric("top3_accuracy")
    >>> name, fn([[0.1, 0.2, 0.3, 0.4]], [1])
    ('top3_accuracy', 1.0)
    """
    if callable(name):
        return getattr(name, "__name__", "metric"), name
    if not isinstance(name, str):
        raise TypeError(f"metrics: expected a metric name or a function, got {name!r}")
    match = re.fullmatch(r"top(\d+)_accuracy", name)
    if match:
        k = int(match.group(1))
        return name, lambda outputs, targets: top_k_accuracy(outputs, targets, k)
    if name not in METRICS:
        known = ", ".join([*METRICS, "topK_accuracy"])
        raise ValueError(f"metrics: unknown metric {name!r}; known: {known}")
    return name, METRICS[name]
