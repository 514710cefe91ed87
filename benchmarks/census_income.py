"""Census-Income (KDD): sharing architectures x balancers against single-task models.

Tasks of the MMoE paper's group 1: income over 50K (column 41) and never
married (column 7); column 24, the instance weight, is not a feature. Only the
99,762-row test split of the UCI data is available here, so it is split
60/20/20 (train/validation/test) with a fixed seed; published numbers use the
199,523-row training split. Every model trains with Adam (1e-3), batch 1024,
at most `--epochs` epochs with early stopping on the validation loss
(patience 2, best weights restored); single-task models are shared-bottom
models of the same size and budget with one task. Prints test AUC per task
(mean and standard deviation over seeds), Δm% against the single-task models
(LibMTL's definition), and the wall time.

    python benchmarks/census_income.py [--seeds 3] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_mtl import Task, architectures, build_model  # noqa: E402
from keras_mtl.data.tabular import FeatureSpec  # noqa: E402
from keras_mtl.datasets import census_income  # noqa: E402
from keras_mtl.evaluation import delta_m  # noqa: E402
from keras_mtl.evaluation.scoring import roc_auc  # noqa: E402
from keras_mtl.layers import TabularEncoder  # noqa: E402

TASKS = census_income.TASKS
TOWER = [8]
ARCHITECTURES = {
    "shared_bottom": lambda: architectures.SharedBottom(2, units=[64]),
    "cross_stitch": lambda: architectures.CrossStitch(2, units=[32, 16]),
    "mmoe": lambda: architectures.MMoE(2, num_experts=8, expert_units=[16]),
    "cgc": lambda: architectures.CGC(
        2, num_shared_experts=4, num_task_experts=2, expert_units=[16]
    ),
    "ple": lambda: architectures.PLE(
        2, num_levels=2, num_shared_experts=4, num_task_experts=2, expert_units=[16]
    ),
    "dselect_k": lambda: architectures.DSelectK(
        2, num_experts=8, k=2, expert_units=[16]
    ),
    "mtan": lambda: architectures.MTAN(2, units=[32, 16]),
}
BALANCERS = ("ew", "uw", "pcgrad", "upgrad")
# The published reference (a 2024 study, DeepCTR-style setup on the full data).
PUBLISHED = {
    "single_task": (0.9198, 0.9748),
    "shared_bottom": (0.9148, 0.9754),
    "mmoe": (0.9152, 0.9756),
    "ple": (0.9161, 0.9764),
}


def default_data() -> Path:
    root = Path(
        os.environ.get(
            "MTL_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"
        )
    )
    return root / "census-income" / "census-income.test.gz"


def train_and_score(model, data, epochs: int, balancer: str | None) -> dict[str, float]:
    kwargs = {} if balancer in (None, "ew") else {"balancer": balancer}
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=[], **kwargs)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=2, restore_best_weights=True
    )

    def labels(split: str) -> dict:
        return {t: data[split][1][t] for t in model.task_names}

    model.fit(
        data["train"][0],
        labels("train"),
        validation_data=(data["val"][0], labels("val")),
        batch_size=1024,
        epochs=epochs,
        callbacks=[stop],
        verbose=0,
    )
    preds = model.predict_tasks(data["test"][0], batch_size=4096)
    return {
        t.name: roc_auc(t, data["test"][1][t.name], preds[t.name]) for t in model.tasks
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one seed, MMoE and single-task models only",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(
            f"census_income.py: no data at {args.data} (set MTL_DATA_DIR or --data)."
        )
    seeds = [0] if args.quick else list(range(args.seeds))
    archs = ["mmoe"] if args.quick else list(ARCHITECTURES)
    balancers = ("ew",) if args.quick else BALANCERS
    start = time.perf_counter()
    splits = census_income.load(args.data, seed=0)
    spec = FeatureSpec.from_frame(
        splits["train"].frame,
        numeric=census_income.NUMERIC,
        exclude=census_income.EXCLUDE,
    )
    data = {}
    for name, split in splits.items():
        encoded = spec.encode(split.frame)
        data[name] = (encoded.inputs, split.y)
    runs: dict[str, list[dict[str, float]]] = {}

    def record(key: str, scores: dict[str, float]) -> None:
        runs.setdefault(key, []).append(scores)
        print(
            f"  {key}: " + ", ".join(f"{t} {v:.4f}" for t, v in scores.items()),
            flush=True,
        )

    for seed in seeds:
        for task in TASKS:
            keras.utils.set_random_seed(seed)
            model = build_model(
                spec.inputs(),
                TabularEncoder(spec),
                [Task(task, hidden=TOWER)],
                architecture=architectures.SharedBottom(1, units=[64]),
            )
            record("single_task", train_and_score(model, data, args.epochs, None))
        for arch in archs:
            for balancer in balancers:
                keras.utils.set_random_seed(seed)
                model = build_model(
                    spec.inputs(),
                    TabularEncoder(spec),
                    [Task(t, hidden=TOWER) for t in TASKS],
                    architecture=ARCHITECTURES[arch](),
                )
                record(
                    f"{arch}/{balancer}",
                    train_and_score(model, data, args.epochs, balancer),
                )
    seconds = time.perf_counter() - start

    # Single-task runs hold one task each: merge them per seed.
    single_runs = runs.pop("single_task")
    single = {t: [r[t] for r in single_runs if t in r] for t in TASKS}
    baseline = {t: {"auc": float(np.mean(v))} for t, v in single.items()}
    rows = [("single-task (shared bottom, one task)", single, None)]
    for key, scores in runs.items():
        per_task = {t: [s[t] for s in scores] for t in TASKS}
        mean = {t: {"auc": float(np.mean(v))} for t, v in per_task.items()}
        rows.append((key, per_task, delta_m(mean, baseline, {"auc": True})))
    print()
    print(
        f"Census-Income, {len(splits['train'])} train / {len(splits['val'])} validation / "
        f"{len(splits['test'])} test rows (the UCI test split, split 60/20/20 with seed 0); "
        f"{len(seeds)} seed(s); backend {keras.backend.backend()}; machine "
        f"{platform.machine()}, {os.cpu_count()} cores; wall time {seconds / 60:.1f} min."
    )
    print()
    print("| model / balancer | income AUC | never-married AUC | Δm% vs single-task |")
    print("|---|---|---|---|")
    for key, per_task, dm in rows:
        cells = [
            f"{np.mean(per_task[t]):.4f} ± {np.std(per_task[t]):.4f}" for t in TASKS
        ]
        print(
            f"| {key} | {cells[0]} | {cells[1]} | {'' if dm is None else f'{dm:+.2f}'} |"
        )
    print()
    print(
        "Published (full data): "
        + "; ".join(f"{k} {v[0]:.4f} / {v[1]:.4f}" for k, v in PUBLISHED.items())
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "seconds": seconds,
                    "seeds": seeds,
                    "backend": keras.backend.backend(),
                    "rows": [{"model": k, "auc": v, "delta_m": d} for k, v, d in rows],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
