"""One-hot byte symbols computed in the graph from byte ids."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

Tensor = Any


@keras.saving.register_keras_serializable(package="keras_mtl")
class ByteOneHot(keras.layers.Layer):
    """Turns byte ids (batch, length) into one-hot rows (batch, length, 256).

    The seed feeds each tweet as a (280, 256) float matrix: 286,720 bytes of
    float32 per tweet. Storing the 280 byte ids and one-hotting them here
    costs 280 bytes per tweet on the host and gives the same matrix. Id 0 is
    padding and becomes a zero row (see `keras_mtl.data.text.encode_bytes`).

    Args:
        depth: Number of symbols (256 for bytes).

    Example:
    >>> import numpy as np
    >>> ByteOneHot(depth=4)(np.array([[0, 2]])).tolist()
    [[[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]]
    """

    def __init__(self, depth: int = 256, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.depth = int(depth)

    def call(self, ids: Tensor) -> Tensor:
        ids = ops.cast(ids, "int32")
        one_hot = ops.one_hot(ids, self.depth, dtype=self.compute_dtype)
        keep = ops.cast(ops.expand_dims(ids > 0, -1), self.compute_dtype)
        return one_hot * keep

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape, self.depth)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "depth": self.depth}
