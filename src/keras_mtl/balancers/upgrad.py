"""UPGrad: project each task gradient onto the dual cone, then average."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
from keras import ops

from keras_mtl.balancers.base import Array, Context, Inputs
from keras_mtl.balancers.dual_cone import DualConeWeighting, project_weights


@dataclasses.dataclass(frozen=True)
class UPGrad(DualConeWeighting):
    """UPGrad (Quinton & Rey 2024, https://arxiv.org/abs/2406.16232).

    Projects each task's gradient g_i onto the dual cone of all task
    gradients {x : J x >= 0} and averages the projections. The update never
    conflicts with a task (J (J^T w) >= 0), and with non-conflicting
    gradients it is their mean. In weights: w = sum_i v_i / k with
    v_i = argmin_{v >= e_i} v^T G v, computed on the trace-normalised,
    regularised Gramian.

    Args:
        norm_eps, reg_eps: As for `DualConeWeighting`.

    Example:
    >>> UPGrad().aggregate([[-4.0, 1, 1], [6, 1, 1]]).round(4).tolist()
    [0.2929, 1.9004, 1.9004]
    """

    key = "upgrad"
    device = True
    claims = frozenset({"non_conflicting", "permutation_invariant", "scale_invariant"})

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        gramian = inputs.gramian
        k = len(gramian)
        g = self.conditioned(gramian)
        weights = sum(project_weights(np.eye(k)[i] / k, g) for i in range(k))
        return np.asarray(weights), state

    def on_device(self, gramian: Any, present: Any) -> Any:
        targets = ops.diag(present / ops.maximum(ops.sum(present), 1.0))
        return ops.sum(self.device_projections(gramian, present, targets), axis=1)
