"""``Embedding``: a lookup table of learned vectors, one row per index."""

from __future__ import annotations

import numpy as np

from chainrule import _checks as check
from chainrule.errors import ArgumentError
from chainrule.nn import functional as F
from chainrule.nn import init
from chainrule.nn.module import Module, Parameter
from chainrule.tensor import Tensor, as_dtype

__all__ = ["Embedding"]


class Embedding(Module):
    """Rows of a (num_embeddings, embedding_dim) table picked by integer indices; initialised N(0, 1).

    Shape: indices (*) -> (*, embedding_dim). The gradient adds up over repeated indices.
    ``padding_idx`` rows are zeroed at init and receive no gradient.
    """

    def __init__(
        self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, dtype: object = np.float32
    ) -> None:
        super().__init__()
        num_embeddings = check.integer("Embedding", "num_embeddings", num_embeddings, minimum=1)
        embedding_dim = check.integer("Embedding", "embedding_dim", embedding_dim, minimum=1)
        if (
            padding_idx is not None
            and not -num_embeddings <= check.integer("Embedding", "padding_idx", padding_idx) < num_embeddings
        ):
            raise ArgumentError(f"Embedding: padding_idx {padding_idx} is out of range for {num_embeddings} embeddings")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        self.weight = Parameter(np.empty((num_embeddings, embedding_dim), dtype=as_dtype(dtype)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 1), with the padding row zeroed."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, indices: Tensor) -> Tensor:
        return F.embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
