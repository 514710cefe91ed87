"""Trains a small partially labelled model under TensorFlow's
`MirroredStrategy` on N logical CPU devices and saves the final weights:
`python mirrored_worker.py N OUT.npz NAME,NAME,...` (a name is a balancer,
"none" for plain `compile`, or "skip": plain, `on_nonfinite="skip"`, one
input NaN in one replica's share of the second batch). A name whose
training raises saves its error message instead."""

from __future__ import annotations

import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

n = int(sys.argv[1])
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from worker_data import PARAMS, TASKS, problem  # noqa: E402

import keras_mtl  # noqa: E402
from keras_mtl import balancers  # noqa: E402

strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(n)])
assert strategy.num_replicas_in_sync == n

x, y = problem()
out = {}
for name in sys.argv[3].split(","):
    keras.utils.set_random_seed(3)
    with strategy.scope():
        shared = keras.layers.Dense(8, activation="tanh", name="shared")
        model = keras_mtl.build_model({"v": (6,)}, shared, TASKS)
        plain = name in ("none", "skip")
        balancer = None if plain else balancers.get(name, **PARAMS.get(name, {}))
        guard = "skip" if name == "skip" else "stop"
        model.compile(keras.optimizers.SGD(0.1), balancer=balancer, on_nonfinite=guard)
    inputs = x
    if name == "skip":
        inputs = {"v": x["v"].copy()}
        inputs["v"][28, 0] = np.nan
    try:
        history = model.fit(
            inputs, y, batch_size=16, epochs=2, shuffle=False, verbose=0
        )
    except Exception as error:  # noqa: BLE001
        out[f"{name}/error"] = np.array(str(error).splitlines()[0][:400])
        continue
    out[name] = np.concatenate([w.ravel() for w in model.get_weights()])
    out[f"{name}/loss"] = np.array(history.history["loss"])
np.savez(sys.argv[2], **out)
