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
from keras_mtl.data.packed import PackedTexts
from keras_mtl.data.text import text_lengths

#: Bucket widths for tweets (bytes); the last is the seed's 280.
TWEET_BUCKETS = (64, 96, 128, 160, 192, 280)


def bucket_problem(buckets: Any) -> str | None:
    """What is wrong with a list of bucket widths, or None."""
    if (
        not isinstance(buckets, (list, tuple))
        or not buckets
        or not all(isinstance(b, int) and not isinstance(b, bool) for b in buckets)
        or any(b < 1 for b in buckets)
        or list(buckets) != sorted(set(buckets))
    ):
        return f"must be increasing positive widths, got {list(buckets)!r}."
    return None


def _lengths(ids: Any) -> np.ndarray:
    return ids.lengths() if isinstance(ids, PackedTexts) else text_lengths(ids)


def _cut_rows(ids: Any, rows: np.ndarray, width: int) -> np.ndarray:
    """Rows of pre-padded ids (an array or `PackedTexts`) at their last
    `width` columns."""
    if isinstance(ids, PackedTexts):
        return ids.take(rows, width)
    return ids[rows, ids.shape[1] - width :]


class BucketedBatches(ArrayBatches):
    """Batches of samples of similar text length, cut to their buckets' widths.

    Each text input of a sample falls in the narrowest bucket that holds its
    text. With `per_input=True` (default), samples whose texts fall in the
    same buckets (e.g. tweet a in 96 and tweet b in 128) form batches in
    which each input is cut to its own width; the samples left over (fewer
    than a batch in their group) are batched as with `per_input=False`: by
    the bucket of their longest text, all inputs cut to that width, and a
    bucket's last, smaller batch moves up into the next bucket, so only the
    widest bucket can end in a partial batch. Batch shapes are at most
    len(buckets) ** len(sequence_inputs) + len(buckets) + 1 (in practice
    far fewer: most groups hold less than a batch).

    Every epoch shuffles the samples within each group and the order of the
    batches. A batch's text inputs keep their last `width` columns: with
    pre-padding, that drops padding only. The order depends on (seed,
    epoch) alone, so a `keras_mtl.callbacks.Checkpoint` resumes mid-epoch
    exactly.

    The model's text inputs must accept any length, and its encoder should
    skip leading padding so that a text's encoding does not depend on its
    batch's width: build it with `length=None, skip_padding=True` (the
    presets) or `keras.Input((None,), dtype="uint8")` and
    `LSTMEncoder(..., skip_padding=True)`. With `workers` > 1, that many
    threads prepare batches ahead of the step that needs them (Keras's
    `PyDataset` prefetching; on TensorFlow, tf.data prefetches
    `max_queue_size` batches). Cutting a batch is cheap next to a step, so
    on a machine with few cores the threads only compete with the step
    (docs/benchmarks.md measures it).

    Args:
        x: Inputs by name; the `sequence_inputs` are pre-padded id arrays
            (samples, length) or `PackedTexts` (texts stored end to end,
            padded only when a batch is cut: about 2.7x less memory for
            tweets).
        y: Labels by task name (None for none).
        sample_weight: Optional weights, same nesting as `y`.
        batch_size: Samples per batch.
        buckets: Increasing bucket widths. The input length is always one
            (added when missing), so no text is ever cut.
        sequence_inputs: Names of the inputs to cut; default: every 2-D
            integer input.
        per_input: Cut each text input to its own bucket (else all to the
            widest of the sample's buckets).
        shuffle: Shuffle within groups and the batch order every epoch.
        seed: Seed of the order.
        workers: Threads preparing batches ahead (1: none, batches are cut
            when the step asks for them).
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
        per_input: bool = True,
        shuffle: bool = True,
        seed: int = 0,
        workers: int = 1,
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
        if bucket_problem(buckets):
            raise ValueError(f"buckets must increase and be >= 1, got {buckets}.")
        self.buckets = [b for b in buckets if b < full] + [full]
        self.per_input = bool(per_input)
        lengths = np.stack([_lengths(self.x[n]) for n in self.sequence_inputs], 1)
        #: Each sample's bucket index per text input, (samples, inputs).
        self.bucket_of = np.searchsorted(self.buckets, lengths).astype(np.int64)
        self._batches = self._cut(np.arange(self.size), None)
        self._epoch_cache: tuple[int, list] | None = None

    def _cut(
        self, index: np.ndarray, rng: np.random.Generator | None
    ) -> list[tuple[tuple[int, ...], np.ndarray]]:
        """(widths per text input, sample rows) of every batch."""
        size, k = self.batch_size, len(self.sequence_inputs)
        out: list[tuple[tuple[int, ...], np.ndarray]] = []

        def shuffled(rows: np.ndarray) -> np.ndarray:
            return rows if rng is None else rng.permutation(rows)

        if self.per_input:
            groups, group_of = np.unique(
                self.bucket_of[index], axis=0, return_inverse=True
            )
            group_of = group_of.reshape(-1)
            rest = []
            for g, key in enumerate(groups):
                rows = shuffled(index[group_of == g])
                whole = len(rows) // size * size
                widths = tuple(self.buckets[b] for b in key)
                out.extend((widths, rows[s : s + size]) for s in range(0, whole, size))
                rest.append(rows[whole:])
            index = np.sort(np.concatenate(rest)) if rest else index[:0]
        joint = self.bucket_of[index].max(axis=1)
        carry = np.zeros(0, dtype=np.int64)
        for b, width in enumerate(self.buckets):
            rows = np.concatenate([carry, shuffled(index[joint == b])])
            whole = len(rows) // size * size
            out.extend(
                ((width,) * k, rows[s : s + size]) for s in range(0, whole, size)
            )
            carry = rows[whole:]
        if len(carry):
            out.append(((self.buckets[-1],) * k, carry))
        return out

    def __len__(self) -> int:
        return len(self._batches)

    def batches(self) -> list[tuple[tuple[int, ...], np.ndarray]]:
        """This epoch's batches in order: (widths per text input, sample
        rows) each."""
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
        widths, rows = self.batches()[index]
        cut = dict(zip(self.sequence_inputs, widths, strict=True))
        x = {
            n: (_cut_rows(a, rows, cut[n]) if n in cut else a[rows])
            for n, a in self.x.items()
        }
        batch: list[Any] = [x]
        if self.y is not None or self.sample_weight is not None:
            batch.append(None if self.y is None else _rows(self.y, rows))
        if self.sample_weight is not None:
            batch.append(_rows(self.sample_weight, rows))
        return tuple(batch)

    def shapes(self) -> set[tuple[int, ...]]:
        """The distinct (batch size, widths...) of the batches."""
        return {(len(rows), *widths) for widths, rows in self._batches}

    def padding_saved(self) -> float:
        """The share of the text inputs' padded steps that bucketing skips."""
        full = self.x[self.sequence_inputs[0]].shape[1]
        kept = sum(sum(widths) * len(rows) for widths, rows in self._batches)
        return 1.0 - kept / (full * self.size * len(self.sequence_inputs))
