"""Plots of a training run, saved as PNG files (needs the ``plot`` extra: ``pip install 'chainrule[plot]'``).

Every function draws one figure, writes it to ``path`` atomically and returns the path. Matplotlib is
imported inside the functions (:mod:`chainrule.plotting`) with the Agg backend, so ``import chainrule`` stays fast and
plots work without a display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.errors import ChainruleError, ShapeError
from chainrule.plotting import pyplot as _pyplot
from chainrule.plotting import save_figure as _save
from chainrule.train.history import History

__all__ = ["plot_history", "plot_confusion_matrix", "plot_misclassified", "plot_decision_boundary"]


def plot_history(history: History, path: str | os.PathLike[str]) -> Path:
    """One panel per quantity: the loss, then each metric, per epoch; training solid, validation dashed in another
    colour, and the best validation epoch marked (lowest loss, error or highest accuracy/R²)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    if not len(history):
        raise ChainruleError("plot_history: the history has no epochs")
    metrics = [k for k in history.keys if k not in ("epoch", "loss", "lr", "time") and not k.startswith("val_")]
    keys = ["loss", *metrics[:3]]
    figure, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False, layout="constrained")
    epochs = history["epoch"]
    for ax, key in zip(axes[0], keys):
        ax.plot(epochs, history[key], color="C0", marker="o", markersize=3, label="training")
        if f"val_{key}" in history:
            values = np.asarray(history[f"val_{key}"], dtype=float)
            ax.plot(epochs, values, "--", color="C1", marker="s", markersize=3, label="validation")
            if np.isfinite(values).any():
                lower_is_better = key == "loss" or key in ("mae", "rmse", "mse")
                best = int(np.nanargmin(values) if lower_is_better else np.nanargmax(values))
                ax.axvline(epochs[best], color="C1", linestyle=":", alpha=0.7)
                right = best > 0.75 * (len(epochs) - 1)  # left of a line near the right edge, to stay inside
                ax.annotate(f"best: epoch {epochs[best]}", (epochs[best], values[best]), textcoords="offset points",
                            xytext=(-4 if right else 4, 8), ha="right" if right else "left",
                            fontsize=8, color="C1")  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(figure, path)


def plot_confusion_matrix(
    matrix: np.ndarray, path: str | os.PathLike[str], class_names: Sequence[str] | None = None
) -> Path:
    """The confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ShapeError(f"plot_confusion_matrix: expected a square matrix, got shape {matrix.shape}")
    n = matrix.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    figure, ax = plt.subplots(figsize=(1.0 + 0.5 * n, 0.8 + 0.5 * n))
    ax.imshow(matrix, cmap="Blues")
    for i in range(n):
        for j in range(n):
            color = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color, fontsize=8)
    long_names = max(len(name) for name in names) > 3
    ax.set_xticks(range(n), names, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f"confusion matrix (accuracy {accuracy:.2%})")
    return _save(figure, path)


def plot_misclassified(
    images: np.ndarray,
    targets: np.ndarray,
    predicted: np.ndarray,
    path: str | os.PathLike[str],
    class_names: Sequence[str] | None = None,
    limit: int = 36,
) -> Path:
    """A grid of up to ``limit`` misclassified images titled ``true → predicted``; the figure's title says how
    many are shown of how many misclassified (e.g. "36 shown of 2,064 misclassified of 10,000").

    Shapes: images (N, 1, H, W) or (N, H, W); targets and predicted (N,).
    """
    plt = _pyplot()
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[:, 0]
    if images.ndim != 3 or not (len(images) == len(targets) == len(predicted)):
        raise ShapeError(
            f"plot_misclassified: expected images (N, H, W) and N labels, got {images.shape}, "
            f"{np.shape(targets)}, {np.shape(predicted)}"
        )
    all_wrong = np.flatnonzero(np.asarray(targets) != np.asarray(predicted))
    wrong = all_wrong[:limit]
    names = list(class_names) if class_names is not None else None
    columns = 6
    rows = max(1, -(-len(wrong) // columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(1.6 * columns, 1.8 * rows + 0.4), squeeze=False, layout="constrained"
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, index in zip(axes.ravel(), wrong):
        ax.imshow(images[index], cmap="gray_r")
        true, pred = int(targets[index]), int(predicted[index])
        label = f"{names[true]} → {names[pred]}" if names else f"{true} → {pred}"
        ax.set_title(label, fontsize=8)
    shown = f"all {len(wrong)}" if len(wrong) == len(all_wrong) else f"{len(wrong)} shown of {len(all_wrong):,}"
    title = f"{shown} misclassified images of {len(targets):,} (true → predicted)"
    figure.suptitle(title if len(wrong) else f"no misclassified images among {len(targets):,}")
    return _save(figure, path)


def plot_decision_boundary(model: Any, x: np.ndarray, y: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """The regions a classifier of 2-D inputs assigns to each class, with the data points on top.

    Shapes: x (N, 2), y (N,). The model maps (M, 2) float32 inputs to class scores (M, C) or one logit (M, 1).
    """
    from chainrule.train.loop import predict

    plt = _pyplot()
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ShapeError(f"plot_decision_boundary: expected 2-D inputs of shape (N, 2), got {x.shape}")
    pad = 0.5
    xs = np.linspace(x[:, 0].min() - pad, x[:, 0].max() + pad, 200)
    ys = np.linspace(x[:, 1].min() - pad, x[:, 1].max() + pad, 200)
    grid_x, grid_y = np.meshgrid(xs, ys)
    grid = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1).astype(np.float32)
    scores = predict(model, grid, batch_size=8192)
    classes = (scores[:, 0] > 0).astype(int) if scores.shape[1] == 1 else scores.argmax(axis=1)
    figure, ax = plt.subplots(figsize=(5, 4.5))
    ax.contourf(grid_x, grid_y, classes.reshape(grid_x.shape), alpha=0.3, cmap="coolwarm")
    points = ax.scatter(x[:, 0], x[:, 1], c=y, cmap="coolwarm", edgecolors="k", s=14)
    ax.legend(*points.legend_elements(), title="class", fontsize=8, loc="best")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.set_title("decision boundary (regions: predicted class, points: data)")
    return _save(figure, path)
