"""TweetEval: four tasks from four data sets, single-task against multi-task.

Emotion (4 classes), hate, irony and offensive (binary): every tweet is
labelled for one task, so multi-task batches mix the four training sets
(temperature sampling, T = 2) and mask the other tasks' labels. Two shared
encoders on 160 UTF-8 bytes per tweet (longer tweets are cut): a byte-level
LSTM(64) over a 32-wide byte embedding and a small Transformer (dim 64, 4
heads, 1 block). Each task's head has a hidden layer of 32. Single-task
models: the same encoder and head for one task, trained on that task's set
for the same number of epochs. Macro-F1 on each task's official test split,
mean and standard deviation over seeds; Δm% of macro-F1 against the
single-task models of the same seed.

    python benchmarks/tweeteval.py [--seeds 3] [--epochs 3] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from keras_mtl import runner  # noqa: E402
from keras_mtl.config import Config  # noqa: E402
from keras_mtl.evaluation import delta_m, summarize  # noqa: E402

TASKS = ("emotion", "hate", "irony", "offensive")
ENCODERS = {
    "lstm": {"name": "lstm", "units": 64, "symbols": "embedding", "embedding_dim": 32},
    "transformer": {
        "name": "transformer",
        "dim": 64,
        "heads": 4,
        "ff_dim": 128,
        "num_layers": 1,
        "max_length": 160,
        "symbols": "embedding",
    },
}


def base_config(root: Path, encoder: dict, epochs: int) -> dict:
    return {
        "model": {"name": "tweeteval"},
        "inputs": {"text": {"shape": [160], "encoding": "bytes", "length": 160}},
        "encoder": dict(encoder),
        "tasks": [
            {"name": "emotion", "kind": "multiclass", "num_classes": 4, "hidden": [32]},
            *({"name": t, "kind": "binary", "hidden": [32]} for t in TASKS[1:]),
        ],
        "compile": {"optimizer": {"name": "adam", "learning_rate": 0.002}},
        "training": {
            "epochs": epochs,
            "batch_size": 64,
            "sampling": "temperature",
            "temperature": 2.0,
            "seed": 0,
        },
        "data": {
            "sources": [
                {"format": "tweeteval", "path": str(root / t), "task": t} for t in TASKS
            ]
        },
    }


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
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--encoders", default="lstm,transformer")
    parser.add_argument("--balancers", default="ew,uw,upgrad")
    parser.add_argument(
        "--quick", action="store_true", help="one seed, one epoch, LSTM, EW"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(
            f"tweeteval.py: no TweetEval folder at {args.data} (set MTL_DATA_DIR)."
        )
    seeds = 1 if args.quick else args.seeds
    epochs = 1 if args.quick else args.epochs
    encoders = ["lstm"] if args.quick else args.encoders.split(",")
    balancers = ["ew"] if args.quick else args.balancers.split(",")
    start = time.perf_counter()
    rows = []
    for encoder in encoders:
        data = base_config(args.data, ENCODERS[encoder], epochs)
        single_runs: dict[int, dict[str, float]] = {}
        for balancer in balancers:
            config_data = copy.deepcopy(data)
            if balancer != "ew":
                config_data["compile"]["balancer"] = balancer
            config = Config(config_data, f"<tweeteval {encoder} {balancer}>")
            first = balancer == balancers[0]
            result = runner.run(
                config,
                seeds=seeds,
                baselines=first,
                log=lambda m: print("  " + m, flush=True),
            )
            multi = [r for r in result["runs"] if r["model"] == runner.MULTI]
            if first:
                for run in result["runs"]:
                    if run["model"].startswith(runner.SINGLE):
                        task = run["model"].split(":", 1)[1]
                        single_runs.setdefault(run["seed"], {})[task] = run["scores"][
                            "test"
                        ][task]["macro_f1"]
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
            rows.append((encoder, f"multi-task, {balancer}", per_task, summarize(dms)))
            print(f"{encoder} {balancer}: Δm% {np.mean(dms):+.2f}", flush=True)
    minutes = (time.perf_counter() - start) / 60
    print()
    print(
        f"TweetEval test macro-F1, {seeds} seed(s), {epochs} epoch(s), backend "
        f"{os.environ['KERAS_BACKEND']}, {platform.machine()} {os.cpu_count()} cores, "
        f"wall time {minutes:.1f} min."
    )
    print()
    print("| encoder | model | " + " | ".join(TASKS) + " | Δm% vs single-task |")
    print("|---|---|" + "---|" * len(TASKS) + "---|")
    for encoder, model, per_task, dm in rows:
        cells = [f"{per_task[t]['mean']:.4f} ± {per_task[t]['std']:.4f}" for t in TASKS]
        dm_cell = "" if dm is None else f"{dm['mean']:+.2f} ± {dm['std']:.2f}"
        print(f"| {encoder} | {model} | " + " | ".join(cells) + f" | {dm_cell} |")
    if args.json:
        args.json.write_text(
            json.dumps(
                runner._jsonable(
                    {
                        "rows": [
                            {"encoder": e, "model": m, "macro_f1": p, "delta_m": d}
                            for e, m, p, d in rows
                        ],
                        "minutes": minutes,
                    }
                ),
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
