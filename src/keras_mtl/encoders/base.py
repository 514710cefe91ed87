"""The shared part of the ready-made sequence encoders: the symbol step."""

from __future__ import annotations

from typing import Any

import keras

from keras_mtl.layers.byte_one_hot import ByteOneHot

Tensor = Any

SYMBOLS = (None, "onehot", "embedding")


class SequenceEncoder(keras.layers.Layer):
    """Maps a sequence to one vector; byte ids may be turned into symbols first.

    Args:
        symbols: What the encoder does with its input. `None`: the input is
            already a float sequence (batch, length, features), as the
            seed's (280, 256). `"onehot"`: the input is byte ids (batch,
            length), one-hot encoded in the graph (`ByteOneHot`), which gives
            the seed's numbers from 280 stored bytes per text.
            `"embedding"`: byte ids through a learned `Embedding`.
        vocab_size: Number of symbols (256 for bytes).
        embedding_dim: Width of the learned embedding.
    """

    def __init__(
        self,
        symbols: str | None = None,
        vocab_size: int = 256,
        embedding_dim: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if symbols not in SYMBOLS:
            raise ValueError(
                f"Encoder '{self.name}': symbols must be one of None, 'onehot', "
                f"'embedding', got {symbols!r}."
            )
        self.symbols = symbols
        self.vocab_size = int(vocab_size)
        self.embedding_dim = int(embedding_dim)
        if symbols == "onehot":
            self.symbol_layer = ByteOneHot(self.vocab_size, name="one_hot")
        elif symbols == "embedding":
            self.symbol_layer = keras.layers.Embedding(
                self.vocab_size, self.embedding_dim, name="embedding"
            )
        else:
            self.symbol_layer = None

    def symbol_shape(self, input_shape: tuple) -> tuple:
        if self.symbol_layer is None:
            return tuple(input_shape)
        return self.symbol_layer.compute_output_shape(tuple(input_shape))

    def build(self, input_shape: tuple) -> None:
        if self.symbol_layer is not None:
            self.symbol_layer.build(tuple(input_shape))
        self.build_body(self.symbol_shape(input_shape))

    def build_body(self, sequence_shape: tuple) -> None:
        """Builds the layers after the symbol step."""
        raise NotImplementedError

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        sequence = inputs if self.symbol_layer is None else self.symbol_layer(inputs)
        return self.encode(sequence, training=training)

    def encode(self, sequence: Tensor, training: bool | None = None) -> Tensor:
        """Encodes a float sequence (batch, length, features)."""
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "symbols": self.symbols,
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
        }
