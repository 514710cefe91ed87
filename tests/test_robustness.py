"""Nothing lost, nothing silently wrong: exact resume, atomic checkpoints,
the non-finite guard, determinism and safe loading."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from backend_cover import cases, once

import keras_mtl
from keras_mtl.callbacks import Checkpoint, NonFiniteError
from keras_mtl.data import MixedBatches, Source
from keras_mtl.training.guard import FiniteGuard

pytestmark = pytest.mark.model

TASKS = [keras_mtl.Task("up"), keras_mtl.Task("kind", "multiclass", num_classes=3)]


def _model(balancer=None, on_nonfinite="stop"):
    keras.utils.set_random_seed(7)
    encoder = keras.Sequential(
        [keras.layers.Dense(8, activation="relu"), keras.layers.Dropout(0.3)],
        name="shared",
    )
    model = keras_mtl.build_model({"v": (5,)}, encoder, TASKS)
    model.compile(
        keras.optimizers.Adam(0.01), balancer=balancer, on_nonfinite=on_nonfinite
    )
    return model


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = {"v": rng.normal(size=(n, 5)).astype("float32")}
    y = {
        "up": (x["v"][:, 0] > 0).astype("float32"),
        "kind": rng.integers(0, 3, n),
    }
    return x, y


def _mixed(seed=0):
    x, y = _data(seed=seed)
    a = Source("a", {"v": x["v"][:30]}, {"up": y["up"][:30]})
    b = Source("b", {"v": x["v"][30:]}, {"kind": y["kind"][30:]})
    return MixedBatches([a, b], TASKS, batch_size=8, sampling="uniform", seed=3)


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at):
        super().__init__()
        self.at, self.seen = at, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at:
            raise KeyboardInterrupt


def _fit(model, data, folder, extra=()):
    kwargs = dict(epochs=3, verbose=0, callbacks=[Checkpoint(folder, every=2), *extra])
    if isinstance(data, tuple):
        return model.fit(*data, batch_size=8, **kwargs)
    return model.fit(data, **kwargs)


@pytest.mark.parametrize(
    "source,balancer",
    cases(
        [("arrays", None), ("arrays", "uw"), ("mixed", "pcgrad"), ("mixed", "dwa")],
        # A loss-level step with learned state, and a gradient step with a
        # random draw, each over one kind of data.
        [("arrays", "uw"), ("mixed", "pcgrad")],
    ),
)
def test_interrupted_run_resumes_bit_identical(tmp_path, source, balancer):
    data = _data() if source == "arrays" else _mixed()
    whole = _model(balancer)
    history = _fit(whole, data, tmp_path / "whole")
    for at in (5, 11):  # mid-epoch, at steps between checkpoints
        folder = tmp_path / f"cut{at}"
        data = _data() if source == "arrays" else _mixed()
        with pytest.raises(KeyboardInterrupt):
            _fit(_model(balancer), data, folder, [_Interrupt(at)])
        resumed = _model(balancer)
        again = _fit(resumed, data, folder)
        for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        assert again.history == history.history  # every epoch's logs too
        assert again.epoch == [0, 1, 2]


@once(
    "early stopping's state is callback state; the backend's part of a resume "
    "(weights, optimizer and random state) is test_interrupted_run_resumes_bit_identical"
)
def test_early_stopped_run_resumes_to_the_same_stop_and_best_weights(tmp_path):
    """Validation labels unrelated to the inputs: early stopping ends the run
    after a few epochs and restores an earlier epoch's weights. Killed in
    the middle (mid-epoch, and right after its last epoch) and resumed, the
    run stops at the same epoch with the same weights and logs."""
    x, y = _data()
    rng = np.random.default_rng(5)
    val = (
        x,
        {
            "up": rng.integers(0, 2, 60).astype("float32"),
            "kind": rng.integers(0, 3, 60),
        },
    )

    def fit(model, folder, extra=()):
        return model.fit(
            x,
            y,
            batch_size=8,
            validation_data=val,
            early_stopping=1,
            epochs=30,
            verbose=0,
            callbacks=[Checkpoint(folder, every=3), *extra],
        )

    whole = _model()
    history = fit(whole, tmp_path / "whole")
    epochs = len(history.history["loss"])
    assert epochs < 30
    best = int(np.argmin(history.history["val_loss"]))
    assert best < epochs - 1  # the weights restored are not the last epoch's
    for at in (12, 8 * epochs):  # mid-epoch 2; after the last step
        folder = tmp_path / f"cut{at}"
        with pytest.raises(KeyboardInterrupt):
            fit(_model(), folder, [_Interrupt(at)])
        resumed = _model()
        again = fit(resumed, folder)
        for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        assert again.history == history.history
    # Run again on the finished run's folder: it had stopped, so nothing is
    # trained and the best weights come back.
    finished = _model()
    again = fit(finished, tmp_path / "whole")
    for a, b in zip(whole.get_weights(), finished.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert again.history == history.history


def test_checkpoint_refuses_another_model(tmp_path):
    model = _model()
    _fit(model, _data(), tmp_path)
    keras.utils.set_random_seed(0)
    other = keras_mtl.build_model({"v": (5,)}, keras.layers.Dense(4), TASKS)
    other.compile("adam")
    with pytest.raises(ValueError, match="written for another model"):
        _fit(other, _data(), tmp_path)
    wider = keras.Sequential(
        [keras.layers.Dense(6, activation="relu"), keras.layers.Dropout(0.3)]
    )
    other = keras_mtl.build_model({"v": (5,)}, wider, TASKS)
    other.compile("adam")
    with pytest.raises(ValueError, match=r"does not fit this model.*shape \(5, 8\)"):
        _fit(other, _data(), tmp_path)
    with pytest.raises(ValueError, match="validation_split cannot be combined"):
        _model().fit(
            *_data(), validation_split=0.2, callbacks=[Checkpoint(tmp_path / "v")]
        )


def test_atomic_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = _model()
    _fit(model, _data(), tmp_path)  # 3 epochs of 8 steps: newest is step 24
    newest = Checkpoint(tmp_path).latest()
    assert newest.name == "ckpt-0000000024.npz"
    before = newest.read_bytes()
    ckpt = Checkpoint(tmp_path)
    ckpt.set_model(model)
    ckpt.global_step = 99

    def crash(src, dst):  # the process dies between write and rename
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        ckpt.save(3, 0)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-0000000022.npz",
        "ckpt-0000000024.npz",
    ]  # no temporary file left, none picked up
    # A half-written temporary file from a killed process is ignored.
    (tmp_path / ".ckpt-0000000100.npz.abc.tmp").write_bytes(before[:100])
    assert Checkpoint(tmp_path).latest() == newest
    assert newest.read_bytes() == before
    position = Checkpoint(tmp_path).restore(_model())
    assert (position.epoch, position.step, position.global_step) == (3, 0, 24)
    # A damaged newest file falls back to the one before, loudly.
    newest.write_bytes(before[: len(before) // 2])
    with pytest.warns(UserWarning, match="Skipped unreadable checkpoints"):
        position = Checkpoint(tmp_path).restore(_model())
    assert position.global_step == 22


def _poisoned_weights():
    x, y = _data(n=40)
    weights = {"up": np.ones(40, "float32"), "kind": np.ones(40, "float32")}
    weights["kind"][19] = np.inf  # batch 3 (rows 16..23) in file order
    return x, y, weights


class _Snapshot(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        getattr(self.model, "jax_state_sync", lambda: None)()
        self.weights = [w.copy() for w in self.model.get_weights()]
        self.iterations = int(self.model.optimizer.iterations.numpy())


@pytest.mark.parametrize("balancer", [None, "upgrad"])
def test_nonfinite_step_is_never_applied(tmp_path, balancer):
    x, y, w = _poisoned_weights()
    model = _model(balancer)
    snap = _Snapshot()
    ckpt = Checkpoint(tmp_path, every=1)
    with pytest.raises(NonFiniteError) as error:
        model.fit(
            x, y, sample_weight=w, batch_size=8, epochs=2, shuffle=False,
            callbacks=[ckpt, snap], verbose=0,
        )  # fmt: skip
    message = str(error.value)
    assert "task 'kind': its loss is not finite" in message
    assert "step 3 (epoch 1, batch 3)" in message
    assert "ckpt-0000000002.npz" in message  # the last good checkpoint
    # The model holds the weights after step 2, as the checkpoint does.
    for a, b in zip(snap.weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations.numpy()) == 2

    skipping = _model(balancer, on_nonfinite="skip")
    with pytest.warns(UserWarning, match="task 'kind'"):
        history = skipping.fit(
            x, y, sample_weight=w, batch_size=8, epochs=2, shuffle=False, verbose=0
        )
    assert history.history["skipped_steps"] == [1.0, 1.0]
    assert all(np.isfinite(v).all() for v in skipping.get_weights())
    assert np.isfinite(history.history["loss"]).all()
    assert int(skipping.optimizer.iterations.numpy()) == 8  # 10 steps, 2 skipped


def test_finite_guard_wraps_an_optimizer_without_state_of_its_own(tmp_path):
    inner = keras.optimizers.Adam(0.1)
    flags = []
    guard = FiniteGuard(inner, lambda ok: flags.append(bool(ok)))
    v = keras.Variable(np.ones(3, "float32"))
    guard.build([v])
    assert guard.variables == inner.variables  # saved files: Adam's layout
    guard.apply([keras.ops.convert_to_tensor([1.0, -1.0, 0.5])], [v])
    after_one = keras.ops.convert_to_numpy(v.value).copy()
    state = [keras.ops.convert_to_numpy(s.value).copy() for s in inner.variables]
    np.testing.assert_allclose(after_one, [0.9, 1.1, 0.9], rtol=1e-5)
    guard.apply([keras.ops.convert_to_tensor([1.0, np.nan, 0.5])], [v])
    assert flags == [True, False]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(v.value), after_one)
    for s, before in zip(inner.variables, state, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(s.value), before)
    assert int(keras.ops.convert_to_numpy(guard.iterations)) == 1
    guard.learning_rate = 0.01  # as ReduceLROnPlateau sets it
    assert float(keras.ops.convert_to_numpy(inner.learning_rate)) == pytest.approx(0.01)
    again = FiniteGuard.from_config(guard.get_config())
    assert isinstance(again.inner_optimizer, keras.optimizers.Adam)
    assert again.inner_optimizer.get_config() == inner.get_config()


def test_unguarded_step_is_applied():
    x, y, w = _poisoned_weights()
    model = _model(on_nonfinite="off")
    try:
        model.fit(
            x, y, sample_weight=w, batch_size=8, epochs=1, shuffle=False, verbose=0
        )
    except RuntimeError as error:  # torch's cross-entropy refuses NaN inputs
        assert keras.backend.backend() == "torch" and "between 0 and 1" in str(error)
    assert not all(np.isfinite(v).all() for v in model.get_weights())


def test_same_seed_same_metrics():
    def run():
        model = _model("pcgrad")
        history = model.fit(_mixed(), epochs=2, verbose=0)
        x, _ = _data(seed=1)
        return history.history, model.predict(x, verbose=0)

    (h1, p1), (h2, p2) = run(), run()
    assert h1 == h2
    for a, b in zip(keras.tree.flatten(p1), keras.tree.flatten(p2), strict=True):
        np.testing.assert_array_equal(a, b)


def test_safe_loading_refuses_code(tmp_path, capsys):
    from keras_mtl.cli import main

    inputs = keras.Input((3,), name="v")
    out = keras.layers.Lambda(lambda t: t * 2, name="up")(inputs)
    out = keras.layers.Dense(1, activation="sigmoid", name="up_head")(out)
    model = keras_mtl.MultiTaskModel(inputs, {"up": out})
    path = tmp_path / "lambda.keras"
    model.save(path)
    (tmp_path / "x.csv").write_text("v\n1\n")
    assert main(["evaluate", str(path), str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not a loadable .keras model" in err and "safe" in err
    assert "\n" not in err and "Traceback" not in err


@pytest.mark.slow
@once(
    "what a SIGKILL adds to an interrupted run (atomic checkpoint files) does "
    "not depend on the backend"
)
def test_killed_run_resumes_to_the_same_weights(tmp_path, capsys):
    from test_cli_commands import _write

    from keras_mtl.cli import main

    config = _write(tmp_path)  # 64 training rows, batches of 16
    # No checkpoint_every: the default time-based saves within an epoch,
    # made due at every step here.
    config.write_text(
        config.read_text().replace(
            "[training]\n", "[training]\ncheckpoint_minutes = 0.000001\n"
        )
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = ["train", str(config), "--epochs", "6", "--out"]  # 24 steps
    cmd = [sys.executable, "-m", "keras_mtl.cli", *args]

    # The uninterrupted run, and the refusal below, in this process; the run
    # to kill and its resume in their own.
    assert main([*args, str(tmp_path / "whole")]) == 0
    cut = tmp_path / "cut"
    folder = cut / "checkpoints" / "multi_task-seed0"
    at = int(np.random.default_rng().integers(2, 20))
    proc = subprocess.Popen([*cmd, str(cut)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        steps = [int(p.name[5:15]) for p in Checkpoint(folder).paths()]
        if steps and max(steps) >= at:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reached = max(int(p.name[5:15]) for p in Checkpoint(folder).paths())
    assert reached < 24, f"killed too late (step {reached})"
    capsys.readouterr()
    # Without --resume: refused, nothing overwritten.
    assert main([*args, str(cut)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    done = subprocess.run(
        [*cmd, str(cut), "--resume"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    whole = keras.models.load_model(tmp_path / "whole" / "model.keras")
    resumed = keras.models.load_model(cut / "model.keras")
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_config_reports_guard_and_checkpoint_keys():
    from keras_mtl.config import Config, ConfigError

    base = "[inputs.v]\nshape = [3]\n[encoder]\nname = 'gru'\nunits = 2\n[[tasks]]\nname = 't'\n"
    with pytest.raises(
        ConfigError, match=r"\[compile\].on_nonfinite.*got 'stp'.*\"stop\""
    ):
        Config.from_string(base + "[compile]\non_nonfinite = 'stp'\n")
    with pytest.raises(ConfigError, match=r"checkpoint_every.*got 0"):
        Config.from_string(base + "[training]\ncheckpoint_every = 0\n")
    with pytest.raises(ConfigError, match=r"checkpoint_minutes.*got -1"):
        Config.from_string(base + "[training]\ncheckpoint_minutes = -1\n")


def test_checkpoint_every_few_minutes_within_an_epoch(tmp_path):
    model = _model()
    x, y = _data(n=32)
    ckpt = Checkpoint(tmp_path, minutes=1e-9, keep=10)  # due after every step
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[ckpt])
    assert [p.name[5:15] for p in ckpt.paths()] == [f"{i:010d}" for i in (4, 3, 2, 1)]
    with pytest.raises(ValueError, match="minutes must be positive"):
        Checkpoint(tmp_path, minutes=0)


def test_resume_needs_a_checkpoint(tmp_path, capsys):
    from test_cli_commands import _write

    from keras_mtl.cli import main

    config = _write(tmp_path)
    assert main(["train", str(config), "--out", str(tmp_path / "o"), "--resume"]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err
