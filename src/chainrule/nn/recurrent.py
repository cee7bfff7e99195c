"""Recurrent layers: ``RNN``, ``LSTM`` and ``GRU``, trained by backpropagation through time.

Parameter names, shapes and gate order are PyTorch's, so a PyTorch ``state_dict`` (as NumPy arrays) loads
unchanged: ``weight_ih_l{k}`` (G·H, in), ``weight_hh_l{k}`` (G·H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}`` (G·H,),
with gates (i, f, g, o) for LSTM and (r, z, n) for GRU.

Each layer is one node of the graph (``ops.RNNLayer``, ``ops.LSTMLayer``, ``ops.GRULayer``): the input
projection of the whole sequence is one matrix product, the loop over time steps runs inside the primitive's
forward and, backwards, inside its VJP, and each weight gradient is again one matrix product over all steps.
For truncated backpropagation through time, pass the returned state back in after ``.detach()``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chainrule import _checks as check
from chainrule import functions as fn
from chainrule.errors import ArgumentError, ShapeError
from chainrule.nn import functional as F
from chainrule.nn import init
from chainrule.nn.module import Module, Parameter
from chainrule.ops import OPS
from chainrule.tensor import Tensor, _wrap, apply, as_dtype

__all__ = ["RNN", "LSTM", "GRU"]


class _RecurrentBase(Module):
    gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: object = np.float32,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.input_size = check.integer(name, "input_size", input_size, minimum=1)
        self.hidden_size = check.integer(name, "hidden_size", hidden_size, minimum=1)
        self.num_layers = check.integer(name, "num_layers", num_layers, minimum=1)
        self.dropout = check.real(name, "dropout", dropout, 0.0, 1.0, high_open=True)
        if bidirectional:
            raise ArgumentError(f"{name}: bidirectional layers are not supported")
        self.bias, self.batch_first = bias, batch_first
        dtype = as_dtype(dtype)
        width = self.gates * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size
            setattr(self, f"weight_ih_l{layer}", Parameter(np.empty((width, layer_input), dtype=dtype)))
            setattr(self, f"weight_hh_l{layer}", Parameter(np.empty((width, hidden_size), dtype=dtype)))
            if bias:
                setattr(self, f"bias_ih_l{layer}", Parameter(np.empty(width, dtype=dtype)))
                setattr(self, f"bias_hh_l{layer}", Parameter(np.empty(width, dtype=dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: every weight and bias U(±1/√hidden_size)."""
        bound = 1 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            init.uniform_(param, -bound, bound)

    def _layer_args(self, layer: int, summed_bias: bool = True) -> tuple[Tensor, ...]:
        """W_ih, W_hh and the bias of one layer: b_ih + b_hh in one (RNN, LSTM), or both apart (GRU's new gate
        needs b_hh alone); nothing without bias."""
        weights = (getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}"))
        if not self.bias:
            return weights
        biases = (getattr(self, f"bias_ih_l{layer}"), getattr(self, f"bias_hh_l{layer}"))
        return weights + ((biases[0] + biases[1],) if summed_bias else biases)

    def _prepare(self, x: Tensor, state: Any) -> tuple[Tensor, bool, Any]:
        name = type(self).__name__
        check.float_input(self, x)
        if x.ndim not in (2, 3):
            raise ShapeError(
                f"{name}: expected input (T, N, {self.input_size}) or (N, T, {self.input_size}) with "
                f"batch_first, or unbatched (T, {self.input_size}); got shape {x.shape}"
            )
        batched = x.ndim == 3
        if not batched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)  # (T, N, in)
        if x.shape[-1] != self.input_size:
            raise ShapeError(f"{name}(input_size={self.input_size}): input has {x.shape[-1]} features, shape {x.shape}")
        if x.shape[0] == 0:
            raise ShapeError(f"{name}: the input sequence is empty (shape {x.shape})")
        return x, batched, state

    def _initial(self, state: Any, batch: int, dtype: np.dtype, batched: bool) -> Tensor:
        expected = (self.num_layers, batch, self.hidden_size)
        if state is None:
            return _wrap(np.zeros(expected, dtype=dtype))
        state = fn.as_tensor(state)
        if not batched:
            state = state.unsqueeze(1)
        if state.shape != expected:
            raise ShapeError(f"{type(self).__name__}: expected initial state of shape {expected}, got {state.shape}")
        return state

    def _finish(self, output: Tensor, batched: bool) -> Tensor:
        """The last layer's states (T, N, H) in the caller's layout."""
        if not batched:
            return output.squeeze(1)
        return output.transpose(0, 1) if self.batch_first else output

    def _between_layers(self, outputs: Tensor, layer: int) -> Tensor:
        if self.dropout and self.training and layer < self.num_layers - 1:
            return F.dropout(outputs, self.dropout)
        return outputs

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.batch_first:
            text += ", batch_first=True"
        return text


