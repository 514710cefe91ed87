"""One process of a `torch.distributed` (gloo) group training a small
partially labelled model on its share of every batch of 16:
`python torch_ddp_worker.py RANK WORLD PORT OUT.npz NAME,NAME,...` (names
as `worker_data.train_each` takes them; WORLD 1 trains alone, without a
process group). Rank 0 saves the final weights."""

from __future__ import annotations

import os
import sys

os.environ["KERAS_BACKEND"] = "torch"
rank, world, port = (int(a) for a in sys.argv[1:4])

import numpy as np  # noqa: E402
import torch.distributed  # noqa: E402
from worker_data import problem, train_each  # noqa: E402

if world > 1:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
share = 16 // world


def rows(index: np.ndarray) -> np.ndarray:
    """This rank's slice of every batch of 16, in order."""
    return np.concatenate(
        [index[s + rank * share : s + (rank + 1) * share] for s in range(0, 32, 16)]
    )


def evaluate_alone(name: str, model: object) -> dict[str, np.ndarray]:
    """Rank 0 evaluates on every sample while the others wait."""
    if rank != 0 or name != "none":
        return {}
    x, y = problem()
    loss = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)["loss"]
    return {"none/evaluate": np.array(loss)}


out = train_each(
    sys.argv[5].split(","), rows=rows, batch_size=share, after=evaluate_alone
)
if rank == 0:
    np.savez(sys.argv[4], **out)
for key in out:
    if key.endswith("/error"):
        print(f"rank {rank}, {key}: {out[key]}", file=sys.stderr)
if world > 1:
    torch.distributed.destroy_process_group()
