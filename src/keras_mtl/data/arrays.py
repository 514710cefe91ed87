"""In-memory arrays as batches that replay exactly: order by (seed, epoch)."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np


def _rows(tree: Any, index: np.ndarray) -> Any:
    return keras.tree.map_structure(lambda a: a[index], tree)


def _length(tree: Any) -> int:
    lengths = {len(a) for a in keras.tree.flatten(tree)}
    if len(lengths) != 1:
        raise ValueError(
            f"Every input and label array needs the same number of samples, got "
            f"{sorted(lengths)}."
        )
    return lengths.pop()


class ArrayBatches(keras.utils.PyDataset):
    """Batches of in-memory arrays whose order depends on (seed, epoch) only.

    What `fit` makes of arrays when a `keras_mtl.callbacks.Checkpoint` is
    given: Keras's own shuffling draws from a global generator, so an epoch
    cut off mid-way could not be replayed; this one can, from any batch.

    Args:
        x: Inputs (an array, or a dict or list of arrays).
        y: Labels, same nesting rules; None for none.
        sample_weight: Optional weights.
        batch_size: Samples per batch (the last batch may be smaller).
        shuffle: Shuffle the order every epoch.
        seed: Seed of the order.
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        sample_weight: Any = None,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        from keras_mtl.data.packed import PackedTexts

        def as_np(tree: Any) -> Any:
            return keras.tree.map_structure(
                lambda a: a if isinstance(a, PackedTexts) else np.asarray(a), tree
            )

        self.x = as_np(x)
        self.y = None if y is None else as_np(y)
        self.sample_weight = None if sample_weight is None else as_np(sample_weight)
        parts = [p for p in (self.x, self.y, self.sample_weight) if p is not None]
        self.size = _length(parts)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return max(1, math.ceil(self.size / self.batch_size))

    def order(self) -> np.ndarray:
        """This epoch's sample order."""
        if self._order is None or self._order[0] != self.epoch:
            if self.shuffle:
                rng = np.random.default_rng([self.seed, self.epoch])
                index = rng.permutation(self.size)
            else:
                index = np.arange(self.size)
            self._order = (self.epoch, index)
        return self._order[1]

    def __getitem__(self, index: int) -> tuple:
        rows = self.order()[index * self.batch_size : (index + 1) * self.batch_size]
        batch = [_rows(self.x, rows)]
        if self.y is not None or self.sample_weight is not None:
            batch.append(None if self.y is None else _rows(self.y, rows))
        if self.sample_weight is not None:
            batch.append(_rows(self.sample_weight, rows))
        return tuple(batch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


class Tail(keras.utils.PyDataset):
    """Batches `start`, `start + 1`, ... of a data set's epoch `epoch`: the
    rest of an epoch a run was stopped in."""

    def __init__(self, data: Any, epoch: int, start: int) -> None:
        super().__init__()
        self.data = data
        self.epoch = int(epoch)
        self.start = int(start)

    def __len__(self) -> int:
        return len(self.data) - self.start

    @property
    def variable_shapes(self) -> bool:
        return bool(getattr(self.data, "variable_shapes", False))

    def __getitem__(self, index: int) -> Any:
        self.data.set_epoch(self.epoch)
        return self.data[index + self.start]
