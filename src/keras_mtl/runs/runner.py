"""Training runs from a config: seeds, single-task baselines, Δm%, results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_mtl import backend as mtl_backend
from keras_mtl import data as data_module
from keras_mtl.callbacks import Checkpoint
from keras_mtl.config import Config
from keras_mtl.data import shares
from keras_mtl.data.mixing import missing_label
from keras_mtl.evaluation import summarize, yardstick
from keras_mtl.evaluation.scoring import task_scores
from keras_mtl.runs.results import (
    GROUP,
    GROUPED,
    MULTI,
    SINGLE,
    YARDSTICK,
    brief,
    delta_m_of_runs,
    describe_data,
    summarize_runs,
)

#: Minutes between checkpoints within an epoch (`[training] checkpoint_minutes`).
CHECKPOINT_MINUTES = 5.0


def _subset_config(config: Config, tasks: list[str], balanced: bool = True) -> Config:
    """The config for a model of some of its tasks: only their data sources,
    losses and metrics; without `balanced`, plain summed losses (no
    balancer)."""
    data = dict(config.data)
    data["tasks"] = [t for t in config.data["tasks"] if t["name"] in tasks]
    comp = dict(data.get("compile", {}))
    if not balanced or len(tasks) == 1:
        for key in ("balancer", "balance_mode", "cosine", "update_every"):
            comp.pop(key, None)
        comp.pop("loss_weights", None)
    for key in ("loss", "metrics", "weighted_metrics", "loss_weights"):
        if isinstance(comp.get(key), dict):
            comp[key] = {k: v for k, v in comp[key].items() if k in tasks}
    data["compile"] = comp
    weights = data.get("training", {}).get("class_weight")
    if isinstance(weights, dict):
        data["training"] = {
            **data["training"],
            "class_weight": {k: v for k, v in weights.items() if k in tasks},
        }
    if "sources" in data.get("data", {}):
        # Sources labelled for other tasks only have nothing for these.
        data["data"] = {
            **data["data"],
            "sources": [
                s
                for s in data["data"]["sources"]
                if s.get("task") is None or s["task"] in tasks
            ],
        }
    return Config(data, config.source)


def _single_task_config(config: Config, task: str) -> Config:
    return _subset_config(config, [task], balanced=False)


def _training_data(data: data_module.Data, tasks: list[str]) -> Any:
    """The training data of `tasks`: a stream's or mixed sources' own
    `only(tasks)`, or the arrays with those tasks' labels."""
    if hasattr(data.train, "only"):
        return data.train.only(tasks)
    return data.train.x, {t: data.train.y[t] for t in tasks}


def _split_for(split: data_module.Split | None, tasks: list[str]) -> Any:
    if split is None:
        return None
    return split.x, {t: split.y[t] for t in tasks}


