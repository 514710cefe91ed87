"""A stack of dense layers: the encoder for feature vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

Tensor = Any


@keras.saving.register_keras_serializable(package="keras_mtl")
class MLPEncoder(keras.layers.Layer):
    """Dense layers over a feature vector (a multilayer perceptron), the
    shared bottom of hard parameter sharing (Caruana 1997).

    Args:
        units: Width of each dense layer; the last is the encoding's.
        activation: Activation of every layer.
        dropout: Dropout after every layer while training.

    Example:
    >>> import numpy as np
    >>> MLPEncoder(units=(16, 8))(np.ones((2, 5), "float32")).shape
    (2, 8)
    """

    def __init__(
        self,
        units: Sequence[int] | int = (64,),
        activation: str = "relu",
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.units = [int(units)] if isinstance(units, int) else [int(u) for u in units]
        if not self.units or min(self.units) < 1:
            raise ValueError(f"MLPEncoder: units must be widths >= 1, got {units!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"MLPEncoder: dropout must be in [0, 1), got {dropout}.")
        self.activation = activation
        self.dropout = float(dropout)
        self.dense = [
            keras.layers.Dense(u, activation=activation, name=f"dense_{i}")
            for i, u in enumerate(self.units)
        ]
        self.drop = keras.layers.Dropout(self.dropout) if self.dropout else None

    def build(self, input_shape: tuple) -> None:
        shape = tuple(input_shape)
        for layer in self.dense:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        x = keras.ops.cast(inputs, self.compute_dtype)
        for layer in self.dense:
            x = layer(x)
            if self.drop is not None:
                x = self.drop(x, training=training)
        return x

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*tuple(input_shape)[:-1], self.units[-1])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": list(self.units),
            "activation": self.activation,
            "dropout": self.dropout,
        }
