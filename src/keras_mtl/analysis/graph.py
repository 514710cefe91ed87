"""Which inputs the graph of a functional model connects to each output."""

from __future__ import annotations

from typing import Any


def _ancestor_inputs(tensor: Any, inputs: dict[int, str]) -> set[str]:
    found: set[str] = set()
    seen: set[int] = set()
    stack = [tensor]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if id(t) in inputs:
            found.add(inputs[id(t)])
        history = getattr(t, "_keras_history", None)
        if history is None:
            continue
        node = history.operation._inbound_nodes[history.node_index]
        stack.extend(node.input_tensors)
    return found


def connected_inputs(model: Any) -> dict[str, set[str]]:
    """For each task of a `MultiTaskModel`, the inputs its output depends on
    through the model graph.

    An input absent from a task's set cannot change that task's prediction,
    whatever the weights.
    """
    inputs = {id(t): t.name for t in model.inputs}
    outputs = dict(zip(model.output_names, model.outputs, strict=True))
    return {
        task.name: _ancestor_inputs(outputs[output], inputs)
        for task, output in zip(model.tasks, model._task_outputs, strict=True)
    }
