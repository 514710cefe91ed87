"""Training batches read from a file as they are needed: data larger than memory."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras

from keras_mtl.data import files


def count_rows(path: Path, fmt: str) -> int:
    """Rows of a CSV, JSONL or Parquet file, without loading it."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    count = 0
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                count += 1
    return count - 1 if fmt == "csv" else count


class TableStream(keras.utils.PyDataset):
    """Batches of a table file, one file chunk per batch, in file order.

    Only one batch is in memory at a time. Batches come in file order (no
    shuffling across the file); Keras asks for them in order, and asking out
    of order re-reads the file up to that batch.

    Args:
        path: The file.
        fmt: `"csv"`, `"jsonl"` or `"parquet"`.
        batch_size: Rows per batch.
        convert: frame -> (inputs, labels) of a batch.
    """

    def __init__(
        self,
        path: str | Path,
        fmt: str,
        batch_size: int,
        convert: Callable[[Any], tuple[dict, dict]],
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.fmt = files.format_of(self.path, fmt)
        self.batch_size = int(batch_size)
        self.convert = convert
        self.rows = count_rows(self.path, self.fmt)
        if self.rows <= 0:
            raise ValueError(f"{self.path}: no rows.")
        self._chunks: Any = None
        self._next = 0

    def __len__(self) -> int:
        return math.ceil(self.rows / self.batch_size)

    def __getitem__(self, index: int) -> tuple[dict, dict]:
        if self._chunks is None or index != self._next:
            self._chunks = files.iter_table(self.path, self.batch_size, self.fmt)
            for _ in range(index):
                next(self._chunks)
        frame = next(self._chunks)
        self._next = index + 1
        return self.convert(frame)

    def only(self, tasks: list[str]) -> TableStream:
        """The same stream with the labels of `tasks` only."""
        convert = self.convert

        def filtered(frame: Any) -> tuple[dict, dict]:
            x, y = convert(frame)
            return x, {t: y[t] for t in tasks}

        return TableStream(self.path, self.fmt, self.batch_size, filtered)

    def on_epoch_end(self) -> None:
        self._chunks, self._next = None, 0

    def set_epoch(self, epoch: int) -> None:
        """Every epoch reads the file in the same order."""
