"""Trains a small partially labelled model under TensorFlow's
`MirroredStrategy` on N logical CPU devices and saves the final weights:
`python mirrored_worker.py N OUT.npz NAME,NAME,...` (names as
`worker_data.train_each` takes them)."""

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

import numpy as np  # noqa: E402
from worker_data import train_each  # noqa: E402

strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(n)])
assert strategy.num_replicas_in_sync == n
np.savez(sys.argv[2], **train_each(sys.argv[3].split(","), scope=strategy.scope))
