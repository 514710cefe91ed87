"""The small partially labelled problem the multi-device workers train
(`distribution_worker.py`, `mirrored_worker.py`, `torch_ddp_worker.py`,
`jax_process_worker.py`), and what their tests share; a worker imports it
after it has set its backend and devices."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

import numpy as np

import keras_mtl
from keras_mtl import balancers

TASKS = [
    keras_mtl.Task("up"),
    keras_mtl.Task("kind", "multiclass", num_classes=3),
    keras_mtl.Task("r", "regression"),
]
PARAMS = {"fixed": {"weights": [1.0, 2.0, 0.5]}}
#: Every balancer at the parameter level; at the representation level a
#: Gramian method with a host solver, one with weights on the device, and
#: Jacobian methods (deterministic and random); `update_every`.
ALL = [
    *balancers.BALANCERS,
    "upgrad@representation",
    "mgda@representation",
    "pcgrad@representation",
    "graddrop@representation",
    "upgrad^2",
]


def free_port() -> int:
    """A local TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_after_checkpoint(procs: list[Any], folder: Any, step: int) -> None:
    """SIGKILLs every process of a run once `folder` holds a checkpoint of
    step `step` or later (fails if the run ends first)."""
    import signal
    import time

    deadline = time.monotonic() + 300
    while not any(int(p.name[5:15]) >= step for p in folder.glob("ckpt-*.npz")):
        assert time.monotonic() < deadline, "no checkpoint was written"
        assert all(p.poll() is None for p in procs), "the run ended early"
        time.sleep(0.05)
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    for proc in procs:
        proc.wait()


def assert_alike(
    many: dict[str, np.ndarray], one: dict[str, np.ndarray], names: list[str]
) -> None:
    """Each run trained on several devices or processes (`many`) ends with
    the one-device run's weights and reported losses, within 1e-5."""
    for name in names:
        assert name in one and name in many, (
            one.get(f"{name}/error"),
            many.get(f"{name}/error"),
        )
        np.testing.assert_allclose(many[name], one[name], atol=1e-5, err_msg=name)
        # The reported loss is the global batch's too.
        np.testing.assert_allclose(
            many[f"{name}/loss"], one[f"{name}/loss"], rtol=1e-5, err_msg=name
        )


def sharded(devices: list[Any], n: int) -> Any:
    """A 2 x n/2 mesh whose "model" axis splits the shared encoder's kernel
    and bias, the batch split over its "batch" axis (JAX)."""
    import keras

    mesh = keras.distribution.DeviceMesh((2, n // 2), ["batch", "model"], devices)
    layout = keras.distribution.LayoutMap(mesh)
    layout["shared.*kernel"] = (None, "model")
    layout["shared.*bias"] = ("model",)
    return keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch")


def problem() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """32 samples; labels missing unevenly across a batch of 16's halves,
    so only masks reduced over the global batch give the one-device
    update."""
    rng = np.random.default_rng(0)
    x = {"v": rng.normal(size=(32, 6)).astype("float32")}
    y = {
        "up": (x["v"][:, 0] > 0).astype("float32"),
        "kind": rng.integers(0, 3, 32),
        "r": x["v"][:, 1].copy(),
    }
    y["up"][:7] = np.nan
    y["kind"][20:25] = -1
    return x, y


def train_each(
    names: list[str],
    scope: Callable[[], Any] = contextlib.nullcontext,
    rows: Callable[[np.ndarray], np.ndarray] | None = None,
    batch_size: int = 16,
    after: Callable[[str, Any], dict[str, np.ndarray]] | None = None,
) -> dict[str, np.ndarray]:
    """Trains the problem once per name (a balancer, with "@representation"
    for that `balance_mode` and "^K" for `update_every=K`; "none": plain
    `compile`; "skip": plain, `on_nonfinite="skip"`, input 28 NaN, in the
    second half of the second batch of 16) for 2 epochs of SGD without
    shuffling, and returns each run's final weights and loss history, or
    its error's first line ("NAME/error").

    Args:
        names: The runs.
        scope: Entered while the model is built and compiled.
        rows: Picks this process's samples (all by default).
        batch_size: Samples per step in this process.
        after: Called with (name, trained model); its entries join the
            returned ones.
    """
    import keras

    from keras_mtl import backend as mtl_backend

    x, y = problem()
    out: dict[str, np.ndarray] = {}
    for name in names:
        keras.utils.set_random_seed(3)
        with scope():
            shared = keras.layers.Dense(8, activation="tanh", name="shared")
            model = keras_mtl.build_model({"v": (6,)}, shared, TASKS)
            plain = name in ("none", "skip")
            key, _, every = name.partition("^")
            key, _, mode = key.partition("@")
            balancer = None if plain else balancers.get(key, **PARAMS.get(key, {}))
            guard = "skip" if name == "skip" else "stop"
            model.compile(
                keras.optimizers.SGD(0.1),
                balancer=balancer,
                on_nonfinite=guard,
                balance_mode=mode or "parameter",
                update_every=int(every or 1),
            )
        inputs = {"v": x["v"].copy()}
        if name == "skip":
            inputs["v"][28, 0] = np.nan
        mine = np.arange(32) if rows is None else rows(np.arange(32))
        try:
            history = model.fit(
                {k: v[mine] for k, v in inputs.items()},
                {k: v[mine] for k, v in y.items()},
                batch_size=batch_size,
                epochs=2,
                shuffle=False,
                verbose=0,
            )
        except Exception as error:  # noqa: BLE001
            out[f"{name}/error"] = np.array(str(error).splitlines()[0][:400])
            continue
        # fetch: weights split over processes are gathered (JAX).
        weights = [mtl_backend.fetch(v) for v in model.weights]
        out[name] = np.concatenate([np.ravel(w) for w in weights])
        out[f"{name}/loss"] = np.array(history.history["loss"])
        if after is not None:
            out.update(after(name, model))
    return out
