"""Files saved before the train step was rewritten still load and resume.

tests/fixtures/saved/ holds `.keras` files and a checkpoint written by the
library at commit cd3525e (JAX), by tests/fixtures/write_saved_files.py:
they must load on every backend with the same predictions and balancer
state, and the checkpoint must resume to the weights the old run reached.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_mtl.callbacks import Checkpoint

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
import write_saved_files as written  # noqa: E402

pytestmark = pytest.mark.model
SAVED = FIXTURES / "saved"


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(SAVED / "expected.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("balancer", written.BALANCERS)
def test_an_old_keras_file_predicts_as_it_did(balancer, expected):
    model = keras.models.load_model(SAVED / f"{balancer}.keras")
    # Files of that version recorded jit_compile as JAX resolved it (True),
    # which PyTorch would honour with a slow torch.compile; files saved
    # now record "auto" (test_model_api).
    model.jit_compile = keras.backend.backend() != "torch"
    x, _ = written.data()
    predictions = model.predict_tasks(x, verbose=0)
    for task, values in predictions.items():
        np.testing.assert_allclose(
            values, expected[f"{balancer}/predict/{task}"], rtol=1e-5, atol=1e-6
        )
    # Variables load by position; UW's learned field is now named for what
    # it is (balancer_state/params then, balancer_state/log_variance now).
    state = [np.asarray(v) for v in model.balancer_state.variables]
    old = [v for k, v in expected.items() if k.startswith(f"{balancer}/state/")]
    assert len(state) == len(old)
    for value, before in zip(state, old, strict=True):
        np.testing.assert_allclose(value, before, rtol=1e-6, atol=1e-7)
    if balancer == "uw":  # the learned state is not the initial one
        assert not np.allclose(model.balancer_state.state().log_variance, -0.5)


def test_an_old_checkpoint_restores_every_variable(tmp_path):
    shutil.copytree(SAVED / "checkpoints", tmp_path / "checkpoints")
    model = written.model("uw")
    x, y = written.data()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # builds the optimizer
    model.set_weights([w + 1.0 for w in model.get_weights()])
    position = Checkpoint(tmp_path / "checkpoints", seed=0).restore(model)
    assert (position.epoch, position.step) == (1, 0)
    (path,) = (tmp_path / "checkpoints").iterdir()
    with np.load(path) as f:
        meta = json.loads(bytes(f["__meta__"]).decode())
        for group, variables in (
            ("model", model.variables),
            ("optimizer", model.optimizer.variables),
        ):
            described = [v for v in meta["variables"] if v[0] == group]
            assert len(described) == len(variables)
            for i, ((_, name, shape, _), variable) in enumerate(
                zip(described, variables, strict=True)
            ):
                # (Layer names carry a counter of the process that built them.)
                assert list(variable.shape) == shape, name
                np.testing.assert_array_equal(
                    np.asarray(variable), f[f"{group}/{i:06d}"], err_msg=name
                )


def test_an_old_checkpoints_weight_metrics_become_one_vector():
    """Checkpoints written when each balancer weight (and cosine) was a
    metric of its own: their scalars become the one vector, in order, and
    the metrics after them keep their values."""
    from keras_mtl.callbacks.checkpoint import _upgraded

    saved = [
        ["model", "dense/kernel", [2, 2], "float32"],
        ["metrics", "loss/total", [], "float32"],
        ["metrics", "weight>a/last", [], "float32"],
        ["metrics", "weight>b/last", [], "float32"],
        ["metrics", "cosine>a>b/last", [], "float32"],
        ["metrics", "label_fault/code", [], "float32"],
    ]
    arrays = {"model/000000": np.ones((2, 2), "float32")}
    for i, value in enumerate([5.0, 0.25, 0.75, -0.5, 3.0]):
        arrays[f"metrics/{i:06d}"] = np.asarray(value, "float32")
    now = _upgraded(saved, arrays)
    assert [e[1] for e in now] == [
        "dense/kernel",
        "loss/total",
        "balance/last",
        "label_fault/code",
    ]
    assert now[2][2] == [3]
    assert sorted(arrays) == ["metrics/000000", "metrics/000001", "metrics/000002"] + [
        "model/000000"
    ]
    np.testing.assert_array_equal(arrays["metrics/000001"], [0.25, 0.75, -0.5])
    assert float(arrays["metrics/000000"]) == 5.0
    assert float(arrays["metrics/000002"]) == 3.0
    # A checkpoint of today's layout is left as it is.
    assert _upgraded(now, arrays) == now


@pytest.mark.skipif(
    keras.backend.backend() == "tensorflow",
    reason="the old run trained on JAX; TensorFlow's Adam takes other steps "
    "from the same state (it updates embedding rows sparsely)",
)
def test_an_old_checkpoint_resumes_to_the_old_runs_weights(expected, tmp_path):
    shutil.copytree(SAVED / "checkpoints", tmp_path / "checkpoints")
    model = written.model("uw")
    # Weights unlike the old run's: only the checkpoint can bring them back.
    model.set_weights([w + 1.0 for w in model.get_weights()])
    x, y = written.data()
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=8,
        shuffle=False,
        verbose=0,
        callbacks=[Checkpoint(tmp_path / "checkpoints", seed=0)],
    )
    weights = model.get_weights()
    old = [expected[f"resumed/weight/{i}"] for i in range(len(weights))]
    for new, before in zip(weights, old, strict=True):
        np.testing.assert_allclose(new, before, rtol=1e-5, atol=1e-6)
