"""The mean of the task gradients."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
from keras import ops

from keras_mtl.balancers.base import Array, Context, GramianWeighting, Inputs


@dataclasses.dataclass(frozen=True)
class Mean(GramianWeighting):
    """The average of the task gradients, J^T 1/k (torchjd's Mean).

    Example:
    >>> Mean().aggregate([[-4.0, 1, 1], [6, 1, 1]]).tolist()
    [1.0, 1.0, 1.0]
    """

    key = "mean"
    device = True
    claims = frozenset({"permutation_invariant", "scale_invariant"})

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        gramian = inputs.gramian
        k = len(gramian)
        return np.full(k, 1.0 / k), state

    def on_device(self, gramian: Any, present: Any) -> Any:
        return present / ops.maximum(ops.sum(present), 1.0)