def train_once(
    config: Config,
    data: data_module.Data,
    seed: int,
    verbose: int = 0,
    callbacks: list | None = None,
    checkpoints: Path | None = None,
) -> dict[str, Any]:
    """Builds, compiles and trains the config's model once; scores it.

    With `checkpoints` (a folder), training writes atomic checkpoints there
    (every epoch's end, every `[training] checkpoint_every` steps if set, and
    every `[training] checkpoint_minutes` within an epoch, default 5) and
    resumes from the newest one it finds."""
    keras.utils.set_random_seed(seed)
    training = config.training()
    model = config.build_model(data.tabular_spec)
    # What `mtl evaluate`/`predict` need to encode raw data, saved with the model.
    model.recipe = {
        **model.recipe,
        "vocabularies": data.vocabularies,
        "labels": data.labels,
    }
    model.compile(**config.compile_kwargs())
    names = model.task_names
    train = _training_data(data, names)
    fit_args: dict[str, Any] = {
        "epochs": training.get("epochs"),
        "early_stopping": training.get("early_stopping"),
        "class_weight": training.get("class_weight"),
        "verbose": verbose,
        "callbacks": list(callbacks or []),
    }
    buckets = training.get("buckets")
    if buckets and not isinstance(train, tuple):
        kind = (
            "several mixed sources"
            if isinstance(train, data_module.MixedBatches)
            else "a stream"
        )
        raise config.error(
            "[training].buckets",
            f"needs the training data in memory as one table or data set, not {kind}.",
        )
    if buckets:
        fit_args["x"] = data_module.BucketedBatches(
            train[0],
            train[1],
            batch_size=training.get("batch_size", 64),
            buckets=buckets,
            sequence_inputs=config.byte_inputs(),
            shuffle=training.get("shuffle", True),
            seed=seed,
        )
    elif isinstance(train, tuple):
        fit_args.update(
            x=train[0],
            y=train[1],
            batch_size=training.get("batch_size", 64),
            shuffle=training.get("shuffle", True),
        )
    else:
        train.seed = seed
        fit_args["x"] = train
    val = _split_for(data.val, names)
    if val is not None:
        fit_args["validation_data"] = val
    _share_between_processes(fit_args, seed)
    if checkpoints is not None:
        fit_args["callbacks"].append(
            Checkpoint(
                checkpoints,
                every=training.get("checkpoint_every", "epoch"),
                seed=seed,
                minutes=training.get("checkpoint_minutes", CHECKPOINT_MINUTES) or None,
            )
        )
    history = model.fit(**fit_args)
    scores = {}
    for name in ("val", "test"):
        split = getattr(data, name)
        if split is None:
            continue
        preds = _predictions(model, split.x)
        scores[name] = {
            t.name: task_scores(t, split.y[t.name], preds[t.name]) for t in model.tasks
        }
    return {
        "model": model,
        "seed": seed,
        "scores": scores,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
    }


def _collective_evaluation() -> bool:
    """Whether `evaluate` and `predict` span the processes (JAX: each
    process feeds its block of the split), rather than each process running
    them alone on everything (a PyTorch process group)."""
    return keras.backend.backend() == "jax"


def _share_between_processes(fit_args: dict[str, Any], seed: int) -> None:
    """With several processes, each trains on its share of every global
    batch (`keras_mtl.data.shares.ProcessShare`) and, on JAX, validates on
    its block of the validation split; nothing changes with one process."""
    index, count = mtl_backend.processes()
    if count == 1:
        return
    if "y" in fit_args:
        fit_args["x"] = data_module.ArrayBatches(
            fit_args["x"],
            fit_args.pop("y"),
            batch_size=fit_args.pop("batch_size"),
            shuffle=fit_args.pop("shuffle"),
            seed=seed,
        )
    fit_args["x"] = shares.ProcessShare(fit_args["x"], index, count)
    val = fit_args.get("validation_data")
    if val is not None and _collective_evaluation():
        fit_args["validation_data"] = shares.split_share(*val, index, count)


def _predictions(model: Any, x: Any) -> dict[str, np.ndarray]:
    """The model's predictions for every row of `x`, in every process
    (with several JAX processes each predicts its block, then they are
    gathered)."""
    index, count = mtl_backend.processes()
    if count == 1 or not _collective_evaluation():
        return model.predict_tasks(x, batch_size=256)
    n = len(keras.tree.flatten(x)[0])
    block, _ = shares.split_share(x, None, index, count)
    return shares.gather_rows(model.predict_tasks(block, batch_size=256), n)


