"""Length-bucketed batches of byte-encoded text: less padding, few shapes.

Tweets average about 105 bytes of the seed's 280 slots; a recurrent encoder
run over 280 steps spends most of its work on padding. `BucketedBatches`
groups samples of similar length and cuts each batch's padding down to its
bucket's width, so a batch of short tweets runs a short recurrence. Widths
come from a fixed list, so a compiled backend (JAX, TensorFlow) traces at
most one step function per width.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_mtl.data.arrays import ArrayBatches, _rows

#: Bucket widths for tweets (bytes); the last is the seed's 280.
TWEET_BUCKETS = (64, 96, 128, 160, 192, 280)


def text_lengths(ids: np.ndarray) -> np.ndarray:
    """Lengths of pre-padded id rows (padding 0 first, as
    `keras_mtl.text.encode_bytes` writes them): the width after the last
    leading zero.

    Example:
    >>> text_lengths(np.array([[0, 0, 5, 6], [1, 0, 2, 3], [0, 0, 0, 0]])).tolist()
    [2, 4, 0]
    """
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"Byte ids must be (samples, length), got shape {ids.shape}.")
    nonzero = ids != 0
    first = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), ids.shape[1])
    return (ids.shape[1] - first).astype(np.int64)


class BucketedBatches(ArrayBatches):
    """Batches of samples of similar text length, cut to their bucket's width.

    Every sample goes to the narrowest bucket that holds its longest text
    (over all `sequence_inputs`). Each epoch shuffles the samples within
    each bucket, cuts them into batches (a bucket's last, smaller batch
    moves up into the next bucket, so only the widest bucket can end in a
    partial batch) and shuffles the order of the batches. A batch's text
    inputs keep their last `width` columns: with pre-padding, that drops
    padding only. The order depends on (seed, epoch) alone, so a
    `keras_mtl.callbacks.Checkpoint` resumes mid-epoch exactly.

    The model's text inputs must accept any length: build it with
    `length=None` (the presets) or `keras.Input((None,), dtype="uint8")`.
    Batches are prepared `workers` threads ahead of the step that needs
    them (Keras's `PyDataset` prefetching).

    Args:
        x: Inputs by name; the `sequence_inputs` are pre-padded id arrays
            (samples, length).
        y: Labels by task name (None for none).
        sample_weight: Optional weights, same nesting as `y`.
        batch_size: Samples per batch.
        buckets: Increasing bucket widths. The input length is always one
            (added when missing), so no text is ever cut.
        sequence_inputs: Names of the inputs to cut; default: every 2-D
            integer input.
        shuffle: Shuffle within buckets and the batch order every epoch.
        seed: Seed of the order.
        workers: Threads preparing batches ahead (1: no prefetching).
        max_queue_size: Batches prepared ahead at most.

    Example:
    >>> ids = np.zeros((6, 8), "uint8"); ids[:3, -2:] = 7; ids[3:, -6:] = 9
    >>> data = BucketedBatches({"t": ids}, batch_size=3, buckets=[4])
    >>> sorted(data[i][0]["t"].shape[1] for i in range(len(data)))
    [4, 8]
    """

    #: Batches differ in width: a backend that fixes shapes from the first
    #: batches (TensorFlow's tf.data) must leave them open.
    variable_shapes = True

    def __init__(
        self,
        x: dict[str, Any],
        y: Any = None,
        sample_weight: Any = None,
        batch_size: int = 64,
        buckets: Sequence[int] = TWEET_BUCKETS,
        sequence_inputs: Sequence[str] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        workers: int = 2,
        max_queue_size: int = 8,
    ) -> None:
        super().__init__(x, y, sample_weight, batch_size, shuffle, seed)
        self.workers = int(workers)
        self.use_multiprocessing = False
        self.max_queue_size = int(max_queue_size)
        if not isinstance(self.x, dict):
            raise ValueError("BucketedBatches needs inputs as a dict by name.")
        if sequence_inputs is None:
            sequence_inputs = [
                n
                for n, a in self.x.items()
                if a.ndim == 2 and np.issubdtype(a.dtype, np.integer)
            ]
        self.sequence_inputs = list(sequence_inputs)
        if not self.sequence_inputs:
            raise ValueError(
                "BucketedBatches found no text input to bucket: give "
                "sequence_inputs, the names of (samples, length) integer id arrays."
            )
        widths = {self.x[n].shape[1] for n in self.sequence_inputs}
        if len(widths) != 1:
            raise ValueError(
                f"The text inputs {', '.join(self.sequence_inputs)} need one length, "
                f"got {sorted(widths)}."
            )
        full = widths.pop()
        buckets = [int(b) for b in buckets]
        if any(b < 1 for b in buckets) or buckets != sorted(set(buckets)):
            raise ValueError(f"buckets must increase and be >= 1, got {buckets}.")
        self.buckets = [b for b in buckets if b < full] + [full]
        longest = np.max([text_lengths(self.x[n]) for n in self.sequence_inputs], 0)
        #: Each sample's bucket index.
        self.bucket_of = np.searchsorted(self.buckets, longest).astype(np.int64)
        self._batches = self._cut(np.arange(self.size), None)
        self._epoch_cache: tuple[int, list] | None = None

    def _cut(
        self, index: np.ndarray, rng: np.random.Generator | None
    ) -> list[tuple[int, np.ndarray]]:
        """(width, sample rows) of every batch, in bucket order."""
        out: list[tuple[int, np.ndarray]] = []
        carry = np.zeros(0, dtype=np.int64)
        for b, width in enumerate(self.buckets):
            rows = index[self.bucket_of[index] == b]
            if rng is not None:
                rows = rng.permutation(rows)
            rows = np.concatenate([carry, rows])
            whole = len(rows) // self.batch_size * self.batch_size
            last = b == len(self.buckets) - 1
            for start in range(0, whole, self.batch_size):
                out.append((width, rows[start : start + self.batch_size]))
            carry = rows[whole:]
            if last and len(carry):
                out.append((width, carry))
        return out

    def __len__(self) -> int:
        return len(self._batches)

    def batches(self) -> list[tuple[int, np.ndarray]]:
        """This epoch's batches in order: (width, sample rows) each."""
        cached = self._epoch_cache
        if cached is None or cached[0] != self.epoch:
            if self.shuffle:
                rng = np.random.default_rng([self.seed, self.epoch])
                batches = self._cut(np.arange(self.size), rng)
                batches = [batches[i] for i in rng.permutation(len(batches))]
            else:
                batches = self._batches
            # One assignment: loader threads see the old epoch or the new.
            cached = self._epoch_cache = (self.epoch, batches)
        return cached[1]

    def __getitem__(self, index: int) -> tuple:
        width, rows = self.batches()[index]
        x = {
            n: (a[rows, a.shape[1] - width :] if n in self.sequence_inputs else a[rows])
            for n, a in self.x.items()
        }
        batch: list[Any] = [x]
        if self.y is not None or self.sample_weight is not None:
            batch.append(None if self.y is None else _rows(self.y, rows))
        if self.sample_weight is not None:
            batch.append(_rows(self.sample_weight, rows))
        return tuple(batch)

    def padding_saved(self) -> float:
        """The share of the text inputs' padded slots that bucketing skips."""
        full = self.x[self.sequence_inputs[0]].shape[1]
        kept = sum(width * len(rows) for width, rows in self._batches)
        return 1.0 - kept / (full * self.size)
