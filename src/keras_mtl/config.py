"""TOML configs: one table per part of the Python API, key for key.

A config file holds these tables, each mapped onto one call:

* `[model]` -> `build_model(name=, fusion=, architecture=)`;
* `[inputs.<name>]` -> `keras.Input(shape=, dtype=)` plus how raw data fills
  the input (`column`, `encoding`);
* `[encoder]` -> `keras_mtl.encoders.get(name, **rest)` (or
  `name = "tabular"` for a `TabularEncoder` learned from the training data);
* `[[tasks]]` -> `Task(**table)`;
* `[compile]` -> `model.compile(**table)` (`optimizer` and `balancer` may be
  a name or a table with `name` and arguments);
* `[training]` -> `fit` arguments (`epochs`, `batch_size`, `seed`, ...);
* `[data]` -> the loaders of `keras_mtl.data`;
* `[evaluation]` -> `mtl train`'s evaluation (`seeds`, `baselines`).

Every key is checked against the signature it maps onto; a mistake is
reported in one sentence naming the file, the key, what was expected and
what came, with the closest valid name. Configs are data: nothing in them is
evaluated as code.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import tomllib

from keras_mtl import architectures, balancers, encoders, fusion
from keras_mtl.errors import ConfigError
from keras_mtl.task import KINDS, Task, closest

SECTIONS = (
    "model",
    "inputs",
    "encoder",
    "tasks",
    "compile",
    "training",
    "data",
    "evaluation",
)
MODEL_KEYS = ("name", "fusion", "architecture")
INPUT_KEYS = ("shape", "dtype", "column", "encoding", "length", "vocabulary_size")
INPUT_TYPES = {
    "shape": "list",
    "dtype": "str",
    "column": "str",
    "encoding": "str",
    "length": "int",
    "vocabulary_size": "int",
}
ENCODINGS = ("bytes", "words", "number", "numbers", "id")
TRAINING_KEYS = (
    "epochs",
    "batch_size",
    "seed",
    "shuffle",
    "validation_split",
    "early_stopping",
    "steps_per_epoch",
    "sampling",
    "temperature",
    "checkpoint_every",
    "checkpoint_minutes",
    "buckets",
    "class_weight",
)
TRAINING_TYPES = {
    "epochs": "int",
    "batch_size": "int",
    "seed": "int",
    "shuffle": "bool",
    "validation_split": "float",
    "early_stopping": "int",
    "steps_per_epoch": "int",
    "sampling": "str",
    "temperature": "float",
    "checkpoint_every": "int | str",
    "checkpoint_minutes": "float",
    "buckets": "list",
    "class_weight": "str | dict",
}
EVALUATION_KEYS = ("seeds", "baselines", "splits")
COMPILE_EXTRA = ("run_eagerly", "steps_per_execution", "jit_compile", "auto_scale_loss")


def _params(func: Callable) -> list[str]:
    return [
        p.name
        for p in inspect.signature(func).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"
    ]


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "None": lambda v: v is None,
    "list": lambda v: isinstance(v, list),
    "tuple": lambda v: isinstance(v, list),
    "Sequence": lambda v: isinstance(v, list),
    "dict": lambda v: isinstance(v, dict),
    "Mapping": lambda v: isinstance(v, dict),
}
_TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "list": "a list",
    "tuple": "a list",
    "Sequence": "a list",
    "dict": "a table",
    "Mapping": "a table",
}


def _annotations(func: Callable) -> dict[str, str]:
    """Each argument's annotation as written (strings, from __future__)."""
    out = {}
    for p in inspect.signature(func).parameters.values():
        if p.annotation is not inspect.Parameter.empty:
            out[p.name] = (
                p.annotation if isinstance(p.annotation, str) else str(p.annotation)
            )
    return out


def _constructor_annotations(cls: type) -> dict[str, str]:
    out: dict[str, str] = {}
    for klass in cls.__mro__:
        if klass in (keras.layers.Layer, object) or klass.__module__.startswith(
            "keras."
        ):
            break
        init = klass.__dict__.get("__init__")
        if init is not None:
            for key, value in _annotations(init).items():
                out.setdefault(key, value)
    return out


