"""What the gradient methods' reduction costs per step across processes.

Trains one model with equal weighting and with gradient methods in a
`torch.distributed` process group (gloo, on this machine's CPU) of 1 and of 2
processes, one group after the other, each process on its share of every
global batch of 64, and prints each step's median time, its ratio to the
same group's equal-weighting step, the numbers each step's collectives send
(docs/distribution.md#gradient-methods-across-replicas) and the time of one
all-reduce of the shared rows alone. The model: `MLPEncoder((256, 256))` on
128 features, 4 sigmoid heads (98,816 shared weights; their rows: 1.5 MiB).

    python benchmarks/replica_cost.py [--steps 20] [--methods ew,upgrad,...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys

WORKER = r"""
import json, os, sys, time
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np
import torch
import torch.distributed as dist
import keras
from keras_mtl import Task, build_model, balancers
from keras_mtl.backend import torch as torch_prims
from keras_mtl.encoders import MLPEncoder

rank, world, port, steps, methods = json.loads(sys.argv[1])
if world > 1:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
torch.set_num_threads(max(1, 2 // world))
TASKS = 4
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 128)).astype("float32")
y = {f"t{i}": (x[:, i] > 0).astype("float32") for i in range(TASKS)}
share = 64 // world
mine = slice(rank * share, (rank + 1) * share)
out = {}
for name in methods:
    key, _, mode = name.partition("@")
    keras.utils.set_random_seed(0)
    model = build_model({"v": (128,)}, MLPEncoder((256, 256)),
                        [Task(f"t{i}") for i in range(TASKS)])
    kwargs = {} if key == "ew" else {"balancer": balancers.get(key)}
    if mode:
        kwargs["balance_mode"] = mode
    model.compile(keras.optimizers.SGD(0.01), **kwargs)
    xs, ys = {"v": x[mine]}, {k: v[mine] for k, v in y.items()}
    for _ in range(3):
        model.train_on_batch(xs, ys)
    times = []
    for _ in range(steps):
        if world > 1:
            dist.barrier()
        start = time.perf_counter()
        model.train_on_batch(xs, ys)
        times.append(time.perf_counter() - start)
    out[name] = float(np.median(times))
shared = 128 * 256 + 256 + 256 * 256 + 256
rows = torch.zeros((TASKS, shared))
times = []
for _ in range(steps):
    if world > 1:
        dist.barrier()
    start = time.perf_counter()
    torch_prims.all_sum([rows])
    times.append(time.perf_counter() - start)
out["all_sum"] = float(np.median(times))
out["shared"] = shared
if rank == 0:
    print(json.dumps(out))
if world > 1:
    dist.destroy_process_group()
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group(world: int, steps: int, methods: list[str]) -> dict:
    """Runs one process group; rank 0's measurements."""
    port = _port()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                json.dumps([r, world, port, steps, methods]),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for r in range(world)
    ]
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise SystemExit(err[-3000:])
    return json.loads(outs[0][0].strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--methods", default="ew,upgrad,pcgrad,mgda,upgrad@representation"
    )
    args = parser.parse_args()
    methods = args.methods.split(",")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}. PyTorch backend, gloo; global batch 64; "
        f"median of {args.steps} train_on_batch steps after 3 warm-up steps; "
        "each process has 2 / processes threads."
    )
    print()
    print("| processes | method | step ms | ratio to EW | sent per step |")
    print("|---|---|---|---|---|")
    tasks, heads = 4, 4 * 257
    results = {}
    for world in (1, 2):
        results[world] = r = group(world, args.steps, methods)
        p = r["shared"]
        for name in methods:
            if world == 1:
                sent = "-"
            elif name == "ew":
                n = 2 * tasks + p + heads
                sent = f"{n:,} floats ({n * 4 / 2**10:.0f} KiB)"
            elif name.endswith("@representation"):
                n = 2 * tasks + tasks * tasks + p + heads
                sent = f"{n:,} floats ({n * 4 / 2**10:.0f} KiB)"
            else:
                n = 2 * tasks + tasks * p + heads
                sent = f"{n:,} floats ({n * 4 / 2**20:.2f} MiB)"
            ratio = r[name] / r["ew"]
            print(f"| {world} | {name} | {r[name] * 1e3:.1f} | {ratio:.2f}x | {sent} |")
    two = results[2]
    print()
    print(
        f"One all-reduce of the shared rows alone (4 x {two['shared']:,} float32, "
        f"{4 * two['shared'] * 4 / 2**20:.2f} MiB) across 2 processes: "
        f"{two['all_sum'] * 1e3:.2f} ms."
    )


if __name__ == "__main__":
    main()
