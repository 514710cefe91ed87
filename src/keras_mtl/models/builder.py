"""`build_model`: named inputs, a shared encoder, a fusion and one head per task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras

from keras_mtl import architectures as architectures_module
from keras_mtl import encoders as encoders_module
from keras_mtl import fusion as fusion_module
from keras_mtl.fusion.base import Fusion
from keras_mtl.fusion.per_input import PerInput
from keras_mtl.layers.task_head import TaskHead
from keras_mtl.models.model import MultiTaskModel
from keras_mtl.tasks.task import Task, as_task, closest


def _make_inputs(inputs: Any) -> dict[str, Any]:
    if isinstance(inputs, Mapping):
        out = {}
        for name, spec in inputs.items():
            if isinstance(spec, keras.KerasTensor):
                if spec.name != name:
                    raise ValueError(
                        f"Input {name!r} is a keras.Input named {spec.name!r}; "
                        f"create it with keras.Input(..., name={name!r})."
                    )
                out[name] = spec
            elif isinstance(spec, Mapping):
                out[name] = keras.Input(
                    shape=tuple(spec["shape"]), dtype=spec.get("dtype"), name=name
                )
            elif isinstance(spec, Sequence):
                out[name] = keras.Input(shape=tuple(spec), name=name)
            else:
                raise ValueError(
                    f"Input {name!r} must be a keras.Input, a shape tuple or "
                    f"{{'shape': ..., 'dtype': ...}}, got {spec!r}."
                )
        return out
    if isinstance(inputs, Sequence) and all(
        isinstance(t, keras.KerasTensor) for t in inputs
    ):
        return {t.name: t for t in inputs}
    raise ValueError(
        "inputs must be a dict of name -> keras.Input or shape, or a list of "
        f"named keras.Input tensors, got {inputs!r}."
    )


def _check_tasks(tasks: list[Task], tensors: dict[str, Any], heads: dict) -> None:
    if not tasks:
        raise ValueError("A multi-task model needs at least one task.")
    names = [t.name for t in tasks]
    unknown = [k for k in heads if k not in names]
    if unknown:
        raise ValueError(
            f"heads names {unknown[0]!r}, which is not a task; tasks are "
            f"{', '.join(names)}{closest(unknown[0], names)}."
        )
    for task in tasks:
        if names.count(task.name) > 1:
            raise ValueError(f"Task names must be unique, got {task.name!r} twice.")
        if task.name in tensors:
            raise ValueError(
                f"Task {task.name!r} has the name of an input; names must differ."
            )
        for wanted in task.inputs or []:
            if wanted not in tensors:
                raise ValueError(
                    f"Task '{task.name}' reads input {wanted!r}, but the model's "
                    f"inputs are {', '.join(tensors)}{closest(wanted, list(tensors))}."
                )


def _encode(encoder: Any, tensors: dict[str, Any], tasks: list[Task]) -> dict[str, Any]:
    """The encoding of every input (or, for a joint encoder such as
    `TabularEncoder`, one encoding of all inputs under the key `""`)."""
    names = list(tensors)
    if isinstance(encoder, Mapping):
        missing = [n for n in names if n not in encoder]
        if missing:
            raise ValueError(
                f"encoder is a dict but has no layer for input {missing[0]!r}; "
                f"give one per input ({', '.join(names)})."
            )
        return {n: encoders_module.get(encoder[n])(tensors[n]) for n in names}
    layer = encoders_module.get(encoder)
    if getattr(layer, "joint_inputs", False):
        for task in tasks:
            if task.inputs is not None and sorted(task.inputs) != sorted(names):
                raise ValueError(
                    f"Encoder '{layer.name}' reads all inputs together, so task "
                    f"'{task.name}' cannot read only {', '.join(task.inputs)}."
                )
        return {"": layer(tensors)}
    return {n: layer(tensors[n]) for n in names}


def _reads(
    tasks: list[Task], fusion: Fusion, encoded: dict[str, Any]
) -> dict[str, list[str]]:
    """The encodings each task's head reads, checked against the fusion."""
    names = list(encoded)
    reads: dict[str, list[str]] = {}
    for i, task in enumerate(tasks):
        if names == [""]:
            reads[task.name] = [""]
        elif task.inputs is not None:
            reads[task.name] = list(task.inputs)
        elif isinstance(fusion, PerInput):
            if len(tasks) != len(names):
                raise ValueError(
                    f"Fusion 'per_input' pairs task i with input i when tasks name "
                    f"no inputs, but there are {len(tasks)} tasks and "
                    f"{len(names)} inputs; give each Task its inputs=[...]."
                )
            reads[task.name] = [names[i]]
        else:
            reads[task.name] = list(names)
        if len(reads[task.name]) == 1 and fusion.min_inputs > 1:
            continue  # One encoding needs no fusion: the head reads it as is.
        widths = [encoded[n].shape[-1] for n in reads[task.name]]
        fusion.check(task.name, reads[task.name], widths)
    return reads


