"""Concatenation fusion: the seed's Case 1."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl.fusion.base import Fusion, Tensor


@keras.saving.register_keras_serializable(package="keras_mtl")
class Concatenate(Fusion):
    """Joins the encodings side by side: [h_a, h_b].

    The seed's Case 1. Every task that reads several inputs sees all of
    them, but a single Dense head on top computes w_a.h_a + w_b.h_b: it adds
    evidence from each input and cannot express a comparison such as "a and
    b have the same sentiment" (use `PairFeatures` or a hidden layer).

    Example:
    >>> import numpy as np
    >>> Concatenate()([np.ones((2, 3)), np.zeros((2, 2))]).shape
    (2, 5)
    """

    key = "concatenate"

    def fuse(self, encodings: list[Tensor]) -> Tensor:
        if len(encodings) == 1:
            return encodings[0]
        return ops.concatenate(encodings, axis=-1)
