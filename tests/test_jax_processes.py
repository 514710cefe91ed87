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
import pandas as pd
import pytest
from backend_cover import STEP_KINDS
from worker_data import ALL, assert_alike, free_port, kill_after_checkpoint

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


def _small_run(folder: Path, rows: int = 230) -> Path:
    """A text config whose batches of 7 (and validation and test splits of
    13 and 17 rows) never split evenly in 2, some labels missing, UPGrad at
    the parameter level, checkpoints every 2 steps."""
    rng = np.random.default_rng(3)
    words = np.array(["good", "bad", "fine", "awful", "great", "poor"])
    texts = [" ".join(rng.choice(words, 3)) for _ in range(rows)]
    positive = [
        float(sum(w in t for w in ("good", "fine", "great")) >= 2) for t in texts
    ]
    strong = [float("great" in t or "awful" in t) for t in texts]
    strong = [np.nan if i % 5 == 0 else s for i, s in enumerate(strong)]
    frame = pd.DataFrame({"text": texts, "positive": positive, "strong": strong})
    frame.iloc[:200].to_csv(folder / "train.csv", index=False)
    frame.iloc[200:213].to_csv(folder / "val.csv", index=False)
    frame.iloc[213:].to_csv(folder / "test.csv", index=False)
    config = folder / "small.toml"
    config.write_text(f"""
[inputs.text]
shape = [16]
encoding = "bytes"
length = 16
[encoder]
name = "conv1d"
filters = 8
kernel_size = 3
num_layers = 1
symbols = "embedding"
embedding_dim = 8
[[tasks]]
name = "positive"
[[tasks]]
name = "strong"
[compile]
optimizer = {{ name = "adam", learning_rate = 0.01 }}
balancer = "upgrad"
[training]
epochs = 3
batch_size = 7
checkpoint_every = 2
[data]
source = "files"
train = "{folder / "train.csv"}"
val = "{folder / "val.csv"}"
test = "{folder / "test.csv"}"
""")
    return config


def _mtl_train(config: Path, out: Path, n: int, *extra: str) -> list[subprocess.Popen]:
    """Starts `mtl train` in n processes (one: without --processes)."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(
        f
        for f in env.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    )
    command = [sys.executable, "-m", "keras_mtl_cli", "train", str(config)]
    command += ["--out", str(out), *extra]
    port = str(free_port())
    flags = [[]]
    if n > 1:
        flags = [
            ["--processes", str(n), "--process-id", str(i)]
            + ["--coordinator", f"127.0.0.1:{port}"]
            for i in range(n)
        ]
    return [
        subprocess.Popen(
            command + f,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for f in flags
    ]


def _outputs(procs: list[subprocess.Popen]) -> list[str]:
    """Each finished process's stdout."""
    outs = []
    for proc in procs:
        stdout, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        outs.append(stdout)
    return outs


def _weights(path: Path) -> list[np.ndarray]:
    import keras_mtl  # noqa: F401 - registers the saved classes

    return keras.saving.load_model(path).get_weights()


def _history(folder: Path) -> tuple[dict, dict]:
    import json

    run = json.loads((folder / "results.json").read_text())["runs"][0]
    scores = {
        (split, task, name): value
        for split, tasks in run["scores"].items()
        for task, values in tasks.items()
        for name, value in values.items()
    }
    return run["history"], scores


def test_mtl_train_on_two_processes_trains_and_resumes_as_one(tmp_path):
    config = _small_run(tmp_path)
    one, two, cut = tmp_path / "one", tmp_path / "two", tmp_path / "cut"
    _outputs(_mtl_train(config, one, 1))
    outs = _outputs(_mtl_train(config, two, 2))
    # Process 0 reports and writes; process 1 reports nothing.
    assert "Wrote" in outs[0] and "val_loss" in outs[0]
    assert "Wrote" not in outs[1] and "loss" not in outs[1]
    history1, scores1 = _history(one)
    history2, scores2 = _history(two)
    for key, values in history1.items():
        # The epoch's `loss` weighs each batch by its rows, padding included
        # (docs/distribution.md); every other number is the one-process one.
        tolerance = 1e-2 if key == "loss" else 1e-5
        np.testing.assert_allclose(history2[key], values, rtol=tolerance, err_msg=key)
    assert scores2 == pytest.approx(scores1, rel=1e-5)
    for a, b in zip(
        _weights(two / "model.keras"), _weights(one / "model.keras"), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # Killed with SIGKILL after a few of its 87 steps, then resumed.
    killed = _mtl_train(config, cut, 2)
    kill_after_checkpoint(killed, cut / "checkpoints" / "multi_task-seed0", 4)
    assert not (cut / "results.json").exists()
    _outputs(_mtl_train(config, cut, 2, "--resume"))
    history3, scores3 = _history(cut)
    assert history3 == history2 and scores3 == scores2
    for a, b in zip(
        _weights(cut / "model.keras"), _weights(two / "model.keras"), strict=True
    ):
        np.testing.assert_array_equal(a, b)