def build_model(
    inputs: Any,
    encoder: Any,
    tasks: Sequence[Task | dict[str, Any]],
    fusion: Any = "concatenate",
    heads: Mapping[str, keras.layers.Layer] | None = None,
    architecture: Any = None,
    name: str = "multi_task_model",
) -> MultiTaskModel:
    """Builds a multi-task model: inputs -> encoder -> fusion -> [architecture]
    -> task heads.

    Args:
        inputs: Named inputs: a dict of name -> `keras.Input`, shape tuple
            or `{"shape": ..., "dtype": ...}`, or a list of named
            `keras.Input`s.
        encoder: The encoder every input passes through: one Keras layer
            (shared, like the seed's LSTM; its weights serve every input), a
            name from `keras_mtl.encoders` (`"lstm"`, ...), or a dict of
            input name -> layer for separate encoders. A joint encoder
            (`keras_mtl.layers.TabularEncoder`) reads all inputs at once.
        tasks: The tasks; each task's head reads the inputs its `inputs`
            names (all inputs when None; for `per_input` fusion, task i
            reads input i).
        fusion: A `keras_mtl.fusion` layer or its name (`"concatenate"`,
            `"per_input"`, `"sum"`, `"mean"`, `"product"`,
            `"abs_difference"`, `"pair"`), applied once per distinct set of
            inputs that tasks read. A task that reads one input under a
            fusion of two or more (`"pair"`, `"abs_difference"`, ...) reads
            that input's encoding as it is.
        heads: Optional head layers by task name, replacing the default
            `TaskHead` (hidden layers from `Task.hidden`, then an output
            layer of the task's width and activation). A custom head must
            output the task's width, with the task's activation applied.
        architecture: Optional sharing architecture between the fused
            representation and the heads (`keras_mtl.architectures`: a layer,
            or a name such as `"mmoe"`): it gives each task its own
            representation. Every task must then read the same inputs.
        name: The model's name.

    Returns:
        A `MultiTaskModel` with one output per task, named after the task.

    Example:
    >>> from keras_mtl import Task
    >>> model = build_model(
    ...     {"a": (6, 4), "b": (6, 4)},
    ...     keras.layers.LSTM(3),
    ...     [Task("first", inputs=["a"]), Task("both")],
    ... )
    >>> model.count_params()  # LSTM 4*3*(4+3+1) + heads (3+1) + (6+1)
    107
    """
    tensors = _make_inputs(inputs)
    tasks = [as_task(t) for t in tasks]
    heads = dict(heads or {})
    _check_tasks(tasks, tensors, heads)
    fusion_layer = fusion_module.get(fusion)
    encoded = _encode(encoder, tensors, tasks)
    reads = _reads(tasks, fusion_layer, encoded)
    fused: dict[tuple[str, ...], Any] = {}
    for task in tasks:
        key = tuple(reads[task.name])
        if key not in fused:
            fused[key] = (
                encoded[key[0]]
                if len(key) == 1 and fusion_layer.min_inputs > 1
                else fusion_layer([encoded[n] for n in key])
            )
    features = {task.name: fused[tuple(reads[task.name])] for task in tasks}
    arch = None
    if architecture is not None:
        if len(fused) != 1:
            raise ValueError(
                "An architecture gives every task a representation of the same "
                "input, but the tasks read different inputs; drop their inputs=[...]."
            )
        arch = architectures_module.get(architecture, num_tasks=len(tasks))
        if arch.num_tasks != len(tasks):
            raise ValueError(
                f"Architecture '{arch.name}' was made for {arch.num_tasks} tasks, "
                f"but the model has {len(tasks)}."
            )
        per_task = arch(next(iter(fused.values())))
        features = {task.name: per_task[i] for i, task in enumerate(tasks)}
    outputs = {}
    resolved = []
    for task in tasks:
        if task.inputs is None:
            config = task.get_config()
            config["inputs"] = (
                list(tensors) if reads[task.name] == [""] else reads[task.name]
            )
            task = Task.from_config(config)
        resolved.append(task)
        if arch is not None and getattr(arch, "produces_outputs", False):
            if task.kind != "binary" or task.name in heads:
                raise ValueError(
                    f"Architecture '{arch.key}' outputs the tasks' probabilities: task "
                    f"'{task.name}' must be binary and have no head of its own."
                )
            outputs[task.name] = keras.layers.Identity(name=task.name)(
                features[task.name]
            )
            continue
        head = heads.get(task.name) or TaskHead(task, name=task.name)
        output = head(features[task.name])
        if output.shape[-1] != task.units:
            raise ValueError(
                f"The head of task '{task.name}' outputs width {output.shape[-1]}, "
                f"but a {task.kind} task with num_classes={task.num_classes} needs "
                f"{task.units}."
            )
        if head.name != task.name:
            # Outputs are named after their last layer: keep the task's name.
            output = keras.layers.Identity(name=task.name)(output)
        outputs[task.name] = output
    model = MultiTaskModel(inputs=tensors, outputs=outputs, tasks=resolved, name=name)
    object.__setattr__(
        model, "recipe", _recipe(tensors, encoder, fusion_layer, arch, tasks, name)
    )
    return model


