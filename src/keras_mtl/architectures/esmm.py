"""ESMM: conversion modelled over the entire impression space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_mtl.architectures.base import Architecture, Tensor, build_stack, mlp, run


@keras.saving.register_keras_serializable(package="keras_mtl")
class ESMM(Architecture):
    """Entire space multi-task model (Ma et al. 2018,
    https://arxiv.org/abs/1804.07931).

    For chained events (a click, then a conversion): a CTR tower and a CVR
    tower share the input representation; the outputs are the probabilities
    pCTR and pCTCVR = pCTR * pCVR, both trained on every impression, so the
    conversion rate is learned over the whole space instead of clicked
    samples only. The two tasks must be binary, in the order (click, click
    and conversion); `cvr(x)` gives pCVR.

    Args:
        num_tasks: Must be 2.
        units: Widths of each tower's ReLU layers.

    Example:
    >>> import numpy as np
    >>> ctr, ctcvr = ESMM(2, units=[4])(np.zeros((3, 5)))
    >>> bool(np.all(np.asarray(ctcvr) <= np.asarray(ctr)))
    True
    """

    key = "esmm"
    config_keys = ("units",)
    #: The outputs are the tasks' probabilities: no task heads on top.
    produces_outputs = True

    def __init__(
        self, num_tasks: int = 2, units: Sequence[int] = (32,), **kwargs: Any
    ) -> None:
        super().__init__(num_tasks, **kwargs)
        if self.num_tasks != 2:
            raise ValueError(
                f"ESMM models two chained binary tasks (click, click and conversion), "
                f"got num_tasks={num_tasks}."
            )
        self.units = [int(u) for u in units]
        self.ctr_tower = [
            *mlp(self.units, "ctr"),
            keras.layers.Dense(1, name="ctr_logit"),
        ]
        self.cvr_tower = [
            *mlp(self.units, "cvr"),
            keras.layers.Dense(1, name="cvr_logit"),
        ]

    def build(self, input_shape: tuple) -> None:
        build_stack(self.ctr_tower, tuple(input_shape))
        build_stack(self.cvr_tower, tuple(input_shape))

    def cvr(self, x: Tensor) -> Tensor:
        """pCVR, the conversion rate of clicked impressions."""
        return ops.sigmoid(run(self.cvr_tower, x))

    def call(self, x: Tensor) -> list[Tensor]:
        ctr = ops.sigmoid(run(self.ctr_tower, x))
        return [ctr, ctr * self.cvr(x)]

    def output_width(self, input_width: int) -> int:
        return 1
