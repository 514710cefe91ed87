"""Training through `keras.distribution` (JAX): a balancing method of every
kind of step gives the same update on 2 and 4 devices as on one for the same
global batch, with
the batch split (DataParallel) and with the shared encoder's kernel split as
well (ModelParallel on a 2 x 2 mesh). Each device count runs in its own
process: XLA fixes the number of virtual CPU devices when it starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from backend_cover import STEP_KINDS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        keras.backend.backend() != "jax",
        reason="keras.distribution shards data and models on JAX only",
    ),
]
WORKER = Path(__file__).with_name("distribution_worker.py")
#: On 4 devices and the 2 x 2 mesh: a method of each level (loss, Gramian,
#: Jacobian), with learned parameters, a random draw, a host solver and
#: state.
SUBSET = "ew,uw,pcgrad,upgrad,nash_mtl,moco"
#: On 1 and 2 devices: those and one method of every kind of step
#: (`backend_cover.STEP_KINDS`). The methods' own arithmetic is NumPy on the
#: host, the same for every device count (and checked for every method in
#: `test_balancer_values` and `test_balancer_properties`); what the devices
#: change is the step around it, which these kinds cover.
KINDS = ",".join(sorted(set(SUBSET.split(",")) | set(STEP_KINDS)))


def _start(kind: str, out: Path, names: str | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    cmd = [sys.executable, str(WORKER), kind, str(out)]
    return subprocess.Popen(
        cmd + ([names] if names else []),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen, out: Path) -> dict[str, np.ndarray]:
    _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr[-3000:]
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def test_every_balancer_updates_alike_on_1_2_4_devices_and_sharded(tmp_path):
    # The four device counts run side by side, each in its own process.
    kinds = {"1": KINDS, "2": KINDS, "4": SUBSET, "4-model": SUBSET}
    procs = {k: _start(k, tmp_path / f"{k}.npz", names) for k, names in kinds.items()}
    one, two, four, sharded = (_result(procs[k], tmp_path / f"{k}.npz") for k in kinds)
    trained = {k.split("/")[0] for k in one if k.endswith("/parameter")}
    assert trained == set(KINDS.split(","))
    for name, weights in one.items():
        # Only the order of the cross-device sums differs.
        np.testing.assert_allclose(two[name], weights, atol=2e-6, err_msg=name)
        for other in (four, sharded):
            if name in other:
                np.testing.assert_allclose(
                    other[name], weights, atol=2e-6, err_msg=name
                )
    assert len(four) == len(sharded) == len(SUBSET.split(",")) + 2
    # The runs moved the weights: equal updates are not equal non-updates.
    assert not np.allclose(one["ew/parameter"], one["upgrad/parameter"])