_LAYER_KEYS = ("name", "trainable", "dtype")


def _arguments(layer: keras.layers.Layer, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        k: v
        for k, v in layer.get_config().items()
        if k not in _LAYER_KEYS + drop and v is not None
    }


def _recipe(
    tensors: dict[str, Any],
    encoder: Any,
    fusion_layer: Fusion,
    arch: Any,
    tasks: list[Task],
    name: str,
) -> dict[str, Any] | None:
    """The config tables (`keras_mtl.config`) that rebuild this model, or
    None when a part is not one of the library's named pieces."""
    from keras_mtl.layers import TabularEncoder

    if isinstance(encoder, str):
        encoder = encoders_module.get(encoder)
    by_class = {cls: key for key, cls in encoders_module.ENCODERS.items()}
    if isinstance(encoder, TabularEncoder):
        encoder_table: dict[str, Any] = {"name": "tabular"}
    elif type(encoder) in by_class:
        encoder_table = {"name": by_class[type(encoder)], **_arguments(encoder)}
    else:
        return None
    if any(d is None for t in tensors.values() for d in t.shape[1:]):
        return None  # A config's input shapes are fixed.
    model_table: dict[str, Any] = {"name": name, "fusion": fusion_layer.key}
    if arch is not None:
        model_table["architecture"] = {
            "name": arch.key,
            **_arguments(arch, ("num_tasks",)),
        }
    inputs = {
        n: {"shape": [int(d) for d in t.shape[1:]], "dtype": str(t.dtype)}
        for n, t in tensors.items()
    }
    task_tables = [
        {k: v for k, v in t.get_config().items() if v is not None} for t in tasks
    ]
    return {
        "model": model_table,
        "inputs": inputs,
        "encoder": encoder_table,
        "tasks": task_tables,
    }
