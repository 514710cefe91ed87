"""Loaders: from files on disk to model inputs and per-task labels.

The `[data]` table of a config says where the data is:

* `source = "tweet_pairs"`: the embedded tweet pairs (`train_pairs`,
  `val_pairs`, `test_pairs`, `seed`);
* `source = "census_income"`: UCI Census-Income (`path`, `seed`);
* `source = "files"`: tables (`train`, `val`, `test` paths; `format` =
  `"csv"`, `"jsonl"` or `"parquet"`, else from the extension); a task's
  labels come from the column named like the task unless `[data.labels]`
  says otherwise;
* `[[data.sources]]`: several data sets, each a table with `format` =
  `"tweeteval"` (a TweetEval-style folder, `path`, the `task` its labels
  belong to) or a file format (`train`/`val`/`test`); training batches mix
  them (`[training] sampling`, `temperature`) and every sample's labels for
  the other sources' tasks are missing.

Inputs are filled from columns by `[inputs.<name>]`: `column` (default the
input's name) and `encoding`: `"bytes"` (UTF-8 bytes, `length`, default 280),
`"words"` (a `WordVocabulary` learned from the training texts,
`vocabulary_size`, `length`), `"number"`, `"id"`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keras_mtl.data import files, tweeteval
from keras_mtl.data.arrays import ArrayBatches
from keras_mtl.data.buckets import TWEET_BUCKETS, BucketedBatches
from keras_mtl.data.mixing import MixedBatches, Source, missing_label
from keras_mtl.data.packed import PackedTexts
from keras_mtl.data.vocabulary import WordVocabulary
from keras_mtl.errors import ConfigError
from keras_mtl.task import Task, closest
from keras_mtl.text import encode_bytes, text_lengths

SOURCES = ("tweet_pairs", "census_income", "files")
DATA_KEYS = (
    "source",
    "seed",
    "train_pairs",
    "val_pairs",
    "test_pairs",
    "path",
    "format",
    "train",
    "val",
    "test",
    "labels",
    "sources",
    "numeric",
    "exclude",
    "stream",
)
SOURCE_KEYS = ("name", "format", "path", "task", "train", "val", "test", "labels")


@dataclass
class Split:
    """Inputs and labels of one split."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.x.values())))


@dataclass
class Data:
    """What a config's `[data]` loads.

    Attributes:
        train: Training data: a `Split`, or `MixedBatches` for several sources.
        val: Validation split (None when there is none).
        test: Test split (None when there is none).
        info: What loading did, in numbers (sizes, cut texts, unseen
            categories, the sampling).
        tabular_spec: The feature spec learned from the training data, for
            a tabular encoder.
    """

    train: Any
    val: Split | None
    test: Split | None
    info: dict[str, Any] = field(default_factory=dict)
    tabular_spec: Any = None
    vocabularies: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def check_data_config(table: Any, config: Any) -> None:
    """Raises a one-sentence ConfigError for a malformed `[data]` table."""
    if not isinstance(table, dict):
        raise config.error("[data]", "must be a table.")
    for key in table:
        if key not in DATA_KEYS:
            raise config.error(
                f"[data].{key}",
                f"is not a key of [data]"
                f"{closest(key, list(DATA_KEYS))}; expected one of "
                f"{', '.join(DATA_KEYS)}.",
            )
    if "sources" in table:
        if not isinstance(table["sources"], list) or not table["sources"]:
            raise config.error("[[data.sources]]", "must list at least one source.")
        tasks = {t.get("name") for t in config.data.get("tasks", [])}
        for i, source in enumerate(table["sources"]):
            where = f"data.sources[{i}]"
            if not isinstance(source, dict):
                raise config.error(where, "must be a table.")
            for key in source:
                if key not in SOURCE_KEYS:
                    raise config.error(
                        f"{where}.{key}",
                        f"is not a key of a data source"
                        f"{closest(key, list(SOURCE_KEYS))}; expected one of "
                        f"{', '.join(SOURCE_KEYS)}.",
                    )
            if source.get("format") == "tweeteval":
                if "path" not in source or "task" not in source:
                    raise config.error(
                        where,
                        "is a tweeteval source: give its path and the "
                        "task its labels belong to.",
                    )
                if source["task"] not in tasks:
                    raise config.error(
                        f"{where}.task",
                        f"names task {source['task']!r}, "
                        f"which is not in [[tasks]]"
                        f"{closest(str(source['task']), sorted(tasks))}.",
                    )
        return
    source = table.get("source", "files")
    if source not in SOURCES:
        raise config.error(
            "[data].source",
            f"must be one of {', '.join(SOURCES)}, got "
            f"{source!r}{closest(str(source), SOURCES)}.",
        )
    if source == "files" and "train" not in table:
        raise config.error("[data]", 'reads files: give at least train = "path".')
    if source == "census_income" and "path" not in table:
        raise config.error("[data]", "reads census_income: give its path.")


