"""Bad input everywhere: one table of wrong calls across the public API, each answered by a chainrule error.

Every row is (name, call, expected error, substrings of the message). The call must raise the expected
chainrule exception (never a raw NumPy or Python one), and the message must name the op or layer and the
shapes or values involved, so that a reader can fix the call from the message alone.

Choices the table pins:

- Empty batches: layers follow PyTorch and map an empty batch to an empty output (see
  ``test_layers_map_an_empty_batch_to_an_empty_output``), except where statistics over the batch are
  needed (``BatchNorm`` in training). Losses refuse an empty batch with ``ShapeError: ... empty batch``:
  a mean over nothing is NaN, which would only surface epochs later.
- Regression losses refuse prediction and target of different shapes (PyTorch only warns): ``(N, 1)``
  against ``(N,)`` broadcasts to ``(N, N)`` and trains silently on the wrong objective.
- Layers with floating-point parameters (Linear, Conv, BatchNorm, LayerNorm, RNN/LSTM/GRU) refuse integer
  and boolean input with ``DTypeError`` (PyTorch does too): an integer tensor reaching them is usually
  labels or indices passed by mistake. Cast with ``x.to(cr.float32)`` when the values really are features.
- Hyperparameters of the wrong type or value raise ``ArgumentError`` (a ``ValueError`` and a ``TypeError``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn
from chainrule.errors import ArgumentError, ChainruleError, DTypeError, IndexingError, ShapeError
from refusal import assert_refused


@dataclass(frozen=True)
class Bad:
    """One wrong call: ``call()`` must raise ``error`` with every string of ``parts`` in its message."""

    name: str
    call: Callable[[], object]
    error: type[ChainruleError]
    parts: tuple[str, ...]


def bad(name: str, call: Callable[[], object], error: type[ChainruleError], *parts: str) -> Bad:
    return Bad(name, call, error, parts)


def _param() -> cr.Tensor:
    return cr.ones(2, requires_grad=True)


def _labels(*values: int) -> cr.Tensor:
    return cr.tensor(list(values))


# -- tensor ops ---------------------------------------------------------------------------------------
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "maximum": cr.maximum,
    "minimum": cr.minimum,
}
COMPARE = {"==": lambda a, b: a == b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b}

OPS_ROWS = [
    *[
        bad(f"{name} non-broadcastable", lambda f=f: f(cr.ones(2, 3), cr.ones(4)), ShapeError, name, "(2, 3)", "(4,)")
        for name, f in BINARY.items()
    ],
    *[
        bad(f"{sym} non-broadcastable", lambda f=f: f(cr.ones(3), cr.ones(2)), ShapeError, sym, "(3,)", "(2,)")
        for sym, f in COMPARE.items()
    ],
    bad("matmul inner dims", lambda: cr.ones(2, 3) @ cr.ones(4, 5), ShapeError, "matmul", "(2, 3)", "(4, 5)"),
    bad("matmul 0-d left", lambda: cr.matmul(cr.tensor(2.0), cr.ones(2)), ShapeError, "matmul", "at least 1"),
    bad("matmul 0-d right", lambda: cr.matmul(cr.ones(2), cr.tensor(2.0)), ShapeError, "matmul", "at least 1"),
    bad("matmul batch dims", lambda: cr.ones(2, 2, 3) @ cr.ones(3, 3, 4), ShapeError, "matmul", "(2, 2, 3)"),
    bad("sum axis out of range", lambda: cr.ones(2, 3).sum(axis=2), ShapeError, "sum", "axis 2", "2 dimensions"),
    bad("mean negative axis", lambda: cr.ones(2, 3).mean(axis=-3), ShapeError, "mean", "axis -3"),
    bad("max repeated axis", lambda: cr.ones(2, 3).max(axis=(1, 1)), ShapeError, "max", "repeats an axis"),
    bad("prod float axis", lambda: cr.ones(2, 3).prod(axis=1.0), ArgumentError, "prod", "axis must be an integer"),
    bad("var axis", lambda: cr.ones(2, 3).var(axis=5), ShapeError, "var", "axis 5"),
    bad("logsumexp axis", lambda: cr.ones(2).logsumexp(axis=1), ShapeError, "logsumexp", "axis 1"),
    bad("argmax axis", lambda: cr.ones(2).argmax(axis=1), ShapeError, "argmax", "axis 1"),
    bad("argmax empty", lambda: cr.zeros(0).argmax(), ShapeError, "argmax", "empty", "(0,)"),
    bad("max empty", lambda: cr.zeros(0, 3).max(), ShapeError, "max", "empty", "(0, 3)"),
    bad("mean empty axis", lambda: cr.zeros(0, 3).mean(axis=0), ShapeError, "mean", "empty", "(0, 3)"),
    bad("sum keepdims", lambda: cr.ones(2).sum(keepdims="yes"), ArgumentError, "sum", "keepdims"),
    bad("softmax axis", lambda: cr.ones(2, 3).softmax(axis=2), ShapeError, "softmax", "axis 2"),
    bad("log_softmax axis", lambda: cr.log_softmax(cr.ones(2, 3), dim=-3), ShapeError, "log_softmax", "axis -3"),
    bad("softmax two axes", lambda: cr.softmax(cr.ones(2, 3), axis=(0, 1)), ArgumentError, "softmax", "one axis"),
    bad("reshape size", lambda: cr.ones(2, 3).reshape(4, 2), ShapeError, "reshape", "(2, 3)", "(4, 2)"),
    bad("reshape two -1", lambda: cr.ones(2, 3).reshape(-1, -1), ShapeError, "reshape", "(2, 3)"),
    bad("reshape float size", lambda: cr.ones(2, 3).reshape(2.5, 2), ArgumentError, "reshape", "2.5"),
    bad("view size", lambda: cr.ones(6).view(4), ShapeError, "reshape", "(6,)", "(4,)"),
    bad("flatten order", lambda: cr.ones(2, 3).flatten(1, 0), ShapeError, "flatten", "(2, 3)"),
    bad("flatten axis", lambda: cr.ones(2, 3).flatten(0, 4), ShapeError, "flatten", "axis 4"),
    bad("transpose axis", lambda: cr.ones(2, 3).transpose(0, 2), ShapeError, "transpose", "axis 2"),
    bad("permute repeat", lambda: cr.ones(2, 3).permute(0, 0), ShapeError, "permute", "(0, 0)", "(2, 3)"),
    bad("permute too few", lambda: cr.ones(2, 3, 4).permute(1, 0), ShapeError, "permute", "(2, 3, 4)"),
    bad("permute too many", lambda: cr.ones(2, 3).permute(0, 1, 2), ShapeError, "permute", "(2, 3)"),
    bad("squeeze size", lambda: cr.ones(2, 3).squeeze(0), ShapeError, "squeeze", "axis 0", "(2, 3)"),
    bad("unsqueeze axis", lambda: cr.ones(2).unsqueeze(3), ShapeError, "unsqueeze", "axis 3"),
    bad("expand", lambda: cr.ones(3).expand(2, 2), ShapeError, "broadcast_to", "(3,)", "(2, 2)"),
    bad("broadcast_to", lambda: cr.broadcast_to(cr.ones(3), (2, 4)), ShapeError, "broadcast_to", "(3,)", "(2, 4)"),
    bad("cat shapes", lambda: cr.cat([cr.ones(2, 3), cr.ones(2, 4)]), ShapeError, "concatenate", "(2, 3)", "(2, 4)"),
    bad("cat ndim", lambda: cr.cat([cr.ones(2, 3), cr.ones(2)]), ShapeError, "concatenate", "(2, 3)", "(2,)"),
    bad("cat axis", lambda: cr.cat([cr.ones(2), cr.ones(2)], axis=1), ShapeError, "concatenate", "axis 1"),
    bad("cat empty list", lambda: cr.cat([]), ShapeError, "concatenate", "at least one"),
    bad("cat 0-d", lambda: cr.cat([cr.tensor(1.0), cr.tensor(2.0)]), ShapeError, "concatenate", "0-d"),
    bad("stack shapes", lambda: cr.stack([cr.ones(2), cr.ones(3)]), ShapeError, "stack", "(2,)", "(3,)"),
    bad("stack axis", lambda: cr.stack([cr.ones(2), cr.ones(2)], axis=3), ShapeError, "stack", "axis 3"),
    bad("stack lone tensor", lambda: cr.stack(cr.ones(2, 2)), ArgumentError, "stack", "sequence"),
    bad("split sizes", lambda: cr.split(cr.ones(5), [2, 2]), ShapeError, "split", "[2, 2]", "5"),
    bad("split zero", lambda: cr.split(cr.ones(5), 0), ShapeError, "split", "positive"),
    bad("pad widths", lambda: cr.pad(cr.ones(2, 2), [(1, 1)] * 3), ShapeError, "pad", "(2, 2)"),
    bad("pad negative", lambda: cr.pad(cr.ones(2, 2), -1), ShapeError, "pad", "negative"),
    bad("index out of range", lambda: cr.ones(3)[5], IndexingError, "getitem", "5", "(3,)"),
    bad("index too many", lambda: cr.ones(2, 2)[0, 0, 0], IndexingError, "getitem", "(2, 2)"),
    bad("index negative", lambda: cr.ones(3)[-4], IndexingError, "getitem", "-4", "(3,)"),
    bad("index float tensor", lambda: cr.ones(3)[cr.tensor([0.5])], IndexingError, "getitem", "float32"),
    bad("index tensor range", lambda: cr.ones(3)[cr.tensor([0, 3])], IndexingError, "getitem", "3", "(3,)"),
    bad("index bool mask", lambda: cr.ones(3)[np.array([True, False])], IndexingError, "getitem", "(3,)"),
    bad("index string", lambda: cr.ones(3)["a"], IndexingError, "getitem", "(3,)"),
    bad("setitem range", lambda: cr.ones(3).__setitem__(4, 1.0), IndexingError, "__setitem__", "(3,)"),
    bad("setitem shape", lambda: cr.ones(3).__setitem__(0, cr.ones(2)), ShapeError, "__setitem__", "(3,)"),
    bad("where shapes", lambda: cr.where(cr.ones(2) > 0, cr.ones(3), 0.0), ShapeError, "where", "(2,)", "(3,)"),
    bad("where condition dtype", lambda: cr.where(cr.ones(2), cr.ones(2), 0.0), DTypeError, "where", "float32"),
    bad("clip no bounds", lambda: cr.clip(cr.ones(2)), ArgumentError, "clip", "min"),
    bad("iadd shape", lambda: cr.ones(3).__iadd__(cr.ones(2)), ShapeError, "+=", "(3,)", "(2,)"),
    bad("copy_ shape", lambda: cr.ones(3).copy_(cr.ones(2)), ShapeError, "copy_", "(3,)", "(2,)"),
    bad("item", lambda: cr.ones(3).item(), ShapeError, "item", "(3,)"),
    bad("invert float", lambda: ~cr.ones(2), DTypeError, "~", "float32"),
    bad("tensor of strings", lambda: cr.tensor(["a"]), DTypeError, "tensor", "<U1"),
    bad("tensor ragged", lambda: cr.tensor([[1.0], [2.0, 3.0]]), DTypeError, "tensor", "list"),
    bad("int requires grad", lambda: cr.tensor([1, 2], requires_grad=True), DTypeError, "int64"),
    bad("zeros negative", lambda: cr.zeros(-1, 2), ShapeError, "zeros", "-1"),
    bad("ones float size", lambda: cr.ones(2.5), ArgumentError, "ones", "2.5"),
    bad("backward shape", lambda: (cr.ones(2, requires_grad=True) * 2).backward(cr.ones(3)), ShapeError, "(3,)"),
]


# -- layers -------------------------------------------------------------------------------------------
def _lstm_bad_state() -> object:
    return nn.LSTM(3, 4)(cr.randn(5, 2, 3), (cr.zeros(1, 2, 4), cr.zeros(1, 3, 4)))


LAYER_ROWS = [
    # Linear
    bad("Linear in_features", lambda: nn.Linear(3, 2)(cr.ones(4, 5)), ShapeError, "Linear", "3", "(4, 5)"),
    bad("Linear 0-d", lambda: nn.Linear(3, 2)(cr.tensor(1.0)), ShapeError, "Linear", "()"),
    bad("Linear int input", lambda: nn.Linear(3, 2)(cr.ones(4, 3, dtype="int64")), DTypeError, "Linear", "int64"),
    bad("Linear bool input", lambda: nn.Linear(3, 2)(cr.ones(4, 3) > 0), DTypeError, "Linear", "bool"),
    bad("Linear negative size", lambda: nn.Linear(-1, 2), ArgumentError, "Linear", "in_features", "-1"),
    bad("Linear zero size", lambda: nn.Linear(3, 0), ArgumentError, "Linear", "out_features", "0"),
    bad("Linear float size", lambda: nn.Linear(2.5, 2), ArgumentError, "Linear", "in_features", "2.5"),
    bad("Linear string size", lambda: nn.Linear("3", 2), ArgumentError, "Linear", "in_features", "'3'"),
    bad("Linear bad dtype", lambda: nn.Linear(3, 2, dtype="float16"), DTypeError, "float16"),
    bad("F.linear weight", lambda: F.linear(cr.ones(2, 3), cr.ones(3)), ShapeError, "linear", "(3,)"),
    bad("F.linear inner", lambda: F.linear(cr.ones(2, 3), cr.ones(4, 5)), ShapeError, "linear", "(2, 3)", "(4, 5)"),
    bad("F.linear bias", lambda: F.linear(cr.ones(2, 3), cr.ones(4, 3), cr.ones(3)), ShapeError, "linear", "(3,)"),
    # Conv
    bad("Conv2d channels", lambda: nn.Conv2d(3, 4, 3)(cr.ones(2, 1, 8, 8)), ShapeError, "Conv2d", "(2, 1, 8, 8)"),
    bad("Conv2d ndim", lambda: nn.Conv2d(3, 4, 3)(cr.ones(3, 8, 8)), ShapeError, "Conv2d", "(3, 8, 8)"),
    bad("Conv1d ndim", lambda: nn.Conv1d(3, 4, 3)(cr.ones(2, 3, 8, 8)), ShapeError, "Conv1d", "(2, 3, 8, 8)"),
    bad("Conv1d channels", lambda: nn.Conv1d(3, 4, 3)(cr.ones(2, 2, 8)), ShapeError, "Conv1d", "(2, 2, 8)"),
    bad("Conv2d kernel > input", lambda: nn.Conv2d(1, 1, 5)(cr.ones(1, 1, 3, 3)), ShapeError, "conv2d", "(1, 1, 3, 3)"),
    bad(
        "Conv1d kernel > padded",
        lambda: nn.Conv1d(1, 1, 7, padding=1)(cr.ones(1, 1, 4)),
        ShapeError,
        "conv1d",
        "(1, 1, 4)",
        "(7,)",
    ),
    bad("Conv2d int input", lambda: nn.Conv2d(1, 1, 3)(cr.ones(1, 1, 4, 4, dtype="int64")), DTypeError, "Conv2d"),
    bad("Conv2d negative channels", lambda: nn.Conv2d(-1, 4, 3), ArgumentError, "Conv2d", "in_channels", "-1"),
    bad("Conv2d float channels", lambda: nn.Conv2d(1.5, 4, 3), ArgumentError, "Conv2d", "in_channels", "1.5"),
    bad("Conv2d zero kernel", lambda: nn.Conv2d(1, 4, 0), ArgumentError, "Conv2d", "kernel_size", "0"),
    bad("Conv2d kernel triple", lambda: nn.Conv2d(1, 4, (3, 3, 3)), ArgumentError, "Conv2d", "kernel_size"),
    bad("Conv2d string kernel", lambda: nn.Conv2d(1, 4, "3"), ArgumentError, "Conv2d", "kernel_size", "'3'"),
    bad("Conv2d stride 0", lambda: nn.Conv2d(1, 4, 3, stride=0), ArgumentError, "Conv2d", "stride"),
    bad("Conv2d padding word", lambda: nn.Conv2d(1, 4, 3, padding="full"), ArgumentError, "Conv2d", "'full'"),
    bad("Conv2d negative pad", lambda: nn.Conv2d(1, 4, 3, padding=-1), ArgumentError, "Conv2d", "padding"),
    bad("Conv2d groups", lambda: nn.Conv2d(2, 4, 3, groups=2), ArgumentError, "Conv2d", "groups"),
    bad("Conv2d padding_mode", lambda: nn.Conv2d(1, 4, 3, padding_mode="reflect"), ArgumentError, "'reflect'"),
    bad(
        "conv2d same stride",
        lambda: F.conv2d(cr.ones(1, 1, 4, 4), cr.ones(1, 1, 3, 3), stride=2, padding="same"),
        ArgumentError,
        "conv2d",
        "same",
    ),
    # Pooling
    bad("MaxPool2d ndim", lambda: nn.MaxPool2d(2)(cr.ones(4, 4)), ShapeError, "max_pool2d", "(4, 4)"),
    bad("MaxPool1d ndim", lambda: nn.MaxPool1d(2)(cr.ones(1, 4)), ShapeError, "max_pool1d", "(1, 4)"),
    bad("AvgPool2d ndim", lambda: nn.AvgPool2d(2)(cr.ones(1, 4, 4)), ShapeError, "avg_pool2d", "(1, 4, 4)"),
    bad("AvgPool1d ndim", lambda: nn.AvgPool1d(2)(cr.ones(1, 1, 4, 4)), ShapeError, "avg_pool1d", "(1, 1, 4, 4)"),
    bad("MaxPool2d window", lambda: nn.MaxPool2d(5)(cr.ones(1, 1, 3, 3)), ShapeError, "max_pool2d", "(1, 1, 3, 3)"),
    bad("AvgPool1d window", lambda: nn.AvgPool1d(5)(cr.ones(1, 1, 3)), ShapeError, "avg_pool1d", "(1, 1, 3)"),
    bad("MaxPool2d zero kernel", lambda: nn.MaxPool2d(0), ArgumentError, "MaxPool2d", "kernel_size"),
    bad("MaxPool2d negative stride", lambda: nn.MaxPool2d(2, stride=-1), ArgumentError, "MaxPool2d", "stride"),
    bad("AvgPool2d string kernel", lambda: nn.AvgPool2d("2"), ArgumentError, "AvgPool2d", "kernel_size", "'2'"),
    bad("MaxPool2d padding", lambda: nn.MaxPool2d(2, padding=2), ArgumentError, "MaxPool2d", "padding"),
    bad("AdaptiveAvgPool2d ndim", lambda: nn.AdaptiveAvgPool2d(1)(cr.ones(3, 4)), ShapeError, "adaptive", "(3, 4)"),
    bad("AdaptiveAvgPool2d size", lambda: nn.AdaptiveAvgPool2d(0), ArgumentError, "AdaptiveAvgPool2d", "output_size"),
    # Normalization
    bad("BatchNorm1d channels", lambda: nn.BatchNorm1d(4)(cr.ones(8, 3)), ShapeError, "BatchNorm1d", "(8, 3)"),
    bad("BatchNorm1d ndim", lambda: nn.BatchNorm1d(4)(cr.ones(4)), ShapeError, "BatchNorm1d", "(4,)"),
    bad("BatchNorm2d ndim", lambda: nn.BatchNorm2d(3)(cr.ones(2, 3)), ShapeError, "BatchNorm2d", "(2, 3)"),
    bad("BatchNorm2d channels", lambda: nn.BatchNorm2d(3)(cr.ones(2, 4, 5, 5)), ShapeError, "BatchNorm2d", "4"),
    bad("BatchNorm1d batch of 1", lambda: nn.BatchNorm1d(3)(cr.ones(1, 3)), ShapeError, "batch_norm", "(1, 3)"),
    bad("BatchNorm1d empty batch", lambda: nn.BatchNorm1d(3)(cr.ones(0, 3)), ShapeError, "batch_norm", "(0, 3)"),
    bad("BatchNorm1d int input", lambda: nn.BatchNorm1d(3)(cr.ones(4, 3, dtype="int64")), DTypeError, "BatchNorm1d"),
    bad("BatchNorm1d size", lambda: nn.BatchNorm1d(0), ArgumentError, "BatchNorm1d", "num_features", "0"),
    bad("BatchNorm1d float size", lambda: nn.BatchNorm1d(2.5), ArgumentError, "BatchNorm1d", "num_features"),
    bad("BatchNorm1d momentum", lambda: nn.BatchNorm1d(3, momentum=2.0), ArgumentError, "BatchNorm1d", "momentum"),
    bad("BatchNorm1d eps", lambda: nn.BatchNorm1d(3, eps=-1.0), ArgumentError, "BatchNorm1d", "eps"),
    bad("LayerNorm shape", lambda: nn.LayerNorm(4)(cr.ones(2, 3)), ShapeError, "LayerNorm", "(2, 3)", "(4,)"),
    bad("LayerNorm 2-d shape", lambda: nn.LayerNorm((2, 3))(cr.ones(3, 2)), ShapeError, "LayerNorm", "(3, 2)"),
    bad("LayerNorm int input", lambda: nn.LayerNorm(3)(cr.ones(2, 3, dtype="int64")), DTypeError, "LayerNorm"),
    bad("LayerNorm negative", lambda: nn.LayerNorm(-3), ArgumentError, "LayerNorm", "normalized_shape"),
    bad("LayerNorm string", lambda: nn.LayerNorm("3"), ArgumentError, "LayerNorm", "normalized_shape", "'3'"),
    bad("LayerNorm eps", lambda: nn.LayerNorm(3, eps=0.0), ArgumentError, "LayerNorm", "eps"),
    # Embedding
    bad("Embedding float indices", lambda: nn.Embedding(5, 2)(cr.tensor([0.0, 1.0])), DTypeError, "embedding"),
    bad("Embedding out of range", lambda: nn.Embedding(5, 2)(_labels(0, 5)), ShapeError, "embedding", "[0, 4]", "5"),
    bad("Embedding negative", lambda: nn.Embedding(5, 2)(_labels(-1, 2)), ShapeError, "embedding", "-1"),
    bad("Embedding size", lambda: nn.Embedding(0, 2), ArgumentError, "Embedding", "num_embeddings", "0"),
    bad("Embedding float size", lambda: nn.Embedding(5, 2.5), ArgumentError, "Embedding", "embedding_dim"),
    bad("Embedding padding_idx", lambda: nn.Embedding(5, 2, padding_idx=5), ArgumentError, "Embedding", "padding_idx"),
    # Dropout
    bad("Dropout p > 1", lambda: nn.Dropout(1.5), ArgumentError, "Dropout", "p", "1.5"),
    bad("Dropout p < 0", lambda: nn.Dropout(-0.1), ArgumentError, "Dropout", "-0.1"),
    bad("Dropout p string", lambda: nn.Dropout("0.5"), ArgumentError, "Dropout", "'0.5'"),
    bad("F.dropout p", lambda: F.dropout(cr.ones(2), 2.0), ArgumentError, "dropout", "2.0"),
    # Recurrent
    bad("RNN features", lambda: nn.RNN(3, 4)(cr.ones(5, 2, 6)), ShapeError, "RNN", "input_size=3", "(5, 2, 6)"),
    bad("LSTM features", lambda: nn.LSTM(3, 4)(cr.ones(5, 2, 6)), ShapeError, "LSTM", "input_size=3", "6"),
    bad("GRU features", lambda: nn.GRU(3, 4, batch_first=True)(cr.ones(2, 5, 1)), ShapeError, "GRU", "1"),
    bad("RNN ndim", lambda: nn.RNN(3, 4)(cr.ones(3)), ShapeError, "RNN", "(3,)"),
    bad("LSTM ndim", lambda: nn.LSTM(3, 4)(cr.ones(1, 2, 3, 3)), ShapeError, "LSTM", "(1, 2, 3, 3)"),
    bad("GRU empty sequence", lambda: nn.GRU(3, 4)(cr.ones(0, 2, 3)), ShapeError, "GRU", "empty", "(0, 2, 3)"),
    bad(
        "RNN h0 shape",
        lambda: nn.RNN(3, 4)(cr.ones(5, 2, 3), cr.zeros(1, 3, 4)),
        ShapeError,
        "RNN",
        "(1, 2, 4)",
        "(1, 3, 4)",
    ),
    bad(
        "GRU h0 layers",
        lambda: nn.GRU(3, 4, num_layers=2)(cr.ones(5, 2, 3), cr.zeros(1, 2, 4)),
        ShapeError,
        "GRU",
        "(2, 2, 4)",
        "(1, 2, 4)",
    ),
    bad("LSTM c0 shape", _lstm_bad_state, ShapeError, "LSTM", "(1, 2, 4)", "(1, 3, 4)"),
    bad("LSTM state not pair", lambda: nn.LSTM(3, 4)(cr.ones(5, 2, 3), cr.zeros(1, 2, 4)), ShapeError, "LSTM", "pair"),
    bad("RNN int input", lambda: nn.RNN(3, 4)(cr.ones(5, 2, 3, dtype="int64")), DTypeError, "RNN", "int64"),
    bad("RNN sizes", lambda: nn.RNN(0, 4), ArgumentError, "RNN", "input_size"),
    bad("LSTM float size", lambda: nn.LSTM(3, 4.5), ArgumentError, "LSTM", "hidden_size", "4.5"),
    bad("GRU num_layers", lambda: nn.GRU(3, 4, num_layers=0), ArgumentError, "GRU", "num_layers"),
    bad("RNN nonlinearity", lambda: nn.RNN(3, 4, nonlinearity="gelu"), ArgumentError, "RNN", "'gelu'"),
    bad("LSTM dropout", lambda: nn.LSTM(3, 4, dropout=1.0), ArgumentError, "LSTM", "dropout"),
    bad("GRU bidirectional", lambda: nn.GRU(3, 4, bidirectional=True), ArgumentError, "GRU", "bidirectional"),
    # activations and containers
    bad("Softmax dim", lambda: nn.Softmax(dim=2)(cr.ones(2, 3)), ShapeError, "softmax", "axis 2"),
    bad("LogSoftmax dim", lambda: nn.LogSoftmax(dim=-3)(cr.ones(2, 3)), ShapeError, "log_softmax", "axis -3"),
    bad("Flatten dims", lambda: nn.Flatten(2)(cr.ones(2, 3)), ShapeError, "flatten", "axis 2"),
    bad("Unflatten size", lambda: nn.Unflatten(1, (2, 2))(cr.ones(2, 3)), ShapeError, "(2, 3)"),
    bad(
        "Sequential mismatch",
        lambda: nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2))(cr.ones(2, 3)),
        ShapeError,
        "Linear",
        "5",
        "(2, 4)",
    ),
]


# -- losses -------------------------------------------------------------------------------------------
REGRESSION = {"MSELoss": "mse_loss", "L1Loss": "l1_loss", "HuberLoss": "huber_loss"}
CLASS_INDEX = {"CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll_loss", "MultiMarginLoss": "multi_margin_loss"}

LOSS_ROWS = [
    *[
        row
        for layer, fn_name in REGRESSION.items()
        for row in (
            bad(
                f"{layer} (N, 1) vs (N,)",
                lambda layer=layer: getattr(nn, layer)()(cr.ones(4, 1), cr.ones(4)),
                ShapeError,
                fn_name,
                "(4, 1)",
                "(4,)",
            ),
            bad(
                f"{layer} batch size",
                lambda layer=layer: getattr(nn, layer)()(cr.ones(4, 2), cr.ones(3, 2)),
                ShapeError,
                fn_name,
                "(4, 2)",
                "(3, 2)",
            ),
            bad(
                f"{layer} empty batch",
                lambda layer=layer: getattr(nn, layer)()(cr.ones(0, 2), cr.ones(0, 2)),
                ShapeError,
                fn_name,
                "empty batch",
                "(0, 2)",
            ),
            bad(f"{layer} reduction", lambda layer=layer: getattr(nn, layer)(reduction="avg"), ArgumentError, "'avg'"),
        )
    ],
    bad("HuberLoss delta", lambda: nn.HuberLoss(delta=0.0), ArgumentError, "HuberLoss", "delta"),
    bad("F.mse_loss reduction", lambda: F.mse_loss(cr.ones(2), cr.ones(2), "avg"), ArgumentError, "mse_loss", "'avg'"),
    # binary cross-entropy
    bad("BCELoss above 1", lambda: nn.BCELoss()(cr.tensor([0.5, 1.5]), cr.ones(2)), ArgumentError, "binary_cross"),
    bad("BCELoss below 0", lambda: nn.BCELoss()(cr.tensor([-0.1, 0.5]), cr.ones(2)), ArgumentError, "[0, 1]"),
    bad("BCELoss shape", lambda: nn.BCELoss()(cr.ones(4, 1) * 0.5, cr.ones(4)), ShapeError, "binary_cross", "(4, 1)"),
    bad("BCELoss empty batch", lambda: nn.BCELoss()(cr.ones(0), cr.ones(0)), ShapeError, "empty batch", "(0,)"),
    bad(
        "BCEWithLogitsLoss shape",
        lambda: nn.BCEWithLogitsLoss()(cr.ones(4, 1), cr.ones(4)),
        ShapeError,
        "binary_cross_entropy_with_logits",
        "(4, 1)",
        "(4,)",
    ),
    bad(
        "BCEWithLogitsLoss empty",
        lambda: nn.BCEWithLogitsLoss()(cr.ones(0, 1), cr.ones(0, 1)),
        ShapeError,
        "binary_cross_entropy_with_logits",
        "empty batch",
    ),
    bad("BCELoss reduction", lambda: nn.BCELoss(reduction=None), ArgumentError, "BCELoss", "None"),
    # class-index losses
    *[
        row
        for layer, fn_name in CLASS_INDEX.items()
        for row in (
            bad(
                f"{layer} label too large",
                lambda layer=layer: getattr(nn, layer)()(cr.zeros(2, 3), _labels(0, 3)),
                ShapeError,
                fn_name,
                "label 3",
                "3 classes",
            ),
            bad(
                f"{layer} negative label",
                lambda layer=layer: getattr(nn, layer)()(cr.zeros(2, 3), _labels(-1, 0)),
                ShapeError,
                fn_name,
                "label -1",
            ),
            bad(  # float targets of CrossEntropyLoss are class probabilities: they must match the logits' shape
                f"{layer} float labels",
                lambda layer=layer: getattr(nn, layer)()(cr.zeros(2, 3), cr.tensor([0.0, 1.0])),
                ShapeError if layer == "CrossEntropyLoss" else DTypeError,
                fn_name,
                "(2, 3)" if layer == "CrossEntropyLoss" else "float32",
            ),
            bad(
                f"{layer} batch size",
                lambda layer=layer: getattr(nn, layer)()(cr.zeros(4, 3), _labels(0, 1)),
                ShapeError,
                fn_name,
                "(4, 3)",
                "(2,)",
            ),
            bad(
                f"{layer} target ndim",
                lambda layer=layer: getattr(nn, layer)()(cr.zeros(2, 3), cr.zeros(2, 1, dtype="int64")),
                ShapeError,
                fn_name,
                "(2, 3)",
                "(2, 1)",
            ),
            bad(
                f"{layer} 0-d input",
                lambda layer=layer: getattr(nn, layer)()(cr.tensor(1.0), _labels(0)),
                ShapeError,
                fn_name,
                "()",
            ),
            bad(
                f"{layer} empty batch",
                lambda layer=layer: getattr(nn, layer)()(cr.zeros(0, 3), cr.zeros(0, dtype="int64")),
                ShapeError,
                fn_name,
                "empty batch",
                "(0, 3)",
            ),
        )
    ],
    bad("MultiMarginLoss 3-d", lambda: nn.MultiMarginLoss()(cr.zeros(2, 3, 4), _labels(0, 1)), ShapeError, "(2, 3, 4)"),
    bad("MultiMarginLoss p", lambda: nn.MultiMarginLoss(p=3), ArgumentError, "MultiMarginLoss", "p", "3"),
    bad(
        "CrossEntropyLoss smoothing",
        lambda: nn.CrossEntropyLoss(label_smoothing=1.5),
        ArgumentError,
        "CrossEntropyLoss",
        "1.5",
    ),
    bad(
        "CrossEntropyLoss weight size",
        lambda: nn.CrossEntropyLoss(weight=cr.ones(2))(cr.zeros(2, 3), _labels(0, 2)),
        ShapeError,
        "cross_entropy",
        "weight",
        "(2,)",
    ),
    bad(
        "CrossEntropyLoss spatial target",
        lambda: nn.CrossEntropyLoss()(cr.zeros(2, 3, 5), cr.zeros(2, 4, dtype="int64")),
        ShapeError,
        "cross_entropy",
        "(2, 3, 5)",
        "(2, 4)",
    ),
    bad(
        "F.one_hot range",
        lambda: F.one_hot(_labels(0, 4), 3),
        ShapeError,
        "one_hot",
        "label 4",
    ),
]


# -- optimizers ---------------------------------------------------------------------------------------
OPTIM_ROWS = [
    bad("SGD lr", lambda: cr.optim.SGD([_param()], lr=-0.1), ArgumentError, "SGD", "learning rate", "-0.1"),
    bad("SGD lr string", lambda: cr.optim.SGD([_param()], lr="0.1"), ArgumentError, "SGD", "'0.1'"),
    bad("SGD momentum", lambda: cr.optim.SGD([_param()], momentum=-0.5), ArgumentError, "SGD", "momentum"),
    bad("SGD nesterov", lambda: cr.optim.SGD([_param()], nesterov=True), ArgumentError, "SGD", "Nesterov"),
    bad("SGD weight_decay", lambda: cr.optim.SGD([_param()], weight_decay=-1), ArgumentError, "SGD", "weight_decay"),
    bad("SGD empty", lambda: cr.optim.SGD([]), ArgumentError, "SGD", "empty"),
    bad("SGD non-tensor", lambda: cr.optim.SGD([np.ones(2)]), ArgumentError, "SGD", "ndarray"),
    bad("SGD no grad", lambda: cr.optim.SGD([cr.ones(2)]), ArgumentError, "SGD", "(2,)", "require"),
    bad("SGD unknown", lambda: cr.optim.SGD([{"params": [_param()], "betas": 1}]), ArgumentError, "betas"),
    bad("Adam betas", lambda: cr.optim.Adam([_param()], betas=(0.9, 1.0)), ArgumentError, "Adam", "betas"),
    bad("Adam betas one", lambda: cr.optim.Adam([_param()], betas=(0.9,)), ArgumentError, "Adam", "betas"),
    bad("Adam eps", lambda: cr.optim.Adam([_param()], eps=-1e-8), ArgumentError, "Adam", "eps"),
    bad("AdamW lr", lambda: cr.optim.AdamW([_param()], lr=-1), ArgumentError, "AdamW", "learning rate"),
    bad("RMSprop alpha", lambda: cr.optim.RMSprop([_param()], alpha=-0.1), ArgumentError, "RMSprop", "alpha"),
    bad("RMSprop momentum", lambda: cr.optim.RMSprop([_param()], momentum=-1), ArgumentError, "RMSprop"),
    bad("Adagrad lr_decay", lambda: cr.optim.Adagrad([_param()], lr_decay=-1), ArgumentError, "Adagrad"),
    bad(
        "StepLR step_size",
        lambda: cr.optim.lr_scheduler.StepLR(cr.optim.SGD([_param()], lr=0.1), step_size=0),
        ArgumentError,
        "StepLR",
        "step_size",
    ),
    bad("StepLR optimizer", lambda: cr.optim.lr_scheduler.StepLR(None, 1), ArgumentError, "StepLR", "NoneType"),
]

ROWS = OPS_ROWS + LAYER_ROWS + LOSS_ROWS + OPTIM_ROWS


def test_row_names_are_unique():
    names = [row.name for row in ROWS]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_bad_input_raises_a_chainrule_error_that_names_op_and_shapes(row):
    assert_refused(row.call, row.error, row.parts)


@pytest.mark.parametrize(
    "layer, batch, out_shape",
    [
        (nn.Linear(3, 2), cr.ones(0, 3), (0, 2)),
        (nn.Conv2d(1, 4, 3), cr.ones(0, 1, 5, 5), (0, 4, 3, 3)),
        (nn.Conv1d(2, 4, 3), cr.ones(0, 2, 5), (0, 4, 3)),
        (nn.MaxPool2d(2), cr.ones(0, 1, 4, 4), (0, 1, 2, 2)),
        (nn.AvgPool1d(2), cr.ones(0, 1, 4), (0, 1, 2)),
        (nn.LayerNorm(3), cr.ones(0, 3), (0, 3)),
        (nn.Embedding(5, 2), cr.zeros(0, dtype="int64"), (0, 2)),
        (nn.ReLU(), cr.ones(0, 3), (0, 3)),
        (nn.Dropout(0.5), cr.ones(0, 3), (0, 3)),
    ],
)
def test_layers_map_an_empty_batch_to_an_empty_output(layer, batch, out_shape):
    """As in PyTorch: a layer without batch statistics maps 0 samples to 0 outputs."""
    assert layer(batch).shape == out_shape


def test_batch_norm_in_eval_mode_accepts_a_batch_of_one():
    layer = nn.BatchNorm1d(3).eval()
    assert layer(cr.ones(1, 3)).shape == (1, 3)


def test_layers_accept_unbatched_input_like_pytorch():
    assert nn.Linear(3, 2)(cr.ones(3)).shape == (2,)
    assert nn.RNN(3, 4)(cr.ones(5, 3))[0].shape == (5, 4)


def test_regression_losses_accept_equal_shapes_and_float64_targets():
    loss = nn.MSELoss()(cr.ones(4, 1), cr.zeros(4, 1, dtype="float64"))
    assert loss.item() == pytest.approx(1.0)
