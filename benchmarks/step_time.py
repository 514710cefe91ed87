"""Step time of every balancing method over equal weighting's, side by side.

For each backend (one process each) and each model, times training steps of
equal weighting (Keras's own step) and of every method, in the same process,
in alternating blocks (5 rounds of EW's block then the method's), and prints
the median over rounds of each method's step time divided by EW's, with the
range over rounds. Batch 64.
Models (`--model`, comma-separated):

* `lstm`: two tweets of 280 byte ids through one shared `LSTMEncoder(64)`
  (one-hot symbols: the seed's weights), concatenated; 2 or 10 sigmoid heads;
* `seed`: the seed's own model as its user writes it (`presets.seed_case1()`:
  Keras's `LSTM` layer over float one-hot input of (280, 256)); 2 tasks;
* `conv`: a user's own Keras trunk, `Sequential([Conv2D(16), MaxPool,
  Conv2D(32), MaxPool, Flatten, Dense(64)])` on 28x28x1; 3 or 10 softmax
  heads of 10 classes;
* `transformer`: the TweetEval Transformer (`TransformerEncoder(64, heads=4,
  ff_dim=128)` over a 32-wide byte embedding, 160 bytes); its 4 tasks
  (emotion's 4 classes, hate, irony, offensive);
* `ngrams`: the default text encoder (`NgramEncoder()`: hashed byte 3-5
  grams, words and word bigrams over a 2^17 x 64 embedding, 280 bytes) with
  TweetEval's 4 tasks (the shared Jacobian: 32 MiB per task);
* `mlp`: `MLPEncoder((256, 128))` on 128 features; 2 or 10 sigmoid heads;
* `wide`: `MLPEncoder((1024, 1024))` on 1024 features; 2 or 10 sigmoid heads
  (the shared variables' Jacobian: 8 MiB per task).

A method written `name@k` (`upgrad@4`) recomputes its weights every k steps
(`update_every=k`) and reuses them in between; its step time is the mean
over whole periods of k steps.

With `--memory` (JAX), also each step's peak working memory: the temporary
buffers XLA assigns to the compiled step (variables and batch excluded),
next to the size of the shared variables' full Jacobian (tasks x shared
parameters x 4 bytes), which a Gramian method need not hold.
With `--anchor`, `benchmarks/anchor_torchjd.py` times the same models in
native PyTorch with torchjd in the same invocation, after the backends.

    python benchmarks/step_time.py [--model lstm,conv,...] [--backends jax,...]
        [--methods ew,pcgrad,...] [--steps 10] [--tasks 2,10] [--memory] [--anchor]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import json, sys, time
import numpy as np
import keras
from keras import layers
from keras_mtl import Task, build_model, balancers, presets
from keras_mtl.encoders import LSTMEncoder, MLPEncoder, NgramEncoder, TransformerEncoder

model_name, methods, tasks_list, steps, length, modes, memory = json.loads(sys.argv[1])
batch = 64
TWEETEVAL = [Task("emotion", "multiclass", num_classes=4), Task("hate"),
             Task("irony"), Task("offensive")]


def conv_trunk():
    # The user's own Keras layers, as they would write them.
    return keras.Sequential([
        layers.Conv2D(16, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(64, activation="relu")], name="trunk")


def model_for(num_tasks):
    names = [f"task_{i}" for i in range(num_tasks)]
    if model_name == "seed":
        names = ["a_negative", "same_sentiment"]
        return presets.seed_case1(tasks=names, length=length), names, "onehot"
    if model_name == "lstm":
        if num_tasks == 2:
            names = ["a_negative", "same_sentiment"]
        inputs = {n: keras.Input((length,), dtype="uint8", name=n) for n in ("tweet_a", "tweet_b")}
        encoder = LSTMEncoder(64, symbols="onehot", name="shared_lstm")
        return build_model(inputs, encoder, [Task(n) for n in names]), names, "bytes"
    if model_name == "conv":
        inputs = {"image": keras.Input((28, 28, 1), name="image")}
        tasks = [Task(n, "multiclass", num_classes=10) for n in names]
        return build_model(inputs, conv_trunk(), tasks), names, "image"
    if model_name == "transformer":
        tasks = TWEETEVAL if num_tasks == 4 else [Task(n) for n in names]
        inputs = {"text": keras.Input((length,), dtype="uint8", name="text")}
        encoder = TransformerEncoder(64, heads=4, ff_dim=128, max_length=length,
                                     symbols="embedding", embedding_dim=32)
        return build_model(inputs, encoder, tasks), [t.name for t in tasks], "bytes"
    if model_name == "ngrams":
        inputs = {"text": keras.Input((length,), dtype="uint8", name="text")}
        model = build_model(inputs, NgramEncoder(), TWEETEVAL)
        return model, [t.name for t in TWEETEVAL], "text"
    if model_name in ("mlp", "wide"):
        width, units = (128, (256, 128)) if model_name == "mlp" else (1024, (1024, 1024))
        inputs = {"features": keras.Input((width,), name="features")}
        return build_model(inputs, MLPEncoder(units), [Task(n) for n in names]), names, "features"
    raise SystemExit(f"unknown model {model_name!r}")


def batch_for(model, names, kind, rng):
    x = {}
    for t in model.inputs:
        if kind == "onehot":
            x[t.name] = np.eye(256, dtype="float32")[rng.integers(1, 256, (batch, length))]
        elif kind == "text":  # letters, about one byte in five a space
            words = rng.integers(97, 123, (batch, length))
            words[rng.random((batch, length)) < 0.2] = 32
            x[t.name] = words.astype("uint8")
        elif kind == "bytes":
            x[t.name] = rng.integers(1, 256, (batch, length)).astype("uint8")
        else:
            x[t.name] = rng.normal(size=(batch, *t.shape[1:])).astype("float32")
    y = {}
    for task in model.tasks:
        if task.kind == "multiclass":
            y[task.name] = rng.integers(0, task.num_classes, batch).astype("int32")
        else:
            y[task.name] = rng.integers(0, 2, batch).astype("float32")
    return x, y


def temp_bytes(model, x, y):
    # Peak working memory of the compiled step (XLA's buffer assignment:
    # temporaries only, not the variables or the batch).
    import jax
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 optimizer_variables=True, metrics_variables=True)
    compiled = jax.jit(model.train_step).lower(state, (x, y)).compile()
    return int(compiled.memory_analysis().temp_size_in_bytes)


def prepared(num_tasks, method, mode):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model, names, kind = model_for(num_tasks)
    name, _, every = method.partition("@")
    kwargs = {} if name == "ew" else {"balancer": name, "balance_mode": mode}
    if every:
        kwargs["update_every"] = int(every)
    model.compile(optimizer="rmsprop", **kwargs)
    x, y = batch_for(model, names, kind, rng)
    for _ in range(2):  # trace and warm up
        model.train_on_batch(x, y)
    start = time.perf_counter()
    model.train_on_batch(x, y)
    return model, x, y, int(every or 1), time.perf_counter() - start


def block(run, calls):
    # One step's time over `calls` train_on_batch calls: the median, or with
    # update_every=k the mean (the median would pick the cheap steps).
    model, x, y, every, _ = run
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return float(np.mean(times) if every > 1 else np.median(times))


def side_by_side(ew, run):
    # Rounds of EW's block then the method's: drift between rounds cancels in
    # each round's ratio. Blocks last >= 0.2 s (at least `steps` calls; whole
    # periods with update_every).
    every = run[3]
    calls = max(steps, int(np.ceil(0.2 / max(min(ew[4], run[4]), 1e-4))))
    calls = -(-calls // every) * every
    base, times = [], []
    for _ in range(ROUNDS):
        base.append(block(ew, calls))
        times.append(block(run, calls))
    ratios = np.array(times) / np.array(base)
    return float(np.median(times)), float(np.median(base)), ratios


ROUNDS = 5
results = []
for num_tasks in tasks_list:
    ew = prepared(num_tasks, "ew", "parameter")
    ew_mem = temp_bytes(ew[0], ew[1], ew[2]) if memory and keras.backend.backend() == "jax" else None
    for method, mode in [("ew", "parameter")] + [(m, md) for m in methods for md in modes]:
        if method == "ew" and mode != "parameter":
            continue
        if mode == "representation" and method != "ew":
            cls = balancers.BALANCERS[method.partition("@")[0]]
            if cls.level == "loss" or cls.not_at_representation:
                continue
        # EW against a second EW model: the noise floor of the ratios.
        run = prepared(num_tasks, method, mode)
        seconds, ew_seconds, ratios = side_by_side(ew, run)
        model = run[0]
        mem = (
            temp_bytes(model, run[1], run[2])
            if memory and keras.backend.backend() == "jax" else None
        )
        shared = model._balancing.split.shared if model._balancing else []
        jac = num_tasks * sum(int(np.prod(v.shape)) for v in shared) * 4
        results.append({"tasks": num_tasks, "method": method, "mode": mode,
                        "seconds": seconds, "ew_seconds": ew_seconds,
                        "ratio": float(np.median(ratios)),
                        "low": float(ratios.min()), "high": float(ratios.max()),
                        "temp_bytes": mem, "ew_temp_bytes": ew_mem,
                        "jacobian_bytes": jac})
        del run, model
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


TASKS = {
    "lstm": "2,10",
    "seed": "2",
    "conv": "3,10",
    "transformer": "4",
    "ngrams": "4",
    "mlp": "2,10",
    "wide": "2,10",
}
LENGTH = {"lstm": 280, "seed": 280, "transformer": 160, "ngrams": 280}


def main() -> None:
    from keras_mtl import balancers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--backends", default="jax,tensorflow,torch")
    # `fixed` needs weights and costs what EW costs.
    parser.add_argument(
        "--methods", default=",".join(b for b in balancers.BALANCERS if b != "fixed")
    )
    parser.add_argument("--tasks", default=None, help="default: per model")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--length", type=int, default=None)
    parser.add_argument("--modes", default="parameter,representation")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--anchor", action="store_true")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m != "ew"]
    models = args.model.split(",")
    unknown = [m for m in models if m not in TASKS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; models are {', '.join(TASKS)}")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}. Batch 64; 5 rounds, each a block of equal "
        f"weighting's train_on_batch calls then the method's (>= {args.steps} calls "
        "and >= 0.2 s a block, after 2 warm-up calls); step time = median of a "
        "block's calls; ratio = median over rounds of method / EW (the range "
        "over rounds beside it; the `ew` row times a second EW model: the noise "
        "floor)."
    )
    for model in models:
        tasks = args.tasks or TASKS[model]
        payload = [
            model,
            methods,
            [int(t) for t in tasks.split(",")],
            args.steps,
            args.length or LENGTH.get(model, 0),
            args.modes.split(","),
            args.memory,
        ]
        for backend in args.backends.split(","):
            out = run(backend, payload)
            print(f"\n### {model}, {out['backend']}\n")
            memory = any(r["temp_bytes"] is not None for r in out["results"])
            extra = " | temp MiB | memory ratio | Jacobian MiB" if memory else ""
            print(
                "| method | mode | tasks | step s | EW step s | ratio | range"
                + extra
                + " |"
            )
            print("|---|---|---|---|---|---|---|" + ("---|---|---|" if memory else ""))
            for r in out["results"]:
                row = (
                    f"| {r['method']} | {r['mode']} | {r['tasks']} | {r['seconds']:.4f} | "
                    f"{r['ew_seconds']:.4f} | {r['ratio']:.2f}x | "
                    f"{r['low']:.2f}-{r['high']:.2f} |"
                )
                if memory:
                    base = max(r["ew_temp_bytes"], 1)
                    row += f" {r['temp_bytes'] / 2**20:.1f} | {r['temp_bytes'] / base:.2f}x |"
                    row += (
                        f" {r['jacobian_bytes'] / 2**20:.1f} |"
                        if r["jacobian_bytes"]
                        else " |"
                    )
                print(row)
            sys.stdout.flush()
    if args.anchor:
        anchor = [sys.executable, str(Path(__file__).with_name("anchor_torchjd.py"))]
        anchor += ["--model", args.model, "--steps", str(args.steps)]
        if args.tasks:
            anchor += ["--tasks", args.tasks]
        subprocess.run(anchor, check=False)


if __name__ == "__main__":
    main()
