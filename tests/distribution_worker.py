"""Trains a small model with every balancing method on virtual CPU devices
and saves the final weights:
`python distribution_worker.py KIND OUT.npz [NAME,NAME,...]`, KIND one of
1, 2, 4 (data parallel) or 4-model (a 2 x 2 mesh, the shared encoder's
kernel split over the "model" axis)."""

from __future__ import annotations

import os
import sys

kind = sys.argv[1]
n = int(kind.split("-")[0])
# The parent's other XLA flags (the test run's optimisation level) stay.
flags = [
    f
    for f in os.environ.get("XLA_FLAGS", "").split()
    if not f.startswith("--xla_force_host_platform_device_count")
]
os.environ["XLA_FLAGS"] = " ".join(
    [*flags, f"--xla_force_host_platform_device_count={n}"]
)
os.environ["KERAS_BACKEND"] = "jax"

import keras  # noqa: E402
import numpy as np  # noqa: E402
from worker_data import PARAMS, TASKS, problem, sharded  # noqa: E402

import keras_mtl  # noqa: E402
from keras_mtl import balancers  # noqa: E402

if n > 1:
    devices = keras.distribution.list_devices("cpu")
    assert len(devices) == n, devices
    if kind.endswith("-model"):
        distribution = sharded(devices, n)
    else:
        distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)

x, y = problem()
names = sys.argv[3].split(",") if len(sys.argv) > 3 else list(balancers.BALANCERS)
runs = [(name, "parameter") for name in names]
runs += [("upgrad", "representation"), ("mgda", "representation")]
out = {}
for name, mode in runs:
    keras.utils.set_random_seed(3)
    shared = keras.layers.Dense(8, activation="tanh", name="shared")
    model = keras_mtl.build_model({"v": (6,)}, shared, TASKS)
    kwargs = {} if mode == "parameter" else {"balance_mode": mode}
    balancer = balancers.get(name, **PARAMS.get(name, {}))
    model.compile(keras.optimizers.SGD(0.1), balancer=balancer, **kwargs)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    if kind.endswith("-model"):
        spec = tuple(shared.kernel.value.sharding.spec)
        assert spec == (None, "model"), spec
    out[f"{name}/{mode}"] = np.concatenate([w.ravel() for w in model.get_weights()])
np.savez(sys.argv[2], **out)
