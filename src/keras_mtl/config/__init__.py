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
from pathlib import Path
from typing import Any

import keras
import tomllib

from keras_mtl import architectures, balancers, encoders, fusion
from keras_mtl.config import checks
from keras_mtl.config.schema import default_dtype
from keras_mtl.errors import ConfigError
from keras_mtl.tasks.task import Task


class Config:
    """A validated config.

    Args:
        data: The parsed TOML (a dict of tables).
        source: Where it came from, for messages.
    """

    def __init__(self, data: dict[str, Any], source: str = "<config>") -> None:
        self.data = copy.deepcopy(data)
        self.source = source
        checks.validate(self)

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
            dtype = table.get("dtype") or default_dtype(table.get("encoding"))
            out[name] = keras.Input(shape, dtype=dtype, name=name)
        return out

    def build_model(self, tabular_spec: Any = None) -> Any:
        """The model the config describes (before compile)."""
        from keras_mtl.layers import TabularEncoder
        from keras_mtl.models.builder import build_model

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
            arch_name, args = checks.named(
                self,
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
            fuse_name, args = checks.named(
                self, fuse, "[model].fusion", fusion.FUSIONS, "fusion"
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
