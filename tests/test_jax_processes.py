"""Several JAX processes (`jax.distributed.initialize`, gloo collectives on
the CPU, one CPU device per process: the code path of several hosts) under
`keras.distribution`: every balancer gives the one-process update on 2
processes, a subset on 4 processes data parallel and on a 2 x 2 mesh with the
shared encoder's kernel split over processes; `Checkpoint` gathers split
weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from backend_cover import STEP_KINDS
from worker_data import ALL, assert_alike, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        keras.backend.backend() != "jax",
        reason="jax.distributed runs on the JAX backend",
    ),
]
WORKER = Path(__file__).with_name("jax_process_worker.py")
#: On 4 processes: one method of every kind of step (`backend_cover`), or
#: every run of ALL with KERAS_MTL_FOUR_PROCESSES=all (4 processes on 2
#: cores take several minutes more; docs/distribution.md says when it ran).
SUBSET = (
    ALL
    if os.environ.get("KERAS_MTL_FOUR_PROCESSES") == "all"
    else sorted(set(STEP_KINDS) | {"ew", "upgrad", "upgrad@representation"})
)


def _start(n: int, kind: str, out: Path, names: list[str]) -> list[subprocess.Popen]:
    port = str(free_port())
    return [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(i), str(n), port, kind, str(out)]
            + [",".join(names)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]


def _result(procs: list[subprocess.Popen], out: Path) -> dict[str, np.ndarray]:
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def test_every_balancer_updates_alike_in_1_2_and_4_processes(tmp_path):
    one = _start(1, "data", tmp_path / "one.npz", ALL)
    two = _start(2, "data", tmp_path / "two.npz", ALL)
    one, two = _result(one, tmp_path / "one.npz"), _result(two, tmp_path / "two.npz")
    four = _result(_start(4, "data", tmp_path / "4.npz", SUBSET), tmp_path / "4.npz")
    mesh = _result(_start(4, "model", tmp_path / "m.npz", SUBSET), tmp_path / "m.npz")
    assert_alike(two, one, ALL)
    for other in (four, mesh):
        for name in SUBSET:
            assert name in other, other.get(f"{name}/error")
            np.testing.assert_allclose(other[name], one[name], atol=1e-5, err_msg=name)
    # Checkpoint gathers the kernel split over processes: the file holds the
    # one-process model's variables.
    for other in (two, four, mesh):
        np.testing.assert_allclose(
            other["upgrad/checkpoint"], one["upgrad/checkpoint"], atol=1e-5
        )
    # The runs moved the weights, and the methods differ.
    assert not np.allclose(one["ew"], one["upgrad"])
    assert not np.allclose(one["upgrad"], one["upgrad@representation"])
