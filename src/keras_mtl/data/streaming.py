"""Training batches read from a file as they are needed: data larger than memory."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

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


def _with_labels_of(stream: Any, tasks: list[str]) -> Any:
    """A copy of a stream whose batches keep the labels of `tasks` only (the
    files are not counted again)."""
    convert = stream.convert

    def filtered(frame: Any) -> tuple[dict, dict]:
        x, y = convert(frame)
        return x, {t: y[t] for t in tasks}

    out = copy.copy(stream)
    out.convert = filtered
    return out


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
        out = _with_labels_of(self, tasks)
        out._chunks, out._next = None, 0
        return out

    def on_epoch_end(self) -> None:
        self._chunks, self._next = None, 0

    def set_epoch(self, epoch: int) -> None:
        """Every epoch reads the file in the same order."""


def shard_paths(pattern: str, base: Path | None = None) -> list[Path]:
    """The files a glob pattern (`data/train-*.parquet`) names, sorted;
    relative patterns are tried from the working folder, then from `base`."""
    import glob

    for root in (None, base):
        if root is not None and Path(pattern).is_absolute():
            break
        full = pattern if root is None else str(root / pattern)
        found = sorted(Path(p) for p in glob.glob(full) if Path(p).is_file())
        if found:
            return found
    raise ValueError(f"[data].train: the pattern {pattern!r} matches no file.")


def is_pattern(path: str) -> bool:
    """Whether a path holds glob characters (`*`, `?`, `[`)."""
    return any(c in str(path) for c in "*?[")


class ShardStream(keras.utils.PyDataset):
    """Batches of a data set stored as many files (shards), one shard in
    memory at a time.

    Every epoch visits the shards in an order drawn from (seed, epoch) and
    each shard's rows in an order drawn from (seed, epoch, shard), then cuts
    the shard into batches (a shard's last batch may be smaller): data far
    larger than memory, shuffled as well as one shard's rows allow, and any
    batch of any epoch can be replayed (exact resume with
    `keras_mtl.callbacks.Checkpoint`). Shards are best of similar size and
    a few batches or more each.

    Args:
        paths: The shard files.
        fmt: `"csv"`, `"jsonl"` or `"parquet"` (None: from each extension).
        batch_size: Rows per batch.
        convert: frame -> (inputs, labels) of a batch.
        shuffle: Shuffle shards and rows (else file order, batch by batch).
        seed: Seed of the order.
    """

    def __init__(
        self,
        paths: list[Path],
        fmt: str | None,
        batch_size: int,
        convert: Callable[[Any], tuple[dict, dict]],
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("ShardStream needs at least one shard.")
        self.formats = [files.format_of(p, fmt) for p in self.paths]
        self.batch_size = int(batch_size)
        self.convert = convert
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0
        self.shard_rows = [
            count_rows(p, f) for p, f in zip(self.paths, self.formats, strict=True)
        ]
        for path, rows in zip(self.paths, self.shard_rows, strict=True):
            if rows <= 0:
                raise ValueError(f"{path}: no rows.")
        self.rows = sum(self.shard_rows)
        self._plan: tuple[int, list[tuple[int, int]]] | None = None
        self._shard: tuple[int, int, Any] | None = None

    def __len__(self) -> int:
        return sum(math.ceil(r / self.batch_size) for r in self.shard_rows)

    def plan(self) -> list[tuple[int, int]]:
        """This epoch's batches: (shard, batch within the shard) each."""
        plan = self._plan
        if plan is None or plan[0] != self.epoch:
            order = np.arange(len(self.paths))
            if self.shuffle:
                order = np.random.default_rng([self.seed, self.epoch]).permutation(
                    order
                )
            batches = [
                (int(s), k)
                for s in order
                for k in range(math.ceil(self.shard_rows[s] / self.batch_size))
            ]
            plan = self._plan = (self.epoch, batches)
        return plan[1]

    def _frame(self, shard: int) -> Any:
        cached = self._shard
        if cached is None or cached[:2] != (self.epoch, shard):
            frame = files.read_table(self.paths[shard], self.formats[shard])
            if len(frame) != self.shard_rows[shard]:
                raise ValueError(
                    f"{self.paths[shard]}: had {self.shard_rows[shard]} rows when "
                    f"training started, has {len(frame)} now."
                )
            if self.shuffle:
                rng = np.random.default_rng([self.seed, self.epoch, shard])
                frame = frame.iloc[rng.permutation(len(frame))]
            frame.attrs["path"] = str(self.paths[shard])  # for error messages
            cached = self._shard = (self.epoch, shard, frame)
        return cached[2]

    def __getitem__(self, index: int) -> tuple[dict, dict]:
        shard, k = self.plan()[index]
        frame = self._frame(shard)
        return self.convert(frame.iloc[k * self.batch_size : (k + 1) * self.batch_size])

    def only(self, tasks: list[str]) -> ShardStream:
        """The same stream with the labels of `tasks` only."""
        out = _with_labels_of(self, tasks)
        out._plan, out._shard = None, None
        return out

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
