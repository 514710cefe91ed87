"""Five small 3-class tasks in the published TweetEval layout, trained with
the example config's defaults: does every model beat the majority class?

A stand-in for a TweetEval-format data set the library has never seen (such
as TweetEval's stance folders: five targets, 355-620 training tweets each,
one `mapping.txt` above the per-target folders). The five tasks are disjoint
slices of TweetEval sentiment's labelled tweets (negative, neutral,
positive) with the stance folders' sizes, written as
`<scratch>/small/mapping.txt` and `<scratch>/small/<task>/{train,val,test}_*`.
The config is `examples/tweeteval.toml` with only its tasks and sources
replaced; the script runs what `mtl train --baselines` runs and prints test
macro-F1 of the multi-task model, the single-task models, the bag-of-words
yardstick and the majority class.

    python benchmarks/small_tasks.py [--seeds 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import tomllib

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from keras_mtl.config import Config  # noqa: E402
from keras_mtl.evaluation.scoring import task_scores  # noqa: E402
from keras_mtl.runs import results, runner
from keras_mtl.tasks.task import Task  # noqa: E402

#: (train, val, test) sizes of TweetEval stance's five targets.
SIZES = {
    "abortion": (587, 66, 280),
    "atheism": (461, 52, 220),
    "climate": (355, 40, 169),
    "feminist": (597, 67, 285),
    "hillary": (620, 69, 295),
}
ROOT = Path(__file__).resolve().parents[1]


def write_folders(source: Path, out: Path, seed: int = 0) -> Path:
    """The five task folders under `out/small`, sliced from `source`'s
    labelled test tweets by a fixed permutation."""
    texts = (source / "test_text.txt").read_text(encoding="utf-8").splitlines()
    labels = (source / "test_labels.txt").read_text().split()
    order = np.random.default_rng(seed).permutation(len(texts))
    parent = out / "small"
    parent.mkdir(parents=True)
    (parent / "mapping.txt").write_text(
        (source / "mapping.txt").read_text(encoding="utf-8")
    )
    at = 0
    for task, sizes in SIZES.items():
        folder = parent / task
        folder.mkdir()
        for split, size in zip(("train", "val", "test"), sizes, strict=True):
            rows = order[at : at + size]
            at += size
            (folder / f"{split}_text.txt").write_text(
                "\n".join(texts[i] for i in rows) + "\n", encoding="utf-8"
            )
            (folder / f"{split}_labels.txt").write_text(
                "\n".join(labels[i] for i in rows) + "\n"
            )
    return parent


def config_for(parent: Path) -> Config:
    """`examples/tweeteval.toml` with its tasks and sources replaced."""
    data = tomllib.loads((ROOT / "examples/tweeteval.toml").read_text())
    data["model"]["name"] = "small_tasks"
    data["tasks"] = [
        {"name": t, "kind": "multiclass", "num_classes": 3, "hidden": [64]}
        for t in SIZES
    ]
    data["data"]["sources"] = [
        {"format": "tweeteval", "path": str(parent / t), "task": t} for t in SIZES
    ]
    return Config(data, "<small tasks: examples/tweeteval.toml>")


def majority_f1(parent: Path, task: str) -> float:
    """Test macro-F1 of always predicting the training split's commonest
    class."""
    train = np.array((parent / task / "train_labels.txt").read_text().split(), int)
    test = np.array((parent / task / "test_labels.txt").read_text().split(), int)
    guess = np.zeros((len(test), 3), "float32")
    guess[:, np.bincount(train, minlength=3).argmax()] = 1.0
    spec = Task(task, "multiclass", num_classes=3)
    return task_scores(spec, test, guess)["macro_f1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("MTL_DATA_DIR", ROOT.parent / "shared/data")) / (
        "tweeteval/sentiment"
    )
    parser.add_argument("--data", type=Path, default=default)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    if not (args.data / "test_text.txt").is_file():
        sys.exit(f"small_tasks.py: no TweetEval sentiment folder at {args.data}.")
    start = time.perf_counter()
    parent = write_folders(args.data, Path(tempfile.mkdtemp(prefix="small-tasks-")))
    result = runner.run(
        config_for(parent),
        seeds=args.seeds,
        baselines=True,
        log=lambda m: print("  " + m, flush=True),
    )
    summary = result["summary"]
    print(f"\ntest macro-F1, mean of {args.seeds} seed(s)")
    print("| model | " + " | ".join(SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    rows = [("majority class", {t: majority_f1(parent, t) for t in SIZES})]
    for model, label in (
        (results.YARDSTICK, "yardstick: bag-of-words logistic regression"),
        (results.MULTI, "multi-task (example config)"),
    ):
        rows.append((label, {t: _mean(summary[model]["test"][t]) for t in SIZES}))
    rows.append(
        (
            "single-task",
            {t: _mean(summary[f"{results.SINGLE}:{t}"]["test"][t]) for t in SIZES},
        )
    )
    for label, scores in rows:
        print(f"| {label} | " + " | ".join(f"{scores[t]:.4f}" for t in SIZES) + " |")
    beaten = {
        label: all(scores[t] > rows[0][1][t] for t in SIZES)
        for label, scores in rows[1:]
    }
    print(f"\nabove the majority class on every task: {beaten}")
    print(f"({(time.perf_counter() - start) / 60:.1f} min)")


def _mean(entry: dict) -> float:
    value = entry["macro_f1"]
    return float(value["mean"] if isinstance(value, dict) else value)


if __name__ == "__main__":
    main()
