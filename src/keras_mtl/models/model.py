"""`MultiTaskModel`: a `keras.Model` whose outputs are tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_mtl import backend as mtl_backend
from keras_mtl import balancers as balancers_module
from keras_mtl import callbacks as callbacks_module
from keras_mtl import training
from keras_mtl.models import per_task
from keras_mtl.models.calls import fast_layers
from keras_mtl.models.fitting import training_callbacks
from keras_mtl.tasks import class_weights as class_weights_module
from keras_mtl.tasks import masking
from keras_mtl.tasks.masking import task_loss
from keras_mtl.tasks.metrics import FiniteMean, TaskMetrics
from keras_mtl.tasks.task import Task, as_task, closest
from keras_mtl.training import balancing as balancing_module
from keras_mtl.training import defaults
from keras_mtl.training.guard import guarded

Tensor = Any
NONFINITE_MODES = ("stop", "skip", "off")


@keras.saving.register_keras_serializable(package="keras_mtl")
class MultiTaskModel(keras.Model):
    """A Keras model with one output per `Task`.

    Build it like a functional `keras.Model` (the seed's
    `Model(inputs=[...], outputs=[...])` works as written) or with
    `keras_mtl.build_model`. It is a `keras.Model`: `compile`, `fit`,
    `evaluate`, `predict`, callbacks, `save`, `keras.models.load_model` and
    `keras.utils.plot_model` work as for any model. What it adds:

    * Each output is a `Task`; without `tasks`, one is inferred per output
      from its activation (sigmoid: binary or multilabel, softmax:
      multiclass, otherwise regression) and named like the output.
    * `compile` accepts one loss and one flat metric list for all tasks, as
      Keras 2 did (the seed's `compile(loss='binary_crossentropy',
      metrics=['accuracy'])`), or per-task dicts and lists. Lists follow
      `model.tasks` order.
    * Labels may be missing: each task's loss and metrics skip samples whose
      label is NaN or -1 or whose per-task sample weight is 0 (see
      `keras_mtl.tasks.masking`). A task missing from a `y` dict is unlabelled in
      that batch.
    * Metrics are reported per task: `<task>_loss`, `<task>_accuracy`, ...

    Args:
        *args: `inputs` and `outputs`, as for `keras.Model`.
        tasks: `Task` objects (or their configs), matched to outputs by
            name, or by position when the outputs are a list.
        **kwargs: `keras.Model` arguments (`name`, ...).
    """

    def __init__(
        self,
        *args: Any,
        tasks: Sequence[Any] | None = None,
        recipe: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._init_tasks(tasks)
        # The config tables this model was built from (`keras_mtl.config`):
        # saved with the model, so `mtl evaluate` and `mtl predict` know how
        # raw data fills its inputs.
        object.__setattr__(self, "recipe", recipe)

    # ------------------------------------------------------------------ tasks

    def _init_tasks(self, tasks: Sequence[Any] | None) -> None:
        names = list(self.output_names)
        tensors = dict(zip(names, self.outputs, strict=True))
        if tasks is None:
            resolved = [per_task.infer_task(n, tensors[n]) for n in names]
            outputs = names
        else:
            resolved = [as_task(t) for t in tasks]
            if len(resolved) != len(names):
                raise ValueError(
                    f"The model has {len(names)} outputs ({', '.join(names)}) but "
                    f"{len(resolved)} tasks were given; give one Task per output."
                )
            task_names = [t.name for t in resolved]
            outputs = task_names if sorted(task_names) == sorted(names) else names
        seen = [t.name for t in resolved]
        repeated = sorted({n for n in seen if seen.count(n) > 1})
        if repeated:
            raise ValueError(f"Task names must be unique, got {repeated[0]!r} twice.")
        self._tasks = tuple(resolved)
        self._task_outputs = tuple(outputs)
        self._output_position = {n: i for i, n in enumerate(names)}

    @property
    def tasks(self) -> list[Task]:
        """The model's tasks, in the order lists of losses, metrics and
        labels follow."""
        return list(self._tasks)

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self._tasks]

    def task(self, name: str) -> Task:
        """The task called `name`."""
        for t in self._tasks:
            if t.name == name:
                return t
        raise KeyError(
            f"No task {name!r}; tasks are {', '.join(self.task_names)}"
            f"{closest(name, self.task_names)}."
        )

    # ------------------------------------------------- structures per task

    def _by_task(self, value: Any, what: str, allow_shared: bool = False) -> list[Any]:
        """Lists `value` (dict, list or single) in task order; None = absent."""
        return per_task.by_task(
            self._tasks, self._task_outputs, value, what, allow_shared
        )

    def _predictions_by_task(self, y_pred: Any) -> list[Any]:
        if isinstance(y_pred, dict):
            return [y_pred[o] for o in self._task_outputs]
        if isinstance(y_pred, list | tuple):
            return [y_pred[self._output_position[o]] for o in self._task_outputs]
        return [y_pred]

    def _labels_by_task(self, y: Any) -> list[Any]:
        if len(self._tasks) == 1 and not isinstance(y, dict):
            if isinstance(y, list | tuple) and len(y) == 1:
                return [y[0]]
            return [y]
        return self._by_task(y, "y")

    # ----------------------------------------------------------- compile

    def compile(
        self,
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
        **kwargs: Any,
    ) -> None:
        """Configures the model for training, with per-task losses and metrics.

        Args:
            optimizer: As for `keras.Model.compile`; None (default) is Adam
                with learning rate 0.003 (`keras_mtl.training.defaults`).
            loss: One loss for every task, or a dict by task name, or a list
                in task order; `None` uses each task's own (or its kind's
                default).
            loss_weights: Per-task weights (dict or list); default each
                task's `weight`.
            metrics: A flat list applies to every task (Keras 2's rule, so
                the seed's `metrics=['accuracy']` works on two outputs); a
                dict by task name or a list of lists gives them per task;
                `None` uses each task's own metrics. Masked by labels.
            weighted_metrics: Like `metrics`, also weighted by
                `sample_weight`.
            balancer: A balancing method (`keras_mtl.balancers`) or its
                name, e.g. `"uw"`, `"pcgrad"`, `"upgrad"`; None trains on
                the weighted sum of the task losses (Keras's own step).
            balance_mode: For gradient methods: `"parameter"` (per-task
                gradients of the shared parameters) or `"representation"`
                (per-task gradients of the shared representation: about the
                cost of one backward pass).
            cosine: Report the cosine similarity of every pair of task
                gradients as `cosine/<a>/<b>`.
            update_every: Recompute a Gramian method's weights every this
                many steps (Nash-MTL's trick for costly methods).
            on_nonfinite: When a task's loss or the gradient is not finite,
                the step is never applied, and `fit` then `"stop"`s with a
                `keras_mtl.callbacks.NonFiniteError` naming the task, the step
                and the last good checkpoint, or `"skip"`s the step (counted
                as `skipped_steps`); `"off"` applies every step (plain Keras).
            **kwargs: Other `keras.Model.compile` arguments.
        """
        tasks, outputs = self._tasks, self._task_outputs
        loss_fns = per_task.loss_functions(tasks, outputs, loss)
        weights = per_task.loss_weights(tasks, outputs, loss_weights)
        if metrics is None:
            per_task_metrics = {t.name: t.resolved_metrics() for t in tasks}
        else:
            per_task_metrics = per_task.metric_lists(tasks, outputs, metrics, "metrics")
        per_task_weighted = per_task.metric_lists(
            tasks, outputs, weighted_metrics, "weighted_metrics"
        )
        old = getattr(self, "balancer_state", None)
        if old is not None:
            # Replace, not add: Keras tracks layers set as attributes.
            if old in self._layers:
                self._layers.remove(old)
            delattr(self, "balancer_state")
        balancing = None
        if balancer is not None:
            balancing = balancing_module.build(
                self, balancer, balance_mode, cosine, update_every
            )
        elif (balance_mode, cosine, update_every) != ("parameter", False, 1):
            raise ValueError(
                "balance_mode, cosine and update_every configure a balancer; "
                "give balancer=... too."
            )
        if on_nonfinite not in NONFINITE_MODES:
            raise ValueError(
                f"on_nonfinite must be one of {', '.join(NONFINITE_MODES)}, got "
                f"{on_nonfinite!r}."
            )
        task_metrics = TaskMetrics(
            tasks,
            per_task_metrics,
            per_task_weighted,
            balancing.metric_names() if balancing else (),
            guard=on_nonfinite != "off",
            loss_weights=weights,
        )
        if optimizer is None:
            optimizer = defaults.optimizer()
        super().compile(optimizer=optimizer, **kwargs)
        if on_nonfinite != "off":
            self._loss_tracker = FiniteMean(name="loss")
        # Set without Keras's attribute tracking: these are compile state,
        # replaced by the next compile, never saved as model weights.
        object.__setattr__(self, "_compile_metrics", task_metrics)
        object.__setattr__(self, "_task_loss_fns", tuple(loss_fns))
        object.__setattr__(self, "_task_loss_weights", tuple(weights))
        object.__setattr__(self, "_balancing", balancing)
        object.__setattr__(
            self, "_on_nonfinite", None if on_nonfinite == "off" else on_nonfinite
        )
        self.optimizer = guarded(
            self.optimizer,
            None
            if on_nonfinite == "off"
            else lambda ok: object.__setattr__(self._compile_metrics, "_grads_ok", ok),
        )
        if balancing is not None:
            self.balancer_state = balancing.state
        object.__setattr__(
            self,
            "_task_compile_args",
            {
                "loss": loss,
                "loss_weights": loss_weights,
                "metrics": metrics,
                "weighted_metrics": weighted_metrics,
                "balancer": None
                if balancing is None
                else balancers_module.serialize(balancing.balancer),
                "balance_mode": balance_mode,
                "cosine": cosine,
                "update_every": update_every,
                "on_nonfinite": on_nonfinite,
                # Saved as given ("auto" by default), not as Keras resolved
                # it for this backend: a file saved on JAX (where "auto"
                # means XLA) then loads on PyTorch without torch.compile.
                "jit_compile": kwargs.get("jit_compile", "auto"),
            },
        )

    def get_compile_config(self) -> dict[str, Any]:
        config = super().get_compile_config()
        if config and hasattr(self, "_task_compile_args"):
            config.update(keras.saving.serialize_keras_object(self._task_compile_args))
        return config

    def compile_from_config(self, config: dict[str, Any]) -> None:
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    # ----------------------------------------------------- loss and metrics

    def task_losses(
        self, y: Any, y_pred: Any, sample_weight: Any = None, training: bool = False
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Each task's masked mean loss on a batch, and its labelled count.

        Args:
            y: Labels: a dict by task name, a list in task order, or one
                array for a one-task model.
            y_pred: The model's outputs for the batch.
            sample_weight: One array for all tasks, or per task (dict/list).
            training: Whether the losses train the model: then the class
                weights given to `fit(class_weight=...)` apply.

        Returns:
            `(losses, counts)`, lists of scalars in task order. A task with
            no label in the batch has loss 0 and count 0.
        """
        if not hasattr(self, "_task_loss_fns"):
            raise RuntimeError("Call compile() before computing task losses.")
        labels = self._labels_by_task(y)
        preds = self._predictions_by_task(y_pred)
        weights = self._by_task(sample_weight, "sample_weight", allow_shared=True)
        losses, counts = [], []
        class_weights = getattr(self, "_class_weights", {}) if training else {}
        for task, fn, y_t, p_t, w_t in zip(
            self._tasks, self._task_loss_fns, labels, preds, weights, strict=True
        ):
            if y_t is None:
                zero = ops.zeros((), dtype=keras.config.floatx())
                losses.append(zero)
                counts.append(zero)
                continue
            loss, count = task_loss(
                task, fn, y_t, p_t, w_t, class_weights.get(task.name)
            )
            losses.append(loss)
            counts.append(count)
        return losses, counts

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Tensor:
        """The weighted sum of the tasks' masked losses, plus layer losses.

        With a loss-weighting balancer, training steps minimise the
        balancer's objective; the value returned (and reported as `loss`)
        stays the weighted sum, comparable across balancers and with
        validation.
        """
        del x
        losses, counts = self.task_losses(y, y_pred, sample_weight, training)
        # The replica's own losses: metrics sum their states across replicas.
        self._compile_metrics.update_losses(losses, counts)
        losses, counts, scale = mtl_backend.global_task_losses(losses, counts, training)
        scaled = [
            w * loss for w, loss in zip(self._task_loss_weights, losses, strict=True)
        ]
        total = ops.sum(balancing_module.poisoned(ops.stack(scaled)))
        extra = ops.zeros((), dtype=total.dtype)
        for loss in self.losses:
            extra = extra + ops.cast(ops.sum(loss), total.dtype)
        self._compile_metrics.update_penalty(extra)
        balancing = self._balancing
        if training and balancing is not None and balancing.balancer.level == "loss":
            objective, weights = balancing.loss_objective(
                ops.stack(scaled), ops.stack(counts)
            )
            self._compile_metrics.update_balance(balancing.metric_values(weights, None))
            # Gradient of the objective, value of the weighted sum.
            total = objective - ops.stop_gradient(objective) + ops.stop_gradient(total)
        # Where replicas' gradients are summed, each contributes 1/replicas
        # of the global objective (Keras reports the loss times replicas).
        return (total + extra) * scale if scale != 1.0 else total + extra

    def compute_metrics(
        self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None
    ) -> dict[str, Any]:
        del x
        names = self.task_names
        labels = dict(zip(names, self._labels_by_task(y), strict=True))
        preds = dict(zip(names, self._predictions_by_task(y_pred), strict=True))
        weights = dict(
            zip(
                names,
                self._by_task(sample_weight, "sample_weight", allow_shared=True),
                strict=True,
            )
        )
        self._compile_metrics.update_state(labels, preds, weights)
        return self.get_metrics_result()

    # ---------------------------------------------------------------- steps

    def train_step(self, *args: Any) -> Any:
        self._compile_metrics.training = True
        balancing = getattr(self, "_balancing", None)
        with fast_layers(self):
            if balancing is not None and balancing.balancer.level != "loss":
                return training.train_step(self, *args)
            return super().train_step(*args)

    def make_train_function(self, force: bool = False) -> None:
        if self.train_function is not None and not force:
            return
        super().make_train_function(force)
        phased = training.phased_train_function(self)
        if phased is not None:
            self.train_function = phased

    def test_step(self, *args: Any) -> Any:
        self._compile_metrics.training = False
        return super().test_step(*args)

    def fit(
        self,
        x: Any = None,
        y: Any = None,
        batch_size: int | None = None,
        epochs: int | None = None,
        callbacks: Any = None,
        shuffle: bool = True,
        sample_weight: Any = None,
        initial_epoch: int = 0,
        early_stopping: int | None = None,
        class_weight: Any = None,
        **kwargs: Any,
    ) -> Any:
        """`keras.Model.fit`, plus: a `keras_mtl.callbacks.Checkpoint` among
        the callbacks resumes from its newest checkpoint exactly (mid-epoch
        included), and the non-finite guard set by `compile(on_nonfinite=)`
        acts on every step.

        Args:
            epochs: As for Keras; None (default) runs up to 20 epochs with
                early stopping (`keras_mtl.training.defaults`).
            early_stopping: Stop after this many epochs without a better
                validation loss (training loss without validation data) and
                restore the best epoch's weights; 0 turns it off. Default: 2
                when `epochs` is None, else off.
            class_weight: `"balanced"` (every binary and multiclass task) or
                a dict by task name of `"balanced"`, `{class: weight}` or one
                weight per class: each labelled sample's training loss is
                weighted by its class (`keras_mtl.tasks.class_weights`).
            **kwargs: Other `keras.Model.fit` arguments.
        """
        validating = (
            kwargs.get("validation_data") is not None
            or kwargs.get("validation_split", 0.0) > 0
        )
        callbacks, epochs, checkpoint = training_callbacks(
            self, callbacks, epochs, early_stopping, validating
        )
        x = self._standard_inputs(x)
        self._check_labels(y, "y")
        validation = kwargs.get("validation_data")
        if isinstance(validation, tuple | list) and len(validation) >= 2:
            self._check_labels(validation[1], "validation_data")
            kwargs["validation_data"] = (
                self._standard_inputs(validation[0], "validation_data"),
                *validation[1:],
            )
        self._set_class_weights(class_weight, x, y)

        def fit(x: Any, **kwargs: Any) -> Any:
            return super(MultiTaskModel, self).fit(mtl_backend.feedable(x), **kwargs)

        if checkpoint is not None:
            return callbacks_module.fit_resumable(
                self,
                fit,
                checkpoint,
                x,
                y,
                batch_size,
                epochs,
                shuffle,
                sample_weight,
                initial_epoch,
                callbacks,
                kwargs,
            )
        if hasattr(x, "set_epoch"):
            # The data set orders its batches by (seed, epoch) itself.
            callbacks.insert(0, callbacks_module.EpochSync(x))
            shuffle = False
        return fit(
            x,
            y=y,
            batch_size=batch_size,
            epochs=epochs,
            callbacks=callbacks,
            shuffle=shuffle,
            sample_weight=sample_weight,
            initial_epoch=initial_epoch,
            **kwargs,
        )

    def _set_class_weights(self, spec: Any, x: Any, y: Any) -> None:
        weights = (
            {}
            if spec is None
            else class_weights_module.resolve(
                self._tasks,
                spec,
                class_weights_module.training_labels(x, y, self.task_names),
            )
        )
        if weights != getattr(self, "_class_weights", {}):
            # The weights are constants of the traced step: trace it again.
            object.__setattr__(self, "_class_weights", weights)
            self.train_function = None

    # ------------------------------------------------------------ predict

    def _standard_inputs(self, x: Any, where: str = "x") -> Any:
        """In-memory inputs as the dict the model takes (`per_task.standard_inputs`)."""
        try:
            struct = self.input
        except (AttributeError, ValueError):
            return x
        return per_task.standard_inputs(struct, x, where)

    def _check_labels(self, y: Any, where: str) -> None:
        """Labels held in memory, checked before any step (`masking.check_labels`)."""
        if y is None or not hasattr(self, "_task_loss_fns"):
            return
        masking.check_labels(self._tasks, self._labels_by_task(y), where)

    def evaluate(
        self,
        x: Any = None,
        y: Any = None,
        *args: Any,
        callbacks: Any = None,
        **kwargs: Any,
    ) -> Any:
        """`keras.Model.evaluate`, plus: a label out of its task's range stops
        it with one sentence, and a task without any labelled sample reports
        NaN and a warning (`keras_mtl.callbacks.LabelGuard`)."""
        x = self._standard_inputs(x)
        self._check_labels(y, "y")
        if callbacks is None or isinstance(callbacks, list | tuple):
            callbacks = list(callbacks or [])
            if not any(isinstance(c, callbacks_module.LabelGuard) for c in callbacks):
                callbacks.insert(0, callbacks_module.LabelGuard())
        wanted = kwargs.pop("return_dict", False)
        logs = super().evaluate(
            x, y, *args, callbacks=callbacks, return_dict=True, **kwargs
        )
        logs = {
            k: v
            for k, v in logs.items()
            if k not in callbacks_module.LABEL_KEYS
            and not k.startswith(callbacks_module.UNLABELLED)
        }
        if wanted:
            return logs
        # Keras's order: the loss, then the other entries by name.
        values = [logs["loss"]] + [logs[k] for k in sorted(logs) if k != "loss"]
        return values[0] if len(values) == 1 else values

    def make_predict_function(self, force: bool = False) -> Any:
        if self.predict_function is not None and not force:
            return self.predict_function
        super().make_predict_function(force)
        step = self.predict_function
        if keras.backend.backend() == "jax" and mtl_backend.processes()[1] > 1:

            def local(state: Any, iterator: Any) -> Any:
                # Several JAX processes: each reads back the rows it fed.
                outputs, state = step(state, iterator)
                return keras.tree.map_structure(mtl_backend.local_part, outputs), state

            self.predict_function = local
        return self.predict_function

    def predict(self, x: Any, **kwargs: Any) -> Any:
        """`keras.Model.predict`; a dict of outputs comes in the model's task
        order (`task_names`), not sorted by name. Under several processes,
        each gets the predictions of what it fed (its share)."""
        out = super().predict(self._standard_inputs(x), **kwargs)
        if isinstance(out, dict):
            first = [o for o in self._task_outputs if o in out]
            out = {k: out[k] for k in first + [k for k in out if k not in first]}
        return out

    def predict_tasks(self, x: Any, **kwargs: Any) -> dict[str, np.ndarray]:
        """`predict`, returned as a dict of NumPy arrays by task name."""
        kwargs.setdefault("verbose", 0)
        preds = self._predictions_by_task(self.predict(x, **kwargs))
        return {t.name: np.asarray(p) for t, p in zip(self._tasks, preds, strict=True)}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["tasks"] = [t.get_config() for t in self._tasks]
        if getattr(self, "recipe", None):
            config["recipe"] = self.recipe
        return config


#: The seed's name for the model class: `from keras_mtl import Model`.
Model = MultiTaskModel