def _type_problem(value: Any, annotation: str) -> str | None:
    """What a config value should have been, or None when it fits (or the
    annotation says nothing checkable)."""
    alternatives = [a.strip().split("[", 1)[0] for a in annotation.split("|")]
    alternatives = [a.rsplit(".", 1)[-1] for a in alternatives]
    if any(a not in _TYPE_CHECKS for a in alternatives):
        return None  # Any, a class, a callable: checked where it is used
    if any(_TYPE_CHECKS[a](value) for a in alternatives):
        return None
    words = [_TYPE_WORDS[a] for a in alternatives if a in _TYPE_WORDS]
    return " or ".join(dict.fromkeys(words))


def _constructor_params(cls: type) -> list[str]:
    """The arguments a library class takes, its bases' included (up to the
    Keras layer base, whose arguments configs do not set)."""
    out: list[str] = []
    for klass in cls.__mro__:
        if klass in (keras.layers.Layer, object) or klass.__module__.startswith(
            "keras."
        ):
            break
        init = klass.__dict__.get("__init__")
        if init is not None:
            out += [p for p in _params(init) if p not in out]
    return out


class Config:
    """A validated config.

    Args:
        data: The parsed TOML (a dict of tables).
        source: Where it came from, for messages.
    """

    def __init__(self, data: dict[str, Any], source: str = "<config>") -> None:
        self.data = copy.deepcopy(data)
        self.source = source
        self._validate()

    # ------------------------------------------------------------ loading

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Reads and validates a TOML file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file.")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML ({error}).") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a UTF-8 text file.") from None
        return cls(data, str(path))

    @classmethod
    def from_string(cls, text: str, source: str = "<string>") -> Config:
        try:
            return cls(tomllib.loads(text), source)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{source}: not valid TOML ({error}).") from None

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key} {message}")

    # --------------------------------------------------------- validation

    def _keys(
        self,
        table: Any,
        where: str,
        allowed: list[str] | tuple[str, ...],
        what: str,
        types: dict[str, str] | None = None,
    ) -> None:
        if not isinstance(table, dict):
            raise self.error(where, f"must be a table, got {_describe(table)}.")
        for key in table:
            if key not in allowed:
                raise self.error(
                    f"{where}.{key}",
                    f"is not a key of {what}{closest(key, list(allowed))}; expected one "
                    f"of {', '.join(allowed)}.",
                )
        self._types(table, where, types or {})

    def _types(self, table: dict, where: str, types: dict[str, str]) -> None:
        for key, value in table.items():
            expected = _type_problem(value, types[key]) if key in types else None
            if expected:
                raise self.error(
                    f"{where}.{key}", f"must be {expected}, got {_describe(value)}."
                )

    def _named(
        self, value: Any, where: str, registry: dict[str, Any], what: str
    ) -> tuple[str, dict[str, Any]]:
        """A `name` or `{name = ..., **arguments}` entry, checked."""
        if isinstance(value, str):
            name, args = value, {}
        elif isinstance(value, dict):
            if "name" not in value:
                raise self.error(where, f'must name the {what} (name = "...").')
            args = {k: v for k, v in value.items() if k != "name"}
            name = value["name"]
        else:
            raise self.error(
                where, f"must be a {what} name or a table, got {_describe(value)}."
            )
        if not isinstance(name, str):
            raise self.error(
                f"{where}.name", f"must be the {what}'s name, got {_describe(name)}."
            )
        if name not in registry:
            raise self.error(
                where,
                f"names an unknown {what} {name!r}"
                f"{closest(str(name), list(registry))}; expected one of "
                f"{', '.join(registry)}.",
            )
        allowed = _constructor_params(registry[name])
        for key in args:
            if key not in allowed:
                raise self.error(
                    f"{where}.{key}",
                    f"is not an argument of {what} {name!r}{closest(key, allowed)}; "
                    f"expected one of {', '.join(allowed)}.",
                )
        self._types(args, where, _constructor_annotations(registry[name]))
        return name, args

    def _default_encoder(self) -> dict[str, Any] | None:
        """The encoder of a config without `[encoder]`: the bag of hashed
        n-grams (`NgramEncoder`) over its text inputs, or None when the inputs
        are not text."""
        tables = [t for t in self.data["inputs"].values() if isinstance(t, dict)]
        if len(tables) != len(self.data["inputs"]):
            return None  # reported by the input checks
        words = [t for t in tables if t.get("encoding") == "words"]
        if words and len(words) == len(tables):
            size = max(int(t.get("vocabulary_size", 20000)) for t in words)
            return {"name": "ngrams", "tokens": "words", "vocab_size": size + 2}
        if tables and len(self.byte_inputs()) == len(tables):
            return {"name": "ngrams"}
        return None

    def _validate(self) -> None:
        d = self.data
        for key in d:
            if key not in SECTIONS:
                raise self.error(
                    key,
                    f"is not a section{closest(key, list(SECTIONS))}; "
                    f"expected one of {', '.join(SECTIONS)}.",
                )
        tabular = (
            isinstance(d.get("encoder"), dict) and d["encoder"].get("name") == "tabular"
        )
        if "encoder" not in d and isinstance(d.get("inputs"), dict):
            default = self._default_encoder()
            if default is not None:
                d["encoder"] = default
        for required in (
            ("encoder", "tasks") if tabular else ("inputs", "encoder", "tasks")
        ):
            if required not in d:
                raise self.error(f"[{required}]", "is missing.")
        if tabular:
            d.setdefault("inputs", {})
        self._keys(d.get("model", {}), "[model]", MODEL_KEYS, "[model]")
        model = d.get("model", {})
        if "fusion" in model:
            self._named(model["fusion"], "[model].fusion", fusion.FUSIONS, "fusion")
        if "architecture" in model:
            self._named(
                model["architecture"],
                "[model].architecture",
                architectures.ARCHITECTURES,
                "architecture",
            )
        inputs = d["inputs"]
        if not isinstance(inputs, dict) or (not inputs and not tabular):
            raise self.error(
                "[inputs]",
                "must hold one table per input, e.g. [inputs.text] shape = [280].",
            )
        for name, table in inputs.items():
            self._keys(table, f"[inputs.{name}]", INPUT_KEYS, "an input", INPUT_TYPES)
            if "encoding" in table and table["encoding"] not in ENCODINGS:
                raise self.error(
                    f"[inputs.{name}].encoding",
                    f"must be one of {', '.join(ENCODINGS)}, got "
                    f"{table['encoding']!r}{closest(str(table['encoding']), ENCODINGS)}.",
                )
            if "shape" in table and not (
                isinstance(table["shape"], list)
                and all(isinstance(s, int) and s > 0 for s in table["shape"])
            ):
                raise self.error(
                    f"[inputs.{name}].shape",
                    f"must be a list of positive integers, got {table['shape']!r}.",
                )
        encoder = d["encoder"]
        if not isinstance(encoder, dict) or "name" not in encoder:
            raise self.error("[encoder]", 'must name the encoder (name = "lstm", ...).')
        if encoder["name"] != "tabular":
            self._named(encoder, "[encoder]", encoders.ENCODERS, "encoder")
        tasks = d["tasks"]
        if not isinstance(tasks, list) or not tasks:
            raise self.error("[[tasks]]", "must list at least one task.")
        task_keys = _params(Task.__init__)
        for i, table in enumerate(tasks):
            self._keys(
                table, f"tasks[{i}]", task_keys, "a task", _annotations(Task.__init__)
            )
            if "name" not in table:
                raise self.error(f"tasks[{i}]", "has no name.")
            kind = table.get("kind", "binary")
            if kind not in KINDS:
                raise self.error(
                    f"tasks[{i}].kind",
                    f"must be one of {', '.join(KINDS)}, got {kind!r}"
                    f"{closest(str(kind), KINDS)}.",
                )
            unknown = [x for x in table.get("inputs") or [] if x not in inputs]
            if unknown:
                raise self.error(
                    f"tasks[{i}].inputs",
                    f"names input {unknown[0]!r}, but the inputs are "
                    f"{', '.join(inputs)}{closest(unknown[0], list(inputs))}.",
                )
        compile_keys = [k for k in _params(_compile_signature) if k != "self"]
        self._keys(
            d.get("compile", {}),
            "[compile]",
            compile_keys,
            "compile()",
            _annotations(_compile_signature),
        )
        comp = d.get("compile", {})
        if "balancer" in comp:
            self._named(
                comp["balancer"], "[compile].balancer", balancers.BALANCERS, "balancer"
            )
        for key, choices in (
            ("on_nonfinite", ("stop", "skip", "off")),
            ("balance_mode", ("parameter", "representation")),
        ):
            if key in comp and comp[key] not in choices:
                raise self.error(
                    f"[compile].{key}",
                    f"must be one of {', '.join(choices)}, got {comp[key]!r}"
                    f"{closest(str(comp[key]), list(choices))}.",
                )
        training = d.get("training", {})
        if not isinstance(training, dict):
            raise self.error(
                "[training]", f"must be a table, got {_describe(training)}."
            )
        every = training.get("checkpoint_every", "epoch")
        if every != "epoch" and (
            not isinstance(every, int) or isinstance(every, bool) or every < 1
        ):
            raise self.error(
                "[training].checkpoint_every",
                f'must be "epoch" or a whole number of steps >= 1, got {every!r}.',
            )
        minutes = training.get("checkpoint_minutes", 5.0)
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int | float)
            or minutes < 0
        ):
            raise self.error(
                "[training].checkpoint_minutes",
                f"must be a number of minutes >= 0 (0: only at epoch ends), got {minutes!r}.",
            )
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
                raise self.error(
                    "[compile].optimizer",
                    'must be an optimizer name or a table with name = "...".',
                )
            try:
                keras.optimizers.get(name)
            except ValueError:
                raise self.error(
                    "[compile].optimizer", f"names an unknown optimizer {name!r}."
                ) from None
        self._keys(
            d.get("training", {}),
            "[training]",
            TRAINING_KEYS,
            "[training]",
            TRAINING_TYPES,
        )
        self._keys(
            d.get("evaluation", {}), "[evaluation]", EVALUATION_KEYS, "[evaluation]"
        )
        for key in ("epochs", "batch_size", "seeds"):
            for section in ("training", "evaluation"):
                value = d.get(section, {}).get(key)
                if value is not None and (not isinstance(value, int) or value < 1):
                    raise self.error(
                        f"[{section}].{key}",
                        f"must be a whole number >= 1, got {value!r}.",
                    )
        weights = d.get("training", {}).get("class_weight")
        if weights is not None:
            names = [t.get("name") for t in tasks]
            if isinstance(weights, str) and weights != "balanced":
                raise self.error(
                    "[training].class_weight",
                    f'must be "balanced" or a table by task name, got {weights!r}.',
                )
            for name in weights if isinstance(weights, dict) else []:
                if name not in names:
                    raise self.error(
                        f"[training].class_weight.{name}",
                        f"names no task{closest(name, names)}; the tasks are "
                        f"{', '.join(names)}.",
                    )
        buckets = d.get("training", {}).get("buckets")
        if buckets is not None:
            from keras_mtl.data.buckets import bucket_problem

            problem = bucket_problem(buckets)
            if problem:
                raise self.error("[training].buckets", problem)
            if not self.byte_inputs():
                raise self.error(
                    "[training].buckets",
                    "cuts the padding of byte-encoded text inputs, but no input "
                    'has encoding = "bytes" (or dtype = "uint8" and one dimension).',
                )
        if "data" in d:
            from keras_mtl.data import check_data_config

            check_data_config(d["data"], self)

    # ---------------------------------------------------------- building

    @property
    def tasks(self) -> list[Task]:
        out = []
        for i, table in enumerate(self.data["tasks"]):
            try:
                out.append(Task(**table))
            except (ValueError, TypeError) as error:
                raise self.error(
                    f"tasks[{i}]", f"is not a valid task: {error}"
                ) from None
        return out

    def byte_inputs(self) -> list[str]:
        """The inputs that hold pre-padded byte ids: `encoding = "bytes"`, or
        no encoding, `dtype = "uint8"` and one dimension (the tweet pairs)."""
        return [
            name
            for name, t in self.data["inputs"].items()
            if t.get("encoding") == "bytes"
            or (
                "encoding" not in t
                and t.get("dtype") == "uint8"
                and len(t.get("shape", ())) == 1
            )
        ]

    def inputs(self) -> dict[str, keras.KerasTensor]:
        """The model's inputs. With `[training] buckets`, byte-id inputs take
        any length (batches are cut to their bucket's width)."""
        out = {}
        bucketed = self.byte_inputs() if self.training().get("buckets") else []
        for name, table in self.data["inputs"].items():
            shape = tuple(table.get("shape", ()))
            if name in bucketed:
                shape = (None,)
            dtype = table.get("dtype") or _default_dtype(table.get("encoding"))
            out[name] = keras.Input(shape, dtype=dtype, name=name)
        return out

    def build_model(self, tabular_spec: Any = None) -> Any:
        """The model the config describes (before compile)."""
        from keras_mtl.builder import build_model
        from keras_mtl.layers import TabularEncoder

        model_table = self.data.get("model", {})
        enc = dict(self.data["encoder"])
        name = enc.pop("name")
        if name == "tabular":
            if tabular_spec is None:
                raise self.error(
                    "[encoder]",
                    "is tabular: the feature spec is learned "
                    "from the training data, load the data first.",
                )
            encoder = TabularEncoder(tabular_spec, **enc)
            inputs = tabular_spec.inputs()
        else:
            try:
                encoder = encoders.get(name, **enc)
            except (ValueError, TypeError) as error:
                raise self.error(
                    "[encoder]", f"is not a valid encoder: {error}"
                ) from None
            inputs = self.inputs()
        arch = model_table.get("architecture")
        if arch is not None:
            arch_name, args = self._named(
                arch,
                "[model].architecture",
                architectures.ARCHITECTURES,
                "architecture",
            )
            arch = architectures.get(
                arch_name, num_tasks=len(self.data["tasks"]), **args
            )
        fuse = model_table.get("fusion", "concatenate")
        if isinstance(fuse, dict):
            fuse_name, args = self._named(
                fuse, "[model].fusion", fusion.FUSIONS, "fusion"
            )
            fuse = fusion.get(fuse_name, **args)
        try:
            model = build_model(
                inputs,
                encoder,
                self.tasks,
                fusion=fuse,
                architecture=arch,
                name=model_table.get("name", "multi_task_model"),
            )
        except ValueError as error:
            raise ConfigError(f"{self.source}: {error}") from None
        model.recipe = {
            k: v
            for k, v in self.data.items()
            if k in ("model", "inputs", "encoder", "tasks")
        }
        return model

    def compile_kwargs(self) -> dict[str, Any]:
        comp = dict(self.data.get("compile", {}))
        opt = comp.get("optimizer")
        if isinstance(opt, dict):
            args = {k: v for k, v in opt.items() if k != "name"}
            comp["optimizer"] = (
                keras.optimizers.get({"class_name": opt["name"], "config": args})
                if args
                else opt["name"]
            )
        bal = comp.get("balancer")
        if isinstance(bal, dict):
            comp["balancer"] = balancers.get(
                bal["name"], **{k: v for k, v in bal.items() if k != "name"}
            )
        return comp

    def training(self) -> dict[str, Any]:
        return dict(self.data.get("training", {}))

    def evaluation(self) -> dict[str, Any]:
        return dict(self.data.get("evaluation", {}))

    # -------------------------------------------------------- round trip

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(_without_none(self.data))

    def with_value(self, key: str, value: Any) -> Config:
        """A copy with a dotted key set (`compile.balancer`, `model.fusion`,
        or the short forms `fusion`, `balancer`, `architecture`, `encoder`)."""
        shortcuts = {
            "fusion": "model.fusion",
            "architecture": "model.architecture",
            "balancer": "compile.balancer",
            "optimizer": "compile.optimizer",
            "encoder": "encoder.name",
            "epochs": "training.epochs",
            "balance_mode": "compile.balance_mode",
        }
        path = shortcuts.get(key, key).split(".")
        data = copy.deepcopy(self.data)
        node = data
        for part in path[:-1]:
            if not isinstance(node.setdefault(part, {}), dict):
                raise ConfigError(
                    f"{self.source}: cannot set {key}: {part} is not a table."
                )
            node = node[part]
        node[path[-1]] = value
        return Config(data, self.source)