def run(
    config: Config | str | Path | dict,
    seeds: int = 1,
    baselines: bool = False,
    verbose: int = 0,
    log: Callable[[str], None] = print,
    checkpoints: Path | None = None,
    groups: list[list[str]] | None = None,
    data: data_module.Data | None = None,
) -> dict[str, Any]:
    """Trains the multi-task model (and the single-task baselines) over
    `seeds` seeds and summarises the scores: what `mtl train` runs, as
    `keras_mtl.run` from Python.

    `config` is a `keras_mtl.Config`, the path of a TOML file, or the dict a
    TOML file would hold. With `baselines`, each task is also trained alone
    (the same encoder and head, on its own data) and Δm% of the multi-task
    model against them is computed per seed and summarised with its 95%
    interval (`result["delta_m"]["test"]`), beside the bag-of-words
    yardstick for text tasks.

    With `groups` (lists of task names, every task in one at least), each
    group of two or more tasks is also trained as its own multi-task model,
    and the `grouped` model serves each task from the first group that holds
    it (a group of one: the single-task model).

    Returns:
        A JSON-ready dict: `runs` (per seed and model: scores and history),
        `summary` (per model, task, split and score: mean, std, 95%
        interval; with baselines also the bag-of-words yardstick), `delta_m`
        (per split, over seeds; `delta_m_grouped` for the groups) and `data`
        (what loading did). The first seed's multi-task model is under
        `model`.

    With `checkpoints` (a folder), each model and seed checkpoints into its
    own subfolder and resumes from it: a run killed at any point and run
    again with the same arguments ends as if it had never stopped.
    """

    if not isinstance(config, Config):
        config = (
            Config(dict(config), "<dict>")
            if isinstance(config, dict)
            else Config.load(config)
        )

    def folder(name: str, seed: int) -> Path | None:
        if checkpoints is None:
            return None
        return Path(checkpoints) / f"{name.replace(':', '-')}-seed{seed}"

    base_seed = config.training().get("seed", 0)
    data = data or data_module.load(config)
    log(describe_data(data))
    runs: list[dict[str, Any]] = []
    first_model = None
    task_names = [t["name"] for t in config.data["tasks"]]
    for i in range(seeds):
        seed = base_seed + i
        result = train_once(
            config, data, seed, verbose, checkpoints=folder(MULTI, seed)
        )
        if first_model is None:
            first_model = result["model"]
        runs.append(
            {
                "model": MULTI,
                "seed": seed,
                "scores": result["scores"],
                "history": result["history"],
            }
        )
        log(f"seed {seed}: multi-task " + brief(result["scores"]))
        if baselines and len(task_names) > 1:
            for task in task_names:
                single = train_once(
                    _single_task_config(config, task),
                    data,
                    seed,
                    verbose,
                    checkpoints=folder(f"{SINGLE}:{task}", seed),
                )
                runs.append(
                    {
                        "model": f"{SINGLE}:{task}",
                        "seed": seed,
                        "scores": single["scores"],
                        "history": single["history"],
                    }
                )
                log(f"seed {seed}: single-task {task} " + brief(single["scores"]))
        if groups:
            runs += _train_groups(config, data, seed, groups, runs, verbose, log)
    summary = summarize_runs(runs, task_names)
    if baselines:
        yard = bag_of_words(config, data, first_model)
        if yard:
            summary[YARDSTICK] = {
                split: {
                    task: {m: summarize([v]) for m, v in scores.items()}
                    for task, scores in tasks.items()
                }
                for split, tasks in yard.items()
            }
            for split, tasks in yard.items():
                if tasks:
                    log(f"{yardstick.LABEL} " + brief({split: tasks}))
    result: dict[str, Any] = {
        "data": data.info,
        "seeds": [r["seed"] for r in runs if r["model"] == MULTI],
        "runs": runs,
        "summary": summary,
    }
    if groups:
        result["groups"] = groups
    if baselines and len(task_names) > 1:
        result["delta_m"] = delta_m_of_runs(runs, task_names)
        if groups:
            result["delta_m_grouped"] = delta_m_of_runs(runs, task_names, GROUPED)
    result["model"] = first_model
    return result


