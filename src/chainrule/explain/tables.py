"""Tables as plain text, Markdown and HTML: one list of ``(title, headers, rows)`` and three renderers.

Every explain view builds its tables once as strings and picks a renderer, so the three formats never
disagree. Numbers are right-aligned in text; every cell is escaped in Markdown and HTML.

Examples
--------
>>> from chainrule.explain.tables import render_text
>>> print(render_text([("Squares", ["x", "x²"], [["2", "4"], ["10", "100"]])]), end="")
Squares
=======
x   x²
--  ---
 2    4
10  100
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

__all__ = ["Table", "number", "factor", "render_text", "render_markdown", "render_html", "to_json"]

#: (title, column headers, rows of cell strings)
Table = tuple[str, list[str], list[list[str]]]


def number(value: float, digits: int = 9) -> str:
    """``value`` to ``digits`` significant digits (``0.593269992``), zero as ``0``."""
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


def factor(value: float, digits: int = 9) -> str:
    """A number inside a product: negative ones in parentheses, as in ``0.5×(-2)``."""
    text = number(value, digits)
    return f"({text})" if value < 0 else text


def render_text(tables: list[Table]) -> str:
    """Aligned plain-text tables for a terminal, separated by blank lines."""
    return "\n\n".join(_text_table(*table) for table in tables) + "\n"


def render_markdown(tables: list[Table]) -> str:
    """A ``###`` heading and a pipe table per table."""
    blocks = []
    for title, headers, rows in tables:
        lines = [f"### {_md_cell(title)}", "", "| " + " | ".join(_md_cell(h) for h in headers) + " |"]
        lines.append("|" + "|".join("---" for _ in headers) + "|")
        lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def render_html(tables: list[Table], css_class: str = "chainrule-explain") -> str:
    """HTML ``<table>`` elements with captions, every cell escaped, inside one ``<div>``."""
    parts = [f'<div class="{html.escape(css_class)}">']
    for title, headers, rows in tables:
        parts.append(f"<table>\n<caption>{html.escape(title)}</caption>")
        parts.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>")
        parts.append("</table>")
    parts.append("</div>")
    return "\n".join(parts) + "\n"


def to_json(value: Any, indent: int | None = 2) -> str:
    """Strict JSON (RFC 8259) of ``value``: the non-finite floats become the strings ``"inf"``, ``"-inf"``
    and ``"nan"`` (JSON has no such numbers; ``float("inf")`` reads them back), tuples become lists.

    Examples
    --------
    >>> to_json({"loss": float("inf"), "grads": (0.5, float("nan"))}, indent=None)
    '{"loss": "inf", "grads": [0.5, "nan"]}'
    """
    return json.dumps(_finite(value), indent=indent, ensure_ascii=False, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _text_table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)] if rows else map(len, headers)
    widths = list(widths)
    lines = [title, "=" * len(title)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        cells = [cell.rjust(w) if is_number(cell) else cell.ljust(w) for cell, w in zip(row, widths)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def is_number(cell: str) -> bool:
    """Whether ``cell`` reads as a number (right-aligned in tables; a data row in a CSV)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")
