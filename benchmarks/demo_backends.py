"""Which backend runs `mtl demo` fastest on this machine.

Runs the demo's training and prediction work (Case 1, Case 2 and the pair
model, byte-id inputs of 280 bytes, batch 64) on each backend in its own
process, one after the other, and prints one table: seconds per phase, the
ratio to the fastest backend and each process's peak memory.

    python benchmarks/demo_backends.py [--pairs 1024] [--backends jax,torch,tensorflow]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

WORKER = r"""
import json, resource, sys, time
import numpy as np
import keras
from keras_mtl.runs.demo import MODELS
from keras_mtl.datasets import tweet_pairs

pairs = int(sys.argv[1])
data = tweet_pairs.load(seed=0, train_pairs=pairs, val_pairs=64, test_pairs=pairs)
out = {"backend": keras.backend.backend(), "models": {}}
for key, (label, factory) in MODELS.items():
    keras.utils.set_random_seed(0)
    model = factory(byte_ids=True)
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    # First epoch includes tracing/compilation; the second is steady state.
    t0 = time.perf_counter()
    model.fit(data.train.x, data.train.y, batch_size=64, epochs=1, verbose=0)
    t1 = time.perf_counter()
    model.fit(data.train.x, data.train.y, batch_size=64, epochs=1, verbose=0)
    t2 = time.perf_counter()
    model.predict(data.test.x, batch_size=256, verbose=0)
    t3 = time.perf_counter()
    out["models"][key] = {"first_epoch": t1 - t0, "epoch": t2 - t1, "predict": t3 - t2}
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps(out))
"""


def run(backend: str, pairs: int) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(pairs)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"{backend} failed:\n{proc.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1024)
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    args = parser.parse_args()
    results = [run(b, args.pairs) for b in args.backends.split(",")]
    steady = {
        r["backend"]: sum(m["epoch"] for m in r["models"].values()) for r in results
    }
    fastest = min(steady.values())
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.pairs} training pairs of 280 byte ids, "
        "batch 64, one epoch after a warm-up epoch, per model."
    )
    print()
    print(
        "| backend | Case 1 epoch s | Case 2 epoch s | pair epoch s | all 3 epochs s "
        "| vs fastest | first epochs s | predict s | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        m = r["models"]
        print(
            f"| {r['backend']} | {m['case1']['epoch']:.2f} | {m['case2']['epoch']:.2f} "
            f"| {m['pair']['epoch']:.2f} | {steady[r['backend']]:.2f} "
            f"| {steady[r['backend']] / fastest:.2f}x "
            f"| {sum(v['first_epoch'] for v in m.values()):.2f} "
            f"| {sum(v['predict'] for v in m.values()):.2f} | {r['peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
