"""Atomic checkpoints that resume exactly, and resuming `fit` from them.

A checkpoint holds everything a step depends on: the model's variables
(weights, the balancer's state and step counter, every layer's random seed
state), the optimizer's variables (moments, iteration count), the running
metrics of the current epoch, the epoch and the batch reached in it, the
completed epochs' logs, and NumPy's and Python's global random states. The
data position is (epoch, batch): the data sets `fit` is given replay any
batch of any epoch exactly (`MixedBatches`, `ArrayBatches`, streamed
tables), so a run resumed from a checkpoint takes the same steps as the run
that wrote it.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zipfile import BadZipFile

import keras
import numpy as np

from keras_mtl import backend as mtl_backend

PREFIX = "ckpt-"
SUFFIX = ".npz"
FORMAT = 1


def write_atomic(path: str | Path, write: Callable[[Any], None]) -> None:
    """Writes a file through a temporary file in the same folder, then
    renames it into place: readers see the old file or the whole new one.

    Args:
        path: The file to write.
        write: Called with the open (binary) temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: A checkpoint's entries that each process of several keeps in its own
#: part (`ckpt-<step>.npz.p<index>`; process 0's are in the checkpoint).
_OWN = ("__rng__",)
_OWN_META = ("numpy_random", "python_random")


def _part(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.p{index}")


def _read_part(path: Path, index: int, meta: dict, arrays: dict) -> None:
    """Puts process `index`'s own entries of checkpoint `path` into its
    `meta` and `arrays`."""
    part = _part(path, index)
    try:
        with np.load(part, allow_pickle=False) as f:
            own = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, BadZipFile) as error:
        raise ValueError(
            f"Checkpoint {path} has no readable part for process {index} "
            f"({part.name}: {error}): resume with the number of processes "
            "that wrote it."
        ) from None
    meta.update(json.loads(bytes(own.pop("__meta__")).decode()))
    arrays.update(own)


@dataclass(frozen=True)
class Position:
    """Where a checkpoint was taken: `step` batches of epoch `epoch` done."""

    epoch: int
    step: int
    global_step: int
    path: Path


def _groups(model: Any) -> list[tuple[str, list[Any]]]:
    groups = [("model", list(model.variables))]
    if getattr(model, "optimizer", None) is not None:
        groups.append(("optimizer", list(model.optimizer.variables)))
    groups.append(("metrics", list(model.metrics_variables)))
    return groups


def _describe(group: str, variable: Any) -> list[Any]:
    return [group, variable.path, list(variable.shape), str(variable.dtype)]


def _balance_scalar(entry: list[Any]) -> bool:
    group, path, shape = entry[:3]
    return (
        group == "metrics"
        and not shape
        and path.endswith("/last")
        and path.split(">")[0] in ("weight", "cosine")
    )


def _upgraded(saved: list[list[Any]], arrays: dict[str, np.ndarray]) -> list[list[Any]]:
    """The variables of a checkpoint from before a balancer's weights (and
    cosines) were logged from one vector (`LastValues`): their run of
    scalars becomes that vector, in `arrays` too; other checkpoints as
    they are."""
    metrics = [i for i, entry in enumerate(saved) if entry[0] == "metrics"]
    run = [i for i in metrics if _balance_scalar(saved[i])]
    if not run or run != list(range(run[0], run[0] + len(run))):
        return saved
    first = metrics[0]
    values = [arrays[f"metrics/{i - first:06d}"] for i in run]
    old = {i - first: arrays.pop(f"metrics/{i - first:06d}") for i in metrics}
    merged = run[0] - first
    for k in range(len(metrics) - len(run) + 1):
        source = k if k < merged else k + len(run) - 1
        arrays[f"metrics/{k:06d}"] = (
            np.stack(values).astype(np.float32) if k == merged else old[source]
        )
    entry = ["metrics", "balance/last", [len(run)], "float32"]
    return saved[: run[0]] + [entry] + saved[run[-1] + 1 :]


def _numpy_state() -> list[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_numpy_state(state: list[Any]) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, np.asarray(keys, np.uint32), pos, has_gauss, cached))


