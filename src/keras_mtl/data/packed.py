"""Byte-encoded texts stored end to end: padding only where a batch needs it.

A (texts, 280) array of pre-padded byte ids spends 280 bytes on every
tweet; tweets average about 105. `PackedTexts` keeps each text's bytes once,
one after the other, and where each text starts, and pads rows only when a
batch is cut (`take`), to the batch's width: what length-bucketed training
(`keras_mtl.data.BucketedBatches`) reads anyway. A million tweet pairs take
about 200 MiB instead of 534 MiB.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_mtl.data.text import text_lengths

#: Rows gathered at a time: the gather's index arrays stay small.
_CHUNK = 1 << 16


def _within(kept: np.ndarray) -> np.ndarray:
    """0, 1, ..., k - 1 for each count k in `kept`, end to end: each byte's
    place in its text."""
    return np.arange(int(kept.sum())) - np.repeat(np.cumsum(kept) - kept, kept)


class PackedTexts:
    """Byte ids of texts, stored end to end, read as pre-padded rows.

    Behaves as a read-only (texts, width) uint8 array where rows are
    concerned: `len`, `shape`, `dtype`, `packed[rows]` (the rows padded to
    `width`) and `np.asarray(packed)` (every row padded: for small splits
    only). `take(rows, w)` gives rows padded (or cut, keeping the text's
    end, as `ids[:, -w:]` does) to any width `w`.

    Args:
        flat: Every text's byte ids, one text after the other (uint8).
        offsets: Where each text starts in `flat`, and its end: (texts + 1,).
        width: The padded width the texts stand for (e.g. the seed's 280).

    Example:
    >>> ids = np.array([[0, 0, 7, 8], [0, 5, 6, 9]], "uint8")
    >>> packed = PackedTexts.from_ids(ids)
    >>> packed.shape, packed.lengths().tolist(), packed.flat.tolist()
    ((2, 4), [2, 3], [7, 8, 5, 6, 9])
    >>> packed.take(np.array([1, 0]), 3).tolist()
    [[5, 6, 9], [0, 7, 8]]
    """

    ndim = 2
    dtype = np.dtype(np.uint8)

    def __init__(self, flat: np.ndarray, offsets: np.ndarray, width: int) -> None:
        self.flat = np.asarray(flat, dtype=np.uint8)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.width = int(width)
        if self.offsets.ndim != 1 or len(self.offsets) < 1 or self.offsets[0] != 0:
            raise ValueError("offsets must start at 0, one more than the texts.")
        if self.offsets[-1] != len(self.flat) or np.any(np.diff(self.offsets) < 0):
            raise ValueError(
                f"offsets must increase to the {len(self.flat)} bytes of flat, "
                f"ending at {int(self.offsets[-1])}."
            )
        longest = int(self.lengths().max(initial=0))
        if self.width < 1 or longest > self.width:
            raise ValueError(
                f"width {self.width} must hold the longest text ({longest} bytes)."
            )

    @classmethod
    def from_ids(cls, ids: np.ndarray) -> PackedTexts:
        """Packs pre-padded id rows (padding 0 first, as
        `keras_mtl.data.text.encode_bytes` writes them), a block of rows at a
        time."""
        ids = np.asarray(ids)
        lengths = text_lengths(ids)
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.empty(int(offsets[-1]), dtype=np.uint8)
        width = ids.shape[1]
        for start in range(0, len(ids), _CHUNK):
            block = ids[start : start + _CHUNK]
            keep = np.arange(width) >= width - lengths[start : start + _CHUNK, None]
            flat[offsets[start] : offsets[min(start + _CHUNK, len(ids))]] = block[keep]
        return cls(flat, offsets, width)

    def lengths(self) -> np.ndarray:
        """Each text's length in bytes."""
        return np.diff(self.offsets)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.offsets) - 1, self.width)

    @property
    def nbytes(self) -> int:
        return int(self.flat.nbytes + self.offsets.nbytes)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def _spans(self, rows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(start in flat, bytes kept) of each row at `width`: a text longer
        than `width` keeps its last `width` bytes."""
        ends = self.offsets[rows + 1]
        kept = np.minimum(ends - self.offsets[rows], width)
        return ends - kept, kept

    def take(self, rows: Any, width: int | None = None) -> np.ndarray:
        """Rows `rows` as pre-padded ids, (len(rows), width)."""
        width = self.width if width is None else int(width)
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else rows
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.zeros((len(rows), width), dtype=np.uint8)
        for start in range(0, len(rows), _CHUNK):
            part = rows[start : start + _CHUNK]
            begins, kept = self._spans(part, width)
            which = np.repeat(np.arange(len(part)), kept)
            within = _within(kept)
            out[start + which, width - kept[which] + within] = self.flat[
                begins[which] + within
            ]
        return out

    def select(self, rows: Any) -> PackedTexts:
        """The texts of `rows` (repeats allowed), packed anew."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        lengths = self.lengths()[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.empty(int(offsets[-1]), dtype=np.uint8)
        for start in range(0, len(rows), _CHUNK):
            part = rows[start : start + _CHUNK]
            kept = lengths[start : start + _CHUNK]
            within = _within(kept)
            source = np.repeat(self.offsets[part], kept) + within
            stop = min(start + _CHUNK, len(rows))
            flat[offsets[start] : offsets[stop]] = self.flat[source]
        return PackedTexts(flat, offsets, self.width)

    def __getitem__(self, rows: Any) -> np.ndarray:
        if isinstance(rows, tuple):
            raise TypeError(
                "PackedTexts selects rows only; use take(rows, width) to cut."
            )
        if np.isscalar(rows):
            return self.take(np.array([rows]))[0]
        return self.take(rows)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.take(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype)

    def __repr__(self) -> str:
        return (
            f"PackedTexts({len(self)} texts, width {self.width}, "
            f"{self.flat.nbytes:,} bytes)"
        )
