"""Elementwise fusions: sum, mean, product and absolute difference."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl.fusion.base import Fusion, Tensor


class _Elementwise(Fusion):
    equal_widths = True
    width_reason = "combines encodings elementwise"


@keras.saving.register_keras_serializable(package="keras_mtl")
class Sum(_Elementwise):
    """h_a + h_b + ...: symmetric in the inputs, width unchanged.

    Example:
    >>> import numpy as np
    >>> Sum()([np.ones((1, 2)), np.ones((1, 2))]).tolist()
    [[2.0, 2.0]]
    """

    key = "sum"

    def fuse(self, encodings: list[Tensor]) -> Tensor:
        return ops.sum(ops.stack(encodings, axis=0), axis=0)


@keras.saving.register_keras_serializable(package="keras_mtl")
class Mean(_Elementwise):
    """The elementwise mean of the encodings."""

    key = "mean"

    def fuse(self, encodings: list[Tensor]) -> Tensor:
        return ops.mean(ops.stack(encodings, axis=0), axis=0)


@keras.saving.register_keras_serializable(package="keras_mtl")
class Product(_Elementwise):
    """h_a * h_b * ...: large where the encodings agree in sign and size."""

    key = "product"

    def fuse(self, encodings: list[Tensor]) -> Tensor:
        return ops.prod(ops.stack(encodings, axis=0), axis=0)


@keras.saving.register_keras_serializable(package="keras_mtl")
class AbsDifference(_Elementwise):
    """|h_a - h_b| of exactly two encodings: zero when they are the same.

    Example:
    >>> import numpy as np
    >>> AbsDifference()([np.array([[1.0, 5.0]]), np.array([[3.0, 5.0]])]).tolist()
    [[2.0, 0.0]]
    """

    key = "abs_difference"
    min_inputs = 2
    max_inputs = 2

    def fuse(self, encodings: list[Tensor]) -> Tensor:
        return ops.abs(encodings[0] - encodings[1])
