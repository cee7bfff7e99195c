"""Draw the graph that the engine recorded: ops and the tensors (or scalar Values) flowing between them.

:func:`graph` walks the real graph behind a :class:`~chainrule.Tensor` or :class:`~chainrule.Value` (the
``_ctx`` node of a tensor, the ``_parents`` of a Value), with an explicit stack, so a chain of a million
ops is drawn without touching Python's recursion limit. The result, :class:`Graph`, renders as Graphviz
DOT (:meth:`Graph.to_dot`), as a plain-text tree (:meth:`Graph.to_text`), or as an SVG/PNG picture when the
Graphviz ``dot`` program is installed (:meth:`Graph.save`, and inline in Jupyter).

Draw before ``backward()`` or with ``backward(retain_graph=True)``: a plain backward frees what each op
saved, and with it the links to the op's inputs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.autograd import topological_order
from chainrule.errors import ArgumentError, ChainruleError, GradientError
from chainrule.io import atomic_write_bytes
from chainrule.scalar import Value
from chainrule.tensor import Tensor, _FreedNode

__all__ = ["graph", "Graph", "GraphNode"]

_SHOW = ("shapes", "values")
_PICTURE_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


@dataclass
class GraphNode:
    """One box of the drawing.

    Attributes
    ----------
    key : str
        Identifier in the DOT source (``n0``, ``n1`` …, ops and tensors counted together), in topological
        order (inputs first).
    kind : str
        ``"tensor"`` (a tensor or Value) or ``"op"`` (the operation that produced the next tensor).
    title : str
        The name given in ``names``, the op's name, or ``""``.
    details : list of str
        The lines under the title: shape and dtype or values, gradient, constants of the op.
    inputs : list of str
        Keys of the nodes with an edge into this one.
    """

    key: str
    kind: str
    title: str
    details: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)

    def label(self, separator: str = "  ") -> str:
        """Title and details on one line (text) or several (DOT, ``separator="\\n"``)."""
        return separator.join(part for part in [self.title, *self.details] if part)


@dataclass
class Graph:
    """The recorded graph of one output, as nodes in topological order (inputs first, the output last).

    Attributes
    ----------
    nodes : list of GraphNode
        Tensors and ops; each op node has the op's inputs as ``inputs`` and feeds the tensor it produced.
    root : str
        Key of the output's node.
    """

    nodes: list[GraphNode]
    root: str

    def __post_init__(self) -> None:
        self._by_key = {node.key: node for node in self.nodes}

    def __getitem__(self, key: str) -> GraphNode:
        return self._by_key[key]

    @property
    def edges(self) -> list[tuple[str, str]]:
        """``(from, to)`` pairs: input tensor -> op, op -> its output tensor."""
        return [(source, node.key) for node in self.nodes for source in node.inputs]

    def ops(self) -> list[str]:
        """The names of the op nodes, in topological order."""
        return [node.title for node in self.nodes if node.kind == "op"]

    # -- rendering ---------------------------------------------------------------------------------------
    def to_dot(self) -> str:
        """Graphviz DOT source: tensors as boxes, ops as ellipses, edges in the direction data flows.

        Examples
        --------
        >>> import chainrule as cr
        >>> a = cr.tensor([1.0, 2.0], requires_grad=True)
        >>> print(graph(a * 2, names={"a": a}).to_dot())
        digraph chainrule {
          rankdir=LR;
          node [fontname="Helvetica", fontsize=10];
          n0 [shape=box, label="a\\nshape (2,) float32"];
          n1 [shape=ellipse, style=filled, fillcolor="#eeeeee", label="mul\\nconst 2"];
          n2 [shape=box, style=bold, label="shape (2,) float32"];
          n0 -> n1;
          n1 -> n2;
        }
        """
        lines = ["digraph chainrule {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
        for node in self.nodes:
            label = _dot_escape(node.label("\n"))
            if node.kind == "op":
                style = 'shape=ellipse, style=filled, fillcolor="#eeeeee"'
            else:
                style = "shape=box, style=bold" if node.key == self.root else "shape=box"
            lines.append(f'  {node.key} [{style}, label="{label}"];')
        lines += [f"  {source} -> {target};" for source, target in self.edges]
        lines.append("}")
        return "\n".join(lines)

    def to_text(self) -> str:
        """A plain-text tree, output at the top, each tensor's inputs under it.

        A tensor with a single input continues on the same indentation (a chain reads as a column, so a
        deep chain stays narrow); a node reached a second time (a shared subgraph) is printed once and then
        referred to as ``(see [nK] above)``.

        Examples
        --------
        >>> import chainrule as cr
        >>> a = cr.tensor([1.0, 2.0], requires_grad=True)
        >>> b = cr.tensor([3.0, 4.0], requires_grad=True)
        >>> print(graph((a * b + a).tanh(), names={"a": a, "b": b}).to_text())
        [n7] shape (2,) float32  <- tanh
        [n5] shape (2,) float32  <- add
        ├── [n3] shape (2,) float32  <- mul
        │   ├── [n0] a  shape (2,) float32
        │   └── [n1] b  shape (2,) float32
        └── (see [n0] above)
        """
        lines: list[str] = []
        printed: set[str] = set()
        # (tensor key, prefix for its own line, prefix for its children's lines)
        stack: list[tuple[str, str, str]] = [(self.root, "", "")]
        while stack:
            key, head, rest = stack.pop()
            node = self._by_key[key]
            if key in printed:
                lines.append(f"{head}(see [{key}] above)")
                continue
            printed.add(key)
            op = self._by_key[node.inputs[0]] if node.inputs else None
            text = f"[{key}] {node.label()}"
            if op is not None:
                text += f"  <- {op.label()}"
            lines.append(head + text)
            children = op.inputs if op is not None else []
            if len(children) == 1:
                stack.append((children[0], rest, rest))
                continue
            for index in reversed(range(len(children))):
                last = index == len(children) - 1
                stack.append(
                    (children[index], rest + ("└── " if last else "├── "), rest + ("    " if last else "│   "))
                )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the graph to ``path``, picking the format from the suffix; returns the path.

        ``.dot``/``.gv`` (DOT source) and ``.txt`` (the text tree) always work; ``.svg``, ``.png`` and
        ``.pdf`` run Graphviz's ``dot`` program. The file is replaced atomically.

        Raises
        ------
        ChainruleError
            For a picture format when Graphviz is not installed (the message says how to get it).
        ArgumentError
            For any other suffix.
        """
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix in (".dot", ".gv"):
            data = self.to_dot().encode()
        elif suffix == ".txt":
            data = self.to_text().encode()
        elif suffix in _PICTURE_FORMATS:
            data = _render(self.to_dot(), _PICTURE_FORMATS[suffix])
        else:
            raise ArgumentError(
                f"Graph.save: unknown suffix {target.suffix!r}; use .dot, .gv, .txt, .svg, .png or .pdf"
            )
        atomic_write_bytes(target, data)
        return target

    def _repr_svg_(self) -> str | None:
        """Jupyter's inline picture: an SVG when Graphviz is installed (otherwise Jupyter shows the text)."""
        if shutil.which("dot") is None:
            return None
        return _render(self.to_dot(), "svg").decode()