def expand(path: str) -> str:
    """A path with `${VAR}` environment variables expanded."""
    expanded = os.path.expandvars(path)
    if "$" in expanded:
        name = expanded[expanded.index("$") :].split("/")[0].strip("${}")
        raise ConfigError(
            f"The path {path!r} uses the environment variable {name}, which is not set."
        )
    return expanded


def _path(value: str, base: Path | None) -> Path:
    path = Path(expand(str(value)))
    if not path.is_absolute() and base is not None and not path.exists():
        candidate = base / path
        if candidate.exists():
            return candidate
    return path


def labels_for(task: Task, values: Any, where: str) -> np.ndarray:
    """A task's labels from a column, checked: class ids within range,
    binary labels 0/1, numbers where numbers are expected; missing values
    become NaN (or -1 for class ids)."""
    import pandas as pd

    numeric = pd.to_numeric(pd.Series(values), errors="coerce")
    bad = numeric.isna() & pd.Series(values).notna()
    if bad.any():
        first = pd.Series(values)[bad].iloc[0]
        raise ValueError(
            f"{where}: task '{task.name}' has a non-numeric label {first!r}."
        )
    array = numeric.to_numpy(np.float64)
    if task.kind == "multiclass":
        present = ~np.isnan(array) & (array != -1)
        wrong = present & (
            (array < 0) | (array >= task.units) | (array != np.round(array))
        )
        if wrong.any():
            raise ValueError(
                f"{where}: task '{task.name}' has label {array[wrong][0]:g}, "
                f"outside the class ids 0..{task.units - 1}."
            )
        return np.where(present, array, -1).astype(np.int32)
    if task.kind in ("binary", "multilabel"):
        present = ~np.isnan(array) & (array != -1)
        wrong = present & ~np.isin(array, (0.0, 1.0))
        if wrong.any():
            raise ValueError(
                f"{where}: task '{task.name}' is {task.kind}: labels must be "
                f"0 or 1, got {array[wrong][0]:g}."
            )
        return np.where(present, array, np.nan).astype(np.float32)
    return array.astype(np.float32)


class InputFiller:
    """Fills model inputs from frame columns (`[inputs.<name>]` tables);
    vocabularies are learned from the training frame."""

    def __init__(self, inputs: dict[str, dict[str, Any]]) -> None:
        self.inputs = inputs
        self.vocabularies: dict[str, WordVocabulary] = {}
        self.cut: dict[str, int] = {}

    def fit(self, frame: Any) -> None:
        for name, table in self.inputs.items():
            if table.get("encoding") == "words":
                column = self._column(frame, name, table, "training data")
                self.vocabularies[name] = WordVocabulary.fit(
                    frame[column].astype(str),
                    size=table.get("vocabulary_size", 20000),
                    length=table.get("length", (table.get("shape") or [64])[0]),
                )

    def _column(self, frame: Any, name: str, table: dict, where: str) -> str:
        column = table.get("column", name)
        if column not in frame.columns:
            raise ValueError(
                f"{where}: input '{name}' reads column {column!r}, which the "
                f"data lacks (columns: {', '.join(map(str, frame.columns))})"
                f"{closest(str(column), [str(c) for c in frame.columns])}."
            )
        return column

    def __call__(self, frame: Any, where: str) -> dict[str, np.ndarray]:
        import pandas as pd

        out = {}
        for name, table in self.inputs.items():
            column = self._column(frame, name, table, where)
            encoding = table.get("encoding", "number")
            values = frame[column]
            if encoding == "bytes":
                length = table.get("length", (table.get("shape") or [280])[0])
                encoded = encode_bytes(values.fillna("").astype(str), length=length)
                self.cut[name] = self.cut.get(name, 0) + encoded.truncated
                out[name] = encoded.ids
            elif encoding == "words":
                ids, cut = self.vocabularies[name].encode(values.fillna("").astype(str))
                self.cut[name] = self.cut.get(name, 0) + cut
                out[name] = ids
            else:
                shape = list(table.get("shape") or [])
                width = int(np.prod(shape)) if shape else 1
                if encoding == "numbers":
                    numbers = _number_lists(values, width, shape, name, column, where)
                else:
                    if width != 1:
                        raise ValueError(
                            f"{where}: input '{name}' reads one number per row "
                            f"from column {column!r}, but its shape is {shape}; "
                            'give shape = [] or encoding = "numbers" for a list '
                            "of numbers per row."
                        )
                    numbers = pd.to_numeric(values, errors="coerce").to_numpy(
                        np.float64
                    )
                bad = ~np.isfinite(numbers.reshape(len(values), -1)).all(axis=1)
                if bad.any():
                    raise ValueError(
                        f"{where}: input '{name}' (column {column!r}) has "
                        f"{int(bad.sum())} row(s) with missing, infinite or "
                        f"non-numeric values, first at row {int(np.argmax(bad))}."
                    )
                dtype = np.int32 if encoding == "id" else np.float32
                out[name] = numbers.astype(dtype).reshape((-1, *shape))
        return out


