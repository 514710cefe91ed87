"""IMTL-G: the update with equal projections on every task gradient."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
from keras import ops

from keras_mtl.balancers.base import Array, Context, GramianWeighting, Inputs
from keras_mtl.balancers.gramian import device_norms, device_pinv, norms


@dataclasses.dataclass(frozen=True)
class IMTLG(GramianWeighting):
    """IMTL-G, the gradient half of Impartial Multi-Task Learning (Liu et al.
    2021, https://openreview.net/forum?id=IMPnRXEWpvr), in the generalised
    form of Quinton & Rey 2024.

    Finds the combination d = J^T w, sum w = 1, whose projections on the
    unit task gradients are all equal: w proportional to G^+ n with n the
    gradient norms (the pseudo-inverse handles dependent gradients). Zero
    when no such combination exists.

    Example:
    >>> IMTLG().aggregate([[-4.0, 1, 1], [6, 1, 1]]).round(4).tolist()
    [0.0767, 1.0, 1.0]
    """

    key = "imtl_g"
    device = True
    claims = frozenset({"permutation_invariant"})

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        gramian = inputs.gramian
        v = np.linalg.pinv(gramian, rcond=1e-12, hermitian=True) @ norms(gramian)
        total = float(v.sum())
        if abs(total) < 1e-12:
            return np.zeros(len(gramian)), state
        return v / total, state

    def on_device(self, gramian: Any, present: Any) -> Any:
        v = ops.matmul(device_pinv(gramian), device_norms(gramian))
        total = ops.sum(v)
        small = ops.abs(total) < 1e-12
        return ops.where(small, 0.0, v / ops.where(small, 1.0, total))
