"""Which variables the tasks share, and the model split at the shared representation.

Balancing methods work on per-task gradients of the *shared* variables (a
variable is shared when the losses of two or more tasks depend on it). To get
them cheaply the model is split in two functional models over the same
layers and weights:

* `encoder`: the model inputs -> the shared representation Z (the outputs of
  the part that holds every shared variable, where the task-specific part
  starts reading);
* `heads`: Z (plus any raw input a head reads directly) -> the task outputs.

Per-task gradients of Z come from one cheap backward pass through the heads
per task; gradients of the shared parameters follow through the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras

from keras_mtl.fusion.concatenate import Concatenate
from keras_mtl.layers.task_head import TaskHead
from keras_mtl.models.rules import KerasDense, rule_for, rule_inside


def _node_of(tensor: Any) -> tuple[Any, int] | None:
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    return history.operation, history.node_index


def _inputs_of(node: tuple[Any, int]) -> list[Any]:
    operation, index = node
    return list(operation._inbound_nodes[index].input_tensors)


def _upstream(tensors: list[Any]) -> set[tuple[int, int]]:
    """Keys (id(layer), node index) of every node feeding `tensors`."""
    return set(_nodes_feeding(tensors))


def _nodes_feeding(tensors: list[Any]) -> dict[tuple[int, int], tuple[Any, Any]]:
    """(operation, node) of every node feeding `tensors`, Keras layers and
    `keras.ops` calls alike, by (id(operation), node index)."""
    seen: dict[tuple[int, int], tuple[Any, Any]] = {}
    stack = list(tensors)
    while stack:
        node = _node_of(stack.pop())
        if node is None:
            continue
        key = (id(node[0]), node[1])
        if key in seen:
            continue
        seen[key] = (node[0], node[0]._inbound_nodes[node[1]])
        stack.extend(_inputs_of(node))
    return seen


@dataclass
class Split:
    """A model split at its shared representation.

    Attributes:
        encoder: Functional model from the model inputs to `representation`.
        heads: Functional model from `representation` (then any raw inputs
            heads read directly) to the model outputs, in output order.
        representation: The tensors Z of the original graph.
        passthrough: Model inputs that heads read without the encoder.
        shared: Trainable variables that two or more tasks' losses use.
        task_variables: For each output name, the trainable variables only
            that output uses.
        kernel: When the encoder is made of layers with a per-task
            gradient rule (`keras_mtl.models.rules`: `LSTMEncoder`, Keras's
            `LSTM`) applied to model inputs, one (rule, input tensor) per
            representation tensor; else None (autodiff per task).
        layer_rules: Rules of the encoder's layers, nested ones included,
            whose per-task rows are written out within an autodiff pass
            (`rules.rule_inside`: Keras's `Dense`, `EinsumDense` and
            `Embedding`), or None without any.
        readers: Where Z is one matrix (batch, features) that reaches the
            outputs only through plain Dense layers (a `TaskHead`'s first,
            or the user's own), those layers' rules; else None. Each task's
            row of Z is then D_t W^T, D_t its cotangents of the layers'
            pre-activations and W their kernels side by side
            (`keras_mtl.training.algebra.Factored`).
    """

    encoder: keras.Model
    heads: keras.Model
    representation: list[Any]
    passthrough: list[Any]
    shared: list[Any]
    task_variables: dict[str, list[Any]]
    kernel: list[tuple[Any, Any]] | None = None
    layer_rules: list[Any] | None = None
    readers: list[Any] | None = None


def split_model(model: keras.Model) -> Split | None:
    """Splits a functional multi-output model at its shared representation.

    Returns:
        A `Split`, or None when no variable is shared by two outputs.
    """
    outputs = dict(zip(model.output_names, model.outputs, strict=True))
    layers_by_id: dict[int, Any] = {}
    users: dict[int, set[str]] = {}
    for name, tensor in outputs.items():
        for layer_id, _ in _upstream([tensor]):
            users.setdefault(layer_id, set()).add(name)
    for layer in model._flatten_layers(include_self=False, recursive=False):
        layers_by_id[id(layer)] = layer
    shared_layers = [
        layers_by_id[i]
        for i, names in users.items()
        if len(names) > 1 and i in layers_by_id and layers_by_id[i].weights
    ]
    if not shared_layers:
        return None
    shared_ids = {id(layer) for layer in shared_layers}

    # The encoder part: every node of a shared layer and everything upstream.
    encoder_nodes: set[tuple[int, int]] = set()
    for layer in shared_layers:
        for index, node in enumerate(layer._inbound_nodes):
            key = (id(layer), index)
            if key in encoder_nodes:
                continue
            encoder_nodes.add(key)
            encoder_nodes |= _upstream(list(node.input_tensors))

    model_inputs = {id(t): t for t in model.inputs}
    representation: list[Any] = []
    passthrough: list[Any] = []
    seen: set[int] = set()
    stack = list(model.outputs)
    while stack:
        tensor = stack.pop(0)
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        node = _node_of(tensor)
        if id(tensor) in model_inputs:
            passthrough.append(tensor)
        elif node is not None and (id(node[0]), node[1]) in encoder_nodes:
            representation.append(tensor)
        elif node is not None:
            stack.extend(_inputs_of(node))

    encoder = keras.Model(model.input, representation, name=f"{model.name}_encoder")
    heads = keras.Model(
        representation + passthrough, model.outputs, name=f"{model.name}_heads"
    )
    shared = [v for layer in shared_layers for v in layer.trainable_variables]
    shared_paths = {v.path for v in shared}
    task_variables = {}
    for name, tensor in outputs.items():
        own = []
        for layer_id, _ in _upstream([tensor]):
            layer = layers_by_id.get(layer_id)
            if layer is None or layer_id in shared_ids:
                continue
            own.extend(
                v for v in layer.trainable_variables if v.path not in shared_paths
            )
        task_variables[name] = own
    return Split(
        encoder,
        heads,
        representation,
        passthrough,
        shared,
        task_variables,
        _kernel(model, encoder, representation),
        _layer_rules(encoder, heads),
        _dense_readers(model, representation, passthrough),
    )


#: Layers that pass a single input on unchanged.
_JOINS = (keras.layers.Concatenate, Concatenate)


def _dense_readers(
    model: keras.Model, representation: list[Any], passthrough: list[Any]
) -> list[Any] | None:
    """The rules of the plain Dense layers through which alone a matrix Z
    reaches the outputs (see `Split.readers`), or None. A concatenation
    of Z alone (Keras's or ours, not a subclass) passes it on unchanged;
    any other consumer (a `keras.ops` call included, or a subclass of
    `TaskHead`), a second call of a reader, or Z among the outputs gives
    None."""
    if len(representation) != 1 or passthrough or len(representation[0].shape) != 2:
        return None
    # The model's own nodes, layers and keras.ops calls (splitting adds the
    # heads model's nodes to its layers).
    nodes: dict[int, list[Any]] = {}
    for operation, node in _nodes_feeding(list(model.outputs)).values():
        nodes.setdefault(id(operation), [operation]).append(node)
    outputs = {id(t) for t in model.outputs}
    frontier, readers = [representation[0]], []
    while frontier:
        tensor = frontier.pop()
        if id(tensor) in outputs:
            return None
        for operation, *calls in nodes.values():
            for node in calls:
                inputs = keras.tree.flatten(node.input_tensors)
                if not any(t is tensor for t in inputs):
                    continue
                if type(operation) in _JOINS and len(inputs) == 1:
                    frontier.extend(keras.tree.flatten(node.output_tensors))
                    continue
                first = operation
                if type(operation) is TaskHead:
                    first = (operation.hidden_layers or [operation.output_layer])[0]
                if len(inputs) != 1 or len(calls) != 1 or not KerasDense.applies(first):
                    return None
                readers.append(first)
    if not readers or len({id(r) for r in readers}) != len(readers):
        return None
    return [KerasDense(r) for r in readers]


def _layer_rules(encoder: keras.Model, heads: keras.Model) -> list[Any] | None:
    """A rule inside autodiff (`keras_mtl.models.rules.rule_inside`: plain
    Dense, EinsumDense and Embedding layers, a layer's own `inside_rule`)
    for every layer of the encoder that has one and whose weights only the
    encoder uses, through that layer's calls."""
    ours = {id(v) for v in encoder.trainable_variables}
    ours -= {id(v) for v in heads.trainable_variables}
    layers = list(encoder._flatten_layers(include_self=False, recursive=True))
    # A weight another layer holds as its own (a tied table) is read
    # outside its layer's calls: that layer gets no rule.
    held: dict[int, int] = {}
    for layer in layers:
        for v in getattr(layer, "_trainable_variables", []):
            held[id(v)] = held.get(id(v), 0) + 1
    ours -= {key for key, count in held.items() if count > 1}
    rules, inside = [], set()
    for layer in layers:
        if id(layer) in inside or not all(
            id(v) in ours for v in layer.trainable_variables
        ):
            continue
        rule = rule_inside(layer)
        if rule is not None:
            rules.append(rule)
            # The rule covers the layer's own layers: met after it, unless
            # another layer holds one too and came first (dropped below).
            inside |= {id(sub) for sub in layer._flatten_layers(include_self=False)}
    return [r for r in rules if id(r.layer) not in inside] or None


def _kernel(model: keras.Model, encoder: keras.Model, representation: list[Any]) -> Any:
    """(rule, model input) per representation tensor, if every one comes
    from a layer with a per-task gradient rule (`keras_mtl.models.rules`)
    applied to a model input without a mask; one rule object per layer."""
    inputs = {id(t) for t in model.inputs}
    out, covered, rules = [], set(), {}
    for tensor in representation:
        layer, index = _node_of(tensor)
        node = layer._inbound_nodes[index]
        args = list(node.input_tensors)
        if id(layer) not in rules:
            rules[id(layer)] = rule_for(layer)
        rule = rules[id(layer)]
        masked = (
            any(getattr(t, "_keras_mask", None) is not None for t in args)
            or node.arguments.kwargs.get("mask") is not None
        )
        if rule is None or len(args) != 1 or id(args[0]) not in inputs or masked:
            return None
        out.append((rule, args[0]))
        covered |= {id(v) for v in layer.trainable_variables}
    if any(id(v) not in covered for v in encoder.trainable_variables):
        return None
    return out
