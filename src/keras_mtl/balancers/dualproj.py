"""DualProj: project the mean gradient onto the dual cone."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
from keras import ops

from keras_mtl.balancers.base import Array, Context, Inputs
from keras_mtl.balancers.dual_cone import DualConeWeighting, project_weights


@dataclasses.dataclass(frozen=True)
class DualProj(DualConeWeighting):
    """DualProj: the mean gradient projected onto the dual cone of the task
    gradients, as GEM does for past tasks (Lopez-Paz & Ranzato 2017,
    https://arxiv.org/abs/1706.08840, Eq. 11; as an aggregator in Quinton &
    Rey 2024). The update never conflicts with a task.

    Args:
        norm_eps, reg_eps: As for `DualConeWeighting`.

    Example:
    >>> DualProj().aggregate([[-4.0, 1, 1], [6, 1, 1]]).round(4).tolist()
    [0.5563, 1.1109, 1.1109]
    """

    key = "dualproj"
    device = True
    claims = frozenset({"non_conflicting", "permutation_invariant"})

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        gramian = inputs.gramian
        k = len(gramian)
        g = self.conditioned(gramian)
        return project_weights(np.full(k, 1.0 / k), g), state

    def on_device(self, gramian: Any, present: Any) -> Any:
        targets = (present / ops.maximum(ops.sum(present), 1.0))[:, None]
        return self.device_projections(gramian, present, targets)[:, 0]
