"""Step time of every balancing method over equal weighting's, side by side.

For each backend (one process each) and each model, times training steps of
equal weighting (Keras's own step) and of every method, in the same process,
interleaved, and prints each method's step time divided by EW's. Models: the
seed (two tweets of 280 byte ids, a shared LSTM(64), 2 tasks) and the same
encoder with 10 heads. Batch 64.

    python benchmarks/step_time.py [--backends jax,tensorflow,torch]
        [--methods ew,pcgrad,...] [--steps 10] [--tasks 2,10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

WORKER = r"""
import json, sys, time
import numpy as np
import keras
from keras_mtl import Task, build_model, balancers
from keras_mtl.encoders import LSTMEncoder

methods, tasks_list, steps, length, modes = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
batch = 64

def model_for(num_tasks):
    inputs = {n: keras.Input((length,), dtype="uint8", name=n) for n in ("tweet_a", "tweet_b")}
    names = ["a_negative", "same_sentiment"] if num_tasks == 2 else [f"task_{i}" for i in range(num_tasks)]
    return build_model(inputs, LSTMEncoder(64, symbols="onehot", name="shared_lstm"),
                       [Task(n) for n in names], fusion="concatenate"), names

def time_method(num_tasks, method, mode):
    keras.utils.set_random_seed(0)
    model, names = model_for(num_tasks)
    kwargs = {} if method == "ew" else {"balancer": method, "balance_mode": mode}
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", **kwargs)
    x = {k: rng.integers(1, 256, (batch, length)).astype("uint8") for k in ("tweet_a", "tweet_b")}
    y = {t: rng.integers(0, 2, batch).astype("float32") for t in names}
    for _ in range(2):  # trace and warm up
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return float(np.median(times))

results = []
for num_tasks in tasks_list:
    base = []
    for method, mode in [("ew", "parameter")] + [(m, md) for m in methods for md in modes]:
        if method == "ew" and mode != "parameter":
            continue
        if mode == "representation" and method != "ew":
            cls = balancers.BALANCERS[method]
            if cls.level == "loss" or cls.not_at_representation:
                continue
        t = time_method(num_tasks, method, mode)
        if method == "ew":
            base.append(t)
        results.append({"tasks": num_tasks, "method": method, "mode": mode, "seconds": t})
    # EW again at the end: the reference is the mean of both EW runs.
    base.append(time_method(num_tasks, "ew", "parameter"))
    for r in results:
        if r["tasks"] == num_tasks:
            r["ew_seconds"] = float(np.mean(base))
print("RESULT " + json.dumps({"backend": keras.backend.backend(), "results": results}))
"""


def run(backend: str, payload: list) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(payload)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{backend} failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    from keras_mtl import balancers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    # `fixed` needs weights and costs what EW costs.
    parser.add_argument(
        "--methods", default=",".join(b for b in balancers.BALANCERS if b != "fixed")
    )
    parser.add_argument("--tasks", default="2,10")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--length", type=int, default=280)
    parser.add_argument("--modes", default="parameter,representation")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m != "ew"]
    payload = [
        methods,
        [int(t) for t in args.tasks.split(",")],
        args.steps,
        args.length,
        args.modes.split(","),
    ]
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}. Seed model (2 x {args.length} byte ids, shared "
        f"LSTM(64)), batch 64; step time = median of {args.steps} train_on_batch calls "
        "after 2 warm-up calls; ratio = step time / equal weighting's (mean of an EW "
        "run before and after the methods, same process)."
    )
    for backend in args.backends.split(","):
        out = run(backend, payload)
        print(f"\n### {out['backend']}\n")
        print("| method | mode | tasks | step s | EW step s | ratio |")
        print("|---|---|---|---|---|---|")
        for r in out["results"]:
            print(
                f"| {r['method']} | {r['mode']} | {r['tasks']} | {r['seconds']:.3f} | "
                f"{r['ew_seconds']:.3f} | {r['seconds'] / r['ew_seconds']:.2f}x |"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
