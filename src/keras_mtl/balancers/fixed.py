"""Fixed task weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from keras_mtl.balancers.base import Array, Context, LossWeighting


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

    def __init__(self, weights: Sequence[float]) -> None:
        values = np.asarray(weights, dtype=np.float64)
        if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(
                f"Fixed: weights must be finite numbers >= 0, one per task, got {weights!r}."
            )
        self.values = values

    def weigh(
        self, losses: Array, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        if len(losses) != len(self.values):
            raise ValueError(
                f"Fixed: {len(self.values)} weights were given for {len(losses)} tasks."
            )
        return self.values.copy(), state

    def get_config(self) -> dict[str, Any]:
        return {"weights": self.values.tolist()}
