"""Training with several JAX processes, one per host (or accelerator)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras


def join(coordinator: str, count: int, index: int) -> None:
    """Joins `count` JAX processes (this one is `index`) and trains data
    parallel over every process's devices: `keras.distribution.initialize`
    with process 0 at `coordinator` ("host:port"), then a `DataParallel`
    distribution in which each process feeds its own share of every batch
    (`keras_mtl.data.shares`). Call it in every process before anything
    builds a model; `mtl train --processes` calls it.

    On CPU hosts the processes exchange data through gloo collectives.
    """
    if keras.backend.backend() != "jax":
        raise ValueError(
            f"several processes need the JAX backend (KERAS_BACKEND=jax), got "
            f"{keras.backend.backend()!r}; on PyTorch start with torchrun and a "
            "torch.distributed process group (docs/distribution.md)."
        )
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"the coordinator must be process 0's HOST:PORT, got {coordinator!r}."
        )
    if count < 1 or not 0 <= index < count:
        raise ValueError(
            f"the process index must be in 0..{count - 1} for {count} processes, "
            f"got {index}."
        )
    import jax

    # CPU hosts have no collectives of their own (accelerators ignore this).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(
        job_addresses=coordinator, num_processes=count, process_id=index
    )
    distribution = keras.distribution.DataParallel(
        devices=keras.distribution.list_devices()
    )
    distribution.auto_shard_dataset = False
    keras.distribution.set_distribution(distribution)


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Work that one process does by itself (process 0 writing the model):
    outside the distribution, under which creating a variable (as Keras's
    saving does) is a collective every process would have to join."""
    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(distribution)
