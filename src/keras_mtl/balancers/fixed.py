"""Fixed task weights."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from keras_mtl.balancers.base import Array, Context, Inputs, LossWeighting


@dataclasses.dataclass(frozen=True, init=False, repr=False)
class Fixed(LossWeighting):
    """Constant task weights chosen by hand: minimises sum_i c_i L_i.

    Args:
        weights: One non-negative weight per task.

    Example:
    >>> Fixed([2.0, 0.5]).weights([1.0, 1.0]).tolist()
    [2.0, 0.5]
    """

    key = "fixed"
    constant = True

    values: tuple[float, ...] = dataclasses.field(metadata={"config": "weights"})

    def __init__(self, weights: Sequence[float]) -> None:
        values = np.asarray(weights, dtype=np.float64)
        if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(
                f"Fixed: weights must be finite numbers >= 0, one per task, got {weights!r}."
            )
        self._set(values=tuple(float(v) for v in values))

    def __repr__(self) -> str:
        return f"Fixed(weights={list(self.values)!r})"

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        losses = inputs.losses
        if len(losses) != len(self.values):
            raise ValueError(
                f"Fixed: {len(self.values)} weights were given for {len(losses)} tasks."
            )
        return np.asarray(self.values), state
