"""Training with a gradient balancer, written once for every backend.

* `step`: the balanced train step (what `MultiTaskModel.train_step` runs
  when its balancer needs per-task gradients);
* `rows`: the providers of task rows (autodiff, or a layer's own kernel);
* `algebra`: from task rows to the method's decision and the shared update;
* `guard`: `FiniteGuard`, the optimizer wrapper that skips a step whose
  gradients are not finite (every train step, balanced or not).
"""

from keras_mtl.training.step import phased_train_function, train_step

__all__ = ["phased_train_function", "train_step"]
