"""What each table of a config may hold: its keys, their types, and the
signatures the tables map onto (read from the Python API itself)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import keras

from keras_mtl.models.model import MultiTaskModel

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
#: The `keras.Model.compile` arguments `[compile]` passes on besides
#: `MultiTaskModel.compile`'s own, with their types.
COMPILE_EXTRA = {
    "run_eagerly": "bool",
    "steps_per_execution": "int",
    "jit_compile": "Any",
    "auto_scale_loss": "bool",
}


def params(func: Callable) -> list[str]:
    return [
        p.name
        for p in inspect.signature(func).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"
    ]


TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
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
TYPE_WORDS = {
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


def annotations(func: Callable) -> dict[str, str]:
    """Each argument's annotation as written (strings, from __future__)."""
    out = {}
    for p in inspect.signature(func).parameters.values():
        if p.annotation is not inspect.Parameter.empty:
            out[p.name] = (
                p.annotation if isinstance(p.annotation, str) else str(p.annotation)
            )
    return out


def _own_inits(cls: type) -> list[Callable]:
    """The `__init__`s a library class and its library bases define, the
    class's first (up to the Keras base, whose arguments configs do not
    set)."""
    out = []
    for klass in cls.__mro__:
        if klass in (keras.layers.Layer, object) or klass.__module__.startswith(
            "keras."
        ):
            break
        if "__init__" in klass.__dict__:
            out.append(klass.__dict__["__init__"])
    return out


def constructor_annotations(cls: type) -> dict[str, str]:
    out: dict[str, str] = {}
    for init in _own_inits(cls):
        for key, value in annotations(init).items():
            out.setdefault(key, value)
    return out


def type_problem(value: Any, annotation: str) -> str | None:
    """What a config value should have been, or None when it fits (or the
    annotation says nothing checkable)."""
    alternatives = [a.strip().split("[", 1)[0] for a in annotation.split("|")]
    alternatives = [a.rsplit(".", 1)[-1] for a in alternatives]
    if any(a not in TYPE_CHECKS for a in alternatives):
        return None  # Any, a class, a callable: checked where it is used
    if any(TYPE_CHECKS[a](value) for a in alternatives):
        return None
    words = [TYPE_WORDS[a] for a in alternatives if a in TYPE_WORDS]
    return " or ".join(dict.fromkeys(words))


def constructor_params(cls: type) -> list[str]:
    """The arguments a library class takes, its bases' included."""
    out: list[str] = []
    for init in _own_inits(cls):
        out += [p for p in params(init) if p not in out]
    return out


def compile_keys() -> tuple[list[str], dict[str, str]]:
    """The keys `[compile]` accepts, and their types: `MultiTaskModel.compile`'s
    arguments, then `COMPILE_EXTRA`."""
    compile_fn = MultiTaskModel.compile
    return params(compile_fn) + list(COMPILE_EXTRA), {
        **annotations(compile_fn),
        **COMPILE_EXTRA,
    }


def default_dtype(encoding: str | None) -> str:
    return {"bytes": "uint8", "words": "int32", "id": "int32"}.get(
        encoding or "", "float32"
    )


def describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"