def _render(dot_source: str, fmt: str) -> bytes:
    executable = shutil.which("dot")
    if executable is None:
        raise ChainruleError(
            f"Graph.save: drawing a .{fmt} needs the Graphviz 'dot' program, which is not on PATH; install "
            "Graphviz (apt install graphviz, brew install graphviz, conda install graphviz) or save as .dot "
            "and render it elsewhere"
        )
    result = subprocess.run([executable, f"-T{fmt}"], input=dot_source.encode(), capture_output=True, check=False)
    if result.returncode != 0:
        raise ChainruleError(f"Graph.save: Graphviz failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def _dot_escape(text: str) -> str:
    """Escape a label for a double-quoted DOT string: backslashes and quotes, newlines as ``\\n``."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# ---------------------------------------------------------------------------------------------------
# The walk
# ---------------------------------------------------------------------------------------------------
def graph(
    root: Tensor | Value, *, show: str = "shapes", grads: bool = True, names: Mapping[str, Any] | None = None
) -> Graph:
    """Collect the graph that computed ``root``: every tensor (or Value) and every op between them.

    Parameters
    ----------
    root : Tensor or Value
        The output, usually a loss.
    show : {"shapes", "values"}
        Label tensors with their shape and dtype, or with their values (NumPy's summary for big arrays).
        Values always show their number.
    grads : bool
        Also show each node's gradient where it has one (leaf tensors after ``backward``; every Value).
    names : mapping, optional
        ``{"name": tensor}`` labels for the nodes (``dict(model.named_parameters())`` names the weights).
        A Value's own ``label`` is used too.

    Returns
    -------
    Graph

    Raises
    ------
    GradientError
        When ``backward()`` already freed part of the graph (draw first, or pass ``retain_graph=True``).

    Examples
    --------
    >>> import chainrule as cr
    >>> a = cr.tensor([[1.0, 2.0]], requires_grad=True)
    >>> b = cr.tensor([[3.0], [4.0]], requires_grad=True)
    >>> g = graph((a @ b).relu(), names={"a": a, "b": b})
    >>> g.ops()
    ['matmul', 'relu']
    >>> len(g.nodes), len(g.edges)
    (6, 5)
    >>> from chainrule import Value
    >>> x = Value(2.0, label="x")
    >>> print(graph(x * x + 1).to_text())
    [n5] data 5  grad 0  <- +
    ├── [n2] data 4  grad 0  <- *
    │   ├── [n0] x  data 2  grad 0
    │   └── (see [n0] above)
    └── [n3] data 1  grad 0
    """
    if show not in _SHOW:
        raise ArgumentError(f"graph: show must be 'shapes' or 'values', got {show!r}")
    if not isinstance(root, (Tensor, Value)):
        raise ArgumentError(f"graph: expected a chainrule Tensor or Value, got {type(root).__name__}")
    given_names = {id(obj): name for name, obj in (names or {}).items()}

    # Each node after all of its inputs (constants included), first input first, so keys read inputs-first.
    order = topological_order([root], parents=lambda obj: _inputs(obj)[::-1])

    nodes: list[GraphNode] = []
    key_of: dict[int, str] = {}
    for obj in order:
        inputs = _inputs(obj)
        op_key = None
        op_name = _op_name(obj)
        if op_name is not None:
            op_key = f"n{len(nodes)}"
            op_node = GraphNode(op_key, "op", op_name, _op_constants(obj), [key_of[id(p)] for p in inputs])
            nodes.append(op_node)
        key = f"n{len(nodes)}"
        key_of[id(obj)] = key
        title = given_names.get(id(obj), getattr(obj, "label", "") if isinstance(obj, Value) else "")
        nodes.append(GraphNode(key, "tensor", title, _details(obj, show, grads), [op_key] if op_key else []))
    return Graph(nodes, key_of[id(root)])


def _inputs(obj: Any) -> list[Any]:
    """Every tensor (or Value) the op behind ``obj`` read, constants included; [] for a leaf."""
    if isinstance(obj, Value):
        return list(obj._parents)
    ctx = obj._ctx
    if ctx is None:
        return []
    if type(ctx) is _FreedNode:
        raise GradientError(
            f"graph: the graph through {ctx.op.name!r} was freed by backward(); call graph() before backward, "
            "or call backward(retain_graph=True)"
        )
    return [arg for arg in ctx.args if isinstance(arg, Tensor)]


def _op_name(obj: Any) -> str | None:
    if isinstance(obj, Value):
        return obj.op or None
    return None if obj._ctx is None else obj._ctx.op.name


def _op_constants(obj: Any) -> list[str]:
    """The op's non-tensor arguments and attributes, e.g. ``const 2`` for ``x * 2``, ``axis=1``."""
    if isinstance(obj, Value):
        return []
    ctx = obj._ctx
    parts = []
    for arg in ctx.args:
        if isinstance(arg, (int, float, np.generic)):
            parts.append(f"const {_number(arg)}")
        elif isinstance(arg, np.ndarray):
            parts.append(f"const array {arg.shape}")
    parts += [f"{name}={value}" for name, value in ctx.attrs.items() if value is not None]
    return [", ".join(parts)] if parts else []


def _details(obj: Any, show: str, grads: bool) -> list[str]:
    if isinstance(obj, Value):
        lines = [f"data {_number(obj.data)}"]
        if grads:
            lines.append(f"grad {_number(obj.grad)}")
        return lines
    if show == "values":
        lines = [_array_text(obj.data)]
    else:
        lines = [f"shape {obj.shape} {obj.dtype}"]
    if grads and obj.grad is not None:
        grad = obj.grad.data
        lines.append(f"grad {_array_text(grad)}" if show == "values" else f"grad norm {_number(np.linalg.norm(grad))}")
    return lines


def _number(x: Any) -> str:
    return f"{float(x):.4g}"


def _array_text(array: np.ndarray) -> str:
    if array.ndim == 0:
        return _number(array)
    return np.array2string(array, precision=4, threshold=12, edgeitems=2, separator=", ").replace("\n", "")
