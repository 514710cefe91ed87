"""Each process's share of the data when several processes train together.

Under several JAX processes (`keras.distribution.initialize`) Keras takes
what each process feeds `fit`, `evaluate` and `predict` as that process's
part of the global batch. These helpers cut the global data the same way in
every process, so that the processes together see exactly the batches one
process would: `ProcessShare` splits every batch of a data set,
`process_rows` gives a process its contiguous block of an evaluation split,
and `gather_rows` puts the blocks' predictions back together. Where the rows
do not split evenly, the short shares are padded with copies of a real row
whose labels are all missing, which the masked losses and metrics skip
(`keras_mtl.tasks.masking`)."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from keras_mtl import backend as mtl_backend


def unlabelled(labels: np.ndarray) -> np.ndarray:
    """An array like `labels` with every label missing: -1 for integer
    class ids, NaN for float labels."""
    labels = np.asarray(labels)
    if np.issubdtype(labels.dtype, np.integer):
        return np.full_like(labels, -1)
    return np.full(labels.shape, np.nan, dtype=labels.dtype)


def _take(tree: Any, rows: np.ndarray) -> Any:
    return keras.tree.map_structure(lambda a: a[rows], tree)


def _padded(tree: Any, real: np.ndarray, fill: Any) -> Any:
    """`tree`'s rows, with `fill` applied to each array's padding rows."""
    if real.all():
        return tree

    def pad(a: Any) -> Any:
        a = np.array(a)
        a[~real] = fill(a[~real])
        return a

    return keras.tree.map_structure(pad, tree)


def process_rows(n: int, index: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Process `index`'s rows of `n`, out of `count` processes: a
    contiguous block of ceil(n / count) rows, the last blocks padded by
    repeating row n - 1; returns (rows, real), `real` False on padding.

    Example:
    >>> rows, real = process_rows(5, 1, 2)
    >>> rows.tolist(), real.tolist()
    ([3, 4, 4], [True, True, False])
    """
    size = max(1, math.ceil(n / count))
    wanted = np.arange(index * size, (index + 1) * size)
    return np.minimum(wanted, max(n - 1, 0)), wanted < n


def share(batch: tuple, index: int, count: int) -> tuple:
    """Process `index`'s part of one global batch `(x, y[, sample_weight])`:
    its rows of `process_rows`; padding rows are unlabelled (weight 0)."""
    n = len(keras.tree.flatten(batch[0])[0])
    rows, real = process_rows(n, index, count)
    out = [_take(batch[0], rows)]
    if len(batch) > 1:
        y = batch[1]
        out.append(None if y is None else _padded(_take(y, rows), real, unlabelled))
    if len(batch) > 2:
        out.append(_padded(_take(batch[2], rows), real, np.zeros_like))
    return tuple(out)


class ProcessShare(keras.utils.PyDataset):
    """This process's share of every batch of `data`, a data set every
    process builds alike (`ArrayBatches`, `BucketedBatches`, `MixedBatches`,
    a stream): with `count` processes, batch i of the share holds rows
    [k * m, (k + 1) * m) of global batch i (m = ceil(rows / count)),
    padded with unlabelled rows where the batch does not split evenly, so
    the processes together train on exactly the global batches.

    Args:
        data: The global batches.
        index: This process (default: `keras_mtl.backend.processes()`).
        count: The number of processes (same default).
    """

    def __init__(self, data: Any, index: int | None = None, count: int | None = None):
        super().__init__()
        here, total = mtl_backend.processes()
        self.data = data
        self.index = here if index is None else int(index)
        self.count = total if count is None else int(count)
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"ProcessShare: process index {self.index} is outside "
                f"0..{self.count - 1}."
            )

    def __len__(self) -> int:
        return len(self.data)

    @property
    def variable_shapes(self) -> bool:
        return bool(getattr(self.data, "variable_shapes", False))

    def __getitem__(self, i: int) -> tuple:
        batch = self.data[i]
        return share(
            batch if isinstance(batch, tuple) else (batch,), self.index, self.count
        )

    def set_epoch(self, epoch: int) -> None:
        self.data.set_epoch(epoch)

    def on_epoch_end(self) -> None:
        end = getattr(self.data, "on_epoch_end", None)
        if end is not None:
            end()


def split_share(x: Any, y: Any, index: int, count: int) -> tuple[Any, Any]:
    """Process `index`'s block of an evaluation split's inputs and labels
    (`process_rows`; padding rows unlabelled): `share` of the split as
    one batch."""
    return share((x, y), index, count)


def gather_rows(local: Any, n: int) -> Any:
    """Every process's block (`process_rows`) of an array or a dict of
    arrays, put together in row order: the first `n` rows, in every
    process (a collective: every process calls it)."""
    return keras.tree.map_structure(
        lambda a: mtl_backend.gather_processes(np.asarray(a))[:n], local
    )