def _compile_signature(
    self: Any,
    optimizer: Any = None,
    loss: Any = None,
    loss_weights: Any = None,
    metrics: Any = None,
    weighted_metrics: Any = None,
    balancer: Any = None,
    balance_mode: str = "parameter",
    cosine: bool = False,
    update_every: int = 1,
    on_nonfinite: str = "stop",
    run_eagerly: bool = False,
    steps_per_execution: int = 1,
    jit_compile: Any = "auto",
    auto_scale_loss: bool = True,
) -> None:
    """The keys `[compile]` accepts: MultiTaskModel.compile's arguments."""


def _default_dtype(encoding: str | None) -> str:
    return {"bytes": "uint8", "words": "int32", "id": "int32"}.get(
        encoding or "", "float32"
    )


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def config_of(model: Any, compile_args: dict[str, Any] | None = None) -> Config:
    """The config of a model built by `build_model` or from a config: what
    `Config(...).build_model()` rebuilds it from."""
    recipe = getattr(model, "recipe", None)
    if not recipe:
        raise ConfigError(
            f"Model {model.name!r} was not built by build_model from named parts, so it "
            "has no config to write."
        )
    data = copy.deepcopy(recipe)
    if compile_args:
        data["compile"] = _without_none(compile_args)
    return Config(data, f"<model {model.name}>")
