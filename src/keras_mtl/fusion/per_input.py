"""Per-input fusion: the seed's Case 2, each head reads one input."""

from __future__ import annotations

import keras

from keras_mtl.fusion.base import Fusion, Tensor


@keras.saving.register_keras_serializable(package="keras_mtl")
class PerInput(Fusion):
    """Gives each task's head the encoding of exactly one input.

    The seed's Case 2: head i reads input i only, so the tasks share nothing
    but the encoder's weights. A task that names two inputs is an error at
    build time. When tasks name no inputs, the builder pairs task i with
    input i.

    Example:
    >>> import numpy as np
    >>> PerInput()([np.ones((2, 3))]).shape
    (2, 3)
    """

    key = "per_input"
    max_inputs = 1

    def fuse(self, encodings: list[Tensor]) -> Tensor:
        return encodings[0]
