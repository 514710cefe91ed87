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
from keras_mtl.data.columns import InputFiller, labels_for, no_labels, task_labels
from keras_mtl.data.mixing import MixedBatches, Source
from keras_mtl.data.packed import PackedTexts
from keras_mtl.data.shares import ProcessShare
from keras_mtl.data.text import text_lengths
from keras_mtl.data.vocabulary import WordVocabulary
from keras_mtl.errors import ConfigError
from keras_mtl.tasks.task import Task

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
        from keras_mtl.data.tabular import FeatureSpec
        from keras_mtl.datasets import census_income

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
        from keras_mtl.data.tabular import FeatureSpec

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
        y = task_labels(frame, tasks, mapping, where)
        if name == "train":
            no_labels(y, tasks, where)
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
        return filler(frame, at), task_labels(frame, tasks, mapping, at)

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
                task_labels(frame, tasks, mapping, str(table[name])),
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
                        task_labels(frame, tasks, mapping, where, only=own),
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
    "ProcessShare",
    "Source",
    "Split",
    "TWEET_BUCKETS",
    "WordVocabulary",
    "labels_for",
    "load",
    "text_lengths",
]