def _train_groups(
    config: Config,
    data: data_module.Data,
    seed: int,
    groups: list[list[str]],
    runs: list[dict[str, Any]],
    verbose: int,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One seed's group models, and the `grouped` run assembled from them."""
    out = []
    by_group: dict[tuple[str, ...], dict[str, Any]] = {}
    for group in groups:
        key = tuple(group)
        if len(group) == 1:
            done = next(
                (
                    r
                    for r in runs
                    if r["model"] == f"{SINGLE}:{group[0]}" and r["seed"] == seed
                ),
                None,
            )
            if done is not None:
                by_group[key] = done
                continue
        trained = train_once(_subset_config(config, list(group)), data, seed, verbose)
        name = f"{GROUP}:{'+'.join(group)}"
        entry = {
            "model": name,
            "seed": seed,
            "scores": trained["scores"],
            "history": trained["history"],
        }
        out.append(entry)
        by_group[key] = entry
        log(f"seed {seed}: group {'+'.join(group)} " + brief(trained["scores"]))
    serving = {}
    for group in groups:
        for task in group:
            serving.setdefault(task, by_group[tuple(group)])
    scores: dict[str, Any] = {}
    for split in next(iter(by_group.values()))["scores"]:
        scores[split] = {t: r["scores"][split][t] for t, r in serving.items()}
    out.append({"model": GROUPED, "seed": seed, "scores": scores, "history": {}})
    return out


def affinity(
    config: Config,
    every: int = 10,
    verbose: int = 0,
    log: Callable[[str], None] = print,
    data: data_module.Data | None = None,
) -> Any:
    """Trains the config's model once (summed losses, no balancer) and
    measures its tasks' affinities every `every` steps
    (`keras_mtl.analysis.task_affinity`)."""
    from keras_mtl.analysis import affinity as affinity_module

    data = data or data_module.load(config)
    log(describe_data(data))
    names = [t["name"] for t in config.data["tasks"]]
    if len(names) < 2:
        raise config.error("[[tasks]]", "lists one task: affinity needs two or more.")
    train = _training_data(data, names)
    if not isinstance(train, tuple | data_module.MixedBatches):
        raise config.error(
            "[data]", "streams its training data: affinity needs it in memory."
        )
    x, y = train if isinstance(train, tuple) else (train, None)
    seed = config.training().get("seed", 0)
    recorder = affinity_module.AffinityRecorder(
        affinity_module.batches_of(x, y, 256, seed), every
    )
    train_once(
        _subset_config(config, names, balanced=False),
        data,
        seed,
        verbose,
        callbacks=[recorder],
    )
    return recorder.result()


def _training_arrays(data: data_module.Data, tasks: list[Any]) -> Any:
    """The training split as `(x, y)` arrays, several sources stacked (each
    row unlabelled for the tasks of other sources); None for a stream."""
    if isinstance(data.train, data_module.Split):
        return data.train.x, data.train.y
    if not isinstance(data.train, data_module.MixedBatches):
        return None
    sources = data.train.sources
    x = {
        name: np.concatenate([np.asarray(s.x[name]) for s in sources])
        for name in sources[0].x
    }
    y = {}
    for task in tasks:
        parts = []
        for s in sources:
            if task.name in s.y:
                parts.append(np.asarray(s.y[task.name]))
            else:
                parts.append(missing_label(task, (len(s),)))
        shapes = {p.shape[1:] for p in parts if p.ndim > 1}
        if shapes:
            parts = [p.reshape(len(p), *next(iter(shapes))) for p in parts]
        y[task.name] = np.concatenate([p.astype(np.float64) for p in parts])
    return x, y


def bag_of_words(
    config: Config, data: data_module.Data, model: Any
) -> dict[str, dict[str, dict[str, float]]]:
    """The yardstick (`keras_mtl.evaluation.yardstick`) on the run's own split, for every
    binary or multiclass task that reads byte-encoded text only."""
    text_inputs = config.byte_inputs()
    train = _training_arrays(data, model.tasks)
    if not text_inputs or train is None:
        return {}
    splits = {
        name: (split.x, split.y)
        for name in ("val", "test")
        if (split := getattr(data, name)) is not None
    }
    return yardstick.scores(model.tasks, text_inputs, train, splits)
