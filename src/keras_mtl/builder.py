"""`build_model`: named inputs, a shared encoder, a fusion and one head per task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras

from keras_mtl import encoders as encoders_module
from keras_mtl import fusion as fusion_module
from keras_mtl.fusion.per_input import PerInput
from keras_mtl.layers.task_head import TaskHead
from keras_mtl.model import MultiTaskModel
from keras_mtl.task import Task, as_task, closest


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


def build_model(
    inputs: Any,
    encoder: Any,
    tasks: Sequence[Task | dict[str, Any]],
    fusion: Any = "concatenate",
    heads: Mapping[str, keras.layers.Layer] | None = None,
    name: str = "multi_task_model",
) -> MultiTaskModel:
    """Builds a multi-task model: inputs -> encoder -> fusion -> task heads.

    Args:
        inputs: Named inputs: a dict of name -> `keras.Input`, shape tuple
            or `{"shape": ..., "dtype": ...}`, or a list of named
            `keras.Input`s.
        encoder: The encoder every input passes through: one Keras layer
            (shared, like the seed's LSTM; its weights serve every input), a
            name from `keras_mtl.encoders` (`"lstm"`, ...), or a dict of
            input name -> layer for separate encoders.
        tasks: The tasks; each task's head reads the inputs its `inputs`
            names (all inputs when None; for `per_input` fusion, task i
            reads input i).
        fusion: A `keras_mtl.fusion` layer or its name (`"concatenate"`,
            `"per_input"`, `"sum"`, `"mean"`, `"product"`,
            `"abs_difference"`, `"pair"`), applied once per distinct set of
            inputs that tasks read.
        heads: Optional head layers by task name, replacing the default
            `TaskHead` (hidden layers from `Task.hidden`, then an output
            layer of the task's width and activation). A custom head must
            output the task's width, with the task's activation applied.
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
    input_names = list(tensors)
    tasks = [as_task(t) for t in tasks]
    heads = dict(heads or {})
    unknown = [k for k in heads if k not in {t.name for t in tasks}]
    if unknown:
        raise ValueError(
            f"heads names {unknown[0]!r}, which is not a task; tasks are "
            f"{', '.join(t.name for t in tasks)}"
            f"{closest(unknown[0], [t.name for t in tasks])}."
        )
    if not tasks:
        raise ValueError("A multi-task model needs at least one task.")
    fusion_layer = fusion_module.get(fusion)
    names = [t.name for t in tasks]
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
                    f"inputs are {', '.join(input_names)}"
                    f"{closest(wanted, input_names)}."
                )

    if isinstance(encoder, Mapping):
        missing = [n for n in input_names if n not in encoder]
        if missing:
            raise ValueError(
                f"encoder is a dict but has no layer for input {missing[0]!r}; "
                f"give one per input ({', '.join(input_names)})."
            )
        layers = {n: encoders_module.get(encoder[n]) for n in input_names}
    else:
        shared = encoders_module.get(encoder)
        layers = dict.fromkeys(input_names, shared)
    encoded = {n: layers[n](tensors[n]) for n in input_names}

    reads: dict[str, list[str]] = {}
    for i, task in enumerate(tasks):
        if task.inputs is not None:
            reads[task.name] = list(task.inputs)
        elif isinstance(fusion_layer, PerInput):
            if len(tasks) != len(input_names):
                raise ValueError(
                    f"Fusion 'per_input' pairs task i with input i when tasks name "
                    f"no inputs, but there are {len(tasks)} tasks and "
                    f"{len(input_names)} inputs; give each Task its inputs=[...]."
                )
            reads[task.name] = [input_names[i]]
        else:
            reads[task.name] = list(input_names)
        widths = [encoded[n].shape[-1] for n in reads[task.name]]
        fusion_layer.check(task.name, reads[task.name], widths)

    fused: dict[tuple[str, ...], Any] = {}
    outputs = {}
    resolved = []
    for task in tasks:
        key = tuple(reads[task.name])
        if key not in fused:
            fused[key] = fusion_layer([encoded[n] for n in key])
        if task.inputs is None:
            config = task.get_config()
            config["inputs"] = list(key)
            task = Task.from_config(config)
        resolved.append(task)
        head = heads.get(task.name) or TaskHead(task, name=task.name)
        output = head(fused[key])
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
    return MultiTaskModel(inputs=tensors, outputs=outputs, tasks=resolved, name=name)
