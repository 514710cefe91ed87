"""The pair representation [a, b, |a-b|, a*b] for comparing two inputs."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl.fusion.base import Fusion, Tensor


@keras.saving.register_keras_serializable(package="keras_mtl")
class PairFeatures(Fusion):
    """[h_a, h_b, |h_a - h_b|, h_a * h_b] of exactly two encodings.

    The interaction terms let even a linear head compare the inputs ("same
    as"), which a head on [h_a, h_b] alone cannot (Conneau et al. 2017,
    "Supervised Learning of Universal Sentence Representations from Natural
    Language Inference Data", https://arxiv.org/abs/1705.02364).

    Example:
    >>> import numpy as np
    >>> PairFeatures()([np.array([[1.0]]), np.array([[3.0]])]).tolist()
    [[1.0, 3.0, 2.0, 3.0]]
    """

    key = "pair"
    min_inputs = 2
    max_inputs = 2
    equal_widths = True
    width_reason = "compares encodings elementwise"

    def fuse(self, encodings: list[Tensor]) -> Tensor:
        a, b = encodings
        return ops.concatenate([a, b, ops.abs(a - b), a * b], axis=-1)
