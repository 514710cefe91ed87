"""The checks of a config, one function per table.

Each mistake is reported in one sentence naming the file, the key, what was
expected and what came, with the closest valid name (`ConfigError`).
"""

from __future__ import annotations

from typing import Any

import keras

from keras_mtl import architectures, balancers, encoders, fusion
from keras_mtl.config.schema import (
    ENCODINGS,
    EVALUATION_KEYS,
    INPUT_KEYS,
    INPUT_TYPES,
    MODEL_KEYS,
    SECTIONS,
    TRAINING_KEYS,
    TRAINING_TYPES,
    annotations,
    compile_keys,
    constructor_annotations,
    constructor_params,
    describe,
    params,
    type_problem,
)
from keras_mtl.data import DATA_KEYS, SOURCE_KEYS, SOURCES
from keras_mtl.data.buckets import bucket_problem
from keras_mtl.encoders.base import SequenceEncoder
from keras_mtl.tasks.task import KINDS, Task, closest

Config = Any  # keras_mtl.config.Config: the object being checked


def keys(
    config: Config,
    table: Any,
    where: str,
    allowed: list[str] | tuple[str, ...],
    what: str,
    types: dict[str, str] | None = None,
) -> None:
    """`table` is a table whose keys are all `allowed`, of their `types`."""
    if not isinstance(table, dict):
        raise config.error(where, f"must be a table, got {describe(table)}.")
    _known(config, table, where, allowed, f"a key of {what}")
    check_types(config, table, where, types or {})


def _known(config: Config, table: dict, where: str, allowed: Any, what: str) -> None:
    for key in table:
        if key not in allowed:
            raise config.error(
                f"{where}.{key}",
                f"is not {what}{closest(key, list(allowed))}; expected one "
                f"of {', '.join(allowed)}.",
            )


def check_types(config: Config, table: dict, where: str, types: dict[str, str]) -> None:
    for key, value in table.items():
        expected = type_problem(value, types[key]) if key in types else None
        if expected:
            raise config.error(
                f"{where}.{key}", f"must be {expected}, got {describe(value)}."
            )


