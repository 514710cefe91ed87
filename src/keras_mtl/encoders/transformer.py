"""A small Transformer encoder."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_mtl.encoders.base import SequenceEncoder, Tensor


class _Block(keras.layers.Layer):
    """Pre-norm self-attention and feed-forward block."""

    def __init__(
        self, dim: int, heads: int, ff_dim: int, dropout: float, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.attention = keras.layers.MultiHeadAttention(
            heads, dim // heads, dropout=dropout, name="attention"
        )
        self.norm_1 = keras.layers.LayerNormalization(name="norm_1")
        self.norm_2 = keras.layers.LayerNormalization(name="norm_2")
        self.ff_1 = keras.layers.Dense(ff_dim, activation="gelu", name="ff_1")
        self.ff_2 = keras.layers.Dense(dim, name="ff_2")

    def build(self, input_shape: tuple) -> None:
        self.norm_1.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.norm_2.build(input_shape)
        self.ff_1.build(input_shape)
        self.ff_2.build(self.ff_1.compute_output_shape(input_shape))

    def call(self, x: Tensor, training: bool | None = None) -> Tensor:
        h = self.norm_1(x)
        x = x + self.attention(h, h, training=training)
        return x + self.ff_2(self.ff_1(self.norm_2(x)))


@keras.saving.register_keras_serializable(package="keras_mtl")
class TransformerEncoder(SequenceEncoder):
    """Learned positions, pre-norm Transformer blocks, mean pooling (Vaswani
    et al. 2017, https://arxiv.org/abs/1706.03762).

    Args:
        dim: Model width and width of the encoding.
        heads: Attention heads (must divide `dim`).
        ff_dim: Width of the feed-forward layers.
        num_layers: Number of blocks.
        max_length: Longest sequence (positions learned up to it).
        dropout: Attention dropout.
        **kwargs: See `SequenceEncoder`; `symbols` defaults to `"embedding"`.

    Example:
    >>> import numpy as np
    >>> TransformerEncoder(16, heads=2, max_length=12)(np.ones((2, 12), "uint8")).shape
    (2, 16)
    """

    def __init__(
        self,
        dim: int = 64,
        heads: int = 4,
        ff_dim: int = 128,
        num_layers: int = 1,
        max_length: int = 280,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("symbols", "embedding")
        super().__init__(**kwargs)
        if dim % heads:
            raise ValueError(
                f"Encoder '{self.name}': heads ({heads}) must divide dim ({dim})."
            )
        self.dim = int(dim)
        self.heads = int(heads)
        self.ff_dim = int(ff_dim)
        self.num_layers = int(num_layers)
        self.max_length = int(max_length)
        self.dropout = float(dropout)
        self.project = keras.layers.Dense(self.dim, name="project")
        self.positions = keras.layers.Embedding(
            self.max_length, self.dim, name="positions"
        )
        self.blocks = [
            _Block(self.dim, self.heads, self.ff_dim, self.dropout, name=f"block_{i}")
            for i in range(self.num_layers)
        ]
        self.norm = keras.layers.LayerNormalization(name="norm")

    def build_body(self, sequence_shape: tuple) -> None:
        self.project.build(sequence_shape)
        self.positions.build((None,))
        shape = (*sequence_shape[:-1], self.dim)
        for block in self.blocks:
            block.build(shape)
        self.norm.build(shape)

    def encode(self, sequence: Tensor, training: bool | None = None) -> Tensor:
        length = ops.shape(sequence)[1]
        x = self.project(sequence) + self.positions(ops.arange(length))
        for block in self.blocks:
            x = block(x, training=training)
        return ops.mean(self.norm(x), axis=1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.dim)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "dim": self.dim,
            "heads": self.heads,
            "ff_dim": self.ff_dim,
            "num_layers": self.num_layers,
            "max_length": self.max_length,
            "dropout": self.dropout,
        }
