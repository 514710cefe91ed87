"""One process of a 2-process `torch.distributed` (gloo) group training the
small partially labelled problem with PCGrad, Adam and a checkpoint every
step: `python torch_resume_worker.py RANK WORLD PORT DIR OUT.npz [SLOW]`.
With SLOW, each step sleeps that many seconds (so that the test can kill the
group between checkpoints). Rank 0 saves the final weights and the step the
run resumed from (0: a fresh start)."""

from __future__ import annotations

import os
import sys
import time

os.environ["KERAS_BACKEND"] = "torch"
rank, world, port = (int(a) for a in sys.argv[1:4])
folder, out = sys.argv[4], sys.argv[5]
slow = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch.distributed  # noqa: E402
from worker_data import TASKS, problem  # noqa: E402

import keras_mtl  # noqa: E402
from keras_mtl import balancers  # noqa: E402
from keras_mtl.callbacks import Checkpoint  # noqa: E402

os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
share = 16 // world
x, y = problem()
mine = np.concatenate(
    [np.arange(s + rank * share, s + (rank + 1) * share) for s in (0, 16)]
)


class Slow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch: int, logs: object = None) -> None:
        time.sleep(slow)


keras.utils.set_random_seed(3)
shared = keras.layers.Dense(8, activation="tanh", name="shared")
model = keras_mtl.build_model({"v": (6,)}, shared, TASKS)
model.compile(keras.optimizers.Adam(0.05), balancer=balancers.get("pcgrad"))
checkpoint = Checkpoint(folder, every=1, keep=2)
callbacks = [checkpoint] + ([Slow()] if slow else [])
model.fit(
    {"v": x["v"][mine]},
    {k: v[mine] for k, v in y.items()},
    batch_size=share,
    epochs=6,
    callbacks=callbacks,
    verbose=0,
)
if rank == 0:
    weights = np.concatenate([w.ravel() for w in model.get_weights()])
    np.savez(out, weights=weights, resumed=np.array(checkpoint.restored))
torch.distributed.destroy_process_group()