def _number_lists(
    values: Any, width: int, shape: list[int], name: str, column: str, where: str
) -> np.ndarray:
    """A column of number lists (a list, or numbers separated by spaces or
    commas) as an array of rows of `width` numbers."""
    rows = np.empty((len(values), width), np.float64)
    for i, value in enumerate(values):
        if isinstance(value, str):
            parts: Any = value.replace(",", " ").split()
        elif isinstance(value, list | tuple | np.ndarray):
            parts = list(value)
        else:
            parts = [value]
        try:
            row = np.asarray(parts, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}: input '{name}' (column {column!r}) row {i} is "
                f"{str(value)[:40]!r}, not a list of numbers."
            ) from None
        if row.size != width:
            raise ValueError(
                f"{where}: input '{name}' (column {column!r}) row {i} has "
                f"{row.size} numbers; its shape {shape} needs {width}."
            )
        rows[i] = row
    return rows


def _task_labels(
    frame: Any,
    tasks: list[Task],
    mapping: dict[str, str],
    where: str,
    only: list[str] | None = None,
) -> dict[str, np.ndarray]:
    y = {}
    n = len(frame)
    for task in tasks:
        if only is not None and task.name not in only:
            y[task.name] = missing_label(task, (n,))
            continue
        column = mapping.get(task.name, task.name)
        if column not in frame.columns:
            raise ValueError(
                f"{where}: no label column {column!r} for task '{task.name}' "
                f"(columns: {', '.join(map(str, frame.columns))})."
            )
        y[task.name] = labels_for(task, frame[column], where)
    return y


def _no_labels(y: dict[str, np.ndarray], tasks: list[Task], where: str) -> None:
    for task in tasks:
        values = y[task.name]
        present = values != -1 if task.kind == "multiclass" else ~np.isnan(values)
        if not present.any():
            raise ValueError(
                f"{where}: task '{task.name}' has no labelled sample in the "
                "training data."
            )


