"""Epoch-average training losses, for methods that compare epochs (DWA,
GradNorm, STCH). Kept in the method's state, so it survives checkpoints."""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def track(
    sums: Array, counts: Array, seen: Array, epoch: int, losses: Array, present: Array
) -> tuple[Array, Array, Array, Array | None]:
    """Adds a batch's losses to the running epoch sums.

    Args:
        sums: Per-task loss sums of the epoch `seen`.
        counts: Per-task numbers of batches in those sums.
        seen: The epoch the sums belong to (-1 before the first batch), as a
            0-d array.
        epoch: The current epoch.
        losses: This batch's task losses.
        present: Which tasks have labels in this batch.

    Returns:
        `(sums, counts, seen, finished)`: `finished` is the average of the
        epoch that just ended (per task; NaN where a task had no batch), or
        None when the epoch did not change.
    """
    finished = None
    if epoch != int(seen):
        if int(seen) >= 0:
            finished = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        sums = np.zeros_like(sums)
        counts = np.zeros_like(counts)
        seen = np.asarray(float(epoch))
    sums = sums + np.where(present, losses, 0.0)
    counts = counts + present
    return sums, counts, seen, finished
