"""Training throughput of the seed model: padded vs length-bucketed batches,
and keras-mtl's `fit` vs a hand-written plain Keras loop, side by side.

All runs train the seed's Case 1 (shared LSTM(64) over two tweets of byte
ids, concatenation, two sigmoid heads; RMSprop, batch 64) on the same
embedded tweet pairs, one after the other in this process:

* `padded fit`: 280-byte inputs, `MultiTaskModel.fit` on the arrays;
* `plain loop`: the same model and batches through a hand-written loop of
  `train_on_batch` calls, the plain Keras way, no `fit`;
* `bucketed fit`: `length=None, skip_padding=True` and
  `keras_mtl.data.BucketedBatches` (default widths 64..280, per input);
* `bucketed fit (2 loader threads)`: the same with two threads preparing
  batches ahead (`workers=2`).

Throughput is training samples per second over the epochs after the first;
the first epoch's seconds (tracing and compiling every batch shape) are
shown apart. The final validation accuracy and AUC of every
run, over two seeds, say whether the bucketed runs learn the same.

    python benchmarks/pipeline.py [--pairs 4096] [--epochs 6] [--seeds 0,1]
        [--runs "padded fit,bucketed fit"]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_mtl.data import BucketedBatches
from keras_mtl.datasets import tweet_pairs
from keras_mtl.models.presets import TASKS, seed_case1

BATCH = 64


class _Clock(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.times.append(time.perf_counter() - self._start)


def _compile(model: keras.Model) -> keras.Model:
    model.compile(
        optimizer="rmsprop",
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    return model


def padded_fit(data: Any, epochs: int, seed: int) -> tuple[keras.Model, list[float]]:
    keras.utils.set_random_seed(seed)
    model = _compile(seed_case1(byte_ids=True))
    clock = _Clock()
    model.fit(
        data.train.x,
        data.train.y,
        batch_size=BATCH,
        epochs=epochs,
        verbose=0,
        callbacks=[clock],
    )
    return model, clock.times


def plain_loop(data: Any, epochs: int, seed: int) -> tuple[keras.Model, list[float]]:
    keras.utils.set_random_seed(seed)
    model = _compile(seed_case1(byte_ids=True))
    x, y = data.train.x, data.train.y
    n = len(next(iter(x.values())))
    rng = np.random.default_rng(seed)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = rng.permutation(n)
        for i in range(0, n, BATCH):
            rows = order[i : i + BATCH]
            model.train_on_batch(
                {k: v[rows] for k, v in x.items()}, {k: v[rows] for k, v in y.items()}
            )
        times.append(time.perf_counter() - start)
    return model, times


def bucketed(workers: int) -> Callable[..., tuple[keras.Model, list[float]]]:
    def run(data: Any, epochs: int, seed: int) -> tuple[keras.Model, list[float]]:
        keras.utils.set_random_seed(seed)
        model = _compile(seed_case1(byte_ids=True, length=None, skip_padding=True))
        batches = BucketedBatches(
            dict(data.train.x),
            dict(data.train.y),
            batch_size=BATCH,
            seed=seed,
            workers=workers,
        )
        clock = _Clock()
        model.fit(batches, epochs=epochs, verbose=0, callbacks=[clock])
        return model, clock.times

    return run


RUNS = {
    "padded fit": padded_fit,
    "plain loop": plain_loop,
    "bucketed fit": bucketed(workers=1),
    "bucketed fit (2 loader threads)": bucketed(workers=2),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4096)
    parser.add_argument("--val-pairs", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--runs", default=",".join(RUNS), help="which runs, by name")
    args = parser.parse_args()
    unknown = [n for n in args.runs.split(",") if n not in RUNS]
    if unknown:
        parser.error(f"--runs: no run {unknown[0]!r}; the runs are {', '.join(RUNS)}.")
    runs = {name: RUNS[name] for name in args.runs.split(",")}
    seeds = [int(s) for s in args.seeds.split(",")]
    data = tweet_pairs.load(
        seed=0, train_pairs=args.pairs, val_pairs=args.val_pairs, test_pairs=64
    )
    saved = BucketedBatches(dict(data.train.x), dict(data.train.y)).padding_saved()
    print(
        f"backend {keras.backend.backend()}, keras {keras.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{args.pairs} training pairs, {args.val_pairs} validation pairs, batch "
        f"{BATCH}, {args.epochs} epochs, seeds {seeds}; bucketing skips "
        f"{saved:.0%} of the padded steps"
    )
    rows = {}
    for name, run in runs.items():
        speeds, scores, firsts = [], [], []
        for seed in seeds:
            model, times = run(data, args.epochs, seed)
            steady = times[1:] or times
            speeds.append(args.pairs / statistics.median(steady))
            firsts.append(times[0])
            result = model.evaluate(
                data.val.x, data.val.y, batch_size=256, return_dict=True, verbose=0
            )
            scores.append({k: float(v) for k, v in result.items()})
        rows[name] = (statistics.median(speeds), scores, statistics.median(firsts))
        print(f"  {name}: {rows[name][0]:.0f} samples/s", flush=True)
    base = rows["padded fit"][0]
    header = "| run | samples/s | vs padded fit | first epoch s |"
    metrics = [f"{t}_{m}" for t in TASKS for m in ("accuracy", "auc")]
    print()
    print(header + "".join(f" val {m} |" for m in metrics))
    print("|---|---|---|---|" + "---|" * len(metrics))
    for name, (speed, scores, first) in rows.items():
        cells = [
            " / ".join(f"{s[m]:.4f}" for s in scores) for m in metrics
        ]  # one value per seed
        print(
            f"| {name} | {speed:.0f} | {speed / base:.2f}x | {first:.1f} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