def load(config: Any) -> Data:
    """Loads the data a config's `[data]` table describes."""
    table = config.data.get("data", {"source": "tweet_pairs"})
    tasks = config.tasks
    base = Path(config.source).parent if Path(str(config.source)).exists() else None
    training = config.training()
    if "sources" in table:
        return _load_sources(config, table, tasks, training, base)
    source = table.get("source", "files")
    if source == "tweet_pairs":
        from keras_mtl.datasets import tweet_pairs

        pairs = tweet_pairs.load(
            seed=table.get("seed", 0),
            train_pairs=table.get("train_pairs"),
            val_pairs=table.get("val_pairs"),
            test_pairs=table.get("test_pairs"),
        )

        def split(part: Any) -> Split:
            labels = {**part.y, **part.sentiment}
            return Split(
                dict(part.x),
                {t.name: labels[t.name] for t in tasks if t.name in labels},
            )

        known = [*pairs.train.y, *pairs.train.sentiment]
        missing = [t.name for t in tasks if t.name not in known]
        if missing:
            raise ValueError(
                f"{config.source}: the tweet pairs have tasks "
                f"{', '.join(known)}, not {missing[0]!r}."
            )
        return Data(
            split(pairs.train),
            split(pairs.val),
            split(pairs.test),
            {
                "truncated_tweets": pairs.truncated,
                "train": len(pairs.train),
                "val": len(pairs.val),
                "test": len(pairs.test),
            },
        )
    if source == "census_income":
        from keras_mtl.datasets import census_income
        from keras_mtl.tabular import FeatureSpec

        parts = census_income.load(
            _path(table["path"], base), seed=table.get("seed", 0)
        )
        spec = FeatureSpec.from_frame(
            parts["train"].frame,
            numeric=table.get("numeric", census_income.NUMERIC),
            exclude=table.get("exclude", census_income.EXCLUDE),
        )
        out = {}
        info: dict[str, Any] = {}
        for name, part in parts.items():
            encoded = spec.encode(part.frame)
            out[name] = Split(encoded.inputs, {t.name: part.y[t.name] for t in tasks})
            info[name] = len(part)
            info[f"{name}_unseen_categories"] = sum(encoded.unseen.values())
        return Data(out["train"], out["val"], out["test"], info, spec)
    # Files.
    mapping = table.get("labels", {})
    if table.get("stream"):
        return _load_stream(config, table, tasks, training, base, mapping)
    frames = {}
    for name in ("train", "val", "test"):
        if name in table:
            frames[name] = files.read_table(
                _path(table[name], base), table.get("format")
            )
    spec = None
    encoder = config.data["encoder"]
    if encoder.get("name") == "tabular":
        from keras_mtl.tabular import FeatureSpec

        label_columns = [mapping.get(t.name, t.name) for t in tasks]
        spec = FeatureSpec.from_frame(
            frames["train"],
            numeric=table.get("numeric"),
            exclude=[*label_columns, *table.get("exclude", [])],
        )
    filler = InputFiller(config.data["inputs"])
    filler.fit(frames["train"])
    splits: dict[str, Split] = {}
    info = {}
    for name, frame in frames.items():
        where = f"{table[name]}"
        x = spec.encode(frame).inputs if spec is not None else filler(frame, where)
        y = _task_labels(frame, tasks, mapping, where)
        if name == "train":
            _no_labels(y, tasks, where)
        splits[name] = Split(x, y)
        info[name] = len(frame)
    info["truncated"] = dict(filler.cut)
    vocabularies = {k: v.get_config() for k, v in filler.vocabularies.items()}
    return Data(
        splits["train"],
        splits.get("val"),
        splits.get("test"),
        info,
        spec,
        vocabularies,
        dict(mapping),
    )


def _load_stream(
    config: Any,
    table: dict,
    tasks: list[Task],
    training: dict,
    base: Path | None,
    mapping: dict,
) -> Data:
    """Training batches streamed from the training file, or from the shards
    a glob pattern names; validation and test files are read whole."""
    from keras_mtl.data.streaming import (
        ShardStream,
        TableStream,
        is_pattern,
        shard_paths,
    )

    if config.data["encoder"].get("name") == "tabular":
        raise ValueError(
            "[data] stream = true works with text and number inputs; a "
            "tabular feature spec is learned from the whole training table."
        )
    sharded = is_pattern(table["train"])
    if sharded:
        paths = shard_paths(expand(str(table["train"])), base)
    else:
        paths = [_path(table["train"], base)]
    formats = [files.format_of(p, table.get("format")) for p in paths]
    filler = InputFiller(config.data["inputs"])
    for name, spec in filler.inputs.items():
        if spec.get("encoding") == "words":
            column = spec.get("column", name)
            texts = (
                str(t)
                for path, fmt in zip(paths, formats, strict=True)
                for chunk in files.iter_table(path, 4096, fmt)
                for t in chunk[column].fillna("")
            )
            filler.vocabularies[name] = WordVocabulary.fit(
                texts,
                size=spec.get("vocabulary_size", 20000),
                length=spec.get("length", (spec.get("shape") or [64])[0]),
            )
    where = str(table["train"])

    def convert(frame: Any) -> tuple[dict, dict]:
        at = frame.attrs.get("path", where)  # a shard names itself
        return filler(frame, at), _task_labels(frame, tasks, mapping, at)

    batch_size = training.get("batch_size", 64)
    train: Any
    if sharded:
        train = ShardStream(
            paths,
            table.get("format"),
            batch_size,
            convert,
            shuffle=training.get("shuffle", True),
            seed=training.get("seed", 0),
        )
    else:
        train = TableStream(paths[0], formats[0], batch_size, convert)
    splits = {}
    info: dict[str, Any] = {"train": train.rows, "streamed": True}
    if sharded:
        info["shards"] = len(paths)
    for name in ("val", "test"):
        if name in table:
            frame = files.read_table(_path(table[name], base), table.get("format"))
            splits[name] = Split(
                filler(frame, str(table[name])),
                _task_labels(frame, tasks, mapping, str(table[name])),
            )
            info[name] = len(frame)
    vocabularies = {k: v.get_config() for k, v in filler.vocabularies.items()}
    return Data(
        train,
        splits.get("val"),
        splits.get("test"),
        info,
        None,
        vocabularies,
        dict(mapping),
    )