def choice(config: Config, value: Any, where: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise config.error(
            where,
            f"must be one of {', '.join(choices)}, got {value!r}"
            f"{closest(str(value), list(choices))}.",
        )


def named(
    config: Config, value: Any, where: str, registry: dict[str, Any], what: str
) -> tuple[str, dict[str, Any]]:
    """A `name` or `{name = ..., **arguments}` entry, checked: the name and
    the arguments."""
    if isinstance(value, str):
        name, args = value, {}
    elif isinstance(value, dict):
        if "name" not in value:
            raise config.error(where, f'must name the {what} (name = "...").')
        args = {k: v for k, v in value.items() if k != "name"}
        name = value["name"]
    else:
        raise config.error(
            where, f"must be a {what} name or a table, got {describe(value)}."
        )
    if not isinstance(name, str):
        raise config.error(
            f"{where}.name", f"must be the {what}'s name, got {describe(name)}."
        )
    if name not in registry:
        raise config.error(
            where,
            f"names an unknown {what} {name!r}{closest(str(name), list(registry))}; "
            f"expected one of {', '.join(registry)}.",
        )
    allowed = constructor_params(registry[name])
    _known(config, args, where, allowed, f"an argument of {what} {name!r}")
    check_types(config, args, where, constructor_annotations(registry[name]))
    return name, args


def default_encoder(config: Config) -> dict[str, Any] | None:
    """The encoder of a config without `[encoder]`: the bag of hashed n-grams
    (`NgramEncoder`) over its text inputs, or None when the inputs are not
    text."""
    tables = [t for t in config.data["inputs"].values() if isinstance(t, dict)]
    if len(tables) != len(config.data["inputs"]):
        return None  # reported by the input checks
    words = [t for t in tables if t.get("encoding") == "words"]
    if words and len(words) == len(tables):
        size = max(int(t.get("vocabulary_size", 20000)) for t in words)
        return {"name": "ngrams", "tokens": "words", "vocab_size": size + 2}
    if tables and len(config.byte_inputs()) == len(tables):
        return {"name": "ngrams"}
    return None


def validate(config: Config) -> None:
    """Checks every table of `config.data`, filling in the default encoder
    where `[encoder]` is left out."""
    d = config.data
    for key in d:
        if key not in SECTIONS:
            raise config.error(
                key,
                f"is not a section{closest(key, list(SECTIONS))}; "
                f"expected one of {', '.join(SECTIONS)}.",
            )
    tabular = (
        isinstance(d.get("encoder"), dict) and d["encoder"].get("name") == "tabular"
    )
    if "encoder" not in d and isinstance(d.get("inputs"), dict):
        default = default_encoder(config)
        if default is not None:
            d["encoder"] = default
    for required in ("encoder", "tasks") if tabular else ("inputs", "encoder", "tasks"):
        if required not in d:
            raise config.error(f"[{required}]", "is missing.")
    if tabular:
        d.setdefault("inputs", {})
    _model(config, d.get("model", {}))
    _inputs(config, d["inputs"], tabular)
    _encoder(config, d["encoder"])
    _tasks(config, d["tasks"], d["inputs"])
    _compile(config, d.get("compile", {}))
    _training(config, d.get("training", {}), d["tasks"])
    keys(
        config, d.get("evaluation", {}), "[evaluation]", EVALUATION_KEYS, "[evaluation]"
    )
    for key in ("epochs", "batch_size", "seeds"):
        for section in ("training", "evaluation"):
            value = d.get(section, {}).get(key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise config.error(
                    f"[{section}].{key}", f"must be a whole number >= 1, got {value!r}."
                )
    if "data" in d:
        _data(config, d["data"])


def _model(config: Config, model: Any) -> None:
    keys(config, model, "[model]", MODEL_KEYS, "[model]")
    if "fusion" in model:
        named(config, model["fusion"], "[model].fusion", fusion.FUSIONS, "fusion")
    if "architecture" in model:
        named(
            config,
            model["architecture"],
            "[model].architecture",
            architectures.ARCHITECTURES,
            "architecture",
        )


def _inputs(config: Config, inputs: Any, tabular: bool) -> None:
    if not isinstance(inputs, dict) or (not inputs and not tabular):
        raise config.error(
            "[inputs]",
            "must hold one table per input, e.g. [inputs.text] shape = [280].",
        )
    for name, table in inputs.items():
        where = f"[inputs.{name}]"
        keys(config, table, where, INPUT_KEYS, "an input", INPUT_TYPES)
        if "encoding" in table:
            choice(config, table["encoding"], f"{where}.encoding", ENCODINGS)
        shape = table.get("shape", [1])
        if not (
            isinstance(shape, list) and all(isinstance(s, int) and s > 0 for s in shape)
        ):
            raise config.error(
                f"{where}.shape", f"must be a list of positive integers, got {shape!r}."
            )


def _encoder(config: Config, encoder: Any) -> None:
    if not isinstance(encoder, dict) or "name" not in encoder:
        raise config.error("[encoder]", 'must name the encoder (name = "lstm", ...).')
    if encoder["name"] == "tabular":
        return
    named(config, encoder, "[encoder]", encoders.ENCODERS, "encoder")
    sequence = issubclass(encoders.ENCODERS[encoder["name"]], SequenceEncoder)
    if sequence and encoder.get("symbols") is None:
        inputs = config.data["inputs"]
        ids = config.byte_inputs() + [
            n for n, t in inputs.items() if t.get("encoding") == "words"
        ]
        if ids:
            raise config.error(
                "[encoder].symbols",
                f"is missing: input {ids[0]!r} holds token ids, which a "
                f'{encoder["name"]} encoder reads with symbols = "embedding" (a '
                'learned embedding) or "onehot" (byte ids), not as float sequences.',
            )


def _tasks(config: Config, tasks: Any, inputs: dict[str, Any]) -> None:
    if not isinstance(tasks, list) or not tasks:
        raise config.error("[[tasks]]", "must list at least one task.")
    task_keys = params(Task.__init__)
    for i, table in enumerate(tasks):
        where = f"tasks[{i}]"
        keys(config, table, where, task_keys, "a task", annotations(Task.__init__))
        if "name" not in table:
            raise config.error(where, "has no name.")
        choice(config, table.get("kind", "binary"), f"{where}.kind", KINDS)
        unknown = [x for x in table.get("inputs") or [] if x not in inputs]
        if unknown:
            raise config.error(
                f"{where}.inputs",
                f"names input {unknown[0]!r}, but the inputs are "
                f"{', '.join(inputs)}{closest(unknown[0], list(inputs))}.",
            )


def _compile(config: Config, comp: Any) -> None:
    allowed, types = compile_keys()
    keys(config, comp, "[compile]", allowed, "compile()", types)
    if "balancer" in comp:
        named(
            config,
            comp["balancer"],
            "[compile].balancer",
            balancers.BALANCERS,
            "balancer",
        )
    for key, choices in (
        ("on_nonfinite", ("stop", "skip", "off")),
        ("balance_mode", ("parameter", "representation")),
    ):
        if key in comp:
            choice(config, comp[key], f"[compile].{key}", choices)
    if "optimizer" in comp:
        opt = comp["optimizer"]
        name = (
            opt
            if isinstance(opt, str)
            else opt.get("name")
            if isinstance(opt, dict)
            else None
        )
        if name is None:
            raise config.error(
                "[compile].optimizer",
                'must be an optimizer name or a table with name = "...".',
            )
        try:
            keras.optimizers.get(name)
        except ValueError:
            raise config.error(
                "[compile].optimizer", f"names an unknown optimizer {name!r}."
            ) from None


def _training(config: Config, training: Any, tasks: list[dict[str, Any]]) -> None:
    if not isinstance(training, dict):
        raise config.error("[training]", f"must be a table, got {describe(training)}.")
    every = training.get("checkpoint_every", "epoch")
    if every != "epoch" and (
        not isinstance(every, int) or isinstance(every, bool) or every < 1
    ):
        raise config.error(
            "[training].checkpoint_every",
            f'must be "epoch" or a whole number of steps >= 1, got {every!r}.',
        )
    minutes = training.get("checkpoint_minutes", 5.0)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes < 0:
        raise config.error(
            "[training].checkpoint_minutes",
            f"must be a number of minutes >= 0 (0: only at epoch ends), got {minutes!r}.",
        )
    keys(config, training, "[training]", TRAINING_KEYS, "[training]", TRAINING_TYPES)
    weights = training.get("class_weight")
    if weights is not None:
        names = [t.get("name") for t in tasks]
        if isinstance(weights, str) and weights != "balanced":
            raise config.error(
                "[training].class_weight",
                f'must be "balanced" or a table by task name, got {weights!r}.',
            )
        for name in weights if isinstance(weights, dict) else []:
            if name not in names:
                raise config.error(
                    f"[training].class_weight.{name}",
                    f"names no task{closest(name, names)}; the tasks are "
                    f"{', '.join(names)}.",
                )
    buckets = training.get("buckets")
    if buckets is not None:
        problem = bucket_problem(buckets)
        if problem:
            raise config.error("[training].buckets", problem)
        if not config.byte_inputs():
            raise config.error(
                "[training].buckets",
                "cuts the padding of byte-encoded text inputs, but no input "
                'has encoding = "bytes" (or dtype = "uint8" and one dimension).',
            )


def _data(config: Config, table: Any) -> None:
    """The `[data]` table: a source of files or a data set, or a list of
    `[[data.sources]]`."""
    if not isinstance(table, dict):
        raise config.error("[data]", "must be a table.")
    keys(config, table, "[data]", DATA_KEYS, "[data]")
    if "sources" in table:
        if not isinstance(table["sources"], list) or not table["sources"]:
            raise config.error("[[data.sources]]", "must list at least one source.")
        tasks = {t.get("name") for t in config.data.get("tasks", [])}
        for i, source in enumerate(table["sources"]):
            where = f"data.sources[{i}]"
            if not isinstance(source, dict):
                raise config.error(where, "must be a table.")
            keys(config, source, where, SOURCE_KEYS, "a data source")
            if source.get("format") == "tweeteval":
                if "path" not in source or "task" not in source:
                    raise config.error(
                        where,
                        "is a tweeteval source: give its path and the "
                        "task its labels belong to.",
                    )
                if source["task"] not in tasks:
                    raise config.error(
                        f"{where}.task",
                        f"names task {source['task']!r}, which is not in "
                        f"[[tasks]]{closest(str(source['task']), sorted(tasks))}.",
                    )
        return
    source = table.get("source", "files")
    choice(config, source, "[data].source", SOURCES)
    if source == "files" and "train" not in table:
        raise config.error("[data]", 'reads files: give at least train = "path".')
    if source == "census_income" and "path" not in table:
        raise config.error("[data]", "reads census_income: give its path.")
