"""PCGrad: project away the conflicting part of each task gradient."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import numpy as np
from keras import ops

from keras_mtl.balancers.base import Array, Context, GramianWeighting, Inputs

#: Task orders repeat after this many steps (each step's orders drawn
#: independently from the seed).
ORDER_PERIOD = 128


@functools.lru_cache(maxsize=16)
def order_table(seed: int, tasks: int) -> np.ndarray:
    """PCGrad's task orders: (ORDER_PERIOD, tasks, tasks) int32; at step s,
    row i of table[s % ORDER_PERIOD] is the order in which task i meets the
    others (a random permutation of all tasks, drawn from `seed`)."""
    rng = np.random.default_rng([seed, 2001])
    table = np.argsort(rng.random((ORDER_PERIOD, tasks, tasks)), axis=-1)
    table = table.astype(np.int32)
    table.setflags(write=False)  # shared by every call (cached)
    return table


@dataclasses.dataclass(frozen=True)
class PCGrad(GramianWeighting):
    """PCGrad, gradient surgery (Yu et al. 2020, https://arxiv.org/abs/2001.06782).

    For each task i, in a random order of the other tasks j: if the current
    g_i conflicts with g_j (negative inner product), remove its component
    along g_j. The update is the sum of the modified gradients. Computed in
    weight space from the Gramian: every modified gradient stays a
    combination of the original ones, so the whole method runs on the
    device (`on_device_at`), with the same orders as on the host.

    The orders come from a table of `ORDER_PERIOD` (128) steps of random
    permutations drawn from `seed` (`order_table`): each step's orders are
    random, and they repeat every 128 steps. Tasks without labels in a
    batch are left out of the others' orders.

    Args:
        seed: Seed of the random task orders.

    Example:
    >>> PCGrad().aggregate([[-4.0, 1, 1], [6, 1, 1]]).round(4).tolist()
    [0.5848, 3.8012, 3.8012]
    """

    key = "pcgrad"
    device = True
    claims = frozenset({"scale_invariant"})

    seed: int = 0

    def update(
        self, inputs: Inputs, state: NamedTuple, ctx: Context
    ) -> tuple[Array, NamedTuple]:
        gramian = inputs.gramian
        k = len(gramian)
        # The tasks these are among all of the step's tasks (only the
        # present ones reach a stateless method).
        present = ctx.present
        if present is None or present.sum() != k:
            present = np.ones(k, bool)
        tasks, total = np.flatnonzero(present), len(present)
        position = np.full(total, -1)
        position[tasks] = np.arange(k)
        orders = order_table(self.seed, total)[ctx.step % ORDER_PERIOD]
        weights = np.zeros(k)
        for i in range(k):
            c = np.eye(k)[i]
            for j in position[orders[tasks[i]]]:
                if j < 0 or j == i:
                    continue
                inner = float(gramian[j] @ c)
                if inner < 0 and gramian[j, j] > 0:
                    c[j] -= inner / gramian[j, j]
            weights += c
        return weights, state

    def on_device(self, gramian: Any, present: Any) -> Any:
        return self.on_device_at(gramian, present, 0)

    def on_device_at(self, gramian: Any, present: Any, step: Any) -> Any:
        k = int(gramian.shape[0])
        table = ops.convert_to_tensor(order_table(self.seed, k))
        orders = ops.take(table, ops.mod(ops.cast(step, "int32"), ORDER_PERIOD), axis=0)
        # Row i: task i's combination of the task gradients; the absent
        # tasks' rows and columns of the Gramian are zero, so nobody
        # projects on them, and their own rows are dropped at the end.
        c = ops.eye(k, dtype="float32")
        diagonal = ops.diagonal(gramian)
        rows = ops.arange(k, dtype="int32")
        for p in range(k):
            j = orders[:, p]
            inner = ops.sum(ops.take(gramian, j, axis=0) * c, axis=1)
            norm = ops.take(diagonal, j)
            apply = (inner < 0) & (norm > 0) & (j != rows)
            coef = ops.where(apply, inner / ops.where(norm > 0, norm, 1.0), 0.0)
            c = c - coef[:, None] * ops.one_hot(j, k, dtype="float32")
        return ops.sum(c * present[:, None], axis=0)