class _HiddenStateRecurrent(_RecurrentBase):
    """RNN and GRU: one hidden state per layer. A subclass says how one layer runs over the sequence."""

    def _layer(self, inputs: Tensor, h0: Tensor, layer: int) -> Tensor:
        """The states (T, N, H) of every step of one layer, one node of the graph."""
        raise NotImplementedError

    def forward(self, x: Tensor, h0: Any = None) -> tuple[Tensor, Tensor]:
        x, batched, _ = self._prepare(fn.as_tensor(x), h0)
        h_all = self._initial(h0, x.shape[1], x.dtype, batched)
        finals, inputs = [], x
        for layer in range(self.num_layers):
            outputs = self._layer(inputs, h_all[layer], layer)  # (T, N, H)
            finals.append(outputs[-1])
            inputs = self._between_layers(outputs, layer)
        output = self._finish(outputs, batched)
        h_n = fn.stack(finals, axis=0)
        return output, (h_n if batched else h_n.squeeze(1))


class RNN(_HiddenStateRecurrent):
    """Elman RNN: :math:`h_t = \\phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})`, :math:`\\phi` = tanh or relu.

    Shape: input (T, N, in) ((N, T, in) with ``batch_first``), h_0 (num_layers, N, H) ->
    output (T, N, H), h_n (num_layers, N, H).

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> output, h_n = nn.RNN(10, 20, num_layers=2)(cr.randn(5, 3, 10))
    >>> output.shape, h_n.shape
    ((5, 3, 20), (2, 3, 20))
    """

    gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        dtype: object = np.float32,
    ) -> None:
        check.one_of("RNN", "nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype)
        self.nonlinearity = nonlinearity

    def _layer(self, inputs: Tensor, h0: Tensor, layer: int) -> Tensor:
        return apply(OPS["rnn_layer"], inputs, h0, *self._layer_args(layer), nonlinearity=self.nonlinearity)


class LSTM(_RecurrentBase):
    """Long short-term memory, PyTorch's gate order (input, forget, cell, output):

    :math:`i, f, o = \\sigma(\\cdot)`, :math:`g = \\tanh(\\cdot)`, :math:`c_t = f c_{t-1} + i g`,
    :math:`h_t = o \\tanh(c_t)`.

    Shape: input (T, N, in), (h_0, c_0) each (num_layers, N, H) -> output (T, N, H), (h_n, c_n).

    Examples
    --------
    >>> import chainrule as cr
    >>> from chainrule import nn
    >>> output, (h_n, c_n) = nn.LSTM(28, 64, batch_first=True)(cr.randn(4, 28, 28))
    >>> output.shape, h_n.shape
    ((4, 28, 64), (1, 4, 64))
    """

    gates = 4

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        x, batched, _ = self._prepare(fn.as_tensor(x), state)
        if state is not None and (not isinstance(state, (tuple, list)) or len(state) != 2):
            raise ShapeError("LSTM: the initial state must be a pair (h_0, c_0)")
        h0, c0 = (None, None) if state is None else state
        h_all = self._initial(h0, x.shape[1], x.dtype, batched)
        c_all = self._initial(c0, x.shape[1], x.dtype, batched)
        final_h, final_c, inputs = [], [], x
        for layer in range(self.num_layers):
            # (2, T, N, H): h_t and c_t of every step, one node
            states = apply(OPS["lstm_layer"], inputs, h_all[layer], c_all[layer], *self._layer_args(layer))
            outputs = states[0]  # (T, N, H)
            final_h.append(states[0, -1])
            final_c.append(states[1, -1])
            inputs = self._between_layers(outputs, layer)
        output = self._finish(outputs, batched)
        h_n, c_n = fn.stack(final_h, axis=0), fn.stack(final_c, axis=0)
        if not batched:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return output, (h_n, c_n)


class GRU(_HiddenStateRecurrent):
    """Gated recurrent unit, PyTorch's gate order (reset, update, new):

    :math:`r, z = \\sigma(W_i x + b_i + W_h h + b_h)`, :math:`n = \\tanh(W_{in} x + b_{in} + r (W_{hn} h + b_{hn}))`,
    :math:`h_t = (1 - z) n + z h_{t-1}`.

    Shape: input (T, N, in), h_0 (num_layers, N, H) -> output (T, N, H), h_n (num_layers, N, H).
    """

    gates = 3

    def _layer(self, inputs: Tensor, h0: Tensor, layer: int) -> Tensor:
        return apply(OPS["gru_layer"], inputs, h0, *self._layer_args(layer, summed_bias=False))