def _python_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _set_python_state(state: list[Any]) -> None:
    version, internal, gauss = state
    random.setstate((version, tuple(internal), gauss))


class Checkpoint(keras.callbacks.Callback):
    """Writes atomic checkpoints during `fit`; a later `fit` with the same
    callback resumes from the newest one exactly where it was.

    A resumed run takes the same steps on the same batches as an
    uninterrupted one: on the CPU the final weights are bit-identical (see
    docs/robustness.md for what each backend promises). Give the same model,
    compile arguments, data and batch size; a checkpoint that does not fit
    the model is refused with the variable that differs.

    Arrays given to `fit` are batched by `keras_mtl.data.ArrayBatches`
    (order by seed and epoch, so any epoch replays); `MixedBatches` and
    streamed tables replay already. `validation_split` is refused (give
    `validation_data`). The state of `keras_mtl.callbacks.EarlyStopping`
    (what `fit(early_stopping=N)` and `fit()` without `epochs` use) is
    checkpointed too, so a resumed run stops and restores its best weights
    exactly as an uninterrupted one; other callbacks with counters (Keras's
    own EarlyStopping, ReduceLROnPlateau) restart them on resume, as with
    Keras's `BackupAndRestore`.

    Mid-epoch resume needs a `keras_mtl.MultiTaskModel`; with another Keras
    model, `every` must be `"epoch"`.

    Args:
        directory: Where checkpoints go (`ckpt-<step>.npz`); created.
        every: `"epoch"`, or a number of training steps between checkpoints
            (every epoch's end is saved too).
        keep: How many of the newest checkpoints to keep.
        seed: Seed of the order in which `ArrayBatches` visits arrays.
        minutes: Also save within an epoch once this many minutes have
            passed since the last checkpoint (None: only as `every` says), so
            a run killed in a long first epoch resumes too.

    Example:

    >>> import keras_mtl, numpy as np, tempfile
    >>> model = keras_mtl.models.presets.seed_case1(byte_ids=True, length=4, units=2)
    >>> model.compile("adam", "binary_crossentropy")
    >>> x = {"tweet_a": np.zeros((8, 4), "uint8"), "tweet_b": np.ones((8, 4), "uint8")}
    >>> y = {"a_negative": np.ones(8), "same_sentiment": np.zeros(8)}
    >>> folder = tempfile.mkdtemp()
    >>> ckpt = keras_mtl.callbacks.Checkpoint(folder, every=1)
    >>> _ = model.fit(x, y, batch_size=4, epochs=1, callbacks=[ckpt], verbose=0)
    >>> ckpt.latest().name
    'ckpt-0000000002.npz'
    """

    def __init__(
        self,
        directory: str | Path,
        every: int | str = "epoch",
        keep: int = 2,
        seed: int = 0,
        minutes: float | None = None,
    ) -> None:
        super().__init__()
        if minutes is not None and not float(minutes) > 0:
            raise ValueError(
                f"Checkpoint: minutes must be positive or None, got {minutes!r}."
            )
        self.minutes = None if minutes is None else float(minutes)
        self._saved_at = time.monotonic()
        if every != "epoch" and not (isinstance(every, int) and every > 0):
            raise ValueError(
                f'Checkpoint: every must be "epoch" or a positive number of '
                f"steps, got {every!r}."
            )
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"Checkpoint: keep must be at least 1, got {keep!r}.")
        self.directory = Path(directory)
        self.every = every
        self.keep = keep
        self.seed = int(seed)
        self.history: dict[str, list[float]] = {}
        self.global_step = 0
        self.epoch = 0
        self.offset = 0  # batches of the current epoch done before this fit
        self.steps_per_epoch: int | None = None
        self.restored = False
        self.last_path: Path | None = None
        self._pending_metrics: list[np.ndarray] | None = None
        self._pending_rng: tuple[dict, Any] | None = None
        #: Callbacks whose state the checkpoints hold (`EarlyStopping`).
        self.stateful: list[Any] = []
        #: True while `fit_resumable` (`MultiTaskModel.fit`) drives training:
        #: it restores the newest checkpoint itself before training starts.
        self.resuming_fit = False

    # ---------------------------------------------------------- files

    def paths(self) -> list[Path]:
        """Checkpoints on disk, newest first (temporary files never count)."""
        if not self.directory.is_dir():
            return []
        found = [
            p
            for p in self.directory.iterdir()
            if p.name.startswith(PREFIX) and p.name.endswith(SUFFIX)
        ]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def latest(self) -> Path | None:
        """The newest checkpoint, or None."""
        paths = self.paths()
        return paths[0] if paths else None

    def save(self, epoch: int, step: int) -> Path:
        """Writes a checkpoint of the model at (epoch, step) now."""
        model = self.model
        sync = getattr(model, "jax_state_sync", None)
        if sync is not None:
            sync()
        arrays: dict[str, np.ndarray] = {}
        described = []
        for group, variables in _groups(model):
            for i, variable in enumerate(variables):
                arrays[f"{group}/{i:06d}"] = np.asarray(mtl_backend.fetch(variable))
                described.append(_describe(group, variable))
        meta = {
            "format": FORMAT,
            "epoch": int(epoch),
            "step": int(step),
            "global_step": int(self.global_step),
            "steps_per_epoch": self.steps_per_epoch,
            "variables": described,
            "history": self.history,
            "numpy_random": _numpy_state(),
            "python_random": _python_state(),
            "backend": keras.backend.backend(),
        }
        backend_rng = mtl_backend.rng_state()
        if backend_rng is not None:
            arrays["__rng__"] = backend_rng
        meta["callbacks"] = []
        for k, callback in enumerate(self.stateful):
            state, weights = callback.checkpoint_state()
            meta["callbacks"].append(state)
            for i, w in enumerate(weights):
                arrays[f"__callback{k}__/{i:06d}"] = w
        path = self.directory / f"{PREFIX}{self.global_step:010d}{SUFFIX}"
        index = mtl_backend.processes()[0]
        if index > 0:
            # What differs between processes (their own metrics and random
            # states) goes into this process's part, written before the
            # checkpoint itself: a checkpoint on disk has all its parts.
            own = {
                k: v for k, v in arrays.items() if k in _OWN or k.startswith("metrics/")
            }
            local = {k: meta[k] for k in _OWN_META}
            own["__meta__"] = np.frombuffer(json.dumps(local).encode(), np.uint8)
            write_atomic(_part(path, index), lambda f: np.savez(f, **own))
        mtl_backend.barrier()
        if index == 0:
            arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
            write_atomic(path, lambda f: np.savez(f, **arrays))
            for old in self.paths()[self.keep :]:
                old.unlink(missing_ok=True)
        else:
            for old in sorted(self.directory.glob(f"{PREFIX}*{SUFFIX}.p{index}"))[
                : -self.keep
            ]:
                old.unlink(missing_ok=True)
        self.last_path = path
        self._saved_at = time.monotonic()
        return path

    def restore(self, model: Any) -> Position | None:
        """Loads the newest readable checkpoint into `model` (and this
        callback's counters); None when there is none."""
        self.set_model(model)
        if not self.paths():
            self.history, self.global_step, self.restored = {}, 0, False
            self.last_path = None
            return None
        errors = []
        for path in self.paths():
            try:
                with np.load(path, allow_pickle=False) as f:
                    meta = json.loads(bytes(f["__meta__"]).decode())
                    arrays = {k: f[k] for k in f.files if k != "__meta__"}
            except (OSError, ValueError, KeyError, EOFError, BadZipFile) as error:
                errors.append(f"{path.name}: {error}")
                continue
            index = mtl_backend.processes()[0]
            if index > 0:
                _read_part(path, index, meta, arrays)
            backend_rng = arrays.pop("__rng__", None)
            if errors:
                warnings.warn(
                    "Skipped unreadable checkpoints: " + "; ".join(errors),
                    stacklevel=2,
                )
            position = self._load(model, path, meta, arrays)
            # Random states are set just before the first step: building
            # the step and opening the data (a DataLoader draws a seed) use
            # them, as they did before this point in the first run.
            self._pending_rng = (meta, backend_rng)
            return position
        if errors:
            raise ValueError(
                f"No readable checkpoint in {self.directory}: " + "; ".join(errors)
            )
        return None

    def _load(
        self, model: Any, path: Path, meta: dict, arrays: dict[str, np.ndarray]
    ) -> Position:
        if meta.get("format") != FORMAT:
            raise ValueError(
                f"Checkpoint {path} has format {meta.get('format')!r}; this "
                f"version reads format {FORMAT}."
            )
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            optimizer.build(model.trainable_variables)
        saved = _upgraded(meta["variables"], arrays)
        now = [_describe(g, v) for g, vs in _groups(model) for v in vs]
        if len(saved) != len(now):
            raise ValueError(
                f"Checkpoint {path} holds {len(saved)} variables, this model "
                f"and its optimizer and metrics {len(now)}: it was written for "
                "another model or compile()."
            )
        for old, new in zip(saved, now, strict=True):
            if old[0] != new[0] or old[2] != new[2]:
                raise ValueError(
                    f"Checkpoint {path} does not fit this model: {old[0]} "
                    f"variable {old[1]} has shape {tuple(old[2])} there, "
                    f"{new[1]} has {tuple(new[2])} here."
                )
        metrics = []
        for group, variables in _groups(model):
            for i, variable in enumerate(variables):
                value = arrays[f"{group}/{i:06d}"]
                if group == "metrics":
                    metrics.append(value)
                else:
                    variable.assign(value)
        self._pending_metrics = metrics if meta["step"] > 0 else None
        for k, (callback, state) in enumerate(
            zip(self.stateful, meta.get("callbacks", []), strict=False)
        ):
            prefix = f"__callback{k}__/"
            weights = [arrays[n] for n in sorted(arrays) if n.startswith(prefix)]
            callback.restore_checkpoint_state(state, weights)
        self.history = {k: list(v) for k, v in meta["history"].items()}
        self.global_step = int(meta["global_step"])
        self.steps_per_epoch = meta["steps_per_epoch"]
        self.restored = True
        self.last_path = path
        return Position(int(meta["epoch"]), int(meta["step"]), self.global_step, path)

    # ------------------------------------------------------ callbacks

    def _apply_rng(self) -> None:
        if self._pending_rng is not None:
            meta, backend_rng = self._pending_rng
            _set_numpy_state(meta["numpy_random"])
            _set_python_state(meta["python_random"])
            mtl_backend.set_rng_state(backend_rng)
            self._pending_rng = None

    def on_train_begin(self, logs: Any = None) -> None:
        self._saved_at = time.monotonic()
        if self.resuming_fit:
            return  # fit_resumable restored before training started
        if self.every != "epoch" or self.minutes is not None:
            raise ValueError(
                "Checkpoint(every=<steps>) and Checkpoint(minutes=...) resume "
                "mid-epoch, which needs a keras_mtl.MultiTaskModel; use "
                'every="epoch" with other models.'
            )
        if not self.restored:
            position = self.restore(self.model)
            if position is not None:
                self.model._initial_epoch = position.epoch

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch
        if self._pending_metrics is not None:
            # The interrupted epoch's running metrics: its logs then average
            # over the whole epoch, as if it had not been interrupted.
            for variable, value in zip(
                self.model.metrics_variables, self._pending_metrics, strict=True
            ):
                variable.assign(value)
            self._pending_metrics = None

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self._apply_rng()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.global_step += 1
        step = self.offset + batch + 1
        due = self.every != "epoch" and self.global_step % int(self.every) == 0
        if self.minutes is not None:
            late = time.monotonic() - self._saved_at >= 60.0 * self.minutes
            # Every process saves at the same step: process 0's clock decides.
            due = due or mtl_backend.first_process_says(late)
        # The last batch of an epoch is saved at the epoch's end.
        if due and (self.steps_per_epoch is None or step < self.steps_per_epoch):
            self.save(self.epoch, step)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.save(epoch + 1, 0)