def _load_sources(
    config: Any, table: dict, tasks: list[Task], training: dict, base: Path | None
) -> Data:
    filler = InputFiller(config.data["inputs"])
    frames: list[tuple[str, dict[str, Any], list[str], dict]] = []
    for i, source in enumerate(table["sources"]):
        name = source.get("name") or source.get("task") or f"source_{i}"
        if source.get("format") == "tweeteval":
            folder = _path(source["path"], base)
            parts = {
                s: tweeteval.read_split(folder, s)
                for s in tweeteval.SPLITS
                if (folder / f"{s}_text.txt").is_file()
            }
            for part in parts.values():
                part.rename(columns={"label": source["task"]}, inplace=True)
            frames.append((name, parts, [source["task"]], {}))
        else:
            parts = {
                s: files.read_table(_path(source[s], base), source.get("format"))
                for s in ("train", "val", "test")
                if s in source
            }
            own = [
                t.name
                for t in tasks
                if source.get("labels", {}).get(t.name, t.name)
                in parts["train"].columns
            ]
            if not own:
                continue  # labels none of the model's tasks: nothing to learn
            frames.append((name, parts, own, source.get("labels", {})))
    if not frames:
        raise ValueError(
            f"{config.source}: no data source has labels for the tasks "
            f"{', '.join(t.name for t in tasks)}."
        )
    import pandas as pd

    filler.fit(
        pd.concat([parts["train"] for _, parts, _, _ in frames], ignore_index=True)
    )
    train_sources, val, test = [], [], []
    info: dict[str, Any] = {"sources": {}}
    for name, parts, own, mapping in frames:
        where = f"source {name!r}"
        x = filler(parts["train"], where)
        y = {
            t: labels_for(
                next(k for k in tasks if k.name == t),
                parts["train"][mapping.get(t, t)],
                where,
            )
            for t in own
        }
        train_sources.append(Source(name, x, y))
        info["sources"][name] = {s: len(f) for s, f in parts.items()}
        for split_name, bucket in (("val", val), ("test", test)):
            if split_name in parts:
                frame = parts[split_name]
                bucket.append(
                    Split(
                        filler(frame, where),
                        _task_labels(frame, tasks, mapping, where, only=own),
                    )
                )
    batches = MixedBatches(
        train_sources,
        tasks,
        batch_size=training.get("batch_size", 64),
        sampling=training.get("sampling", "proportional"),
        temperature=training.get("temperature", 2.0),
        steps=training.get("steps_per_epoch"),
        seed=training.get("seed", 0),
    )
    info["sampling"] = batches.describe()
    info["truncated"] = dict(filler.cut)
    vocabularies = {k: v.get_config() for k, v in filler.vocabularies.items()}
    return Data(batches, _concat(val), _concat(test), info, None, vocabularies)


def _concat(splits: list[Split]) -> Split | None:
    if not splits:
        return None
    x = {k: np.concatenate([s.x[k] for s in splits]) for k in splits[0].x}
    y = {k: np.concatenate([s.y[k] for s in splits]) for k in splits[0].y}
    return Split(x, y)


__all__ = [
    "ArrayBatches",
    "BucketedBatches",
    "Data",
    "InputFiller",
    "MixedBatches",
    "PackedTexts",
    "Source",
    "Split",
    "TWEET_BUCKETS",
    "WordVocabulary",
    "check_data_config",
    "labels_for",
    "load",
    "text_lengths",
]
