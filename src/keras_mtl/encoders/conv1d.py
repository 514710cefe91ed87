"""A convolutional sequence encoder."""

from __future__ import annotations

from typing import Any

import keras

from keras_mtl.encoders.base import SequenceEncoder, Tensor


@keras.saving.register_keras_serializable(package="keras_mtl")
class Conv1DEncoder(SequenceEncoder):
    """Stacked 1-D convolutions and global max pooling (Kim 2014,
    https://arxiv.org/abs/1408.5882).

    Args:
        filters: Channels of every convolution, and width of the encoding.
        kernel_size: Window of every convolution.
        num_layers: Number of stacked convolutions.
        **kwargs: See `SequenceEncoder`.

    Example:
    >>> import numpy as np
    >>> Conv1DEncoder(8, symbols="embedding")(np.ones((2, 9), "uint8")).shape
    (2, 8)
    """

    def __init__(
        self,
        filters: int = 64,
        kernel_size: int = 5,
        num_layers: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.num_layers = int(num_layers)
        self.convs = [
            keras.layers.Conv1D(
                self.filters,
                self.kernel_size,
                padding="same",
                activation="relu",
                name=f"conv_{i}",
            )
            for i in range(self.num_layers)
        ]
        self.pool = keras.layers.GlobalMaxPooling1D(name="pool")

    def build_body(self, sequence_shape: tuple) -> None:
        shape = sequence_shape
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)

    def encode(self, sequence: Tensor, training: bool | None = None) -> Tensor:
        for conv in self.convs:
            sequence = conv(sequence)
        return self.pool(sequence)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.filters)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "num_layers": self.num_layers,
        }
