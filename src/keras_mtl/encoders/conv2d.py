"""A small convolutional image encoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

Tensor = Any


@keras.saving.register_keras_serializable(package="keras_mtl")
class Conv2DEncoder(keras.layers.Layer):
    """Blocks of a 3x3 convolution and 2x2 max pooling, then a dense layer:
    the classic small image trunk (LeCun et al. 1998,
    https://doi.org/10.1109/5.726791), over images of shape
    (height, width, channels).

    Args:
        filters: Channels of each block's convolution.
        kernel_size: Window of every convolution.
        pool: Max-pooling window (and stride) after each convolution.
        dense: Width of the dense layer after flattening: the encoding's.
        dropout: Dropout before the dense layer while training.

    Example:
    >>> import numpy as np
    >>> Conv2DEncoder(filters=(4, 8), dense=16)(np.ones((2, 28, 28, 1))).shape
    (2, 16)
    """

    def __init__(
        self,
        filters: Sequence[int] | int = (16, 32),
        kernel_size: int = 3,
        pool: int = 2,
        dense: int = 64,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = (
            [int(filters)] if isinstance(filters, int) else [int(f) for f in filters]
        )
        if not self.filters or min(self.filters) < 1:
            raise ValueError(
                f"Conv2DEncoder: filters must be channel counts >= 1, got {filters!r}."
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(
                f"Conv2DEncoder: dropout must be in [0, 1), got {dropout}."
            )
        self.kernel_size = int(kernel_size)
        self.pool = int(pool)
        self.dense_units = int(dense)
        self.dropout = float(dropout)
        self.blocks = []
        for i, f in enumerate(self.filters):
            self.blocks.append(
                keras.layers.Conv2D(
                    f,
                    self.kernel_size,
                    padding="same",
                    activation="relu",
                    name=f"conv_{i}",
                )
            )
            self.blocks.append(keras.layers.MaxPooling2D(self.pool, name=f"pool_{i}"))
        self.flatten = keras.layers.Flatten()
        self.drop = keras.layers.Dropout(self.dropout) if self.dropout else None
        self.dense = keras.layers.Dense(
            self.dense_units, activation="relu", name="dense"
        )

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 4:
            raise ValueError(
                "Conv2DEncoder: expected images of shape (height, width, channels), "
                f"got an input of shape {tuple(input_shape)[1:]}."
            )
        shape = tuple(input_shape)
        for layer in self.blocks:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        shape = self.flatten.compute_output_shape(shape)
        self.dense.build(shape)
        self.built = True

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        x = keras.ops.cast(inputs, self.compute_dtype)
        for layer in self.blocks:
            x = layer(x)
        x = self.flatten(x)
        if self.drop is not None:
            x = self.drop(x, training=training)
        return self.dense(x)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.dense_units)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": list(self.filters),
            "kernel_size": self.kernel_size,
            "pool": self.pool,
            "dense": self.dense_units,
            "dropout": self.dropout,
        }
