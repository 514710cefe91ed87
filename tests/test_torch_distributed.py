"""PyTorch with a `torch.distributed` process group (gloo, two CPU
processes, each on its half of every batch): plain compile and every
loss-weighting balancer give the same update as one process on the whole
batches, with partially labelled tasks and a NaN on one process skipped
by both; the gradient methods refuse with a clear message."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_mtl import balancers

pytestmark = [
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.skipif(
        keras.backend.backend() != "torch",
        reason="torch.distributed process groups run on the PyTorch backend",
    ),
]
WORKER = Path(__file__).with_name("torch_ddp_worker.py")
LOSS_LEVEL = [k for k, b in balancers.BALANCERS.items() if b.level == "loss"]
NAMES = ["none", "skip", *LOSS_LEVEL, "pcgrad"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(worlds: list[int], tmp: Path) -> list[tuple[dict[str, np.ndarray], str]]:
    """Runs one process group per world size, side by side; each group's
    results and its processes' stderr."""
    groups = []
    for world in worlds:
        port, out = str(_free_port()), tmp / f"world{world}.npz"
        procs = [
            subprocess.Popen(
                [sys.executable, str(WORKER), str(rank), str(world), port, str(out)]
                + [",".join(NAMES)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for rank in range(world)
        ]
        groups.append((out, procs))
    results = []
    for out, procs in groups:
        errors = ""
        for proc in procs:
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-3000:]
            errors += err
        with np.load(out) as f:
            results.append(({k: f[k] for k in f.files}, errors))
    return results


def test_loss_weighting_updates_alike_in_1_and_2_processes(tmp_path):
    (one, _), (two, errors) = _run([1, 2], tmp_path)
    for name in NAMES[:-1]:
        assert name in one and name in two, two.get(f"{name}/error")
        np.testing.assert_allclose(two[name], one[name], atol=2e-6, err_msg=name)
        # The reported loss is the whole batch's too.
        np.testing.assert_allclose(
            two[f"{name}/loss"], one[f"{name}/loss"], rtol=1e-5, err_msg=name
        )
    assert not np.allclose(one["ew"], one["fixed"])
    # The NaN on one process is skipped by both, the weights stay finite.
    assert np.isfinite(two["skip"]).all()
    assert not np.allclose(one["skip"], one["none"])
    assert "pcgrad" in one
    message = str(two["pcgrad/error"])
    assert "'pcgrad'" in message and "2 processes of torch.distributed" in message
    assert "rank 1, pcgrad/error" in errors  # both processes refuse
    # One process may evaluate alone (no process waits for the others).
    np.testing.assert_allclose(two["none/evaluate"], one["none/evaluate"], rtol=1e-5)
