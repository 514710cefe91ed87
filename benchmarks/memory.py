"""Peak host memory: a million byte-encoded tweet pairs, `mtl demo`, and the
Census-Income benchmark.

Each job runs in its own process, one after the other; its peak resident
memory is the kernel's count for that process (`wait4`'s `ru_maxrss`),
imports and all.

* `pairs`: `keras_mtl.datasets.tweet_pairs.load` draws `--pairs` training
  pairs from the embedded tweets as uint8 byte ids (280 per tweet), then
  cuts them into length-bucketed batches (`BucketedBatches`) and reads one
  epoch's worth of them, as training would;
* `packed`: the same with `load(packed=True)`: each tweet's bytes stored
  once (`PackedTexts`), padded only when a batch is cut;
* `demo`: `mtl demo` as `make demo` runs it (TensorFlow);
* `census`: `benchmarks/census_income.py --quick` (JAX; the full run trains
  more models one after the other on the same data).

    python benchmarks/memory.py [--pairs 1000000] [--jobs pairs,packed,demo,census]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PAIRS = r"""
import resource, sys, time
import numpy as np
from keras_mtl.data import BucketedBatches
from keras_mtl.datasets import tweet_pairs

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

imported = peak()

n, packed = int(sys.argv[1]), sys.argv[2] == "packed"
t = time.perf_counter()
data = tweet_pairs.load(
    seed=0, train_pairs=n, val_pairs=1000, test_pairs=1000, packed=packed
)
x, y = data.train.x, data.train.y
arrays = sum(a.nbytes for a in [*x.values(), *y.values()])
batches = BucketedBatches(dict(x), dict(y), batch_size=64)
seen = sum(len(batches[i][0]["tweet_a"]) for i in range(len(batches)))
assert seen == n, seen
one_hot = sum(len(a) * a.shape[1] for a in x.values()) * 256 * 4
print(f"RESULT {arrays / 2**20:.0f} MiB of arrays for {n} pairs "
      f"(as the seed's float one-hot: {one_hot / 2**30:.0f} GiB); Keras and "
      f"JAX imported: {imported:.0f} MiB, so the data took "
      f"{peak() - imported:.0f} MiB at peak; "
      f"{len(batches)} bucketed batches read in {time.perf_counter() - t:.0f} s")
"""


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(peak MiB, seconds, the job's RESULT line or output tail)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{text[-3000:]}")
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    note = lines[-1][len("RESULT ") :] if lines else ""
    return usage.ru_maxrss / 1024, seconds, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--jobs", default="pairs,packed,demo,census")
    args = parser.parse_args()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    python = sys.executable
    mtl = str(Path(python).with_name("mtl"))
    jobs = {
        "pairs": (
            f"{args.pairs:,} tweet pairs, byte ids (pairs, 280), bucketed (JAX)",
            [python, "-c", PAIRS, str(args.pairs), "padded"],
            {"KERAS_BACKEND": "jax"},
        ),
        "packed": (
            f"{args.pairs:,} tweet pairs, `PackedTexts`, bucketed (JAX)",
            [python, "-c", PAIRS, str(args.pairs), "packed"],
            {"KERAS_BACKEND": "jax"},
        ),
        "demo": (
            "`mtl demo` (TensorFlow, 18,000 training pairs)",
            [mtl, "demo", "--out", tempfile.mkdtemp()],
            {"KERAS_BACKEND": "tensorflow"},
        ),
        "census": (
            "Census-Income benchmark, --quick (JAX)",
            [python, "benchmarks/census_income.py", "--quick"],
            {"KERAS_BACKEND": "jax"},
        ),
    }
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print("| job | peak memory | wall time | notes |")
    print("|---|---|---|---|")
    for key in args.jobs.split(","):
        label, command, extra = jobs[key]
        peak, seconds, note = measure(command, {**env, **extra})
        print(f"| {label} | {peak:,.0f} MiB | {seconds:.0f} s | {note} |", flush=True)


if __name__ == "__main__":
    main()
