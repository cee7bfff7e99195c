"""Read a CSV of 2-D points with labels for the playground, refusing anything it cannot train on.

The file has three columns, ``x, y, label``, separated by commas (a header row is allowed). Integer labels
are classes (2 to 8 of them, renumbered 0, 1, ... in sorted order); any other numbers are regression
targets. Every problem is a :class:`~chainrule.errors.DataError` saying what is wrong and where.

Examples
--------
>>> from chainrule.playground.upload import read_points_csv
>>> points, labels = read_points_csv("x,y,label\\n0,0,3\\n1,1,5\\n2,0,3\\n0,2,5\\n")
>>> points.shape, labels.tolist()
((4, 2), [0, 1, 0, 1])
"""

from __future__ import annotations

import math

import numpy as np

from chainrule.errors import DataError
from chainrule.explain.tables import is_number

__all__ = ["read_points_csv", "MAX_ROWS", "MAX_BYTES", "MAX_CLASSES"]

MAX_ROWS = 5000
MAX_BYTES = 1_000_000
MAX_CLASSES = 8


def read_points_csv(text: str | bytes) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(N, 2)`` float64 and labels ``(N,)``: int64 classes 0..K-1, or float64 targets.

    Raises
    ------
    DataError
        Not text, too large, a row without three numbers, a NaN or infinity, fewer than 4 rows, one class only,
        more than :data:`MAX_CLASSES` classes.
    """
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise DataError(f"CSV: the file has {len(text):,} bytes; the playground takes at most {MAX_BYTES:,}")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise DataError("CSV: the file is not UTF-8 text (is it a spreadsheet or an image?)") from None
    if len(text) > MAX_BYTES:
        raise DataError(f"CSV: the file has {len(text):,} characters; the playground takes at most {MAX_BYTES:,}")
    lines = [line.strip() for line in text.splitlines()]
    rows = [(number, line) for number, line in enumerate(lines, start=1) if line and not line.startswith("#")]
    if rows and not is_number(rows[0][1].split(",")[0]):
        rows = rows[1:]  # a header
    if len(rows) > MAX_ROWS:
        raise DataError(f"CSV: {len(rows):,} rows; the playground takes at most {MAX_ROWS:,} points")
    if len(rows) < 4:
        raise DataError(f"CSV: {len(rows)} data rows; need at least 4 points (x,y,label per line)")
    values = np.empty((len(rows), 3), dtype=np.float64)
    for index, (number, line) in enumerate(rows):
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != 3:
            raise DataError(f"CSV line {number}: expected 3 values (x,y,label), got {len(cells)}: {line[:60]!r}")
        for column, cell in enumerate(cells):
            if not is_number(cell):
                raise DataError(f"CSV line {number}, column {column + 1}: {cell[:30]!r} is not a number")
            value = float(cell)
            if not math.isfinite(value):
                raise DataError(f"CSV line {number}, column {column + 1}: {cell!r} is not finite; remove NaN/inf rows")
            values[index, column] = value
    points, targets = values[:, :2], values[:, 2]
    if np.ptp(points, axis=0).max() == 0:
        raise DataError("CSV: every point is the same; the points must spread out")
    if not np.all(targets == np.round(targets)):
        return points, targets  # real-valued: regression
    classes = np.unique(targets)
    if len(classes) < 2:
        raise DataError(f"CSV: every label is {classes[0]:g}; classification needs at least 2 classes")
    if len(classes) > MAX_CLASSES:
        raise DataError(
            f"CSV: {len(classes)} distinct integer labels; at most {MAX_CLASSES} classes "
            "(use non-integer values for a regression target)"
        )
    return points, np.searchsorted(classes, targets).astype(np.int64)
