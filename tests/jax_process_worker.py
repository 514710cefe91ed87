"""One of N JAX processes (`jax.distributed.initialize`, gloo collectives
on the CPU, one CPU device each) training the small partially labelled
problem under `keras.distribution`, each process feeding its share of every
batch of 16: `python jax_process_worker.py INDEX N PORT KIND OUT.npz NAMES`,
KIND `data` (DataParallel over every process's device) or `model` (a 2 x
N/2 mesh, the shared encoder's kernel split over its "model" axis). N = 1
trains alone, without `jax.distributed`. Process 0 saves the final weights
(names as `worker_data.train_each` takes them)."""

from __future__ import annotations

import os
import sys

index, n, port = (int(a) for a in sys.argv[1:4])
kind, out, names = sys.argv[4], sys.argv[5], sys.argv[6].split(",")
os.environ["KERAS_BACKEND"] = "jax"
flags = [
    f
    for f in os.environ.get("XLA_FLAGS", "").split()
    if not f.startswith("--xla_force_host_platform_device_count")
]
os.environ["XLA_FLAGS"] = " ".join(flags)

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
import keras  # noqa: E402
import numpy as np  # noqa: E402

if n > 1:
    keras.distribution.initialize(
        job_addresses=f"127.0.0.1:{port}", num_processes=n, process_id=index
    )
    devices = keras.distribution.list_devices()
    assert len(devices) == n and jax.process_count() == n, devices
    from worker_data import sharded

    if kind == "model":
        distribution = sharded(devices, n)
    else:
        distribution = keras.distribution.DataParallel(devices=devices)
    # Each process feeds its own share of every batch.
    distribution.auto_shard_dataset = False
    keras.distribution.set_distribution(distribution)

from worker_data import train_each  # noqa: E402

from keras_mtl import backend as keras_mtl_backend  # noqa: E402


def rows(samples: np.ndarray) -> np.ndarray:
    """This process's slice of every batch of 16, in order."""
    if kind == "model":
        # Processes along the "model" axis hold the same batch rows.
        part, parts = index // (n // 2), 2
    else:
        part, parts = index, n
    size = 16 // parts
    return np.concatenate(
        [samples[s + part * size : s + (part + 1) * size] for s in range(0, 32, 16)]
    )


def checkpointed(name: str, model: object) -> dict[str, np.ndarray]:
    """UPGrad's model, saved by `Checkpoint` (process 0 writes; weights
    split over processes are gathered) and read back."""
    if name != "upgrad":
        return {}
    from keras_mtl.callbacks import Checkpoint

    checkpoint = Checkpoint(out + ".ckpt")
    checkpoint.set_model(model)
    path = checkpoint.save(2, 0)
    keras_mtl_backend.barrier()
    with np.load(path) as f:
        saved = [f[k].ravel() for k in sorted(f.files) if k.startswith("model/")]
    return {"upgrad/checkpoint": np.concatenate(saved)}


result = train_each(
    names,
    rows=rows,
    batch_size=16 // (2 if kind == "model" and n > 1 else n),
    after=checkpointed,
)
if index == 0:
    np.savez(out, **result)
for key in result:
    if key.endswith("/error"):
        print(f"process {index}, {key}: {result[key]}", file=sys.stderr)
