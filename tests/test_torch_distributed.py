"""PyTorch with a `torch.distributed` process group (gloo, two CPU
processes, each on its half of every batch): plain compile and every
balancer (loss weightings and gradient methods, at the parameter and the
representation level) give the same update as one process on the whole
batches, with partially labelled tasks and a NaN on one process skipped
by both; a 2-process run killed with SIGKILL between checkpoints resumes to
the uninterrupted run's weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from worker_data import ALL, assert_alike, free_port, kill_after_checkpoint

pytestmark = [
    pytest.mark.slow,
    pytest.mark.model,
    pytest.mark.skipif(
        keras.backend.backend() != "torch",
        reason="torch.distributed process groups run on the PyTorch backend",
    ),
]
WORKER = Path(__file__).with_name("torch_ddp_worker.py")
NAMES = ["none", "skip", *ALL]


def _run(worlds: list[int], tmp: Path) -> list[tuple[dict[str, np.ndarray], str]]:
    """Runs one process group per world size, side by side; each group's
    results and its processes' stderr."""
    groups = []
    for world in worlds:
        port, out = str(free_port()), tmp / f"world{world}.npz"
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


def test_every_balancer_updates_alike_in_1_and_2_processes(tmp_path):
    (one, _), (two, _) = _run([1, 2], tmp_path)
    assert_alike(two, one, NAMES)
    assert not np.allclose(one["ew"], one["fixed"])
    assert not np.allclose(one["upgrad"], one["pcgrad"])
    assert not np.allclose(one["upgrad"], one["upgrad@representation"])
    # The NaN on one process is skipped by both, the weights stay finite.
    assert np.isfinite(two["skip"]).all()
    assert not np.allclose(one["skip"], one["none"])
    # One process may evaluate alone (no process waits for the others).
    np.testing.assert_allclose(two["none/evaluate"], one["none/evaluate"], rtol=1e-5)


RESUME = Path(__file__).with_name("torch_resume_worker.py")


def _group(folder: Path, out: Path, slow: float = 0.0) -> list[subprocess.Popen]:
    port = str(free_port())
    extra = [str(slow)] if slow else []
    return [
        subprocess.Popen(
            [sys.executable, str(RESUME), str(rank), "2", port, str(folder), str(out)]
            + extra,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]


def _finish(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_weights(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    straight = _group(whole, tmp_path / "whole.npz")
    killed = _group(cut, tmp_path / "killed.npz", slow=0.4)
    # Kill both processes (SIGKILL) once a few of the 12 steps are saved.
    kill_after_checkpoint(killed, cut, 4)
    saved = sorted(p.name for p in cut.iterdir())
    last = int(sorted(cut.glob("ckpt-*.npz"))[-1].name[5:15])
    assert last < 12, saved
    # One writer: the checkpoint from process 0, process 1's own part beside.
    assert any(n.endswith(".npz.p1") for n in saved), saved
    assert not any(n.endswith(".npz.p0") for n in saved), saved
    _finish(straight)
    _finish(_group(cut, tmp_path / "resumed.npz"))
    with np.load(tmp_path / "whole.npz") as a, np.load(tmp_path / "resumed.npz") as b:
        assert not bool(a["resumed"]) and bool(b["resumed"])
        np.testing.assert_array_equal(b["weights"], a["weights"])
